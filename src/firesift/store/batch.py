"""One write batch: key states loaded up front, events run in memory, rows written at the end."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from firesift.post import Delete, Event, Identity, MetricsUpdate, Post
from firesift.store.model import ApplyResult, Change, Key
from firesift.store.rows import (
    _COLS,
    _IN,
    _INSERT,
    _TOMB,
    _UPDATE,
    AID,
    CREATED,
    ID,
    LIKES,
    PK,
    SEQ,
    SRC,
    TEXT,
    _add,
    _Alias,
    _exact_ms,
    _json,
    _json_rows,
    _now_ms,
    _post,
    _row,
    _rows,
    _State,
    _to_ms,
    _Tomb,
    _version_ms,
)

__all__ = ["Batch"]

_OPTIONAL = ("aliases", "tombstones", "pending_metrics")
_START = (
    "SELECT (SELECT value FROM meta WHERE key = 'last_seq'),"
    " (SELECT coalesce(max(pk), 0) + 1 FROM posts),"
    " (SELECT coalesce(max(aid), 0) + 1 FROM authors), "
    + ", ".join(f"EXISTS (SELECT 1 FROM {t})" for t in _OPTIONAL)
)
_UPSERT_AUTHORS = (
    "INSERT INTO authors SELECT "
    + ", ".join(f"value ->> {i}" for i in range(7))
    + " FROM json_each(?) WHERE true ON CONFLICT DO UPDATE SET"
    " handle = excluded.handle, name = excluded.name, verified = excluded.verified,"
    " followers = excluded.followers"
)
"""Author rows go in as one JSON array: for these narrow rows that measured a little cheaper
than ``executemany`` (one statement step, no per-row binding). Post rows are wide (24 columns,
each a separate ``->>`` re-parsing the row), where ``executemany`` was twice as fast."""


class Batch:
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
        row = db.execute(_START).fetchone()
        self.seq: int = row[0]
        self.next_pk: int = row[1]
        self.next_aid: int = row[2]
        self.has = {t: bool(h) for t, h in zip(_OPTIONAL, row[3:], strict=True)}

    def next_seq(self, key: Key) -> int:
        self.seq = seq = self.seq + 1
        changed = self.changed
        if key in changed:
            del changed[key]
        changed[key] = seq
        return seq

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
        for r in _json_rows(self.db, _COLS, f"FROM posts WHERE source = ?1 AND id {_IN}", todo):
            self.state[r[SRC], r[ID]] = r
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
        cols = "source, author_id, aid, handle, name, verified, followers"
        rest = f"FROM authors WHERE source = ?1 AND author_id {_IN}"
        for r in _json_rows(self.db, cols, rest, todo):
            self.authors[r[0], r[1]] = r[2:]

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
            pend = self.pend[key] if key in self.pend else self.pending(key)
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
        created, edited = p.created_at, p.edited_at
        if (
            created.tzinfo is UTC
            and not created.microsecond % 1000
            and (edited is None or _exact_ms(edited))
        ):
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
        if authors:
            db.execute(_UPSERT_AUTHORS, (orjson.dumps(authors).decode(),))
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
        if gone:
            db.executemany("DELETE FROM posts WHERE pk = ?", gone)
        if inserts:
            db.executemany(_INSERT, inserts)
        if updates:
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
        if dropped:
            db.executemany("DELETE FROM pending_metrics WHERE source = ? AND id = ?", dropped)
        if upserts:
            db.executemany(
                "INSERT OR REPLACE INTO pending_metrics VALUES (?,?,?,?,?,?,?,?)", upserts
            )
        db.execute("UPDATE meta SET value = ? WHERE key = 'last_seq'", (self.seq,))
        if self.tombstones:
            db.execute(
                "UPDATE meta SET value = value + ? WHERE key = 'tombstones'", (self.tombstones,)
            )

    def result(self) -> ApplyResult:
        # A post reported back as it came in when it reads back equal (its author too); only
        # the others are rebuilt from their rows, with the authors looked up for them alone.
        authors, inputs, state = self.authors, self.inputs, self.state
        views: list[Post | None] = []
        rebuild: list[int] = []
        for key in self.changed:
            r = state[key]
            if not isinstance(r, list):
                views.append(None)
                continue
            p = inputs.get(key)
            if p is not None and p.conversation_id != "":
                a = p.author
                cur = authors.get((key[0], a.id))
                if (
                    cur is not None
                    and cur[0] == r[AID]
                    and a.handle == (cur[1] or a.id)
                    and a.name == (cur[2] or "")
                    and a.verified == bool(cur[3])
                    and a.followers == cur[4]
                ):
                    views.append(p)
                    continue
            rebuild.append(len(views))
            views.append(None)
        if rebuild:
            keys = list(self.changed)
            by_aid = {a[0]: (k[1], *a[1:]) for k, a in authors.items() if a}
            rows: list[list[Any]] = [state[keys[i]] for i in rebuild]  # type: ignore[misc]
            missing = {r[AID] for r in rows if r[AID] not in by_aid}
            if missing:
                sql = "SELECT aid, author_id, handle, name, verified, followers FROM authors"
                sql += " WHERE aid IN (SELECT value FROM json_each(?))"
                for r in self.db.execute(sql, (_json(missing),)):
                    by_aid[r[0]] = r[1:]
            for i, r in zip(rebuild, rows, strict=True):
                views[i] = _post(r, by_aid[r[AID]])
        orig = self.orig
        changes = [
            Change(seq, key, view, view is not None and key not in orig)
            for (key, seq), view in zip(self.changed.items(), views, strict=True)
        ]
        return ApplyResult(**self.counts, changed=changes)
