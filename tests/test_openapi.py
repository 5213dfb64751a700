"""``GET /openapi.json``: valid OpenAPI 3.1, in step with the app's routes, true of real answers.

The document is checked for OpenAPI 3.1's structure with ``jsonschema`` (no OpenAPI validator
is installed): a structural meta-schema below, every schema in it a valid JSON Schema 2020-12,
every ``$ref`` resolving, path templates and path parameters agreeing, unique operation ids,
security and tags declared. Real answers from ``firesift serve`` over a socket (RumourEval 2017
posts) are validated against the schemas documented for their status and media type.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pytest
from jsonschema import Draft202012Validator
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route

from firesift.api.app import create_app
from firesift.api.auth import KeyStore
from firesift.api.openapi import UNDOCUMENTED, document, openapi_path
from firesift.service import Service
from source_harness import run_async

if TYPE_CHECKING:
    from api_server import ServerProcess

pytest_plugins = ["api_server"]

QUESTION = "What happened at the war memorial in Ottawa?"
CHAT: dict[str, Any] = {"messages": [{"role": "user", "content": QUESTION}]}
X_SOURCE = {"type": "x", "included_x_handles": ["CTVNews"]}
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# Paths of the app the document leaves out, on purpose (each reason is in firesift.api.openapi):
# the web page, its files, and MCP's JSON-RPC transport.
NOT_DOCUMENTED = {"/", "/static", "/mcp"}

_X = {"^x-": {}}
OPENAPI_31: dict[str, Any] = {
    "type": "object",
    "required": ["openapi", "info", "paths"],
    "properties": {
        "openapi": {"type": "string", "pattern": r"^3\.1\.\d+$"},
        "info": {
            "type": "object",
            "required": ["title", "version"],
            "properties": {
                "title": {"type": "string"},
                "version": {"type": "string"},
                "summary": {"type": "string"},
                "description": {"type": "string"},
                "license": {
                    "type": "object",
                    "required": ["name"],
                    "not": {"required": ["identifier", "url"]},
                },
            },
        },
        "paths": {
            "type": "object",
            "patternProperties": {"^/": {"$ref": "#/$defs/pathItem"}, **_X},
            "additionalProperties": False,
        },
        "components": {
            "type": "object",
            "properties": {
                "schemas": {
                    "type": "object",
                    "propertyNames": {"pattern": r"^[a-zA-Z0-9.\-_]+$"},
                    "additionalProperties": {"type": ["object", "boolean"]},
                },
                "securitySchemes": {
                    "type": "object",
                    "additionalProperties": {"$ref": "#/$defs/securityScheme"},
                },
            },
        },
        "security": {"$ref": "#/$defs/security"},
        "tags": {
            "type": "array",
            "items": {"type": "object", "required": ["name"]},
        },
    },
    "patternProperties": _X,
    "additionalProperties": False,
    "$defs": {
        "pathItem": {
            "type": "object",
            "properties": {
                **{m: {"$ref": "#/$defs/operation"} for m in METHODS},
                "parameters": {"type": "array", "items": {"$ref": "#/$defs/parameter"}},
                "summary": {"type": "string"},
                "description": {"type": "string"},
            },
            "patternProperties": _X,
            "additionalProperties": False,
        },
        "operation": {
            "type": "object",
            "required": ["responses"],
            "properties": {
                "operationId": {"type": "string"},
                "summary": {"type": "string"},
                "description": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "parameters": {"type": "array", "items": {"$ref": "#/$defs/parameter"}},
                "requestBody": {
                    "type": "object",
                    "required": ["content"],
                    "properties": {
                        "required": {"type": "boolean"},
                        "content": {"$ref": "#/$defs/content"},
                    },
                },
                "responses": {
                    "type": "object",
                    "minProperties": 1,
                    "patternProperties": {
                        "^[1-5](?:[0-9]{2}|XX)$": {"$ref": "#/$defs/response"},
                        **_X,
                    },
                    "properties": {"default": {"$ref": "#/$defs/response"}},
                    "additionalProperties": False,
                },
                "security": {"$ref": "#/$defs/security"},
            },
            "patternProperties": _X,
            "additionalProperties": False,
        },
        "parameter": {
            "type": "object",
            "required": ["name", "in", "schema"],
            "properties": {
                "name": {"type": "string"},
                "in": {"enum": ["query", "header", "path", "cookie"]},
                "required": {"type": "boolean"},
                "description": {"type": "string"},
                "schema": {"type": ["object", "boolean"]},
            },
            "if": {"properties": {"in": {"const": "path"}}},
            "then": {"required": ["required"], "properties": {"required": {"const": True}}},
            "patternProperties": _X,
            "additionalProperties": False,
        },
        "content": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {
                "type": "object",
                "properties": {"schema": {"type": ["object", "boolean"]}},
                "patternProperties": _X,
                "additionalProperties": False,
            },
        },
        "response": {
            "type": "object",
            "required": ["description"],
            "properties": {
                "description": {"type": "string"},
                "content": {"$ref": "#/$defs/content"},
                "links": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "required": ["operationId"],
                        "properties": {
                            "operationId": {"type": "string"},
                            "parameters": {"type": "object"},
                        },
                    },
                },
            },
            "patternProperties": _X,
            "additionalProperties": False,
        },
        "securityScheme": {
            "type": "object",
            "required": ["type"],
            "properties": {
                "type": {"enum": ["apiKey", "http", "mutualTLS", "oauth2", "openIdConnect"]}
            },
            "allOf": [
                {
                    "if": {"properties": {"type": {"const": "apiKey"}}},
                    "then": {
                        "required": ["name", "in"],
                        "properties": {"in": {"enum": ["query", "header", "cookie"]}},
                    },
                },
                {
                    "if": {"properties": {"type": {"const": "http"}}},
                    "then": {"required": ["scheme"]},
                },
            ],
        },
        "security": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return document()


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def _schemas(node: Any) -> Iterator[Any]:
    """Every schema the document holds outside components (parameters, bodies, answers)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "schema":
                yield value
            elif key != "components":
                yield from _schemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schemas(value)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "mapping"):
                yield from [value] if isinstance(value, str) else value.values()
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve(doc: dict[str, Any], pointer: str) -> Any:
    assert pointer.startswith("#/"), pointer
    node: Any = doc
    for part in pointer[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    errors = [e.message for e in Draft202012Validator(OPENAPI_31).iter_errors(doc)]
    assert errors == []
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    for schema in _schemas(doc["paths"]):
        Draft202012Validator.check_schema(schema)
    for pointer in set(_refs(doc)):
        assert _resolve(doc, pointer) is not None, pointer
    ids = [op["operationId"] for _, _, op in _operations(doc)]
    assert len(ids) == len(set(ids))
    for _, _, op in _operations(doc):
        for answer in op["responses"].values():
            for link in answer.get("links", {}).values():
                assert link["operationId"] in ids
    schemes = set(doc["components"]["securitySchemes"])
    tags = {t["name"] for t in doc["tags"]}
    for path, method, op in _operations(doc):
        in_path = set(re.findall(r"\{(\w+)\}", path))
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert in_path == declared, (method, path)
        for requirement in op.get("security", doc["security"]):
            assert set(requirement) <= schemes
        assert set(op["tags"]) <= tags
        assert any(s.startswith("2") for s in op["responses"]), (method, path)
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key from `firesift keys create`.",
    }


