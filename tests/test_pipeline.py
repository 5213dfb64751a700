"""The ingest pipeline: store first, index after, and index commits on a background thread."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from firesift.index import TantivyIndex
from firesift.pipeline import IngestSummary, Pipeline
from firesift.post import Author, Event, Post
from firesift.query import parse
from firesift.store import ApplyResult, Change, Store

T0 = datetime(2024, 3, 24, 12, 0, tzinfo=UTC)


def mk(i: int, text: str = "hello world") -> Post:
    return Post(
        source="x",
        id=str(i),
        text=f"{text} n{i}",
        created_at=T0 + timedelta(seconds=i),
        author=Author(id=f"a{i % 3}", handle=f"user{i % 3}"),
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class GuardedIndex(TantivyIndex):
    """A real index that fails the test if two threads use its writer at once, and whose commit
    can be held open (``gate``) or made to fail (``fail``)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.busy = threading.Lock()
        self.overlaps = 0
        self.gate = threading.Event()
        self.gate.set()
        self.in_commit = threading.Event()
        self.fail: Exception | None = None
        self.commits: list[int] = []

    def _enter(self) -> None:
        if not self.busy.acquire(blocking=False):
            self.overlaps += 1
            self.busy.acquire()

    def add(self, posts: Sequence[Post], *, new: bool = False) -> None:
        self._enter()
        try:
            super().add(posts, new=new)
        finally:
            self.busy.release()

    def commit(self, seq: int) -> None:
        self._enter()
        try:
            self.in_commit.set()
            self.gate.wait()
            if self.fail is not None:
                raise self.fail
            super().commit(seq)
            self.commits.append(seq)
        finally:
            self.busy.release()


class HookedStore(Store):
    """Sets ``applied`` (when given) after each batch is committed."""

    applied: threading.Event | None = None

    def apply(
        self, events: Sequence[Event], *, cursor: tuple[str, str] | None = None
    ) -> ApplyResult:
        result = super().apply(events, cursor=cursor)
        if self.applied is not None:
            self.applied.set()
        return result


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[HookedStore, GuardedIndex]]:
    store = HookedStore(tmp_path)
    index = GuardedIndex(tmp_path / "index")
    yield store, index
    index.close()
    store.close()


def hits(index: TantivyIndex, q: str) -> int:
    return len(index.search(parse(q), limit=100))


def test_a_due_commit_runs_in_the_background_and_the_next_batch_waits_for_it(
    parts: tuple[HookedStore, GuardedIndex],
) -> None:
    store, index = parts
    clock = FakeClock()
    pipe = Pipeline(store, index, batch_size=2, refresh_ms=100, clock=clock)
    summary = IngestSummary()
    pipe.feed([mk(1), mk(2)], summary)  # a full batch: stored and indexed, commit not due
    assert summary.ingested == 2 and index.commits == []
    index.gate.clear()
    clock.now = 1.0
    pipe.maybe_commit()  # due: starts the commit, which is held open until the store...
    assert index.in_commit.wait(10)
    store.applied = index.gate  # ...has stored the next batch: the caller got on meanwhile
    pipe.feed([mk(3), mk(4)], summary)  # its index update waits for the commit
    assert summary.ingested == 4 and store.last_seq() == 4
    pipe.flush(summary)
    assert index.overlaps == 0
    assert index.commits == [2, 4]
    assert index.applied_seq == store.last_seq() == 4
    assert hits(index, "hello") == 4


def test_a_failed_background_commit_surfaces_on_the_next_call_and_the_index_catches_up(
    parts: tuple[HookedStore, GuardedIndex],
) -> None:
    store, index = parts
    clock = FakeClock()
    pipe = Pipeline(store, index, batch_size=2, refresh_ms=100, clock=clock)
    summary = IngestSummary()
    pipe.feed([mk(1), mk(2)], summary)
    index.fail = RuntimeError("disk on fire")
    clock.now = 1.0
    pipe.maybe_commit()
    with pytest.raises(RuntimeError, match="disk on fire"):
        pipe.feed([mk(3), mk(4)], summary)  # its index update is where the failure surfaces
    # That batch was stored (and counted) first; the index recorded nothing it lacks.
    assert summary.ingested == 4 and store.last_seq() == 4
    assert index.applied_seq == 0
    index.fail = None
    pipe.feed([mk(5), mk(6)], summary)  # the index replays what it missed, then this batch
    pipe.flush(summary)
    assert index.overlaps == 0
    assert index.applied_seq == store.last_seq() == 6
    assert hits(index, "hello") == 6
    assert pipe.catch_up() == 0


