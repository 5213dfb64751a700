"""``mastodon:INSTANCE`` against a local Mastodon (REST, SSE and WebSocket streaming behind a
relay) replaying recorded Statuses: discovery, backfill, exactly-once storage, deletes and
edits, gap-free reconnects and restarts, the HTTP and network faults, several streams on one
WebSocket and several instances at once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fake_mastodon import FakeMastodon, Seen, is_local, load_statuses, running
from firesift.errors import ConfigError
from firesift.service import Service
from firesift.sources import Source
from source_harness import live_service, source, status, stored_ids, wait_for

Status = dict[str, Any]
TRANSPORTS = pytest.mark.parametrize("transport", ["ws", "sse"])


@pytest.fixture(scope="module")
def public(fixtures_dir: Path) -> list[Status]:
    """The recorded public timeline (local accounts), oldest first."""
    statuses = load_statuses(fixtures_dir / "mastodon" / "test_public_tl__2.json")
    return sorted(statuses, key=lambda s: int(s["id"]))


@pytest.fixture(scope="module")
def entities(fixtures_dir: Path) -> list[Status]:
    """Single recorded statuses: an edited one with a hashtag and media, an edited one, a poll,
    a quote, a preview card."""
    names = ["status__0", "status__1", "poll__0", "quote__0", "previewcard__2"]
    d = fixtures_dir / "mastodon"
    return [load_statuses(d / f"test_entity_{n}.json")[0] for n in names]


@pytest.fixture(scope="module")
def hoot(fixtures_dir: Path) -> Status:
    """The recorded #hoot timeline's one status."""
    (status_,) = load_statuses(fixtures_dir / "mastodon" / "test_hashtag_tl__2.json")
    return status_


@pytest.fixture
def server() -> Iterator[FakeMastodon]:
    with running(FakeMastodon()) as s:
        yield s


def connect(server: FakeMastodon, options: str = "", transport: str = "ws") -> Source:
    extra = f"&{options}" if options else ""
    return source(f"mastodon:{server.url}?token=t&transport={transport}{extra}")


def ids(statuses: list[Status]) -> dict[tuple[str, str], int]:
    return {("mastodon", s["id"]): 1 for s in statuses}


def has(service: Service, statuses: list[Status]) -> bool:
    stored = stored_ids(service)
    return all(("mastodon", s["id"]) in stored for s in statuses)


def at_cursor(service: Service, src: Source, status_id: str) -> None:
    """Wait until the store saved ``status_id`` as the source's cursor."""
    key = src.spec.key
    wait_for(lambda: status(service, key)["cursor"] == status_id, what=f"cursor {status_id}")


def stopped(service: Service, key: str) -> dict[str, Any]:
    return wait_for(lambda: (s := status(service, key))["state"] == "stopped" and s, what="stopped")


@TRANSPORTS
def test_discovers_streaming_backfills_then_streams_each_status_once(
    tmp_path: Path,
    server: FakeMastodon,
    public: list[Status],
    entities: list[Status],
    transport: str,
) -> None:
    server.timeline = public[:4]
    src = connect(server, transport=transport)
    with live_service(tmp_path / "db", src) as service:
        wait_for(lambda: has(service, public[:4]) and server.connected(), what="backfill")
        streamed = public[4:] + entities + [public[0]]  # the last one is a repeat
        for s in streamed:
            server.publish(s)
        wait_for(lambda: has(service, streamed), what="streamed statuses")
        assert stored_ids(service) == ids(public + entities)
        at_cursor(service, src, public[-1]["id"])  # the largest id, not the last one seen
        st = status(service, src.spec.key)
        assert st["state"] == "connected" and st["errors"] == 0
    assert server.seen[0] == Seen("/api/v2/instance", {}, "header")
    assert server.timeline_requests() == [("/api/v1/timelines/public", {"limit": "40"})]
    # the stream went to the advertised streaming host (the REST host serves none), with the
    # token in the Authorization header, not in the URL
    path = "/api/v1/streaming" if transport == "ws" else "/api/v1/streaming/public"
    assert server.stream_requests() == [Seen(path, {}, "header")]
    assert server.relay.accepted == 1
    if transport == "ws":
        assert server.subscribed == [("public", "")]


