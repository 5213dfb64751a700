"""``nats``: a durable JetStream pull consumer against a real ``nats-server``, fed real payloads.

The messages are the recorded payloads of ``data/``: Jetstream v1 events, X v2 filtered-stream
lines (with the recording's truncated last line: real garbage), Mastodon Statuses (one
pretty-printed, one timeline array) and RumourEval canonical posts, single and in JSONL
batches. What is checked is what the store holds and what the server says about the consumer
(acknowledged, pending, redelivered), never the source's own view.
"""

from __future__ import annotations

import concurrent.futures
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from firesift.config import Settings
from firesift.database import Database
from firesift.errors import ConfigError
from firesift.formats.reader import Messages, Parsed
from firesift.pipeline import IngestSummary
from firesift.post import Delete, Event, Post
from firesift.service import Service
from firesift.sources import build, get
from firesift.sources.nats import NatsSource
from firesift.sources.runner import Sources
from nats_server import NatsServer, running
from source_harness import (
    FAST,
    free_port,
    live_service,
    run_async,
    source,
    status,
    stored_ids,
    wait_for,
)

Ids = set[tuple[str, str]]


def posts_of(values: Sequence[Any]) -> Ids:
    """What the store should hold after ``values`` (decoded JSON, in order): posts minus the
    ones deleted later. Parsed here object by object, independently of the source."""
    posts: Ids = set()
    m = Messages()
    for value in values:
        for r in m.value(value, "expected"):
            assert isinstance(r, Parsed), r
            for ev in r.events:
                if isinstance(ev, Post):
                    posts.add((ev.source, ev.id))
                elif isinstance(ev, Delete):
                    posts.discard((ev.source, ev.id))
    return posts


@dataclass
class Recording:
    payloads: list[bytes]
    posts: Ids
    garbage: bytes
    """The truncated last line of the X stream recording."""


def test_nats_is_a_registered_source() -> None:
    assert get("nats") is NatsSource  # from the package's entry points, as a plugin's would be


@pytest.fixture(scope="module")
def recording(real_data: Path) -> Recording:
    fx = real_data / "fixtures"
    jetstream = (fx / "bluesky_jetstream" / "expected_v1.jsonl").read_bytes().splitlines()
    x_stream = (fx / "x_api_v2/twarc_csv_testdata/streaming_output_with_error.jsonl").read_bytes()
    *x_lines, garbage = x_stream.splitlines()
    statuses = [
        orjson.loads((fx / "mastodon" / f"test_entity_status__{i}.json").read_bytes())["body"]
        for i in (0, 1)
    ]
    timeline = orjson.loads((fx / "mastodon" / "test_public_tl__2.json").read_bytes())["body"]
    rumours = (real_data / "rumoureval2017" / "posts.jsonl").read_bytes().splitlines()[:300]
    payloads = [
        *jetstream,
        *x_lines,
        garbage,  # a message of its own: reported and terminated
        orjson.dumps(statuses[0], option=orjson.OPT_INDENT_2),  # one document on many lines
        orjson.dumps(statuses[1]),
        orjson.dumps(timeline),  # an array of Statuses
        *rumours[:100],
        # JSONL batches of 50 lines; the first one carries the garbage line among good ones
        b"\n".join([*rumours[100:125], garbage, *rumours[125:150]]) + b"\n",
        *(b"\n".join(rumours[i : i + 50]) for i in range(150, 300, 50)),
    ]
    values = [
        *map(orjson.loads, jetstream),
        *map(orjson.loads, x_lines),
        *statuses,
        timeline,
        *map(orjson.loads, rumours),
    ]
    posts = posts_of(values)
    assert len(posts) > 300
    return Recording(payloads, posts, garbage)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    with running(NatsServer(tmp_path / "nats")) as s:
        yield s


def canonical(real_data: Path, n: int, start: int = 0) -> tuple[list[bytes], Ids]:
    """``n`` RumourEval posts, one message each (posts only: no deletes to race)."""
    lines = (real_data / "rumoureval2017" / "posts.jsonl").read_bytes().splitlines()
    chosen = lines[start : start + n]
    assert len(chosen) == n
    return chosen, posts_of([orjson.loads(line) for line in chosen])


def uri(server: NatsServer, **options: Any) -> str:
    opts = {"stream": "POSTS", "subject": "posts.>", "wait": "0.5", **options}
    return f"nats:{server.url}?" + "&".join(f"{k}={v}" for k, v in opts.items())


