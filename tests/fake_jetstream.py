"""A Jetstream v1 server on 127.0.0.1 replaying real recorded events, with fault knobs.

It speaks what the public instances speak: ``/subscribe`` with ``wantedCollections``,
``wantedDids``, ``cursor`` (replay events with ``time_us >= cursor``), ``compress=true`` (binary
frames, zstd with Jetstream's published dictionary) and subscriber ``options_update`` messages.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import zstandard
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response


@dataclass
class Knobs:
    drop_after: int | None = None
    """Close the connection after sending this many events (once)."""
    silent_after: int | None = None
    """Stop sending (but keep the connection open) after this many events (once)."""
    garbage_at: int | None = None
    """Send a frame that is not JSON before event number N (once)."""
    reject: int | None = None
    """Refuse the handshake with this HTTP status (every time)."""


@dataclass
class FakeJetstream:
    events: list[dict[str, Any]]
    port: int = 0
    knobs: Knobs = field(default_factory=Knobs)
    requests: list[dict[str, list[str]]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    connections: list[ServerConnection] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/subscribe"

    def _reject(self, conn: ServerConnection, request: Request) -> Response | None:
        if self.knobs.reject is not None:
            status = HTTPStatus(self.knobs.reject)
            return conn.respond(status, f"{status.phrase}\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        query = parse_qs(urlsplit(ws.request.path).query)
        self.requests.append(query)
        self.connections.append(ws)
        wanted = set(query.get("wantedCollections", []))
        dids = set(query.get("wantedDids", []))
        cursor = int(query["cursor"][0]) if "cursor" in query else None
        compress = query.get("compress") == ["true"]
        cctx = zstandard.ZstdCompressor(dict_data=zstandard.ZstdCompressionDict(DICTIONARY))
        filters = {"wanted": wanted, "dids": dids}

        async def listen() -> None:
            async for message in ws:
                update = orjson.loads(message)
                self.updates.append(update)
                if update.get("type") == "options_update":
                    filters["wanted"] = set(update["payload"].get("wantedCollections") or [])
                    filters["dids"] = set(update["payload"].get("wantedDids") or [])

        listener = asyncio.create_task(listen())
        sent = 0
        try:
            for event in self.events:
                if cursor is not None and event["time_us"] < cursor:
                    continue
                if not _matches(event, filters["wanted"], filters["dids"]):
                    continue
                k = self.knobs
                if k.garbage_at is not None and sent == k.garbage_at:
                    k.garbage_at = None
                    await ws.send(cctx.compress(b"{not json") if compress else "{not json")
                if k.drop_after is not None and sent == k.drop_after:
                    k.drop_after = None
                    await ws.close()
                    return
                if k.silent_after is not None and sent == k.silent_after:
                    k.silent_after = None
                    await ws.wait_closed()  # silent until the client gives up
                    return
                data = orjson.dumps(event)
                await ws.send(cctx.compress(data) if compress else data.decode())
                sent += 1
                await asyncio.sleep(0)  # let options_update in between events
            await ws.wait_closed()
        finally:
            listener.cancel()


def _matches(event: dict[str, Any], wanted: set[str], dids: set[str]) -> bool:
    if dids and event.get("did") not in dids:
        return False
    if event.get("kind") != "commit" or not wanted:
        return True
    collection = str(event["commit"].get("collection", ""))
    return any(
        collection == w or (w.endswith(".*") and collection.startswith(w[:-1])) for w in wanted
    )


DICTIONARY = b""


def recorded_events(fixtures_dir: Path) -> list[dict[str, Any]]:
    """The real v1 events of the fixture window, in ``time_us`` order."""
    global DICTIONARY
    folder = fixtures_dir / "bluesky_jetstream"
    DICTIONARY = (folder / "dictionaries" / "legacy_subscribe.zdict").read_bytes()
    lines = (folder / "expected_v1.jsonl").read_bytes().splitlines()
    events = [orjson.loads(line) for line in lines if line.strip()]
    return sorted(events, key=lambda e: e["time_us"])


@contextmanager
def running(server: FakeJetstream) -> Iterator[FakeJetstream]:
    """Serve on a free port in a thread of its own until the block ends."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop: asyncio.Future[None] | None = None

    async def main() -> None:
        nonlocal stop
        stop = loop.create_future()
        async with serve(
            server._handler,
            "127.0.0.1",
            server.port,
            process_request=server._reject,
            compression=None,
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
