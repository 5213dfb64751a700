"""``jetstream``: Bluesky Jetstream v1 and v2 against a local server replaying real recorded
events: every post once, compressed or not, through drops, stalls, garbage, refusals,
fail-over, restarts, live filter changes and v2's CursorTooOld / ConsumerTooSlow."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest
import zstandard

from fake_jetstream import (
    DICTIONARY_PATH,
    FakeJetstream,
    Refusal,
    dictionary_bytes,
    recorded_lines,
    running,
)
from firesift.errors import ConfigError
from firesift.formats.reader import Messages, Parsed
from firesift.post import Delete, Post
from firesift.service import Service
from firesift.sources.jetstream import PUBLIC_ENDPOINTS, JetstreamSource
from source_harness import (
    free_port,
    live_service,
    run_async,
    source,
    status,
    stored_ids,
    wait_for,
)

POST = "app.bsky.feed.post"
WANTED = ("app.bsky.feed.post", "app.bsky.feed.like", "app.bsky.feed.repost")


@pytest.fixture(scope="module")
def lines(fixtures_dir: Path) -> list[bytes]:
    return recorded_lines(fixtures_dir)


def fake(lines: Iterable[bytes], fixtures_dir: Path) -> FakeJetstream:
    return FakeJetstream(list(lines), fixtures_dir)


def posts_in(lines: Iterable[bytes]) -> dict[tuple[str, str], Post]:
    """The posts the ``jetstream`` format reads from these wire lines directly, minus the
    ones deleted later: what the store must end up holding."""
    out: dict[tuple[str, str], Post] = {}
    m = Messages("jetstream")
    for i, line in enumerate(lines):
        for r in m.parse(line, f"fixture:{i}"):
            assert isinstance(r, Parsed), r
            for e in r.events:
                if isinstance(e, Post):
                    out[(e.source, e.id)] = e
                elif isinstance(e, Delete):
                    out.pop((e.source, e.id), None)
    return out


def stored_posts(service: Service) -> dict[tuple[str, str], Post]:
    return {(p.source, p.id): p for p in service.db.store.iter_posts()}


def run(
    tmp_path: Path, src: JetstreamSource, want: Iterable[tuple[str, str]], cursor: str = ""
) -> Any:
    """Run ``src`` until the store holds every post of ``want`` and, when given, the status
    shows ``cursor`` (the store has everything sent); the store's counts, the posts and the
    status."""
    wanted = set(want)
    with live_service(tmp_path, src) as service:
        wait_for(lambda: set(stored_ids(service)) >= wanted, what="every recorded post")
        if cursor:
            wait_for(lambda: status(service, src.spec.key)["cursor"] == cursor, what=cursor)
        return stored_ids(service), stored_posts(service), status(service, src.spec.key)


def stops(tmp_path: Path, src: JetstreamSource) -> dict[str, Any]:
    """Run ``src`` until it stops; its status. A second source (a followed empty file) keeps
    the service's source loop running meanwhile, as in a service with several sources."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "empty.jsonl").touch()
    other = source(f"file:{tmp_path / 'empty.jsonl'}?follow=true")
    with live_service(tmp_path / "db", src, other) as service:
        st: dict[str, Any] = wait_for(
            lambda: (s := status(service, src.spec.key))["state"] == "stopped" and s,
            what="stopped",
        )
    return st


def last_seq(server: FakeJetstream) -> str:
    """The v2 cursor once everything the default filters let through is stored."""
    return str(wanted(server.events)[-1] + 1)


def last_time_us(server: FakeJetstream) -> str:
    """The v1 cursor once everything the default filters let through is stored."""
    return str(max(server.events[i]["time_us"] for i in wanted(server.events)))


def wanted(events: list[dict[str, Any]]) -> list[int]:
    """Indexes of the events the default filters let through."""
    return [
        i
        for i, e in enumerate(events)
        if e["kind"] != "commit" or e["commit"]["collection"] in WANTED
    ]


