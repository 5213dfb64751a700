"""``GET /openapi.json``: the API as an OpenAPI 3.1 document, built from one declaration per route.

Design decisions:

- **One declaration per route.** :data:`OPERATIONS` holds one :class:`Operation` per method
  and path (summary, parameters, request body, success and error answers); the document is
  built from it and nothing else. ``tests/test_openapi.py`` walks the app's routes against it
  both ways, so a route added without a declaration (or a declaration left behind by a removed
  route) fails the suite.
- **Request bodies come from the models that validate them.** The pydantic models of
  :mod:`~firesift.api.schemas`, :mod:`~firesift.api.responses_schema` and
  :mod:`~firesift.api.watches` give their JSON Schema (draft 2020-12, OpenAPI 3.1's own
  dialect) into ``components.schemas``: what the document says is what the server checks.
  ``tools`` of ``/v1/responses`` is typed from the tool registry (:data:`TOOLS`).
- **Response shapes are written out** in :mod:`firesift.api.wire_schemas` (the server builds
  them with ``to_dict`` methods on plain values, so there is no model to derive them from);
  tests validate real answers against them.
- **Errors** have one shape, OpenAI's (:mod:`firesift.api.errors`); each operation lists the
  statuses it answers with, plus ``401`` where a key may be needed and ``5XX``.
- **Server-Sent Events** are ``text/event-stream`` answers whose ``schema`` types one event
  the way OpenAPI 3.2 does (``{event, data, id, retry}``, ``data`` a JSON string described by
  ``contentSchema``; schemathesis validates streams this way); the extension ``x-sse-events``
  maps each event name to its ``data`` schema for tools that read 3.1 only.
- **Security**: ``Authorization: Bearer <key>`` (every OpenAI SDK sends it), the only way a
  key is accepted (a key in the query string is refused: URLs are logged). Whether a key is needed
  follows :class:`~firesift.api.auth.AuthPolicy` (always beyond loopback); the document states
  the requirement as a deployed server enforces it.
- **The document itself is public** (like ``/healthz``): it holds no data, and the tools that
  read it (SDK generators, schemathesis) do so before they hold a key.
- **Not described**: ``/`` and ``/static/...`` (the web page) and ``/mcp`` (MCP's JSON-RPC
  transport, whose tools describe themselves through ``tools/list``); see :data:`UNDOCUMENTED`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import orjson
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from firesift import __version__
from firesift.api.responses_schema import _TEXT_PARTS as TEXT_PARTS
from firesift.api.responses_schema import TOOLS, InputItem, ResponsesRequest
from firesift.api.schemas import (
    _DOMAIN,
    _MDY,
    _YMD,
    ChatRequest,
    CheckRequest,
    SearchParameters,
    XSource,
)
from firesift.api.watches import WatchRequest
from firesift.api.wire_schemas import (
    INT,
    REF,
    SCHEMAS,
    STR,
    Schema,
    arr,
    enum,
    extend,
    null,
    obj,
    ref,
)
from firesift.watches.model import KINDS

__all__ = [
    "OPERATIONS",
    "UNDOCUMENTED",
    "Operation",
    "Param",
    "document",
    "openapi_path",
    "operation_id",
    "routes",
]

UNDOCUMENTED = {
    "/": "the web page (HTML)",
    "/static": "the web page's files",
    "/mcp": "MCP's JSON-RPC transport; its tools describe themselves (tools/list)",
}
"""Paths of the app the document leaves out, and why."""

_BODY_MODELS: tuple[type[BaseModel], ...] = (
    ChatRequest,
    ResponsesRequest,
    CheckRequest,
    WatchRequest,
)


# -- declarations -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Param:
    """A query (or header) parameter; path parameters come from the path itself."""

    name: str
    description: str
    schema: Schema = field(default_factory=lambda: dict(STR))
    where: Literal["query", "header"] = "query"
    required: bool = False


@dataclass(frozen=True, slots=True)
class Operation:
    """One method on one path (Starlette's template, e.g. ``/api/posts/{source}/{id:path}``).

    ``ok`` is the success body's schema (JSON unless ``media``), ``events`` the SSE events
    (name -> data schema) when the operation streams; ``body`` the request body's model, or
    ``raw_body`` a media type and schema for a non-JSON body; ``errors`` the error statuses;
    ``links`` the operations that take the ``id`` of the answer."""

    method: str
    path: str
    summary: str
    tag: str
    ok: Schema | None = None
    status: int = 200
    media: str = "application/json"
    events: dict[str, Schema] | None = None
    params: tuple[Param, ...] = ()
    body: type[BaseModel] | None = None
    raw_body: tuple[str, Schema] | None = None
    errors: tuple[int, ...] = ()
    public: bool = False
    description: str = ""
    links: tuple[tuple[str, str], ...] = ()
    """(method, path) of operations whose one path parameter is this answer's ``id``."""


_AS_OF = Param(
    "as_of", "Answer as of this instant (ISO 8601 or relative, e.g. '2h ago'); later posts unused."
)
_LIMIT = Param(
    "limit", "Items to return (1-100).", {"type": "integer", "minimum": 1, "maximum": 100}
)
_PATH_DOCS = {
    "source": "The post's source (x, bluesky, mastodon, rss...).",
    "id": "The post's id in its source; may contain '/' and ':' (Bluesky at:// URIs).",
    "response_id": "A stored response's id (resp_...).",
}
_WATCH_ID = "A watch's id."
_CHAT_EVENTS = {"message": ref("ChatCompletionChunk")}
_RESPONSE_EVENTS = {
    kind: ref("ResponseEvent")
    for kind in (
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.annotation.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
        "response.failed",
    )
}
_LAG = obj({"dropped": INT, "total_dropped": INT})

OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/v1/models", "The models (one per composer)", "openai", ref("ModelList")),
    Operation(
        "POST",
        "/v1/chat/completions",
        "A grounded chat completion with citations (stream: SSE chunks)",
        "openai",
        ref("ChatCompletion"),
        events=_CHAT_EVENTS,
        body=ChatRequest,
        errors=(400, 404, 413, 422),
    ),
    Operation(
        "POST",
        "/v1/responses",
        "A grounded response (Responses API, x_search/web_search tools; stream: SSE events)",
        "openai",
        ref("ResponseObject"),
        events=_RESPONSE_EVENTS,
        body=ResponsesRequest,
        errors=(400, 404, 410, 413, 422),
        links=(
            ("GET", "/v1/responses/{response_id}"),
            ("GET", "/v1/responses/{response_id}/input_items"),
            ("DELETE", "/v1/responses/{response_id}"),
        ),
    ),
    Operation(
        "GET",
        "/v1/responses/{response_id}",
        "A stored response",
        "openai",
        ref("ResponseObject"),
        errors=(404,),
    ),
    Operation(
        "DELETE",
        "/v1/responses/{response_id}",
        "Delete a stored response",
        "openai",
        ref("ResponseDeleted"),
        errors=(404,),
    ),
    Operation(
        "GET",
        "/v1/responses/{response_id}/input_items",
        "A stored response's input messages, paged",
        "openai",
        ref("InputItemList"),
        params=(
            Param("order", "Newest first (desc) or oldest first.", enum(Literal["desc", "asc"])),
            _LIMIT,
            Param("after", "Start after this item id."),
        ),
        errors=(404, 422),
    ),
    Operation(
        "GET",
        "/api/search",
        "Search posts (X-style query syntax)",
        "rest",
        ref("SearchResults"),
        params=(
            Param(
                "q",
                "The query, e.g. 'ottawa from:CTVNews -is:retweet'.",
                {"type": "string", "pattern": r"\S"},
                required=True,
            ),
            _AS_OF,
            _LIMIT,
            Param("sort", "Ranking.", enum(Literal["relevance", "recent"])),
        ),
        errors=(400, 422),
    ),
    Operation(
        "GET",
        "/api/trends",
        "What is bursting: terms and stories",
        "rest",
        ref("TrendReport"),
        params=(
            _AS_OF,
            Param("window", "The report window, e.g. 1h (1 min to the tracker's retention)."),
            Param("limit", "Items (0-100).", {"type": "integer", "minimum": 0, "maximum": 100}),
        ),
        errors=(422,),
    ),
    Operation(
        "GET",
        "/api/posts/{source}/{id:path}",
        "A post and its conversation, every reply's stance",
        "rest",
        ref("Thread"),
        params=(_AS_OF,),
        errors=(404, 422),
    ),
    Operation(
        "POST",
        "/api/check",
        "Check a claim against the stream",
        "rest",
        ref("Verdict"),
        body=CheckRequest,
        errors=(400, 413, 422),
    ),
    Operation(
        "POST",
        "/api/ingest",
        "Ingest posts as NDJSON (any supported format per line)",
        "rest",
        ref("IngestSummary"),
        params=(
            Param("format", "Force one wire format (default: detected per line)."),
            Param(
                "refresh",
                "Answer once search sees the posts.",
                enum(Literal["true", "false", "1", "0"]),
            ),
        ),
        raw_body=("application/x-ndjson", STR),
        errors=(400, 413, 422),
        description="Bad lines are reported by line number and the rest kept.",
    ),
    Operation(
        "GET",
        "/api/live",
        "Live posts, trends and stats (Server-Sent Events)",
        "rest",
        events={
            "post": ref("Post"),
            "trends": ref("TrendReport"),
            "stats": ref("Stats"),
            "lag": _LAG,
        },
        params=(Param("q", "Only posts matching this X-style query."),),
        errors=(400,),
    ),
    Operation(
        "GET", "/api/stats", "Store, index, ingest and live-feed counters", "rest", ref("Stats")
    ),
    Operation(
        "GET",
        "/api/sources",
        "Each live source's status",
        "rest",
        obj({"sources": arr(ref("SourceStatus"))}),
    ),
    Operation(
        "GET",
        "/api/watches",
        "Every watch (secrets not shown)",
        "watches",
        obj({"watches": arr(ref("Watch"))}),
    ),
    Operation(
        "POST",
        "/api/watches",
        "Create a watch: a standing query or claim that alerts",
        "watches",
        extend("Watch", {"secret": null(STR)}),
        status=201,
        body=WatchRequest,
        errors=(400, 413, 422),
        links=(("GET", "/api/watches/{id}"), ("DELETE", "/api/watches/{id}")),
        description="The webhook secret is shown only in this answer (generated when not given).",
    ),
    Operation("GET", "/api/watches/{id}", "One watch", "watches", ref("Watch"), errors=(404,)),
    Operation(
        "DELETE",
        "/api/watches/{id}",
        "Remove a watch, its events and owed deliveries",
        "watches",
        ref("Deleted"),
        errors=(404,),
    ),
    Operation(
        "GET",
        "/api/watches/{id}/events",
        "A watch's events (Server-Sent Events, resumable)",
        "watches",
        events={"watch": ref("WatchEvent")},
        params=(
            Param("Last-Event-ID", "Resume after this event number.", INT, where="header"),
            Param("last_event_id", "Resume after this event number (0: every event kept).", INT),
        ),
        errors=(404, 422),
    ),
    Operation(
        "GET",
        "/healthz",
        "Liveness: the writer runs",
        "service",
        ref("Health"),
        errors=(503,),
        public=True,
    ),
    Operation(
        "GET",
        "/metrics",
        "Prometheus metrics",
        "service",
        STR,
        media="text/plain; version=0.0.4",
    ),
    Operation(
        "GET",
        "/openapi.json",
        "This document",
        "service",
        {"type": "object"},
        public=True,
    ),
)


