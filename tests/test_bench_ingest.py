"""``firesift bench ingest``: the real CLI against its two baselines, on one file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import tantivy

from firesift.baselines import bare_tantivy, fts5_loader
from firesift.bench import _cli_ingest, bench_ingest
from firesift.synthetic import SyntheticStream


def _file(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "posts.jsonl"
    path.write_bytes(b"".join(SyntheticStream().lines(n)))
    return path


def test_baselines_leave_every_post_searchable(tmp_path: Path) -> None:
    jsonl = _file(tmp_path, 500)
    assert fts5_loader(jsonl, tmp_path / "f.sqlite3", batch=200) > 0
    db = sqlite3.connect(tmp_path / "f.sqlite3")
    assert db.execute("SELECT count(*) FROM posts").fetchone() == (500,)
    word = db.execute("SELECT text FROM posts LIMIT 1").fetchone()[0].split()[-1]
    assert db.execute("SELECT count(*) FROM fts WHERE fts MATCH ?", (f'"{word}"',)).fetchone()[0]
    assert bare_tantivy(jsonl, tmp_path / "bare") > 0
    index = tantivy.Index.open(str(tmp_path / "bare"))
    index.reload()
    assert index.searcher().num_docs == 500


def test_bench_times_the_cli_and_checks_what_it_stored(tmp_path: Path) -> None:
    logged: list[str] = []
    result = bench_ingest(tmp_path, 1500, logged.append)
    assert result["posts"] == 1500 and result["rounds"] == 3
    assert len(result["cli_seconds"]) == 3
    for key in ("cli_posts_per_s", "fts5_loader_posts_per_s", "bare_engine_posts_per_s"):
        assert result[key] > 0
    assert result["cli_vs_fts5"] > 0 and result["cli_vs_bare"] > 0
    assert 0 < result["store_bytes_per_post"] < result["disk_bytes_per_post"]
    assert any("round 3/3" in line for line in logged)


def test_the_cli_run_is_refused_when_it_stored_less_than_the_file(tmp_path: Path) -> None:
    jsonl = _file(tmp_path, 300)
    with pytest.raises(RuntimeError, match="ingest of 301 posts: 300 stored, 300 indexed"):
        _cli_ingest(jsonl, tmp_path / "db", 301)