def jetstream(uri: str) -> JetstreamSource:
    src = source(uri)
    assert isinstance(src, JetstreamSource)
    return src


def test_every_post_is_stored_once_the_same_over_v1_v2_compressed_or_not(
    tmp_path: Path, lines: list[bytes], fixtures_dir: Path
) -> None:
    want = posts_in(lines)
    assert len(want) >= 15
    seen: dict[str, dict[tuple[str, str], Post]] = {}
    for variant in ("v1", "v1 compressed", "v2", "v2 compressed"):
        with running(fake(lines, fixtures_dir)) as server:
            url = server.url_v2 if variant.startswith("v2") else server.url
            src = jetstream(
                f"jetstream:{url}" + ("?compress=true" if "compressed" in variant else "")
            )
            sent = wanted(server.events)
            if variant.startswith("v1"):
                cursor = str(max(server.events[i]["time_us"] for i in sent))
            else:
                cursor = str(sent[-1] + 1)  # the seq of the last event
            ids, posts, st = run(tmp_path / variant.replace(" ", "-"), src, want, cursor)
            (conn,) = server.connections
            assert conn.sent == sent
        assert ids == dict.fromkeys(want, 1), variant
        assert st["state"] == "connected" and st["errors"] == 0 and st["skipped"] == 0
        if variant.startswith("v1"):
            assert conn.query["wantedCollections"] == list(WANTED)
            assert ("compress" in conn.query) == ("compressed" in variant)
        else:
            assert conn.query["kinds"] == ["commit", "identity", "account"]
            assert conn.query["collections"] == list(WANTED)
            assert conn.query.get("zstdDictionary") == (
                ["20260811"] if "compressed" in variant else None
            )
        seen[variant] = posts
    # the same posts, field for field, whichever wire and compression carried them
    first = seen["v1"]
    assert all(posts == first for posts in seen.values())
    assert {k: p.text for k, p in first.items()} == {k: p.text for k, p in want.items()}
    assert {k: p.created_at for k, p in first.items()} == {k: p.created_at for k, p in want.items()}


def test_a_dropped_connection_resumes_from_the_cursor_rewound(
    tmp_path: Path, lines: list[bytes], fixtures_dir: Path
) -> None:
    want = posts_in(lines)
    server = fake(lines, fixtures_dir)
    server.faults.drop_after = 60
    with running(server):
        ids, _, st = run(tmp_path, jetstream(f"jetstream:{server.url}"), want, last_time_us(server))
    assert ids == dict.fromkeys(want, 1)
    assert st["reconnects"] == 1 and st["last_error"].startswith(f"127.0.0.1:{server.port}: ")
    first, second = server.connections
    assert first.cursor() is None and len(first.sent) == 60
    # resumed 3 s before the newest time_us stored before the drop (a prefix of what was sent)
    newest = [max(server.events[i]["time_us"] for i in first.sent[:n]) for n in range(1, 61)]
    resumed = second.cursor()
    assert resumed is not None and resumed + 3_000_000 in newest


def test_a_restart_resumes_from_the_stored_cursor_without_gaps(
    tmp_path: Path, lines: list[bytes], fixtures_dir: Path
) -> None:
    uri = lambda server: f"jetstream:{server.url}?rewind=0"  # noqa: E731
    with running(fake(lines[:60], fixtures_dir)) as server:
        with live_service(tmp_path, jetstream(uri(server))) as service:
            key = jetstream(uri(server)).spec.key
            wait_for(lambda: set(stored_ids(service)) >= set(posts_in(lines[:60])), what="60")
            (conn,) = server.connections
            newest = str(max(server.events[i]["time_us"] for i in conn.sent))
            wait_for(lambda: status(service, key)["cursor"] == newest, what="the cursor")
        server.append(lines[60:])  # the stream went on while firesift was down
        ids, _, st = run(tmp_path, jetstream(uri(server)), posts_in(lines), last_time_us(server))
        _, again = server.connections
    assert again.cursor() == int(newest)  # the stored cursor, exactly (rewind=0)
    assert again.sent[0] <= max(conn.sent)  # no gap: from at or before the newest event
    assert ids == dict.fromkeys(posts_in(lines), 1)
    assert st["errors"] == 0


