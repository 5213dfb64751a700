"""``/api/watches``: standing questions that alert (:mod:`firesift.watches`).

==================================  ========================================================
``GET /api/watches``                every watch -> ``{watches: [...]}`` (secrets not shown)
``POST /api/watches``               ``{kind, query?, claim?, name?, min_posts?,
                                    min_accounts?, window?, every?, webhook?, secret?}`` ->
                                    201 and the watch, with its webhook ``secret`` (shown
                                    only here: generated when not given)
``GET /api/watches/{id}``           one watch
``DELETE /api/watches/{id}``        removes it, its events and owed deliveries
``GET /api/watches/{id}/events``    Server-Sent Events ``event: watch`` with ``id: <n>``,
                                    from after ``Last-Event-ID`` (header) or
                                    ``?last_event_id=`` (0: every event kept)
==================================  ========================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import anyio.to_thread
import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from firesift.api.errors import APIError, from_firesift
from firesift.api.routing import route, sse_response
from firesift.api.schemas import JSON_BODY_LIMIT, json_body
from firesift.errors import FiresiftError, TimeParseError
from firesift.timeparse import parse_duration
from firesift.watches.deliver import sse_events
from firesift.watches.model import new_watch

if TYPE_CHECKING:
    from firesift.service import Service

__all__ = ["WatchRequest", "routes"]


class WatchRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)  # no 0 for false, "3" for 3

    kind: str = "matches"
    query: Annotated[str, Field(max_length=2000)] | None = None
    claim: Annotated[str, Field(max_length=2000)] | None = None
    name: Annotated[str, Field(max_length=200)] = ""
    min_posts: int = 1
    min_accounts: int = 1
    window: str = "10m"
    every: int = 10
    webhook: Annotated[str, Field(max_length=2000)] | None = None
    secret: Annotated[str, Field(min_length=16, max_length=200)] | None = None


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _error(e: FiresiftError) -> APIError:
    head, sep, _ = str(e).partition(":")
    param = head if sep and head.isidentifier() else None
    return from_firesift(e, param=param)


async def list_watches(request: Request) -> Response:
    watches = await anyio.to_thread.run_sync(_service(request).watching.store.all)
    return _json({"watches": [w.to_dict() for w in watches]})


async def create_watch(request: Request) -> Response:
    service = _service(request)
    body = await json_body(request, WatchRequest, JSON_BODY_LIMIT)
    try:
        window_ms = int(parse_duration(body.window).total_seconds() * 1000)
    except TimeParseError as e:
        raise from_firesift(e, param="window") from None
    try:
        watch = new_watch(
            body.kind,
            query=body.query,
            claim=body.claim,
            name=body.name,
            min_posts=body.min_posts,
            min_accounts=body.min_accounts,
            window_ms=window_ms,
            every=body.every,
            webhook=body.webhook,
            secret=body.secret,
        )
    except FiresiftError as e:
        raise _error(e) from None
    saved = await anyio.to_thread.run_sync(service.watching.store.add, watch)
    return _json(saved.to_dict(secret=True), status=201)


async def get_watch(request: Request) -> Response:
    store = _service(request).watching.store
    try:
        watch = await anyio.to_thread.run_sync(store.get, request.path_params["id"])
    except FiresiftError as e:
        raise _error(e) from None
    return _json(watch.to_dict())


async def delete_watch(request: Request) -> Response:
    store = _service(request).watching.store
    wid = request.path_params["id"]
    try:
        await anyio.to_thread.run_sync(store.remove, wid)
    except FiresiftError as e:
        raise _error(e) from None
    return _json({"id": wid, "deleted": True})


async def watch_events(request: Request) -> Response:
    watching = _service(request).watching
    wid = request.path_params["id"]
    try:
        await anyio.to_thread.run_sync(watching.store.get, wid)
    except FiresiftError as e:
        raise _error(e) from None
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id") or "0"
    try:
        after = int(raw)
    except ValueError:
        raise APIError(422, f"Last-Event-ID: expected an event number, got {raw!r}") from None
    flag = watching.subscribe()

    async def stream() -> Any:
        try:
            async for chunk in sse_events(
                watching.store,
                wid,
                after=after,
                wake=flag,
                heartbeat_s=request.app.state.heartbeat_s,
            ):
                yield chunk
        finally:
            watching.unsubscribe(flag)

    return sse_response(stream())


routes = [
    route("/api/watches", get=list_watches, post=create_watch),
    route("/api/watches/{id}", get=get_watch, delete=delete_watch),
    Route("/api/watches/{id}/events", watch_events, methods=["GET"]),
]
