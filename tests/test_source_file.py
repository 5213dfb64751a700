"""``file:PATH``: read, follow, survive rotation and truncation, resume after a restart."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from firesift.errors import ConfigError
from firesift.formats import Parsed, read
from source_harness import live_service, source, status, stored_ids, wait_for


@pytest.fixture(scope="module")
def lines(real_data: Path) -> list[bytes]:
    """Real RumourEval posts, one JSON line each."""
    with (real_data / "rumoureval2017" / "posts.jsonl").open("rb") as fh:
        return [next(fh) for _ in range(300)]


def ids_of(lines: list[bytes], tmp_path: Path) -> set[tuple[str, str]]:
    path = tmp_path / "expected.jsonl"
    path.write_bytes(b"".join(lines))
    out = set()
    for item in read(path):
        assert isinstance(item, Parsed)
        out.update((e.source, e.id) for e in item.events if hasattr(e, "text"))
    return out


def test_reads_a_file_to_its_end_keeping_good_lines_around_a_bad_one(
    tmp_path: Path, lines: list[bytes]
) -> None:
    path = tmp_path / "posts.jsonl"
    path.write_bytes(b"".join(lines[:100]) + b'{"broken": \n' + b"".join(lines[100:200]))
    with live_service(tmp_path / "db", source(f"file:{path}")) as service:
        st = wait_for(
            lambda: (s := status(service, f"file:{path}"))["state"] == "finished" and s,
            what="finished",
        )
        assert stored_ids(service) == dict.fromkeys(ids_of(lines[:200], tmp_path), 1)
    assert st["skipped"] == 1 and st["last_problem"].startswith(f"{path}:+101: ")
    assert st["cursor"] == f"{os.stat(path).st_ino}:{path.stat().st_size}"


def test_follows_growth_rotation_and_truncation(tmp_path: Path, lines: list[bytes]) -> None:
    path = tmp_path / "live.jsonl"
    path.write_bytes(b"".join(lines[:50]))
    src = source(f"file:{path}?follow=true&poll=0.05")
    key = f"file:{path}?follow=true&poll=0.05"

    def posts() -> int:
        return int(status(service, key)["posts"])

    with live_service(tmp_path / "db", src) as service:
        wait_for(lambda: posts() == 50, what="first 50")
        with path.open("ab") as fh:  # grows, with a line that arrives in two writes
            fh.write(b"".join(lines[50:80]) + lines[80][:20])
            fh.flush()
            wait_for(lambda: posts() == 80, what="80")
            fh.write(lines[80][20:])
        wait_for(lambda: posts() == 81, what="the split line")
        rotated = tmp_path / "live.jsonl.1"  # rotation: the old file gets a last line first
        with path.open("ab") as fh:
            fh.write(lines[81])
        path.rename(rotated)
        path.write_bytes(b"".join(lines[82:120]))
        wait_for(lambda: posts() == 120, what="the rotated-in file")
        path.write_bytes(b"".join(lines[120:130]))  # truncated in place and rewritten
        wait_for(lambda: posts() == 130, what="after truncation")
        assert stored_ids(service) == dict.fromkeys(ids_of(lines[:130], tmp_path), 1)
        assert status(service, key)["state"] == "connected"


def test_a_restart_resumes_after_the_last_stored_line(tmp_path: Path, lines: list[bytes]) -> None:
    path = tmp_path / "live.jsonl"
    path.write_bytes(b"".join(lines[:100]))
    uri = f"file:{path}?follow=true&poll=0.05"
    with live_service(tmp_path / "db", source(uri)) as service:
        wait_for(lambda: status(service, uri)["posts"] == 100, what="100")
    with path.open("ab") as fh:
        fh.write(b"".join(lines[100:150]))
    with live_service(tmp_path / "db", source(uri)) as service:
        wait_for(lambda: status(service, uri)["posts"] == 50, what="the 50 new ones")
        st = status(service, uri)
        # resumed at the byte after line 100: nothing read twice
        assert st["duplicates"] == 0
        assert stored_ids(service) == dict.fromkeys(ids_of(lines[:150], tmp_path), 1)


def test_a_missing_file_stops_the_source_with_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.jsonl"
    with live_service(tmp_path / "db", source(f"file:{path}")) as service:
        st = wait_for(
            lambda: (s := status(service, f"file:{path}"))["state"] == "stopped" and s,
            what="stopped",
        )
    assert st["reason"] == f"no such file: {path}"


def test_bad_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="poll='soon' is not a number"):
        src = source(f"file:{tmp_path}/a.jsonl?poll=soon&follow=true")
        with live_service(tmp_path / "db", src) as service:
            st = wait_for(
                lambda: (s := status(service, src.spec.key))["state"] == "stopped" and s,
                what="stopped",
            )
            raise ConfigError(st["reason"])
