"""Trend state in a worker process: same reports as in-process state, follows ingest, survives
its own death, passes errors back."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest

from firesift.answer.engine import AnswerEngine
from firesift.answer.model import AnswerDelta, AnswerDone, Filters, Message
from firesift.answer.retrieve import NO_FILTERS
from firesift.database import Database, LiveTrends
from firesift.errors import ConfigError, FiresiftError, QueryError
from firesift.pipeline import IngestSummary
from firesift.post import Post
from firesift.service import Service
from firesift.worker import ReadWorker
from trend_streams import at as _at
from trend_streams import chatter as _chatter
from trend_streams import ordered as _ordered
from trend_streams import spike as _spike

SPIKE_AT = 2 * 3600


def _ingest(db: Database, posts: list[Post]) -> None:
    pipeline = db.pipeline(batch_size=500)
    summary = IngestSummary()
    pipeline.feed(posts, summary)
    pipeline.flush(summary)
    assert summary.ingested == len(posts)


@pytest.fixture()
def posts() -> list[Post]:
    return _ordered(_chatter(3) + _spike(SPIKE_AT, 300, 4))


def test_worker_follows_ingest_and_reports_as_in_process_state(
    tmp_path: Path, posts: list[Post]
) -> None:
    half = len(posts) // 2
    with Database(tmp_path, worker=True) as db:
        worker = db.trends
        assert isinstance(worker, ReadWorker)
        _ingest(db, posts[:half])
        # started before the rest arrives: it follows the change log
        assert worker.sync(db.store.last_seq()) == db.store.last_seq()
        _ingest(db, posts[half:])
        assert worker.sync(db.store.last_seq()) == db.store.last_seq()
        inline = LiveTrends(db.store)
        for as_of in (None, _at(SPIKE_AT - 60), _at(SPIKE_AT + 8 * 60), _at(SPIKE_AT + 40 * 60)):
            got = worker.report(as_of_ms=as_of, limit=10)
            assert got == inline.report(as_of_ms=as_of, limit=10)
        spike = worker.report(as_of_ms=_at(SPIKE_AT + 8 * 60))
        assert "#harbourblast" in {t.term for t in spike.terms}
        assert spike.stories and "#harbourblast" in spike.stories[0].terms


def test_worker_errors_come_back_as_the_same_exception(tmp_path: Path) -> None:
    with Database(tmp_path, worker=True) as db:
        with pytest.raises(ConfigError, match="window_ms"):
            db.trends.report(window_ms=10)
        with pytest.raises(ConfigError, match="limit"):
            db.trends.report(limit=-1)
        assert db.trends.report().terms == ()


def test_a_killed_worker_is_replaced_and_rebuilds_from_the_store(
    tmp_path: Path, posts: list[Post]
) -> None:
    with Database(tmp_path, worker=True) as db:
        worker = db.trends
        assert isinstance(worker, ReadWorker)
        _ingest(db, posts)
        as_of = _at(SPIKE_AT + 8 * 60)
        before = worker.report(as_of_ms=as_of)
        old = worker.pid
        os.kill(old, signal.SIGKILL)
        assert worker.report(as_of_ms=as_of) == before
        assert worker.pid != old and worker.restarts == 1


def test_close_stops_the_worker(tmp_path: Path) -> None:
    db = Database(tmp_path, worker=True)
    worker = db.trends
    assert isinstance(worker, ReadWorker)
    worker.sync(0)
    pid = worker.pid
    db.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


OTTAWA = datetime(2014, 10, 23, 12, tzinfo=UTC)


def test_answers_from_the_worker_equal_the_in_process_engine(news_dir: Path) -> None:
    question = [Message("user", "What happened at the war memorial in Ottawa?")]
    with Database(news_dir) as local:
        expected = AnswerEngine(local).answer(question, as_of=OTTAWA)
    with Database(news_dir, worker=True) as db:
        answers = ReadWorker(news_dir, role="answers", trend_source=db.worker)
        events = list(answers.stream(question, as_of=OTTAWA))
        answers.close()
    assert isinstance(events[-1], AnswerDone)
    streamed = "".join(e.text for e in events if isinstance(e, AnswerDelta))
    assert streamed == events[-1].answer.text == expected.text
    assert events[-1].answer.citations == expected.citations
    assert expected.citations and "[1]" in expected.text


def test_worker_answers_see_posts_ingested_after_it_started(news_dir: Path, tmp_path: Path) -> None:
    with Database(tmp_path) as db:
        answers = ReadWorker(tmp_path, role="answers")
        question = [Message("user", "What happened at the war memorial in Ottawa?")]
        empty = list(answers.stream(question, as_of=OTTAWA))[-1]
        assert isinstance(empty, AnswerDone) and not empty.answer.citations
        with Database(news_dir) as source:
            posts = list(source.store.iter_posts())
        _ingest(db, posts)
        full = list(answers.stream(question, as_of=OTTAWA))[-1]
        assert isinstance(full, AnswerDone) and full.answer.citations
        answers.close()


def test_question_errors_raise_in_the_caller(news_dir: Path) -> None:
    answers = ReadWorker(news_dir, role="answers")
    bad = Filters(query="lang:en (unclosed")
    with pytest.raises(QueryError) as info:
        list(answers.stream([Message("user", "Ottawa?")], filters=bad, as_of=OTTAWA))
    assert info.value.position is not None
    with pytest.raises(FiresiftError, match="cannot 'report'"):
        answers.report()
    answers.close()


def test_a_service_answers_from_its_answer_workers(news_dir: Path) -> None:
    question = [Message("user", "What is happening?")]
    shooting = datetime(2014, 10, 22, 16, tzinfo=UTC)
    with Database(news_dir) as local:
        expected = AnswerEngine(local).answer(question, as_of=shooting)
        # the stories of the trend state change this answer (so the test sees that path)
        no_trends = AnswerEngine(_NoTrends(local)).answer(question, as_of=shooting)
    assert no_trends.text != expected.text
    db = Database(news_dir, worker=True)
    with Service(db, answer_workers=2, owns_db=True) as service:
        workers = service._answerers
        assert len(workers) == 2 and len({w.pid for w in workers}) == 2
        events = list(
            service.stream_answer(
                question, filters=NO_FILTERS, as_of=shooting, composer="extractive"
            )
        )
    done = events[-1]
    assert isinstance(done, AnswerDone)
    # the answers worker got its stories from the trends worker, through the service
    assert done.answer.text == expected.text and done.answer.citations == expected.citations
    assert all(w._proc.poll() is not None for w in workers)


class _NoTrends:
    """A database as the engine reads it, without trend state."""

    def __init__(self, db: Database) -> None:
        self.store = db.store
        self.index = db.index
        self.trends = None
