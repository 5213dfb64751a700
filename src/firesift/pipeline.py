"""The ingest pipeline: events in, durably stored, then searchable.

Order of operations for every batch, which is what makes crashes harmless:

1. the store applies the batch in one transaction, together with the source's cursor: a post
   is acknowledged only once the store has it;
2. the changes the store reports (new posts, edits, deletes, engagement) go to the derived
   views: the search index (and any other :class:`Sink`, such as the trend tracker);
3. the index commits at most every ``refresh_ms`` and records the last store ``seq`` it holds,
   so a restart replays only what it missed (:meth:`Pipeline.catch_up`).

Batching amortises per-transaction and per-commit costs; ``refresh_ms`` bounds how long a stored
post may wait before search sees it (the freshness goal is well under a second).

**Index commits in the background.** A commit that :meth:`Pipeline.maybe_commit` (or a written
batch) finds due runs on a short-lived thread, while the caller goes on parsing and storing the
next batch: tantivy's commit (waiting for its indexing thread, writing the segment) runs without
the GIL, so it overlaps with Python work instead of stalling it. The next change for the index
waits for it (one commit at a time, and the writer is not shared). Only the commit is moved:
parsing, the store and building index documents stay on the caller's thread, because a second
Python thread would fight it for the GIL, and tantivy's ``add_json`` releases the GIL for every
document, so under contention each call waited for a thread switch (measured 5 us -> 200 us).
:meth:`Pipeline.commit`, :meth:`Pipeline.flush` and :meth:`Pipeline.catch_up` stay synchronous.
A commit's ``seq`` is always one the store has already committed, and the index records it only
after tantivy's commit, so crash recovery is unchanged. A failed background commit is raised by
the next call that touches the index; the store keeps the batches written meanwhile (they are
acknowledged) and the index is then brought level by replaying the store from its
``applied_seq``, as after a crash, on the next index update or commit.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from firesift.index import TantivyIndex
from firesift.post import Event
from firesift.store import Change, Store

__all__ = ["IngestSummary", "Pipeline", "Sink"]


class Sink(Protocol):
    """Something derived from the store's changes (the index, trend state)."""

    def apply_changes(self, changes: Sequence[Change]) -> None: ...


@dataclass(slots=True)
class IngestSummary:
    """What an ingest run did; ``skipped`` maps a reason to how many lines had it and
    ``problems`` keeps the first few ``(where, reason)`` pairs for the report."""

    ingested: int = 0
    duplicates: int = 0
    updated: int = 0
    deleted: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    problems: list[tuple[str, str]] = field(default_factory=list)
    max_problems: int = 20

    def skip(self, where: str, reason: str) -> None:
        self.skipped[_reason_kind(reason)] += 1
        if len(self.problems) < self.max_problems:
            self.problems.append((where, reason))

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def to_dict(self) -> dict[str, object]:
        return {
            "ingested": self.ingested,
            "duplicates": self.duplicates,
            "updated": self.updated,
            "deleted": self.deleted,
            "skipped": self.skipped_total,
            "skipped_reasons": dict(self.skipped),
            "problems": [{"where": w, "reason": r} for w, r in self.problems],
        }


def _reason_kind(reason: str) -> str:
    """Group reasons for the summary: the text before the first colon or parenthesis."""
    for sep in (":", "(", " at "):
        head, found, _ = reason.partition(sep)
        if found:
            return head.strip()
    return reason.strip()