def test_silence_is_a_stall_and_reconnects(
    tmp_path: Path, lines: list[bytes], fixtures_dir: Path
) -> None:
    want = posts_in(lines)
    server = fake(lines, fixtures_dir)
    server.faults.silent = 1  # connected, answering pings, sending nothing
    with running(server):
        ids, _, st = run(
            tmp_path, jetstream(f"jetstream:{server.url}?stall=0.5"), want, last_time_us(server)
        )
    assert ids == dict.fromkeys(want, 1)
    assert st["reconnects"] == 1 and st["last_error"] == "no data for 0.5 s"
    silent, good = server.connections
    assert silent.sent == [] and good.cursor() is None


@pytest.mark.parametrize("compress", [False, True])
def test_garbage_frames_are_reported_and_the_rest_kept(
    tmp_path: Path, lines: list[bytes], fixtures_dir: Path, compress: bool
) -> None:
    want = posts_in(lines)
    server = fake(lines, fixtures_dir)
    v2_dict = zstandard.ZstdCompressionDict(
        dictionary_bytes(fixtures_dir, "subscribe_events_20260811")
    )
    wrong_dict = zstandard.ZstdCompressor(dict_data=v2_dict).compress(lines[0])
    server.faults.garbage = {
        3: b"\x28\xb5\x2f\xfd\x00\x01garbage",  # zstd magic, then junk
        12: "{not json",
        40: '{"did": 7, "kind": "commit"}' if not compress else wrong_dict,
    }
    with running(server):
        uri = f"jetstream:{server.url}" + ("?compress=true" if compress else "")
        ids, _, st = run(tmp_path, jetstream(uri), want, last_time_us(server))
    assert ids == dict.fromkeys(want, 1)
    assert st["skipped"] == 3 and st["errors"] == 0 and st["reconnects"] == 0
    assert re.match(rf"127\.0\.0\.1:{server.port}:\+\d+: ", st["last_problem"])
    reason = "does not decompress" if compress else "jetstream: commit must be an object"
    assert reason in st["last_problem"]


def test_refusals_stop_or_retry_as_the_status_says(
    tmp_path: Path, lines: list[bytes], fixtures_dir: Path
) -> None:
    server = fake(lines, fixtures_dir)
    with running(server):
        host = f"127.0.0.1:{server.port}"
        server.faults.refuse = [Refusal(401, "Unauthorized")]
        st = stops(tmp_path / "401", jetstream(f"jetstream:{server.url}"))
        assert st["reason"] == f"{host} refused the subscription: HTTP 401: Unauthorized"

        # the server's own validation: its reason is the status
        uri = f"jetstream:{server.url}?collections=app.bsky.feed.post,not_a_collection"
        st = stops(tmp_path / "400", jetstream(uri))
        assert st["reason"] == (
            f"{host} refused the subscription: HTTP 400: "
            "subscribe: invalid options: invalid collection: not_a_collection"
        )

        # v2's XRPC envelope
        server.faults.refuse = [Refusal(400, '{"error":"InvalidRequest","message":"bad dids"}')]
        st = stops(tmp_path / "v2", jetstream(f"jetstream:{server.url_v2}"))
        assert (
            st["reason"] == f"{host} refused the subscription: HTTP 400: InvalidRequest: bad dids"
        )

        # rate limited, then a server error: both retried, then everything arrives
        server.faults.refuse = [Refusal(429, "slow down", {"Retry-After": "1"}), Refusal(503)]
        want = posts_in(lines)
        src = jetstream(f"jetstream:{server.url}")
        ids, _, st = run(tmp_path / "retry", src, want, last_time_us(server))
    assert ids == dict.fromkeys(want, 1)
    assert st["state"] == "connected" and st["reconnects"] == 2 and st["errors"] == 2
    assert st["last_error"] == f"{host} refused the subscription: HTTP 503"


