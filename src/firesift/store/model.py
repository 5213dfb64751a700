"""The store's value types: what its methods take and return."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from firesift.post import Post

__all__ = ["ApplyResult", "Change", "Edit", "Key", "SourceStats", "StoreStats"]

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change log: ``post`` is the key's current state, ``None`` if it is gone
    (deleted, or replaced by a newer X version)."""

    seq: int
    key: Key
    post: Post | None
    new: bool = field(default=False, compare=False)
    """The key had no row before this change's batch (a first version): the index cannot hold
    it, so it is added without deleting an older document first. Always False in the change
    log as read back (:meth:`~firesift.store.Store.changes_since`), which replays."""


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What one :meth:`Store.apply` did. ``duplicates`` counts events that changed nothing (a
    repeat, an older version, a post already deleted); ``deleted`` counts keys newly tombstoned;
    ``pending`` counts engagement kept for posts not stored yet. ``changed`` is the batch's part
    of the change log, one entry per key, in seq order."""

    ingested: int = 0
    duplicates: int = 0
    updated: int = 0
    deleted: int = 0
    pending: int = 0
    changed: list[Change] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Edit:
    """An earlier version of a post: its text, when it was current, and its id (an X edit has
    its own id; a Mastodon edit keeps the post's)."""

    id: str
    text: str
    at: datetime


@dataclass(frozen=True, slots=True)
class SourceStats:
    """Posts stored from one source; the bounds cover every post ever stored from it."""

    posts: int
    min_created_at: datetime | None
    max_created_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoreStats:
    posts: int
    tombstones: int
    last_seq: int
    min_created_at: datetime | None
    max_created_at: datetime | None
    file_bytes: int
    wal_bytes: int
    sources: dict[str, SourceStats]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready (times as ISO 8601)."""

        out: dict[str, object] = {f: _plain(getattr(self, f)) for f in self.__slots__}
        out["sources"] = {
            name: {f: _plain(getattr(s, f)) for f in s.__slots__}
            for name, s in sorted(self.sources.items())
        }
        return out


def _plain(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value