def test_a_failed_commit_with_nothing_after_it_is_repaired_by_flush(
    parts: tuple[HookedStore, GuardedIndex],
) -> None:
    store, index = parts
    clock = FakeClock()
    pipe = Pipeline(store, index, batch_size=2, refresh_ms=100, clock=clock)
    summary = IngestSummary()
    pipe.feed([mk(1), mk(2)], summary)
    index.fail = RuntimeError("disk on fire")
    clock.now = 1.0
    pipe.maybe_commit()
    with pytest.raises(RuntimeError, match="disk on fire"):
        pipe.flush(summary)
    index.fail = None
    pipe.flush(summary)
    assert index.applied_seq == store.last_seq() == 2
    assert hits(index, "hello") == 2


def test_each_cursor_is_stored_with_its_batch_and_the_index_records_the_store_seq(
    parts: tuple[HookedStore, GuardedIndex],
) -> None:
    store, index = parts
    pipe = Pipeline(store, index, batch_size=3, refresh_ms=0)
    summary = IngestSummary()
    for start in range(0, 20, 4):
        pipe.feed([mk(i) for i in range(start, start + 4)], summary, cursor=("src", str(start)))
        assert store.cursor("src") == str(start)
        assert summary.ingested == start + 4
    pipe.flush(summary)
    assert index.overlaps == 0
    assert index.applied_seq == store.last_seq() == 20
    assert hits(index, "hello") == 20


class Recorder:
    def __init__(self) -> None:
        self.seqs: list[int] = []

    def apply_changes(self, changes: Sequence[Change]) -> None:
        self.seqs += [c.seq for c in changes]


def test_sinks_see_every_change_in_order(parts: tuple[HookedStore, GuardedIndex]) -> None:
    store, index = parts
    sink = Recorder()
    pipe = Pipeline(store, index, batch_size=4, refresh_ms=0, sinks=[sink])
    summary = IngestSummary()
    pipe.feed([mk(i) for i in range(10)], summary)
    pipe.flush(summary)
    assert sink.seqs == list(range(1, 11))


def test_first_versions_skip_the_index_delete_and_later_versions_replace_them(
    parts: tuple[HookedStore, GuardedIndex],
) -> None:
    """A first version is added without a delete; its edit, a metrics change and a repost of
    the same post in later batches (no index commit between) still leave one document."""
    store, index = parts
    pipe = Pipeline(store, index, batch_size=1000, refresh_ms=10_000)
    summary = IngestSummary()
    first = mk(1, "hello world")
    pipe.feed([first, mk(2)], summary)
    pipe.write(summary)
    edited = Post(source="mastodon", id="9", text="draft words", created_at=T0, author=first.author)
    pipe.feed([edited], summary)
    pipe.write(summary)
    again = dataclasses.replace(first, text="hello again n1")
    newer = Post(
        source="mastodon",
        id="9",
        text="final words",
        created_at=T0,
        author=first.author,
        edited_at=T0 + timedelta(minutes=1),
    )
    pipe.feed([again, newer, mk(2)], summary)
    pipe.flush(summary)
    assert (summary.ingested, summary.updated, summary.duplicates) == (3, 2, 1)
    assert hits(index, "hello") == 2  # n1 once (its new text), n2 once
    assert hits(index, "again") == 1 and hits(index, "final") == 1
    assert hits(index, "draft") == 0


def test_changes_say_which_keys_are_first_versions(tmp_path: Path) -> None:
    with Store(tmp_path / "s") as store:
        first = store.apply([mk(1), mk(2)])
        assert [c.new for c in first.changed] == [True, True]
        later = store.apply([mk(1, "edited text"), mk(3)])
        assert {c.key[1]: c.new for c in later.changed} == {"1": False, "3": True}
        assert not any(c.new for c in store.changes_since(0, 10))  # the log replays
