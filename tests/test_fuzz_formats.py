"""Hostile input for every wire format, property-based: the reader never raises, and a good
line is never lost around a bad one.

The inputs start from the real recorded payloads in ``data/`` (one pool of objects per format
the reader detects) and mutate them: fields swapped for values of another type, nested,
deleted; serialised lines truncated, spliced, or given bytes that are never UTF-8; plus raw
random bytes, deep nesting and an over-long line. ``FIRESIFT_FUZZ_EXAMPLES=N`` runs every
property with ``N`` examples instead of the few that keep ``make test`` fast.
"""

from __future__ import annotations

import copy
import io
import itertools
import json
import os
import re
from collections.abc import Iterator
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO, cast

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from firesift.cli import main
from firesift.database import Database
from firesift.errors import ParseError
from firesift.formats import Messages, Parsed, Problem, detect, names, read
from firesift.formats.mastodon import parse_stream_event
from firesift.formats.reader import MAX_LINE_BYTES
from firesift.post import Author, Delete, Event, Identity, Metrics, MetricsUpdate, Post
from firesift.recorded import DATA

FORMATS = ("canonical", "jetstream", "mastodon", "twitter_v1", "x_v2")
_FUZZ = int(os.environ.get("FIRESIFT_FUZZ_EXAMPLES") or 0)
_MAX_SEED_BYTES = 40_000
"""Seed objects larger than this (whole 100-tweet pages) only slow every example down."""


def fuzz(n: int) -> settings:
    """``n`` examples (or ``FIRESIFT_FUZZ_EXAMPLES``), no deadline: CI machines are shared."""
    return settings(
        max_examples=_FUZZ or n,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# --- the real payloads ------------------------------------------------------------------------


def _objects(value: Any) -> Iterator[dict[str, Any]]:
    """The objects a fixture holds, unwrapped as the reader unwraps them."""
    if isinstance(value, list):
        for item in value:
            yield from _objects(item)
    elif isinstance(value, dict):
        if "response_status" in value and "body" in value:
            body = value["body"]
            yield from _objects(orjson.loads(body) if isinstance(body, str) else body)
        else:
            yield value


def _is_json(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def _fixture_values() -> Iterator[Any]:
    fixtures = DATA / "fixtures"
    for path in sorted(fixtures.rglob("*.json*")):
        if path.name in ("manifest.json", "subscribeEvents.lexicon.json"):
            continue
        raw = path.read_bytes()
        if path.suffix == ".jsonl":
            for line in raw.splitlines()[:40]:
                if line.strip() and _is_json(line):  # one stream capture ends cut short
                    yield orjson.loads(line)
        else:
            yield orjson.loads(raw)
    for name in ("rumoureval2017/posts.jsonl", "pheme9/source_tweets.jsonl"):
        with (DATA / name).open("rb") as fh:
            yield from (orjson.loads(next(fh)) for _ in range(20))


@cache
def seeds() -> dict[str, list[dict[str, Any]]]:
    """Real objects by the format the reader detects for them (small ones, up to 25 each)."""
    pool: dict[str, list[dict[str, Any]]] = {name: [] for name in FORMATS}
    for value in _fixture_values():
        for obj in _objects(value):
            if len(orjson.dumps(obj)) > _MAX_SEED_BYTES:
                continue
            group = pool[detect(obj).name]
            if len(group) < 25:
                group.append(obj)
    return pool


@cache
def good_lines() -> list[tuple[bytes, list[Event]]]:
    """Real one-line payloads of every format that carry at least one post, with the events the
    reader gives for each line alone."""
    out = []
    for name in FORMATS:
        for obj in seeds()[name]:
            line = orjson.dumps(obj)
            [item] = read(io.BytesIO(line), name="alone")
            if isinstance(item, Parsed) and any(isinstance(e, Post) for e in item.events):
                out.append((line, item.events))
    return out


def test_every_format_has_real_seeds_and_good_lines() -> None:
    assert sorted(names()) == sorted(FORMATS), "a new format needs seeds here"
    assert all(len(seeds()[name]) >= 3 for name in FORMATS), {k: len(v) for k, v in seeds().items()}
    formats_with_posts = {detect(orjson.loads(line)).name for line, _ in good_lines()}
    assert formats_with_posts == set(FORMATS)


# --- hostile values and lines -----------------------------------------------------------------

_TRICKY_STRINGS = [
    "",
    " ",
    "0",
    "-1",
    "²",
    "١٢٣",
    "99999999999999999999999999",
    "9223372036854775808",
    "18446744073709551615",
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00+01:00",
    "Fri Dec 31 23:59:59 -0100 9999",
    "Wed Jan 07 11:06:08 +9999 2015",
    "2024-02-30",
    "at://",
    "at://did:plc:x/app.bsky.feed.post/",
    "javascript:alert(1)",
    "https://[::1",
    "&amp;&lt;&#0;&#x110000;",
    "<p><a href='x'>…</a><span class='quote-inline'><br>",
    "\x00\u202e\ufeff",
    "#" * 50,
    "@" * 50,
    "x" * 5000,
    "app.bsky.feed.post",
    "app.bsky.richtext.facet#link",
    "app.bsky.embed.recordWithMedia",
    "delete",
    "update",
    "status.update",
    "retweeted",
    "commit",
    "identity",
]
_NUMBERS = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.integers(),  # big ones go through json.dumps, and orjson reads them back as floats
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 2**63 - 1, 2**63, 2**64 - 1, 1e300, -1e300, 1e15, 5e-324]),
)
_TEXT = st.one_of(
    st.sampled_from(_TRICKY_STRINGS),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=30),
)
_SCALARS = st.one_of(st.none(), st.booleans(), _NUMBERS, _TEXT)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(_TEXT, inner, max_size=4),
    ),
    max_leaves=12,
)


