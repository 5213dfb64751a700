"""The reader: every real fixture file, and every way a line can go wrong."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import orjson
import pytest

from firesift.errors import NotFound
from firesift.formats.reader import MAX_LINE_BYTES, Parsed, Problem, read
from firesift.post import Delete, MetricsUpdate, Post

STREAM_WITH_ERROR = "x_api_v2/twarc_csv_testdata/streaming_output_with_error.jsonl"

FIXTURE_GROUPS = {
    "x_api_v2/twarc_csv_testdata/*.jsonl": 23,
    "x_api_v2/tweepy_cassettes/*.json": 12,
    "twitter_v1.1/**/*.json": 7,
    "mastodon/*.json": 13,
    "bluesky_jetstream/expected_v1.jsonl": 1,
}


def split(items: list[Parsed | Problem]) -> tuple[list[Parsed], list[Problem]]:
    return [i for i in items if isinstance(i, Parsed)], [i for i in items if isinstance(i, Problem)]


def good_lines(real_data: Path, n: int = 3) -> list[bytes]:
    with (real_data / "rumoureval2017/posts.jsonl").open("rb") as fh:
        return [fh.readline().rstrip(b"\n") for _ in range(n)]


@pytest.mark.parametrize("pattern", list(FIXTURE_GROUPS))
def test_every_fixture_file_reads_without_unexpected_problems(
    fixtures_dir: Path, pattern: str
) -> None:
    files = sorted(fixtures_dir.glob(pattern))
    assert len(files) == FIXTURE_GROUPS[pattern]
    for path in files:
        parsed, problems = split(list(read(path)))
        rel = path.relative_to(fixtures_dir).as_posix()
        if rel == STREAM_WITH_ERROR:
            assert [(p.where, p.reason.split(":")[0]) for p in problems] == [
                (f"{path}:8", "malformed JSON")
            ]
            assert [p.where for p in parsed] == [f"{path}:{n}" for n in range(1, 8)]
            assert sum(isinstance(e, Post) for p in parsed for e in p.events) == 7
        else:
            assert problems == [], rel
            assert parsed, rel


def test_truncated_last_line_is_named_with_the_file(fixtures_dir: Path) -> None:
    items = list(read(fixtures_dir / STREAM_WITH_ERROR, name="stream.jsonl"))
    assert str(items[-1]).startswith("stream.jsonl:8: malformed JSON")


def test_invalid_utf8_line_is_reported_and_neighbours_kept(real_data: Path) -> None:
    a, b, _ = good_lines(real_data)
    bad = b'{"id": "9", "text": "caf\xe9", "created_at": "2026-01-01"}'
    items = list(read(io.BytesIO(b"\n".join([a, bad, b]) + b"\n"), name="u.jsonl"))
    parsed, problems = split(items)
    assert [p.where for p in parsed] == ["u.jsonl:1", "u.jsonl:3"]
    assert problems == [Problem("u.jsonl:2", "invalid UTF-8 at byte 24")]


def test_over_long_line_is_reported_without_losing_the_next_one(real_data: Path) -> None:
    a, b, _ = good_lines(real_data)
    head = b'{"id": "1", "created_at": "2026-01-01", "text": "'
    at_limit = head + b"x" * (MAX_LINE_BYTES - len(head) - 2) + b'"}'
    assert len(at_limit) == MAX_LINE_BYTES
    over = head + b"x" * (3 * MAX_LINE_BYTES) + b'"}'
    data = b"\n".join([a, over, at_limit, b, over])
    items = list(read(io.BytesIO(data), name="big"))
    parsed, problems = split(items)
    assert [p.where for p in parsed] == ["big:1", "big:3", "big:4"]
    assert [p.where for p in problems] == ["big:2", "big:5"]
    assert all("longer than 1048576 bytes" in p.reason for p in problems)


class _Trickle(io.RawIOBase):
    """A pipe that hands out a few bytes per read, like a slow live stream."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = memoryview(data)
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self._step, len(self._data))
        buffer[:n] = self._data[:n]
        self._data = self._data[n:]
        return n


def test_lines_split_across_small_reads(real_data: Path) -> None:
    lines = good_lines(real_data, 50)
    parsed, problems = split(list(read(_Trickle(b"\n".join(lines), step=7))))  # type: ignore[arg-type]
    assert problems == []
    assert [p.where for p in parsed] == [f"<stream>:{n}" for n in range(1, 51)]


def test_unknown_shape_and_non_objects(fixtures_dir: Path) -> None:
    data = b'{"captured_at": "2026"}\n42\n[1, {"x": 1}]\n'
    items = list(read(io.BytesIO(data), name="s"))
    assert [(i.where, i.reason.split(":")[0]) for i in items if isinstance(i, Problem)] == [
        ("s:1", "unknown shape"),
        ("s:2", "expected a JSON object or array, got int"),
        ("s:3[0]", "expected a JSON object, got int"),
        ("s:3[1]", "unknown shape"),
    ]


def test_blank_keep_alive_lines_are_skipped_silently(fixtures_dir: Path) -> None:
    raw = (fixtures_dir / STREAM_WITH_ERROR).read_bytes().splitlines()[:7]
    data = b"\r\n\r\n".join(raw) + b"\r\n   \r\n\r\n"
    parsed, problems = split(list(read(io.BytesIO(data), name="ka")))
    assert problems == []
    assert [p.where for p in parsed] == [f"ka:{n}" for n in range(1, 14, 2)]


