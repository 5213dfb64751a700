"""API keys: created and revoked from the CLI, checked by the server on every request.

Storage. ``api_keys.json`` in the data directory, mode 0600, holding for each key its id, a
display prefix, an optional name, the creation and last-use times and the SHA-256 of the
secret; the secret itself is shown once, at creation, and never stored. Keys are 32 random
bytes (``fs-`` + URL-safe base64), so a fast unsalted hash is enough: there is nothing to
brute-force. Writes replace the file atomically (temp file + rename) under an exclusive
``flock`` on a lock file, so ``firesift keys create`` in one process and the running server
(which records last use) never lose each other's changes. The server re-reads the file when its
mtime changes, so a new or revoked key takes effect on the next request without a restart.
Last use is kept in memory and written at most once a minute (and at shutdown): a file write
per request would cost more than the request.

When a key is required (:class:`AuthPolicy`):

- the server listens on anything but a loopback address (``127.0.0.0/8``, ``::1``,
  ``localhost``): then every API request needs a key, and with no key created at all every
  request is refused with a message saying how to create one;
- a request comes from a non-loopback client address (defence in depth: the listening address
  may be loopback behind a port forward);
- on loopback, only when ``require_key`` is set *and* at least one key exists (so turning the
  setting on cannot lock the local user out of a fresh install).

The web page's static files, ``/healthz`` and ``/openapi.json`` never need a key. A key is sent as
``Authorization: Bearer <key>`` (what every OpenAI SDK sends) and only so: a key in the URL
(``?api_key=``, ``?key=``) is refused with a 401 saying so, on every request, because URLs end
up in access logs, proxies and browser history (:mod:`firesift.api.accesslog` also redacts them
from the server's own log). Each key has a request budget (:mod:`firesift.api.ratelimit`).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import ipaddress
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from firesift.errors import NotFound, StoreError

__all__ = ["FILENAME", "ApiKey", "AuthPolicy", "KeyStore", "is_loopback"]

FILENAME = "api_keys.json"
_PREFIX = "fs-"
_SHOWN = 10
_LAST_USED_FLUSH_S = 60.0


def is_loopback(host: str | None) -> bool:
    """True for ``localhost`` and loopback IP addresses (all of ``127.0.0.0/8`` and ``::1``)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key, without its secret."""

    id: str
    prefix: str
    name: str
    created: str
    sha256: str
    last_used: str | None = None

    def public(self) -> dict[str, Any]:
        """What ``firesift keys list`` shows: never the hash or the secret."""
        return {
            "id": self.id,
            "prefix": self.prefix,
            "name": self.name,
            "created": self.created,
            "last_used": self.last_used,
        }


class KeyStore:
    """The API keys of one data directory (see the module docstring)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / FILENAME
        self._lock_path = Path(data_dir) / (FILENAME + ".lock")
        self._mutex = threading.Lock()
        self._mtime: int | None = None
        self._keys: dict[str, ApiKey] = {}
        self._by_hash: dict[str, ApiKey] = {}
        self._used: dict[str, str] = {}
        self._last_flush = time.monotonic()

    # -- file --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read_file(self) -> dict[str, ApiKey]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise StoreError(f"cannot read API keys from {self.path}: {e}") from e
        try:
            data = orjson.loads(raw) if raw.strip() else {"keys": []}
            return {k["id"]: ApiKey(**k) for k in data.get("keys", [])}
        except (orjson.JSONDecodeError, TypeError, KeyError, AttributeError) as e:
            raise StoreError(f"API key file {self.path} is damaged ({e}); move it aside") from e

    def _write_file(self, keys: dict[str, ApiKey]) -> None:
        data = orjson.dumps(
            {"keys": [asdict(k) for k in keys.values()]}, option=orjson.OPT_INDENT_2
        )
        fd, tmp = tempfile.mkstemp(prefix=".api_keys.", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _reload(self) -> None:
        try:
            mtime: int | None = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime == self._mtime:
            return
        keys = self._read_file()
        self._keys = keys
        self._by_hash = {k.sha256: k for k in keys.values()}
        self._mtime = mtime

    # -- management (CLI) ---------------------------------------------------------------

    def create(self, name: str = "") -> tuple[ApiKey, str]:
        """A new key; returns it and its secret (shown to the user once, never stored)."""
        secret = _PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        key = ApiKey(
            id=secrets.token_hex(4),
            prefix=secret[:_SHOWN],
            name=name,
            created=_now(),
            sha256=_hash(secret),
        )
        with self._mutex, self._exclusive():
            keys = self._read_file()
            keys[key.id] = key
            self._write_file(keys)
            self._mtime = None
        return key, secret

    def list(self) -> list[ApiKey]:
        """Every key, oldest first (last use as recorded by the server)."""
        with self._mutex:
            self._reload()
            return sorted(self._keys.values(), key=lambda k: (k.created, k.id))

    def revoke(self, key_id_or_prefix: str) -> ApiKey:
        """Delete a key, named by its id or its displayed prefix; :class:`NotFound` otherwise."""
        with self._mutex, self._exclusive():
            keys = self._read_file()
            match = [k for k in keys.values() if key_id_or_prefix in (k.id, k.prefix)]
            if len(match) != 1:
                known = ", ".join(k.id for k in keys.values()) or "none"
                raise NotFound(
                    f"no API key {key_id_or_prefix!r} (known ids: {known}; see firesift keys list)"
                )
            del keys[match[0].id]
            self._write_file(keys)
            self._mtime = None
            return match[0]

    # -- checking (server) --------------------------------------------------------------

    def exist(self) -> bool:
        with self._mutex:
            self._reload()
            return bool(self._keys)

    def check(self, secret: str) -> ApiKey | None:
        """The key ``secret`` belongs to, or None; records its use."""
        digest = _hash(secret)
        with self._mutex:
            self._reload()
            key = self._by_hash.get(digest)
            if key is None or not hmac.compare_digest(key.sha256, digest):
                return None
            self._used[key.id] = _now()
            due = time.monotonic() - self._last_flush >= _LAST_USED_FLUSH_S
        if due:
            self.flush()
        return key

    def flush(self) -> None:
        """Write recorded last-use times (merged into the file as it is now)."""
        with self._mutex:
            used, self._used = self._used, {}
            self._last_flush = time.monotonic()
        if not used:
            return
        with self._mutex, self._exclusive():
            keys = self._read_file()
            changed = False
            for key_id, at in used.items():
                if key_id in keys:
                    keys[key_id] = replace(keys[key_id], last_used=at)
                    changed = True
            if changed:
                self._write_file(keys)
            self._mtime = None


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    """Decides whether a request needs a key (rules in the module docstring)."""

    keys: KeyStore
    bind_host: str = "127.0.0.1"
    require_key: bool = False

    def required(self, client_host: str | None) -> bool:
        if not is_loopback(self.bind_host):
            return True
        if client_host is not None and not is_loopback(client_host):
            return True
        return self.require_key and self.keys.exist()
