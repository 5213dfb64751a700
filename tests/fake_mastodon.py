"""A Mastodon instance on 127.0.0.1 that speaks the real REST and SSE streaming protocol:
``/api/v2/instance`` (pointing the streaming URL at itself), timelines honouring ``since_id``
and ``limit``, SSE streams with ``:thump`` heartbeats, bearer-token checks, and switches for
the faults a connector must survive. It replays recorded Status entities; the test decides
when each is published."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from source_harness import free_port


def load_statuses(path: Path) -> list[dict[str, Any]]:
    """The Status entities of a recorded cassette (a timeline or one status)."""
    body = json.loads(path.read_text())["body"]
    body = json.loads(body) if isinstance(body, str) else body
    return body if isinstance(body, list) else [body]


@dataclass
class _Subscriber:
    stream: str
    tag: str
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)


class FakeMastodon:
    """State and fault switches; every request is recorded as ``(path, query)``."""

    def __init__(self, token: str = "t", heartbeat: float = 0.2) -> None:
        self.token = token
        self.heartbeat = heartbeat
        self.timeline: list[dict[str, Any]] = []
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.fail_next: list[tuple[int, dict[str, str]]] = []
        """Statuses (and headers) answered to the next streaming requests, one each."""
        self.silent = False
        """Streams send nothing at all, not even heartbeats."""
        self.gate = threading.Event()
        """Cleared: new stream requests wait (before any byte) until it is set again."""
        self.gate.set()
        self._subs: list[_Subscriber] = []
        self._lock = threading.Lock()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    # what the test does
    def publish(self, status: dict[str, Any]) -> None:
        """Add a status to the timelines and send it to the streams it matches."""
        with self._lock:
            self.timeline.append(status)
        tags = {t["name"].lower() for t in status.get("tags", [])}
        frame = _sse("update", json.dumps(status))
        self._send(frame, lambda s: s.stream != "hashtag" or s.tag in tags)

    def delete(self, status_id: str) -> None:
        with self._lock:
            self.timeline = [s for s in self.timeline if s["id"] != status_id]
        self._send(_sse("delete", status_id), lambda s: True)

    def edit(self, status: dict[str, Any]) -> None:
        with self._lock:
            self.timeline = [status if s["id"] == status["id"] else s for s in self.timeline]
        self._send(_sse("status.update", json.dumps(status)), lambda s: True)

    def send_raw(self, event: str, data: str) -> None:
        """An arbitrary SSE event on every stream (garbage, for instance)."""
        self._send(_sse(event, data), lambda s: True)

    def drop(self) -> None:
        """End every open stream now (a dropped connection)."""
        with self._lock:
            subs, self._subs = self._subs, []
        for s in subs:
            s.loop.call_soon_threadsafe(s.queue.put_nowait, None)

    def connected(self) -> int:
        with self._lock:
            return len(self._subs)

    def stream_requests(self) -> list[tuple[str, dict[str, str]]]:
        return [r for r in self.requests if "/streaming/" in r[0]]

    def timeline_requests(self) -> list[tuple[str, dict[str, str]]]:
        return [r for r in self.requests if "/timelines/" in r[0]]

    def _send(self, frame: bytes, match: Any) -> None:
        with self._lock:
            subs = [s for s in self._subs if match(s)]
        for s in subs:
            s.loop.call_soon_threadsafe(s.queue.put_nowait, frame)

    # the server
    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.token}"

    async def _instance(self, request: Request) -> Response:
        self.requests.append((request.url.path, dict(request.query_params)))
        ws = self.url.replace("http://", "ws://")
        return JSONResponse({"domain": "127.0.0.1", "configuration": {"urls": {"streaming": ws}}})

    async def _timeline(self, request: Request) -> Response:
        q = dict(request.query_params)
        self.requests.append((request.url.path, q))
        if not self._authorized(request):
            return JSONResponse({"error": "The access token is invalid"}, status_code=401)
        tag = request.path_params.get("tag")
        since = int(q.get("since_id", "0"))
        limit = int(q.get("limit", "20"))
        with self._lock:
            found = [
                s
                for s in self.timeline
                if int(s["id"]) > since
                and (tag is None or tag in {t["name"].lower() for t in s.get("tags", [])})
            ]
        found.sort(key=lambda s: int(s["id"]), reverse=True)
        return JSONResponse(found[:limit])

    async def _stream(self, request: Request) -> Response:
        q = dict(request.query_params)
        self.requests.append((request.url.path, q))
        while not self.gate.is_set():
            await asyncio.sleep(0.01)
        if self.fail_next:
            code, headers = self.fail_next.pop(0)
            return JSONResponse({"error": f"fake failure {code}"}, code, headers=headers)
        if not self._authorized(request):
            return JSONResponse({"error": "Error: Missing access token"}, status_code=401)
        name = request.url.path.removeprefix("/api/v1/streaming/")
        sub = _Subscriber(name, q.get("tag", "").lower(), asyncio.get_running_loop())
        with self._lock:
            self._subs.append(sub)
        return StreamingResponse(self._events(sub), media_type="text/event-stream")

    async def _events(self, sub: _Subscriber) -> AsyncIterator[bytes]:
        try:
            while True:
                try:
                    frame = await asyncio.wait_for(sub.queue.get(), self.heartbeat)
                except TimeoutError:
                    if not self.silent:
                        yield b":thump\n\n"
                    continue
                if frame is None:
                    return
                yield frame
        finally:
            with self._lock:
                if sub in self._subs:
                    self._subs.remove(sub)

    def app(self) -> Starlette:
        streams = ["public", "public/local", "hashtag", "list", "user"]
        return Starlette(
            routes=[
                Route("/api/v2/instance", self._instance),
                Route("/api/v1/timelines/public", self._timeline),
                Route("/api/v1/timelines/home", self._timeline),
                Route("/api/v1/timelines/tag/{tag}", self._timeline),
                Route("/api/v1/timelines/list/{list}", self._timeline),
                *(Route(f"/api/v1/streaming/{s}", self._stream) for s in streams),
            ]
        )


def _sse(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()


@contextmanager
def running(server: FakeMastodon) -> Iterator[FakeMastodon]:
    """Serve ``server`` in a thread until the block ends."""
    config = uvicorn.Config(
        server.app(), host="127.0.0.1", port=server.port, log_level="warning", lifespan="off"
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("fake Mastodon server did not start")
        time.sleep(0.01)
    try:
        yield server
    finally:
        server.drop()
        uv.should_exit = True
        thread.join(timeout=10)
