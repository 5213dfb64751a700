"""``jetstream``: Bluesky posts, likes, reposts, deletes and handles live from Jetstream.

Jetstream serves the Bluesky firehose as JSON over WebSocket. Read from the reference server,
`bluesky-social/jetstream <https://github.com/bluesky-social/jetstream>`_ (``docs/README.md``
section 5, ``specs/client.md``, ``internal/subscribe/handler.go``, ``filter.go``,
``filterv2.go``, ``cursor.go``, ``encoder.go``, ``compress.go``) and its lexicon
``network.bsky.jetstream.subscribeEvents`` (copied in ``data/fixtures/bluesky_jetstream``):

- **v1** (``/subscribe``, the default; wire-frozen for existing consumers): one event per frame,
  ``{did, time_us, kind: commit|identity|account, commit: {rev, operation, collection, rkey,
  record, cid}}``. Query: repeated ``wantedCollections`` (NSIDs or ``prefix.*``, at most 100;
  they filter commits only: identity and account events always come), repeated ``wantedDids``
  (at most 10,000), ``maxMessageSizeBytes`` (the server skips bigger events), ``cursor`` (Unix
  microseconds: the server resumes at the first event it saw at or after that instant), and
  ``compress=true``: every frame is then binary, one zstd frame made with Jetstream's own
  dictionary (``dictionaries/jetstream_v1.zdict``, id 1612007021). The server refuses zstd
  together with permessage-deflate, so that extension is offered only without zstd. The client
  may send ``{"type": "options_update", "payload": {"wantedCollections": [...], "wantedDids":
  [...], "maxMessageSizeBytes": N}}`` to replace the filters live
  (:meth:`JetstreamSource.update_options`); with ``requireHello=true`` the server sends nothing
  until that first message, which is how a DID list too long for a URL is sent.
- **v2** (``/xrpc/network.bsky.jetstream.subscribeEvents``, subprotocol ``xrpc.v1.json``):
  every frame is ``{"$type": "message", "payload": {"$type":
  "network.bsky.jetstream.subscribeEvents#commit|#identity|#account|#sync|#info", "seq", "did",
  "time" (RFC 3339, six fractional digits), ...}}`` or a terminal ``{"$type": "error",
  "error", "message"}``. Filters ``kinds``, ``dids``, ``collections`` (repeated; ``collections``
  filters commits only); the v1 names are a 400. The cursor is the server's own ``seq``,
  replayed inclusively (``seq >= cursor``), so the source asks for the stored seq + 1 (a seq
  seen twice anyway is absorbed by the store's dedupe and never moves the cursor back).
  Compression is ``zstdDictionary=<id>`` (``dictionaries/jetstream_v2_20260811.zdict``);
  there is no ``options_update``.

Decisions:

- **Cursor.** v1: the largest ``time_us`` received, never below the cursor the connection
  resumed from (``time_us`` is not strictly ordered on the wire: the recorded stream has events
  up to 33 ms late). A reconnect asks for ``cursor - rewind`` (3 s by default, as Jetstream's
  docs advise) and the store's dedupe absorbs the replay. A ``time_us`` means the same on every
  v1 instance, so v1 fails over between endpoints: a connection that ends before delivering a
  single frame moves to the next endpoint of the list (the four public instances by default);
  one that dropped after delivering retries the same endpoint first. v2 seqs belong to one
  server, so v2 takes exactly one endpoint.
- **CursorTooOld** (v2: a 400 before the upgrade whose message names the oldest seq kept):
  without an archive to backfill from, the events below that floor are gone. The reference
  client stops a pure-live stream there; firesift keeps the stream current instead: it
  reconnects at once from the floor (from the live tip if the message names none) and reports
  the lost range as a problem, so the status shows the gap. v1 never refuses an old cursor (the
  server clamps it silently).
- **ConsumerTooSlow** and other error frames (v2) end the connection: raised as :class:`Retry`,
  so the runner reconnects from the stored cursor. **UnknownZstdDictionary** (the server
  retrained its dictionary): fetch the current one from ``getZstdDictionary`` and reconnect with
  it; if that fails, or names the dictionary just refused, continue uncompressed, as the
  reference client does (compression is an optimisation, the stream must keep flowing).
- **Handshake refusals.** 400 (bad filters; the server's reason is kept) is :class:`Fatal`;
  401, 403, 404, 405 and 410 are fatal for a single endpoint and move to the next one in a
  list; 429 retries on the rate-limit schedule, anything else on the HTTP one, both honouring
  ``Retry-After``.
- **v2 events are rewritten to the v1 shape** (``time`` -> ``time_us``, the commit fields under
  ``commit``, ``identity`` / ``account`` as they are) and parsed by the same ``jetstream``
  format, so both versions store identical posts. ``#sync`` advances the cursor and stores
  nothing; ``#info`` (``OutdatedCursor``: the server clamped a timestamp cursor) is reported as
  a problem.
- **Batches.** A reader task moves frames from the socket into a buffer (at most 1,000); each
  batch is everything buffered when the consumer comes back for more, so a busy stream yields
  large batches with no added latency and a quiet one single events. A server that sends
  nothing yields nothing: WebSocket pings catch a dead TCP connection, and the runner's stall
  timer catches a server that is connected but silent.
- **Handles.** Commits name authors by DID only; an ``identity`` event that carries a
  ``handle`` becomes an :class:`~firesift.post.Identity` (the format's job), which the store
  applies to that author. Identity and account events pass every collection filter, so
  handles stay current whatever is followed.
- Bad frames (not JSON, not zstd, too long, of no known shape) are reported with their position
  (``<host>:+<n>``, the n-th frame of that connection); the frames around them are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, NoReturn
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import zstandard
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.typing import Subprotocol

from firesift import __version__
from firesift.config import Settings
from firesift.errors import ConfigError
from firesift.formats.reader import MAX_LINE_BYTES, Messages, Parsed, Problem
from firesift.sources.base import Batch, Fatal, Retry, Source, SourceSpec, retry_after

__all__ = [
    "DEFAULT_COLLECTIONS",
    "DEFAULT_KINDS",
    "PUBLIC_ENDPOINTS",
    "V1_PATH",
    "V2_PATH",
    "Dictionary",
    "JetstreamSource",
    "as_v1",
    "dictionary",
]

V1_PATH = "/subscribe"
V2_PATH = "/xrpc/network.bsky.jetstream.subscribeEvents"
DICTIONARY_PATH = "/xrpc/network.bsky.jetstream.getZstdDictionary"
PUBLIC_HOSTS = (
    "jetstream1.us-east.bsky.network",
    "jetstream2.us-east.bsky.network",
    "jetstream1.us-west.bsky.network",
    "jetstream2.us-west.bsky.network",
)
PUBLIC_ENDPOINTS = tuple(f"wss://{h}{V1_PATH}" for h in PUBLIC_HOSTS)
DEFAULT_COLLECTIONS = ("app.bsky.feed.post", "app.bsky.feed.like", "app.bsky.feed.repost")
DEFAULT_KINDS = ("commit", "identity", "account")
V2_TYPE = "network.bsky.jetstream.subscribeEvents#"
_SUBPROTOCOL = Subprotocol("xrpc.v1.json")
_KINDS = ("commit", "identity", "account", "sync")
_MAX_COLLECTIONS = 100
_MAX_DIDS = 10_000
_TIMESTAMP_CURSOR = 10**15
"""Cursors at or above this are Unix microseconds, below it v2 seqs (the server's own split)."""
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_BATCH_FRAMES = 1000
_MAX_QUERY = 4096
"""A longer v1 filter query is sent as an ``options_update`` after connecting instead."""
_MAX_FRAME = 8 * MAX_LINE_BYTES
_ALWAYS_FATAL = frozenset((400,))
_FATAL_HERE = frozenset((401, 403, 404, 405, 410))
_FLOOR = re.compile(r"floor (\d+)")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_DICTIONARIES = Path(__file__).with_name("dictionaries")
_IN_URL = {"wantedCollections": "collections", "wantedDids": "dids"}
"""v1 query keys accepted in the endpoint URL, read as the option they mirror."""
_SET_BY_SOURCE = ("cursor", "compress", "zstdDictionary", "requireHello", "maxMessageSizeBytes")


@dataclass(frozen=True, slots=True)
class Dictionary:
    """A Jetstream zstd dictionary: its id (the one every frame header names) and its bytes."""

    id: int
    data: bytes

    @classmethod
    def of(cls, data: bytes) -> Dictionary:
        return cls(zstandard.ZstdCompressionDict(data).dict_id(), data)

    def decompressor(self) -> zstandard.ZstdDecompressor:
        return zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(self.data))


