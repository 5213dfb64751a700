"""A Jetstream server on 127.0.0.1 replaying the real recorded events, v1 and v2, with faults.

It follows the reference server (github.com/bluesky-social/jetstream, ``internal/subscribe``):

- ``/subscribe`` (v1): repeated ``wantedCollections`` (checked like NSIDs, ``prefix.*``
  allowed; they filter commits only) and ``wantedDids``, ``maxMessageSizeBytes`` (events whose
  JSON is bigger are skipped), ``cursor`` in Unix microseconds (the replay starts at the first
  event of the log seen at or after that instant, then follows the log's order, as the
  reference server translates a timestamp to a seq), ``compress=true`` (binary frames, zstd
  with Jetstream's v1 dictionary), ``requireHello`` and subscriber ``options_update`` messages
  (which replace the filters). Refusals are plain-text 400s.
- ``/xrpc/network.bsky.jetstream.subscribeEvents`` (v2): the same events as ``$type`` message
  frames (``seq`` = position in the log, 1-based; ``time`` from ``time_us``, as ``encoder.go``
  renders both wires from one stored event), ``kinds`` / ``dids`` / ``collections``, an
  inclusive seq ``cursor``, ``zstdDictionary=<id>`` and XRPC JSON refusals: ``CursorTooOld``
  below :attr:`Faults.floor`, ``UnknownZstdDictionary``, ``InvalidRequest`` (v1 names, unknown
  kinds). ``/xrpc/network.bsky.jetstream.getZstdDictionary`` serves the current dictionary.

Without a cursor a connection starts at the oldest event held (the real server starts at the
live tip; starting at the oldest makes a first connection receive the recording). After the
log a connection waits at the tip for :meth:`FakeJetstream.append`. Everything is sent as fast
as the client reads, so the same server serves throughput measurements.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import zstandard
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

V1_PATH = "/subscribe"
V2_PATH = "/xrpc/network.bsky.jetstream.subscribeEvents"
DICTIONARY_PATH = "/xrpc/network.bsky.jetstream.getZstdDictionary"
V2_TYPE = "network.bsky.jetstream.subscribeEvents#"
_NSID = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]*(\.[a-zA-Z0-9-]+){2,}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def dictionary_bytes(fixtures_dir: Path, name: str) -> bytes:
    """``legacy_subscribe`` (v1) or ``subscribe_events_20260811`` (v2), from the fixtures."""
    return (fixtures_dir / "bluesky_jetstream" / "dictionaries" / f"{name}.zdict").read_bytes()


def recorded_lines(fixtures_dir: Path) -> list[bytes]:
    """The real v1 wire events, verbatim and in wire order: the ten golden events (one per
    kind, May 2026) then the 152-event window of July 2026."""
    folder = fixtures_dir / "bluesky_jetstream"
    out: list[bytes] = []
    for name in ("golden_v1.jsonl", "expected_v1.jsonl"):
        out += [line for line in (folder / name).read_bytes().splitlines() if line.strip()]
    return out


def wire_time(time_us: int) -> str:
    """``time_us`` as the v2 wire writes it: RFC 3339, UTC, six fractional digits."""
    return (_EPOCH + timedelta(microseconds=time_us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def v2_frame(event: dict[str, Any], seq: int) -> bytes:
    """The v2 message frame of one v1 event (``encoder.go``: ``EncodeV2`` beside ``Encode``)."""
    kind = event["kind"]
    payload: dict[str, Any] = {
        "$type": V2_TYPE + kind,
        "seq": seq,
        "did": event["did"],
        "time": wire_time(event["time_us"]),
    }
    if kind == "commit":
        payload.update(event["commit"])
    else:
        payload[kind] = event[kind]
    return orjson.dumps({"$type": "message", "payload": payload})


@dataclass
class Refusal:
    """One scripted handshake refusal."""

    status: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Faults:
    """What goes wrong, switched per test. Counters are used up as they fire."""

    refuse: list[Refusal] = field(default_factory=list)
    """Refuse the next handshakes, one each, in order."""
    drop_after: int | None = None
    """Cut the TCP connection (no close frame) after sending this many events (once)."""
    silent: int = 0
    """Accept this many next connections and send nothing on them."""
    garbage: dict[int, bytes | str] = field(default_factory=dict)
    """Before the event at this log index, send this frame too (bytes: binary; once each)."""
    too_slow_after: int | None = None
    """v2: after this many events send a ``ConsumerTooSlow`` error frame and close (once)."""
    floor: int = 1
    """v2: the oldest seq kept; an older seq cursor is refused with ``CursorTooOld``."""
    dictionary_fetch_status: int = 200
    """What ``getZstdDictionary`` answers (200: the current dictionary)."""


@dataclass
class Connection:
    """One accepted subscription, as the server saw it."""

    path: str
    query: dict[str, list[str]]
    sent: list[int] = field(default_factory=list)
    """Log indexes of the events sent, in order."""

    def cursor(self) -> int | None:
        return int(self.query["cursor"][0]) if "cursor" in self.query else None


@dataclass
class _Filter:
    collections: set[str]
    dids: set[str]
    max_bytes: int
    kinds: set[str] = field(default_factory=set)

    def wants(self, event: dict[str, Any], size: int) -> bool:
        if self.kinds and event["kind"] not in self.kinds:
            return False
        if self.dids and event.get("did") not in self.dids:
            return False
        if self.max_bytes and size > self.max_bytes:
            return False
        if event["kind"] != "commit" or not self.collections:
            return True
        collection = str(event["commit"].get("collection", ""))
        return any(
            collection == w or (w.endswith(".*") and collection.startswith(w[:-1]))
            for w in self.collections
        )


class FakeJetstream:
    """The server; run it with :func:`running`. ``requests`` logs every handshake (refused
    ones too) as ``(path, query)``; ``connections`` the accepted ones; ``updates`` the
    subscriber messages received."""

    def __init__(self, lines: Sequence[bytes], fixtures_dir: Path) -> None:
        self.lines: list[bytes] = list(lines)
        self.events: list[dict[str, Any]] = [orjson.loads(line) for line in self.lines]
        self.faults = Faults()
        self.port = 0
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self.connections: list[Connection] = []
        self.updates: list[dict[str, Any]] = []
        v1 = zstandard.ZstdCompressionDict(dictionary_bytes(fixtures_dir, "legacy_subscribe"))
        self._v1 = zstandard.ZstdCompressor(dict_data=v1)
        self.v2_dictionary = dictionary_bytes(fixtures_dir, "subscribe_events_20260811")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._grew: asyncio.Condition | None = None
        self._open: set[ServerConnection] = set()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{V1_PATH}"

    @property
    def url_v2(self) -> str:
        return f"ws://127.0.0.1:{self.port}{V2_PATH}"

    @property
    def v2_dictionary_id(self) -> int:
        return int(zstandard.ZstdCompressionDict(self.v2_dictionary).dict_id())

    def append(self, lines: Sequence[bytes]) -> None:
        """More events at the tip (from any thread): connections waiting there send them."""
        assert self._loop is not None
        done = threading.Event()

        async def grow() -> None:
            assert self._grew is not None
            self.lines += lines
            self.events += [orjson.loads(line) for line in lines]
            async with self._grew:
                self._grew.notify_all()
            done.set()

        asyncio.run_coroutine_threadsafe(grow(), self._loop)
        assert done.wait(10)

    def drop_all(self) -> None:
        """Cut every open connection (no close frame), from any thread."""
        assert self._loop is not None

        def cut() -> None:
            for ws in self._open:
                if ws.transport is not None:
                    ws.transport.abort()

        self._loop.call_soon_threadsafe(cut)

    # -- handshake ------------------------------------------------------------------------

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        self.requests.append((parts.path, query))
        v2 = parts.path == V2_PATH
        if parts.path == DICTIONARY_PATH:
            return self._dictionary_response(conn)
        if self.faults.refuse:
            refusal = self.faults.refuse.pop(0)
            response = conn.respond(HTTPStatus(refusal.status), refusal.body)
            for k, v in refusal.headers.items():
                response.headers[k] = v
            return response
        if parts.path not in (V1_PATH, V2_PATH):
            return conn.respond(HTTPStatus.NOT_FOUND, "404 page not found\n")
        problem = self._check_v2(query) if v2 else self._check_v1(query)
        if problem is None:
            return None
        name, message = problem
        if not v2:
            return conn.respond(HTTPStatus.BAD_REQUEST, message + "\n")
        response = conn.respond(
            HTTPStatus.BAD_REQUEST, orjson.dumps({"error": name, "message": message}).decode()
        )
        response.headers["Content-Type"] = "application/json"
        return response

    def _check_v1(self, query: dict[str, list[str]]) -> tuple[str, str] | None:
        for c in query.get("wantedCollections", []):
            if not (c.endswith(".*") or _NSID.match(c)):
                return "", f"subscribe: invalid options: invalid collection: {c}"
        return None

    def _check_v2(self, query: dict[str, list[str]]) -> tuple[str, str] | None:
        for legacy, new in (("wantedCollections", "collections"), ("wantedDids", "dids")):
            if legacy in query:
                return "InvalidRequest", f"{legacy} is the legacy /subscribe parameter; use {new}"
        for kind in query.get("kinds", []):
            if kind not in ("commit", "identity", "account", "sync"):
                return "InvalidRequest", f"subscribe: invalid options: unknown kind {kind!r}"
        if "compress" in query:
            return "InvalidRequest", "compress=true is the /subscribe (v1) opt-in"
        if "zstdDictionary" in query and int(query["zstdDictionary"][0]) != self.v2_dictionary_id:
            wanted = query["zstdDictionary"][0]
            return "UnknownZstdDictionary", (
                f"unknown zstd dictionary id {wanted}; current dictionary id is "
                f"{self.v2_dictionary_id} (fetch it via getZstdDictionary and reconnect)"
            )
        cursor = int(query["cursor"][0]) if "cursor" in query else None
        if cursor is not None and cursor < 10**15 and cursor < self.faults.floor:
            return "CursorTooOld", (
                f"subscribe: cursor too old: cursor {cursor} below lookback floor "
                f"{self.faults.floor}; re-backfill from your last seq"
            )
        return None

    def _dictionary_response(self, conn: ServerConnection) -> Response:
        status = self.faults.dictionary_fetch_status
        if status != 200:
            return conn.respond(HTTPStatus(status), "unavailable\n")
        headers = Headers({"Content-Type": "application/octet-stream"})
        headers["Content-Length"] = str(len(self.v2_dictionary))
        return Response(200, "OK", headers, self.v2_dictionary)

    # -- one subscription -----------------------------------------------------------------

    async def _handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        parts = urlsplit(ws.request.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        conn = Connection(parts.path, query)
        self.connections.append(conn)
        v2 = parts.path == V2_PATH
        flt = _Filter(
            set(query.get("collections" if v2 else "wantedCollections", [])),
            set(query.get("dids" if v2 else "wantedDids", [])),
            int(query.get("maxMessageSizeBytes", ["0"])[0] or 0),
            set(query.get("kinds", [])) if v2 else set(),
        )
        if v2:  # without the content size in the frame header, as a streaming encoder may
            v2_dict = zstandard.ZstdCompressionDict(self.v2_dictionary)
            compressor = (
                zstandard.ZstdCompressor(dict_data=v2_dict, write_content_size=False)
                if "zstdDictionary" in query
                else None
            )
        else:
            compressor = self._v1 if query.get("compress") == ["true"] else None
        hello = asyncio.Event()
        if query.get("requireHello") != ["true"] or v2:
            hello.set()
        listener = asyncio.create_task(self._listen(ws, flt, hello, v2))
        self._open.add(ws)
        try:
            if self.faults.silent:
                self.faults.silent -= 1
                await ws.wait_closed()
                return
            if not await _unless_closed(ws, hello.wait()):
                return
            await self._send_from(ws, conn, self._start(conn.cursor(), v2), flt, compressor, v2)
        finally:
            self._open.discard(ws)
            listener.cancel()

    def _start(self, cursor: int | None, v2: bool) -> int:
        """The log index the replay starts at."""
        if cursor is None:
            return max(0, self.faults.floor - 1) if v2 else 0
        if v2 and cursor < 10**15:
            return max(0, cursor - 1)
        for i, event in enumerate(self.events):
            if event["time_us"] >= cursor:
                return i
        return len(self.events)  # in the future: the live tip

    async def _send_from(
        self,
        ws: ServerConnection,
        conn: Connection,
        i: int,
        flt: _Filter,
        compressor: zstandard.ZstdCompressor | None,
        v2: bool,
    ) -> None:
        assert self._grew is not None
        faults = self.faults
        while True:
            while i < len(self.lines):
                if i in faults.garbage:
                    await ws.send(faults.garbage.pop(i))
                frame = v2_frame(self.events[i], i + 1) if v2 else self.lines[i]
                if not flt.wants(self.events[i], len(frame)):
                    i += 1
                    continue
                if faults.drop_after is not None and len(conn.sent) >= faults.drop_after:
                    faults.drop_after = None
                    assert ws.transport is not None
                    ws.transport.abort()
                    return
                slow = faults.too_slow_after
                if v2 and slow is not None and len(conn.sent) >= slow:
                    faults.too_slow_after = None
                    await ws.send(
                        orjson.dumps(
                            {
                                "$type": "error",
                                "error": "ConsumerTooSlow",
                                "message": f"reading below the floor rate 5000 events "
                                f"behind the tip; reconnect with cursor={i + 1}",
                            }
                        ).decode()
                    )
                    await ws.close()
                    return
                if compressor is not None:
                    await ws.send(compressor.compress(frame))
                else:
                    await ws.send(frame.decode())
                conn.sent.append(i)
                i += 1
                await asyncio.sleep(0)  # let subscriber messages in between events
            if not await _unless_closed(ws, self._grown_past(i)):
                return

    async def _grown_past(self, i: int) -> None:
        assert self._grew is not None
        async with self._grew:
            await self._grew.wait_for(lambda: i < len(self.lines))

    async def _listen(
        self, ws: ServerConnection, flt: _Filter, hello: asyncio.Event, v2: bool
    ) -> None:
        async for message in ws:
            if v2:  # server-push only: any client data frame closes the connection
                await ws.close(1008, "subscribeEvents is server-push only")
                return
            update = orjson.loads(message)
            self.updates.append(update)
            if update.get("type") == "options_update":
                payload = update.get("payload") or {}
                flt.collections = set(payload.get("wantedCollections") or [])
                flt.dids = set(payload.get("wantedDids") or [])
                flt.max_bytes = int(payload.get("maxMessageSizeBytes") or 0)
                hello.set()


async def _unless_closed(ws: ServerConnection, wait: Coroutine[Any, Any, Any]) -> bool:
    """Await ``wait`` unless the connection closes first (then False)."""
    waiting = asyncio.ensure_future(wait)
    closed = asyncio.ensure_future(ws.wait_closed())
    await asyncio.wait((waiting, closed), return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    closed.cancel()
    return not closed.done() or waiting.done()


@contextmanager
def running(server: FakeJetstream) -> Iterator[FakeJetstream]:
    """Serve on a free port in a thread of its own until the block ends."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop: asyncio.Future[None] | None = None

    async def main() -> None:
        nonlocal stop
        stop = loop.create_future()
        server._loop, server._grew = loop, asyncio.Condition()
        async with serve(
            server._handler,
            "127.0.0.1",
            0,
            process_request=server._process_request,
            select_subprotocol=lambda _conn, offered: next(
                (p for p in offered if p == "xrpc.v1.json"), None
            ),
            compression="deflate",
            max_size=None,
        ) as s:
            server.port = s.sockets[0].getsockname()[1]
            ready.set()
            await stop

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10), "the fake Jetstream did not start"
    try:
        yield server
    finally:
        assert stop is not None
        loop.call_soon_threadsafe(stop.set_result, None)
        thread.join(10)
        loop.close()
