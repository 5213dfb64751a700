"""Trend state in a worker process: same reports as in-process state, follows ingest, survives
its own death, passes errors back."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from firesift.database import Database, LiveTrends
from firesift.errors import ConfigError
from firesift.pipeline import IngestSummary
from firesift.post import Post
from firesift.trends_worker import TrendWorker
from test_trends import _at, _chatter, _ordered, _spike

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
    with Database(tmp_path, trends="worker") as db:
        worker = db.trends
        assert isinstance(worker, TrendWorker)
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
    with Database(tmp_path, trends="worker") as db:
        with pytest.raises(ConfigError, match="window_ms"):
            db.trends.report(window_ms=10)
        with pytest.raises(ConfigError, match="limit"):
            db.trends.report(limit=-1)
        assert db.trends.report().terms == ()


def test_a_killed_worker_is_replaced_and_rebuilds_from_the_store(
    tmp_path: Path, posts: list[Post]
) -> None:
    with Database(tmp_path, trends="worker") as db:
        worker = db.trends
        assert isinstance(worker, TrendWorker)
        _ingest(db, posts)
        as_of = _at(SPIKE_AT + 8 * 60)
        before = worker.report(as_of_ms=as_of)
        old = worker.pid
        os.kill(old, signal.SIGKILL)
        assert worker.report(as_of_ms=as_of) == before
        assert worker.pid != old and worker.restarts == 1


def test_close_stops_the_worker(tmp_path: Path) -> None:
    db = Database(tmp_path, trends="worker")
    worker = db.trends
    assert isinstance(worker, TrendWorker)
    worker.sync(0)
    pid = worker.pid
    db.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
