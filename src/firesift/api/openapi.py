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
- **Response shapes are declared here.** The server builds them with ``to_dict`` methods on
  plain values, so their JSON Schema is written out below, compactly: every field the server
  always sends is ``required``, enums come from the ``Literal`` types that define them, and
  objects stay open (more properties allowed: the OpenAI shapes and firesift's extras grow
  fields, and clients ignore the ones they do not know). Tests validate real answers against
  them.
- **Errors** have one shape, OpenAI's (:mod:`firesift.api.errors`); each operation lists the
  statuses it answers with, plus ``401`` where a key may be needed and ``5XX``.
- **Server-Sent Events** are ``text/event-stream`` answers. OpenAPI 3.1 cannot type an event
  stream, so the extension ``x-sse-events`` maps each event name to its ``data`` schema.
- **Security**: ``Authorization: Bearer <key>`` (every OpenAI SDK sends it) and, on ``GET``,
  ``?api_key=`` (a browser's ``EventSource`` cannot set headers). Whether a key is needed
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
from typing import Any, Literal, get_args

import orjson
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from firesift import __version__
from firesift.answer.model import VerdictLabel
from firesift.api.responses_schema import TOOLS, ResponsesRequest
from firesift.api.schemas import ChatRequest, CheckRequest
from firesift.api.watches import WatchRequest
from firesift.trends.model import StoryStatus, TrendKind
from firesift.watches.model import Kind as WatchKind

__all__ = ["OPERATIONS", "UNDOCUMENTED", "Operation", "Param", "document", "openapi_path", "routes"]

Schema = dict[str, Any]

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
_REF = "#/components/schemas/{model}"


# -- schema helpers ---------------------------------------------------------------------------

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
OBJ: Schema = {"type": "object"}
ANY: Schema = {}


def null(s: Schema) -> Schema:
    """``s`` or ``null``."""
    return {"anyOf": [s, {"type": "null"}]}


def arr(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def ref(name: str) -> Schema:
    return {"$ref": _REF.format(model=name)}


def obj(props: dict[str, Schema], *, optional: tuple[str, ...] = (), **extra: Any) -> Schema:
    """An open object whose ``props`` are all required except the ``optional`` ones."""
    required = [k for k in props if k not in optional]
    return {"type": "object", "properties": props, "required": required, **extra}


def enum(literal: Any) -> Schema:
    """The values of a ``Literal`` type."""
    return {"type": "string", "enum": list(get_args(literal))}


def extend(base: str, props: dict[str, Schema], **kw: Any) -> Schema:
    """Schema ``base`` with more required properties."""
    return {"allOf": [ref(base), obj(props, **kw)]}


_COUNTS = {"type": "object", "additionalProperties": {"type": "object"}}

_RESPONSE_SCHEMAS: dict[str, Schema] = {
    "Error": obj(
        {
            "error": obj(
                {"message": STR, "type": STR, "param": null(STR), "code": null(STR)},
                additionalProperties=False,
            )
        },
        description="Every error, in OpenAI's shape (firesift.api.errors).",
    ),
    "Post": obj(
        {
            "source": STR,
            "id": STR,
            "url": STR,
            "author": obj(
                {
                    "id": STR,
                    "handle": STR,
                    "name": STR,
                    "verified": BOOL,
                    "followers": null(INT),
                }
            ),
            "created_at": {"type": "string", "format": "date-time"},
            "text": STR,
            "lang": null(STR),
            "reply_to": null(STR),
            "conversation_id": null(STR),
            "metrics": obj(
                {"likes": INT, "reposts": INT, "replies": INT, "quotes": INT, "views": null(INT)}
            ),
        }
    ),
    "SearchResults": obj(
        {"query": STR, "as_of": STR, "results": arr(extend("Post", {"score": NUM}))}
    ),
    "Trend": obj(
        {
            "term": STR,
            "kind": enum(TrendKind),
            "score": NUM,
            "volume": INT,
            "authors": INT,
            "series": arr(INT),
        }
    ),
    "Story": obj(
        {
            "id": STR,
            "title": STR,
            "terms": arr(STR),
            "first_seen": STR,
            "first_seen_ms": INT,
            "detected_ms": INT,
            "volume": arr(INT),
            "authors": INT,
            "status": enum(StoryStatus),
            "top_posts": arr(STR),
            "score": NUM,
        }
    ),
    "TrendReport": obj(
        {
            "as_of": STR,
            "as_of_ms": INT,
            "window_ms": INT,
            "terms": arr(ref("Trend")),
            "stories": arr(ref("Story")),
        }
    ),
    "Thread": obj(
        {
            "key": STR,
            "as_of": null(STR),
            "post": ref("Post"),
            "root": ref("Post"),
            "thread": arr(
                extend(
                    "Post",
                    {
                        "key": STR,
                        "parent": null(STR),
                        "depth": INT,
                        "stance": null(STR),
                        "confidence": null(NUM),
                        "probs": null({"type": "object", "additionalProperties": NUM}),
                    },
                )
            ),
            "replies": INT,
            "tally": _COUNTS,
            "stance_by": STR,
            "warnings": arr(STR),
        }
    ),
    "Verdict": obj(
        {
            "claim": STR,
            "verdict": enum(VerdictLabel),
            "summary": STR,
            "evidence": arr(OBJ),
            "counts": _COUNTS,
            "roles": _COUNTS,
            "reason": STR,
            "confidence": NUM,
            "first_reported": null(STR),
            "as_of": STR,
            "warnings": arr(STR),
        }
    ),
    "IngestSummary": obj(
        {
            "ingested": INT,
            "duplicates": INT,
            "updated": INT,
            "deleted": INT,
            "skipped": INT,
            "skipped_reasons": {"type": "object", "additionalProperties": INT},
            "problems": arr(obj({"where": STR, "reason": STR})),
            "events": INT,
        }
    ),
    "SourceStatus": obj(
        {"key": STR, "source": STR, "state": STR, "posts": INT, "errors": INT},
        description="One live source's status (firesift.sources.runner).",
    ),
    "Stats": obj(
        {
            "posts": INT,
            "tombstones": INT,
            "last_seq": INT,
            "index_docs": INT,
            "index_lag": INT,
            "newest_post": null(STR),
            "ingest_rate": NUM,
            "ingested": INT,
            "queued": INT,
            "live_clients": INT,
            "uptime_s": NUM,
            "sources": arr(ref("SourceStatus")),
        }
    ),
    "Health": obj({"status": {"type": "string", "enum": ["ok", "unavailable"]}, "writer": BOOL}),
    "Watch": obj(
        {
            "id": STR,
            "kind": enum(WatchKind),
            "name": STR,
            "query": null(STR),
            "claim": null(STR),
            "min_posts": INT,
            "min_accounts": INT,
            "window_ms": INT,
            "every": INT,
            "webhook": null(STR),
            "created_ms": INT,
        }
    ),
    "WatchEvent": obj(
        {
            "id": STR,
            "watch": STR,
            "kind": enum(WatchKind),
            "at": STR,
            "at_ms": INT,
            "posts": arr(ref("Post")),
        },
        description="An alert: the SSE data and the webhook body (signed as these bytes).",
    ),
    "Deleted": obj({"id": STR, "deleted": {"const": True}}),
    "ModelList": obj(
        {
            "object": {"const": "list"},
            "data": arr(obj({"id": STR, "object": {"const": "model"}, "owned_by": STR})),
        }
    ),
    "UrlCitation": obj(
        {"url": STR, "title": STR, "start_index": INT, "end_index": INT},
        description="A citation's span of the text: Python str offsets (code points).",
    ),
    "SearchResult": obj(
        {
            "n": INT,
            "source": STR,
            "id": STR,
            "title": STR,
            "url": STR,
            "date": STR,
            "snippet": STR,
            "author": STR,
            "author_name": STR,
            "verified": BOOL,
            "created_at": STR,
            "text": STR,
            "metrics": OBJ,
            "stance": STR,
        },
        optional=("stance",),
        description="A cited post: Perplexity's {title, url, date, snippet} and the post's "
        "fields; 'n' is its [n] marker.",
    ),
    "Grounding": obj(
        {
            "search_results": arr(ref("SearchResult")),
            "evidence": obj(
                {"posts": INT, "accounts": INT, "first_seen": null(STR), "last_seen": null(STR)}
            ),
            "as_of": STR,
            "warnings": arr(STR),
            "grounded": BOOL,
            "composer": STR,
        },
        description="firesift's extra top-level fields: the evidence behind an answer.",
    ),
    "ChatCompletion": {
        "allOf": [
            ref("Grounding"),
            obj(
                {
                    "id": STR,
                    "object": {"const": "chat.completion"},
                    "created": INT,
                    "model": STR,
                    "choices": arr(
                        obj(
                            {
                                "index": INT,
                                "message": obj(
                                    {
                                        "role": {"const": "assistant"},
                                        "content": STR,
                                        "annotations": arr(
                                            obj(
                                                {
                                                    "type": {"const": "url_citation"},
                                                    "url_citation": ref("UrlCitation"),
                                                }
                                            )
                                        ),
                                    }
                                ),
                                "finish_reason": STR,
                            }
                        )
                    ),
                    "usage": obj(
                        {"prompt_tokens": INT, "completion_tokens": INT, "total_tokens": INT}
                    ),
                    "citations": arr(STR),
                },
                optional=("citations",),
            ),
        ]
    },
    "ChatCompletionChunk": obj(
        {
            "id": STR,
            "object": {"const": "chat.completion.chunk"},
            "created": INT,
            "model": STR,
            "choices": arr(obj({"index": INT, "delta": OBJ, "finish_reason": null(STR)})),
        },
        description="One 'data:' line of the stream (it ends with 'data: [DONE]'); the finish "
        "chunk carries the Grounding fields and 'annotations'.",
    ),
    "ResponseObject": obj(
        {
            "id": STR,
            "object": {"const": "response"},
            "created_at": INT,
            "status": {"type": "string", "enum": ["in_progress", "completed", "failed"]},
            "model": STR,
            "output": arr(
                obj(
                    {
                        "id": STR,
                        "type": {"const": "message"},
                        "role": {"const": "assistant"},
                        "status": STR,
                        "content": arr(
                            obj(
                                {
                                    "type": {"const": "output_text"},
                                    "text": STR,
                                    "annotations": arr(
                                        extend("UrlCitation", {"type": {"const": "url_citation"}})
                                    ),
                                }
                            )
                        ),
                    }
                )
            ),
            "error": null(OBJ),
            "previous_response_id": null(STR),
            "store": BOOL,
            "usage": null(
                obj(
                    {
                        "input_tokens": INT,
                        "output_tokens": INT,
                        "total_tokens": INT,
                        "num_server_side_tools_used": INT,
                    }
                )
            ),
            "citations": arr(STR),
            "grounded": BOOL,
        },
        optional=("citations", "grounded"),
        description="The Responses object; once completed it also carries the Grounding "
        "fields, 'citations', 'tool_calls' and 'server_side_tool_usage'.",
    ),
    "ResponseEvent": obj(
        {"type": STR, "sequence_number": INT},
        description="Each event's data: its 'type' is also the SSE event name.",
    ),
    "InputItemList": obj(
        {
            "object": {"const": "list"},
            "data": arr(
                obj({"id": STR, "type": {"const": "message"}, "role": STR, "content": arr(OBJ)})
            ),
            "first_id": null(STR),
            "last_id": null(STR),
            "has_more": BOOL,
        }
    ),
    "ResponseDeleted": obj(
        {"id": STR, "object": {"const": "response"}, "deleted": {"const": True}}
    ),
}


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
    ``raw_body`` a media type and schema for a non-JSON body; ``errors`` the error statuses."""

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
            Param("q", "The query, e.g. 'ottawa from:CTVNews -is:retweet'.", required=True),
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
    401: "An API key is required (error.code missing_api_key or invalid_api_key)",
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


def _error(status: int | str) -> Schema:
    return {
        "description": _ERRORS[status],
        "content": {"application/json": {"schema": ref("Error")}},
    }


def _events(events: dict[str, Schema]) -> Schema:
    names = ", ".join(f"'{e}'" for e in events)
    return {
        "schema": {"type": "string", "description": f"Server-Sent Events: {names}."},
        "x-sse-events": events,
    }


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
        for n in re.findall(r"\{(\w+)\}", path)
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
    statuses: list[int | str] = [*op.errors]
    if not op.public:
        statuses.append(401)
    for status in sorted(statuses, key=str):
        responses[str(status)] = _error(status)
    responses["5XX"] = _error("5XX")
    out: Schema = {
        "operationId": op.method.lower() + re.sub(r"\W+", "_", path).rstrip("_"),
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
    mapping, defs = models_json_schema([(m, "validation") for m in models], ref_template=_REF)
    refs: dict[type[BaseModel], Schema] = {
        m: s for (m, _), s in mapping.items() if isinstance(m, type) and issubclass(m, BaseModel)
    }
    schemas: dict[str, Schema] = defs.get("$defs", {})
    tools = schemas[ResponsesRequest.__name__]["properties"]["tools"]
    tools["anyOf"][0]["items"] = {
        "oneOf": [ref(t.__name__) for t in TOOLS.values()],
        "discriminator": {
            "propertyName": "type",
            "mapping": {k: _REF.format(model=t.__name__) for k, t in TOOLS.items()},
        },
    }
    return refs, schemas


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
            "schemas": {**schemas, **_RESPONSE_SCHEMAS},
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key from `firesift keys create`.",
                },
                "api_key": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "api_key",
                    "description": "The key in the query string, GET only (EventSource).",
                },
            },
        },
        "security": [{"bearer": []}, {"api_key": []}],
    }


async def openapi_json(request: Request) -> Response:
    return Response(_document_bytes(), media_type="application/json")


routes = [Route("/openapi.json", openapi_json, methods=["GET"])]
