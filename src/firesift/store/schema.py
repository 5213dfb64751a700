"""The schema, as ordered migrations recorded in ``schema_migrations``."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from firesift.errors import StoreError

__all__ = ["MIGRATIONS", "Migration", "migrate"]


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


def migrate(
    db: sqlite3.Connection,
    file: Path,
    migrations: Sequence[Migration],
    *,
    table: str = "schema_migrations",
    what: str = "schema",
) -> int:
    """Bring ``db`` to the latest of ``migrations`` in one transaction; returns the version.
    ``table`` records the applied versions, so independent sets of tables sharing one file
    (the watches in the store's file) keep their own history; ``what`` names the set in the
    error for a file newer than this firesift."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (version INTEGER PRIMARY KEY,"
            " name TEXT NOT NULL, applied_ms INTEGER NOT NULL)"
        )
        current = db.execute(f"SELECT coalesce(max(version), 0) FROM {table}")
        version: int = current.fetchone()[0]
        if version > len(migrations):
            raise StoreError(
                f"{file} has {what} version {version}, newer than this firesift knows "
                f"({len(migrations)}): upgrade firesift or use another data directory"
            )
        for number, (name, step) in enumerate(migrations[version:], start=version + 1):
            step(db)
            now_ms = time.time_ns() // 1_000_000
            db.execute(f"INSERT INTO {table} VALUES (?, ?, ?)", (number, name, now_ms))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return len(migrations)
