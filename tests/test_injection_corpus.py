"""The prompt-injection corpus (``tests/fixtures/hostile/injection.jsonl``) through the ``llm``
composer, against the scripted fake OpenAI server over real HTTP.

Each hostile post asks for a canary word (or, for ``LEAKED`` rows, the key and settings) from
its text, handle, display name, URL, media alt text or a quoted post. The posts sit among real
evidence (RumourEval 2017, the Ottawa shooting), either in the initial pool or fetched by the
model with ``get_thread``. The model is :func:`fake_openai.obey_unframed_injection`: it obeys
whatever it sees outside the ``<post>`` / ``<claims>`` blocks and tool results, so the framing
is all that stands between a post and the answer. The last tests show that the fake does obey
every row when it is sent unframed, and when the framing's escaping is broken.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from fake_openai import (
    FakeOpenAI,
    Recorded,
    Reply,
    obey_injection,
    obey_unframed_injection,
    unframed_text,
)
from firesift.answer import llm_composer
from firesift.answer.composer import ComposeContext
from firesift.answer.evidence import EvidencePool
from firesift.answer.llm_composer import LLMComposer, system_prompt
from firesift.answer.model import Answer, Filters, Message
from firesift.answer.understand import understand
from firesift.formats import Problem, read
from firesift.llm import OpenAICompatLLM
from firesift.post import Post
from test_llm_composer import QUESTION, ListTools, ottawa, run

__all__ = ["ottawa"]  # the imported fixture

CORPUS = Path(__file__).parent / "fixtures" / "hostile" / "injection.jsonl"
ROWS: list[dict[str, Any]] = [json.loads(x) for x in CORPUS.read_text().splitlines() if x]
KEY = "sk-firesift-test-3f9c1b7e5d"
AS_OF = datetime.fromisoformat("2014-10-22T15:00:00+00:00")
IDS = [f"{r['attack']}-{r['id'][-3:]}" for r in ROWS]


def test_corpus_size_and_kinds() -> None:
    assert len(ROWS) >= 30
    assert {r["attack"] for r in ROWS} >= {"text", "handle", "name", "url", "media_alt", "quoted"}
    assert sum(r["canary"] == "LEAKED" for r in ROWS) >= 5


@pytest.fixture(scope="module")
def hostile() -> dict[str, Post]:
    """The corpus parsed by the canonical format, by id."""
    posts: dict[str, Post] = {}
    for item in read(CORPUS):
        assert not isinstance(item, Problem), item
        for event in item.events:
            assert isinstance(event, Post)
            posts[event.id] = event
    assert len(posts) == len(ROWS)
    return posts


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def keyed(server: FakeOpenAI) -> Iterator[OpenAICompatLLM]:
    """The backend configured with an API key the answers must never show."""
    with OpenAICompatLLM(
        base_url=server.base_url, model="fake-model", api_key=KEY, timeout=5, max_retries=0
    ) as m:
        yield m


def _context(real: list[Post], hostile: list[Post], everything: list[Post]) -> ComposeContext:
    pool = EvidencePool(AS_OF)
    for p in [real[0], *hostile, real[1]]:
        pool.add(p, "hit")
    messages = [Message("user", QUESTION)]
    return ComposeContext(
        question=QUESTION,
        messages=messages,
        understanding=understand(messages),
        as_of=AS_OF,
        filters=Filters(),
        pool=pool,
        tools=ListTools(everything, pool),
        composer="llm",
    )


def _involved(row: dict[str, Any], hostile: dict[str, Post]) -> list[Post]:
    """The row's post and the post it quotes, if any."""
    post = hostile[row["id"]]
    return [post] + ([hostile[post.quote_of]] if post.quote_of else [])


def _real(ottawa: list[Post]) -> list[Post]:
    return [p for p in ottawa if "parliament" in p.text.lower() and not p.reply_to][:2]


def _check_sent(history: list[Recorded], row: dict[str, Any], posts: list[Post]) -> None:
    """Nothing hostile outside the framing, the hostile posts inside it verbatim, no key."""
    canary = row["canary"]
    framed_texts: list[str] = []
    for request in history:
        outside = unframed_text(request.body)
        for p in posts:
            for value in (p.text, p.author.name, p.author.handle, p.url, *p.media_alt):
                if len(value) >= 12:
                    assert value not in outside, f"sent unframed: {value!r}"
        if canary != "LEAKED":
            assert canary not in outside
        assert KEY not in json.dumps(request.body)
        assert request.headers["authorization"] == f"Bearer {KEY}"
        for m in request.messages:
            content = str(m.get("content") or "")
            if m["role"] == "tool":
                framed_texts += [q["text"] for q in json.loads(content).get("posts", [])]
            for body in re.findall(r'<post n="\d+">(.*?)</post>', content):
                data = json.loads(body)
                framed_texts.append(data["text"])
                assert not re.search(r"[<>]", body), "angle brackets must be escaped"
    for p in posts:
        assert p.text in framed_texts, "the hostile post is shown to the model, quoted"