def settled(server: NatsServer, durable: str = "firesift", stream: str = "POSTS") -> Any:
    """The consumer, once nothing is pending or awaiting an ack (acks follow the commit)."""
    info = server.consumer(stream, durable)
    return info if info.num_pending == 0 and info.num_ack_pending == 0 else None


def test_every_recorded_payload_is_stored_once_and_acknowledged(
    tmp_path: Path,
    server: NatsServer,
    recording: Recording,
) -> None:
    # the server's own terminate advisories, kept in a stream to read afterwards
    server.add_stream("TERMINATED", ["$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.>"])
    seqs = server.publish(recording.payloads)
    single_garbage = seqs[recording.payloads.index(recording.garbage)]
    batch_seq = next(
        s for s, p in zip(seqs, recording.payloads, strict=True) if recording.garbage + b"\n" in p
    )
    src = source(uri(server))
    with live_service(tmp_path / "db", src) as service:
        wait_for(lambda: set(stored_ids(service)) >= recording.posts, what="every recorded post")
        info = wait_for(lambda: settled(server), what="every message acknowledged")
        ids = stored_ids(service)
        st = status(service, src.spec.key)
    assert ids == dict.fromkeys(recording.posts, 1)
    assert info.ack_floor.stream_seq == seqs[-1] and info.num_redelivered == 0
    assert st["state"] == "connected" and st["errors"] == 0
    assert st["cursor"] == str(seqs[-1]) and st["lag_s"] is not None
    # both garbage lines are skipped, reported with their stream position (status keeps the
    # last one: the line inside a JSONL batch)
    assert st["skipped"] == 2
    assert st["last_problem"].startswith(f"POSTS:{batch_seq}:+26: malformed JSON")
    # the message that was nothing but garbage was terminated, not acked: never redelivered;
    # the batch with good lines around its bad one was acknowledged
    (advisory,) = map(orjson.loads, server.stored("TERMINATED"))
    assert advisory["type"] == "io.nats.jetstream.advisory.v1.terminated"
    assert advisory["stream_seq"] == single_garbage and advisory["consumer"] == "firesift"


# -- acknowledgement after the store, with a sink we control in front of a real store --------


class GatedSink:
    """The service's writer behind a gate: submissions wait until :meth:`open`, and the first
    ``fail`` of them fail as a full disk would."""

    def __init__(self, service: Service, *, held: bool = False, fail: int = 0) -> None:
        self.service = service
        self.gate = threading.Event()
        if not held:
            self.gate.set()
        self.fail = fail
        self.submitted = 0

    def submit(
        self,
        events: Sequence[Event],
        *,
        summary: IngestSummary | None = None,
        cursor: tuple[str, str] | None = None,
        searchable: bool = False,
    ) -> concurrent.futures.Future[IngestSummary]:
        self.submitted += 1
        out: concurrent.futures.Future[IngestSummary] = concurrent.futures.Future()
        if self.submitted <= self.fail:
            out.set_exception(OSError("disk full"))
            return out

        def later() -> None:
            self.gate.wait()
            inner = self.service.submit(events, summary=summary, cursor=cursor)
            try:
                out.set_result(inner.result())
            except BaseException as e:
                out.set_exception(e)

        threading.Thread(target=later, daemon=True).start()
        return out

    def cursor(self, name: str) -> str | None:
        return self.service.cursor(name)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Service]:
    service = Service(Database(tmp_path / "db"), owns_db=True).start()
    try:
        yield service
    finally:
        service.stop()


@contextmanager
def sources_into(sink: GatedSink, *uris: str) -> Iterator[Sources]:
    """The sources of ``uris`` run by the product's runners into ``sink``."""
    sources = Sources([build(u, Settings()) for u in uris], sink, backoff=FAST).start()
    try:
        yield sources
    finally:
        sources.stop()


def test_messages_are_acknowledged_only_once_the_store_has_them(
    server: NatsServer, store: Service, real_data: Path
) -> None:
    payloads, want = canonical(real_data, 200)
    server.publish(payloads)
    sink = GatedSink(store, held=True)
    with sources_into(sink, uri(server, batch=50)):
        # delivered to the source, handed to the store, not committed: nothing acknowledged
        wait_for(lambda: sink.submitted >= 1, what="a batch submitted")
        held = wait_for(
            lambda: (i := server.consumer("POSTS", "firesift")).num_ack_pending and i,
            what="messages delivered",
        )
        assert held.ack_floor.stream_seq == 0 and not stored_ids(store)
        sink.gate.set()
        info = wait_for(lambda: settled(server), what="every message acknowledged")
        assert set(stored_ids(store)) == want
    assert stored_ids(store) == dict.fromkeys(want, 1)
    assert info.ack_floor.stream_seq == len(payloads) and info.num_redelivered == 0


