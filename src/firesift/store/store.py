"""The :class:`Store`: connections, transactions, and the read API."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from firesift import store as _package
from firesift.errors import StoreError
from firesift.post import Event, Post
from firesift.store.batch import Batch
from firesift.store.model import ApplyResult, Change, Edit, Key, SourceStats, StoreStats
from firesift.store.rows import (
    _IN,
    _SELECT,
    CREATED,
    ID,
    PK,
    SEQ,
    SRC,
    _from_ms,
    _json,
    _now_ms,
    _post,
    _rows,
)
from firesift.store.schema import migrate

__all__ = ["FILENAME", "Store"]

FILENAME = "store.sqlite3"

_FIXES = [
    (("not a database", "malformed"), "it is not a firesift store or is corrupt: move it aside"),
    (("readonly", "unable to open", "disk I/O"), "make the file and its directory writable"),
    (("locked", "busy"), "another process is writing to it: stop that process or wait"),
    (("full",), "the disk is full: free some space"),
]
_SAVE_CURSOR = "INSERT INTO cursors VALUES (?, ?) ON CONFLICT DO UPDATE SET value = excluded.value"


class Store:
    """The durable store in ``path`` (a data directory; created if missing)."""

    def __init__(self, path: Path, *, fsync: bool = False, pending_ttl_ms: int = 3_600_000) -> None:
        self.path = Path(path)
        self.file = self.path / FILENAME
        self.pending_ttl_ms = pending_ttl_ms
        self._sync = "FULL" if fsync else "NORMAL"
        self._lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._closed = False
        self._last_prune = time.monotonic()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(
                f"cannot create the data directory {self.path} ({e.strerror or e}): "
                "choose a writable data directory"
            ) from e
        self._writer = self._connect(write=True)
        try:
            # Looked up on the package at open time, so an added migration (or a test's) is seen.
            self.version = migrate(self._writer, self.file, _package.MIGRATIONS)
        except sqlite3.Error as e:
            self._writer.close()
            raise self._error(e) from e
        except BaseException:
            self._writer.close()
            raise

    def _error(self, e: sqlite3.Error) -> StoreError:
        text = str(e)
        fix = next(
            (fix for needles, fix in _FIXES if any(n in text for n in needles)),
            "check the file, or move it aside and re-ingest",
        )
        return StoreError(f"store {self.file}: {text} ({fix})")

    def _connect(self, *, write: bool) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(
                self.file, timeout=10.0, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as e:
            raise self._error(e) from e
        try:
            if write:
                (mode,) = db.execute("PRAGMA journal_mode = WAL").fetchone()
                if mode != "wal":
                    raise sqlite3.OperationalError(f"cannot use WAL (journal mode {mode!r})")
                db.execute("PRAGMA journal_size_limit = 67108864")
                db.execute("PRAGMA cache_size = -65536")
            else:
                db.execute("PRAGMA query_only = ON")
                db.execute("PRAGMA cache_size = -16384")
            db.execute(f"PRAGMA synchronous = {self._sync}")
        except sqlite3.Error as e:
            db.close()
            raise self._error(e) from e
        return db

    def close(self) -> None:
        """Close every connection (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for db in [self._writer, *self._readers]:
                db.close()
            self._readers.clear()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store {self.file} is closed")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction on this thread's connection: one consistent snapshot."""
        self._check_open()
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._connect(write=False)
            with self._lock:
                self._readers.append(db)
            self._local.db = db
        try:
            db.execute("BEGIN")
            try:
                yield db
            finally:
                db.execute("COMMIT")
        except sqlite3.Error as e:
            raise self._error(e) from e

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._check_open()
            db = self._writer
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                raise self._error(e) from e

    def apply(
        self, events: Sequence[Event], *, cursor: tuple[str, str] | None = None
    ) -> ApplyResult:
        """Store a batch of events in one transaction, with ``cursor`` (``(name, value)``) saved
        in the same transaction. Posts: new ones are inserted, a repeat is a duplicate, a newer
        version (different text, or ``edit_of`` naming earlier ids) replaces the stored one and
        keeps the old text in :meth:`edits`; a tombstoned or superseded key is ignored. Returns
        counts and the batch's changes (with seqs) for the derived views."""
        if not events and cursor is None:
            return ApplyResult()
        with self._write() as db:
            batch = Batch(db)
            batch.preload(events)
            batch.run(events)
            batch.flush()
            if cursor is not None:
                db.execute(_SAVE_CURSOR, cursor)
            if time.monotonic() - self._last_prune > 60:
                self._last_prune = time.monotonic()
                db.execute(
                    "DELETE FROM pending_metrics WHERE at < ?", (_now_ms() - self.pending_ttl_ms,)
                )
            return batch.result()

    def prune_pending(self, *, now_ms: int | None = None) -> int:
        """Drop engagement kept for posts that did not arrive within ``pending_ttl_ms`` (apply
        also does this once a minute); returns how many were dropped."""
        cutoff = (_now_ms() if now_ms is None else now_ms) - self.pending_ttl_ms
        with self._write() as db:
            return db.execute("DELETE FROM pending_metrics WHERE at < ?", (cutoff,)).rowcount

    def set_cursor(self, name: str, value: str) -> None:
        """Save a source position outside a batch."""
        with self._write() as db:
            db.execute(_SAVE_CURSOR, (name, value))

    def cursor(self, name: str) -> str | None:
        """The last saved position of a source, or None."""
        with self._read() as db:
            row = db.execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def cursors(self, prefix: str = "") -> dict[str, str]:
        """Every saved position whose name starts with ``prefix``, by name."""
        with self._read() as db:
            rows = db.execute(
                "SELECT name, value FROM cursors WHERE substr(name, 1, ?) = ? ORDER BY name",
                (len(prefix), prefix),
            ).fetchall()
        return {str(n): str(v) for n, v in rows}

    def last_seq(self) -> int:
        """The seq of the latest change (0 for an empty store)."""
        with self._read() as db:
            return int(db.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()[0])

    def changes_since(self, seq: int, limit: int) -> list[Change]:
        """Up to ``limit`` changes with seq > ``seq``, in seq order; each key at most once, with
        its current state."""
        with self._read() as db:
            out: list[tuple[int, Key, Post | None]] = [
                (r[SEQ], (r[SRC], r[ID]), _post(r, r[24:]))
                for r in db.execute(
                    f"{_SELECT} WHERE p.seq > ? ORDER BY p.seq LIMIT ?", (seq, limit)
                )
            ]
            for table, col in (("aliases", "old_id"), ("tombstones", "id")):
                sql = f"SELECT seq, source, {col} FROM {table} WHERE seq > ? ORDER BY seq LIMIT ?"
                out += [(s, (src, i), None) for s, src, i in db.execute(sql, (seq, limit))]
        out.sort(key=lambda c: c[0])
        return [Change(*c) for c in out[:limit]]

    def get(self, source: str, id: str) -> Post | None:
        """The post ``(source, id)``; an earlier X version's id gives the current version;
        None if unknown or deleted."""
        return self.get_many([(source, id)]).get((source, id))

    def get_keyed(self, keys: Iterable[str]) -> dict[str, Post]:
        """Like :meth:`get_many` for ``source:id`` keys (:attr:`Post.key`), keyed as asked."""
        pairs = {k: (k.partition(":")[0], k.partition(":")[2]) for k in keys}
        found = self.get_many(pairs.values())
        return {k: found[pair] for k, pair in pairs.items() if pair in found}

    def get_many(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Post]:
        """The posts of ``keys`` that exist, keyed as asked (aliases followed)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[Key, Post] = {}
        with self._read() as db:
            sql = f"{_SELECT} WHERE p.source = ?1 AND p.id {_IN}"
            for r in _rows(db, sql, wanted):
                found[r[SRC], r[ID]] = _post(r, r[24:])
            missing = [k for k in wanted if k not in found]
            if missing:
                alias_sql = (
                    f"SELECT source, old_id, new_id FROM aliases WHERE source = ?1 AND old_id {_IN}"
                )
                aliases = {(s, o): (s, n) for s, o, n in _rows(db, alias_sql, missing)}
                for r in _rows(db, sql, [t for t in aliases.values() if t not in found]):
                    found[r[SRC], r[ID]] = _post(r, r[24:])
                for k, t in aliases.items():
                    if t in found:
                        found[k] = found[t]
        return {k: found[k] for k in wanted if k in found}

    def texts(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The text of each post in ``keys`` that exists, keyed as asked: one indexed
        ``SELECT`` (no author join, no :class:`Post` built), for callers that only compare
        texts, such as near-duplicate detection in search. Unlike :meth:`get_many` it does not
        follow edit aliases: a key replaced by an edit is simply missing (its new id is what
        the index holds)."""
        wanted = list(dict.fromkeys(keys))
        with self._read() as db:
            sql = f"SELECT p.source, p.id, p.text FROM posts p WHERE p.source = ?1 AND p.id {_IN}"
            return {(s, i): t for s, i, t in _rows(db, sql, wanted)}

    def iter_posts(
        self,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        source: str | None = None,
        batch: int = 10_000,
    ) -> Iterator[Post]:
        """Visible posts with ``since_ms <= created <= until_ms`` (both optional, inclusive) in
        created order, read ``batch`` at a time (each batch its own snapshot: a post committed
        meanwhile may or may not appear; take ``last_seq()`` first and catch up with
        :meth:`changes_since` after)."""
        where = ["(p.created, p.pk) > (?, ?)"]
        params: list[Any] = []
        if until_ms is not None:
            where.append("p.created <= ?")
            params.append(until_ms)
        if source is not None:
            where.append("+p.source = ?")
            params.append(source)
        sql = f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY p.created, p.pk LIMIT ?"
        after = (-(2**62) if since_ms is None else since_ms - 1, 2**62)
        while True:
            with self._read() as db:
                rows = db.execute(sql, (*after, *params, batch)).fetchall()
            yield from (_post(r, r[24:]) for r in rows)
            if len(rows) < batch:
                return
            after = (rows[-1][CREATED], rows[-1][PK])

    def thread(
        self, source: str, conversation_id: str, *, until_ms: int | None = None
    ) -> list[Post]:
        """Every visible post of a conversation (its root included) in time order."""
        cond = "" if until_ms is None else " AND p.created <= ?3"
        params: tuple[Any, ...] = (source, conversation_id)
        if until_ms is not None:
            params += (until_ms,)
        with self._read() as db:
            rows = db.execute(
                f"{_SELECT} WHERE p.source = ?1 AND p.conv = ?2 AND p.conv != ''{cond}"
                f" UNION {_SELECT} WHERE p.source = ?1 AND p.id = ?2{cond}",
                params,
            ).fetchall()
        rows.sort(key=lambda r: (r[CREATED], r[PK]))
        return [_post(r, r[24:]) for r in rows]

    def replies_to(self, source: str, id: str, *, until_ms: int | None = None) -> list[Post]:
        """Direct replies to a post (to any of its versions) in time order."""
        with self._read() as db:
            row = db.execute(
                "SELECT new_id FROM aliases WHERE source = ? AND old_id = ?", (source, id)
            ).fetchone()
            current = id if row is None else row[0]
            ids = [current] + [
                o
                for (o,) in db.execute(
                    "SELECT old_id FROM aliases WHERE source = ? AND new_id = ?", (source, current)
                )
            ]
            sql = f"{_SELECT} WHERE p.source = ? AND p.reply_to IN (SELECT value FROM json_each(?))"
            params: tuple[Any, ...] = (source, _json(ids))
            if until_ms is not None:
                sql += " AND p.created <= ?"
                params += (until_ms,)
            rows = db.execute(sql + " ORDER BY p.created, p.pk", params).fetchall()
        return [_post(r, r[24:]) for r in rows]

    def edits(self, source: str, id: str) -> list[Edit]:
        """Earlier versions of a post (aliases followed), oldest first."""
        with self._read() as db:
            row = db.execute(
                "SELECT p.pk, p.id FROM posts p WHERE p.source = ?1 AND p.id = coalesce("
                "(SELECT new_id FROM aliases WHERE source = ?1 AND old_id = ?2), ?2)",
                (source, id),
            ).fetchone()
            if row is None:
                return []
            found = db.execute(
                "SELECT old_id, text, at FROM edits WHERE post = ? ORDER BY at, rowid", (row[0],)
            ).fetchall()
        return [Edit(old or row[1], text, _from_ms(at)) for old, text, at in found]

    def stats(self) -> StoreStats:
        """Counts and sizes (per-source counts are maintained on write, not scanned)."""
        with self._read() as db:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            sources = {
                s: SourceStats(n, _opt_dt(lo), _opt_dt(hi))
                for s, n, lo, hi in db.execute("SELECT * FROM source_stats WHERE posts > 0")
            }
            (lo,) = db.execute("SELECT min(created) FROM posts").fetchone()
            (hi,) = db.execute("SELECT max(created) FROM posts").fetchone()
        wal = self.file.with_name(FILENAME + "-wal")
        return StoreStats(
            posts=sum(s.posts for s in sources.values()),
            tombstones=int(meta["tombstones"]),
            last_seq=int(meta["last_seq"]),
            min_created_at=_opt_dt(lo),
            max_created_at=_opt_dt(hi),
            file_bytes=self.file.stat().st_size,
            wal_bytes=wal.stat().st_size if wal.exists() else 0,
            sources=sources,
        )


def _opt_dt(ms: int | None) -> datetime | None:
    return None if ms is None else _from_ms(ms)