# -- the document -----------------------------------------------------------------------------

_CONVERTER = re.compile(r"\{(\w+)(?::\w+)?\}")
_ERRORS = {
    400: "Malformed request (bad JSON, query syntax, a broken tool rule)",
    401: "An API key is required (error.code missing_api_key, invalid_api_key or api_key_in_url)",
    404: "Not found (a route, a model, a stored object)",
    410: "Gone: search_parameters (Live Search) is retired on this endpoint",
    413: "Request body too large",
    422: "Invalid parameter, named in error.param",
    503: "Unavailable",
    "5XX": "Server error (no internals in the body)",
}


def openapi_path(template: str) -> str:
    """Starlette's path template as OpenAPI writes it (``{id:path}`` -> ``{id}``)."""
    return _CONVERTER.sub(r"{\1}", template)


def operation_id(method: str, template: str) -> str:
    """``get_api_watches_id`` for ``GET /api/watches/{id}``."""
    return method.lower() + re.sub(r"\W+", "_", openapi_path(template)).rstrip("_")


def _path_params(template: str) -> list[str]:
    return re.findall(r"\{(\w+)\}", openapi_path(template))


def _error(status: int | str) -> Schema:
    return {
        "description": _ERRORS[status],
        "content": {"application/json": {"schema": ref("Error")}},
    }