def test_a_store_failure_naks_the_batch_and_it_comes_again(
    server: NatsServer, store: Service, real_data: Path
) -> None:
    payloads, want = canonical(real_data, 200)
    server.publish(payloads)
    sink = GatedSink(store, fail=1)
    with sources_into(sink, uri(server, batch=50)) as sources:
        wait_for(lambda: set(stored_ids(store)) >= want, what="every post, the refused ones too")
        wait_for(lambda: settled(server), what="every message acknowledged")
        st = sources.statuses()[0]
    assert stored_ids(store) == dict.fromkeys(want, 1)
    assert st["errors"] >= 1 and "disk full" in st["last_error"] and st["reconnects"] >= 1


def test_messages_stored_but_never_acknowledged_are_redelivered_and_stored_once(
    tmp_path: Path, server: NatsServer, real_data: Path
) -> None:
    payloads, want = canonical(real_data, 300)
    server.publish(payloads)
    crashing = build(uri(server, batch=100, ack_wait=1), Settings())

    async def store_one_batch_then_crash(service: Service) -> int:
        batches = crashing.stream(None)
        batch = await anext(batches)
        while not batch.events:  # keep-alives until the first fetch returns
            batch = await anext(batches)
        await service.submit_async(batch.events)  # stored...
        await batches.aclose()
        await crashing.aclose()  # ...and the connection gone before any ack
        return len(batch.events)

    with live_service(tmp_path / "db") as service:
        first = run_async(lambda: store_one_batch_then_crash(service))
        assert 0 < first < len(want) and len(stored_ids(service)) == first
    assert server.consumer("POSTS", "firesift").num_ack_pending == first

    restarted = source(uri(server, batch=100))
    with live_service(tmp_path / "db", restarted) as service:
        wait_for(lambda: set(stored_ids(service)) >= want, what="every post")
        info = wait_for(lambda: settled(server), what="every message acknowledged")
        ids = stored_ids(service)
        st = status(service, restarted.spec.key)
    assert ids == dict.fromkeys(want, 1)
    assert st["duplicates"] == first  # redelivered after ack_wait, absorbed by the dedupe
    assert info.ack_floor.stream_seq == len(payloads)


def test_two_services_sharing_a_durable_split_the_messages(
    tmp_path: Path, server: NatsServer, real_data: Path
) -> None:
    payloads, want = canonical(real_data, 1500)
    server.add_stream("POSTS", ["posts.>"])
    a, b = source(uri(server, batch=20)), source(uri(server, batch=20))
    with live_service(tmp_path / "a", a) as one, live_service(tmp_path / "b", b) as two:
        pairs = ((one, a), (two, b))
        wait_for(
            lambda: all(status(s, x.spec.key)["state"] == "connected" for s, x in pairs),
            what="both connected",
        )
        server.publish(payloads, stream=None)  # both are waiting on the durable
        wait_for(lambda: set(stored_ids(one)) | set(stored_ids(two)) >= want, what="every post")
        wait_for(lambda: settled(server), what="every message acknowledged")
        ids_a, ids_b = stored_ids(one), stored_ids(two)
    assert ids_a and ids_b, "both processes took a share"
    assert set(ids_a) | set(ids_b) == want
    assert not set(ids_a) & set(ids_b), "no message was processed twice"
    assert set(ids_a.values()) == set(ids_b.values()) == {1}


def test_a_server_killed_and_restarted_mid_stream_loses_nothing(
    tmp_path: Path, server: NatsServer, real_data: Path
) -> None:
    before, want_before = canonical(real_data, 400)
    after, want_after = canonical(real_data, 400, start=400)
    server.publish(before)
    # acks the kill swallows (those of the last batches, or ack state the server had not
    # written yet) come back after ack_wait, 2 s here, and the store's dedupe absorbs them
    src = source(uri(server, batch=50, ack_wait=2))
    with live_service(tmp_path / "db", src) as service:
        wait_for(lambda: set(stored_ids(service)) >= want_before, what="the first half")
        server.kill()  # SIGKILL: a crash, acks maybe in flight
        wait_for(lambda: status(service, src.spec.key)["errors"] >= 1, what="the loss seen")
        server.start()  # same port, same store dir: the stream and the durable survive
        server.publish(after, stream=None)
        wait_for(lambda: set(stored_ids(service)) >= want_before | want_after, what="all")
        wait_for(lambda: settled(server), what="every message acknowledged")
        ids = stored_ids(service)
        st = status(service, src.spec.key)
    assert ids == dict.fromkeys(want_before | want_after, 1)
    assert st["state"] == "connected" and st["reconnects"] >= 1
    assert "ConnectionError" in st["last_error"]


