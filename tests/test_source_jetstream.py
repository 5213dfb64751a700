"""``jetstream``: Bluesky Jetstream v1 against a local server replaying real recorded events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from fake_jetstream import FakeJetstream, Knobs, recorded_events, running
from firesift.formats.reader import Messages, Parsed
from firesift.post import Delete, Post
from source_harness import free_port, live_service, source, status, stored_ids, wait_for


@pytest.fixture(scope="module")
def events(fixtures_dir: Path) -> list[dict[str, Any]]:
    return recorded_events(fixtures_dir)


def expected_posts(events: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """What the store should hold: the posts the format parses, minus the ones deleted later."""
    posts: set[tuple[str, str]] = set()
    m = Messages("jetstream")
    for e in events:
        for r in m.value(e, "expected"):
            assert isinstance(r, Parsed)
            for ev in r.events:
                if isinstance(ev, Post):
                    posts.add((ev.source, ev.id))
                elif isinstance(ev, Delete):
                    posts.discard((ev.source, ev.id))
    assert len(posts) >= 15
    return posts


def run_until_all(server: FakeJetstream, tmp_path: Path, uri: str, want: set[Any]) -> Any:
    with live_service(tmp_path / "db", source(uri)) as service:
        wait_for(lambda: set(stored_ids(service)) >= want, what="every recorded post")
        ids = stored_ids(service)
        st = status(service, source(uri).spec.key)
    return ids, st


@pytest.mark.parametrize("compress", [False, True])
def test_every_recorded_post_is_stored_once(
    tmp_path: Path, events: list[dict[str, Any]], compress: bool
) -> None:
    want = expected_posts(events)
    with running(FakeJetstream(events)) as server:
        uri = f"jetstream:{server.url}" + ("?compress=true" if compress else "")
        ids, st = run_until_all(server, tmp_path, uri, want)
    assert ids == dict.fromkeys(want, 1)
    assert st["state"] == "connected" and st["errors"] == 0
    assert st["cursor"] == str(max(e["time_us"] for e in events))
    (query,) = server.requests
    assert query["wantedCollections"] == [
        "app.bsky.feed.post",
        "app.bsky.feed.like",
        "app.bsky.feed.repost",
    ]
    assert ("compress" in query) == compress


def test_a_dropped_connection_resumes_from_the_cursor_rewound(
    tmp_path: Path, events: list[dict[str, Any]]
) -> None:
    want = expected_posts(events)
    with running(FakeJetstream(events, knobs=Knobs(drop_after=60))) as server:
        ids, st = run_until_all(server, tmp_path, f"jetstream:{server.url}?rewind=0", want)
    assert ids == dict.fromkeys(want, 1)
    assert st["reconnects"] == 1
    first, second = server.requests
    assert "cursor" not in first
    # resumed at the newest event stored before the drop, not from the start or the end
    resumed = int(second["cursor"][0])
    assert resumed in {e["time_us"] for e in events}
    assert events[0]["time_us"] < resumed < events[-1]["time_us"]


def test_a_restart_resumes_from_the_stored_cursor(
    tmp_path: Path, events: list[dict[str, Any]]
) -> None:
    with running(FakeJetstream(events, knobs=Knobs(silent_after=40))) as server:
        uri = f"jetstream:{server.url}?rewind=1"
        with live_service(tmp_path / "db", source(uri)) as service:
            wait_for(lambda: status(service, source(uri).spec.key)["cursor"], what="a cursor")
            wait_for(lambda: len(server.requests) == 1, what="one connection")
            saved = service.cursor(f"source:{source(uri).spec.key}")
        assert saved is not None
        ids, _ = run_until_all(server, tmp_path, uri, expected_posts(events))
    assert int(server.requests[-1]["cursor"][0]) == int(saved) - 1_000_000
    assert max(ids.values()) == 1


def test_silence_is_a_stall_and_reconnects(tmp_path: Path, events: list[dict[str, Any]]) -> None:
    want = expected_posts(events)
    with running(FakeJetstream(events, knobs=Knobs(silent_after=30))) as server:
        ids, st = run_until_all(server, tmp_path, f"jetstream:{server.url}?stall=0.5", want)
    assert ids == dict.fromkeys(want, 1)
    assert st["reconnects"] == 1 and st["last_error"] == "no data for 0.5 s"


@pytest.mark.parametrize("compress", [False, True])
def test_a_garbage_frame_is_reported_and_the_rest_kept(
    tmp_path: Path, events: list[dict[str, Any]], compress: bool
) -> None:
    want = expected_posts(events)
    with running(FakeJetstream(events, knobs=Knobs(garbage_at=10))) as server:
        uri = f"jetstream:{server.url}" + ("?compress=true" if compress else "")
        ids, st = run_until_all(server, tmp_path, uri, want)
    assert ids == dict.fromkeys(want, 1)
    assert st["skipped"] == 1 and st["errors"] == 0
    assert st["last_problem"].startswith(f"127.0.0.1:{server.port}:+11: ")


def test_a_refused_handshake_stops_a_single_endpoint(tmp_path: Path) -> None:
    with running(FakeJetstream([], knobs=Knobs(reject=403))) as server:
        uri = f"jetstream:{server.url}"
        with live_service(tmp_path / "db", source(uri)) as service:
            st = wait_for(
                lambda: (s := status(service, uri))["state"] == "stopped" and s, what="stopped"
            )
    assert st["reason"] == f"127.0.0.1:{server.port} refused the subscription: HTTP 403"


def test_fails_over_to_the_next_endpoint(tmp_path: Path, events: list[dict[str, Any]]) -> None:
    from firesift.sources.jetstream import JetstreamSource

    want = expected_posts(events)
    with running(FakeJetstream(events)) as server:
        src = source("jetstream")
        assert isinstance(src, JetstreamSource)
        dead = f"ws://127.0.0.1:{free_port()}/subscribe"  # nothing listens there
        src.endpoints = [dead, server.url]
        with live_service(tmp_path / "db", src) as service:
            wait_for(lambda: set(stored_ids(service)) >= want, what="every post")
            st = status(service, "jetstream")
    assert st["reconnects"] == 1 and "ConnectionRefusedError" in st["last_error"]


def test_options_update_is_sent_on_the_open_connection(
    tmp_path: Path, events: list[dict[str, Any]]
) -> None:
    import asyncio

    from firesift.sources.jetstream import JetstreamSource

    with running(FakeJetstream(events, knobs=Knobs(silent_after=10**9))) as server:
        src = source(f"jetstream:{server.url}?collections=app.bsky.feed.like")
        assert isinstance(src, JetstreamSource)
        with live_service(tmp_path / "db", src) as service:
            wait_for(lambda: server.connections, what="a connection")
            loop = service.sources._loop
            assert loop is not None
            asyncio.run_coroutine_threadsafe(
                src.update_options(collections=["app.bsky.feed.post"]), loop
            ).result(10)
            wait_for(lambda: server.updates, what="the options_update")
    assert server.updates == [
        {
            "type": "options_update",
            "payload": {"wantedCollections": ["app.bsky.feed.post"], "wantedDids": []},
        }
    ]
    assert orjson.loads(orjson.dumps(server.requests[0]))["wantedCollections"] == [
        "app.bsky.feed.like"
    ]
