"""A Mastodon instance on 127.0.0.1 replaying recorded Statuses over the real REST and streaming
protocols, with the faults a connector must survive.

Three listeners, as a real deployment splits them:

- the **REST** server (``url``): ``/api/v2/instance`` (whose ``configuration.urls.streaming``
  points at the streaming host, or ``/api/v1/instance`` ``urls.streaming_api`` when v2 is
  switched off), and the timelines ``public`` (``local`` / ``remote`` / ``only_media``),
  ``tag/:tag`` (``local``), ``list/:id`` and ``home``, honouring ``limit`` (at most 40),
  ``max_id``, ``since_id`` and ``min_id`` as Mastodon pages them;
- the **streaming** server, as ``streaming/index.js`` serves it: SSE on
  ``/api/v1/streaming/{public,public/local,public/remote,hashtag,hashtag/local,list,user}``
  (``:)`` on connect, ``:thump`` heartbeats, ``event:`` / ``data:`` frames, JSON errors) and the
  WebSocket ``/api/v1/streaming`` (``subscribe`` messages, ``{"stream", "event", "payload"}``
  frames with the payload as a JSON string, ``{"error", "status"}`` for refused subscriptions,
  handshake refusals with ``X-Error-Message``). The token is taken as the reference server
  takes it: the ``Authorization`` header, else ``access_token``, else
  ``Sec-WebSocket-Protocol``;
- a TCP **relay** in front of the streaming server (the advertised streaming URL), where the
  network faults happen: :meth:`Relay.cut` drops every connection, :meth:`Relay.freeze` turns
  the open ones into black holes (nothing passes either way, as when a NAT forgets a mapping).

With ``colocated=True`` the REST server also serves the streaming routes and advertises no
streaming URL (a single-host instance). Local accounts are those whose ``acct`` has no domain.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from firesift.api.server import serve_in_thread
from source_harness import free_port

Status = dict[str, Any]
SSE_STREAMS = {
    "public": "public",
    "public/local": "public:local",
    "public/remote": "public:remote",
    "hashtag": "hashtag",
    "hashtag/local": "hashtag:local",
    "list": "list",
    "user": "user",
}
PUBLIC = {"public", "public:local", "public:remote"}


def load_statuses(path: Path) -> list[Status]:
    """The Status entities of a recorded cassette (a timeline or one status)."""
    body = json.loads(path.read_text())["body"]
    body = json.loads(body) if isinstance(body, str) else body
    return body if isinstance(body, list) else [body]


def is_local(status: Status) -> bool:
    return "@" not in status["account"]["acct"]


@dataclass(frozen=True)
class Seen:
    """One request the fake received: path, query, and how it carried the token."""

    path: str
    query: dict[str, str]
    auth: str  # header | query | protocol | none


@dataclass
class _Conn:
    """An open stream connection: SSE frames or WebSocket texts go through its queue."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)

    def put(self, item: str | None) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)


@dataclass(frozen=True)
class _Sub:
    stream: str
    param: str
    conn: _Conn
    websocket: bool


class Relay:
    """A TCP relay from its own port to ``upstream`` (see the module doc)."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.accepted = 0
        """Connections relayed so far."""
        self._pipes: list[dict[str, Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("relay did not start")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def cut(self) -> None:
        """Drop every open connection (RST, no goodbye)."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._cut)

    def freeze(self) -> None:
        """Black-hole every open connection; later ones pass."""
        for pipe in list(self._pipes):
            pipe["frozen"] = True

    def _cut(self) -> None:
        for pipe in self._pipes:
            for writer in pipe["writers"]:
                writer.transport.abort()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self._ready.set()
        async with server:
            await self._stop.wait()
            self._cut()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.close()
            return
        pipe: dict[str, Any] = {"frozen": False, "writers": (writer, up_writer)}
        self._pipes.append(pipe)
        self.accepted += 1
        try:
            await asyncio.gather(
                self._pump(reader, up_writer, pipe), self._pump(up_reader, writer, pipe)
            )
        finally:
            self._pipes.remove(pipe)

    @staticmethod
    async def _pump(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pipe: dict[str, Any]
    ) -> None:
        try:
            while data := await reader.read(65536):
                if not pipe["frozen"]:
                    writer.write(data)
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