def test_the_structural_check_rejects_broken_documents(doc: dict[str, Any]) -> None:
    broken = orjson.loads(orjson.dumps(doc))
    broken["openapi"] = "3.0.3"
    del broken["paths"]["/api/search"]["get"]["responses"]
    broken["paths"]["/api/posts/{source}/{id}"]["get"]["parameters"][0]["required"] = False
    messages = [e.message for e in Draft202012Validator(OPENAPI_31).iter_errors(broken)]
    assert len(messages) >= 3, messages


def _app_operations(routes: list[BaseRoute]) -> set[tuple[str, str]]:
    """(path, method) for every route of an app; a mount or an any-method route as (path, *)."""
    out = set()
    for route in routes:
        if isinstance(route, Mount):
            out.add((route.path, "*"))
        elif isinstance(route, Route):
            path = openapi_path(route.path)
            if route.methods is None:
                out.add((path, "*"))
            else:
                out |= {(path, m.lower()) for m in route.methods if m != "HEAD"}
    return out


def _drift(app: Starlette, doc: dict[str, Any]) -> tuple[set[Any], set[Any]]:
    """(routes the document lacks, operations the app lacks), leaving out NOT_DOCUMENTED."""
    served = {(p, m) for p, m in _app_operations(app.routes) if p not in NOT_DOCUMENTED}
    documented = {(p, m) for p, m, _ in _operations(doc)}
    return served - documented, documented - served


