"""Stored Responses API responses: ``responses.sqlite3`` in the data directory.

A small table of its own next to the post store rather than a migration of ``store.sqlite3``:
the post store has one writer, owned by the ingest path, and an API request must not queue
behind an ingest batch (nor the ingest path behind a client). The table still has ordered,
recorded migrations, run by :func:`firesift.store.schema.migrate`. Each row is the response
body exactly as it was returned (``GET /v1/responses/{id}`` answers it unchanged) and the
conversation a follow-up (``previous_response_id``) continues: the earlier turns, the input
and the output text, without the request's ``instructions``; and the request's input items.
WAL with ``synchronous=NORMAL``, as the post store: a stored response survives a process crash
or a restart.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from firesift.answer.model import Message as Turn
from firesift.errors import StoreError
from firesift.store.schema import Migration, migrate

__all__ = ["FILENAME", "MIGRATIONS", "ResponseStore", "Stored"]

FILENAME = "responses.sqlite3"


def _m1_responses(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE responses (id TEXT PRIMARY KEY, created_ms INTEGER NOT NULL,
            previous_id TEXT, body BLOB NOT NULL, conversation BLOB NOT NULL) WITHOUT ROWID"""
    )


def _m2_input_items(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE responses ADD COLUMN input BLOB")


MIGRATIONS: list[Migration] = [("responses", _m1_responses), ("input items", _m2_input_items)]
"""Version ``n`` is ``MIGRATIONS[n - 1]``. Append only; never edit a released migration."""


@dataclass(frozen=True, slots=True)
class Stored:
    """A stored response: its body as returned, its conversation, and its input items (as
    ``GET /v1/responses/{id}/input_items`` lists them; empty for rows from before version 2)."""

    body: dict[str, Any]
    conversation: tuple[Turn, ...]
    input: tuple[dict[str, Any], ...] = ()


class ResponseStore:
    """Stored responses of one data directory (``responses.sqlite3``, WAL): the response body
    as returned, and the conversation a follow-up continues from."""

    def __init__(self, data_dir: Path) -> None:
        self.file = Path(data_dir) / FILENAME
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                self.file, timeout=10.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            migrate(self._db, self.file, MIGRATIONS)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the response store {self.file}: {e}") from e

    def put(
        self,
        body: dict[str, Any],
        conversation: Sequence[Turn],
        input: Sequence[dict[str, Any]] = (),
    ) -> None:
        turns = [[t.role, t.content] for t in conversation]
        with self._lock, self._errors():
            self._db.execute(
                "INSERT OR REPLACE INTO responses"
                " (id, created_ms, previous_id, body, conversation, input)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    body["id"],
                    time.time_ns() // 1_000_000,
                    body.get("previous_response_id"),
                    orjson.dumps(body),
                    orjson.dumps(turns),
                    orjson.dumps(list(input)),
                ),
            )

    def get(self, response_id: str) -> Stored | None:
        with self._lock, self._errors():
            row = self._db.execute(
                "SELECT body, conversation, input FROM responses WHERE id = ?", (response_id,)
            ).fetchone()
        if row is None:
            return None
        turns = tuple(Turn(role, content) for role, content in orjson.loads(row[1]))
        items = tuple(orjson.loads(row[2])) if row[2] is not None else ()
        return Stored(orjson.loads(row[0]), turns, items)

    def delete(self, response_id: str) -> bool:
        with self._lock, self._errors():
            cur = self._db.execute("DELETE FROM responses WHERE id = ?", (response_id,))
        return cur.rowcount > 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as e:
            raise StoreError(f"the response store {self.file} failed: {e}") from e