def test_fails_over_to_the_next_endpoint_and_stays_with_a_working_one(
    tmp_path: Path, lines: list[bytes], fixtures_dir: Path
) -> None:
    assert jetstream("jetstream").endpoints == list(PUBLIC_ENDPOINTS)
    want = posts_in(lines)
    server = fake(lines, fixtures_dir)
    server.faults.drop_after = 30  # after delivering: retry the same endpoint, not the dead one
    dead = f"ws://127.0.0.1:{free_port()}/subscribe"  # nothing listens there
    with running(server):
        src = jetstream(f"jetstream:{dead},{server.url}")
        assert src.endpoints == [dead, server.url]
        ids, _, st = run(tmp_path, src, want, last_time_us(server))
    assert ids == dict.fromkeys(want, 1)
    assert st["reconnects"] == 2 and st["errors"] == 2
    assert len(server.connections) == 2  # refused once, then the live one twice
    assert src.endpoint == server.url


def test_options_update_changes_what_arrives_and_what_reconnects_ask_for(
    tmp_path: Path, lines: list[bytes], fixtures_dir: Path
) -> None:
    assert posts_in(lines[:80]), "posts the likes-only filter must keep out"
    server = fake(lines[:80], fixtures_dir)
    with running(server):
        src = jetstream(f"jetstream:{server.url}?collections=app.bsky.feed.like")
        with live_service(tmp_path, src) as service:
            key = src.spec.key
            likes = [i for i in range(80) if b'"app.bsky.feed.like"' in lines[i]]
            wait_for(lambda: server.connections and server.connections[0].sent, what="a start")
            first = server.connections[0]
            wait_for(lambda: set(likes) <= set(first.sent), what="the likes")
            wait_for(lambda: status(service, key)["events"] >= len(likes), what="stored")
            assert stored_ids(service) == {}  # likes only
            assert src.loop is not None
            sent = asyncio.run_coroutine_threadsafe(
                src.update_options(collections=[POST]), src.loop
            ).result(10)
            assert sent is True
            wait_for(lambda: server.updates, what="the options_update")
            server.append(lines[80:])
            want = posts_in(lines[80:])
            wait_for(lambda: set(stored_ids(service)) >= set(want), what="the later posts")
            assert stored_ids(service) == dict.fromkeys(want, 1)  # none of the first 80
            server.faults.silent = 1  # the reconnect stores nothing: stop with nothing in flight
            server.drop_all()
            wait_for(lambda: len(server.connections) == 2, what="the reconnect")
    assert server.updates == [
        {
            "type": "options_update",
            "payload": {
                "wantedCollections": [POST],
                "wantedDids": [],
                "maxMessageSizeBytes": 1048576,
            },
        }
    ]
    assert first.query["wantedCollections"] == ["app.bsky.feed.like"]
    assert server.connections[1].query["wantedCollections"] == [POST]


def test_a_long_did_list_goes_in_the_hello_message(
    tmp_path: Path, lines: list[bytes], fixtures_dir: Path
) -> None:
    manifest = orjson.loads((fixtures_dir / "bluesky_jetstream" / "manifest.json").read_bytes())
    dids: list[str] = manifest["commit_dids"]
    assert len(",".join(dids)) > 4096
    want = {k: p for k, p in posts_in(lines).items() if p.author.id in set(dids)}
    assert 0 < len(want) < len(posts_in(lines))  # the golden events' authors are not listed
    with running(fake(lines, fixtures_dir)) as server:
        events = server.events
        last = max(events[i]["time_us"] for i in wanted(events) if events[i]["did"] in dids)
        src = jetstream(f"jetstream:{server.url}?dids={','.join(dids)}")
        ids, _, _ = run(tmp_path, src, want, str(last))
    (conn,) = server.connections
    assert conn.query == {"requireHello": ["true"]}
    assert server.updates[0]["payload"]["wantedDids"] == dids
    assert ids == dict.fromkeys(want, 1)