def dictionary(version: int) -> Dictionary:
    """The zstd dictionary firesift ships for Jetstream ``version`` 1 or 2."""
    name = "jetstream_v1.zdict" if version == 1 else "jetstream_v2_20260811.zdict"
    return Dictionary.of((_DICTIONARIES / name).read_bytes())


class _Undecodable(Exception):
    """A frame that holds no message; the text is its problem."""


@dataclass(slots=True)
class _Connection:
    """Where one connection stands: ``frames`` received, and ``last``, the cursor value
    reached (v1 the largest ``time_us``, v2 the last seq; -1 before the first)."""

    host: str
    last: int
    frames: int = 0


class JetstreamSource(Source):
    name = "jetstream"
    help = "Bluesky live from Jetstream over WebSocket (v1 /subscribe, or v2 subscribeEvents)."
    arg = "endpoint URL, or several separated by commas to fail over (default: public v1)"
    arg_is_url = True
    options: ClassVar[dict[str, str]] = {
        "version": "1 (/subscribe, the default) or 2 (subscribeEvents); a URL's path implies it",
        "collections": "comma-separated NSIDs or prefix.* (default: posts, likes, reposts; "
        "empty: every collection)",
        "dids": "comma-separated DIDs to follow (default: every account)",
        "kinds": "v2: comma-separated event kinds (default commit,identity,account)",
        "compress": "true: zstd frames with Jetstream's dictionary (about half the bytes)",
        "max_message_bytes": "the server skips bigger events (default 1048576, 0: no limit)",
        "rewind": "v1: seconds replayed before the cursor on reconnect (default 3)",
    }
    has_cursor = True
    stall_s = 60.0

    def __init__(self, spec: SourceSpec, settings: Settings) -> None:
        super().__init__(spec, settings)
        key = spec.key
        base, _, query = spec.arg.strip().partition("?")
        from_url: dict[str, list[str]] = {}
        self._passthrough: list[tuple[str, str]] = []
        for k, v in parse_qsl(query, keep_blank_values=True):
            if k in _IN_URL:
                from_url.setdefault(_IN_URL[k], []).append(v)
            elif k in _SET_BY_SOURCE:
                raise ConfigError(
                    f"source {key}: leave {k} out of the URL; the source sets it (see its options)"
                )
            else:
                self._passthrough.append((k, v))

        def opt(name: str) -> str | None:
            if name in spec.options:
                return spec.options[name]
            return ",".join(from_url[name]) if name in from_url else None

        version = opt("version")
        if version not in (None, "1", "2"):
            raise ConfigError(f"source {key}: version must be 1 or 2, got {version!r}")
        urls = [u.strip() for u in base.split(",") if u.strip()]
        paths = {urlsplit(_with_scheme(u)).path.rstrip("/") for u in urls}
        self.version = int(version) if version else (2 if paths == {V2_PATH} else 1)
        if not urls:
            urls = list(PUBLIC_ENDPOINTS if self.version == 1 else PUBLIC_HOSTS[:1])
        path = V1_PATH if self.version == 1 else V2_PATH
        self.endpoints = [_endpoint(u, path, key) for u in urls]
        """The endpoints in fail-over order (normalised: scheme, host, the version's path)."""
        if self.version == 2 and len(self.endpoints) > 1:
            raise ConfigError(f"source {key}: v2 seq cursors belong to one server; give one URL")
        if self.version == 1 and "kinds" in spec.options:
            raise ConfigError(f"source {key}: kinds is a v2 option (v1 sends every kind)")
        self._collections = _names(opt("collections"), DEFAULT_COLLECTIONS)
        self._dids = _names(opt("dids"), ())
        self._kinds = _names(opt("kinds"), DEFAULT_KINDS)
        unknown = sorted(set(self._kinds) - set(_KINDS))
        if unknown:
            raise ConfigError(
                f"source {key}: unknown kind(s) {', '.join(unknown)}; known: {', '.join(_KINDS)}"
            )
        if self.version == 2 and self._collections and "commit" not in self._kinds:
            raise ConfigError(f"source {key}: collections cannot apply when kinds omits commit")
        _check_filters(self._collections, self._dids, key)
        self._max_bytes = _byte_count(opt("max_message_bytes"), key)
        compress = self.bool_option("compress", False)
        self._dictionary = dictionary(self.version) if compress else None
        self._dctx = self._dictionary.decompressor() if self._dictionary else None
        self._rewind_us = round(self.float_option("rewind", 3.0) * 1_000_000)
        self._messages = Messages("jetstream")
        self._next = 0
        self._ws: ClientConnection | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        """The event loop running :meth:`stream`: another thread calls :meth:`update_options`
        on it with ``asyncio.run_coroutine_threadsafe``."""

    @property
    def endpoint(self) -> str:
        """The endpoint the current (or next) connection uses."""
        return self.endpoints[self._next]

    @property
    def filters(self) -> dict[str, Any]:
        """The filters the next connection asks for (:meth:`update_options` changes them)."""
        return {
            "collections": list(self._collections),
            "dids": list(self._dids),
            "max_message_bytes": self._max_bytes,
        }

    async def update_options(
        self,
        *,
        collections: Sequence[str] | None = None,
        dids: Sequence[str] | None = None,
        max_message_bytes: int | None = None,
    ) -> bool:
        """Replace the v1 filters live with an ``options_update`` (run it on the source's event
        loop). ``None`` keeps a filter, an empty list drops it; reconnects keep the new ones.
        True once the frame is written, False when no connection is open (the next one starts
        with the new filters)."""
        if self.version != 1:
            raise ConfigError("options_update exists on v1 (/subscribe) only; v2 is push-only")
        new_collections = self._collections if collections is None else tuple(collections)
        new_dids = self._dids if dids is None else tuple(dids)
        _check_filters(new_collections, new_dids, self.spec.key)
        if max_message_bytes is not None and not 0 <= max_message_bytes <= 0xFFFFFFFF:
            raise ConfigError(f"max_message_bytes must be 0..4294967295, got {max_message_bytes}")
        self._collections, self._dids = new_collections, new_dids
        if max_message_bytes is not None:
            self._max_bytes = max_message_bytes
        ws = self._ws
        if ws is None:
            return False
        try:
            await ws.send(self._options_frame())
        except ConnectionClosed:
            return False
        return True

    def _options_frame(self) -> str:
        payload = {
            "wantedCollections": list(self._collections),
            "wantedDids": list(self._dids),
            "maxMessageSizeBytes": self._max_bytes,
        }
        return orjson.dumps({"type": "options_update", "payload": payload}).decode()

    # -- one connection -------------------------------------------------------------------

    async def stream(self, cursor: str | None) -> AsyncIterator[Batch]:
        self.loop = asyncio.get_running_loop()
        notices: list[tuple[str, str]] = []
        position, last = self._resume(cursor, notices)
        delivered = False
        try:
            ws, hello = await self._open(position, notices)
            conn = _Connection(urlsplit(self.endpoint).netloc, last)
            async with ws:
                if hello:  # requireHello: the filters, before the server sends anything
                    await ws.send(self._options_frame())
                self._ws = ws
                if notices:
                    yield Batch(problems=notices)
                async for frames in _received(ws, conn.host):
                    delivered = True
                    batch, error = self._batch(frames, conn)
                    yield batch
                    if error is not None:
                        raise error
        finally:
            self._ws = None
            if not delivered:  # refused, unreachable or silent: the next endpoint next time
                self._next = (self._next + 1) % len(self.endpoints)

    def _resume(self, cursor: str | None, notices: list[tuple[str, str]]) -> tuple[int | None, int]:
        """The cursor to ask the server for, and the cursor value this connection starts at."""
        if cursor is None:
            return None, -1
        value = int(cursor) if cursor.isdigit() else -1
        if self.version == 1 and value >= _TIMESTAMP_CURSOR:
            return max(0, value - self._rewind_us), value
        if self.version == 2 and 0 <= value < _TIMESTAMP_CURSOR:
            return value + 1, value
        if self.version == 2 and value >= _TIMESTAMP_CURSOR:
            return value, -1  # a v1 time_us: the v2 server translates it to a seq
        wanted = "a Unix-microseconds time_us" if self.version == 1 else "a seq"
        notices.append(
            (
                urlsplit(self.endpoint).netloc,
                f"stored cursor {cursor!r} is not {wanted}; started at the live tip",
            )
        )
        return None, -1

    async def _open(
        self, position: int | None, notices: list[tuple[str, str]]
    ) -> tuple[ClientConnection, bool]:
        """Connect (and whether the filters go in a hello message), reacting in place to the
        refusals the server explains (CursorTooOld, UnknownZstdDictionary), each once; anything
        else raises for the runner."""
        reacted: set[str] = set()
        while True:
            url, hello = self._url(position)
            host = urlsplit(url).netloc
            try:
                ws = await connect(
                    url,
                    subprotocols=[_SUBPROTOCOL] if self.version == 2 else None,
                    compression="deflate" if self.version == 1 and not self._dictionary else None,
                    open_timeout=10,
                    ping_interval=20,
                    ping_timeout=20,
                    close_timeout=2,
                    max_size=_MAX_FRAME,
                    max_queue=_BATCH_FRAMES,
                    user_agent_header=f"firesift/{__version__}",
                )
            except InvalidStatus as e:
                status = e.response.status_code
                name, text = _refusal(e)
                if status == 400 and name == "CursorTooOld" and name not in reacted:
                    reacted.add(name)
                    position = _past_floor(position, text, host, notices)
                    continue
                if status == 400 and name == "UnknownZstdDictionary" and name not in reacted:
                    reacted.add(name)
                    await self._refresh_dictionary(text, host, notices)
                    continue
                fatal = status in _ALWAYS_FATAL or (
                    status in _FATAL_HERE and len(self.endpoints) == 1
                )
                what = f"{host} refused the subscription: HTTP {status}"
                what += f": {name}: {text}" if name else (f": {text}" if text else "")
                if fatal:
                    raise Fatal(what) from None
                after = retry_after(e.response.headers)
                raise Retry(what, kind="rate" if status == 429 else "http", after=after) from None
            except InvalidURI as e:
                raise Fatal(f"source {self.spec.key}: bad endpoint URL: {e}") from None
            except (OSError, TimeoutError, InvalidHandshake) as e:
                raise Retry(f"{host}: cannot connect: {type(e).__name__}: {e}") from None
            return ws, hello

    def _url(self, position: int | None) -> tuple[str, bool]:
        """The subscription URL, and whether the filters go in a hello message instead."""
        query: list[tuple[str, str]] = []
        hello = False
        if self.version == 1:
            filters = [("wantedCollections", c) for c in self._collections]
            filters += [("wantedDids", d) for d in self._dids]
            if self._max_bytes:
                filters.append(("maxMessageSizeBytes", str(self._max_bytes)))
            if len(urlencode(filters)) > _MAX_QUERY:
                filters, hello = [("requireHello", "true")], True
            query += filters
            if self._dictionary is not None:
                query.append(("compress", "true"))
        else:
            query += [("kinds", k) for k in self._kinds]
            query += [("dids", d) for d in self._dids]
            query += [("collections", c) for c in self._collections]
            if self._max_bytes:
                query.append(("maxMessageSizeBytes", str(self._max_bytes)))
            if self._dictionary is not None:
                query.append(("zstdDictionary", str(self._dictionary.id)))
        if position is not None:
            query.append(("cursor", str(position)))
        query += self._passthrough
        return urlunsplit(urlsplit(self.endpoint)._replace(query=urlencode(query))), hello

    async def _refresh_dictionary(
        self, text: str, host: str, notices: list[tuple[str, str]]
    ) -> None:
        """The server retired our v2 dictionary: fetch its current one, or go uncompressed."""
        refused = self._dictionary.id if self._dictionary else None
        try:
            fetched = await _fetch_dictionary(self.endpoint)
            reason = f"it serves {refused} again" if fetched.id == refused else ""
        except Exception as e:  # any failure degrades to uncompressed frames
            fetched, reason = None, f"{type(e).__name__}: {e}"
        if fetched is not None and not reason:
            self._dictionary, self._dctx = fetched, fetched.decompressor()
            notices.append((host, f"zstd dictionary {refused} retired ({text}); now {fetched.id}"))
            return
        self._dictionary = self._dctx = None
        notices.append(
            (
                host,
                f"zstd dictionary {refused} refused ({text}) and no usable current one "
                f"({reason}); receiving uncompressed frames",
            )
        )

    # -- frames to events -----------------------------------------------------------------

    def _batch(self, frames: Sequence[bytes], conn: _Connection) -> tuple[Batch, Exception | None]:
        """The batch of ``frames``, and the error frame that ended the stream (v2), if any."""
        results: list[Parsed | Problem] = []
        error: Exception | None = None
        newest = -1
        v1 = self.version == 1
        for raw in frames:
            conn.frames += 1
            where = f"{conn.host}:+{conn.frames}"
            try:
                obj = self._decode(raw)
            except _Undecodable as e:
                results.append(Problem(where, str(e)))
                continue
            if v1:
                if type(obj) is dict:
                    t = obj.get("time_us")
                    if type(t) is int and t > newest:
                        newest = t
                results.extend(self._messages.value(obj, where))
                continue
            if type(obj) is not dict:
                results.append(Problem(where, "expected a JSON object frame"))
                continue
            frame_type = obj.get("$type")
            if frame_type == "error":
                error = _error_frame(obj, conn.host)
                break
            payload = obj.get("payload")
            if frame_type != "message" or type(payload) is not dict:
                results.append(Problem(where, f"not a message frame ($type {frame_type!r})"))
                continue
            kind = _v2_kind(payload.get("$type"))
            if kind == "info":
                name, message = payload.get("name"), payload.get("message", "")
                results.append(Problem(where, f"server notice {name}: {message}"))
                continue
            seq = payload.get("seq")
            if type(seq) is not int:
                if kind in _KINDS:
                    results.append(Problem(where, f"#{kind} message without an integer seq"))
                continue  # an unknown variant of the open union: skipped, as the lexicon allows
            conn.last = max(conn.last, seq)
            time_us = _micros(payload.get("time"))
            if time_us is not None and time_us > newest:
                newest = time_us
            event = as_v1(payload, time_us)
            if event is not None:
                results.extend(self._messages.value(event, where))
        if v1 and newest > conn.last:
            conn.last = newest
        cursor = str(conn.last) if conn.last >= 0 else None
        source_time = _EPOCH + newest * _US if newest >= 0 else None
        return Batch.of(results, cursor=cursor, source_time=source_time), error

    def _decode(self, raw: bytes) -> Any:
        if raw.startswith(_ZSTD_MAGIC):
            raw = self._inflate(raw)
        if len(raw) > MAX_LINE_BYTES:
            raise _Undecodable(f"message is longer than {MAX_LINE_BYTES} bytes")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as bad:
                raise _Undecodable(f"invalid UTF-8 at byte {bad.start}") from None
            raise _Undecodable(f"malformed JSON: {e}") from None

    def _inflate(self, raw: bytes) -> bytes:
        if self._dctx is None:
            raise _Undecodable("a zstd frame on an uncompressed subscription")
        try:
            size = zstandard.frame_content_size(raw)
            if size > MAX_LINE_BYTES:
                raise _Undecodable(f"message decompresses to {size} bytes")
            if size >= 0:
                return self._dctx.decompress(raw)
            with self._dctx.stream_reader(raw) as reader:  # no size in the frame header
                out = reader.read(MAX_LINE_BYTES + 1)
        except zstandard.ZstdError as e:
            raise _Undecodable(f"does not decompress with the dictionary: {e}") from None
        if len(out) > MAX_LINE_BYTES:
            raise _Undecodable(f"message decompresses to more than {MAX_LINE_BYTES} bytes")
        return bytes(out)