def test_every_route_is_documented_and_every_operation_served(
    app: Starlette, doc: dict[str, Any]
) -> None:
    assert set(UNDOCUMENTED) == NOT_DOCUMENTED
    assert {p for p, _ in _app_operations(app.routes)} >= NOT_DOCUMENTED
    assert _drift(app, doc) == (set(), set())
    watches = {(p, m) for p, m, _ in _operations(doc) if p.startswith("/api/watches")}
    assert len(watches) == 5


def test_a_route_added_without_a_declaration_is_caught(app: Starlette, doc: dict[str, Any]) -> None:
    async def endpoint() -> None:  # never called
        raise AssertionError

    grown = Starlette(routes=[*app.routes, Route("/api/new/{x:path}", endpoint, methods=["PUT"])])
    assert _drift(grown, doc) == ({("/api/new/{x}", "put")}, set())
    shrunk = Starlette(routes=[r for r in app.routes if getattr(r, "path", "") != "/api/stats"])
    assert _drift(shrunk, doc) == (set(), {("/api/stats", "get")})


def test_served_without_a_key_while_the_api_needs_one(
    service: Service, tmp_path: Path, doc: dict[str, Any]
) -> None:
    keys = KeyStore(tmp_path)
    keys.create()
    app = create_app(service, keys=keys, require_key=True)

    async def get(*paths: str) -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return [await c.get(p) for p in paths]

    served, denied = run_async(lambda: get("/openapi.json", "/api/stats"))
    assert served.status_code == 200 and served.headers["content-type"] == "application/json"
    assert served.json() == doc
    assert denied.status_code == 401
    _check(doc, "/api/stats", "get", 401, "application/json", denied.json())


# -- real answers over a socket ---------------------------------------------------------------


def _validator(doc: dict[str, Any], schema: Any) -> Draft202012Validator:
    """A validator for ``schema`` whose ``#/components/...`` references resolve in ``doc``."""
    root = {"allOf": [schema], "components": doc["components"]}
    return Draft202012Validator(root)


def _check(doc: dict[str, Any], path: str, method: str, status: int, media: str, body: Any) -> None:
    responses = doc["paths"][path][method]["responses"]
    entry = responses.get(str(status)) or responses[f"{str(status)[0]}XX"]
    schema = entry["content"][media]["schema"]
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in _validator(doc, schema).iter_errors(body)
    ]
    assert errors == [], (method, path, status)


def _check_request(doc: dict[str, Any], path: str, body: Any) -> None:
    schema = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert list(_validator(doc, schema).iter_errors(body)) == []


def _sse(raw: str) -> list[tuple[str, str]]:
    """(event name, data) of each event of an SSE body (``message`` when unnamed)."""
    out = []
    for frame in raw.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in frame.split("\n") if line and not line.startswith(":")
        )
        if "data" in fields:
            out.append((fields.get("event", "message"), fields["data"]))
    return out


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c


def test_served_document_is_the_built_one(http: httpx.Client, doc: dict[str, Any]) -> None:
    r = http.get("/openapi.json")
    assert r.status_code == 200
    assert r.json() == doc


