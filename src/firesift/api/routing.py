"""Plumbing every router shares: one route per path whatever its methods (so a 405 lists every
method the path allows), and the event-stream response of every SSE endpoint.

Starlette answers a method no route of a path takes with the ``Allow`` header of the first
route it found, so ``GET`` and ``DELETE`` on one path as two routes advertise only ``GET``.
:func:`route` dispatches on the method inside one :class:`~starlette.routing.Route`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

__all__ = ["route", "sse_response"]

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


def sse_response(events: AsyncIterator[bytes]) -> StreamingResponse:
    """``text/event-stream`` of ``events``, never cached nor buffered by a proxy."""
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