def _slots(value: Any, slots: list[tuple[Any, Any]], depth: int = 0) -> list[tuple[Any, Any]]:
    """Every ``(container, key)`` in ``value``, to pick a place to mutate."""
    if depth > 30:
        return slots
    if isinstance(value, dict):
        for key, child in value.items():
            slots.append((value, key))
            _slots(child, slots, depth + 1)
    elif isinstance(value, list):
        for i, child in enumerate(value):
            slots.append((value, i))
            _slots(child, slots, depth + 1)
    return slots


def _dumps(value: Any, ascii_only: bool) -> bytes:
    try:
        return orjson.dumps(value) if not ascii_only else json.dumps(value).encode()
    except TypeError:  # an integer beyond 64 bits: orjson refuses, the stdlib writes it
        return json.dumps(value, ensure_ascii=ascii_only).encode()


@st.composite
def mutated_object(draw: st.DrawFn, fmt: str | None = None) -> dict[str, Any]:
    """A real object of ``fmt`` (any format when None) with a few fields swapped for values of
    other types, deleted, nested deeply or given keys that other formats own."""
    name = fmt or draw(st.sampled_from(FORMATS))
    obj = copy.deepcopy(draw(st.sampled_from(seeds()[name])))
    for _ in range(draw(st.integers(1, 4))):
        slots = _slots(obj, [])
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        action = draw(st.sampled_from(["replace", "replace", "delete", "nest", "foreign"]))
        if action == "replace":
            container[key] = draw(_VALUES)
        elif action == "delete":
            del container[key]
        elif action == "nest":
            value = container[key]
            for _ in range(draw(st.integers(1, 60))):
                value = draw(st.sampled_from([[value], {"x": value}]))
            container[key] = value
        elif isinstance(container, dict):
            foreign = ["did", "kind", "user", "id_str", "content", "account", "data", "payload"]
            container[draw(st.sampled_from(foreign))] = draw(_VALUES)
    return obj


_NEVER_UTF8 = st.sampled_from(
    [b"\xff", b"\xfe", b"\xc0", b"\xc1", b"\xf5", b"\x80", b"\xed\xa0\x80"]
)


@st.composite
def mangled_line(draw: st.DrawFn, line: bytes) -> bytes:
    """``line`` truncated, spliced, or with bytes that are never UTF-8 put in."""
    action = draw(st.sampled_from(["truncate", "invalid_utf8", "splice", "flip"]))
    if action == "truncate":
        return line[: draw(st.integers(0, len(line)))]
    at = draw(st.integers(0, len(line)))
    if action == "invalid_utf8":
        return line[:at] + draw(_NEVER_UTF8) + line[at:]
    if action == "splice":
        other = draw(st.sampled_from(good_lines()))[0]
        return line[:at] + other[draw(st.integers(0, len(other))) :]
    if not line:
        return line
    at = min(at, len(line) - 1)
    return line[:at] + bytes([draw(st.integers(0, 255))]) + line[at + 1 :]


