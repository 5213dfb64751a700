"""``kill -9`` of a real ingesting process, then a restart: nothing acknowledged is lost.

A few trials of each kind (the bench, ``firesift bench crash --trials 20``, runs more): a file
ingest of synthetic posts with edits and deletes, ``firesift up`` on a local Jetstream server
replaying the real recorded events, and ``firesift up`` on a real nats-server. Kill moments are
random but seeded; no timing is asserted. The verifier itself is shown to catch a lost post, a
missing index document and a stale text, so a passing trial means something.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from firesift import crash
from firesift.database import Database
from firesift.formats.reader import Parsed, read
from firesift.pipeline import IngestSummary


def _check(result: crash.TrialResult) -> None:
    v = result.verdict
    assert v.problems == [] and result.ok, result.to_dict()
    assert v.lost == 0 and v.duplicates == 0 and v.index_mismatches == 0
    assert result.consistent_at_kill and result.cursor_resumed


@pytest.mark.parametrize("seed", [1, 2])
def test_file_ingest_killed_and_rerun_loses_nothing(tmp_path: Path, seed: int) -> None:
    result = crash.run_trial("file", tmp_path, seed, random.Random(seed), posts=3000)
    _check(result)
    assert result.verdict.posts > 2500  # 3,000 posts, every 11th deleted


@pytest.mark.parametrize("seed", [3, 4])
def test_jetstream_up_killed_resumes_from_its_cursor(tmp_path: Path, seed: int) -> None:
    result = crash.run_trial("jetstream", tmp_path, seed, random.Random(seed), pace=0.01)
    _check(result)
    assert result.verdict.posts > 0


@pytest.mark.parametrize("seed", [5, 6])
def test_nats_up_killed_keeps_every_acknowledged_message(tmp_path: Path, seed: int) -> None:
    result = crash.run_trial("nats", tmp_path, seed, random.Random(seed), pace=0.01)
    _check(result)
    assert result.verdict.posts > 0


def _ingest(db_dir: Path, lines: list[bytes]) -> crash.Expected:
    expected = crash.Expected()
    summary = IngestSummary()
    with Database(db_dir) as db:
        pipeline = db.pipeline()
        for item in read(io.BytesIO(b"\n".join(lines)), name="t"):
            assert isinstance(item, Parsed)
            pipeline.feed(item.events, summary)
            for e in item.events:
                expected.apply(e)
        pipeline.flush(summary)
    return expected


def test_verify_catches_lost_posts_index_gaps_and_stale_texts(tmp_path: Path) -> None:
    lines = crash._file_lines(200, seed=9)
    expected = _ingest(tmp_path, lines)
    assert crash.verify(tmp_path, expected, set(expected.texts)).ok
    key = next(iter(expected.texts))
    with Database(tmp_path) as db:  # one document dropped from the index only
        db.index.delete([f"{key[0]}:{key[1]}"])
        db.index.commit(db.index.applied_seq)
    damaged = crash.verify(tmp_path, expected, set())
    assert damaged.index_mismatches >= 1 and not damaged.ok
    lost = expected.copy()
    lost.texts[("x", "999")] = "never stored"
    verdict = crash.verify(tmp_path, lost, {("x", "999")})
    assert verdict.lost == 1
    stale = expected.copy()
    stale.texts[key] = "another text"
    assert crash.verify(tmp_path, stale, set()).wrong_texts == 1
