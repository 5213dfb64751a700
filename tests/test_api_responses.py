"""The Responses API (``/v1/responses``), over a real socket, with the official ``openai`` client
and with raw HTTP for the xAI-only fields.

One server for the module (``firesift serve`` in a subprocess) over RumourEval 2017: real posts
about the 2014 Ottawa shooting, Ferguson, the Sydney siege ...; two more for the restart test,
and one on a socket in this process whose ``firesift-llm`` composer talks to the scripted fake
model (``tests/fake_openai.py``) over real HTTP.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import openai
import orjson
import pytest

from fake_openai import FakeOpenAI, Reply, cite_all_posts
from firesift.answer.llm_composer import LLMComposer
from firesift.answer.model import Citation
from firesift.api.app import create_app
from firesift.api.response_store import FILENAME, MIGRATIONS, ResponseStore
from firesift.api.responses import render_citations
from firesift.api.server import serve_in_thread
from firesift.database import Database
from firesift.formats.reader import Problem, read
from firesift.llm import OpenAICompatLLM
from firesift.post import Post
from firesift.service import Service
from firesift.store.schema import migrate
from source_harness import run_async

if TYPE_CHECKING:
    from api_server import ServerProcess

pytest_plugins = ["api_server"]  # imported once registered (pytest rewrites plugin modules)

QUESTION = "What happened at the war memorial in Ottawa?"
LINK = re.compile(r"\[\[(\d+)\]\]\((\S+?)\)")


@pytest.fixture(scope="module")
def oai(server: ServerProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0) as c:
        yield c


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def plain(oai: openai.OpenAI) -> Any:
    """One ordinary answer, shared by the tests that only read it."""
    return oai.responses.create(model="firesift-extractive", input=QUESTION)


@pytest.fixture(scope="module")
def post_links(real_data: Path) -> dict[str, list[str]]:
    """The links of every real post, by id, straight from the recorded data."""
    from api_server import POSTS

    out = {}
    for line in (real_data / POSTS).read_bytes().splitlines():
        d = orjson.loads(line)
        out[str(d["id"])] = list(d.get("urls") or [])
    return out


def _text(r: Any) -> tuple[str, list[Any]]:
    assert len(r.output) == 1
    item = r.output[0]
    assert item.type == "message" and item.role == "assistant" and item.status == "completed"
    assert len(item.content) == 1 and item.content[0].type == "output_text"
    return item.content[0].text, list(item.content[0].annotations)


def _field(a: Any, name: str) -> Any:
    return a[name] if isinstance(a, dict) else getattr(a, name)


def check_inline(text: str, annotations: list[Any], citations: list[str]) -> None:
    """Every ``[[n]](url)`` link is annotated, its offsets exactly the link's."""
    links = list(LINK.finditer(text))
    assert links and len(links) == len(annotations)
    for m, a in zip(links, annotations, strict=True):
        assert _field(a, "type") == "url_citation"
        assert (_field(a, "start_index"), _field(a, "end_index")) == (m.start(), m.end())
        n, url = int(m.group(1)), m.group(2)
        assert _field(a, "url") == url == citations[n - 1]
        assert _field(a, "title")
    assert not re.search(r"(?<!\[)\[\d+\](?!\])", text), "every marker is a link"


def authors(r: Any) -> list[str]:
    return [s["author"].lower() for s in r.model_extra["search_results"]]


# -- citations in the text (the renderer alone) ----------------------------------------------


@pytest.fixture(scope="module")
def three_citations(real_data: Path) -> list[Citation]:
    from api_server import POSTS

    posts: list[Post] = []
    for item in read(real_data / POSTS):
        if not isinstance(item, Problem):
            posts += [e for e in item.events if isinstance(e, Post)]
        if len(posts) >= 3:
            break
    return [Citation(n, p) for n, p in enumerate(posts[:3], start=1)]