_DONE = "[DONE]"
"""OpenAI's end of a chat stream: the data of a last unnamed (``message``) event, not JSON."""


def _event_data(name: str, schema: Schema) -> Schema:
    data: Schema = {"contentMediaType": "application/json", "contentSchema": schema}
    if name == "message":
        data = {"if": {"const": _DONE}, "else": data}
    return {"properties": {"event": {"const": name}, "data": data}}


def _events(events: dict[str, Schema]) -> Schema:
    """An event stream's media type: ``schema`` describes one event as OpenAPI 3.2 (and
    schemathesis) read it, ``{event, data, id, retry}`` with ``data`` a JSON string of the
    event's schema; ``x-sse-events`` maps the names to the same schemas, for readers of 3.1."""
    names = ", ".join(f"'{e}'" for e in events)
    event: Schema = {
        "type": "object",
        "description": f"One Server-Sent Event: {names}.",
        "required": ["data"],
        "properties": {
            "event": {"enum": list(events)},
            "data": STR,
            "id": STR,
            "retry": INT,
        },
        "oneOf": [_event_data(n, s) for n, s in events.items()],
    }
    return {"schema": event, "x-sse-events": events}


def _operation(op: Operation, body_refs: dict[type[BaseModel], Schema]) -> Schema:
    path = openapi_path(op.path)
    params: list[Schema] = [
        {
            "name": n,
            "in": "path",
            "required": True,
            "schema": STR,
            "description": _PATH_DOCS.get(n, _WATCH_ID),
        }
        for n in _path_params(path)
    ]
    params += [
        {
            "name": p.name,
            "in": p.where,
            "required": p.required,
            "schema": p.schema,
            "description": p.description,
        }
        for p in op.params
    ]
    content: Schema = {}
    if op.ok is not None:
        content[op.media] = {"schema": op.ok}
    if op.events is not None:
        content["text/event-stream"] = _events(op.events)
    ok = "Created" if op.status == 201 else "OK"
    if op.ok is not None and op.events is not None:
        ok += " (JSON; Server-Sent Events when the body says stream: true)"
    responses: Schema = {str(op.status): {"description": ok, "content": content}}
    if op.links:
        responses[str(op.status)]["links"] = {
            operation_id(m, p): {
                "operationId": operation_id(m, p),
                "parameters": {_path_params(p)[0]: "$response.body#/id"},
            }
            for m, p in op.links
        }
    statuses: list[int | str] = [*op.errors]
    if not op.public:
        statuses.append(401)
    for status in sorted(statuses, key=str):
        responses[str(status)] = _error(status)
    responses["5XX"] = _error("5XX")
    out: Schema = {
        "operationId": operation_id(op.method, op.path),
        "summary": op.summary,
        "tags": [op.tag],
        "responses": responses,
    }
    if op.description:
        out["description"] = op.description
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body_refs[op.body]}},
        }
    elif op.raw_body is not None:
        media, schema = op.raw_body
        out["requestBody"] = {"required": True, "content": {media: {"schema": schema}}}
    if op.public:
        out["security"] = []
    elif op.method != "GET":
        out["security"] = [{"bearer": []}]
    return out