@TRANSPORTS
def test_delete_removes_and_status_update_edits(
    tmp_path: Path,
    server: FakeMastodon,
    public: list[Status],
    entities: list[Status],
    fixtures_dir: Path,
    transport: str,
) -> None:
    edited = entities[0]
    history = load_statuses(fixtures_dir / "mastodon" / "test_entity_statusedit__0.json")
    first = {**edited, "content": history[0]["content"], "edited_at": None}
    src = connect(server, "backfill=0", transport)
    with live_service(tmp_path / "db", src) as service:
        wait_for(server.connected, what="stream")
        server.publish(first)
        server.publish(public[0])
        wait_for(lambda: has(service, [first, public[0]]), what="statuses")
        before = service.db.store.get("mastodon", edited["id"])
        assert before is not None and before.edited_at is None
        server.edit(edited)
        after = wait_for(
            lambda: (p := service.db.store.get("mastodon", edited["id"])) and p.edited_at and p,
            what="the edit",
        )
        assert after.text != before.text and "edit: editing this" in after.text
        server.delete(public[0]["id"])
        wait_for(lambda: ("mastodon", public[0]["id"]) not in stored_ids(service), what="del")
        assert stored_ids(service) == ids([edited])
        at_cursor(service, src, public[0]["id"])


@TRANSPORTS
def test_dropped_connection_reconnects_and_fills_the_gap(
    tmp_path: Path, server: FakeMastodon, public: list[Status], transport: str
) -> None:
    server.timeline = public[:3]
    src = connect(server, transport=transport)
    with live_service(tmp_path / "db", src) as service:
        wait_for(lambda: has(service, public[:3]) and server.connected(), what="backfill")
        server.publish(public[3])
        at_cursor(service, src, public[3]["id"])
        server.gate.clear()  # the reconnect waits until the gap exists
        server.relay.cut()
        wait_for(lambda: len(server.stream_requests()) == 2, what="reconnect attempt")
        for s in public[4:]:
            server.publish(s)  # nobody is connected: only the REST gap fill can deliver these
        server.gate.set()
        wait_for(lambda: has(service, public), what="gap filled")
        assert stored_ids(service) == ids(public)
        at_cursor(service, src, public[-1]["id"])
        st = status(service, src.spec.key)
        assert st["reconnects"] == 1 and st["errors"] == 1 and st["state"] == "connected"
    # forward from the cursor until an empty page says it caught up
    assert server.timeline_requests()[1:] == [
        ("/api/v1/timelines/public", {"limit": "40", "min_id": public[3]["id"]}),
        ("/api/v1/timelines/public", {"limit": "40", "min_id": public[-1]["id"]}),
    ]


@TRANSPORTS
def test_server_ending_the_stream_is_a_reconnect(
    tmp_path: Path, server: FakeMastodon, public: list[Status], transport: str
) -> None:
    src = connect(server, "backfill=0", transport)
    with live_service(tmp_path / "db", src) as service:
        wait_for(server.connected, what="stream")
        server.end_streams()
        wait_for(lambda: server.streams == 2 and server.connected(), what="a new stream")
        server.publish(public[0])
        wait_for(lambda: has(service, public[:1]), what="status after the reconnect")
        st = status(service, src.spec.key)
    assert st["reconnects"] == 1
    ended = "connection closed (code 1001: going away)" if transport == "ws" else "ended"
    assert ended in st["last_error"]


@TRANSPORTS
def test_restart_resumes_from_the_stored_cursor(
    tmp_path: Path, server: FakeMastodon, public: list[Status], transport: str
) -> None:
    server.timeline = public[:4]
    src = connect(server, transport=transport)
    with live_service(tmp_path / "db", src) as service:
        at_cursor(service, src, public[3]["id"])
    for s in public[4:]:
        server.publish(s)  # while firesift is down
    with live_service(tmp_path / "db", connect(server, transport=transport)) as service:
        wait_for(lambda: has(service, public), what="second run")
        assert stored_ids(service) == ids(public)
    assert server.timeline_requests()[1] == (
        "/api/v1/timelines/public",
        {"limit": "40", "min_id": public[3]["id"]},
    )