class FakeMastodon:
    """State, fault switches and a record of requests (:attr:`seen`)."""

    def __init__(
        self,
        token: str = "t",
        *,
        heartbeat: float = 0.2,
        v2_instance: bool = True,
        colocated: bool = False,
    ) -> None:
        self.token = token
        self.heartbeat = heartbeat
        self.v2_instance = v2_instance
        self.colocated = colocated
        self.timeline: list[Status] = []
        self.lists = {"1"}
        """List ids the token's account owns."""
        self.seen: list[Seen] = []
        self.subscribed: list[tuple[str, str]] = []
        """WebSocket subscriptions accepted, ``(stream, tag or list)``."""
        self.streams = 0
        """Subscriptions registered so far (SSE connections and WebSocket subscribes)."""
        self.fail_streams: list[tuple[int, dict[str, str]]] = []
        """Statuses (and headers) answered to the next stream requests, one each."""
        self.fail_timelines: list[tuple[int, dict[str, str]]] = []
        self.gate = threading.Event()
        """Cleared: new stream requests wait, before answering, until it is set again."""
        self.gate.set()
        self._subs: list[_Sub] = []
        self._lock = threading.Lock()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stream_port = free_port()
        self.relay = Relay(self.stream_port)
        self.streaming_url = f"ws://127.0.0.1:{self.relay.port}"

    # -- what a test does -------------------------------------------------------------------

    def publish(self, status: Status) -> None:
        """Add a status to the timelines and send it to the streams it belongs to."""
        with self._lock:
            self.timeline.append(status)
        self._send("update", json.dumps(status), lambda s: self._belongs(status, s))

    def edit(self, status: Status) -> None:
        with self._lock:
            self.timeline = [status if s["id"] == status["id"] else s for s in self.timeline]
        self._send("status.update", json.dumps(status), lambda s: self._belongs(status, s))

    def delete(self, status_id: str) -> None:
        with self._lock:
            self.timeline = [s for s in self.timeline if s["id"] != status_id]
        self._send("delete", status_id, lambda s: True)

    def send_raw(self, event: str, payload: str) -> None:
        """An arbitrary event on every stream (a damaged payload, for instance)."""
        self._send(event, payload, lambda s: True)

    def send_frame(self, text: str) -> None:
        """A raw text frame on every WebSocket, or raw text on every SSE body."""
        with self._lock:
            conns = {id(s.conn): s.conn for s in self._subs}.values()
        for conn in conns:
            conn.put(text)

    def end_streams(self) -> None:
        """The server ends every stream itself (SSE body ends, WebSocket closes 1001)."""
        with self._lock:
            subs, self._subs = self._subs, []
        for conn in {id(s.conn): s.conn for s in subs}.values():
            conn.put(None)

    def connected(self) -> int:
        """Open subscriptions (one per SSE connection, one per WebSocket subscribe)."""
        with self._lock:
            return len(self._subs)

    def stream_requests(self) -> list[Seen]:
        return [r for r in self.seen if r.path.startswith("/api/v1/streaming")]

    def timeline_requests(self) -> list[tuple[str, dict[str, str]]]:
        return [(r.path, r.query) for r in self.seen if "/timelines/" in r.path]

    # -- matching and paging ----------------------------------------------------------------

    def _belongs(self, status: Status, sub: _Sub) -> bool:
        media = sub.stream.endswith(":media")
        return self._matches(status, sub.stream.removesuffix(":media"), sub.param, media)

    def _matches(self, status: Status, stream: str, param: str, media: bool) -> bool:
        if media and not status.get("media_attachments"):
            return False
        local = is_local(status)
        tags = {t["name"].lower() for t in status.get("tags", [])}
        return {
            "public": True,
            "public:local": local,
            "public:remote": not local,
            "hashtag": param.lower() in tags,
            "hashtag:local": local and param.lower() in tags,
            "list": param in self.lists,
            "user": True,
        }.get(stream, False)

    @staticmethod
    def _page(statuses: list[Status], q: dict[str, str]) -> list[Status]:
        """Mastodon's id paging: newest first; ``min_id`` takes the ones just above it."""
        limit = min(int(q.get("limit", "20")), 40)
        found = sorted(statuses, key=lambda s: int(s["id"]), reverse=True)
        if "max_id" in q:
            found = [s for s in found if int(s["id"]) < int(q["max_id"])]
        if "since_id" in q:
            found = [s for s in found if int(s["id"]) > int(q["since_id"])]
        if "min_id" in q:
            above = [s for s in reversed(found) if int(s["id"]) > int(q["min_id"])]
            return list(reversed(above[:limit]))
        return found[:limit]

    def _send(self, event: str, payload: str, match: Callable[[_Sub], bool]) -> None:
        with self._lock:
            subs = [s for s in self._subs if match(s)]
        for s in subs:
            if s.websocket:
                stream = [s.stream, s.param] if s.param else [s.stream]
                s.conn.put(json.dumps({"stream": stream, "event": event, "payload": payload}))
            else:
                s.conn.put(f"event: {event}\ndata: {payload}\n\n")

    # -- the servers ------------------------------------------------------------------------

    @staticmethod
    def _token(headers: Any, query: Any) -> tuple[str, str]:
        """How the request carried a token, and the token (``accountFromRequest``)."""
        if "authorization" in headers:
            return "header", headers["authorization"].removeprefix("Bearer ")
        if "access_token" in query:
            return "query", query["access_token"]
        if "sec-websocket-protocol" in headers:
            return "protocol", headers["sec-websocket-protocol"]
        return "none", ""

    def _record(self, path: str, query: Any, headers: Any) -> tuple[str, str]:
        auth, token = self._token(headers, query)
        self.seen.append(Seen(path, dict(query), auth))
        return auth, token

    async def _instance(self, request: Request) -> Response:
        self._record(request.url.path, request.query_params, request.headers)
        if request.url.path == "/api/v2/instance":
            if not self.v2_instance:
                return JSONResponse({"error": "Record not found"}, status_code=404)
            urls = {} if self.colocated else {"streaming": self.streaming_url}
            return JSONResponse({"domain": "127.0.0.1", "configuration": {"urls": urls}})
        urls = {} if self.colocated else {"streaming_api": self.streaming_url}
        return JSONResponse({"uri": "127.0.0.1", "urls": urls})

    async def _timeline(self, request: Request) -> Response:
        q = dict(request.query_params)
        _, token = self._record(request.url.path, q, request.headers)
        if self.fail_timelines:
            code, headers = self.fail_timelines.pop(0)
            return JSONResponse({"error": f"fake failure {code}"}, code, headers=headers)
        if token != self.token:
            return JSONResponse({"error": "The access token is invalid"}, status_code=401)
        path = request.url.path
        params = request.path_params
        if path.startswith("/api/v1/timelines/tag/"):
            stream, param = ("hashtag:local" if q.get("local") else "hashtag"), params["tag"]
        elif path.startswith("/api/v1/timelines/list/"):
            if params["list"] not in self.lists:
                return JSONResponse({"error": "Record not found"}, status_code=404)
            stream, param = "list", params["list"]
        elif path == "/api/v1/timelines/home":
            stream, param = "user", ""
        else:
            where = "local" if q.get("local") else "remote" if q.get("remote") else ""
            stream, param = f"public:{where}".rstrip(":"), ""
        media = q.get("only_media") == "true"
        with self._lock:
            found = [s for s in self.timeline if self._matches(s, stream, param, media)]
        return JSONResponse(self._page(found, q))

    async def _wait_gate(self) -> None:
        while not self.gate.is_set():
            await asyncio.sleep(0.01)

    async def _sse(self, request: Request) -> Response:
        q = dict(request.query_params)
        _, token = self._record(request.url.path, q, request.headers)
        await self._wait_gate()
        if self.fail_streams:
            code, headers = self.fail_streams.pop(0)
            return JSONResponse({"error": f"fake failure {code}"}, code, headers=headers)
        if token != self.token:
            error = "Invalid access token" if token else "Missing access token"
            return JSONResponse({"error": error}, status_code=401)
        stream = SSE_STREAMS[request.url.path.removeprefix("/api/v1/streaming/")]
        if stream in PUBLIC and q.get("only_media") == "true":
            stream += ":media"
        param = q.get("tag") or q.get("list") or ""
        if stream.startswith("hashtag") and not param:
            return JSONResponse({"error": "Missing tag name parameter"}, status_code=400)
        if stream == "list" and param not in self.lists:
            return JSONResponse({"error": "Not authorized to stream this list"}, 401)
        sub = _Sub(stream, param, _Conn(asyncio.get_running_loop()), websocket=False)
        with self._lock:
            self._subs.append(sub)
            self.streams += 1
        return StreamingResponse(self._sse_body(sub), media_type="text/event-stream")

    async def _sse_body(self, sub: _Sub) -> AsyncIterator[bytes]:
        try:
            yield b":)\n"
            while True:
                try:
                    item = await asyncio.wait_for(sub.conn.queue.get(), self.heartbeat)
                except TimeoutError:
                    yield b":thump\n"
                    continue
                if item is None:
                    return
                yield item.encode()
        finally:
            self._drop(sub.conn)

    async def _websocket(self, ws: WebSocket) -> None:
        auth, token = self._record(ws.url.path, ws.query_params, ws.headers)
        await self._wait_gate()
        if self.fail_streams:
            code, headers = self.fail_streams.pop(0)
            await ws.send_denial_response(
                Response(status_code=code, headers={"X-Error-Message": f"fake {code}", **headers})
            )
            return
        if token != self.token:
            error = "Invalid access token" if token else "Missing access token"
            await ws.send_denial_response(
                Response(status_code=401, headers={"X-Error-Message": error})
            )
            return
        await ws.accept(subprotocol=token if auth == "protocol" else None)
        conn = _Conn(asyncio.get_running_loop())
        sender = asyncio.create_task(self._ws_send(ws, conn))
        try:
            async for text in ws.iter_text():
                message = json.loads(text)
                if message.get("type") == "subscribe":
                    await self._subscribe(ws, conn, message)
        except WebSocketDisconnect:
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(BaseException):
                await sender
            self._drop(conn)

    async def _subscribe(self, ws: WebSocket, conn: _Conn, message: dict[str, Any]) -> None:
        stream = message.get("stream")
        param = str(message.get("tag") or message.get("list") or "")
        known = {*PUBLIC, *(f"{p}:media" for p in PUBLIC), *SSE_STREAMS.values()}
        error: tuple[str, int] | None = None
        if stream not in known:
            error = ("Unknown stream type", 400)
        elif stream.startswith("hashtag") and not param:
            error = ("Missing tag name parameter", 400)
        elif stream == "list" and param not in self.lists:
            error = ("Not authorized to stream this list", 401)
        if error is not None:
            await ws.send_text(json.dumps({"error": error[0], "status": error[1]}))
            return
        with self._lock:
            self.subscribed.append((stream, param))
            self._subs.append(_Sub(stream, param, conn, websocket=True))
            self.streams += 1

    @staticmethod
    async def _ws_send(ws: WebSocket, conn: _Conn) -> None:
        while True:
            item = await conn.queue.get()
            if item is None:
                await ws.close(1001, "going away")
                return
            await ws.send_text(item)

    def _drop(self, conn: _Conn) -> None:
        with self._lock:
            self._subs = [s for s in self._subs if s.conn is not conn]

    def _streaming_routes(self) -> list[BaseRoute]:
        return [
            WebSocketRoute("/api/v1/streaming", self._websocket),
            *(Route(f"/api/v1/streaming/{p}", self._sse) for p in SSE_STREAMS),
        ]

    def rest_app(self) -> Starlette:
        routes: list[BaseRoute] = [
            Route("/api/v2/instance", self._instance),
            Route("/api/v1/instance", self._instance),
            Route("/api/v1/timelines/public", self._timeline),
            Route("/api/v1/timelines/home", self._timeline),
            Route("/api/v1/timelines/tag/{tag}", self._timeline),
            Route("/api/v1/timelines/list/{list}", self._timeline),
        ]
        return Starlette(routes=routes + (self._streaming_routes() if self.colocated else []))

    def streaming_app(self) -> Starlette:
        return Starlette(routes=self._streaming_routes())


@contextmanager
def _serve(app: Starlette, port: int) -> Iterator[None]:
    with serve_in_thread(app, port=port):
        yield


@contextmanager
def running(server: FakeMastodon) -> Iterator[FakeMastodon]:
    """Serve ``server`` (REST, streaming and the relay) until the block ends."""
    with _serve(server.rest_app(), server.port), _serve(server.streaming_app(), server.stream_port):
        server.relay.start()
        try:
            yield server
        finally:
            server.end_streams()
            server.relay.stop()