def test_max_message_bytes_asks_the_server_to_skip_bigger_events(
    tmp_path: Path, lines: list[bytes], fixtures_dir: Path
) -> None:
    small = [line for line in lines if len(line) <= 700]
    want = posts_in(small)
    assert 0 < len(want) < len(posts_in(lines))
    with running(fake(lines, fixtures_dir)) as server:
        events = server.events
        last = max(events[i]["time_us"] for i in wanted(events) if len(lines[i]) <= 700)
        src = jetstream(f"jetstream:{server.url}?max_message_bytes=700")
        ids, _, _ = run(tmp_path, src, want, str(last))
    assert server.connections[0].query["maxMessageSizeBytes"] == ["700"]
    assert ids == dict.fromkeys(want, 1)


def test_v2_cursor_too_old_resumes_at_the_floor_and_reports_the_gap(
    tmp_path: Path, lines: list[bytes], fixtures_dir: Path
) -> None:
    with running(fake(lines[:50], fixtures_dir)) as server:
        src = jetstream(f"jetstream:{server.url_v2}")
        with live_service(tmp_path, src) as service:
            wait_for(lambda: set(stored_ids(service)) >= set(posts_in(lines[:50])), what="50")
            (conn,) = server.connections
            last = conn.sent[-1] + 1
            wait_for(lambda: status(service, src.spec.key)["cursor"] == str(last), what="cursor")
        server.append(lines[50:])
        server.faults.floor = 100  # while firesift was down the server let seqs < 100 go
        want = set(posts_in(lines[:50])) | set(posts_in(lines[99:]))
        ids, _, st = run(tmp_path, jetstream(f"jetstream:{server.url_v2}"), want, last_seq(server))
    assert ids == dict.fromkeys(want, 1)
    assert set(posts_in(lines[50:99])) - want, "the fixture has posts in the lost range"
    refused, resumed = server.requests[-2:]
    assert refused[1]["cursor"] == [str(last + 1)] and resumed[1]["cursor"] == ["100"]
    assert st["skipped"] == 1 and st["state"] == "connected"
    assert st["last_problem"] == (
        f"127.0.0.1:{server.port}: cursor {last + 1} is older than the server keeps: "
        f"seq {last + 1}..99 missed, resumed at its oldest event (seq 100)"
    )


def test_v2_consumer_too_slow_reconnects_from_the_stored_seq(
    tmp_path: Path, lines: list[bytes], fixtures_dir: Path
) -> None:
    want = posts_in(lines)
    server = fake(lines, fixtures_dir)
    server.faults.too_slow_after = 40
    with running(server):
        uri = f"jetstream:{server.url_v2}?compress=true"
        ids, _, st = run(tmp_path, jetstream(uri), want, last_seq(server))
    assert ids == dict.fromkeys(want, 1)
    first, second = server.connections
    assert second.cursor() == first.sent[-1] + 2  # the last seq stored, plus one
    assert second.sent[0] > first.sent[-1]  # nothing twice, nothing skipped
    assert st["reconnects"] == 1 and st["duplicates"] == 0
    assert st["last_error"].startswith(f"127.0.0.1:{server.port}: ConsumerTooSlow: ")


