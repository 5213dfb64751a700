"""``/api``: firesift's own REST endpoints (the web page and scripts use them).

=========================  =================================================================
``GET /api/search``        ``q`` (X-style query), ``as_of``, ``limit`` (1-100), ``sort``
                           (``relevance``/``recent``) -> ``{results, as_of, query}``
``GET /api/trends``        ``as_of``, ``window`` (``1h``; 1 min to the tracker's retention),
                           ``limit`` -> the trend report
``GET /api/posts/{s}/{id}`` the post and its conversation, every reply's stance and the
                           tally (:func:`firesift.answer.thread.thread`); ``id`` may contain
                           ``/`` and ``:`` (Bluesky ``at://`` URIs); ``as_of`` bounds it
``POST /api/check``        ``{claim, as_of?}`` -> the verdict
``POST /api/ingest``       NDJSON, any supported format per line (``?format=`` to force one);
                           bad lines are reported by line number and the rest kept; answered
                           once the store has the posts (``?refresh=true``: once search
                           sees them; otherwise within the ~100 ms freshness budget)
``GET /api/live``          Server-Sent Events: ``post``, ``trends``, ``stats``, ``lag``
``GET /api/stats``         store, index, ingest and live-feed counters
``GET /api/sources``       each live source's status (state, posts/s, lag, reconnects, errors)
``/api/watches...``        standing questions that alert, their events as SSE: see
                           :mod:`firesift.api.watches`
=========================  =================================================================

Every blocking call (store, index, engine, parsing) runs in the thread pool.
"""

from __future__ import annotations

import asyncio
import io
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from firesift.answer.thread import thread
from firesift.api.errors import APIError, from_firesift
from firesift.api.routing import sse_response
from firesift.api.schemas import (
    INGEST_BODY_LIMIT,
    JSON_BODY_LIMIT,
    CheckRequest,
    json_body,
    parse_instant,
    read_body,
)
from firesift.api.watches import routes as watch_routes
from firesift.errors import ConfigError, FiresiftError, NotFound, TimeParseError
from firesift.formats.base import names as format_names
from firesift.formats.reader import Problem, read
from firesift.pipeline import IngestSummary
from firesift.post import Event, to_ms
from firesift.search import search
from firesift.timeparse import parse_duration

if TYPE_CHECKING:
    from firesift.service import Service

__all__ = ["routes"]

_SORTS = ("relevance", "recent")


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise APIError(422, f"{name}: expected a whole number, got {raw!r}", param=name) from None
    if not lo <= value <= hi:
        raise APIError(422, f"{name}: must be between {lo} and {hi}, got {value}", param=name)
    return value


async def _run(func: Any, *args: Any) -> Any:
    return await anyio.to_thread.run_sync(func, *args)


async def api_search(request: Request) -> Response:
    service = _service(request)
    q = request.query_params.get("q", "").strip()
    if not q:
        raise APIError(
            422, "q: the search query is empty", param="q", code="missing_required_parameter"
        )
    as_of = parse_instant(request.query_params.get("as_of"), now=service.now(), param="as_of")
    limit = _int(request, "limit", 20, 1, 100)
    sort = request.query_params.get("sort", "relevance")
    if sort not in _SORTS:
        raise APIError(422, f"sort: must be one of {', '.join(_SORTS)}, got {sort!r}", param="sort")

    def run() -> dict[str, Any]:
        try:
            resp = search(service.db, q, as_of=as_of or service.now(), limit=limit, sort=sort)  # type: ignore[arg-type]
        except FiresiftError as e:
            raise from_firesift(e, param="q") from e
        return resp.to_dict()

    return _json(await _run(run))


