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
it touches with a few set queries, runs the events in order against that in-memory state, and
writes rows with ``executemany`` at the end.

**Concurrency.** One writer connection, guarded by a lock (the ingest pipeline writes from one
thread). Reads use one connection per thread (``threading.local``) and a read transaction per
call, so they see every committed batch and, in WAL mode, never wait for the writer. Another
process may open the same file; SQLite's locks serialise writers (busy timeout 10 s).

**Durability.** WAL with ``synchronous=NORMAL``: a committed batch survives a process crash
(the WAL is in the OS page cache); a power loss may drop the last batches but never corrupts the
file, and since each cursor is in its batch's transaction the source replays from the surviving
cursor. ``Store(path, fsync=True)`` selects ``synchronous=FULL`` to survive power loss as well.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from firesift.errors import StoreError
from firesift.post import Author, Delete, Event, Identity, Metrics, MetricsUpdate, Post

__all__ = [
    "FILENAME",
    "MIGRATIONS",
    "ApplyResult",
    "Change",
    "Edit",
    "SourceStats",
    "Store",
    "StoreStats",
]

FILENAME = "store.sqlite3"
Key = tuple[str, str]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_CHUNK = 20_000
_IN = "IN (SELECT value FROM json_each(?2))"


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change log: ``post`` is the key's current state, ``None`` if it is gone
    (deleted, or replaced by a newer X version)."""

    seq: int
    key: Key
    post: Post | None


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


def _m1_initial(db: sqlite3.Connection) -> None:
    for sql in (
        """CREATE TABLE authors (aid INTEGER PRIMARY KEY, source TEXT NOT NULL,
            author_id TEXT NOT NULL, handle TEXT, name TEXT, verified INTEGER NOT NULL,
            followers INTEGER, UNIQUE (source, author_id))""",
        """CREATE TABLE posts (pk INTEGER PRIMARY KEY, source TEXT NOT NULL, id TEXT NOT NULL,
            created INTEGER NOT NULL, aid INTEGER NOT NULL, text TEXT NOT NULL, url TEXT,
            lang TEXT, reply_to TEXT, conv TEXT, quote_of TEXT, repost_of TEXT,
            likes INTEGER NOT NULL, reposts INTEGER NOT NULL, replies INTEGER NOT NULL,
            quotes INTEGER NOT NULL, views INTEGER, hashtags TEXT, mentions TEXT, urls TEXT,
            media_alt TEXT, edit_of TEXT, edited INTEGER, seq INTEGER NOT NULL)""",
        "CREATE UNIQUE INDEX posts_key ON posts (source, id)",
        "CREATE INDEX posts_created ON posts (created)",
        "CREATE INDEX posts_seq ON posts (seq)",
        "CREATE INDEX posts_conv ON posts (source, conv) WHERE conv != ''",
        "CREATE INDEX posts_reply ON posts (source, reply_to) WHERE reply_to IS NOT NULL",
        """CREATE TABLE edits (post INTEGER NOT NULL, at INTEGER NOT NULL, text TEXT NOT NULL,
            old_id TEXT)""",
        "CREATE INDEX edits_post ON edits (post)",
        """CREATE TABLE aliases (source TEXT NOT NULL, old_id TEXT NOT NULL,
            new_id TEXT NOT NULL, seq INTEGER, PRIMARY KEY (source, old_id)) WITHOUT ROWID""",
        "CREATE INDEX aliases_new ON aliases (source, new_id)",
        "CREATE INDEX aliases_seq ON aliases (seq) WHERE seq IS NOT NULL",
        """CREATE TABLE tombstones (source TEXT NOT NULL, id TEXT NOT NULL, reason TEXT,
            at INTEGER, seq INTEGER, PRIMARY KEY (source, id)) WITHOUT ROWID""",
        "CREATE INDEX tombstones_seq ON tombstones (seq) WHERE seq IS NOT NULL",
        """CREATE TABLE pending_metrics (source TEXT NOT NULL, id TEXT NOT NULL,
            likes INTEGER NOT NULL, reposts INTEGER NOT NULL, replies INTEGER NOT NULL,
            quotes INTEGER NOT NULL, absolute INTEGER NOT NULL, at INTEGER NOT NULL,
            PRIMARY KEY (source, id)) WITHOUT ROWID""",
        "CREATE INDEX pending_at ON pending_metrics (at)",
        """CREATE TABLE source_stats (source TEXT PRIMARY KEY, posts INTEGER NOT NULL,
            min_ms INTEGER, max_ms INTEGER) WITHOUT ROWID""",
        "CREATE TABLE cursors (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID",
        "INSERT INTO meta VALUES ('last_seq', 0), ('tombstones', 0)",
    ):
        db.execute(sql)


Migration = tuple[str, Callable[[sqlite3.Connection], None]]
MIGRATIONS: list[Migration] = [("initial schema", _m1_initial)]
"""Version ``n`` is ``MIGRATIONS[n - 1]``. Append only; never edit a released migration."""


def _migrate(db: sqlite3.Connection, file: Path) -> int:
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
            " name TEXT NOT NULL, applied_ms INTEGER NOT NULL)"
        )
        current = db.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
        version: int = current.fetchone()[0]
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{file} has schema version {version}, newer than this firesift knows "
                f"({len(MIGRATIONS)}): upgrade firesift or use another data directory"
            )
        for number, (name, migrate) in enumerate(MIGRATIONS[version:], start=version + 1):
            migrate(db)
            db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (number, name, _now_ms()))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return len(MIGRATIONS)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _to_ms(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // _ONE_MS


def _from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def _enc(values: tuple[str, ...]) -> str | None:
    return orjson.dumps(values).decode() if values else None


def _dec(text: str | None) -> tuple[str, ...]:
    return tuple(orjson.loads(text)) if text else ()


def _json(values: Iterable[object]) -> str:
    return orjson.dumps(list(values)).decode()


def _by_source(keys: Iterable[Key]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for source, pid in keys:
        out.setdefault(source, []).append(pid)
    return out


def _rows(db: sqlite3.Connection, sql: str, keys: Iterable[Key]) -> list[Any]:
    """Rows of ``sql`` (``?1`` a source, ``?2`` a JSON array of its ids) for ``keys``."""
    out: list[Any] = []
    for source, ids in _by_source(keys).items():
        for i in range(0, len(ids), _CHUNK):
            out += db.execute(sql, (source, _json(ids[i : i + _CHUNK]))).fetchall()
    return out


_COLS = (
    "pk, source, id, created, aid, text, url, lang, reply_to, conv, quote_of, repost_of, likes,"
    " reposts, replies, quotes, views, hashtags, mentions, urls, media_alt, edit_of, edited, seq"
)
PK, SRC, ID, CREATED, AID, TEXT, LIKES, VIEWS, EDITED, SEQ = 0, 1, 2, 3, 4, 5, 12, 16, 22, 23
_SELECT = (
    "SELECT "
    + ", ".join("p." + c.strip() for c in _COLS.split(","))
    + ", a.author_id, a.handle, a.name, a.verified, a.followers"
    " FROM posts p JOIN authors a ON a.aid = p.aid"
)
_INSERT = f"INSERT INTO posts ({_COLS}) VALUES ({', '.join('?' * 24)})"
_UPDATE = (
    "UPDATE posts SET (" + _COLS.split(",", 1)[1] + f") = ({', '.join('?' * 23)}) WHERE pk = ?"
)


def _row(p: Post, aid: int, pk: int, seq: int) -> list[Any]:
    m, conv, edited = p.metrics, p.conversation_id, p.edited_at
    head = [pk, p.source, p.id, _to_ms(p.created_at), aid, p.text, p.url or None, p.lang]
    refs = [p.reply_to, "" if conv == p.id else conv, p.quote_of, p.repost_of]
    counts = [m.likes, m.reposts, m.replies, m.quotes, m.views]
    tuples = [_enc(p.hashtags), _enc(p.mentions), _enc(p.urls), _enc(p.media_alt), _enc(p.edit_of)]
    return head + refs + counts + tuples + [None if edited is None else _to_ms(edited), seq]


def _post(r: Sequence[Any], a: Sequence[Any]) -> Post:
    """A post from a ``posts`` row (in ``_COLS`` order, which follows ``Post``'s fields) and its
    author's ``(author_id, handle, name, verified, followers)``."""
    pid, edited = r[ID], r[EDITED]
    head = (r[SRC], pid, r[TEXT], _from_ms(r[CREATED]), _author(a), r[6] or "", r[7], r[8])
    refs = (pid if r[9] == "" else r[9], r[10], r[11], Metrics(*r[12:17]))
    tags, mentions, urls, alts, olds = (_dec(t) for t in r[17:22])
    when = None if edited is None else _from_ms(edited)
    return Post(*head, *refs, tags, mentions, urls, alts, olds, when)


def _add(a: list[int], b: list[int]) -> list[int]:
    return [x + y for x, y in zip(a, b, strict=True)]


def _author(a: Sequence[Any]) -> Author:
    return Author(a[0], a[1] or a[0], a[2] or "", bool(a[3]), a[4])


def _exact_ms(dt: datetime) -> bool:
    return dt.tzinfo is UTC and dt.microsecond % 1000 == 0


def _version_ms(r: Sequence[Any]) -> int:
    edited: int | None = r[EDITED]
    return edited if edited is not None else int(r[CREATED])


@dataclass(slots=True)
class _Alias:
    new_id: str


class _Tomb:
    __slots__ = ()


_TOMB = _Tomb()
_State = list[Any] | _Alias | _Tomb | None


class _Batch:
    """One ``apply`` inside its transaction: key states loaded up front, events run in order
    against them, post/author/pending rows written at the end (rare writes go straight to SQL)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.state: dict[Key, _State] = {}
        self.orig: dict[Key, int] = {}
        self.dirty: dict[Key, None] = {}
        self.changed: dict[Key, int] = {}
        self.authors: dict[Key, list[Any] | None] = {}
        self.inputs: dict[Key, Post] = {}
        self.dirty_authors: dict[Key, bool] = {}
        self.pend: dict[Key, list[int] | None] = {}
        self.dirty_pend: dict[Key, None] = {}
        self.tombstones = 0
        self.counts = {"ingested": 0, "duplicates": 0, "updated": 0, "deleted": 0, "pending": 0}
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        self.seq: int = meta["last_seq"]
        (self.next_pk,) = db.execute("SELECT coalesce(max(pk), 0) + 1 FROM posts").fetchone()
        (self.next_aid,) = db.execute("SELECT coalesce(max(aid), 0) + 1 FROM authors").fetchone()
        self.has = {
            t: db.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone() is not None
            for t in ("aliases", "tombstones", "pending_metrics")
        }

    def next_seq(self, key: Key) -> int:
        self.seq += 1
        self.changed.pop(key, None)
        self.changed[key] = self.seq
        return self.seq

    def preload(self, events: Sequence[Event]) -> None:
        keys: dict[Key, None] = {}
        authors: dict[Key, None] = {}
        for ev in events:
            if isinstance(ev, Post):
                keys[ev.source, ev.id] = None
                authors[ev.source, ev.author.id] = None
                for old in ev.edit_of:
                    keys[ev.source, old] = None
            elif isinstance(ev, Delete | MetricsUpdate):
                keys[ev.source, ev.id] = None
            elif isinstance(ev, Identity):
                authors[ev.source, ev.author_id] = None
            else:
                raise TypeError(f"not a firesift event: {type(ev).__name__}")
        self.load(keys)
        self.load_authors(authors)

    def load(self, keys: Iterable[Key]) -> None:
        todo = [k for k in keys if k not in self.state]
        if not todo:
            return
        self.state.update(dict.fromkeys(todo))
        for r in _rows(self.db, f"SELECT {_COLS} FROM posts WHERE source = ?1 AND id {_IN}", todo):
            self.state[r[SRC], r[ID]] = list(r)
            self.orig[r[SRC], r[ID]] = r[PK]
        if self.has["aliases"]:
            sql = f"SELECT source, old_id, new_id FROM aliases WHERE source = ?1 AND old_id {_IN}"
            for source, old, new in _rows(self.db, sql, todo):
                self.state[source, old] = _Alias(new)
        if self.has["tombstones"]:
            sql = f"SELECT source, id FROM tombstones WHERE source = ?1 AND id {_IN}"
            self.state.update(dict.fromkeys(map(tuple, _rows(self.db, sql, todo)), _TOMB))
        self.load_pending([k for k in todo if self.state[k] is None])

    def load_pending(self, keys: Iterable[Key]) -> None:
        todo = [k for k in keys if k not in self.pend]
        self.pend.update(dict.fromkeys(todo))
        if not self.has["pending_metrics"]:
            return
        sql = "SELECT source, id, likes, reposts, replies, quotes, absolute, at"
        for r in _rows(self.db, f"{sql} FROM pending_metrics WHERE source = ?1 AND id {_IN}", todo):
            self.pend[r[0], r[1]] = list(r[2:])

    def load_authors(self, keys: Iterable[Key]) -> None:
        todo = [k for k in keys if k not in self.authors]
        self.authors.update(dict.fromkeys(todo))
        sql = "SELECT source, author_id, aid, handle, name, verified, followers FROM authors"
        for r in _rows(self.db, f"{sql} WHERE source = ?1 AND author_id {_IN}", todo):
            self.authors[r[0], r[1]] = list(r[2:])

    def pending(self, key: Key) -> list[int] | None:
        if key not in self.pend:
            self.load_pending((key,))
        return self.pend[key]

    def get(self, key: Key) -> _State:
        if key not in self.state:
            self.load((key,))
        return self.state[key]

    def author(self, key: Key, handle: str, name: str | None, *more: Any) -> tuple[int, bool]:
        """Merge what an event says about an account (``more``: verified and followers, from a
        post); returns ``(aid, changed)``. An empty handle or one equal to the id is unknown."""
        if key not in self.authors:
            self.load_authors((key,))
        verified, followers = more or (None, None)
        handle_: str | None = None if handle in ("", key[1]) else handle
        cur = self.authors[key]
        if cur is None:
            aid = self.next_aid
            self.next_aid += 1
            self.authors[key] = [aid, handle_, name or None, int(bool(verified)), followers]
            self.dirty_authors[key] = True
            return aid, True
        if (
            (handle_ is None or handle_ == cur[1])
            and (not name or name == cur[2])
            and (verified is None or verified == cur[3])
            and (followers is None or followers == cur[4])
        ):
            return cur[0], False
        cur[1:] = [
            handle_ or cur[1],
            name or cur[2],
            cur[3] if verified is None else int(verified),
            cur[4] if followers is None else followers,
        ]
        self.dirty_authors.setdefault(key, False)
        return cur[0], True

    def run(self, events: Sequence[Event]) -> None:
        for ev in events:
            if isinstance(ev, Post):
                self.post(ev)
            elif isinstance(ev, Delete):
                self.delete(ev)
            elif isinstance(ev, MetricsUpdate):
                self.metrics(ev)
            else:
                _, changed = self.author((ev.source, ev.author_id), ev.handle, ev.name)
                self.counts["updated" if changed else "duplicates"] += 1

    def post(self, p: Post) -> None:
        a = p.author
        aid, _ = self.author((p.source, a.id), a.handle, a.name, a.verified, a.followers)
        key = (p.source, p.id)
        st = self.state[key] if key in self.state else self.get(key)
        if st is None and not p.edit_of:
            self.upsert(key, st, p, aid)
            self.counts["ingested"] += 1
            return
        if isinstance(st, _Tomb):
            self.counts["duplicates"] += 1
            return
        if isinstance(st, _Alias):
            self.keep_version(p, st.new_id)
            self.counts["duplicates"] += 1
            return
        olds: list[Key] = []
        for old_id in dict.fromkeys(p.edit_of):
            old = (p.source, old_id)
            s = self.get(old)
            if old_id == p.id or (isinstance(s, _Alias) and s.new_id == p.id):
                continue
            if isinstance(s, _Tomb):
                self.tombstone(key, "deleted", None)
                self.counts["deleted"] += 1
                return
            if isinstance(s, _Alias):
                other = self.get((p.source, s.new_id))
                if isinstance(other, list):
                    if other[CREATED] > _to_ms(p.created_at):
                        self.keep_version(p, s.new_id)
                        self.counts["duplicates"] += 1
                        return
                    olds.append((p.source, s.new_id))
            olds.append(old)
        changed = self.upsert(key, st, p, aid)
        row = self.state[key]
        assert isinstance(row, list)
        for old in olds:
            s = self.get(old)
            if isinstance(s, list):
                self.record_edit(row[PK], s[TEXT], _version_ms(s), old[1])
                self.db.execute("UPDATE edits SET post = ? WHERE post = ?", (row[PK], s[PK]))
                self.state[old] = None
                self.dirty[old] = None
                changed = True
            if isinstance(s, list | None):
                self.realias(old, p.id)
        if st is None:
            self.counts["ingested"] += 1
        else:
            self.counts["updated" if changed else "duplicates"] += 1

    def upsert(self, key: Key, st: _State, p: Post, aid: int) -> bool:
        """Insert or update the visible row of ``key``; True if what a read returns changed."""
        if st is None:
            row = _row(p, aid, self.next_pk, self.next_seq(key))
            self.next_pk += 1
            pend = self.pending(key)
            if pend is not None:
                if pend[4]:
                    row[LIKES : LIKES + 4] = pend[:4]
                else:
                    row[LIKES : LIKES + 4] = _add(row[LIKES : LIKES + 4], pend[:4])
                self.pend[key] = None
                self.dirty_pend[key] = None
            else:
                self._remember(key, p)
            self.state[key] = row
            self.dirty[key] = None
            return True
        assert isinstance(st, list)
        new = _row(p, aid, st[PK], st[SEQ])
        if new == st:
            return False
        if new[TEXT] != st[TEXT]:
            if _version_ms(new) < _version_ms(st):
                self.record_edit(st[PK], p.text, _version_ms(new), None)
                return False
            self.record_edit(st[PK], st[TEXT], _version_ms(st), None)
        new[SEQ] = self.next_seq(key)
        st[:] = new
        self.dirty[key] = None
        self._remember(key, p)
        return True

    def _remember(self, key: Key, p: Post) -> None:
        """Keep ``p`` to report as the change if it reads back equal (saves rebuilding it)."""
        if _exact_ms(p.created_at) and (p.edited_at is None or _exact_ms(p.edited_at)):
            self.inputs[key] = p
        else:
            self.inputs.pop(key, None)

    def keep_version(self, p: Post, current_id: str) -> None:
        """``p`` is an earlier version of ``current_id``: keep its text as an edit."""
        row = self.get((p.source, current_id))
        if isinstance(row, list):
            self.record_edit(row[PK], p.text, _to_ms(p.created_at), p.id)

    def record_edit(self, pk: int, text: str, at: int, old_id: str | None) -> None:
        self.db.execute(
            "INSERT INTO edits SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS"
            " (SELECT 1 FROM edits WHERE post = ?1 AND at = ?2 AND text = ?3)",
            (pk, at, text, old_id),
        )

    def realias(self, old: Key, new_id: str) -> None:
        """Point ``old`` and every alias of it at ``new_id``."""
        source, old_id = old
        visible = old in self.changed or old in self.orig
        seq = self.next_seq(old) if visible else None
        self.db.execute(
            "INSERT INTO aliases VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE"
            " SET new_id = excluded.new_id, seq = coalesce(excluded.seq, seq)",
            (source, old_id, new_id, seq),
        )
        self.state[old] = _Alias(new_id)
        self.db.execute(
            "UPDATE aliases SET new_id = ? WHERE source = ? AND new_id = ?",
            (new_id, source, old_id),
        )
        for k, s in self.state.items():
            if isinstance(s, _Alias) and k[0] == source and s.new_id == old_id:
                s.new_id = new_id

    def tombstone(self, key: Key, reason: str, at: datetime | None) -> None:
        """Delete ``key`` for good; a visible row or alias of it leaves a change."""
        st = self.get(key)
        if isinstance(st, _Tomb):
            return
        visible = st is not None
        if isinstance(st, list):
            self.db.execute("DELETE FROM edits WHERE post = ?", (st[PK],))
            self.dirty[key] = None
        elif isinstance(st, _Alias):
            self.db.execute("DELETE FROM aliases WHERE source = ? AND old_id = ?", key)
        if self.pending(key) is not None:
            self.pend[key] = None
            self.dirty_pend[key] = None
        seq = self.next_seq(key) if visible else None
        self.db.execute(
            "INSERT INTO tombstones VALUES (?, ?, ?, ?, ?)",
            (*key, None if reason == "deleted" else reason, _to_ms(at) if at else None, seq),
        )
        self.state[key] = _TOMB
        self.tombstones += 1

    def delete(self, d: Delete) -> None:
        key = (d.source, d.id)
        st = self.get(key)
        if isinstance(st, _Tomb):
            self.counts["duplicates"] += 1
            return
        victims = [key]
        if isinstance(st, _Alias):
            victims.append((d.source, st.new_id))
        target = victims[-1]
        if isinstance(self.get(target), list):
            sql = "SELECT old_id FROM aliases WHERE source = ? AND new_id = ?"
            victims += [(d.source, old) for (old,) in self.db.execute(sql, target)]
        for victim in dict.fromkeys(victims):
            self.tombstone(victim, d.reason, d.at)
        self.counts["deleted"] += 1

    def metrics(self, m: MetricsUpdate) -> None:
        key = (m.source, m.id)
        st = self.get(key)
        if isinstance(st, _Alias):
            key = (m.source, st.new_id)
            st = self.get(key)
        values = [m.likes, m.reposts, m.replies, m.quotes]
        if isinstance(st, list):
            old = st[LIKES : LIKES + 4]
            new = _add(old, values) if m.delta else values
            if new == old:
                self.counts["duplicates"] += 1
                return
            st[LIKES : LIKES + 4] = new
            st[SEQ] = self.next_seq(key)
            self.inputs.pop(key, None)
            self.dirty[key] = None
            self.counts["updated"] += 1
        elif isinstance(st, _Tomb):
            self.counts["duplicates"] += 1
        else:
            pend = self.pending(key)
            if pend is None:
                self.pend[key] = [*values, int(not m.delta), _now_ms()]
            elif m.delta:
                pend[:4] = _add(pend[:4], values)
            else:
                pend[:5] = [*values, 1]
            self.dirty_pend[key] = None
            self.counts["pending"] += 1

    def flush(self) -> None:
        db = self.db
        authors = [(a[0], *k, *a[1:]) for k in self.dirty_authors if (a := self.authors[k])]
        db.executemany(
            "INSERT INTO authors VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
            " handle = excluded.handle, name = excluded.name, verified = excluded.verified,"
            " followers = excluded.followers",
            authors,
        )
        inserts, updates, gone = [], [], []
        counts: dict[str, int] = {}
        for key in self.dirty:
            st = self.state[key]
            was = self.orig.get(key)
            if isinstance(st, list):
                if was is None:
                    inserts.append(st)
                else:
                    updates.append((*st[1:], st[PK]))
            elif was is not None:
                gone.append((was,))
                counts[key[0]] = counts.get(key[0], 0) - 1
        lo: dict[str, int] = {}
        hi: dict[str, int] = {}
        for source in {r[SRC] for r in inserts}:
            times = [r[CREATED] for r in inserts if r[SRC] == source]
            counts[source] = counts.get(source, 0) + len(times)
            lo[source], hi[source] = min(times), max(times)
        db.executemany("DELETE FROM posts WHERE pk = ?", gone)
        db.executemany(_INSERT, inserts)
        db.executemany(_UPDATE, updates)
        db.executemany(
            "INSERT INTO source_stats VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
            " posts = posts + excluded.posts, min_ms = min(coalesce(min_ms, excluded.min_ms),"
            " coalesce(excluded.min_ms, min_ms)), max_ms = max(coalesce(max_ms, excluded.max_ms),"
            " coalesce(excluded.max_ms, max_ms))",
            [(s, n, lo.get(s), hi.get(s)) for s, n in counts.items()],
        )
        upserts: list[tuple[Any, ...]] = []
        dropped: list[tuple[Any, ...]] = []
        for key in self.dirty_pend:
            p = self.pend[key]
            (dropped if p is None else upserts).append((*key, *(p or ())))
        db.executemany("DELETE FROM pending_metrics WHERE source = ? AND id = ?", dropped)
        db.executemany("INSERT OR REPLACE INTO pending_metrics VALUES (?,?,?,?,?,?,?,?)", upserts)
        db.execute("UPDATE meta SET value = ? WHERE key = 'last_seq'", (self.seq,))
        if self.tombstones:
            db.execute(
                "UPDATE meta SET value = value + ? WHERE key = 'tombstones'", (self.tombstones,)
            )

    def result(self) -> ApplyResult:
        by_aid = {a[0]: (k[1], *a[1:]) for k, a in self.authors.items() if a}
        rows = [self.state[k] for k in self.changed]
        missing = {r[AID] for r in rows if isinstance(r, list) and r[AID] not in by_aid}
        sql = "SELECT aid, author_id, handle, name, verified, followers FROM authors WHERE aid"
        for r in self.db.execute(f"{sql} IN (SELECT value FROM json_each(?))", (_json(missing),)):
            by_aid[r[0]] = r[1:]

        shown = {aid: (a[1] or a[0], a[2] or "", bool(a[3]), a[4]) for aid, a in by_aid.items()}

        def view(key: Key, r: list[Any]) -> Post:
            p = self.inputs.get(key)
            if p is not None and p.conversation_id != "":
                a = p.author
                if (a.handle, a.name, a.verified, a.followers) == shown[r[AID]]:
                    return p
            return _post(r, by_aid[r[AID]])

        changes = [
            Change(seq, key, view(key, r) if isinstance(r, list) else None)
            for (key, seq), r in zip(self.changed.items(), rows, strict=True)
        ]
        return ApplyResult(**self.counts, changed=changes)


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
            self.version = _migrate(self._writer, self.file)
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
            batch = _Batch(db)
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