async def _received(ws: ClientConnection, host: str) -> AsyncIterator[list[bytes]]:
    """The frames received since the last step, up to :data:`_BATCH_FRAMES` (a reader task
    keeps receiving while they are parsed); :class:`Retry` once the connection ended and every
    frame before that was handed out."""
    buffer: list[bytes] = []
    ready = asyncio.Event()
    room = asyncio.Event()
    room.set()

    async def pump() -> None:
        while True:
            data = await ws.recv(decode=False)
            buffer.append(data if isinstance(data, bytes) else data.encode())
            ready.set()
            if len(buffer) >= _BATCH_FRAMES:
                room.clear()
                await room.wait()

    reader = asyncio.create_task(pump(), name=f"jetstream reader {host}")
    try:
        while True:
            if buffer:
                taken = buffer[:]
                buffer.clear()
                ready.clear()
                room.set()
                yield taken
            elif reader.done():
                _ended(reader, host)
            else:
                waiter = asyncio.ensure_future(ready.wait())
                try:
                    await asyncio.wait((waiter, reader), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
    finally:
        reader.cancel()
        with contextlib.suppress(BaseException):
            await reader


def as_v1(payload: Mapping[str, Any], time_us: int | None) -> dict[str, Any] | None:
    """A v2 message payload in the v1 wire shape the ``jetstream`` format reads; None for the
    kinds that carry nothing to store (``#sync``, ``#info``, unknown variants)."""
    kind = _v2_kind(payload.get("$type"))
    if kind == "commit":
        fields = ("rev", "operation", "collection", "rkey", "record", "cid")
        body: dict[str, Any] = {"did": payload.get("did"), "kind": "commit"}
        body["commit"] = {k: payload[k] for k in fields if k in payload}
    elif kind in ("identity", "account"):
        body = {"did": payload.get("did"), "kind": kind, kind: payload.get(kind)}
    else:
        return None
    if time_us is not None:
        body["time_us"] = time_us
    return body


def _v2_kind(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith(V2_TYPE):
        return value[len(V2_TYPE) :]
    return None


def _micros(value: Any) -> int | None:
    """Unix microseconds of an RFC 3339 time, exactly (no float rounding)."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _US


def _with_scheme(url: str) -> str:
    return url if "://" in url else f"wss://{url}"


def _endpoint(url: str, path: str, key: str) -> str:
    """``url`` with a scheme and the version's path (added when it has none)."""
    parts = urlsplit(_with_scheme(url))
    if parts.scheme not in ("ws", "wss"):
        raise ConfigError(f"source {key}: endpoint {url!r} must be a ws:// or wss:// URL")
    if not parts.netloc:
        raise ConfigError(f"source {key}: endpoint {url!r} has no host")
    given = parts.path.rstrip("/")
    if given and given != path:
        raise ConfigError(f"source {key}: endpoint path {given!r} is not this version's {path!r}")
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _names(raw: str | None, default: Iterable[str]) -> tuple[str, ...]:
    if raw is None:
        return tuple(default)
    return tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))