def test_forced_format(fixtures_dir: Path) -> None:
    path = fixtures_dir / STREAM_WITH_ERROR
    parsed, problems = split(list(read(path, fmt="x_v2")))
    assert len(parsed) == 7 and len(problems) == 1
    parsed, problems = split(list(read(path, fmt="jetstream")))
    assert parsed == [] and len(problems) == 8
    assert problems[0].reason.startswith("jetstream: ")


def test_forced_unknown_format_fails_before_reading() -> None:
    with pytest.raises(NotFound, match="valid formats: jetstream, mastodon, twitter_v1, x_v2"):
        read(io.BytesIO(b""), fmt="nope")


def test_missing_file() -> None:
    with pytest.raises(NotFound, match="no such file"):
        read("/nonexistent/posts.jsonl")


def test_binary_stream_and_stdin(real_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"\n".join(good_lines(real_data)) + b"\n"
    assert [i.where for i in read(io.BytesIO(data))] == ["<stream>:1", "<stream>:2", "<stream>:3"]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    items = list(read("-"))
    assert [i.where for i in items] == ["<stdin>:1", "<stdin>:2", "<stdin>:3"]
    assert all(isinstance(i, Parsed) and len(i.events) == 1 for i in items)


def test_stream_is_not_closed(real_data: Path) -> None:
    stream = io.BytesIO(b"\n".join(good_lines(real_data)))
    assert len(list(read(stream))) == 3
    assert not stream.closed


def test_text_stream_is_refused() -> None:
    with pytest.raises(TypeError, match="binary stream"):
        list(read(io.StringIO("{}\n")))  # type: ignore[arg-type]


def test_mixed_stream_detects_each_line(fixtures_dir: Path, real_data: Path) -> None:
    jet = (fixtures_dir / "bluesky_jetstream/expected_v1.jsonl").read_bytes().splitlines()
    v2 = (fixtures_dir / STREAM_WITH_ERROR).read_bytes().splitlines()[0]
    canonical = good_lines(real_data, 1)[0]
    data = b"\n".join([canonical, v2, jet[0], jet[1], canonical, jet[144], v2])
    kinds = [
        (type(e).__name__, getattr(e, "source", None))
        for item in read(io.BytesIO(data))
        for e in (item.events if isinstance(item, Parsed) else [])
    ]
    assert kinds == [
        ("Post", "x"),
        ("Post", "x"),
        ("MetricsUpdate", "bluesky"),
        ("Post", "bluesky"),
        ("Post", "x"),
        ("Delete", "bluesky"),
        ("Post", "x"),
    ]


def test_whole_document_array_and_cassette_string_body(fixtures_dir: Path) -> None:
    cassette = orjson.loads((fixtures_dir / "mastodon/test_public_tl__2.json").read_bytes())
    statuses = cassette["body"]
    pretty = orjson.dumps(statuses, option=orjson.OPT_INDENT_2)
    items = list(read(io.BytesIO(pretty), name="tl.json"))
    assert [i.where for i in items] == [f"tl.json:1[{n}]" for n in range(8)]
    wrapped = {**cassette, "body": orjson.dumps(statuses).decode()}
    items = list(read(io.BytesIO(orjson.dumps(wrapped)), name="c"))
    assert len(items) == 8 and all(isinstance(i, Parsed) and len(i.events) == 1 for i in items)


def test_damaged_document_start_falls_back_to_lines(real_data: Path) -> None:
    a, b, _ = good_lines(real_data)
    data = b'{"id": "1", "text": "cut off",\n' + a + b"\n" + b + b"\n"
    items = list(read(io.BytesIO(data), name="d"))
    parsed, problems = split(items)
    assert [p.where for p in problems] == ["d:1"]
    assert [p.where for p in parsed] == ["d:2", "d:3"]


def test_bom_and_crlf_file(tmp_path: Path, real_data: Path) -> None:
    path = tmp_path / "posts.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(good_lines(real_data)) + b"\r\n")
    parsed, problems = split(list(read(path)))
    assert problems == [] and len(parsed) == 3
    assert parsed[0].where == f"{path}:1"


def test_parser_crash_becomes_a_problem_not_an_exception() -> None:
    data = b'{"did": "did:plc:x", "kind": "commit", "commit": {"collection": "app.bsky.feed.like", "operation": "create", "record": {"subject": ["not", "an", "object"]}}}\n'  # noqa: E501
    [item] = list(read(io.BytesIO(data), name="j"))
    assert isinstance(item, Problem)
    assert item.reason.startswith("jetstream: record.subject must be an object")


def test_deletes_and_metrics_flow_through(fixtures_dir: Path) -> None:
    jet = fixtures_dir / "bluesky_jetstream/expected_v1.jsonl"
    evs = [e for i in read(jet) if isinstance(i, Parsed) for e in i.events]
    assert sum(isinstance(e, Delete) for e in evs) == 1
    assert sum(isinstance(e, MetricsUpdate) for e in evs) == 120