@pytest.mark.parametrize(
    ("url", "path", "status"),
    [
        ("/api/search?q=ottawa+shooting&as_of=2014-10-22T16:00Z&limit=5", "/api/search", 200),
        ("/api/search?q=%23ferguson&sort=recent", "/api/search", 200),
        ("/api/trends?as_of=2014-10-22T15:30Z&window=2h&limit=5", "/api/trends", 200),
        ("/api/posts/x/524925050739490816", "/api/posts/{source}/{id}", 200),
        ("/api/stats", "/api/stats", 200),
        ("/api/sources", "/api/sources", 200),
        ("/v1/models", "/v1/models", 200),
        ("/healthz", "/healthz", 200),
        ("/api/search?q=", "/api/search", 422),
        ("/api/search?q=bogus:operator", "/api/search", 400),
        ("/api/trends?window=forever", "/api/trends", 422),
        ("/api/posts/x/1", "/api/posts/{source}/{id}", 404),
        ("/v1/responses/resp_nope", "/v1/responses/{response_id}", 404),
    ],
)
def test_get_answers_match_their_schemas(
    http: httpx.Client, doc: dict[str, Any], url: str, path: str, status: int
) -> None:
    r = http.get(url)
    assert r.status_code == status, r.text
    _check(doc, path, "get", status, "application/json", r.json())


def test_trends_and_search_are_not_empty(http: httpx.Client) -> None:
    """The schema checks above run over real content, not empty lists."""
    trends = http.get("/api/trends", params={"as_of": "2014-10-22T15:30Z", "window": "2h"})
    assert trends.json()["terms"] and trends.json()["stories"]
    assert http.get("/api/search", params={"q": "ottawa"}).json()["results"]


def test_chat_completion_matches_its_schema(http: httpx.Client, doc: dict[str, Any]) -> None:
    body = {"messages": [{"role": "user", "content": QUESTION}]}
    _check_request(doc, "/v1/chat/completions", body)
    r = http.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    answer = r.json()
    assert answer["citations"] and answer["choices"][0]["message"]["annotations"]
    _check(doc, "/v1/chat/completions", "post", 200, "application/json", answer)
    bad = http.post("/v1/chat/completions", json={"messages": []})
    assert bad.status_code == 422
    _check(doc, "/v1/chat/completions", "post", 422, "application/json", bad.json())
    unknown = http.post("/v1/chat/completions", json={**body, "model": "gpt-4o"})
    assert unknown.status_code == 404
    _check(doc, "/v1/chat/completions", "post", 404, "application/json", unknown.json())