def test_an_idle_stream_is_alive_not_stalled(
    tmp_path: Path, server: NatsServer, real_data: Path
) -> None:
    payloads, want = canonical(real_data, 50)
    server.add_stream("POSTS", ["posts.>"])
    src = source(uri(server, wait="0.2", stall="1.5"))
    with live_service(tmp_path / "db", src) as service:
        wait_for(lambda: status(service, src.spec.key)["state"] == "connected", what="up")
        time.sleep(4)  # the observation window: longer than the stall time, nothing to fetch
        quiet = status(service, src.spec.key)
        server.publish(payloads, stream=None)
        wait_for(lambda: set(stored_ids(service)) >= want, what="the posts after the silence")
    assert quiet["state"] == "connected"
    assert quiet["reconnects"] == 0 and quiet["errors"] == 0


def test_a_new_durable_with_deliver_new_skips_the_backlog(
    tmp_path: Path, server: NatsServer, real_data: Path
) -> None:
    old, want_old = canonical(real_data, 100)
    new, want_new = canonical(real_data, 100, start=100)
    server.publish(old)
    src = source(uri(server, deliver="new", durable="latest"))
    with live_service(tmp_path / "db", src) as service:
        wait_for(lambda: status(service, src.spec.key)["state"] == "connected", what="up")
        server.publish(new, stream=None)
        wait_for(lambda: set(stored_ids(service)) >= want_new, what="the new posts")
        wait_for(lambda: settled(server, "latest"), what="acknowledged")
        ids = set(stored_ids(service))
    assert ids == want_new and not ids & want_old


def test_create_true_makes_the_stream_and_a_dead_server_in_the_list_is_skipped(
    tmp_path: Path, server: NatsServer, real_data: Path
) -> None:
    payloads, want = canonical(real_data, 100)
    dead = f"nats://127.0.0.1:{free_port()}"
    src = source(uri(server, create="true").replace(server.url, f"{dead},{server.url}"))
    with live_service(tmp_path / "db", src) as service:
        wait_for(lambda: status(service, src.spec.key)["state"] == "connected", what="up")
        server.publish(payloads, stream=None)  # into the stream the source created
        wait_for(lambda: set(stored_ids(service)) >= want, what="every post")
        ids = stored_ids(service)
    assert ids == dict.fromkeys(want, 1)


def test_a_missing_stream_without_create_stops_with_the_reason(
    tmp_path: Path, server: NatsServer
) -> None:
    src = source(uri(server, stream="NOPE"))
    with live_service(tmp_path / "db", src) as service:
        st = wait_for(
            lambda: (s := status(service, src.spec.key))["state"] == "stopped" and s,
            what="the source stopped",
        )
    assert "stream 'NOPE' does not exist" in st["reason"] and "create=true" in st["reason"]
    assert st["reconnects"] == 0


def test_refused_credentials_stop_the_source_and_good_ones_work(
    tmp_path: Path, real_data: Path
) -> None:
    payloads, want = canonical(real_data, 50)
    with running(NatsServer(tmp_path / "nats", auth=("firesift", "s3cret"))) as server:
        server.publish(payloads)
        wrong = source(uri(server, user="firesift", password="wrong", name="wrong"))
        right = source(uri(server, user="firesift", password="s3cret", name="right"))
        with live_service(tmp_path / "db", wrong, right) as service:
            st = wait_for(
                lambda: (s := status(service, "wrong"))["state"] == "stopped" and s,
                what="the wrong login stopped",
            )
            wait_for(lambda: set(stored_ids(service)) >= want, what="the right login's posts")
    assert "refused the credentials" in st["reason"] and st["reconnects"] == 0


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("subject=posts.>&create=true", "create=true needs both"),
        ("stream=POSTS&deliver=last", "deliver='last'"),
        ("stream=PO.STS", "may not contain"),
        ("stream=POSTS&batch=0", "batch must be >= 1"),
        ("stream=POSTS&format=nope", "nope"),
        ("durable=x", "give stream=NAME, subject=SUBJECT"),
        ("stream=POSTS&creds=/nonexistent.creds", "no such creds file"),
    ],
)
def test_bad_options_are_refused_before_connecting(query: str, error: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(error)):
        source(f"nats:nats://127.0.0.1:4222?{query}")
