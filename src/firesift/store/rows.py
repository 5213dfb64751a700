"""How a post maps to a ``posts`` row and back, and the set queries batches and reads share."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from firesift.post import Author, Metrics, Post
from firesift.store.model import Key

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_CHUNK = 20_000
_IN = "IN (SELECT value FROM json_each(?2))"


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


def _json_rows(db: sqlite3.Connection, cols: str, rest: str, keys: Iterable[Key]) -> list[Any]:
    """Like :func:`_rows` (``SELECT {cols} {rest}``), but each chunk's rows come back as lists in
    one JSON array: a single SQLite step, so the GIL is released and taken back once rather than
    once per row (which stalls behind another busy Python thread)."""
    out: list[Any] = []
    sql = f"SELECT json_group_array(json_array({cols})) {rest}"
    for source, ids in _by_source(keys).items():
        for i in range(0, len(ids), _CHUNK):
            (text,) = db.execute(sql, (source, _json(ids[i : i + _CHUNK]))).fetchone()
            out += orjson.loads(text)
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
    # Runs once per stored post: one list literal, tuples encoded only when non-empty.
    m, conv, edited, pid = p.metrics, p.conversation_id, p.edited_at, p.id
    tags, mentions, urls, alts, olds = p.hashtags, p.mentions, p.urls, p.media_alt, p.edit_of
    created = p.created_at
    return [
        pk,
        p.source,
        pid,
        (created - _EPOCH) // _ONE_MS if created.tzinfo is not None else _to_ms(created),
        aid,
        p.text,
        p.url or None,
        p.lang,
        p.reply_to,
        "" if conv == pid else conv,
        p.quote_of,
        p.repost_of,
        m.likes,
        m.reposts,
        m.replies,
        m.quotes,
        m.views,
        _dumps(tags).decode() if tags else None,
        _dumps(mentions).decode() if mentions else None,
        _dumps(urls).decode() if urls else None,
        _dumps(alts).decode() if alts else None,
        _dumps(olds).decode() if olds else None,
        None if edited is None else _to_ms(edited),
        seq,
    ]


_dumps = orjson.dumps


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
