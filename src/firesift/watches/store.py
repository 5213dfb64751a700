"""Watches, their events and webhook delivery state, in the firesift store's SQLite file.

Decisions:

- **Same file, own migrations.** The tables live in ``store.sqlite3`` beside the posts (one
  file to back up, one WAL), but their ordered migrations are recorded in ``watch_migrations``,
  not the store's ``schema_migrations``: the store's version stays the post schema's, and a
  data directory that never had a watch never gets the tables. The same
  :func:`~firesift.store.schema.migrate` discipline applies: append only, one transaction.
- **Own connection.** :class:`WatchStore` opens its own connection to the file (guarded by a
  lock: the writer thread, the delivery thread and API threads share it). Its transactions
  are tiny (an event, a delivery attempt) and SQLite's lock serialises them with the post
  writer's batches; reads never wait in WAL mode.
- **Evaluation is exactly-once, delivery at-least-once.** :meth:`WatchStore.record` writes a
  batch's events, the watches' changed state and the evaluator's position in the change log
  in one transaction, so a crash either keeps all of it or none (the evaluator then replays
  the change log from the position it kept). Each event due for a webhook gets a
  ``watch_deliveries`` row, deleted only once a 2xx answer came back: what was not delivered
  before a restart is delivered after it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson

from firesift.errors import NotFound, StoreError
from firesift.post import from_ms
from firesift.store import Store
from firesift.store.schema import Migration, migrate
from firesift.watches.model import Watch, WatchEvent

__all__ = ["MIGRATIONS", "Delivery", "NewEvent", "WatchStore"]


def _m1_watches(db: sqlite3.Connection) -> None:
    for sql in (
        """CREATE TABLE watches (id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL,
            query TEXT NOT NULL, claim TEXT, min_posts INTEGER NOT NULL,
            min_accounts INTEGER NOT NULL, window_ms INTEGER NOT NULL, every INTEGER NOT NULL,
            webhook TEXT, secret TEXT, created_ms INTEGER NOT NULL, since_seq INTEGER NOT NULL,
            state TEXT) WITHOUT ROWID""",
        """CREATE TABLE watch_events (eid INTEGER PRIMARY KEY AUTOINCREMENT,
            watch TEXT NOT NULL, at_ms INTEGER NOT NULL, created_ms INTEGER NOT NULL,
            body BLOB NOT NULL)""",
        "CREATE INDEX watch_events_watch ON watch_events (watch, eid)",
        """CREATE TABLE watch_deliveries (eid INTEGER PRIMARY KEY, attempts INTEGER NOT NULL,
            next_ms INTEGER NOT NULL, last_error TEXT)""",
        "CREATE INDEX watch_deliveries_due ON watch_deliveries (next_ms)",
        "CREATE TABLE watch_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
        "INSERT INTO watch_meta VALUES ('seq', -1), ('version', 0)",
    ):
        db.execute(sql)


MIGRATIONS: list[Migration] = [("watches, events, deliveries", _m1_watches)]
"""Version ``n`` is ``MIGRATIONS[n - 1]``. Append only; never edit a released migration."""

_COLUMNS = (
    "id, kind, name, query, claim, min_posts, min_accounts, window_ms, every, webhook, secret,"
    " created_ms, since_seq"
)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event the evaluator found, before the store numbers it."""

    watch: Watch
    at_ms: int
    posts: tuple[dict[str, Any], ...]
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Delivery:
    """A webhook delivery still owed: the event's exact body, where and how to sign it."""

    eid: int
    url: str
    secret: str
    body: bytes
    attempts: int


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def event_body(eid: int, new: NewEvent) -> bytes:
    """The event's wire shape: the webhook body (signed as these exact bytes) and SSE data."""
    w = new.watch
    return orjson.dumps(
        {
            "id": f"evt_{eid}",
            "watch": w.id,
            "name": w.name,
            "kind": w.kind,
            "query": w.query,
            "at": from_ms(new.at_ms).isoformat().replace("+00:00", "Z"),
            "at_ms": new.at_ms,
            "posts": list(new.posts),
            **new.detail,
        }
    )