def _body_schemas() -> tuple[dict[type[BaseModel], Schema], dict[str, Schema]]:
    models = [*_BODY_MODELS, *TOOLS.values()]
    mapping, defs = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    refs: dict[type[BaseModel], Schema] = {
        m: s for (m, _), s in mapping.items() if isinstance(m, type) and issubclass(m, BaseModel)
    }
    schemas: dict[str, Schema] = defs.get("$defs", {})
    _refine(schemas)
    return refs, schemas


_TEXT = {"type": "string", "pattern": r"\S"}


def _user_turn(part_types: tuple[str, ...]) -> Schema:
    """A user message with text (as a string or in a part of one of ``part_types``)."""
    part = obj({"type": {"enum": list(part_types)}, "text": _TEXT})
    content = {"anyOf": [_TEXT, {"type": "array", "contains": part}]}
    return obj({"role": {"const": "user"}, "content": content})


def _pattern(schema: Schema, pattern: str) -> None:
    """Give the strings of ``schema`` (``str | None``, ``list[str] | None``) ``pattern``."""
    target = schema["anyOf"][0] if "anyOf" in schema else schema
    if target.get("type") == "array":
        target = target["items"]
    target["pattern"] = pattern


def _refine(schemas: dict[str, Schema]) -> None:
    """What the models' validators check in code, stated in their schemas, so that clients
    (and schemathesis) know which bodies the server takes: non-blank text, a user turn with
    text, date and domain formats, handles without '@', the tool registry, a watch's kind and
    the field its kind needs. What only code can decide (a query's syntax, an ``as_of``'s
    grammar) stays a plain string and is answered 400/422."""
    chat = schemas[ChatRequest.__name__]["properties"]
    chat["messages"]["contains"] = _user_turn(("text",))
    _pattern(chat["search_domain_filter"], _DOMAIN.pattern)
    for name in ("search_after_date_filter", "search_before_date_filter"):
        _pattern(chat[name], _MDY.pattern)
    for name in ("from_date", "to_date"):
        _pattern(schemas[SearchParameters.__name__]["properties"][name], _YMD.pattern)
    for name in ("included_x_handles", "excluded_x_handles"):
        _pattern(schemas[XSource.__name__]["properties"][name], r"^(?!@)[\s\S]*\S")
    resp = schemas[ResponsesRequest.__name__]["properties"]
    message = {
        "anyOf": [{"not": {"required": ["type"]}}, obj({"type": {"enum": ["message", None]}})]
    }
    item = {"if": message, "then": obj({"role": STR})}
    items = {"type": "array", "items": {"allOf": [ref(InputItem.__name__), item]}}
    user = {"allOf": [_user_turn(TEXT_PARTS), message]}
    resp["input"] = {"anyOf": [_TEXT, {**items, "contains": user}]}
    resp["tools"]["anyOf"][0]["items"] = {
        "oneOf": [ref(t.__name__) for t in TOOLS.values()],
        "discriminator": {
            "propertyName": "type",
            "mapping": {k: REF.format(model=t.__name__) for k, t in TOOLS.items()},
        },
    }
    schemas[CheckRequest.__name__]["properties"]["claim"]["pattern"] = r"\S"
    watch = schemas[WatchRequest.__name__]
    props = watch["properties"]
    props["kind"]["enum"] = list(KINDS)
    for name in ("min_posts", "min_accounts", "every"):
        props[name]["minimum"] = 1
    props["webhook"]["anyOf"][0]["pattern"] = r"^https?://[^\s/]+"
    watch["if"] = obj({"kind": {"const": "verdict"}})
    watch["then"] = obj({"claim": _TEXT})
    watch["else"] = obj(
        {"query": _TEXT, "claim": {"anyOf": [{"type": "null"}, {"const": ""}]}},
        optional=("claim",),
    )