def test_catchup_bounds_the_gap_fill_and_reports_the_rest(
    tmp_path: Path, server: FakeMastodon, public: list[Status]
) -> None:
    server.timeline = public[:2]
    src = connect(server, "name=m")
    with live_service(tmp_path / "db", src) as service:
        at_cursor(service, src, public[1]["id"])
    for s in public[2:]:
        server.publish(s)
    src = connect(server, "name=m&catchup=3")  # the same key, so the same cursor
    with live_service(tmp_path / "db", src) as service:
        wait_for(lambda: status(service, src.spec.key)["skipped"], what="the reported gap")
        assert stored_ids(service) == ids(public[:5])
        st = status(service, src.spec.key)
    assert st["last_problem"] == (
        f"public: gap fill stopped after 3 statuses (catchup=3); statuses newer than "
        f"{public[4]['id']} published before the stream started may be missing"
    )


@pytest.mark.parametrize("token", ["", "wrong"])
@TRANSPORTS
def test_rejected_token_stops_the_source_with_the_reason(
    tmp_path: Path, server: FakeMastodon, token: str, transport: str
) -> None:
    src = source(f"mastodon:{server.url}?transport={transport}&token={token}")
    with live_service(tmp_path / "db", src) as service:
        st = stopped(service, src.spec.key)
    assert "HTTP 401" in st["reason"] and "token=" in st["reason"]
    assert "mastodon_token" in st["reason"]
    if token:
        assert "Invalid access token" in st["reason"] and "token was refused" in st["reason"]
    else:
        assert "Missing access token" in st["reason"] and "no access token" in st["reason"]
    assert len(server.stream_requests()) == 1  # not retried


def test_token_setting_is_used_when_the_uri_has_none(
    tmp_path: Path, server: FakeMastodon, public: list[Status]
) -> None:
    server.timeline = public[:2]
    src = source(f"mastodon:{server.url}", mastodon_token="t")
    with live_service(tmp_path / "db", src) as service:
        wait_for(lambda: has(service, public[:2]) and server.connected(), what="backfill")
    assert {r.auth for r in server.seen} == {"header"}


@TRANSPORTS
def test_stream_errors_and_rate_limits_are_retried(
    tmp_path: Path, server: FakeMastodon, public: list[Status], transport: str
) -> None:
    server.timeline = public
    reset = (datetime.now(UTC) + timedelta(seconds=0.3)).isoformat()
    server.fail_streams = [(500, {}), (429, {"X-RateLimit-Reset": reset})]
    src = connect(server, transport=transport)
    with live_service(tmp_path / "db", src) as service:
        wait_for(lambda: has(service, public), what="statuses after the retries")
        st = status(service, src.spec.key)
        assert stored_ids(service) == ids(public)
    assert st["errors"] == 2 and st["reconnects"] == 2
    assert "HTTP 429" in st["last_error"] and "rate limited" in st["last_error"]
    assert len(server.stream_requests()) == 3


def test_timeline_rate_limit_is_retried(
    tmp_path: Path, server: FakeMastodon, public: list[Status]
) -> None:
    server.timeline = public
    server.fail_timelines = [(429, {"Retry-After": "0"})]
    src = connect(server)
    with live_service(tmp_path / "db", src) as service:
        wait_for(lambda: has(service, public), what="statuses after the retry")
        st = status(service, src.spec.key)
    assert st["errors"] == 1 and "/api/v1/timelines/public: HTTP 429" in st["last_error"]


@TRANSPORTS
def test_garbage_is_a_problem_and_the_rest_is_kept(
    tmp_path: Path, server: FakeMastodon, public: list[Status], transport: str
) -> None:
    src = connect(server, "backfill=0", transport)
    with live_service(tmp_path / "db", src) as service:
        wait_for(server.connected, what="stream")
        server.publish(public[0])
        server.send_raw("update", '{"id": "1", "content": <p>cut')
        server.publish(public[1])
        wait_for(lambda: has(service, public[:2]), what="good statuses")
        st = wait_for(lambda: (s := status(service, src.spec.key))["skipped"] and s, what="skip")
        assert st["skipped"] == 1 and st["last_problem"].startswith("public#2: ")
        assert "payload is not valid JSON" in st["last_problem"]
        if transport == "ws":
            server.send_frame("<html>502 Bad Gateway</html>")
            where, broken = "ws#4", "message is not JSON"
        else:  # a line longer than the limit, dropped as it streams past
            server.send_frame(f"event: update\ndata: {'x' * 1_100_000}\n\n")
            where, broken = "public#4", "event line is longer than 1048576 bytes"
        server.publish(public[2])
        wait_for(lambda: has(service, public[:3]), what="the status after the damage")
        st = status(service, src.spec.key)
        assert stored_ids(service) == ids(public[:3])
    assert st["skipped"] == 2 and st["last_problem"].startswith(f"{where}: {broken}")
    assert st["errors"] == 0 and st["reconnects"] == 0


