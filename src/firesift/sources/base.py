"""The live-source interface, source URIs, and the registry every connector joins.

A source is one protocol client. :meth:`Source.stream` opens one connection (or one polling
session) and yields :class:`Batch` es: canonical events plus the cursor to persist once the store
has them, and an optional protocol acknowledgement. It knows nothing about the store, retries or
status: :class:`~firesift.sources.runner.SourceRunner` owns those, the same for every source. A
source signals what happened by how ``stream`` ends:

- it returns: the source is finished (a file read to its end without ``follow``);
- it raises :class:`Fatal` (bad configuration, rejected credentials): that source stops with the
  message, nothing retries it, the other sources keep running;
- it raises anything else (:class:`Retry` when the server said when to come back, or any
  network error): the runner reconnects after a back-off, from the last stored cursor.

A yielded batch with no events and no cursor is a keep-alive: it proves the connection is alive
(stall detection) and stores nothing.

A source is named on the command line as ``NAME:ARG?opt=value&...`` (``jetstream``,
``mastodon:mastodon.social?stream=public``, ``rss:https://example.org/feed.xml``) and in the
config file as a ``[[sources]]`` table (``type``, ``arg``, options). Options a source does not
declare are refused with the valid ones named, except that for sources whose ARG is a URL,
unknown query keys stay part of that URL.

Registry: built-ins are declared in the package metadata under the ``firesift.sources`` entry
point group, exactly as a third-party package declares its own; :func:`register` adds one at run
time. Modules load only when their source is used.
"""

from __future__ import annotations

import importlib.metadata
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, urlencode

from firesift.errors import ConfigError, FiresiftError, NotFound
from firesift.formats.reader import Parsed, Problem

if TYPE_CHECKING:
    from firesift.config import Settings
    from firesift.pipeline import IngestSummary
    from firesift.post import Event

__all__ = [
    "COMMON_OPTIONS",
    "CURSOR_PREFIX",
    "ENTRY_POINT_GROUP",
    "SECRET_OPTIONS",
    "Batch",
    "Fatal",
    "Retry",
    "Source",
    "SourceSpec",
    "build",
    "build_all",
    "cursor_key",
    "get",
    "names",
    "register",
    "retry_after",
    "unregister",
]

ENTRY_POINT_GROUP = "firesift.sources"

COMMON_OPTIONS: Mapping[str, str] = {
    "name": "key for this source's cursor and status (default: the URI)",
    "stall": "seconds without a byte (not even a keep-alive) before reconnecting",
}
"""Options every source accepts; the runner reads them."""

SECRET_OPTIONS = frozenset({"token", "password", "creds", "bearer_token"})
"""Options that hold credentials: never part of a source's key (its cursor name and status), so
they are not stored, logged or shown."""


class Fatal(FiresiftError):
    """This source cannot run as configured (bad option, rejected credentials, a resource that
    does not exist): stop it with this message; retrying would not help."""


class Retry(Exception):
    """A transient failure the server described: reconnect, not before ``after`` seconds when
    given. ``kind`` picks the back-off schedule: ``network`` (connection dropped or refused),
    ``http`` (an HTTP error status), ``rate`` (rate limited)."""

    def __init__(self, message: str, *, kind: str = "network", after: float | None = None):
        super().__init__(message)
        if kind not in ("network", "http", "rate"):
            raise ValueError(f"unknown retry kind {kind!r}")
        self.kind = kind
        self.after = after


