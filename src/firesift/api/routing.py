"""Plumbing every router shares: one route per path whatever its methods (so a 405 lists every
method the path allows), and the event-stream response of every SSE endpoint.

A client that stops reading an event stream fills its TCP window, then the server's write
buffer (uvicorn pauses writing at 64 KiB); from then on a send waits for the client. Waiting
forever would hold the connection and the events queued behind it, so :func:`sse_response`
gives each send ``app.state.sse_stall_s`` seconds (default :data:`STALL_S`): past that the
stream ends, its generator is closed (which unsubscribes it from the live hub) and the server
closes the connection. The memory a stalled client holds is bounded by the write buffer plus
the producer's own bounded queue (``CLIENT_QUEUE`` in :mod:`firesift.api.live`).

Starlette answers a method no route of a path takes with the ``Allow`` header of the first
route it found, so ``GET`` and ``DELETE`` on one path as two routes advertise only ``GET``.
:func:`route` dispatches on the method inside one :class:`~starlette.routing.Route`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

__all__ = ["STALL_S", "route", "sse_response"]

log = logging.getLogger("firesift.api")

STALL_S = 30.0
"""Seconds an event stream's send may wait for a client that does not read before it is dropped."""

Handler = Callable[[Request], Awaitable[Response]]


def route(path: str, **handlers: Handler) -> Route:
    """A route for ``path`` calling ``handlers[method]`` (``get=``, ``delete=`` ...)."""
    by_method = {m.upper(): h for m, h in handlers.items()}
    if "GET" in by_method:
        by_method.setdefault("HEAD", by_method["GET"])

    async def endpoint(request: Request) -> Response:
        return await by_method[request.method](request)

    endpoint.__name__ = "_".join(h.__name__ for h in handlers.values())
    return Route(path, endpoint, methods=list(by_method))


class _EventStream(StreamingResponse):
    """A streaming response that ends when one send waits longer than the stall limit."""

    stall_s = STALL_S

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = scope.get("app")
        state = getattr(app, "state", None)
        self.stall_s = float(getattr(state, "sse_stall_s", STALL_S))
        await super().__call__(scope, receive, send)

    async def stream_response(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        events = self.body_iterator
        try:
            async for chunk in events:
                body = chunk if isinstance(chunk, bytes | memoryview) else chunk.encode()
                with anyio.move_on_after(self.stall_s) as waited:
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                if waited.cancelled_caught:
                    log.warning(
                        "dropping an event-stream client that read nothing for %.0f s",
                        self.stall_s,
                    )
                    return  # uvicorn closes the connection of an unfinished response
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def sse_response(events: AsyncIterator[bytes]) -> StreamingResponse:
    """``text/event-stream`` of ``events``, never cached nor buffered by a proxy; a client that
    stops reading is dropped (see the module docstring)."""
    return _EventStream(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
