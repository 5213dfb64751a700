"""The two loaders ``firesift bench ingest`` measures firesift against, in the same run.

- :func:`fts5_loader`: the loader a user could write in ten minutes with nothing but the
  standard library: ``json.loads`` each line, ``executemany`` into a SQLite table plus an FTS5
  index, 5,000 posts per transaction. firesift must ingest at least as fast.
- :func:`bare_tantivy`: the engine firesift is built on, with nothing around it: one text
  field, one integer and one id per post, one commit at the end. The ceiling; firesift must
  reach at least 0.2 of it.

Both read the same JSONL file the CLI ingests and time from its bytes to searchable, so the
ratios compare like with like whatever else the machine is doing.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

__all__ = ["bare_tantivy", "fts5_loader"]


def fts5_loader(jsonl: Path, db_file: Path, *, batch: int = 5000) -> float:
    """Load ``jsonl`` into ``db_file`` (a table and its FTS5 index); returns the seconds."""
    t0 = time.perf_counter()
    db = sqlite3.connect(db_file)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(
        "CREATE TABLE posts (id TEXT PRIMARY KEY, text TEXT, created_at TEXT, author TEXT,"
        " lang TEXT)"
    )
    db.execute("CREATE VIRTUAL TABLE fts USING fts5(text, content='posts', content_rowid='rowid')")
    rows: list[tuple[str, str, str, str, str | None]] = []

    def flush() -> None:
        with db:
            db.executemany("INSERT OR IGNORE INTO posts VALUES (?, ?, ?, ?, ?)", rows)
            db.executemany(
                "INSERT INTO fts (rowid, text) SELECT rowid, text FROM posts WHERE id = ?",
                [(r[0],) for r in rows],
            )
        rows.clear()

    with jsonl.open("rb") as f:
        for line in f:
            p = json.loads(line)
            rows.append((p["id"], p["text"], p["created_at"], p["author"]["handle"], p.get("lang")))
            if len(rows) >= batch:
                flush()
    flush()
    db.close()
    return time.perf_counter() - t0


def bare_tantivy(jsonl: Path, index_dir: Path) -> float:
    """Load ``jsonl`` straight into a tantivy index; returns the seconds."""
    import tantivy

    t0 = time.perf_counter()
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("text", stored=False)
    sb.add_integer_field("n", indexed=True, fast=True)
    sb.add_text_field("id", stored=True, tokenizer_name="raw")
    index_dir.mkdir(parents=True, exist_ok=True)
    index = tantivy.Index(sb.build(), path=str(index_dir))
    writer = index.writer()
    with jsonl.open("rb") as f:
        for i, line in enumerate(f):
            p = json.loads(line)
            writer.add_document(tantivy.Document(text=p["text"], n=i, id=p["id"]))
    writer.commit()
    writer.wait_merging_threads()
    return time.perf_counter() - t0
