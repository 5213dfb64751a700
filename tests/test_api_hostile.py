"""Hostile input on the API: wrong types, lax coercions, out-of-range times, malformed bodies.

Each case is one a fuzzing run (schemathesis over ``/openapi.json``, and curl by hand) found
answered with a 2xx for an invalid body or with a 500; the answer must be a 4xx in OpenAI's
error shape. Runs in-process over the real RumourEval 2017 data (``api_server`` fixtures).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytest_plugins = ["api_server"]

CHAT: dict[str, Any] = {"messages": [{"role": "user", "content": "Ottawa shooting"}]}


def _openai_error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/responses", {"input": "ottawa", "store": 0}, "store"),
        ("/v1/responses", {"input": "ottawa", "stream": "true"}, "stream"),
        ("/v1/chat/completions", {**CHAT, "stream": 1}, "stream"),
        ("/v1/chat/completions", {**CHAT, "stream_options": {"include_usage": "yes"}}, None),
        (
            "/v1/chat/completions",
            {**CHAT, "search_parameters": {"sources": [{"type": "x", "post_view_count": False}]}},
            "search_parameters.sources.0.x.post_view_count",
        ),
        (
            "/v1/chat/completions",
            {**CHAT, "search_parameters": {"max_search_results": "5"}},
            "search_parameters.max_search_results",
        ),
        (
            "/v1/chat/completions",
            {**CHAT, "search_parameters": {"return_citations": 1}},
            "search_parameters.return_citations",
        ),
        ("/api/watches", {"query": "ottawa", "every": True}, "every"),
        ("/api/watches", {"query": "ottawa", "min_posts": "3"}, "min_posts"),
    ],
)
async def test_no_lax_coercion(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], param: str | None
) -> None:
    """Booleans are strict booleans and integers strict integers, as OpenAI and xAI check."""
    error = _openai_error(await client.post(path, json=body), 422)
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param


@pytest.mark.anyio
async def test_strict_values_still_taken(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/responses", json={"input": "ottawa", "store": False})
    assert r.status_code == 200, r.text
    sp = {"max_search_results": 5, "return_citations": True}
    r = await client.post("/v1/chat/completions", json={**CHAT, "search_parameters": sp})
    assert r.status_code == 200, r.text


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("url", "param"),
    [
        ("/api/search?q=ottawa&as_of=%C2%B2", "as_of"),  # '²'.isdigit() but int() refuses it
        ("/api/search?q=ottawa&as_of=99999999999999999999", "as_of"),  # epoch out of range
        ("/api/trends?window=99999999999999999999h", "window"),  # beyond timedelta
        ("/api/trends?as_of=9999-99-99", "as_of"),
    ],
)
async def test_out_of_range_times_are_422_not_500(
    client: httpx.AsyncClient, url: str, param: str
) -> None:
    error = _openai_error(await client.get(url), 422)
    assert error["param"] == param and error["code"] == "invalid_time"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b'{"messages":[{"role":"user","content":"hi"}', 400, "invalid_json"),
        (b'{"messages":[{"role":"user","content":"\xff\xfe hi"}]}', 400, "invalid_json"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "invalid_json"),
        (b"NaN", 400, "invalid_json"),
        (b'{"messages":[{"role":"user","content":"\\ud800"}]}', 400, "invalid_json"),
        (b"a" * (2 << 20), 413, "request_too_large"),
    ],
)
async def test_malformed_bodies(
    client: httpx.AsyncClient, content: bytes, status: int, code: str
) -> None:
    r = await client.post("/v1/chat/completions", content=content)
    assert _openai_error(r, status)["code"] == code


@pytest.mark.anyio
async def test_unknown_model_and_invalid_date(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/chat/completions", json={**CHAT, "model": "gpt-9"})
    assert _openai_error(r, 404)["param"] == "model"
    bad = {**CHAT, "search_parameters": {"from_date": "2024-02-30"}}
    r = await client.post("/v1/chat/completions", json=bad)
    assert _openai_error(r, 422)["param"] == "search_parameters.from_date"