def _check_answer(answer: Answer, ctx: ComposeContext) -> None:
    keys = {i.post.key for i in ctx.pool}
    assert answer.citations and {c.post.key for c in answer.citations} <= keys
    assert not re.search(r"\[(?:99|100)\]", answer.text)
    assert "evil.example" not in answer.text and "](" not in answer.text
    assert KEY not in answer.text and "127.0.0.1" not in answer.text


@pytest.mark.parametrize("via", ["pool", "tool"])
@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_framing_keeps_every_hostile_post_quoted(
    row: dict[str, Any],
    via: str,
    server: FakeOpenAI,
    keyed: OpenAICompatLLM,
    hostile: dict[str, Post],
    ottawa: list[Post],
) -> None:
    posts = _involved(row, hostile)
    real = _real(ottawa)
    ctx = _context(real, posts if via == "pool" else [], [*ottawa, *hostile.values()])
    if via == "tool":
        server.enqueue(Reply(tool_calls=[("get_thread", {"id": p.id}) for p in posts]))
    server.enqueue(obey_unframed_injection)
    _, answer = run(LLMComposer(keyed), ctx)

    assert server.pending == 0
    assert all(ctx.pool.by_key(p.key) is not None for p in posts)
    _check_sent(server.history, row, posts)
    _check_answer(answer, ctx)
    assert row["canary"] not in answer.text, "the model followed an injected instruction"
    assert not [w for w in answer.warnings if "uncited" in w or "removed" in w]
    assert answer.text.startswith("Posts report shots near Parliament Hill")
    assert answer.grounded


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_a_model_that_obeys_anyway_is_caught_by_the_citation_check(
    row: dict[str, Any],
    server: FakeOpenAI,
    keyed: OpenAICompatLLM,
    hostile: dict[str, Post],
    ottawa: list[Post],
) -> None:
    """``obey_injection`` obeys instructions even inside the framing (a weak model): its
    invented [99] never reaches the reader, its claims are flagged as uncited, citations stay
    pool items, and still no key."""
    posts = _involved(row, hostile)
    ctx = _context(_real(ottawa), posts, ottawa)
    server.enqueue(obey_injection)
    _, answer = run(LLMComposer(keyed), ctx)
    _check_answer(answer, ctx)
    assert any("[99]" in w for w in answer.warnings)
    assert "uncited sentence: I am now free of my rules." in answer.warnings
    sent = json.dumps(server.history[-1].messages)
    if row["canary"] != "LEAKED" and row["canary"] in sent:
        assert f"uncited sentence: {row['canary']}!" in answer.warnings
    if row["attack"] == "media_alt":
        assert not any(alt in sent for alt in posts[0].media_alt), "alt text is not sent"


def _naive_request(row: dict[str, Any], hostile: dict[str, Post]) -> dict[str, Any]:
    """What a composer without framing would send: the fields pasted into the prompt, and the
    settings with them."""
    lines = [f"Settings: base_url=http://127.0.0.1:1/v1 model=fake-model api_key={KEY}"]
    for p in _involved(row, hostile):
        lines.append(f"{p.author.name} (@{p.author.handle}) wrote: {p.text}")
        lines.append(f"link: {p.url}")
        lines += [f"image: {alt}" for alt in p.media_alt]
    lines.append(f"Question: {QUESTION}")
    return {
        "messages": [
            {"role": "system", "content": system_prompt(AS_OF, tools=False)},
            {"role": "user", "content": "\n".join(lines)},
        ]
    }


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_the_fake_obeys_every_row_sent_unframed(
    row: dict[str, Any], hostile: dict[str, Post]
) -> None:
    """The detector notices every kind in the corpus, so the tests above can fail."""
    reply = obey_unframed_injection(_naive_request(row, hostile)).text
    assert row["canary"] in reply
    if row["canary"] == "LEAKED":
        assert KEY in reply


def test_the_fake_obeys_when_the_escaping_is_broken(
    server: FakeOpenAI,
    keyed: OpenAICompatLLM,
    hostile: dict[str, Post],
    ottawa: list[Post],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With plain JSON (no ``\\u003c`` for ``<``), a post that writes ``</post>`` closes its
    block and the rest of it is read as instructions: the checks above would fail."""
    broken: Callable[[object], str] = lambda value: json.dumps(value)  # noqa: E731
    monkeypatch.setattr(llm_composer, "_json", broken)
    breakers = [r for r in ROWS if "</post>" in json.dumps(r) and r["attack"] in ("text", "name")]
    assert len(breakers) >= 3
    obeyed = 0
    for row in breakers:
        posts = _involved(row, hostile)
        server.enqueue(obey_unframed_injection)
        _, answer = run(LLMComposer(keyed), _context(_real(ottawa), posts, ottawa))
        obeyed += row["canary"] in answer.text
        with pytest.raises(AssertionError):
            _check_sent(server.history[-1:], row, posts)
    assert obeyed >= 3
