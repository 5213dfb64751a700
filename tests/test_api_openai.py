"""The OpenAI-compatible contract, over a real socket, with the official ``openai`` client.

The server runs as a subprocess (``firesift serve``) over a database ingested from RumourEval
2017 (real posts about the 2014 Ottawa shooting, Ferguson, the Sydney siege ...).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import openai
import pytest

from api_server import ServerProcess

QUESTION = "What happened at the war memorial in Ottawa?"

pytest_plugins = ["api_server"]


@pytest.fixture(scope="module")
def oai(server: ServerProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0) as c:
        yield c


def ask(oai: openai.OpenAI, content: str = QUESTION, **kwargs: Any) -> Any:
    return oai.chat.completions.create(
        model=kwargs.pop("model", "firesift-extractive"),
        messages=kwargs.pop("messages", [{"role": "user", "content": content}]),
        **kwargs,
    )


def check_annotations(content: str, annotations: list[Any], citations: list[str]) -> None:
    assert annotations, "every [n] marker should be annotated"
    for a in annotations:
        assert a.type == "url_citation"
        u = a.url_citation
        marker = content[u.start_index : u.end_index]
        assert marker.startswith("[") and marker.endswith("]"), marker
        n = int(marker[1:-1])
        assert u.url == citations[n - 1]
        assert u.title
    assert len(annotations) == content.count("[") - content.count("[[")


def test_models_lists_the_extractive_composer(oai: openai.OpenAI) -> None:
    models = oai.models.list()
    ids = [m.id for m in models.data]
    assert "firesift-extractive" in ids
    assert "firesift-llm" not in ids  # no LLM configured for this server
    assert all(m.owned_by == "firesift" and m.object == "model" for m in models.data)


def test_answer_is_grounded_with_citations_and_exact_annotation_offsets(
    oai: openai.OpenAI,
) -> None:
    r = ask(oai)
    assert r.object == "chat.completion"
    assert r.id.startswith("chatcmpl-")
    choice = r.choices[0]
    assert choice.finish_reason == "stop"
    msg = choice.message
    assert msg.role == "assistant"
    assert "Ottawa" in msg.content
    extra = r.model_extra
    assert extra["grounded"] is True
    citations = extra["citations"]
    assert citations and all(u.startswith("https://x.com/") for u in citations)
    results = extra["search_results"]
    assert [s["url"] for s in results] == citations
    for s in results:
        assert {"title", "url", "date", "snippet", "id", "source", "author", "created_at"} <= set(s)
        assert "metrics" in s
    assert any("ottawa" in s["text"].lower() for s in results)
    check_annotations(msg.content, msg.annotations, citations)
    assert extra["evidence"]["posts"] > 0
    assert extra["as_of"]
    assert isinstance(extra["warnings"], list)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens > 0


def test_streaming_with_usage_matches_the_contract(oai: openai.OpenAI) -> None:
    stream = ask(oai, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert len(chunks) >= 4
    assert {c.id for c in chunks} == {chunks[0].id}
    assert {c.created for c in chunks} == {chunks[0].created}
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])
    finish = chunks[-2]
    assert finish.choices[0].finish_reason == "stop"
    assert finish.choices[0].delta.content is None
    assert all(c.choices[0].finish_reason is None for c in chunks[:-2])
    content = "".join(c.choices[0].delta.content or "" for c in chunks[:-1])
    extra = finish.model_extra
    assert extra["grounded"] is True and extra["citations"]
    assert len(extra["search_results"]) == len(extra["citations"])
    anns = [openai.types.chat.chat_completion_message.Annotation(**a) for a in extra["annotations"]]
    check_annotations(content, anns, extra["citations"])
    # the same question unstreamed gives the same text
    assert ask(oai).choices[0].message.content == content


def test_async_client_plain_and_streaming(server: ServerProcess) -> None:
    async def run() -> tuple[str, str]:
        async with openai.AsyncOpenAI(
            base_url=server.url + "/v1", api_key="unused", max_retries=0
        ) as c:
            messages: Any = [{"role": "user", "content": "Is the Ottawa gunman dead?"}]
            plain, stream = await asyncio.gather(
                c.chat.completions.create(model="firesift-extractive", messages=messages),
                c.chat.completions.create(
                    model="firesift-extractive",
                    messages=messages,
                    stream=True,
                    stream_options={"include_usage": True},
                ),
            )
            parts = [ch.choices[0].delta.content or "" async for ch in stream if ch.choices]
            return plain.choices[0].message.content or "", "".join(parts)

    plain, streamed = asyncio.run(run())
    assert plain and plain == streamed


def test_follow_up_uses_the_conversation(oai: openai.OpenAI) -> None:
    first = ask(oai, "What happened in Ottawa on 22 October 2014?")
    follow = ask(
        oai,
        messages=[
            {"role": "user", "content": "What happened in Ottawa on 22 October 2014?"},
            {"role": "assistant", "content": first.choices[0].message.content},
            {"role": "user", "content": "Who was the soldier who was shot?"},
        ],
    )
    extra = follow.model_extra
    assert extra["grounded"] is True
    texts = " ".join(s["text"].lower() for s in extra["search_results"])
    assert "ottawa" in texts or "cirillo" in texts


def test_x_handles_and_date_range_map_to_filters(oai: openai.OpenAI) -> None:
    r = ask(
        oai,
        "What happened in Ottawa?",
        extra_body={
            "search_parameters": {
                "mode": "on",
                "from_date": "2014-10-22",
                "to_date": "2014-10-22",
                "max_search_results": 3,
                "sources": [{"type": "x", "included_x_handles": ["CBCNews", "BBCBreaking"]}],
            }
        },
    )
    results = r.model_extra["search_results"]
    assert results
    # the engine may add replies from the cited posts' threads as context; the posts it
    # retrieved are the named accounts' only
    authors = [s["author"].lower() for s in results]
    assert authors[0] in {"cbcnews", "bbcbreaking"}
    assert sum(a in {"cbcnews", "bbcbreaking"} for a in authors) <= 3
    assert {s["date"] for s in results} == {"2014-10-22"}


def test_excluded_handles_web_sources_noted(oai: openai.OpenAI) -> None:
    r = ask(
        oai,
        extra_body={
            "search_parameters": {
                "sources": [{"type": "x", "excluded_x_handles": ["CBCNews"]}, {"type": "web"}]
            }
        },
    )
    extra = r.model_extra
    assert extra["search_results"]
    assert all(s["author"].lower() != "cbcnews" for s in extra["search_results"])
    assert any("web" in w for w in extra["warnings"])


def test_mode_off_says_it_cannot_ground(oai: openai.OpenAI) -> None:
    r = ask(oai, extra_body={"search_parameters": {"mode": "off"}})
    extra = r.model_extra
    assert extra["grounded"] is False
    assert extra["citations"] == [] and extra["search_results"] == []
    assert "cannot" in (r.choices[0].message.content or "")
    assert r.choices[0].message.annotations == []


def test_return_citations_false_drops_the_field(oai: openai.OpenAI) -> None:
    r = ask(oai, extra_body={"search_parameters": {"return_citations": False}})
    assert "citations" not in r.model_extra
    assert r.model_extra["search_results"]


def test_perplexity_recency_relative_to_as_of(oai: openai.OpenAI) -> None:
    r = ask(
        oai,
        "What is happening in Ottawa?",
        extra_body={"as_of": "2014-10-22T16:00:00Z", "search_recency_filter": "hour"},
    )
    extra = r.model_extra
    assert extra["as_of"].startswith("2014-10-22T16:00")
    assert extra["search_results"]
    for s in extra["search_results"]:
        t = datetime.fromisoformat(s["created_at"])
        assert datetime(2014, 10, 22, 15, tzinfo=UTC) <= t <= datetime(2014, 10, 22, 16, tzinfo=UTC)


def test_perplexity_date_filters(oai: openai.OpenAI) -> None:
    r = ask(
        oai,
        "Ferguson protests",
        extra_body={
            "search_after_date_filter": "8/10/2014",
            "search_before_date_filter": "8/11/2014",
        },
    )
    dates = {s["date"] for s in r.model_extra["search_results"]}
    assert dates == {"2014-08-10"}


def test_filters_that_match_nothing_are_reported_honestly(oai: openai.OpenAI) -> None:
    r = ask(oai, extra_body={"search_domain_filter": ["no-such-domain.example"]})
    extra = r.model_extra
    assert extra["grounded"] is False
    assert extra["citations"] == []
    assert any("no posts" in w for w in extra["warnings"])


def test_unknown_model_is_404_listing_models(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        ask(oai, model="firesift-llm")
    err = exc.value.body
    assert isinstance(err, dict)
    assert err["code"] == "model_not_found" and err["param"] == "model"
    assert "firesift-extractive" in err["message"]


def test_invalid_field_is_422_naming_it(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as exc:
        ask(oai, extra_body={"search_parameters": {"from_date": "22/10/2014"}})
    assert isinstance(exc.value.body, dict)
    assert exc.value.body["param"] == "search_parameters.from_date"
    with pytest.raises(openai.UnprocessableEntityError) as exc:
        ask(
            oai,
            extra_body={
                "search_parameters": {
                    "sources": [{"type": "x", "included_x_handles": ["@CBCNews"]}]
                }
            },
        )
    assert isinstance(exc.value.body, dict)
    assert exc.value.body["param"] == "search_parameters.sources.0.x.included_x_handles"


def test_unknown_fields_are_ignored(oai: openai.OpenAI) -> None:
    r = ask(oai, temperature=0.2, extra_body={"some_future_field": {"x": 1}, "top_k": 3})
    assert r.model_extra["grounded"] is True


def test_malformed_json_too_large_and_unknown_route(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url) as c:
        r = c.post(
            "/v1/chat/completions", content=b'{"messages": [', headers={"content-type": "json"}
        )
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "invalid_json"
        big = b'{"messages":[{"role":"user","content":"' + b"a" * (2 << 20) + b'"}]}'
        r = c.post("/v1/chat/completions", content=big)
        assert r.status_code == 413
        assert r.json()["error"]["type"] == "invalid_request_error"
        r = c.get("/v1/nothing")
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_route"
        r = c.get("/v1/chat/completions")
        assert r.status_code == 405


def test_streamed_too_large_body_is_cut_off(server: ServerProcess) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"messages":[{"role":"user","content":"'
        for _ in range(64):
            yield b"a" * 65536

    with httpx.Client(base_url=server.url) as c:
        try:
            r = c.post("/v1/chat/completions", content=chunks())
        except httpx.HTTPError:
            return  # the server closed the connection after refusing: also a refusal
        assert r.status_code == 413