@lru_cache(maxsize=1)
def _document_bytes() -> bytes:
    return orjson.dumps(document())


def document() -> Schema:
    """The OpenAPI 3.1 document of the API (a fresh dict each call)."""
    body_refs, schemas = _body_schemas()
    paths: dict[str, Schema] = {}
    for op in OPERATIONS:
        paths.setdefault(openapi_path(op.path), {})[op.method.lower()] = _operation(op, body_refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "firesift",
            "version": __version__,
            "summary": "A self-hosted answer engine for social streams",
            "description": (
                "OpenAI- and xAI-compatible answers grounded in a live post stream (/v1), "
                "firesift's REST and Server-Sent Events endpoints (/api) and watches that "
                "alert. API keys are required beyond loopback (firesift keys create). Event "
                "streams list each event's data schema in 'x-sse-events'. Not described "
                "here: " + "; ".join(f"{p} ({why})" for p, why in UNDOCUMENTED.items()) + "."
            ),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [
            {"name": "openai", "description": "OpenAI- and xAI-compatible endpoints"},
            {"name": "rest", "description": "firesift's own REST and SSE endpoints"},
            {"name": "watches", "description": "Standing questions that alert"},
            {"name": "service", "description": "Health, metrics and this document"},
        ],
        "paths": paths,
        "components": {
            "schemas": {**schemas, **SCHEMAS},
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key from `firesift keys create`.",
                },
            },
        },
        "security": [{"bearer": []}],
    }


async def openapi_json(request: Request) -> Response:
    return Response(_document_bytes(), media_type="application/json")


routes = [Route("/openapi.json", openapi_json, methods=["GET"])]
