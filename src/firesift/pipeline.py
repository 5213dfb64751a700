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
"""

from __future__ import annotations

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
        self.sinks = list(sinks)
        self._clock = clock
        self._pending: list[Event] = []
        self._dirty_seq = 0
        self._last_commit = clock()

    def catch_up(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Replay store changes the index has not seen (after a crash, or into a new index).
        Returns how many changes were applied; ``progress(done, total)`` is called as it goes."""
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
        if done:
            self.index.commit(seq)
            self.index.refresh()
        return done

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

    def flush(self, summary: IngestSummary) -> None:
        """Write what is queued and make everything written so far searchable."""
        self._write(summary, None)
        self.commit()

    def commit(self) -> None:
        if self._dirty_seq:
            self.index.commit(self._dirty_seq)
            self.index.refresh()
            self._dirty_seq = 0
        self._last_commit = self._clock()

    def maybe_commit(self) -> None:
        """Commit if the freshness budget says search has waited long enough."""
        if self._dirty_seq and self._clock() - self._last_commit >= self.refresh_s:
            self.commit()

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
            self._to_index(result.changed)
            for sink in self.sinks:
                sink.apply_changes(result.changed)
            self._dirty_seq = result.changed[-1].seq
        self.maybe_commit()

    def _to_index(self, changes: Sequence[Change]) -> None:
        latest = {c.key: c for c in changes}
        posts = [c.post for c in latest.values() if c.post is not None]
        gone = [f"{c.key[0]}:{c.key[1]}" for c in latest.values() if c.post is None]
        if gone:
            self.index.delete(gone)
        if posts:
            self.index.add(posts)
