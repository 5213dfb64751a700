"""The API's answers as JSON Schema (draft 2020-12, OpenAPI 3.1's dialect), for
:mod:`firesift.api.openapi`.

The server builds these shapes with ``to_dict`` methods on plain values (:mod:`firesift.search`,
:mod:`firesift.trends.model`, :mod:`firesift.answer`, :mod:`firesift.watches`) and the
OpenAI-compatible endpoints, so they are written out here, compactly: every field the server
always sends is ``required``, enums come from the ``Literal`` types that define them, and
objects stay open (more properties allowed: the OpenAI shapes and firesift's extras grow
fields, and clients ignore the ones they do not know). ``tests/test_openapi.py`` validates real
answers against them, so a field renamed or dropped fails there.
"""

from __future__ import annotations

from typing import Any, get_args

from firesift.answer.model import VerdictLabel
from firesift.trends.model import StoryStatus, TrendKind
from firesift.watches.model import Kind as WatchKind

__all__ = [
    "BOOL",
    "INT",
    "NUM",
    "OBJ",
    "REF",
    "SCHEMAS",
    "STR",
    "Schema",
    "arr",
    "enum",
    "extend",
    "null",
    "obj",
    "ref",
]

Schema = dict[str, Any]
REF = "#/components/schemas/{model}"
"""Where the document keeps named schemas."""

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
OBJ: Schema = {"type": "object"}


def null(s: Schema) -> Schema:
    """``s`` or ``null``."""
    return {"anyOf": [s, {"type": "null"}]}


def arr(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def ref(name: str) -> Schema:
    return {"$ref": REF.format(model=name)}


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

SCHEMAS: dict[str, Schema] = {
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