def test_inline_links_have_code_point_offsets(three_citations: list[Citation]) -> None:
    url = [c.post.url for c in three_citations]
    text, annotations = render_citations(
        "Shots 🇨🇦 [1][2], police say [3]. [2014] is no marker.",
        three_citations,
        "http://h/",
        inline=True,
    )
    assert text == (
        f"Shots 🇨🇦 [[1]]({url[0]})[[2]]({url[1]}), police say [[3]]({url[2]}). [2014] is no marker."
    )
    spans = [text[a["start_index"] : a["end_index"]] for a in annotations]
    assert spans == [f"[[1]]({url[0]})", f"[[2]]({url[1]})", f"[[3]]({url[2]})"]
    assert annotations[0]["start_index"] == len("Shots 🇨🇦 ")  # code points, not UTF-16 units
    assert [a["url"] for a in annotations] == url


def test_without_inline_markers_spans_are_what_each_marker_followed(
    three_citations: list[Citation],
) -> None:
    text, annotations = render_citations(
        "A soldier [1]. B (x) [2] (y)\n- C: D [3]\n“Quoted.” [1], then E [2][3]",
        three_citations,
        "http://h/",
        inline=False,
    )
    assert text == "A soldier. B (x) (y)\n- C: D\n“Quoted.”, then E"
    spans = [text[a["start_index"] : a["end_index"]] for a in annotations]
    assert spans == ["A soldier", "B (x)", "C: D", "“Quoted.”", "then E", "then E"]
    urls = [c.post.url for c in three_citations]
    assert [a["url"] for a in annotations] == [urls[i] for i in (0, 1, 2, 0, 1, 2)]


# -- the openai client ------------------------------------------------------------------------


def test_create_is_a_grounded_response_with_exact_annotation_offsets(plain: Any) -> None:
    r = plain
    assert r.object == "response" and r.status == "completed"
    assert r.id.startswith("resp_") and r.created_at > 0
    assert r.model == "firesift-extractive"
    text, annotations = _text(r)
    assert r.output_text == text and "Ottawa" in text
    extra = r.model_extra
    citations = extra["citations"]
    assert citations and all(u.startswith("https://x.com/") for u in citations)
    check_inline(text, annotations, citations)
    assert [s["url"] for s in extra["search_results"]] == citations
    assert extra["grounded"] is True and extra["evidence"]["posts"] > 0
    assert extra["as_of"] and isinstance(extra["warnings"], list) and extra["claims"]
    u = r.usage
    assert u.total_tokens == u.input_tokens + u.output_tokens > 0
    assert u.model_extra["num_server_side_tools_used"] == 1  # no tools: the stream is searched


def test_async_client(server: ServerProcess, plain: Any) -> None:
    async def main() -> Any:
        async with openai.AsyncOpenAI(
            base_url=server.url + "/v1", api_key="unused", max_retries=0
        ) as c:
            return await c.responses.create(model="firesift-extractive", input=QUESTION)

    r = run_async(main)
    assert r.status == "completed"
    assert r.output_text == plain.output_text
    assert r.model_extra["citations"] == plain.model_extra["citations"]