def _check_filters(collections: Sequence[str], dids: Sequence[str], key: str) -> None:
    if len(collections) > _MAX_COLLECTIONS:
        raise ConfigError(
            f"source {key}: at most {_MAX_COLLECTIONS} collections, got {len(collections)}"
        )
    if len(dids) > _MAX_DIDS:
        raise ConfigError(f"source {key}: at most {_MAX_DIDS} DIDs, got {len(dids)}")
    for did in dids:
        if not did.startswith("did:"):
            raise ConfigError(f"source {key}: {did!r} is not a DID (did:plc:... or did:web:...)")


def _byte_count(raw: str | None, key: str) -> int:
    if raw is None or raw == "":
        return MAX_LINE_BYTES
    if not raw.isdigit() or int(raw) > 0xFFFFFFFF:
        raise ConfigError(f"source {key}: max_message_bytes must be a byte count, got {raw!r}")
    return int(raw)


def _refusal(e: InvalidStatus) -> tuple[str, str]:
    """The error name of a refusal (v2's XRPC envelope; empty for v1's plain text) and its
    message."""
    body = e.response.body or b""
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError:
        envelope = None
    if isinstance(envelope, dict) and isinstance(envelope.get("error"), str):
        return envelope["error"], str(envelope.get("message") or "")
    return "", body.decode("utf-8", "replace").strip()[:300]