@TRANSPORTS
def test_black_holed_connection_is_a_stall_and_reconnects(
    tmp_path: Path, server: FakeMastodon, public: list[Status], transport: str
) -> None:
    src = connect(server, "stall=1.5", transport)
    with live_service(tmp_path / "db", src) as service:
        wait_for(server.connected, what="stream")
        if transport == "ws":
            # a quiet stream is not a stall: the answered pings keep it alive
            time.sleep(4)
            assert status(service, src.spec.key)["reconnects"] == 0
        server.relay.freeze()
        wait_for(lambda: status(service, src.spec.key)["reconnects"] >= 1, what="stall")
        assert "no data for 1.5 s" in status(service, src.spec.key)["last_error"]
        wait_for(lambda: server.streams == 2, what="a new stream")
        server.publish(public[0])
        wait_for(lambda: has(service, public[:1]), what="status after the stall")


def test_several_hashtags_share_one_websocket(
    tmp_path: Path,
    server: FakeMastodon,
    public: list[Status],
    entities: list[Status],
    hoot: Status,
) -> None:
    tagged = entities[0]  # #thisisahashtag
    server.timeline = [*public[:2], hoot]
    src = connect(server, "stream=hashtag&tag=hoot,%23ThisIsAHashtag")
    with live_service(tmp_path / "db", src) as service:
        wait_for(lambda: has(service, [hoot]) and server.connected() == 2, what="backfill")
        server.publish(public[2])  # not tagged: on neither stream
        server.publish(tagged)
        wait_for(lambda: has(service, [tagged]), what="tagged status")
        assert stored_ids(service) == ids([hoot, tagged])
    assert server.subscribed == [("hashtag", "hoot"), ("hashtag", "ThisIsAHashtag")]
    assert server.timeline_requests() == [
        ("/api/v1/timelines/tag/hoot", {"limit": "40"}),
        ("/api/v1/timelines/tag/ThisIsAHashtag", {"limit": "40"}),
    ]
    assert len(server.stream_requests()) == 1


@pytest.mark.parametrize(
    ("options", "subscribed", "sse", "rest"),
    [
        (
            "stream=public:local",
            ("public:local", ""),
            ("/api/v1/streaming/public/local", {}),
            ("/api/v1/timelines/public", {"local": "true"}),
        ),
        (
            "stream=public:remote:media",
            ("public:remote:media", ""),
            ("/api/v1/streaming/public/remote", {"only_media": "true"}),
            ("/api/v1/timelines/public", {"remote": "true", "only_media": "true"}),
        ),
        (
            "stream=hashtag:local&tag=hoot",
            ("hashtag:local", "hoot"),
            ("/api/v1/streaming/hashtag/local", {"tag": "hoot"}),
            ("/api/v1/timelines/tag/hoot", {"local": "true"}),
        ),
        (
            "stream=list&list=1",
            ("list", "1"),
            ("/api/v1/streaming/list", {"list": "1"}),
            ("/api/v1/timelines/list/1", {}),
        ),
        (
            "stream=user",
            ("user", ""),
            ("/api/v1/streaming/user", {}),
            ("/api/v1/timelines/home", {}),
        ),
    ],
)
@TRANSPORTS
def test_each_stream_uses_its_endpoints(
    tmp_path: Path,
    server: FakeMastodon,
    public: list[Status],
    entities: list[Status],
    hoot: Status,
    options: str,
    subscribed: tuple[str, str],
    sse: tuple[str, dict[str, str]],
    rest: tuple[str, dict[str, str]],
    transport: str,
) -> None:
    server.timeline = public + entities + [hoot]
    stream = subscribed[0]
    if stream == "public:local":
        expected = [s for s in server.timeline if is_local(s)]
    elif stream == "public:remote:media":
        expected = [s for s in server.timeline if not is_local(s) and s["media_attachments"]]
    elif stream == "hashtag:local":
        expected = [hoot]
    else:
        expected = server.timeline
    src = connect(server, options, transport)
    with live_service(tmp_path / "db", src) as service:
        wait_for(lambda: has(service, expected) and server.connected(), what="backfill")
        assert stored_ids(service) == ids(expected)
    assert server.timeline_requests() == [(rest[0], {**rest[1], "limit": "40"})]
    if transport == "ws":
        assert server.subscribed == [subscribed]
    else:
        assert [(r.path, r.query) for r in server.stream_requests()] == [sse]