@dataclass(frozen=True, slots=True)
class Batch:
    """What a source yields: events, and what to do once the store has them.

    ``cursor`` is saved in the same transaction as ``events`` (so a crash never separates them)
    and handed back to :meth:`Source.stream` on reconnect. ``ack`` is awaited after the store
    committed (a NATS ack, an HTTP 2xx). ``source_time`` is the newest event's time on the
    source's clock (the lag shown in status). A batch with ``summary`` is submitted on its own
    with that summary (the HTTP push source reports per request); others may be coalesced.
    """

    events: Sequence[Event] = ()
    cursor: str | None = None
    source_time: datetime | None = None
    ack: Callable[[], Awaitable[None]] | None = None
    summary: IngestSummary | None = None
    problems: Sequence[tuple[str, str]] = ()
    """``(where, reason)`` of messages skipped on the way (bad JSON, unknown shape)."""
    nack: Callable[[BaseException], None] | None = None
    """Called instead of ``ack`` when the store could not take the batch."""
    searchable: bool = False
    """Wait until search sees the batch before acknowledging (an index commit of its own)."""

    @classmethod
    def of(
        cls,
        results: Sequence[Parsed | Problem],
        *,
        cursor: str | None = None,
        source_time: datetime | None = None,
        ack: Callable[[], Awaitable[None]] | None = None,
        nack: Callable[[BaseException], None] | None = None,
    ) -> Batch:
        """A batch from :class:`~firesift.formats.reader.Messages` results."""
        events: list[Event] = []
        problems: list[tuple[str, str]] = []
        for r in results:
            if isinstance(r, Parsed):
                events.extend(r.events)
            else:
                problems.append((r.where, r.reason))
        return cls(events, cursor, source_time, ack, problems=problems, nack=nack)

    @property
    def keepalive(self) -> bool:
        return not (self.events or self.problems) and self.cursor is None and self.ack is None


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A parsed source URI: ``name`` (the registry key), ``arg`` and ``options``."""

    name: str
    arg: str = ""
    options: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, uri: str) -> SourceSpec:
        """``NAME[:ARG][?opt=value&...]``. The options are resolved against the source's
        declared ones by :meth:`Source.configure`."""
        text = uri.strip()
        if not text:
            raise ConfigError("empty source URI; expected NAME:ARG?opt=value")
        head, _, query = text.partition("?")
        name, _, arg = head.partition(":")
        # NAME:https://host/path?q=1 — the ARG is a URL: its own query stays for the source
        return cls(name.strip().lower(), arg, dict(parse_qsl(query, keep_blank_values=True)))

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str) -> SourceSpec:
        """A ``[[sources]]`` table of the config file: ``type``, optional ``arg``, options."""
        if "type" not in table:
            raise ConfigError(f'{where}: a [[sources]] table needs type = "NAME"')
        options = {k: _option_text(v) for k, v in table.items() if k not in ("type", "arg")}
        return cls(str(table["type"]).lower(), str(table.get("arg", "")), options)

    @property
    def uri(self) -> str:
        query = f"?{urlencode(sorted(self.options.items()))}" if self.options else ""
        return f"{self.name}{':' if self.arg else ''}{self.arg}{query}"

    @property
    def key(self) -> str:
        """The cursor and status key: the ``name`` option, else the URI without it."""
        if "name" in self.options:
            return self.options["name"]
        rest = {
            k: v
            for k, v in self.options.items()
            if k not in COMMON_OPTIONS and k not in SECRET_OPTIONS
        }
        return SourceSpec(self.name, self.arg, rest).uri


def _option_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


class Source(ABC):
    """One protocol client. Subclasses declare what they are as class attributes and implement
    :meth:`stream`; :meth:`configure` builds one from a spec and settings."""

    name: ClassVar[str]
    """Registry key and URI scheme."""
    help: ClassVar[str]
    """One line for ``firesift sources``."""
    arg: ClassVar[str] = ""
    """What ARG means (empty: the source takes none)."""
    arg_required: ClassVar[bool] = False
    """The source cannot run without ARG."""
    arg_is_url: ClassVar[bool] = False
    """ARG is a URL: unknown query keys belong to it, not to the options."""
    options: ClassVar[Mapping[str, str]] = {}
    """Options the source accepts, with help text (:data:`COMMON_OPTIONS` come on top)."""
    needs: ClassVar[tuple[str, ...]] = ()
    """Settings it cannot run without (e.g. ``x_bearer_token``)."""
    has_cursor: ClassVar[bool] = False
    """It can resume from a cursor after a restart."""
    stall_s: ClassVar[float] = 90.0
    """Default seconds of silence before the runner reconnects."""

    def __init__(self, spec: SourceSpec, settings: Settings) -> None:
        self.spec = spec
        self.settings = settings

    @classmethod
    def configure(cls, spec: SourceSpec, settings: Settings) -> Source:
        """Check the spec against what the source declares and build it."""
        known = {**COMMON_OPTIONS, **cls.options}
        unknown = [k for k in spec.options if k not in known]
        if unknown and cls.arg_is_url:
            url_query = urlencode([(k, spec.options[k]) for k in unknown])
            joiner = "&" if "?" in spec.arg else "?"
            spec = SourceSpec(
                spec.name,
                f"{spec.arg}{joiner}{url_query}",
                {k: v for k, v in spec.options.items() if k in known},
            )
        elif unknown:
            raise ConfigError(
                f"source {spec.name}: unknown option(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(known)}"
            )
        if cls.arg_required and not spec.arg:
            raise ConfigError(f"source {spec.name} needs an argument: {spec.name}:<{cls.arg}>")
        missing = [s for s in cls.needs if not getattr(settings, s, "")]
        if missing:
            envs = ", ".join(f"FIRESIFT_{s.upper()}" for s in missing)
            raise ConfigError(f"source {spec.name} needs {', '.join(missing)} (set {envs})")
        return cls(spec, settings)

    def option(self, key: str, default: str = "") -> str:
        return self.spec.options.get(key, default)

    def float_option(self, key: str, default: float) -> float:
        raw = self.spec.options.get(key)
        if raw is None or raw == "":
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"source {self.spec.key}: {key}={raw!r} is not a number") from None
        if value < 0:
            raise ConfigError(f"source {self.spec.key}: {key} must be >= 0, got {raw}")
        return value

    def bool_option(self, key: str, default: bool) -> bool:
        """``true/false`` (or ``1/0``, ``yes/no``); anything else is refused naming the key."""
        raw = self.spec.options.get(key, "").strip().lower()
        if not raw:
            return default
        if raw in ("true", "1", "yes"):
            return True
        if raw in ("false", "0", "no"):
            return False
        raise ConfigError(f"source {self.spec.key}: {key} must be true or false, got {raw!r}")

    @property
    def stall_after(self) -> float:
        return self.float_option("stall", self.stall_s)

    @abstractmethod
    def stream(self, cursor: str | None) -> AsyncIterator[Batch]:
        """One connection's worth of batches, resuming after ``cursor`` (the last one the
        store saved, or None). See the module docstring for how it ends."""

    async def aclose(self) -> None:  # noqa: B027 (optional hook)
        """Release anything held across connections (a client, a subscription)."""

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """What ``firesift sources`` shows."""
        return {
            "name": cls.name,
            "help": cls.help,
            "arg": cls.arg,
            "arg_required": cls.arg_required,
            "options": dict(cls.options),
            "needs": list(cls.needs),
            "has_cursor": cls.has_cursor,
        }


_REGISTERED: dict[str, type[Source]] = {}


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def names() -> list[str]:
    """Every source name: entry points (built-ins and plugins) and run-time registrations."""
    return sorted({*_entry_points(), *_REGISTERED})


def get(name: str) -> type[Source]:
    """The source class registered as ``name``; the error names the valid ones."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    ep = _entry_points().get(name)
    if ep is None:
        raise NotFound(f"unknown source {name!r}; known: {', '.join(names())}")
    try:
        cls = ep.load()
    except Exception as e:  # a broken plugin must not take the others down
        raise ConfigError(f"source {name!r} ({ep.value}) cannot be loaded: {e}") from e
    if not (isinstance(cls, type) and issubclass(cls, Source)):
        raise ConfigError(f"entry point {ep.value} for source {name!r} is not a Source class")
    return cls


