"""The X filtered-stream source against a fake X on 127.0.0.1 replaying recorded stream lines:
rule sync, every post stored exactly once, and the faults (401, 429, 500, drops, silence,
operational disconnects, garbage)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from fake_x import FakeX, running
from firesift.errors import ConfigError
from firesift.formats.reader import Messages, Parsed
from firesift.post import Post
from firesift.sources.x import STREAM_PARAMS, XStreamSource, parse_rules
from source_harness import live_service, source, status, stored_ids, wait_for

RECORDED = "x_api_v2/twarc_csv_testdata/streaming_output_with_error.jsonl"


@pytest.fixture(scope="module")
def recorded(fixtures_dir: Path) -> tuple[list[bytes], bytes]:
    """The seven recorded stream lines, and the truncated line the capture ends with."""
    lines = (fixtures_dir / RECORDED).read_bytes().splitlines()
    assert len(lines) == 8
    return lines[:7], lines[7]


@pytest.fixture
def fake(recorded: tuple[list[bytes], bytes]) -> Iterator[FakeX]:
    with running(FakeX(list(recorded[0]))) as server:
        yield server


def expected(lines: list[bytes]) -> Counter[tuple[str, str]]:
    """(source, id) of the posts the x_v2 parser reads from ``lines``, each once."""
    ids: Counter[tuple[str, str]] = Counter()
    for i, line in enumerate(lines):
        for r in Messages("x_v2").parse(line, f"line {i}"):
            assert isinstance(r, Parsed)
            ids.update((e.source, e.id) for e in r.events if isinstance(e, Post))
    assert sum(ids.values()) == len(lines)
    return ids


def uri(fake: FakeX, rules: str = "", **options: str) -> str:
    query = "&".join(f"{k}={quote(v)}" for k, v in {"rules": rules, **options}.items() if v)
    return f"x:{fake.url}" + (f"?{query}" if query else "")


def test_rules_parse_values_tags_and_hashtags() -> None:
    assert parse_rules("cat has:images#cats; #python lang:en ;#python lang:en#py;;") == [
        ("cat has:images", "cats"),
        ("#python lang:en", ""),
        ("#python lang:en", "py"),
    ]
    assert parse_rules("#a#b;x") == [("#a", "b"), ("x", "")]


def test_bad_options_are_refused(fake: FakeX) -> None:
    with pytest.raises(ConfigError, match="sync must be true or false"):
        source(uri(fake, "cats", sync="maybe"), x_bearer_token="t")
    with pytest.raises(ConfigError, match="x_bearer_token"):
        source(uri(fake, "cats"))
    with pytest.raises(ConfigError, match="unknown option"):
        source(uri(fake, "cats", follow="true"), x_bearer_token="t")


def test_syncs_rules_then_stores_every_post_once(
    tmp_path: Path, fake: FakeX, recorded: tuple[list[bytes], bytes]
) -> None:
    stale = fake.add_rule("dogs", "old")
    fake.add_rule("cats", "pets")
    src = source(uri(fake, "cats#pets;from:XDevelopers -is:retweet#dev"), x_bearer_token="t")
    assert isinstance(src, XStreamSource)
    want = expected(recorded[0])
    with live_service(tmp_path / "db", src) as service:
        wait_for(lambda: stored_ids(service) == want, what="every recorded post")
        st = status(service, src.spec.key)
        assert st["state"] == "connected" and st["reconnects"] == 0
    assert src.rules_diff == {
        "added": [{"value": "from:XDevelopers -is:retweet", "tag": "dev"}],
        "deleted": [{"id": stale, "value": "dogs", "tag": "old"}],
    }
    assert sorted((r["value"], r.get("tag")) for r in fake.rules.values()) == [
        ("cats", "pets"),
        ("from:XDevelopers -is:retweet", "dev"),
    ]
    assert fake.rule_posts[0] == {"delete": {"ids": [stale]}}  # stale first, then the missing
    query = fake.stream_queries[0]
    assert query["expansions"] == STREAM_PARAMS["expansions"]
    assert "created_at" in query["tweet.fields"] and "alt_text" in query["media.fields"]


def test_sync_false_keeps_other_rules_and_adds_only_missing(tmp_path: Path, fake: FakeX) -> None:
    fake.add_rule("dogs")
    fake.add_rule("cats", "old tag")
    src = source(uri(fake, "cats#pets;birds", sync="false"), x_bearer_token="t")
    assert isinstance(src, XStreamSource)
    with live_service(tmp_path / "db", src) as service:
        wait_for(lambda: fake.connects >= 1, what="the stream request")
        wait_for(lambda: status(service, src.spec.key)["state"] == "connected")
    assert src.rules_diff == {"added": [{"value": "birds", "tag": ""}], "deleted": []}
    assert sorted(r["value"] for r in fake.rules.values()) == ["birds", "cats", "dogs"]


def test_rejected_token_stops_the_source_naming_the_setting(tmp_path: Path, fake: FakeX) -> None:
    src = source(uri(fake, "cats"), x_bearer_token="wrong")
    with live_service(tmp_path / "db", src) as service:
        st = wait_for(
            lambda: (s := status(service, src.spec.key))["state"] == "stopped" and s,
            what="the source to stop",
        )
    assert "401" in st["reason"] and "x_bearer_token" in st["reason"]
    assert fake.connects == 0 and not fake.rules


@pytest.mark.parametrize("code", [500, 429])
def test_server_error_and_rate_limit_are_retried(
    tmp_path: Path, fake: FakeX, recorded: tuple[list[bytes], bytes], code: int
) -> None:
    fake.statuses = [code]
    src = source(uri(fake), x_bearer_token="t")
    want = expected(recorded[0])
    with live_service(tmp_path / "db", src) as service:
        wait_for(lambda: stored_ids(service) == want, what="every post after the error")
        st = status(service, src.spec.key)
    assert str(code) in st["last_error"] and st["reconnects"] >= 1
    assert fake.connects == 2


@pytest.mark.parametrize("fault", ["drop_after", "disconnect_after", "silent_after"])
def test_broken_stream_reconnects_without_duplicates(
    tmp_path: Path, fake: FakeX, recorded: tuple[list[bytes], bytes], fault: str
) -> None:
    setattr(fake, fault, 3)
    src = source(uri(fake, stall="1"), x_bearer_token="t")
    want = expected(recorded[0])
    with live_service(tmp_path / "db", src) as service:
        wait_for(lambda: stored_ids(service) == want, what="every post after the reconnect")
        st = status(service, src.spec.key)
        assert max(stored_ids(service).values()) == 1
    assert st["reconnects"] >= 1 and fake.connects >= 2


def test_garbage_line_is_a_problem_and_the_rest_is_kept(
    tmp_path: Path, recorded: tuple[list[bytes], bytes]
) -> None:
    good, truncated = recorded
    with running(FakeX([*good[:3], truncated, b"not json at all", *good[3:]])) as fake:
        src = source(uri(fake), x_bearer_token="t")
        with live_service(tmp_path / "db", src) as service:
            wait_for(lambda: stored_ids(service) == expected(good), what="the good posts")
            st = wait_for(
                lambda: (s := status(service, src.spec.key))["skipped"] >= 2 and s,
                what="both bad lines counted",
            )
    assert st["skipped"] == 2 and st["reconnects"] == 0
