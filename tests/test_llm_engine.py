"""The ``llm`` composer inside the real answer engine: RumourEval's recorded Twitter v1.1
payloads ingested into a temporary database, the engine's retrieval and stream tools, and the
scripted fake model over real HTTP."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from fake_openai import FakeOpenAI, Reply, cite_all_posts
from firesift.answer.engine import AnswerEngine
from firesift.answer.llm_composer import LLMComposer
from firesift.answer.model import AnswerDelta, AnswerDone, Filters, Message
from firesift.database import Database
from firesift.formats.reader import Problem, read
from firesift.llm import OpenAICompatLLM
from firesift.pipeline import IngestSummary

AS_OF = datetime.fromisoformat("2014-10-22T16:00:00+00:00")


@pytest.fixture(scope="module")
def database(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    summary = IngestSummary()
    with (
        Database(tmp_path_factory.mktemp("llm-db")) as db,
        gzip.open(real_data / "rumoureval2017" / "raw_tweets_v1.1.jsonl.gz") as fh,
    ):
        pipeline = db.pipeline()
        for item in read(fh, name="raw_tweets_v1.1.jsonl"):
            if not isinstance(item, Problem):
                pipeline.feed(item.events, summary)
        pipeline.flush(summary)
        assert summary.ingested > 4000
        yield db


def test_engine_answer_with_a_tool_round(database: Database) -> None:
    with (
        FakeOpenAI() as server,
        OpenAICompatLLM(base_url=server.base_url, model="fake-model", max_retries=0) as model,
    ):
        engine = AnswerEngine(database, composers={"llm": LLMComposer(model)})
        server.enqueue(
            Reply(tool_calls=[("search_posts", {"query": "war memorial soldier", "since": "3h"})]),
            cite_all_posts("A soldier was shot at the National War Memorial"),
        )
        events = list(
            engine.stream(
                [Message("user", "What happened on Parliament Hill in Ottawa?")],
                as_of=AS_OF,
                composer="llm",
                filters=Filters(max_results=40),  # room to cite the tool's posts too
            )
        )
    done = events[-1]
    assert isinstance(done, AnswerDone)
    answer = done.answer
    assert "".join(e.text for e in events if isinstance(e, AnswerDelta)) == answer.text
    assert answer.composer == "llm" and answer.grounded
    assert answer.citations
    assert all(c.post.created_at <= AS_OF for c in answer.citations)
    assert any("memorial" in c.post.text.lower() for c in answer.citations)
    first = server.history[0].messages[-1]["content"]
    assert '<post n="1">' in first
    tool_result = server.history[1].messages[-1]
    assert tool_result["role"] == "tool" and '"posts"' in tool_result["content"]