class Pipeline:
    """Feeds event batches through the store into the index (and extra sinks)."""

    def __init__(
        self,
        store: Store,
        index: TantivyIndex,
        *,
        batch_size: int = 2000,
        refresh_ms: int = 100,
        sinks: Sequence[Sink] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.index = index
        self.batch_size = batch_size
        self.refresh_s = refresh_ms / 1000
        self.sinks = sinks
        self._clock = clock
        self._pending: list[Event] = []
        self._dirty_seq = 0
        self._last_commit = clock()
        self._committing: threading.Thread | None = None
        self._commit_error: BaseException | None = None
        self._stale = False
        """The index may lack stored changes (an index update or commit failed): the next one
        replays the store from the index's ``applied_seq`` first."""

    def catch_up(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Replay store changes the index has not seen (after a crash, or into a new index).
        Returns how many changes were applied; ``progress(done, total)`` is called as it goes."""
        self._wait_commit()
        seq, done = self._replay(progress)
        if done:
            self.index.commit(seq)
            self.index.refresh()
        return done

    def _replay(self, progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
        """Add every change after the index's ``applied_seq`` to it; returns the last seq and
        how many there were."""
        start = self.index.applied_seq
        total = max(0, self.store.last_seq() - start)
        done = 0
        seq = start
        while True:
            changes = self.store.changes_since(seq, 20_000)
            if not changes:
                break
            self._to_index(changes)
            seq = changes[-1].seq
            done += len(changes)
            if progress:
                progress(done, total)
        self._stale = False
        return seq, done

    def feed(
        self,
        events: Iterable[Event],
        summary: IngestSummary,
        *,
        cursor: tuple[str, str] | None = None,
    ) -> None:
        """Queue events; full batches are written at once. ``cursor`` is saved with the batch
        that contains the last of these events."""
        for ev in events:
            self._pending.append(ev)
            if len(self._pending) >= self.batch_size:
                self._write(summary, None)
        if cursor is not None:
            self._write(summary, cursor)

    def write(self, summary: IngestSummary, cursor: tuple[str, str] | None = None) -> None:
        """Store what is queued now, in one transaction with ``cursor``: the acknowledgement
        point. Search sees it at the next commit (``maybe_commit``/``commit``)."""
        self._write(summary, cursor)

    def flush(self, summary: IngestSummary) -> None:
        """Write what is queued and make everything written so far searchable."""
        self._write(summary, None)
        self.commit()

    def commit(self) -> None:
        """Make everything written so far searchable (waits for it)."""
        self._wait_commit()
        if self._stale:
            self._dirty_seq = self._replay()[0]
        if self._dirty_seq:
            self.index.commit(self._dirty_seq)
            self.index.refresh()
            self._dirty_seq = 0
        self._last_commit = self._clock()

    def maybe_commit(self) -> None:
        """Start a commit if the freshness budget says search has waited long enough; it runs
        in the background (see the module docstring)."""
        if self._committing is not None and not self._committing.is_alive():
            self._wait_commit()
        if self._dirty_seq and self._clock() - self._last_commit >= self.refresh_s:
            self._wait_commit()
            seq, self._dirty_seq = self._dirty_seq, 0
            self._last_commit = self._clock()
            self._committing = threading.Thread(
                target=self._commit_in_background, args=(seq,), name="firesift-commit", daemon=True
            )
            self._committing.start()

    def _commit_in_background(self, seq: int) -> None:
        try:
            self.index.commit(seq)
            self.index.refresh()
        except BaseException as exc:  # raised again on the caller's thread by _wait_commit
            self._commit_error = exc

    def _wait_commit(self) -> None:
        """Wait for a background commit; raise its error here if it failed."""
        thread = self._committing
        if thread is not None:
            thread.join()
            self._committing = None
            error, self._commit_error = self._commit_error, None
            if error is not None:
                self._stale = True
                raise error

    def _write(self, summary: IngestSummary, cursor: tuple[str, str] | None) -> None:
        if not self._pending and cursor is None:
            return
        batch, self._pending = self._pending, []
        result = self.store.apply(batch, cursor=cursor)
        summary.ingested += result.ingested
        summary.duplicates += result.duplicates
        summary.updated += result.updated
        summary.deleted += result.deleted
        if result.changed:
            try:
                self._wait_commit()
                if self._stale:
                    seq = self._replay()[0]
                else:
                    self._to_index(result.changed)
                    seq = result.changed[-1].seq
            except BaseException:
                self._stale = True
                raise
            self._dirty_seq = seq
            for sink in self.sinks:
                sink.apply_changes(result.changed)
        self.maybe_commit()

    def _to_index(self, changes: Sequence[Change]) -> None:
        latest = {c.key: c for c in changes}
        new = [c.post for c in latest.values() if c.post is not None and c.new]
        posts = [c.post for c in latest.values() if c.post is not None and not c.new]
        gone = [f"{c.key[0]}:{c.key[1]}" for c in latest.values() if c.post is None]
        if gone:
            self.index.delete(gone)
        if posts:
            self.index.add(posts)
        if new:
            self.index.add(new, new=True)