@TRANSPORTS
def test_unknown_list_stops_the_source(
    tmp_path: Path, server: FakeMastodon, transport: str
) -> None:
    src = connect(server, "stream=list&list=999&backfill=0", transport)
    with live_service(tmp_path / "db", src) as service:
        st = stopped(service, src.spec.key)
    assert "Not authorized to stream this list" in st["reason"] and "401" in st["reason"]
    assert "list=999 is not that account's" in st["reason"]


def test_two_instances_at_once(
    tmp_path: Path, public: list[Status], entities: list[Status], hoot: Status
) -> None:
    with running(FakeMastodon(token="a")) as one, running(FakeMastodon(token="b")) as two:
        one.timeline = public[:3]
        two.timeline = entities[:2]
        first = source(f"mastodon:{one.url}?token=a")
        second = source(f"mastodon:{two.url}?token=b&transport=sse")
        assert first.spec.key != second.spec.key
        with live_service(tmp_path / "db", first, second) as service:
            wait_for(lambda: one.connected() and two.connected(), what="both streams")
            one.publish(public[3])
            two.publish(entities[2])
            two.publish(hoot)
            everything = public[:4] + entities[:3] + [hoot]
            wait_for(lambda: has(service, everything), what="both instances' statuses")
            assert stored_ids(service) == ids(everything)
            at_cursor(service, first, public[3]["id"])
            at_cursor(service, second, hoot["id"])
    assert {r.auth for r in one.seen + two.seen} == {"header"}


@pytest.mark.parametrize("fake", [{"v2_instance": False}, {"colocated": True}])
def test_discovery_falls_back(tmp_path: Path, public: list[Status], fake: dict[str, bool]) -> None:
    with running(FakeMastodon(**fake)) as server:
        server.timeline = public[:2]
        with live_service(tmp_path / "db", connect(server, transport="sse")) as service:
            wait_for(lambda: has(service, public[:2]) and server.connected(), what="backfill")
            server.publish(public[2])
            wait_for(lambda: has(service, public[:3]), what="a streamed status")
    instance = [r.path for r in server.seen if "instance" in r.path]
    if fake.get("colocated"):  # no streaming URL advertised: the instance streams itself
        assert instance == ["/api/v2/instance"] and server.relay.accepted == 0
    else:  # no v2: the v1 instance's urls.streaming_api
        assert instance == ["/api/v2/instance", "/api/v1/instance"]
        assert server.relay.accepted == 1


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ("stream=hashtag", "stream=hashtag needs tag=NAME"),
        ("stream=list", "stream=list needs list=ID"),
        ("stream=federated", "known: public, public:media, public:local"),
        ("stream=public&tag=foo", "tag= is for stream=hashtag or hashtag:local"),
        ("stream=public,hashtag&tag=x&transport=sse", "transport=sse carries one stream"),
        ("transport=grpc", "known: ws, sse"),
        ("backfill=-1", "backfill must be >= 0"),
        ("backfill=41", "at most 40"),
        ("catchup=2.5", "catchup must be a whole number"),
        ("shiny=1", "unknown option"),
    ],
)
def test_bad_options_are_refused(options: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        source(f"mastodon:mastodon.social?{options}")


def test_bad_instance_is_refused() -> None:
    with pytest.raises(ConfigError, match="not an instance host"):
        source("mastodon:ftp://mastodon.social")
