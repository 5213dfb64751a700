"""The live-source interface and its runner, driven by a scripted source over real posts.

A scripted source plays a list of steps per connection (batches of real RumourEval posts,
errors, silence), so every runner guarantee is checked against the real store: acknowledged
only after the store has the batch, resume from the stored cursor, back-off, stall detection,
fatal stops, bounded memory under a slow store, refusal on a store failure.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from firesift import sources
from firesift.config import Settings, source_tables
from firesift.errors import ConfigError
from firesift.formats import Parsed, read
from firesift.pipeline import IngestSummary
from firesift.post import Event, Post
from firesift.sources import Batch, Fatal, Retry, Source, SourceSpec, build, build_all
from firesift.sources.base import retry_after
from firesift.sources.runner import Backoff, SourceRunner
from source_harness import live_service, run_async, status, stored_ids, wait_for

# -- a scripted source -------------------------------------------------------------------------


class Scripted(Source):
    """Plays ``SCRIPTS[spec.arg]``: one list of steps per connection. A step is a Batch, an
    exception to raise, ``"silence"`` (block until cancelled) or ``"end"`` (finish)."""

    name = "scripted"
    help = "test source"
    arg = "script name"
    options: ClassVar[dict[str, str]] = {}
    has_cursor = True
    stall_s = 5.0
    SCRIPTS: ClassVar[dict[str, list[list[Any]]]] = {}
    CURSORS: ClassVar[dict[str, list[str | None]]] = {}
    YIELDED: ClassVar[dict[str, int]] = {}

    async def stream(self, cursor: str | None) -> AsyncIterator[Batch]:
        name = self.spec.arg
        self.CURSORS.setdefault(name, []).append(cursor)
        script = self.SCRIPTS[name]
        steps = script.pop(0) if script else ["silence"]
        for step in steps:
            if step == "end":
                return
            if step == "silence":
                await asyncio.Event().wait()
            if isinstance(step, BaseException):
                raise step
            self.YIELDED[name] = self.YIELDED.get(name, 0) + 1
            yield step


@pytest.fixture(autouse=True)
def scripted() -> Iterator[type[Scripted]]:
    sources.register(Scripted, replace=True)
    Scripted.SCRIPTS.clear()
    Scripted.CURSORS.clear()
    Scripted.YIELDED.clear()
    yield Scripted
    sources.unregister("scripted")


@pytest.fixture(scope="module")
def posts(real_data: Path) -> list[Post]:
    out: list[Post] = []
    for item in read(real_data / "rumoureval2017" / "posts.jsonl"):
        assert isinstance(item, Parsed)
        out.extend(e for e in item.events if isinstance(e, Post))
        if len(out) >= 600:
            break
    return out


def batches(posts: Sequence[Post], size: int, *, start: int = 0) -> list[Batch]:
    """Batches of ``size`` posts, each with its cursor: the index after its last post."""
    return [
        Batch(posts[i : i + size], cursor=str(start + i + size), source_time=posts[i].created_at)
        for i in range(0, len(posts), size)
    ]


def ids(posts: Sequence[Post]) -> set[tuple[str, str]]:
    return {(p.source, p.id) for p in posts}


# -- URIs, registry, configuration -----------------------------------------------------------


def test_uri_parses_name_arg_and_options() -> None:
    spec = SourceSpec.parse("mastodon:mastodon.social?stream=hashtag&tag=ottawa")
    assert (spec.name, spec.arg, dict(spec.options)) == (
        "mastodon",
        "mastodon.social",
        {"stream": "hashtag", "tag": "ottawa"},
    )
    assert SourceSpec.parse("Jetstream").name == "jetstream"
    assert SourceSpec.parse("mastodon:a?name=main&stall=30").key == "main"
    assert SourceSpec.parse("mastodon:a?stall=30&stream=public").key == "mastodon:a?stream=public"
    # credentials never reach the key (the cursor's name, the status, the logs)
    assert SourceSpec.parse("mastodon:a?token=s3cret&stream=user").key == "mastodon:a?stream=user"


def test_unknown_options_are_refused_naming_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown option\(s\) folow; known: name, stall"):
        build(f"file:{tmp_path}/x.jsonl?folow=true", Settings())
    with pytest.raises(ConfigError, match="needs an argument"):
        build("file", Settings())


def test_registry_lists_built_ins_from_entry_points_and_run_time_plugins() -> None:
    names = sources.names()
    for builtin in ("file", "http", "jetstream", "mastodon", "rss", "x"):
        assert builtin in names
    assert "scripted" in names  # registered at run time, exactly like a plugin
    with pytest.raises(ValueError, match="already registered"):
        sources.register(Scripted)
    with pytest.raises(Exception, match=r"unknown source 'nope'; known: file"):
        sources.get("nope")


def test_sources_come_from_config_tables_then_uris(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        'batch_size = 500\n\n[[sources]]\ntype = "scripted"\narg = "from-config"\n'
        'name = "configured"\n\n[[sources]]\ntype = "file"\narg = "/tmp/a.jsonl"\nfollow = true\n'
    )
    tables = source_tables(config_file=config)
    built = build_all(["scripted:cli"], Settings(), tables)
    assert [s.spec.key for s in built] == [
        "configured",
        "file:/tmp/a.jsonl?follow=true",
        "scripted:cli",
    ]
    config.write_text('[[sources]]\ntype = "file"\nfolow = 1\n')
    with pytest.raises(ConfigError, match=r"\[\[sources\]\] #1: source file: unknown option"):
        build_all([], Settings(), source_tables(config_file=config))
    with pytest.raises(ConfigError, match="--source nope: unknown source"):
        build_all(["nope"], Settings())


def test_backoff_follows_x_reconnect_policy() -> None:
    b = Backoff(jitter=0.0)
    # network errors: linear, 250 ms per attempt, capped at 16 s
    assert [b.delay("network", n) for n in (1, 2, 3, 64, 100)] == [0.25, 0.5, 0.75, 16.0, 16.0]
    # HTTP errors: exponential from 5 s, capped at 320 s
    assert [b.delay("http", n) for n in (1, 2, 3, 7, 9)] == [5.0, 10.0, 20.0, 320.0, 320.0]
    # rate limited: exponential from a minute, and never before the server's reset time
    assert [b.delay("rate", n) for n in (1, 2)] == [60.0, 120.0]
    assert b.delay("rate", 1, after=300.0) == 300.0
    jittered = Backoff(jitter=0.25)
    assert all(3.75 <= jittered.delay("http", 1) <= 5.0 for _ in range(50))


# -- the runner against the real store --------------------------------------------------------


def test_batches_are_stored_once_and_acknowledged_after_the_store(
    tmp_path: Path, posts: list[Post]
) -> None:
    acked: list[int] = []
    stored_at_ack: list[bool] = []
    service_box: list[Any] = []

    def ack_for(n: int, batch_posts: Sequence[Post]) -> Any:
        async def ack() -> None:
            store = service_box[0].db.store
            stored_at_ack.append(all(store.get(p.source, p.id) for p in batch_posts))
            acked.append(n)

        return ack

    plan = batches(posts[:300], 50)
    Scripted.SCRIPTS["a"] = [
        [
            Batch(b.events, b.cursor, b.source_time, ack_for(i, b.events))  # type: ignore[arg-type]
            for i, b in enumerate(plan)
        ]
        + ["end"]
    ]
    with live_service(tmp_path / "db", build("scripted:a", Settings())) as service:
        service_box.append(service)
        st = wait_for(lambda: status(service, "scripted:a")["state"] == "finished", what="finish")
        assert st
        assert stored_ids(service) == dict.fromkeys(ids(posts[:300]), 1)
        assert service.cursor("source:scripted:a") == "300"
        s = status(service, "scripted:a")
        assert s["posts"] == 300 and s["errors"] == 0 and s["cursor"] == "300"
        assert s["lag_s"] is not None and s["last_event_at"] is not None
    assert acked == list(range(len(plan)))  # in order
    assert all(stored_at_ack)


def test_a_dropped_connection_resumes_from_the_stored_cursor(
    tmp_path: Path, posts: list[Post]
) -> None:
    first, second = batches(posts[:200], 50), batches(posts[200:400], 50, start=200)
    Scripted.SCRIPTS["drop"] = [
        [*first, ConnectionResetError("peer went away")],
        [*second, "end"],
    ]
    with live_service(tmp_path / "db", build("scripted:drop", Settings())) as service:
        wait_for(lambda: status(service, "scripted:drop")["state"] == "finished", what="finish")
        s = status(service, "scripted:drop")
        assert stored_ids(service) == dict.fromkeys(ids(posts[:400]), 1)
    assert Scripted.CURSORS["drop"] == [None, "200"]
    assert (s["reconnects"], s["errors"]) == (1, 1)
    assert s["last_error"] == "ConnectionResetError: peer went away"


def test_a_restart_resumes_from_the_cursor_the_store_saved(
    tmp_path: Path, posts: list[Post]
) -> None:
    Scripted.SCRIPTS["r"] = [[*batches(posts[:100], 25), "silence"]]
    db = tmp_path / "db"
    with live_service(db, build("scripted:r", Settings())) as service:
        wait_for(lambda: status(service, "scripted:r")["posts"] == 100, what="100 posts")
    Scripted.SCRIPTS["r"] = [[*batches(posts[100:150], 25, start=100), "silence"]]
    with live_service(db, build("scripted:r", Settings())) as service:
        wait_for(lambda: status(service, "scripted:r")["posts"] == 50, what="50 more")
        assert stored_ids(service) == dict.fromkeys(ids(posts[:150]), 1)
    assert Scripted.CURSORS["r"] == [None, "100"]


def test_a_silent_connection_is_detected_and_reconnected(tmp_path: Path, posts: list[Post]) -> None:
    Scripted.SCRIPTS["quiet"] = [[*batches(posts[:10], 10), "silence"], [Batch(), "end"]]
    src = build("scripted:quiet?stall=0.3", Settings())
    with live_service(tmp_path / "db", src) as service:
        wait_for(lambda: status(service, "scripted:quiet")["state"] == "finished", what="finish")
        s = status(service, "scripted:quiet")
    assert s["reconnects"] == 1 and s["last_error"] == "no data for 0.3 s"
    assert Scripted.CURSORS["quiet"] == [None, "10"]


def test_keepalives_prove_life_and_store_nothing(tmp_path: Path) -> None:
    async def alive() -> AsyncIterator[Batch]:
        for _ in range(8):
            await asyncio.sleep(0.1)
            yield Batch()

    class Beating(Scripted):
        name = "beating"

        async def stream(self, cursor: str | None) -> AsyncIterator[Batch]:
            async for b in alive():
                yield b

    sources.register(Beating)
    try:
        with live_service(tmp_path / "db", build("beating?stall=0.5", Settings())) as service:
            wait_for(lambda: status(service, "beating")["state"] == "finished", what="finish")
            s = status(service, "beating")
            assert s["reconnects"] == 0 and s["posts"] == 0 and s["batches"] == 0
            assert service.db.store.stats().posts == 0
    finally:
        sources.unregister("beating")


def test_fatal_stops_one_source_and_the_others_run_on(tmp_path: Path, posts: list[Post]) -> None:
    Scripted.SCRIPTS["bad"] = [[Fatal("401 Unauthorized: check x_bearer_token")]]
    Scripted.SCRIPTS["good"] = [[*batches(posts[:60], 20), "end"]]
    srcs = [build("scripted:bad", Settings()), build("scripted:good", Settings())]
    with live_service(tmp_path / "db", *srcs) as service:
        wait_for(lambda: status(service, "scripted:good")["state"] == "finished", what="good")
        bad = wait_for(
            lambda: (s := status(service, "scripted:bad"))["state"] == "stopped" and s,
            what="bad stopped",
        )
        assert stored_ids(service) == dict.fromkeys(ids(posts[:60]), 1)
    assert bad["reason"] == "401 Unauthorized: check x_bearer_token"
    assert bad["reconnects"] == 0 and Scripted.CURSORS["bad"] == [None]


def test_retry_after_from_the_server_is_honoured(tmp_path: Path, posts: list[Post]) -> None:
    Scripted.SCRIPTS["rl"] = [
        [Retry("429 Too Many Requests", kind="rate", after=0.5)],
        [*batches(posts[:10], 10), "end"],
    ]
    delays: list[tuple[str, float | None]] = []

    class Recording(Backoff):
        def delay(self, kind: str, attempt: int, after: float | None = None) -> float:
            delays.append((kind, after))
            return super().delay(kind, attempt, after)

    with live_service(
        tmp_path / "db", build("scripted:rl", Settings()), backoff=Recording(scale=0.01)
    ) as service:
        wait_for(lambda: status(service, "scripted:rl")["state"] == "finished", what="finish")
        assert status(service, "scripted:rl")["last_error"] == "429 Too Many Requests"
    assert delays == [("rate", 0.5)]


# -- back-pressure and store failures, with a sink we control ---------------------------------


class HeldSink:
    """A sink that stores nothing until released, or fails every batch."""

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.held: list[tuple[concurrent.futures.Future[IngestSummary], int]] = []
        self.cursors: dict[str, str] = {}
        self.lock = threading.Lock()

    def submit(
        self,
        events: Sequence[Event],
        *,
        summary: IngestSummary | None = None,
        cursor: tuple[str, str] | None = None,
        searchable: bool = False,
    ) -> concurrent.futures.Future[IngestSummary]:
        future: concurrent.futures.Future[IngestSummary] = concurrent.futures.Future()
        if self.fail:
            future.set_exception(OSError("disk full"))
        else:
            with self.lock:
                self.held.append((future, len(events)))
            if cursor is not None:
                self.cursors[cursor[0]] = cursor[1]
        return future

    def release(self) -> None:
        with self.lock:
            held, self.held = self.held, []
        for future, n in held:
            s = IngestSummary()
            s.ingested = n
            future.set_result(s)

    def cursor(self, name: str) -> str | None:
        return None


def test_a_slow_store_holds_the_source_back(posts: list[Post]) -> None:
    run_async(lambda: _slow_store(posts))


async def _slow_store(posts: list[Post]) -> None:
    many = batches(posts[:600], 1)  # 600 one-post batches
    Scripted.SCRIPTS["flood"] = [[*many, "end"]]
    sink = HeldSink()
    runner = SourceRunner(
        build("scripted:flood", Settings()),
        sink,
        batch_events=10,
        max_inflight=2,
        queue_batches=16,
    )
    task = asyncio.create_task(runner.run())
    await asyncio.sleep(0.5)
    # two submissions in flight, one group being coalesced, the queue full: no more than that
    assert Scripted.YIELDED["flood"] <= 2 * 10 + 10 + 16 + 2
    while not task.done():
        sink.release()
        await asyncio.sleep(0.01)
    st = task.result()
    assert st.state == "finished" and st.posts == 600


def test_a_store_failure_refuses_the_batch_and_never_acknowledges(posts: list[Post]) -> None:
    run_async(lambda: _store_failure(posts))


async def _store_failure(posts: list[Post]) -> None:
    refused: list[str] = []
    acked: list[int] = []

    async def ack() -> None:
        acked.append(1)

    def nack(e: BaseException) -> None:
        refused.append(str(e))

    Scripted.SCRIPTS["full"] = [
        [Batch(posts[:5], cursor="5", ack=ack, nack=nack)],
        [Fatal("stop here")],
    ]
    runner = SourceRunner(build("scripted:full", Settings()), HeldSink(fail=True))
    runner.backoff = Backoff(scale=0.001)
    st = await runner.run()
    assert refused == ["disk full"] and acked == []
    assert st.errors == 2 and st.last_error == "stop here"


def test_retry_after_reads_seconds_and_http_dates() -> None:
    from email.utils import format_datetime

    assert retry_after({"retry-after": "120"}) == 120.0
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    assert 80 <= (retry_after({"retry-after": soon}) or 0) <= 90
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # past: now
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None


def test_bool_options_are_checked_once_for_every_source(tmp_path: Path) -> None:
    src = build(f"file:{tmp_path}/a.jsonl?follow=yes", Settings())
    assert src.bool_option("follow", False) is True
    assert src.bool_option("absent", True) is True
    with pytest.raises(ConfigError, match="follow must be true or false, got 'maybe'"):
        build(f"file:{tmp_path}/a.jsonl?follow=maybe", Settings()).bool_option("follow", False)
