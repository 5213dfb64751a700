"""The CLI through its entry point, as a user meets it: real files in, stdout/stderr/exit out."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIRESIFT = [sys.executable, "-m", "firesift.cli"]


def run(
    *args: str, db: Path | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if db is not None:
        env["FIRESIFT_DB"] = str(db)
    return subprocess.run(
        [*FIRESIFT, *args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture(scope="module")
def db(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("db")
    r = run("ingest", str(real_data / "rumoureval2017" / "posts.jsonl"), "--json", db=path)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["ingested"] == 4519
    assert summary["skipped"] == 0
    return path


def test_help_has_examples() -> None:
    r = run("--help")
    assert r.returncode == 0
    assert "examples:" in r.stdout
    for command in ("ingest", "search", "stats"):
        assert command in r.stdout


def test_ingest_reports_bad_line_and_keeps_good_ones(fixtures_dir: Path, tmp_path: Path) -> None:
    path = fixtures_dir / "x_api_v2" / "twarc_csv_testdata" / "streaming_output_with_error.jsonl"
    r = run("ingest", str(path), "--json", db=tmp_path)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["skipped"] == 1
    assert summary["problems"][0]["where"].endswith("streaming_output_with_error.jsonl:8")
    assert summary["ingested"] >= 7
    strict = run("ingest", str(path), "--strict", db=tmp_path)
    assert strict.returncode == 1
    assert "streaming_output_with_error.jsonl:8" in strict.stderr
    assert "duplicates" in strict.stderr


def test_ingest_from_stdin_is_deduplicated(real_data: Path, tmp_path: Path) -> None:
    lines = (real_data / "pheme9" / "source_tweets.jsonl").read_bytes().splitlines(True)[:50]
    first = run("ingest", "-", "--json", db=tmp_path, stdin=b"".join(lines))
    again = run("ingest", "-", "--json", db=tmp_path, stdin=b"".join(lines))
    assert json.loads(first.stdout)["ingested"] == 50
    assert json.loads(again.stdout)["ingested"] == 0
    assert json.loads(again.stdout)["duplicates"] == 50


def test_search_json_shape_and_as_of(db: Path) -> None:
    r = run("search", "gunman ottawa", "--json", "--limit", "5", db=db)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["as_of"]
    assert 0 < len(out["results"]) <= 5
    first = out["results"][0]
    assert {"source", "id", "url", "author", "created_at", "text", "score", "metrics"} <= set(first)
    assert "gunman" in first["text"].lower() or "ottawa" in first["text"].lower()

    cutoff = "2014-10-22T16:00:00+00:00"
    early = json.loads(run("search", "ottawa", "--json", "--as-of", cutoff, db=db).stdout)
    assert early["results"], "posts exist before the cutoff"
    assert all(r["created_at"] <= cutoff for r in early["results"])
    assert early["as_of"].startswith("2014-10-22T16:00")


def test_search_operators(db: Path) -> None:
    out = json.loads(run("search", "from:AP -filter:replies", "--json", db=db).stdout)
    assert out["results"]
    assert all(r["author"]["handle"].lower() == "ap" for r in out["results"])
    assert all(r["reply_to"] is None for r in out["results"])


def test_malformed_query_points_at_problem(db: Path) -> None:
    r = run("search", '"unterminated phrase', db=db)
    assert r.returncode == 2
    assert "firesift:" in r.stderr
    assert "^" in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_as_of_is_one_line(db: Path) -> None:
    r = run("search", "ottawa", "--as-of", "soonish", db=db)
    assert r.returncode == 2
    assert "not a time" in r.stderr
    assert "Traceback" not in r.stderr


def test_stats_and_index_rebuild(db: Path, tmp_path: Path) -> None:
    copy = tmp_path / "db"
    shutil.copytree(db, copy)
    stats = json.loads(run("stats", "--json", db=copy).stdout)
    assert stats["posts"] == 4519
    assert stats["sources"]["x"]["posts"] == 4519
    assert stats["index"]["docs"] == 4519
    assert stats["index"]["lag_changes"] == 0

    shutil.rmtree(copy / "index")
    r = run("search", "gunman", "--json", db=copy)
    assert r.returncode == 0, r.stderr
    assert "index rebuilt" in r.stderr
    assert json.loads(r.stdout)["results"]


def test_stats_reads_as_a_table(db: Path) -> None:
    r = run("stats", db=db)
    assert r.returncode == 0, r.stderr
    row = next(line for line in r.stdout.splitlines() if "│ x " in line)
    assert "4,519" in row and "2014-" in row and "days" in row  # posts, first post, span
    assert re.search(r"index\s+4,519 docs, caught up, refreshed (just now|\d+ s ago)", r.stdout)
    assert "{" not in r.stdout and not re.search(r"\d{10}\.\d", r.stdout)  # no reprs, no epochs
    empty = run("stats", db=db.parent / "empty")
    assert "No posts in" in empty.stdout and "firesift ingest" in empty.stdout


def test_settings_lists_every_setting() -> None:
    from firesift.config import SETTINGS

    out = json.loads(run("settings", "--json").stdout)
    assert [s["name"] for s in out] == [s.name for s in SETTINGS]
    text = run("settings").stdout
    for s in SETTINGS:
        assert re.search(rf"^{s.name}\s", text, re.M) and s.env in text


def test_ask_json_cites_only_posts_before_as_of(db: Path) -> None:
    as_of = "2014-10-22T22:00:00+00:00"
    r = run("ask", "What happened at the Ottawa parliament?", "--as-of", as_of, "--json", db=db)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {"answer", "citations", "as_of", "evidence", "warnings"} <= set(out)
    assert out["citations"], out
    for c in out["citations"]:
        assert {"n", "source", "id", "url", "author", "created_at", "text"} <= set(c)
        assert c["created_at"] <= as_of
        assert f"[{c['n']}]" in out["answer"]
    assert out["evidence"]["posts"] >= len(out["citations"])


def test_ask_without_evidence_says_so(db: Path) -> None:
    r = run("ask", "zzyzx quokka regatta results", "--json", db=db)
    out = json.loads(r.stdout)
    assert out["grounded"] is False
    assert "nothing in the stream answers this" in out["answer"].lower()


def test_check_json(db: Path) -> None:
    r = run(
        "check",
        "a gunman is on the loose in Ottawa",
        "--as-of",
        "2014-10-22T20:00Z",
        "--json",
        db=db,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["verdict"] in {"supported", "disputed", "unverified", "insufficient"}
    assert out["evidence"]
    assert {"source", "id", "stance"} <= set(out["evidence"][0])
    assert set(out["counts"]) >= {"support", "deny"}


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    created = json.loads(run("keys", "create", "--name", "ci", "--json", db=tmp_path).stdout)
    secret = created["secret"]
    listed = run("keys", "list", "--json", db=tmp_path)
    assert secret not in listed.stdout
    keys = json.loads(listed.stdout)
    assert [k["name"] for k in keys] == ["ci"]
    table = run("keys", "list", db=tmp_path).stdout
    assert keys[0]["id"] in table and "prefix" in table and secret not in table
    assert run("keys", "revoke", keys[0]["id"], db=tmp_path).returncode == 0
    assert json.loads(run("keys", "list", "--json", db=tmp_path).stdout) == []
    assert "No API keys yet" in run("keys", "list", db=tmp_path).stdout
    missing = run("keys", "revoke", "nope", db=tmp_path)
    assert missing.returncode == 2
    assert "Traceback" not in missing.stderr