def _past_floor(
    position: int | None, text: str, host: str, notices: list[tuple[str, str]]
) -> int | None:
    """Where to resume after CursorTooOld: the floor seq its message names (else the tip)."""
    found = _FLOOR.search(text)
    if found is None:
        notices.append(
            (
                host,
                f"cursor {position} is older than the server keeps ({text}); "
                "resumed at the live tip, the events since then are missed",
            )
        )
        return None
    floor = int(found.group(1))
    notices.append(
        (
            host,
            f"cursor {position} is older than the server keeps: seq {position}..{floor - 1} "
            f"missed, resumed at its oldest event (seq {floor})",
        )
    )
    return floor


def _ended(reader: asyncio.Task[None], host: str) -> NoReturn:
    error = reader.exception()
    if isinstance(error, ConnectionClosed):
        frame = error.rcvd
        how = "no close frame" if frame is None else f"code {frame.code}"
        if frame is not None and frame.reason:
            how += f": {frame.reason}"
        raise Retry(f"{host}: connection closed ({how})") from None
    raise error or Retry(f"{host}: connection ended")


def _error_frame(frame: Mapping[str, Any], host: str) -> Retry:
    name, message = frame.get("error"), frame.get("message", "")
    if name == "ConsumerTooSlow":
        return Retry(f"{host}: ConsumerTooSlow: {message}; resuming from the stored cursor")
    return Retry(f"{host}: {name}: {message}")


async def _fetch_dictionary(endpoint: str) -> Dictionary:
    """The server's current v2 dictionary, from ``getZstdDictionary`` on the same host."""
    import httpx

    parts = urlsplit(endpoint)
    scheme = "https" if parts.scheme == "wss" else "http"
    url = urlunsplit((scheme, parts.netloc, DICTIONARY_PATH, "", ""))
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(url)
    response.raise_for_status()
    return Dictionary.of(response.content)
