"""An opened data directory: the durable store plus the views derived from it, kept consistent.

Opening a :class:`Database` opens (or creates) ``store.sqlite3`` and the search index beside it,
then catches the index up with the store: after a crash only the missed changes are replayed;
a missing or corrupt index is rebuilt from scratch. Either way the store is the truth.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from firesift.index import TantivyIndex
from firesift.pipeline import Pipeline
from firesift.store import Store, StoreStats

__all__ = ["Database", "DatabaseStats"]

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


class Database:
    """The store and the index of one data directory."""

    def __init__(self, path: Path, *, progress: Progress | None = None) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.store = Store(self.path)
        self.index = TantivyIndex.open_or_create(self.path / "index")
        self.rebuilt = self.index.needs_rebuild or (
            self.index.applied_seq == 0 and self.store.last_seq() > 0
        )
        self.refreshed_at: float | None = None
        self.caught_up = self.pipeline().catch_up(progress)
        self.refreshed_at = time.time()

    def pipeline(self, *, batch_size: int = 2000, refresh_ms: int = 100) -> Pipeline:
        return Pipeline(self.store, self.index, batch_size=batch_size, refresh_ms=refresh_ms)

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
        self.index.close()
        self.store.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