def test_stream_sends_the_responses_event_sequence(oai: openai.OpenAI, plain: Any) -> None:
    events = list(oai.responses.create(model="firesift-extractive", input=QUESTION, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    middle = set(kinds[4:-4])
    assert middle == {"response.output_text.delta", "response.output_text.annotation.added"}
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert len({e.response.id for e in events if hasattr(e, "response")}) == 1
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert final.status == "completed"
    assert text == final.output_text == events[-4].text == plain.output_text
    added = [e for e in events if e.type == "response.output_text.annotation.added"]
    final_annotations = final.output[0].content[0].annotations
    assert [e.annotation_index for e in added] == list(range(len(final_annotations)))
    assert [e.annotation.to_dict() for e in added] == [a.to_dict() for a in final_annotations]
    check_inline(text, final_annotations, final.model_extra["citations"])
    # each annotation arrives once the text up to its end has been sent
    sent = 0
    for e in events:
        if e.type == "response.output_text.delta":
            sent += len(e.delta)
        elif e.type == "response.output_text.annotation.added":
            assert e.annotation.end_index <= sent
    assert final.model_extra["grounded"] is True


def test_stream_helper_rebuilds_the_response(oai: openai.OpenAI, plain: Any) -> None:
    with oai.responses.stream(model="firesift-extractive", input=QUESTION) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == plain.output_text


def test_follow_up_with_previous_response_id(oai: openai.OpenAI) -> None:
    first = oai.responses.create(
        model="firesift-extractive",
        input="What happened in Ottawa on 22 October 2014?",
        instructions="Answer briefly.",
    )
    follow = oai.responses.create(
        model="firesift-extractive",
        input="Who was the soldier who was shot?",
        previous_response_id=first.id,
    )
    assert follow.previous_response_id == first.id
    assert follow.instructions is None  # instructions are not carried over
    extra = follow.model_extra
    assert extra["grounded"] is True
    texts = " ".join(s["text"].lower() for s in extra["search_results"])
    assert "ottawa" in texts or "cirillo" in texts
    with pytest.raises(openai.NotFoundError) as exc:
        oai.responses.create(input="and then?", previous_response_id="resp_nope")
    assert isinstance(exc.value.body, dict) and exc.value.body["param"] == "previous_response_id"


def test_get_and_delete_a_stored_response(oai: openai.OpenAI, http: httpx.Client) -> None:
    r = oai.responses.create(model="firesift-extractive", input="Is the Ottawa gunman dead?")
    got = oai.responses.retrieve(r.id)
    assert got.id == r.id and got.output_text == r.output_text
    assert got.model_extra["citations"] == r.model_extra["citations"]
    assert http.get(f"/v1/responses/{r.id}").json() == r.to_dict(mode="json")
    oai.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(r.id)
    gone = http.delete(f"/v1/responses/{r.id}")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    unstored = oai.responses.create(model="firesift-extractive", input=QUESTION, store=False)
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(unstored.id)


def test_a_stored_response_survives_a_restart(
    ingested_db: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from api_server import ServerProcess, copy_db

    home = tmp_path_factory.mktemp("restart")
    db = copy_db(ingested_db, home / "db")
    first = ServerProcess(db, home)
    try:
        with openai.OpenAI(base_url=first.url + "/v1", api_key="k", max_retries=0) as c:
            r = c.responses.create(model="firesift-extractive", input=QUESTION)
    finally:
        first.stop()
    again = ServerProcess(db, home)
    try:
        with openai.OpenAI(base_url=again.url + "/v1", api_key="k", max_retries=0) as c:
            got = c.responses.retrieve(r.id)
            follow = c.responses.create(
                model="firesift-extractive",
                input="Who was the soldier who was shot?",
                previous_response_id=r.id,
            )
    finally:
        again.stop()
    assert got.output_text == r.output_text
    assert got.model_extra["citations"] == r.model_extra["citations"]
    assert follow.model_extra["grounded"] is True
    assert "Traceback" not in first.output() + again.output()


def test_no_inline_citations_leaves_plain_text_with_exact_spans(
    oai: openai.OpenAI, plain: Any
) -> None:
    r = oai.responses.create(
        model="firesift-extractive", input=QUESTION, include=["no_inline_citations"]
    )
    text, annotations = _text(r)
    assert "[[" not in text and not re.search(r"\[\d+\]", text)
    citations = r.model_extra["citations"]
    assert citations == plain.model_extra["citations"]
    inline_text, inline_annotations = _text(plain)
    assert len(annotations) == len(inline_annotations) == len(LINK.findall(inline_text))
    assert text == LINK.sub("", inline_text).replace(" \n", "\n").replace("  (", " (")
    for a, b in zip(annotations, inline_annotations, strict=True):
        assert a.url == b.url and a.title == b.title
        span = text[a.start_index : a.end_index]
        assert span.strip() and span == span.strip()
        # the span is the text the link followed in the inline answer
        before = LINK.sub("", inline_text[: b.start_index]).rstrip()
        assert before.endswith(span), (span, before[-80:])
    with oai.responses.stream(
        model="firesift-extractive", input=QUESTION, include=["no_inline_citations"]
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == text
    assert final.output[0].content[0].annotations == annotations


def test_earlier_output_items_sent_back_as_input(oai: openai.OpenAI, plain: Any) -> None:
    """The stateless way to follow up: the earlier output items go back in ``input``."""
    r = oai.responses.create(
        model="firesift-extractive",
        input=[
            {"role": "user", "content": QUESTION},
            *[item.to_dict() for item in plain.output],  # type: ignore[misc]
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Who was the soldier who was shot?"}],
            },
        ],
    )
    extra = r.model_extra
    assert extra["grounded"] is True
    texts = " ".join(s["text"].lower() for s in extra["search_results"])
    assert "ottawa" in texts or "cirillo" in texts
    # the stored input, paged one item at a time (the SDK follows has_more / after)
    items = list(oai.responses.input_items.list(r.id, order="asc", limit=1))
    assert [(i.role, i.content[0].text) for i in items] == [  # type: ignore[union-attr]
        ("user", QUESTION),
        ("assistant", plain.output_text),
        ("user", "Who was the soldier who was shot?"),
    ]
    assert items[1].id == plain.output[0].id
    newest = oai.responses.input_items.list(r.id)
    assert [i.id for i in newest.data] == [i.id for i in reversed(items)]


# -- tools ------------------------------------------------------------------------------------


def test_x_search_allowed_handles_and_dates(oai: openai.OpenAI) -> None:
    handles = {"cbcnews", "bbcbreaking"}
    r = oai.responses.create(
        model="firesift-extractive",
        input="What happened in Ottawa?",
        tools=[  # type: ignore[list-item]
            {
                "type": "x_search",
                "allowed_x_handles": ["CBCNews", "@BBCBreaking"],
                "from_date": "2014-10-22",
                "to_date": "2014-10-22",
            }
        ],
    )
    got = authors(r)
    assert got and got[0] in handles
    assert {s["date"] for s in r.model_extra["search_results"]} == {"2014-10-22"}
    assert r.model_extra["server_side_tool_usage"] == {"SERVER_SIDE_TOOL_X_SEARCH": 1}


def test_x_search_excluded_handles(oai: openai.OpenAI) -> None:
    r = oai.responses.create(
        model="firesift-extractive",
        input=QUESTION,
        tools=[{"type": "x_search", "excluded_x_handles": ["CBCNews"]}],  # type: ignore[list-item]
    )
    got = authors(r)
    assert got and "cbcnews" not in got


def test_web_search_domains_restrict_evidence(
    oai: openai.OpenAI, post_links: dict[str, list[str]]
) -> None:
    def hosts(post_id: str) -> set[str]:
        return {(urlsplit(u).hostname or "").removeprefix("www.") for u in post_links[post_id]}

    allowed = oai.responses.create(
        model="firesift-extractive",
        input="What happened in Ottawa?",
        tools=[{"type": "web_search", "allowed_domains": ["cbc.ca"]}],  # type: ignore[list-item]
    )
    results = allowed.model_extra["search_results"]
    assert results and allowed.model_extra["grounded"] is True
    assert all("cbc.ca" in hosts(s["id"]) for s in results)
    assert any("web index" in w for w in allowed.model_extra["warnings"])
    assert allowed.model_extra["claims"]  # a request warning keeps the rest of the answer
    excluded = oai.responses.create(
        model="firesift-extractive",
        input="What happened in Ottawa?",
        tools=[{"type": "web_search", "excluded_domains": ["cbc.ca"]}],  # type: ignore[list-item]
    )
    results = excluded.model_extra["search_results"]
    assert results and not any("cbc.ca" in hosts(s["id"]) for s in results)
    both = oai.responses.create(
        model="firesift-extractive",
        input="What happened in Ottawa?",
        tools=[
            {"type": "x_search", "allowed_x_handles": ["CBCNews"]},  # type: ignore[list-item]
            {"type": "web_search", "allowed_domains": ["cbc.ca"]},  # type: ignore[list-item]
        ],
    )
    openai_spelling = oai.responses.create(
        model="firesift-extractive",
        input="What happened in Ottawa?",
        tools=[{"type": "web_search", "filters": {"allowed_domains": ["cbc.ca"]}}],
    )
    assert openai_spelling.model_extra["citations"] == allowed.model_extra["citations"]
    assert set(authors(both)) == {"cbcnews"}
    assert all("cbc.ca" in hosts(s["id"]) for s in both.model_extra["search_results"])
    assert both.usage.model_extra["num_server_side_tools_used"] == 2


@pytest.mark.parametrize(
    ("tool", "param", "words"),
    [
        (
            {"type": "x_search", "allowed_x_handles": ["a"], "excluded_x_handles": ["b"]},
            "tools.0.allowed_x_handles",
            "cannot be used together",
        ),
        (
            {"type": "x_search", "allowed_x_handles": [f"h{i}" for i in range(11)]},
            "tools.0.allowed_x_handles",
            "at most 10",
        ),
        (
            {"type": "web_search", "allowed_domains": ["a.com"], "excluded_domains": ["b.com"]},
            "tools.0.allowed_domains",
            "cannot be used together",
        ),
        (
            {"type": "web_search", "excluded_domains": [f"d{i}.com" for i in range(6)]},
            "tools.0.excluded_domains",
            "at most 5",
        ),
        ({"type": "code_interpreter"}, "tools.0.type", "web_search, x_search"),
        (
            {"type": "x_search", "from_date": "2014-10-23", "to_date": "2014-10-22"},
            "tools.0.from_date",
            "after",
        ),
    ],
)
def test_tool_rules_are_400s_naming_the_parameter(
    oai: openai.OpenAI, tool: dict[str, Any], param: str, words: str
) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        oai.responses.create(input=QUESTION, tools=[tool])  # type: ignore[list-item]
    body = exc.value.body
    assert isinstance(body, dict)
    assert body["param"] == param and words in body["message"]
    assert body["type"] == "invalid_request_error"


def test_nothing_matches_is_ungrounded_without_citations(oai: openai.OpenAI) -> None:
    r = oai.responses.create(
        model="firesift-extractive",
        input=QUESTION,
        tools=[{"type": "x_search", "allowed_x_handles": ["nosuchaccount_zz"]}],  # type: ignore[list-item]
    )
    text, annotations = _text(r)
    extra = r.model_extra
    assert extra["grounded"] is False
    assert extra["citations"] == [] and extra["search_results"] == [] and annotations == []
    assert "[" not in text and "no posts" in text.lower() + " ".join(extra["warnings"])
    assert any("no posts" in w for w in extra["warnings"])
    events = list(
        oai.responses.create(
            model="firesift-extractive",
            input=QUESTION,
            tools=[{"type": "x_search", "allowed_x_handles": ["nosuchaccount_zz"]}],  # type: ignore[list-item]
            stream=True,
        )
    )
    assert not [e for e in events if e.type == "response.output_text.annotation.added"]
    final = events[-1].response
    assert final.output_text == text and final.model_extra["grounded"] is False


# -- raw HTTP ---------------------------------------------------------------------------------


def test_raw_http_carries_the_xai_fields(http: httpx.Client) -> None:
    r = http.post(
        "/v1/responses",
        json={
            "model": "firesift-extractive",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": QUESTION}]}],
            "tools": [{"type": "x_search", "enable_image_understanding": True}],
            "some_future_field": {"x": 1},
        },
    )
    assert r.status_code == 200
    body = r.json()
    usage = body["usage"]
    assert usage["num_server_side_tools_used"] == 1
    assert usage["server_side_tool_usage_details"]["x_search_calls"] == 1
    assert usage["input_tokens"] + usage["output_tokens"] == usage["total_tokens"]
    assert body["server_side_tool_usage"] == {"SERVER_SIDE_TOOL_X_SEARCH": 1}
    assert [c["function"]["name"] for c in body["tool_calls"]] == ["x_search"]
    assert body["citations"] and len(body["citations"]) == usage["num_sources_used"]
    assert any("image" in w for w in body["warnings"])


def test_raw_stream_names_each_event(http: httpx.Client) -> None:
    with http.stream("POST", "/v1/responses", json={"input": QUESTION, "stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    frames = [f for f in raw.split("\n\n") if f.strip()]
    for frame in frames:
        event_line, data_line = frame.split("\n")
        assert event_line.startswith("event: ") and data_line.startswith("data: ")
        assert orjson.loads(data_line[6:])["type"] == event_line[7:]
    last = orjson.loads(frames[-1].split("\n")[1][6:])
    assert last["type"] == "response.completed"
    assert last["response"]["citations"] and last["response"]["grounded"] is True
    metrics = http.get("/metrics").text  # only Responses streams run on this server
    count = re.search(r"^firesift_chat_time_to_first_token_seconds_count (\S+)$", metrics, re.M)
    assert count and float(count.group(1)) >= 1
    assert 'route="/v1/responses"' in metrics


def test_search_parameters_is_gone_and_bad_requests_are_4xx(http: httpx.Client) -> None:
    r = http.post(
        "/v1/responses",
        json={"input": QUESTION, "search_parameters": {"mode": "on"}},
    )
    assert r.status_code == 410
    err = r.json()["error"]
    assert err["param"] == "search_parameters" and "x_search" in err["message"]
    r = http.post("/v1/responses", json={"input": [{"role": "assistant", "content": "hi"}]})
    assert r.status_code == 422 and r.json()["error"]["param"] == "input"
    r = http.post("/v1/responses", json={"input": QUESTION, "model": "grok-4"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = http.post(
        "/v1/responses",
        json={"input": QUESTION, "tools": [{"type": "x_search", "from_date": "22/10/2014"}]},
    )
    assert r.status_code == 422 and r.json()["error"]["param"] == "tools.0.from_date"
    r = http.post("/v1/responses", content=b'{"input": ')
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = http.get("/v1/responses/resp_missing")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"


# -- an LLM composing (the scripted fake model, over real HTTP) -------------------------------


@pytest.fixture(scope="module")
def llm(
    ingested_db: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[openai.OpenAI, Any]]:
    """A server whose ``firesift-llm`` composer talks to the scripted fake model."""
    from api_server import copy_db

    home = tmp_path_factory.mktemp("llm")
    with (
        FakeOpenAI() as fake,
        OpenAICompatLLM(base_url=fake.base_url, model="fake-model", max_retries=0) as model,
    ):
        db = Database(copy_db(ingested_db, home / "db"))
        svc = Service(db, owns_db=True, composers={"llm": LLMComposer(model)}).start()
        try:
            with (
                serve_in_thread(create_app(svc)) as url,
                openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as client,
            ):
                yield client, fake
        finally:
            svc.stop()


def _cite_in_pieces(body: dict[str, Any]) -> Any:
    """Cite every post shown, the text cut every 3 characters (markers arrive split)."""
    text = cite_all_posts("A soldier was shot at the National War Memorial")(body).text
    usage = {"prompt_tokens": 1234, "completion_tokens": 56, "total_tokens": 1290}
    return Reply(text=text, pieces=[text[i : i + 3] for i in range(0, len(text), 3)], usage=usage)


def test_llm_answer_streams_with_exact_annotations_and_model_usage(
    llm: tuple[openai.OpenAI, Any],
) -> None:
    client, fake = llm
    fake.enqueue(_cite_in_pieces)
    events = list(client.responses.create(model="firesift-llm", input=QUESTION, stream=True))
    final = events[-1].response
    assert events[-1].type == "response.completed" and final.model_extra["composer"] == "llm"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == final.output_text and text.startswith("A soldier was shot")
    check_inline(text, final.output[0].content[0].annotations, final.model_extra["citations"])
    assert (final.usage.input_tokens, final.usage.output_tokens) == (1234, 56)
    assert final.usage.total_tokens == 1290


def test_llm_failure_mid_stream_is_response_failed(llm: tuple[openai.OpenAI, Any]) -> None:
    client, fake = llm
    fake.enqueue(Reply(text="A soldier was shot at the memorial", stream_error="boom"))
    events = list(client.responses.create(model="firesift-llm", input=QUESTION, stream=True))
    last = events[-1]
    assert last.type == "response.failed", [e.type for e in events]
    assert last.response.status == "failed" and last.response.error.code == "llm_error"
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_store_upgrades_a_version_1_file(tmp_path: Path) -> None:
    """A ``responses.sqlite3`` from before input items opens, and its rows still read."""
    db = sqlite3.connect(tmp_path / FILENAME, isolation_level=None)
    migrate(db, tmp_path / FILENAME, MIGRATIONS[:1])
    db.execute(
        "INSERT INTO responses VALUES ('resp_old', 0, NULL, ?, ?)",
        (orjson.dumps({"id": "resp_old"}), orjson.dumps([["user", "hi"], ["assistant", "yo"]])),
    )
    db.close()
    store = ResponseStore(tmp_path)
    try:
        old = store.get("resp_old")
        assert old is not None and old.body == {"id": "resp_old"} and old.input == ()
        assert [(t.role, t.content) for t in old.conversation] == [
            ("user", "hi"),
            ("assistant", "yo"),
        ]
        version = store._db.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
        assert version == len(MIGRATIONS) == 2
    finally:
        store.close()