@pytest.mark.parametrize("fetch", [200, 503])
def test_v2_retired_dictionary_is_refetched_or_dropped(
    tmp_path: Path, lines: list[bytes], fixtures_dir: Path, fetch: int
) -> None:
    want = posts_in(lines)
    server = fake(lines, fixtures_dir)
    # the server retrained: a different real Jetstream dictionary stands in for the new one
    server.v2_dictionary = dictionary_bytes(fixtures_dir, "legacy_subscribe")
    server.faults.dictionary_fetch_status = fetch
    with running(server):
        uri = f"jetstream:{server.url_v2}?compress=true"
        ids, _, st = run(tmp_path, jetstream(uri), want, last_seq(server))
    assert ids == dict.fromkeys(want, 1)
    paths = [path for path, _ in server.requests]
    assert paths == [server.connections[0].path, DICTIONARY_PATH, server.connections[0].path]
    (conn,) = server.connections
    assert st["errors"] == 0 and st["skipped"] == 1
    if fetch == 200:
        assert conn.query["zstdDictionary"] == ["1612007021"]
        assert st["last_problem"].endswith("now 1612007021")
    else:
        assert "zstdDictionary" not in conn.query
        assert st["last_problem"].endswith("receiving uncompressed frames")


def test_uris_and_bad_options(fixtures_dir: Path) -> None:
    src = jetstream("jetstream:jetstream2.us-west.bsky.network")
    assert src.endpoints == ["wss://jetstream2.us-west.bsky.network/subscribe"]
    src = jetstream("jetstream:wss://example.org/xrpc/network.bsky.jetstream.subscribeEvents")
    assert src.version == 2
    src = jetstream("jetstream?version=2")
    assert src.endpoints == [
        "wss://jetstream1.us-east.bsky.network/xrpc/network.bsky.jetstream.subscribeEvents"
    ]
    src = jetstream("jetstream:wss://example.org/subscribe?wantedCollections=app.bsky.graph.*")
    assert src.filters["collections"] == ["app.bsky.graph.*"]
    with pytest.raises(ConfigError, match="v2 seq cursors belong to one server"):
        jetstream("jetstream:ws://a/xrpc/network.bsky.jetstream.subscribeEvents,ws://b?version=2")
    with pytest.raises(ConfigError, match="kinds is a v2 option"):
        jetstream("jetstream?kinds=commit")
    with pytest.raises(ConfigError, match="unknown kind"):
        jetstream("jetstream?version=2&kinds=commit,post")
    with pytest.raises(ConfigError, match="version must be 1 or 2"):
        jetstream("jetstream?version=3")
    with pytest.raises(ConfigError, match="is not a DID"):
        jetstream("jetstream?dids=alice.bsky.social")
    with pytest.raises(ConfigError, match="leave cursor out of the URL"):
        jetstream("jetstream:wss://example.org/subscribe?cursor=1")
    with pytest.raises(ConfigError, match="options_update exists on v1"):
        v2 = jetstream("jetstream?version=2")
        run_async(lambda: v2.update_options(collections=[POST]))


def test_v2_info_sync_and_unknown_frames(
    tmp_path: Path, lines: list[bytes], fixtures_dir: Path
) -> None:
    want = posts_in(lines)
    server = fake(lines, fixtures_dir)

    def message(kind: str, **fields: Any) -> str:
        payload = {"$type": f"network.bsky.jetstream.subscribeEvents#{kind}", **fields}
        return orjson.dumps({"$type": "message", "payload": payload}).decode()

    did, time = "did:plc:hqvhxrowqbemo5e4wjnj6zao", "2026-07-04T14:38:08.390226Z"
    server.faults.garbage = {
        2: message("info", name="OutdatedCursor", message="starting at seq 1"),
        20: message("sync", seq=20, did=did, time=time, sync={"did": did}),  # nothing to store
        30: message("future", seq=30, did=did, time=time),  # an open union: skipped
        40: message("commit", did=did, time=time, operation="delete"),  # no seq
        50: '{"$type": "weird"}',
    }
    with running(server):
        ids, _, st = run(tmp_path, jetstream(f"jetstream:{server.url_v2}"), want, last_seq(server))
    assert ids == dict.fromkeys(want, 1)
    assert st["skipped"] == 3 and st["errors"] == 0
    assert st["last_problem"].endswith("not a message frame ($type 'weird')")
