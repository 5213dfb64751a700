"""``mastodon:INSTANCE``: SSE streaming with REST backfill against a local Mastodon that replays
recorded Statuses: exactly-once storage, deletes, edits, gap-free reconnects and restarts, and
the HTTP faults the connector must survive."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fake_mastodon import FakeMastodon, load_statuses, running
from firesift.errors import ConfigError
from firesift.service import Service
from firesift.sources import Source
from source_harness import live_service, source, status, stored_ids, wait_for

Status = dict[str, Any]


@pytest.fixture(scope="module")
def public(fixtures_dir: Path) -> list[Status]:
    """The recorded public timeline, oldest first."""
    statuses = load_statuses(fixtures_dir / "mastodon" / "test_public_tl__2.json")
    return sorted(statuses, key=lambda s: int(s["id"]))


@pytest.fixture(scope="module")
def entities(fixtures_dir: Path) -> list[Status]:
    """Single recorded statuses (an edited one, a poll, a quote, a preview card)."""
    names = ["status__0", "status__1", "poll__0", "quote__0", "previewcard__2"]
    d = fixtures_dir / "mastodon"
    return [load_statuses(d / f"test_entity_{n}.json")[0] for n in names]


@pytest.fixture
def server() -> Iterator[FakeMastodon]:
    with running(FakeMastodon()) as s:
        yield s


def connect(server: FakeMastodon, options: str = "stream=public&token=t") -> Source:
    return source(f"mastodon:{server.url}?{options}")


def ids(statuses: list[Status]) -> dict[tuple[str, str], int]:
    return {("mastodon", s["id"]): 1 for s in statuses}


def has(service: Service, statuses: list[Status]) -> bool:
    stored = stored_ids(service)
    return all(("mastodon", s["id"]) in stored for s in statuses)


def test_backfill_then_stream_each_status_stored_once(
    tmp_path: Path, server: FakeMastodon, public: list[Status], entities: list[Status]
) -> None:
    server.timeline = public[:4]
    src = connect(server)
    with live_service(tmp_path / "db", src) as service:
        wait_for(lambda: has(service, public[:4]) and server.connected(), what="backfill")
        streamed = public[4:] + entities + [public[0]]  # the last one is a repeat
        for s in streamed:
            server.publish(s)
        wait_for(lambda: has(service, streamed), what="streamed statuses")
        assert stored_ids(service) == ids(public + entities)
        st = status(service, src.spec.key)
        assert st["state"] == "connected" and st["errors"] == 0
        assert st["cursor"] == public[-1]["id"]  # the largest id, not the last one seen
    assert server.timeline_requests() == [("/api/v1/timelines/public", {"limit": "40"})]
    assert server.stream_requests() == [("/api/v1/streaming/public", {})]


def test_delete_removes_and_status_update_edits(
    tmp_path: Path,
    server: FakeMastodon,
    public: list[Status],
    entities: list[Status],
    fixtures_dir: Path,
) -> None:
    edited = entities[0]
    history = load_statuses(fixtures_dir / "mastodon" / "test_entity_statusedit__0.json")
    first = {**edited, "content": history[0]["content"], "edited_at": None}
    with live_service(tmp_path / "db", connect(server, "token=t&backfill=0")) as service:
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


def test_drop_mid_stream_reconnects_and_fills_the_gap(
    tmp_path: Path, server: FakeMastodon, public: list[Status]
) -> None:
    server.timeline = public[:3]
    src = connect(server)
    with live_service(tmp_path / "db", src) as service:
        wait_for(lambda: has(service, public[:3]) and server.connected(), what="backfill")
        server.publish(public[3])
        wait_for(lambda: has(service, public[:4]), what="streamed")
        server.gate.clear()  # the reconnect waits until the gap exists
        server.drop()
        wait_for(lambda: len(server.stream_requests()) == 2, what="reconnect attempt")
        for s in public[4:]:
            server.publish(s)  # nobody is connected: only the REST fill can deliver these
        server.gate.set()
        wait_for(lambda: has(service, public), what="gap filled")
        assert stored_ids(service) == ids(public)
        st = status(service, src.spec.key)
        assert st["reconnects"] >= 1 and "closed the stream" in st["last_error"]
    assert server.timeline_requests()[1] == (
        "/api/v1/timelines/public",
        {"limit": "40", "since_id": public[3]["id"]},
    )


def test_restart_resumes_from_the_stored_cursor(
    tmp_path: Path, server: FakeMastodon, public: list[Status]
) -> None:
    server.timeline = public[:4]
    with live_service(tmp_path / "db", connect(server)) as service:
        wait_for(lambda: has(service, public[:4]), what="first run")
    for s in public[4:]:
        server.publish(s)  # while firesift is down
    with live_service(tmp_path / "db", connect(server)) as service:
        wait_for(lambda: has(service, public), what="second run")
        assert stored_ids(service) == ids(public)
    assert server.timeline_requests()[-1][1] == {"limit": "40", "since_id": public[3]["id"]}


def test_rejected_token_stops_the_source_with_the_reason(tmp_path: Path) -> None:
    with running(FakeMastodon(token="another")) as server:
        src = connect(server)
        with live_service(tmp_path / "db", src) as service:
            st = wait_for(
                lambda: (s := status(service, src.spec.key))["state"] == "stopped" and s,
                what="stopped",
            )
    assert "HTTP 401" in st["reason"] and "mastodon_token" in st["reason"]
    assert "token=" in st["reason"]


def test_server_errors_and_rate_limits_are_retried(
    tmp_path: Path, server: FakeMastodon, public: list[Status]
) -> None:
    server.timeline = public
    reset = (datetime.now(UTC) + timedelta(seconds=0.3)).isoformat()
    server.fail_next = [(500, {}), (429, {"X-RateLimit-Reset": reset})]
    src = connect(server)
    with live_service(tmp_path / "db", src) as service:
        wait_for(lambda: has(service, public), what="statuses after the retries")
        st = status(service, src.spec.key)
        assert stored_ids(service) == ids(public)
    assert st["errors"] == 2 and st["reconnects"] == 2
    assert "HTTP 429" in st["last_error"] and "rate limited" in st["last_error"]
    assert len(server.stream_requests()) == 3


def test_garbage_event_is_a_problem_and_the_rest_is_kept(
    tmp_path: Path, server: FakeMastodon, public: list[Status]
) -> None:
    src = connect(server, "stream=public&token=t&backfill=0")
    with live_service(tmp_path / "db", src) as service:
        wait_for(server.connected, what="stream")
        server.publish(public[0])
        server.send_raw("update", '{"id": "1", "content": <p>cut')
        server.publish(public[1])
        wait_for(lambda: has(service, public[:2]), what="good statuses")
        st = wait_for(lambda: (s := status(service, src.spec.key))["skipped"] and s, what="skip")
        assert stored_ids(service) == ids(public[:2])
    assert st["skipped"] == 1 and st["last_problem"].startswith("public:2: ")
    assert "not valid JSON" in st["last_problem"]


def test_silence_is_a_stall_and_reconnects(
    tmp_path: Path, server: FakeMastodon, public: list[Status]
) -> None:
    server.silent = True
    src = connect(server, "stream=public&token=t&stall=0.5")
    with live_service(tmp_path / "db", src) as service:
        wait_for(lambda: status(service, src.spec.key)["reconnects"] >= 1, what="stall")
        assert "no data for 0.5 s" in status(service, src.spec.key)["last_error"]
        server.silent = False
        wait_for(server.connected, what="stream")
        server.publish(public[0])
        wait_for(lambda: has(service, public[:1]), what="status after the stall")


def test_hashtag_stream_uses_the_hashtag_endpoints(
    tmp_path: Path, server: FakeMastodon, public: list[Status], fixtures_dir: Path
) -> None:
    hoot = load_statuses(fixtures_dir / "mastodon" / "test_hashtag_tl__2.json")
    server.timeline = public[:2] + hoot
    with live_service(tmp_path / "db", connect(server, "stream=hashtag&tag=hoot&token=t")) as s:
        wait_for(lambda: has(s, hoot) and server.connected(), what="hashtag backfill")
        server.publish(public[2])  # not tagged: not on this stream
        server.publish({**hoot[0], "id": str(int(hoot[0]["id"]) + 1)})
        wait_for(lambda: len(stored_ids(s)) == 2, what="tagged status")
        assert ("mastodon", public[2]["id"]) not in stored_ids(s)
    assert server.stream_requests() == [("/api/v1/streaming/hashtag", {"tag": "hoot"})]
    assert server.timeline_requests() == [("/api/v1/timelines/tag/hoot", {"limit": "40"})]


def test_local_stream_uses_the_local_endpoints(
    tmp_path: Path, server: FakeMastodon, public: list[Status]
) -> None:
    server.timeline = public[:2]
    with live_service(tmp_path / "db", connect(server, "stream=public:local&token=t")) as s:
        wait_for(lambda: has(s, public[:2]) and server.connected(), what="local backfill")
    assert server.stream_requests() == [("/api/v1/streaming/public/local", {})]
    assert server.timeline_requests() == [
        ("/api/v1/timelines/public", {"limit": "40", "local": "true"})
    ]


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ("stream=hashtag", "needs tag=NAME"),
        ("stream=list", "needs list=ID"),
        ("stream=federated", "known: public, public:local"),
        ("backfill=-1", "backfill must be >= 0"),
    ],
)
def test_bad_options_are_refused(options: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        source(f"mastodon:mastodon.social?{options}")