def register(cls: type[Source], *, replace: bool = False) -> type[Source]:
    """Register a source class at run time (a plugin can use its entry point instead)."""
    if not getattr(cls, "name", ""):
        raise ValueError("a source needs a non-empty name")
    if not replace and (cls.name in _REGISTERED or cls.name in _entry_points()):
        raise ValueError(f"source {cls.name!r} is already registered")
    _REGISTERED[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    _REGISTERED.pop(name, None)


CURSOR_PREFIX = "source:"
"""Store cursor names of live sources start with this; the source's key follows."""


def cursor_key(key: str) -> str:
    """The store's cursor name for the source keyed ``key``."""
    return f"{CURSOR_PREFIX}{key}"


def build(uri_or_spec: str | SourceSpec, settings: Settings) -> Source:
    """A configured source from a URI or a spec."""
    spec = uri_or_spec if isinstance(uri_or_spec, SourceSpec) else SourceSpec.parse(uri_or_spec)
    return get(spec.name).configure(spec, settings)


def build_all(
    uris: Sequence[str],
    settings: Settings,
    tables: Sequence[tuple[Mapping[str, Any], str]] = (),
) -> list[Source]:
    """The sources of the config file's ``[[sources]]`` tables (``(table, where)``, see
    :func:`firesift.config.source_tables`) followed by those of ``uris`` (the command line).
    Errors name the URI or the table they come from."""
    specs = [(SourceSpec.from_table(t, where), where) for t, where in tables]
    specs += [(SourceSpec.parse(uri), f"--source {uri}") for uri in uris]
    built: list[Source] = []
    for spec, where in specs:
        try:
            built.append(get(spec.name).configure(spec, settings))
        except (ConfigError, NotFound) as e:
            raise ConfigError(f"{where}: {e}") from None
    return built


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds an HTTP ``Retry-After`` header asks to wait: delay-seconds or an HTTP date
    (RFC 9110 section 10.2.3); None when absent or unreadable. What :class:`Retry` ``after``
    takes."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