@st.composite
def hostile_line(draw: st.DrawFn, fmt: str | None = None) -> bytes:
    """One line of any kind: mutated real objects (possibly mangled further), random bytes,
    deep nesting, arrays, cassette wrappers."""
    kind = draw(st.sampled_from(["object", "mangled", "bytes", "nested", "array", "cassette"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "nested":
        depth = draw(st.integers(1, 1500))
        return b"[" * depth + draw(st.sampled_from([b"", b"{}", b"1"])) + b"]" * depth
    obj = draw(mutated_object(fmt))
    line = _dumps(obj, draw(st.booleans()))
    if kind == "mangled":
        return draw(mangled_line(line))
    if kind == "array":
        return _dumps([obj, draw(_VALUES), draw(mutated_object(fmt))], False)
    if kind == "cassette":
        body = draw(st.sampled_from([line.decode("utf-8", "replace"), obj, [obj], draw(_VALUES)]))
        return _dumps({"request": {}, "response_status": {"code": 200}, "body": body}, False)
    return line


# --- what the reader may yield ----------------------------------------------------------------

_LINE_OF = re.compile(r"^(?P<name>.+):(?P<line>\d+)(?:\[\d+\])*$")


def line_of(where: str, name: str) -> int:
    m = _LINE_OF.match(where)
    assert m is not None and m.group("name") == name, where
    return int(m.group("line"))


def _strings(values: object) -> bool:
    return isinstance(values, tuple) and all(isinstance(v, str) for v in values)


def _utc(dt: object) -> bool:
    return isinstance(dt, datetime) and dt.utcoffset() is not None and not dt.utcoffset()


def _count(n: object) -> bool:
    return type(n) is int and 0 <= n < 2**63


def check_event(event: Event) -> None:
    """An event holds what its type promises (what the store and the index rely on), whatever
    the payload held."""
    if isinstance(event, Post):
        assert all(isinstance(v, str) for v in (event.source, event.id, event.text, event.url))
        assert _utc(event.created_at), event.created_at
        assert event.edited_at is None or _utc(event.edited_at)
        a = event.author
        assert isinstance(a, Author) and isinstance(a.id, str) and isinstance(a.handle, str)
        assert isinstance(a.name, str) and isinstance(a.verified, bool)
        assert a.followers is None or _count(a.followers), a.followers
        for ref in (event.lang, event.reply_to, event.conversation_id, event.quote_of):
            assert ref is None or isinstance(ref, str)
        assert event.repost_of is None or isinstance(event.repost_of, str)
        m = event.metrics
        assert isinstance(m, Metrics)
        assert all(_count(n) for n in (m.likes, m.reposts, m.replies, m.quotes)), m
        assert m.views is None or _count(m.views)
        for values in (event.hashtags, event.mentions, event.urls, event.media_alt):
            assert _strings(values), values
        assert _strings(event.edit_of)
    elif isinstance(event, Delete):
        assert isinstance(event.source, str) and isinstance(event.id, str)
        assert event.at is None or _utc(event.at)
        assert isinstance(event.reason, str)
    elif isinstance(event, MetricsUpdate):
        assert isinstance(event.id, str)
        assert all(type(n) is int for n in (event.likes, event.reposts, event.replies))
    else:
        assert isinstance(event, Identity)
        assert all(isinstance(v, str) for v in (event.author_id, event.handle))


def check_items(items: list[Parsed | Problem], name: str, lines: int) -> None:
    """Only Parsed and Problem, each naming a line that exists, in input order."""
    numbers = []
    for item in items:
        assert isinstance(item, Parsed | Problem), item
        numbers.append(line_of(item.where, name))
        if isinstance(item, Problem):
            assert isinstance(item.reason, str) and item.reason
            # the reader's safety net for parser bugs is for plugins: built-ins raise ParseError
            assert "malformed payload" not in item.reason, item
        else:
            for event in item.events:
                check_event(event)
    assert numbers == sorted(numbers)
    assert all(1 <= n <= lines for n in numbers), (numbers, lines)


# --- properties -------------------------------------------------------------------------------


@fuzz(150)
@given(st.lists(hostile_line(), min_size=1, max_size=8), st.sampled_from(["auto", *FORMATS]))
@example([b'{"id":"1","text":"x","created_at":"9999-12-31T23:59:59-01:00"}'], "auto")
@example([b'{"id":"1","text":"x","created_at":"Fri Dec 31 23:59:59 -0100 9999"}'], "auto")
@example([b'{"id":"1","text":"x","created_at":1e300}'], "auto")
@example([b'{"id":"99999999999999999999999999999","text":"x"}'], "x_v2")
@example(
    [
        b'{"did":"d","kind":"commit","time_us":1e300,"commit":{"collection":'
        b'"app.bsky.feed.post","rkey":"r","operation":"create","record":{"text":"x"}}}'
    ],
    "auto",
)
@example(
    [b'{"id":"1","text":"t","created_at":"2020-01-01","metrics":{"likes":18446744073709551615}}'],
    "canonical",
)
@example(
    [b'{"id":"1","text":"t","created_at":"2020-01-01","author":{"followers":"\xc2\xb2"}}'], "auto"
)
def test_hostile_lines_give_only_parsed_items_and_problems(lines: list[bytes], fmt: str) -> None:
    """Whatever the lines hold, with detection or a forced format, the reader yields only
    Parsed items with well-typed events and Problems naming a line; so does the live
    connectors' per-message parser."""
    data = b"\n".join(lines)
    items = list(read(io.BytesIO(data), fmt=fmt, name="hostile.jsonl"))
    check_items(items, "hostile.jsonl", data.count(b"\n") + 1)
    messages = Messages(fmt)
    for i, line in enumerate(lines, 1):
        check_items(messages.parse(line, f"ws:{i}"), "ws", len(lines))
        text = line.decode("utf-8", "surrogateescape")  # a text frame, lone surrogates and all
        check_items(messages.parse(text, f"ws:{i}"), "ws", len(lines))


@fuzz(100)
@given(st.binary(max_size=2000), st.sampled_from(["auto", *FORMATS]))
@example(b"\xef\xbb\xbf[\n{", "auto")
@example(b"{\n" + b"[" * 3000, "auto")
def test_random_bytes_give_only_parsed_items_and_problems(data: bytes, fmt: str) -> None:
    items = list(read(io.BytesIO(data), fmt=fmt, name="bytes"))
    check_items(items, "bytes", data.count(b"\n") + 1)


@fuzz(100)
@given(
    st.sampled_from(["update", "status.update", "delete", "notification", " update\n"]),
    hostile_line("mastodon"),
)
@example("update", b'"' + b"[" * 2000 + b'"')
@example("delete", b"")
def test_mastodon_sse_events_raise_only_parse_errors(event: str, data: bytes) -> None:
    """Mastodon's SSE path (``event:`` name, ``data:`` text) bypasses the reader: it may raise
    ParseError for a bad payload and nothing else."""
    try:
        events = parse_stream_event(event, data.decode("utf-8", "replace"))
    except ParseError as exc:
        assert exc.reason
        return
    for e in events:
        check_event(e)


@st.composite
def bad_line(draw: st.DrawFn) -> bytes:
    """A line the reader must reject as one Problem: real lines cut short or given a byte that
    is never UTF-8, scalars, nesting too deep or of arrays, shapes no format owns, one line over
    the limit."""
    line = draw(st.sampled_from(good_lines()))[0]
    kind = draw(st.sampled_from(["truncate", "utf8", "scalar", "nested", "unknown", "huge"]))
    if kind == "truncate":
        return line[: draw(st.integers(1, len(line) - 1))].rstrip() or b"{"
    if kind == "utf8":
        at = draw(st.integers(0, len(line)))
        return line[:at] + draw(_NEVER_UTF8) + line[at:]
    if kind == "scalar":
        return _dumps(draw(_SCALARS), draw(st.booleans()))
    if kind == "nested":
        depth = draw(st.integers(2, 1500))
        return b"[" * depth + b"]" * depth
    if kind == "unknown":
        keys = st.text("abcdefgh", min_size=1, max_size=6).map(lambda k: "zz" + k)
        return _dumps(draw(st.dictionaries(keys, _VALUES, max_size=3)), False)
    return b'{"id":"1","created_at":"2026-01-01","text":"' + b"x" * MAX_LINE_BYTES + b'"}'


_ENTRY = st.one_of(
    st.tuples(st.just("good"), st.sampled_from(range(10_000))),
    st.tuples(st.just("bad"), bad_line()),
    st.tuples(st.just("hostile"), mutated_object().map(lambda o: _dumps(o, False))),
    st.tuples(st.just("blank"), st.sampled_from([b"", b"\r", b"  \t"])),
)


class Trickle:
    """A pipe that hands out a few bytes per read (``sizes`` in turn), as a live stream does, so
    lines arrive split across reads."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self._data = data
        self._pos = 0
        self._sizes = itertools.cycle(sizes)
        self._least = len(data) // 2000  # keeps an over-long line from taking a million reads

    def read1(self, n: int = -1) -> bytes:
        size = max(next(self._sizes), self._least)
        chunk = self._data[self._pos : self._pos + (min(size, n) if n > 0 else size)]
        self._pos += len(chunk)
        return chunk

    read = read1


_CHUNKS = st.none() | st.lists(st.sampled_from([1, 2, 3, 7, 64, 4096, 1 << 16]), max_size=4)


@fuzz(120)
@given(st.lists(_ENTRY, min_size=1, max_size=12), st.booleans(), _CHUNKS)
@example([("bad", b'{"id": "1", "text": "x", '), ("good", 0)], False, None)
@example([("bad", b"["), ("good", 1), ("bad", b"{")], False, [1])
@example([("good", 2), ("bad", b'{"id":"1","text":"caf\xe9"}'), ("good", 3)], True, [3, 7])
def test_a_good_line_is_never_lost_around_bad_ones(
    entries: list[tuple[str, Any]], crlf: bool, chunks: list[int] | None
) -> None:
    """Real lines interleaved with garbage, from a file or trickling from a pipe: every real
    line's events come out, at its line number and in order; every bad line gives exactly one
    Problem naming its line; a mutated object gives exactly one item; blank lines give
    nothing."""
    pool = good_lines()
    lines: list[bytes] = []
    expected: dict[int, tuple[str, list[Event] | None]] = {}
    for n, (kind, value) in enumerate(entries, 1):
        if kind == "good":
            line, events = pool[value % len(pool)]
            expected[n] = ("good", events)
        else:
            line, events = value, None
            expected[n] = (kind, None)
        lines.append(line + b"\r" if crlf and kind != "blank" else line)
    data = b"\n".join(lines) + b"\n"
    stream = io.BytesIO(data) if not chunks else cast(BinaryIO, Trickle(data, chunks))
    items = list(read(stream, name="mixed.jsonl"))
    check_items(items, "mixed.jsonl", len(lines))
    by_line: dict[int, list[Parsed | Problem]] = {}
    for item in items:
        by_line.setdefault(line_of(item.where, "mixed.jsonl"), []).append(item)
    for n, (kind, events) in expected.items():
        got = by_line.get(n, [])
        if kind == "good":
            assert [type(i) for i in got] == [Parsed], (n, got)
            assert got[0].events == events, n
        elif kind == "bad":
            assert [type(i) for i in got] == [Problem], (n, got)
        elif kind == "hostile":
            assert len(got) == 1, (n, got)
        else:
            assert got == [], (n, got)


# --- the CLI ------------------------------------------------------------------------------------


def test_cli_ingest_of_a_file_mixing_good_and_bad_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``firesift ingest`` keeps every good line of every format, reports each bad line by
    number, exits 0 (1 with ``--strict``), and the store holds exactly the good posts."""
    pool = good_lines()
    bad = [
        pool[0][0][:-7],  # cut short
        pool[1][0][:30] + b"\xff" + pool[1][0][30:],
        b'{"id":"1","text":"x","created_at":"9999-12-31T23:59:59-01:00"}',
        b"[" * 2000,
        b"42",
        b'{"zzz": true}',
    ]
    lines: list[bytes] = []
    bad_at: list[int] = []
    posts: dict[str, Post] = {}
    for i, (line, events) in enumerate(pool):
        lines.append(line)
        for e in events:
            if isinstance(e, Post):
                posts[e.key] = e
        if i % 3 == 0 and bad:
            lines.append(bad.pop())
            bad_at.append(len(lines))
    assert not bad
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    db = tmp_path / "db"

    assert main(["ingest", str(path), "--json", "--db", str(db)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["skipped"] == len(bad_at)
    assert [line_of(p["where"], str(path)) for p in summary["problems"]] == bad_at
    assert summary["ingested"] + summary["updated"] + summary["duplicates"] >= len(posts)

    # an X edit's newer version (in the same fixtures) replaces the older one
    superseded = {f"{p.source}:{old}" for p in posts.values() for old in p.edit_of}
    with Database(db) as database:
        stored = database.store.get_keyed(posts)
        assert set(stored) == set(posts)
        for key, post in posts.items():
            if key not in superseded:
                assert stored[key].text == post.text, key
        assert database.store.stats().posts == len(set(posts) - superseded)

    assert main(["ingest", str(path), "--strict", "--db", str(db)]) == 1
    assert f"{path}:{bad_at[0]}" in capsys.readouterr().err
