"""``firesift up`` and ``firesift sources`` through the entry point, as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

FIRESIFT = [sys.executable, "-m", "firesift.cli"]


def env_for(db: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "FIRESIFT_DB": str(db), **extra}


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FIRESIFT, *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def lines(real_data: Path) -> list[bytes]:
    with (real_data / "rumoureval2017" / "posts.jsonl").open("rb") as fh:
        return [next(fh) for _ in range(200)]


def test_sources_lists_every_registered_source(tmp_path: Path) -> None:
    r = run("sources", "--json", env=env_for(tmp_path))
    assert r.returncode == 0, r.stderr
    listed = {d["name"]: d for d in json.loads(r.stdout)}
    assert {"file", "http", "jetstream", "mastodon", "rss", "x"} <= set(listed)
    assert listed["x"]["needs"] == ["x_bearer_token"]
    assert listed["jetstream"]["has_cursor"] is True
    assert "follow" in listed["file"]["options"]
    human = run("sources", env=env_for(tmp_path))
    assert human.returncode == 0 and "jetstream" in human.stdout and "mastodon" in human.stdout
    assert "cannot be loaded" not in human.stderr


def test_up_runs_a_finite_source_to_its_end(tmp_path: Path, lines: list[bytes]) -> None:
    feed = tmp_path / "posts.jsonl"
    feed.write_bytes(b"".join(lines[:120]))
    env = env_for(tmp_path / "db")
    r = run("up", "--source", f"file:{feed}", "--json", env=env)
    assert r.returncode == 0, r.stderr
    (st,) = json.loads(r.stdout)
    assert (st["state"], st["posts"], st["errors"]) == ("finished", 120, 0)
    assert f"file:{feed}: finished, 120 posts" in r.stderr
    stats = run("stats", "--json", env=env)
    assert json.loads(stats.stdout)["source_cursors"] == {
        f"file:{feed}": f"{feed.stat().st_ino}:{feed.stat().st_size}"
    }
    human = run("stats", env=env)
    assert "Live sources" in human.stdout
    assert f"{feed.stat().st_ino}:{feed.stat().st_size}" in human.stdout


def test_up_stops_on_ctrl_c_saves_the_cursor_and_resumes(
    tmp_path: Path, lines: list[bytes]
) -> None:
    feed = tmp_path / "live.jsonl"
    feed.write_bytes(b"".join(lines[:100]))
    uri = f"file:{feed}?follow=true&poll=0.05"
    env = env_for(tmp_path / "db")

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*FIRESIFT, "up", "--source", uri, "--status-every", "0.2", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    def wait_line(proc: subprocess.Popen[str], text: str) -> None:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        for line in proc.stderr:
            if text in line:
                return
            assert time.monotonic() < deadline, f"no {text!r} in time"
        raise AssertionError(f"up ended before printing {text!r}")

    proc = start()
    wait_line(proc, "connected, 100 posts")
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert json.loads(stdout)[0]["posts"] == 100
    with feed.open("ab") as fh:
        fh.write(b"".join(lines[100:150]))
    proc = start()
    wait_line(proc, "connected, 50 posts")
    proc.send_signal(signal.SIGTERM)  # a service manager's stop works the same
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    (st,) = json.loads(stdout)
    assert (st["posts"], st["duplicates"]) == (50, 0)


def test_up_reads_sources_from_the_config_file(tmp_path: Path, lines: list[bytes]) -> None:
    feed = tmp_path / "posts.jsonl"
    feed.write_bytes(b"".join(lines[:10]))
    config = tmp_path / "config.toml"
    config.write_text(f'[[sources]]\ntype = "file"\narg = "{feed}"\nname = "archive"\n')
    r = run("up", "--json", env=env_for(tmp_path / "db", FIRESIFT_CONFIG=str(config)))
    assert r.returncode == 0, r.stderr
    assert [(s["key"], s["posts"]) for s in json.loads(r.stdout)] == [("archive", 10)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "no sources; give --source"),
        (("--source", "nope"), "--source nope: unknown source 'nope'; known: file"),
        (("--source", "mastodon"), "source mastodon needs an argument"),
        (("--source", "x"), "source x needs x_bearer_token (set FIRESIFT_X_BEARER_TOKEN)"),
        (("--source", "http"), "the http source is firesift serve's POST /api/ingest"),
    ],
)
def test_up_refuses_bad_sources_in_one_line(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    r = run("up", *args, env=env_for(tmp_path / "db"))
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr


def test_up_exits_nonzero_when_every_source_stopped_on_an_error(tmp_path: Path) -> None:
    r = run("up", "--source", f"file:{tmp_path}/missing.jsonl", env=env_for(tmp_path / "db"))
    assert r.returncode == 1
    assert f"no such file: {tmp_path}/missing.jsonl" in r.stderr