async def api_trends(request: Request) -> Response:
    service = _service(request)
    as_of = parse_instant(request.query_params.get("as_of"), now=service.now(), param="as_of")
    window = request.query_params.get("window") or "1h"
    try:
        window_ms = int(parse_duration(window).total_seconds() * 1000)
    except TimeParseError as e:
        raise from_firesift(e, param="window") from None
    limit = _int(request, "limit", 20, 0, 100)

    def run() -> dict[str, Any]:
        try:
            report = service.trend_report(
                as_of_ms=None if as_of is None else to_ms(as_of), window_ms=window_ms, limit=limit
            )
        except ConfigError as e:
            raise from_firesift(e, param="window") from e
        return report.to_json()

    return _json(await _run(run))


async def api_post(request: Request) -> Response:
    service = _service(request)
    source = request.path_params["source"]
    pid = request.path_params["id"]
    as_of = parse_instant(request.query_params.get("as_of"), now=service.now(), param="as_of")

    def run() -> dict[str, Any]:
        stance, _ = service.engine.stance_model()
        try:
            result = thread(service.db, f"{source}:{pid}", as_of=as_of, stance=stance)
        except NotFound as e:
            raise APIError(404, str(e), param="id", code="post_not_found") from e
        body: dict[str, Any] = result.to_dict()
        return body

    return _json(await _run(run))


async def api_check(request: Request) -> Response:
    service = _service(request)
    body = await json_body(request, CheckRequest, JSON_BODY_LIMIT)
    as_of = parse_instant(body.as_of, now=service.now(), param="as_of")

    def run() -> dict[str, Any]:
        verdict = service.engine.check(body.claim, as_of=as_of)
        result: dict[str, Any] = verdict.to_dict()
        return result

    return _json(await _run(run))


def _parse_ndjson(raw: bytes, fmt: str, summary: IngestSummary) -> list[Event]:
    events: list[Event] = []
    for item in read(io.BytesIO(raw), fmt=fmt, name="line"):
        if isinstance(item, Problem):
            summary.skip(item.where, item.reason)
        else:
            events.extend(item.events)
    return events


async def api_ingest(request: Request) -> Response:
    service = _service(request)
    fmt = request.query_params.get("format", "auto")
    refresh = request.query_params.get("refresh", "false").lower()
    if refresh not in ("true", "false", "1", "0"):
        raise APIError(422, f"refresh: expected true or false, got {refresh!r}", param="refresh")
    known = ["auto", *format_names()]
    if fmt not in known:
        raise APIError(
            422, f"format: unknown format {fmt!r}; known: {', '.join(known)}", param="format"
        )
    raw = await read_body(request, INGEST_BODY_LIMIT)
    summary = IngestSummary()
    events = await _run(_parse_ndjson, raw, fmt, summary)
    if events:
        pushed = service.ingest.push(events, summary, searchable=refresh in ("true", "1"))
        await asyncio.wrap_future(pushed)
    body = summary.to_dict()
    body["events"] = len(events)
    return _json(body)


async def api_live(request: Request) -> Response:
    service = _service(request)
    q = request.query_params.get("q", "")
    try:
        client = service.live.subscribe(q)
    except FiresiftError as e:
        raise from_firesift(e, param="q") from e
    first = []
    for event in ("stats", "trends"):
        try:
            data = await _run(service.live.snapshot, event)
        except Exception:
            service.live.unsubscribe(client)
            raise
        if data is not None:
            first.append(data)
    heartbeat = float(request.app.state.heartbeat_s)
    return sse_response(service.live.stream(client, first=first, heartbeat_s=heartbeat))


async def api_stats(request: Request) -> Response:
    return _json(await _run(_service(request).stats))


async def api_sources(request: Request) -> Response:
    return _json({"sources": _service(request).sources.statuses()})


routes = [
    Route("/api/search", api_search, methods=["GET"]),
    Route("/api/sources", api_sources, methods=["GET"]),
    Route("/api/trends", api_trends, methods=["GET"]),
    Route("/api/posts/{source}/{id:path}", api_post, methods=["GET"]),
    Route("/api/check", api_check, methods=["POST"]),
    Route("/api/ingest", api_ingest, methods=["POST"]),
    Route("/api/live", api_live, methods=["GET"]),
    Route("/api/stats", api_stats, methods=["GET"]),
    *watch_routes,
]
