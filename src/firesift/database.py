"""An opened data directory: the durable store plus the views derived from it, kept consistent.

Opening a :class:`Database` opens (or creates) ``store.sqlite3`` and the search index beside it,
then catches the index up with the store: after a crash only the missed changes are replayed;
a missing or corrupt index is rebuilt from scratch. Either way the store is the truth.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from firesift.errors import NotFound
from firesift.index import TantivyIndex
from firesift.pipeline import Pipeline, Sink
from firesift.post import to_ms
from firesift.store import Change, Store, StoreStats

if TYPE_CHECKING:
    from firesift.trends import TrendConfig, TrendReport, TrendTracker
    from firesift.worker import ReadWorker

__all__ = ["Database", "DatabaseStats", "LiveTrends"]

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class DatabaseStats:
    store: StoreStats
    indexed_docs: int
    index_seq: int
    index_lag: int
    index_refreshed_at: float | None

    def to_dict(self) -> dict[str, object]:
        return {
            **self.store.to_dict(),
            "index": {
                "docs": self.indexed_docs,
                "applied_seq": self.index_seq,
                "lag_changes": self.index_lag,
                "refreshed_at": self.index_refreshed_at,
            },
        }


class LiveTrends:
    """The trend tracker of a database: fed by the pipeline (it is a pipeline sink), rebuilt from
    the store on open, and safe to read from other threads while ingest goes on. A report for an
    instant older than the live state retains is answered by replaying the store up to it."""

    def __init__(self, store: Store, config: TrendConfig | None = None) -> None:
        from firesift.trends import TrendConfig, TrendTracker  # numpy: only when trends are used

        self.store = store
        self.config = config or TrendConfig()
        self._lock = threading.Lock()
        stats = store.stats()
        self._since: int | None = None
        if stats.max_created_at is not None:
            self._since = to_ms(stats.max_created_at) - self.config.replay_ms
        posts = store.iter_posts(since_ms=self._since)
        self.tracker = TrendTracker.replay(posts, config=self.config)
        self._replayed: tuple[int, TrendTracker] | None = None

    def apply_changes(self, changes: Sequence[Change]) -> None:
        with self._lock:
            for c in changes:
                if c.post is not None:
                    self.tracker.observe(c.post)

    def report(
        self, *, as_of_ms: int | None = None, window_ms: int = 3_600_000, limit: int = 20
    ) -> TrendReport:
        live = as_of_ms is None or self._since is None
        if not live and as_of_ms is not None and self._since is not None:
            live = as_of_ms - self.config.replay_ms >= self._since
        if live:
            with self._lock:
                try:
                    return self.tracker.report(as_of_ms=as_of_ms, window_ms=window_ms, limit=limit)
                except NotFound:
                    if as_of_ms is None:
                        raise
        assert as_of_ms is not None
        minute = as_of_ms // 60_000
        if self._replayed is None or self._replayed[0] != minute:
            from firesift.trends import TrendTracker

            posts = self.store.iter_posts(
                since_ms=as_of_ms - self.config.replay_ms, until_ms=as_of_ms
            )
            tracker = TrendTracker.replay(posts, config=self.config, until_ms=as_of_ms)
            self._replayed = (minute, tracker)
        return self._replayed[1].report(as_of_ms=as_of_ms, window_ms=window_ms, limit=limit)


class Database:
    """The store, the index and the trend state of one data directory.

    With ``worker=True`` the trend state lives in a :class:`~firesift.worker.ReadWorker` (a
    child process following the store's change log): ingest
    then pays nothing per post for trends, and readers don't share this interpreter's lock with
    the tracker. Otherwise it is a pipeline sink in this process (:class:`LiveTrends`).
    """

    def __init__(
        self, path: Path, *, progress: Progress | None = None, worker: bool = False
    ) -> None:
        self.use_worker = worker
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.store = Store(self.path)
        self.index = TantivyIndex.open_or_create(self.path / "index")
        self.rebuilt = self.index.needs_rebuild or (
            self.index.applied_seq == 0 and self.store.last_seq() > 0
        )
        self.refreshed_at: float | None = None
        self._trends: LiveTrends | None = None
        self._worker: ReadWorker | None = None
        self._sinks: list[Sink] = []
        self.caught_up = self.pipeline().catch_up(progress)
        self.refreshed_at = time.time()

    @property
    def worker(self) -> ReadWorker | None:
        """The trends worker (started the first time it is asked for), if this database uses
        one."""
        if self.use_worker and self._worker is None:
            from firesift.worker import ReadWorker

            self._worker = ReadWorker(self.path, role="trends")
        return self._worker

    @property
    def trends(self) -> LiveTrends | ReadWorker:
        """Trend state, rebuilt from the store the first time it is asked for."""
        worker = self.worker
        if worker is not None:
            return worker
        if self._trends is None:
            self._trends = LiveTrends(self.store)
            self._sinks.append(self._trends)
        return self._trends

    def pipeline(self, *, batch_size: int = 2000, refresh_ms: int = 100) -> Pipeline:
        """A pipeline into this database; it also feeds the trend state once that exists."""
        return Pipeline(
            self.store, self.index, batch_size=batch_size, refresh_ms=refresh_ms, sinks=self._sinks
        )

    def stats(self) -> DatabaseStats:
        store = self.store.stats()
        return DatabaseStats(
            store=store,
            indexed_docs=self.index.num_docs,
            index_seq=self.index.applied_seq,
            index_lag=max(0, store.last_seq - self.index.applied_seq),
            index_refreshed_at=self.refreshed_at,
        )

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
        self.index.close()
        self.store.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