def _watch(row: Sequence[Any]) -> Watch:
    return Watch(
        id=row[0],
        kind=row[1],
        name=row[2],
        query=row[3],
        claim=row[4],
        min_posts=row[5],
        min_accounts=row[6],
        window_ms=row[7],
        every=row[8],
        webhook=row[9],
        secret=row[10],
        created_ms=row[11],
        since_seq=row[12],
    )


class WatchStore:
    """The watch tables of ``store``'s file (created on first open)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.file = store.file
        self._lock = threading.Lock()
        self.local_version = 0
        """Bumped by :meth:`add` and :meth:`remove` through this object (no query needed)."""
        try:
            self._db = sqlite3.connect(
                self.file, timeout=10.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA synchronous = NORMAL")
            migrate(self._db, self.file, MIGRATIONS, table="watch_migrations", what="watch schema")
        except sqlite3.Error as e:
            raise StoreError(f"store {self.file}: watch tables: {e}") from e

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield db
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                raise StoreError(f"store {self.file}: watches: {e}") from e

    # -- watches -------------------------------------------------------------------------

    def add(self, watch: Watch) -> Watch:
        """Save ``watch``; it sees posts stored from now on (``since_seq``: the store's seq)."""
        from dataclasses import replace

        watch = replace(
            watch, created_ms=watch.created_ms or _now_ms(), since_seq=self.store.last_seq()
        )
        with self._tx(write=True) as db:
            db.execute(
                f"INSERT INTO watches ({_COLUMNS}, state) VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                (
                    watch.id,
                    watch.kind,
                    watch.name,
                    watch.query,
                    watch.claim,
                    watch.min_posts,
                    watch.min_accounts,
                    watch.window_ms,
                    watch.every,
                    watch.webhook,
                    watch.secret,
                    watch.created_ms,
                    watch.since_seq,
                ),
            )
            db.execute("UPDATE watch_meta SET value = value + 1 WHERE key = 'version'")
        self.local_version += 1
        return watch

    def get(self, watch_id: str) -> Watch:
        with self._tx(write=False) as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM watches WHERE id = ?", (watch_id,)).fetchone()
        if row is None:
            raise NotFound(f"no watch {watch_id!r} (see `firesift watch list`)")
        return _watch(row)

    def all(self) -> list[Watch]:
        """Every watch, oldest first."""
        with self._tx(write=False) as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM watches ORDER BY created_ms, id").fetchall()
        return [_watch(r) for r in rows]

    def load(self) -> tuple[int, list[tuple[Watch, dict[str, Any]]]]:
        """The watches version and every watch with its evaluation state (one snapshot)."""
        with self._tx(write=False) as db:
            (version,) = db.execute("SELECT value FROM watch_meta WHERE key = 'version'").fetchone()
            rows = db.execute(f"SELECT {_COLUMNS}, state FROM watches ORDER BY created_ms, id")
            out = [(_watch(r), orjson.loads(r[13]) if r[13] else {}) for r in rows.fetchall()]
        return int(version), out

    def remove(self, watch_id: str) -> None:
        """Delete a watch with its events and owed deliveries; NotFound if there is none."""
        with self._tx(write=True) as db:
            gone = db.execute("DELETE FROM watches WHERE id = ?", (watch_id,)).rowcount
            if not gone:
                raise NotFound(f"no watch {watch_id!r} (see `firesift watch list`)")
            db.execute(
                "DELETE FROM watch_deliveries WHERE eid IN"
                " (SELECT eid FROM watch_events WHERE watch = ?)",
                (watch_id,),
            )
            db.execute("DELETE FROM watch_events WHERE watch = ?", (watch_id,))
            db.execute("UPDATE watch_meta SET value = value + 1 WHERE key = 'version'")
        self.local_version += 1

    def version(self) -> int:
        """Bumped by every add and remove (the evaluator reloads when it changes)."""
        with self._tx(write=False) as db:
            (v,) = db.execute("SELECT value FROM watch_meta WHERE key = 'version'").fetchone()
        return int(v)

    # -- evaluation ----------------------------------------------------------------------

    def position(self) -> int:
        """The change-log seq the evaluator has applied (-1: never ran)."""
        with self._tx(write=False) as db:
            (v,) = db.execute("SELECT value FROM watch_meta WHERE key = 'seq'").fetchone()
        return int(v)

    def record(
        self,
        events: Sequence[NewEvent],
        states: dict[str, dict[str, Any]],
        seq: int | None,
    ) -> list[WatchEvent]:
        """In one transaction: number and save ``events`` (queueing webhook deliveries),
        save each watch's changed state, and the evaluator's position ``seq``. Events of a
        watch removed meanwhile are dropped."""
        now = _now_ms()
        out: list[WatchEvent] = []
        with self._tx(write=True) as db:
            alive = {r[0] for r in db.execute("SELECT id FROM watches")}
            # AUTOINCREMENT's high-water mark: an event id (and idempotency key) is never
            # reused, even after the newest events were deleted with their watch.
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'watch_events'")
            last = (row.fetchone() or (0,))[0]
            rows, owed = [], []
            for new in events:
                if new.watch.id not in alive:
                    continue
                last += 1
                rows.append((last, new.watch.id, new.at_ms, now, event_body(last, new)))
                if new.watch.webhook:
                    owed.append((last, now))
                w = new.watch
                out.append(WatchEvent(last, w.id, w.kind, new.at_ms, new.posts, new.detail))
            db.executemany("INSERT INTO watch_events VALUES (?, ?, ?, ?, ?)", rows)
            db.executemany("INSERT INTO watch_deliveries VALUES (?, 0, ?, NULL)", owed)
            db.executemany(
                "UPDATE watches SET state = ? WHERE id = ?",
                [(orjson.dumps(state), wid) for wid, state in states.items()],
            )
            if seq is not None:
                db.execute("UPDATE watch_meta SET value = ? WHERE key = 'seq'", (seq,))
        return out

    # -- reading events ------------------------------------------------------------------

    def events(self, watch_id: str, after: int = 0, limit: int = 500) -> list[tuple[int, bytes]]:
        """Events of a watch numbered after ``after``, oldest first, as ``(id, body)``."""
        with self._tx(write=False) as db:
            rows = db.execute(
                "SELECT eid, body FROM watch_events WHERE watch = ? AND eid > ?"
                " ORDER BY eid LIMIT ?",
                (watch_id, after, limit),
            ).fetchall()
        return [(int(e), bytes(b)) for e, b in rows]

    # -- webhook deliveries --------------------------------------------------------------

    def due(self, now_ms: int, limit: int = 50) -> list[Delivery]:
        """Deliveries whose next attempt is due, oldest event first."""
        with self._tx(write=False) as db:
            rows = db.execute(
                "SELECT d.eid, w.webhook, w.secret, e.body, d.attempts FROM watch_deliveries d"
                " JOIN watch_events e ON e.eid = d.eid JOIN watches w ON w.id = e.watch"
                " WHERE d.next_ms <= ? ORDER BY d.eid LIMIT ?",
                (now_ms, limit),
            ).fetchall()
        return [Delivery(int(e), u, s or "", bytes(b), int(a)) for e, u, s, b, a in rows]

    def next_due_ms(self) -> int | None:
        with self._tx(write=False) as db:
            (v,) = db.execute("SELECT min(next_ms) FROM watch_deliveries").fetchone()
        return None if v is None else int(v)

    def owed(self) -> int:
        """Webhook deliveries not acknowledged yet."""
        with self._tx(write=False) as db:
            (v,) = db.execute("SELECT count(*) FROM watch_deliveries").fetchone()
        return int(v)

    def delivered(self, eid: int) -> None:
        with self._tx(write=True) as db:
            db.execute("DELETE FROM watch_deliveries WHERE eid = ?", (eid,))

    def retry(self, eid: int, attempts: int, next_ms: int, error: str) -> None:
        with self._tx(write=True) as db:
            db.execute(
                "UPDATE watch_deliveries SET attempts = ?, next_ms = ?, last_error = ?"
                " WHERE eid = ?",
                (attempts, next_ms, error[:500], eid),
            )