def test_chat_stream_chunks_match_the_event_schema(http: httpx.Client, doc: dict[str, Any]) -> None:
    body = {"messages": [{"role": "user", "content": QUESTION}], "stream": True}
    with http.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = _sse(r.read().decode())
    media = doc["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    declared = media["text/event-stream"]["x-sse-events"]
    assert events[-1] == ("message", "[DONE]")
    for name, data in events[:-1]:
        assert list(_validator(doc, declared[name]).iter_errors(orjson.loads(data))) == []
    assert len(events) > 3


def test_responses_match_their_schemas(http: httpx.Client, doc: dict[str, Any]) -> None:
    body = {
        "input": QUESTION,
        "tools": [{"type": "x_search", "from_date": "2014-10-22"}],
        "include": ["no_inline_citations"],
    }
    _check_request(doc, "/v1/responses", body)
    r = http.post("/v1/responses", json=body)
    assert r.status_code == 200
    created = r.json()
    assert created["citations"] and created["output"][0]["content"][0]["annotations"]
    _check(doc, "/v1/responses", "post", 200, "application/json", created)
    rid = created["id"]
    stored = http.get(f"/v1/responses/{rid}")
    _check(doc, "/v1/responses/{response_id}", "get", 200, "application/json", stored.json())
    items = http.get(f"/v1/responses/{rid}/input_items", params={"order": "asc"})
    assert items.json()["data"]
    path = "/v1/responses/{response_id}/input_items"
    _check(doc, path, "get", 200, "application/json", items.json())
    deleted = http.delete(f"/v1/responses/{rid}")
    _check(doc, "/v1/responses/{response_id}", "delete", 200, "application/json", deleted.json())
    for bad, status in (
        ({"input": QUESTION, "search_parameters": {"mode": "on"}}, 410),
        ({"input": QUESTION, "tools": [{"type": "code_interpreter"}]}, 400),
    ):
        r = http.post("/v1/responses", json=bad)
        assert r.status_code == status
        _check(doc, "/v1/responses", "post", status, "application/json", r.json())


def test_responses_stream_events_match_their_schemas(
    http: httpx.Client, doc: dict[str, Any]
) -> None:
    with http.stream("POST", "/v1/responses", json={"input": QUESTION, "stream": True}) as r:
        events = _sse(r.read().decode())
    media = doc["paths"]["/v1/responses"]["post"]["responses"]["200"]["content"]
    declared = media["text/event-stream"]["x-sse-events"]
    for name, data in events:
        assert list(_validator(doc, declared[name]).iter_errors(orjson.loads(data))) == []
    assert events[-1][0] == "response.completed"
    final = orjson.loads(events[-1][1])["response"]
    _check(doc, "/v1/responses", "post", 200, "application/json", final)


def test_check_ingest_and_watches_match_their_schemas(
    http: httpx.Client, doc: dict[str, Any], real_data: Path
) -> None:
    claim = {"claim": "The Ottawa gunman is dead", "as_of": "2014-10-23T00:00Z"}
    _check_request(doc, "/api/check", claim)
    r = http.post("/api/check", json=claim)
    _check(doc, "/api/check", "post", r.status_code, "application/json", r.json())
    assert r.status_code == 200
    lines = (real_data / "rumoureval2017/posts.jsonl").read_bytes().splitlines()[:3]
    r = http.post("/api/ingest", content=b"\n".join([*lines, b"{not json"]) + b"\n")
    assert r.status_code == 200 and r.json()["skipped"] == 1
    _check(doc, "/api/ingest", "post", 200, "application/json", r.json())
    watch = {"kind": "matches", "query": "ottawa", "name": "ottawa"}
    _check_request(doc, "/api/watches", watch)
    r = http.post("/api/watches", json=watch)
    assert r.status_code == 201
    _check(doc, "/api/watches", "post", 201, "application/json", r.json())
    wid = r.json()["id"]
    _check(doc, "/api/watches", "get", 200, "application/json", http.get("/api/watches").json())
    one = http.get(f"/api/watches/{wid}")
    _check(doc, "/api/watches/{id}", "get", 200, "application/json", one.json())
    gone = http.delete(f"/api/watches/{wid}")
    _check(doc, "/api/watches/{id}", "delete", 200, "application/json", gone.json())
    missing = http.get(f"/api/watches/{wid}")
    assert missing.status_code == 404
    _check(doc, "/api/watches/{id}", "get", 404, "application/json", missing.json())


def _first_events(r: httpx.Response, want: set[str], guard_s: float = 60.0) -> dict[str, Any]:
    """The data of the first event of each name in ``want`` from an open SSE answer (a guard
    ends the wait on a stream that never sends them, since heartbeats keep it alive)."""
    got: dict[str, Any] = {}
    event = "message"
    deadline = time.monotonic() + guard_s
    for line in r.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event in want and event not in got:
            got[event] = orjson.loads(line[6:])
            if set(got) == want:
                break
        assert time.monotonic() < deadline, f"no {want - set(got)} event on the stream"
    return got


def test_live_events_match_their_schemas(http: httpx.Client, doc: dict[str, Any]) -> None:
    declared = doc["paths"]["/api/live"]["get"]["responses"]["200"]["content"]
    events = declared["text/event-stream"]["x-sse-events"]
    with http.stream("GET", "/api/live") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        got = _first_events(r, {"stats", "trends"})
    for name, data in got.items():
        assert list(_validator(doc, events[name]).iter_errors(data)) == [], name
    assert got["stats"]["posts"] > 4000


def test_watch_events_match_their_schema(
    http: httpx.Client, doc: dict[str, Any], real_data: Path
) -> None:
    """A watch for Gurlitt (a PHEME story RumourEval 2017 lacks) fires on its real posts."""
    r = http.post("/api/watches", json={"kind": "matches", "query": "gurlitt"})
    wid = r.json()["id"]
    lines = [
        line
        for line in (real_data / "pheme9/source_tweets.jsonl").read_bytes().splitlines()
        if b'"event": "gurlitt"' in line
    ][:20]
    assert lines
    ingested = http.post("/api/ingest", content=b"\n".join(lines) + b"\n")
    assert ingested.json()["ingested"] == len(lines)
    declared = doc["paths"]["/api/watches/{id}/events"]["get"]["responses"]["200"]["content"]
    schema = declared["text/event-stream"]["x-sse-events"]["watch"]
    with http.stream("GET", f"/api/watches/{wid}/events", params={"last_event_id": 0}) as r:
        event = _first_events(r, {"watch"})["watch"]
    assert list(_validator(doc, schema).iter_errors(event)) == []
    assert event["watch"] == wid and event["posts"]
    http.delete(f"/api/watches/{wid}")


@pytest.mark.parametrize(
    ("path", "body", "taken"),
    [
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": QUESTION}]}, True),
        ("/v1/chat/completions", {"messages": [{"role": "assistant", "content": "hi"}]}, False),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "  "}]}, False),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": [{"type": "text", "text": QUESTION}]}]},
            True,
        ),
        ("/v1/chat/completions", {**CHAT, "search_domain_filter": ["cbc.ca", "-rt.com"]}, True),
        ("/v1/chat/completions", {**CHAT, "search_domain_filter": ["not a domain"]}, False),
        ("/v1/chat/completions", {**CHAT, "search_after_date_filter": "10/22/2014"}, True),
        ("/v1/chat/completions", {**CHAT, "search_after_date_filter": "2014-10-22"}, False),
        ("/v1/chat/completions", {**CHAT, "search_parameters": {"from_date": "2014-10-22"}}, True),
        ("/v1/chat/completions", {**CHAT, "search_parameters": {"to_date": "22/10/2014"}}, False),
        ("/v1/chat/completions", {**CHAT, "search_parameters": {"sources": [X_SOURCE]}}, True),
        (
            "/v1/chat/completions",
            {
                **CHAT,
                "search_parameters": {"sources": [{**X_SOURCE, "included_x_handles": ["@a"]}]},
            },
            False,
        ),
        ("/v1/responses", {"input": QUESTION}, True),
        (
            "/v1/responses",
            {"input": [{"type": "reasoning", "role": "user", "content": "x"}]},
            False,
        ),
        ("/v1/responses", {"input": ""}, False),
        ("/v1/responses", {"input": [{"role": "user", "content": QUESTION}]}, True),
        ("/v1/responses", {"input": [{"type": "message", "content": QUESTION}]}, False),
        ("/v1/responses", {"input": QUESTION, "tools": [{"type": "x_search"}]}, True),
        ("/v1/responses", {"input": QUESTION, "tools": [{"type": "code_interpreter"}]}, False),
        ("/api/check", {"claim": "The Ottawa gunman is dead"}, True),
        ("/api/check", {"claim": "   "}, False),
        ("/api/watches", {"query": "ottawa"}, True),
        ("/api/watches", {"kind": "matches"}, False),
        ("/api/watches", {"kind": "verdict", "claim": "The gunman is dead"}, True),
        ("/api/watches", {"kind": "verdict", "query": "gunman"}, False),
        ("/api/watches", {"kind": "story", "query": "ottawa", "claim": "x"}, False),
        ("/api/watches", {"kind": "someday", "query": "ottawa"}, False),
        ("/api/watches", {"query": "ottawa", "every": 0}, False),
        ("/api/watches", {"query": "ottawa", "webhook": "ftp://example.com"}, False),
    ],
)
def test_request_schemas_take_what_the_server_takes(
    http: httpx.Client, doc: dict[str, Any], path: str, body: dict[str, Any], taken: bool
) -> None:
    """The validators' rules stated in the request schemas agree with the server's answers."""
    schema = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    valid = not list(_validator(doc, schema).iter_errors(body))
    r = http.post(path, json=body)
    assert (valid, r.status_code < 400) == (taken, taken), r.text
    if r.status_code == 201:
        http.delete(f"/api/watches/{r.json()['id']}")


def test_a_wrong_method_lists_every_method_the_path_allows(http: httpx.Client) -> None:
    """GET and DELETE on one path are one route, so a 405 advertises both (a schemathesis
    finding: as two routes, Starlette listed only the first one's methods)."""
    for path, expected in (
        ("/v1/responses/resp_unknown", {"GET", "DELETE"}),
        ("/api/watches", {"GET", "POST"}),
        ("/api/watches/1", {"GET", "DELETE"}),
    ):
        r = http.put(path, json={})
        assert r.status_code == 405, (path, r.text)
        allowed = {m.strip() for m in r.headers["allow"].split(",")}
        assert expected <= allowed, (path, allowed)
