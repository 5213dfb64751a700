"""The durable store: one SQLite file, the only source of truth.

Everything else (the search index, trend state) is derived from this file and can be rebuilt or
caught up from it. Design decisions:

**Schema** (``store.sqlite3`` in the data directory; migrations are ordered, recorded in
``schema_migrations`` and applied together in one transaction). ``posts`` holds columns, never
raw payloads: times are integer milliseconds, the author is a small integer into ``authors``,
tuples (hashtags, mentions, ...) are JSON arrays only when non-empty (else NULL), an empty url
is NULL, a conversation id equal to the post's own id is ``''``. Posts are a rowid table:
every secondary index then carries a small integer instead of the ``(source, id)`` text key.
``authors`` keeps the latest known handle, name and followers of each account, so a Bluesky post
that arrived with its DID as handle reads back with the handle an ``Identity`` event taught.
Every key is in at most one of ``posts`` (visible), ``aliases`` (an earlier X version that a
newer id replaced) and ``tombstones`` (deleted: a tombstoned key is never written again, so a
deleted post never comes back). ``edits`` keeps earlier texts. ``pending_metrics`` holds
engagement for posts not stored yet: delta updates accumulate, an absolute update resets them;
when the post arrives the pending counts are applied to it (absolute replaces the post's
counts, deltas add to them) and the row is dropped. Pending rows older than ``pending_ttl_ms``
(wall clock, first update) are pruned: most Bluesky likes are for posts that never arrive.

**Change log.** Each write that changes what a read returns takes the next ``seq`` (increasing,
not dense). The log is compacted: a key's row in ``posts``/``aliases``/``tombstones`` carries
the seq of its latest change, so ``changes_since(s)`` returns every key whose visible state
changed after ``s``, once, with its current state, in seq order. A consumer that applies the
changes in order ends equal to the store; the index and trends catch up with it after a crash.

**Writes.** ``apply`` runs a batch in one ``BEGIN IMMEDIATE`` transaction with the cursor, so a
position is acknowledged only once its posts are stored. The batch loads the state of every key
it touches with a few set queries (each returning its rows as one JSON array), runs the events
in order against that in-memory state, and writes rows at the end (posts with ``executemany``,
authors as one JSON array). The code is split by concern: :mod:`~firesift.store.schema`
(migrations), :mod:`~firesift.store.rows` (post <-> row), :mod:`~firesift.store.batch` (one
write batch), :mod:`~firesift.store.store` (the :class:`Store` and its reads).

**Concurrency.** One writer connection, guarded by a lock (the ingest pipeline writes from one
thread). Reads use one connection per thread (``threading.local``) and a read transaction per
call, so they see every committed batch and, in WAL mode, never wait for the writer. Another
process may open the same file; SQLite's locks serialise writers (busy timeout 10 s).

**Durability.** WAL with ``synchronous=NORMAL``: a committed batch survives a process crash
(the WAL is in the OS page cache); a power loss may drop the last batches but never corrupts the
file, and since each cursor is in its batch's transaction the source replays from the surviving
cursor. ``Store(path, fsync=True)`` selects ``synchronous=FULL`` to survive power loss as well.
"""

from firesift.store.model import (
    ApplyResult,
    Change,
    Edit,
    SourceStats,
    StoreStats,
)
from firesift.store.schema import MIGRATIONS, Migration
from firesift.store.store import FILENAME, Store

__all__ = [
    "FILENAME",
    "MIGRATIONS",
    "ApplyResult",
    "Change",
    "Edit",
    "Migration",
    "SourceStats",
    "Store",
    "StoreStats",
]
