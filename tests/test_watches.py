"""Watches end to end on real recorded posts (RumourEval 2017, replayed in time order): the
anchor prefilter against the matcher, events at the instants the stream reached them,
signed webhooks with retries, SSE resumed with Last-Event-ID, delivery after a restart, the
story and verdict kinds, and the API and CLI round trips."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from firesift.api.app import create_app
from firesift.api.server import serve_in_thread
from firesift.cli import main
from firesift.database import Database
from firesift.formats import Problem, read
from firesift.matcher import PostView, compile_matcher
from firesift.pipeline import IngestSummary
from firesift.post import Post, to_ms
from firesift.service import Service
from firesift.trends import TrendTracker
from firesift.watches import Evaluator, WatchStore, anchors, new_watch, verify
from firesift.watches.store import NewEvent

BATCH = 100


@pytest.fixture(scope="module")
def posts(real_data: Path) -> list[Post]:
    """RumourEval 2017's 4,519 real posts in time order (ties in file order)."""
    out: list[Post] = []
    for item in read(real_data / "rumoureval2017" / "posts.jsonl"):
        assert not isinstance(item, Problem), item
        out.extend(e for e in item.events if isinstance(e, Post))
    out.sort(key=lambda p: p.created_at)
    return out


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: records every request; ``fail(n)`` says whether the
    n-th attempt (1-based) at an event is refused with a 500."""

    url: str = ""
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    refuse_first: bool = False
    down: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self) -> dict[str, bytes]:
        with self.lock:
            return {h["idempotency-key"]: b for h, b in self.requests if h.get("x-status") == "200"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = 200
            if rec.down or (rec.refuse_first and headers.get("x-firesift-attempt") == "1"):
                status = 503
            headers["x-status"] = str(status)
            with rec.lock:
                rec.requests.append((headers, body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


def _replay(service: Service, posts: list[Post]) -> None:
    for i in range(0, len(posts), BATCH):
        service.submit(posts[i : i + BATCH]).result(timeout=60)


def _wait(predicate: Any, what: str, timeout: float = 60.0) -> None:
    done = threading.Event()
    deadline = 0.0
    while not predicate():
        if deadline > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        done.wait(0.05)
        deadline += 0.05


def _expected_matches(
    posts: list[Post], query: str, min_posts: int, min_accounts: int, window_ms: int
) -> list[tuple[int, list[str]]]:
    """The ``matches`` semantics stated plainly: the instants (and posts) at which the matching
    posts not yet reported, within the window, reach both thresholds."""
    match = compile_matcher(query)
    assert match is not None
    pending: list[Post] = []
    out = []
    for p in posts:
        if not match(PostView(p)):
            continue
        ms = to_ms(p.created_at)
        pending = [q for q in pending if to_ms(q.created_at) > ms - window_ms] + [p]
        if len(pending) >= min_posts and len({q.author.id for q in pending}) >= min_accounts:
            out.append((ms, [q.key for q in pending]))
            pending = []
    return out


def _sse(url: str, last: int | None, count: int) -> list[tuple[int, dict[str, Any]]]:
    """Read ``count`` watch events from an SSE stream, sending Last-Event-ID ``last``."""
    headers = {} if last is None else {"Last-Event-ID": str(last)}
    got: list[tuple[int, dict[str, Any]]] = []
    with httpx.stream("GET", url, headers=headers, timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        eid = None
        for line in r.iter_lines():
            if line.startswith("id: "):
                eid = int(line[4:])
            elif line.startswith("data: "):
                assert eid is not None
                got.append((eid, orjson.loads(line[6:])))
                if len(got) == count:
                    break
    return got


# -- the prefilter ------------------------------------------------------------------------


QUERIES = [
    "gunman",
    "Hostages police",
    "kouachi OR lubitz OR Prince",
    '"hostage situation"',
    "#ferguson",
    "#OttawaShooting OR #sydneysiege",
    "police hostages -filter:replies",
    "from:cbcnews OR from:ottawapolice",
    "@MichaelSkolnik",
    "lang:en germanwings -crash",
    "lang:fr -police",
    "charlie (hebdo OR kouachi) filter:links",
]


def test_the_anchor_index_flags_exactly_the_posts_the_matcher_matches(
    tmp_path: Path, posts: list[Post]
) -> None:
    with Database(tmp_path / "db") as db:
        watches = WatchStore(db.store)
        made = [watches.add(new_watch("matches", query=q)) for q in QUERIES]
        evaluator = Evaluator(watches, db.store)
        pipeline = db.pipeline(batch_size=500)
        pipeline.sinks = [*pipeline.sinks, evaluator]
        summary = IngestSummary()
        pipeline.feed(posts, summary)
        pipeline.flush(summary)
        for w in made:
            match = compile_matcher(w.query)
            assert match is not None
            expected = [p.key for p in posts if match(PostView(p))]
            got = [
                f"{e['posts'][0]['source']}:{e['posts'][0]['id']}"
                for _, body in watches.events(w.id, limit=10_000)
                for e in [orjson.loads(body)]
            ]
            assert sorted(got) == sorted(expected), w.query
            assert expected, f"{w.query} matches no real post: a useless case"
        assert anchors(None) is None
        watches.close()


# -- end to end: webhook with retries, SSE with Last-Event-ID -----------------------------


def test_a_replay_fires_at_the_right_instants_to_a_webhook_and_sse(
    tmp_path: Path, posts: list[Post], receiver: Receiver
) -> None:
    receiver.refuse_first = True  # every event is refused once: delivered on the retry
    query, min_posts, min_accounts, window = "gunman", 2, 3, 600_000
    expected = _expected_matches(posts, query, min_posts, min_accounts, window)
    assert len(expected) >= 5
    service = Service(Database(tmp_path / "db"), owns_db=True, trends=False).start()
    service.watching.deliverer.base_s = 0.01
    try:
        with serve_in_thread(create_app(service, heartbeat_s=0.5)) as url:
            r = httpx.post(
                f"{url}/api/watches",
                json={
                    "query": query,
                    "min_posts": min_posts,
                    "min_accounts": min_accounts,
                    "window": "10m",
                    "webhook": receiver.url,
                },
            )
            assert r.status_code == 201, r.text
            watch = r.json()
            secret = watch["secret"]
            _replay(service, posts)
            _wait(lambda: len(receiver.accepted()) == len(expected), "every webhook delivery")

            bodies = sorted(
                (orjson.loads(b) for b in receiver.accepted().values()), key=lambda e: e["at_ms"]
            )
            assert [
                (e["at_ms"], [f"{p['source']}:{p['id']}" for p in e["posts"]]) for e in bodies
            ] == expected
            assert all(e["watch"] == watch["id"] and e["kind"] == "matches" for e in bodies)
            for headers, body in receiver.requests:
                assert verify(body, secret, headers["x-firesift-signature"])
                assert not verify(body, "another secret!", headers["x-firesift-signature"])
                assert headers["idempotency-key"] == orjson.loads(body)["id"]
            attempts: dict[str, list[str]] = {}
            for headers, _ in receiver.requests:
                attempts.setdefault(headers["idempotency-key"], []).append(headers["x-status"])
            assert all(a == ["503", "200"] for a in attempts.values()), attempts
            assert service.watching.store.owed() == 0

            events_url = f"{url}/api/watches/{watch['id']}/events"
            first = _sse(events_url, None, 3)
            rest = _sse(events_url, first[-1][0], len(expected) - 3)
            ids = [eid for eid, _ in first + rest]
            assert ids == sorted(set(ids))
            assert [e["at_ms"] for _, e in first + rest] == [ms for ms, _ in expected]
            assert all(f"evt_{eid}" == e["id"] for eid, e in first + rest)
    finally:
        service.stop()


def test_events_not_delivered_before_a_restart_are_delivered_after_it(
    tmp_path: Path, posts: list[Post], receiver: Receiver
) -> None:
    receiver.down = True
    db_dir = tmp_path / "db"
    service = Service(Database(db_dir), owns_db=True, trends=False).start()
    service.watching.deliverer.base_s = 0.01
    try:
        watch = service.watching.store.add(
            new_watch("matches", query="#sydneysiege", min_accounts=5, webhook=receiver.url)
        )
        _replay(service, posts)
        owed = service.watching.store.owed()
        assert owed >= 3
        _wait(lambda: len(receiver.requests) >= owed, "the refused attempts")
    finally:
        service.stop()
    assert not receiver.accepted()

    receiver.down = False
    service = Service(Database(db_dir), owns_db=True, trends=False).start()
    try:
        _wait(lambda: len(receiver.accepted()) == owed, "deliveries after the restart")
        assert service.watching.store.owed() == 0
        stored = {f"evt_{e}" for e, _ in service.watching.store.events(watch.id)}
        assert set(receiver.accepted()) == stored
        for key, body in receiver.accepted().items():
            assert orjson.loads(body)["id"] == key
    finally:
        service.stop()


# -- story and verdict kinds --------------------------------------------------------------


def test_a_story_watch_fires_once_per_matching_story_as_the_tracker_saw_it(
    tmp_path: Path, posts: list[Post]
) -> None:
    with Database(tmp_path / "db") as db:
        trends = db.trends
        watches = WatchStore(db.store)
        w = watches.add(new_watch("story", query="ottawa OR gunman OR parliament"))
        evaluator = Evaluator(watches, db.store, trends=trends)
        pipeline = db.pipeline(batch_size=BATCH)
        pipeline.sinks = [*pipeline.sinks, evaluator]
        summary = IngestSummary()
        for i in range(0, len(posts), BATCH):
            pipeline.feed(posts[i : i + BATCH], summary)
            pipeline.write(summary)
            evaluator.run_checks()
        events = [orjson.loads(b) for _, b in watches.events(w.id)]
        assert events
        match = compile_matcher(w.query)
        assert match is not None
        story_ids = [e["story"]["id"] for e in events]
        assert len(story_ids) == len(set(story_ids))
        for e in events:
            assert e["posts"] and all(
                match(PostView(p))
                for p in db.store.get_many([(x["source"], x["id"]) for x in e["posts"]]).values()
            )
            # The same story, from a tracker that saw only the posts up to the instant.
            upto = [p for p in posts if to_ms(p.created_at) <= e["at_ms"]]
            report = TrendTracker.replay(upto).report(as_of_ms=e["at_ms"], limit=50)
            assert e["story"]["id"] in [s.id for s in report.stories]
        watches.close()


def test_a_verdict_watch_fires_when_the_verdict_changes(tmp_path: Path, posts: list[Post]) -> None:
    service = Service(Database(tmp_path / "db"), owns_db=True, trends=False).start()
    claim = "the Germanwings co-pilot crashed the plane deliberately"
    try:
        w = service.watching.store.add(new_watch("verdict", claim=claim, every=10))
        _replay(service, posts)
        evaluator = service.watching.evaluator
        _wait(
            lambda: not evaluator._live[w.id].state.get("due") and evaluator._checks.empty(),
            "the scheduled checks",
            timeout=300,
        )
        events = [orjson.loads(b) for _, b in service.watching.store.events(w.id)]
        assert events and events[0]["previous"] is None
        for before, after in itertools.pairwise(events):
            assert after["previous"] == before["verdict"] != after["verdict"]
        for e in events:
            verdict = service.engine.check(claim, as_of=datetime.fromisoformat(e["at"]))
            assert verdict.verdict == e["verdict"]
            assert e["posts"]
    finally:
        service.stop()


# -- API and CLI --------------------------------------------------------------------------


def test_the_api_adds_lists_and_removes_watches(tmp_path: Path) -> None:
    service = Service(Database(tmp_path / "db"), owns_db=True, trends=False).start()
    try:
        with serve_in_thread(create_app(service)) as url, httpx.Client(base_url=url) as c:
            assert c.get("/api/watches").json() == {"watches": []}
            bad = c.post("/api/watches", json={"kind": "rumours", "query": "x"})
            assert bad.status_code == 422 and "matches, story, verdict" in bad.text
            assert c.post("/api/watches", json={"query": "(unclosed"}).status_code == 400
            no_claim = c.post("/api/watches", json={"kind": "verdict"})
            assert no_claim.status_code == 422 and "claim" in no_claim.text
            made = c.post("/api/watches", json={"query": "#ferguson", "min_accounts": 2}).json()
            assert made["query"] == "#ferguson" and made["min_accounts"] == 2
            listed = c.get("/api/watches").json()["watches"]
            assert [w["id"] for w in listed] == [made["id"]] and "secret" not in listed[0]
            assert c.get(f"/api/watches/{made['id']}").json()["id"] == made["id"]
            assert c.delete(f"/api/watches/{made['id']}").json()["deleted"] is True
            assert c.delete(f"/api/watches/{made['id']}").status_code == 404
            assert c.get(f"/api/watches/{made['id']}/events").status_code == 404
            assert c.get("/api/watches").json() == {"watches": []}
    finally:
        service.stop()


def test_the_cli_adds_lists_and_removes_watches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "db")
    assert main(["watch", "add", "#ferguson", "--min-accounts", "3", "--db", db, "--json"]) == 0
    made = orjson.loads(capsys.readouterr().out)
    assert made["kind"] == "matches" and made["min_accounts"] == 3
    assert (
        main(
            [
                "watch",
                "add",
                "--kind",
                "verdict",
                "--claim",
                "Ferguson police were attacked",
                "--db",
                db,
            ]
        )
        == 0
    )
    verdict_id = capsys.readouterr().out.strip()
    assert main(["watch", "list", "--db", db, "--json"]) == 0
    listed = orjson.loads(capsys.readouterr().out)
    assert [w["id"] for w in listed] == [made["id"], verdict_id]
    assert listed[1]["query"] == '"ferguson" OR "police" OR "attacked"'
    with pytest.raises(SystemExit) as bad_kind:
        main(["watch", "add", "--kind", "nope", "x", "--db", db])
    assert bad_kind.value.code == 2 and "matches" in capsys.readouterr().err
    assert main(["watch", "add", "--min-accounts", "0", "x", "--db", db]) == 2
    assert "min_accounts" in capsys.readouterr().err
    assert main(["watch", "rm", made["id"], "--db", db]) == 0
    assert main(["watch", "rm", made["id"], "--db", db]) == 2
    assert "no watch" in capsys.readouterr().err
    assert main(["watch", "list", "--db", db, "--json"]) == 0
    assert [w["id"] for w in orjson.loads(capsys.readouterr().out)] == [verdict_id]


def test_events_of_a_removed_watch_are_dropped(tmp_path: Path) -> None:
    with Database(tmp_path / "db") as db:
        watches = WatchStore(db.store)
        w = watches.add(new_watch("matches", query="x"))
        watches.remove(w.id)
        assert watches.record([NewEvent(w, 1, (), {})], {}, None) == []
        watches.close()


def test_posts_stored_while_no_service_ran_are_evaluated_when_one_starts(
    tmp_path: Path, posts: list[Post], capsys: pytest.CaptureFixture[str], real_data: Path
) -> None:
    """A watch added from the CLI, posts ingested by ``firesift ingest`` (no evaluator in that
    process): the service catches up from the change log on start, once."""
    db = tmp_path / "db"
    assert main(["watch", "add", "#sydneysiege", "--min-accounts", "4", "--db", str(db)]) == 0
    wid = capsys.readouterr().out.strip()
    path = str(real_data / "rumoureval2017" / "posts.jsonl")
    assert main(["ingest", path, "--db", str(db)]) == 0
    # The change log replays in store order (the file's), which is not time order.
    stored = [e for item in read(Path(path)) if not isinstance(item, Problem) for e in item.events]
    expected = _expected_matches(stored, "#sydneysiege", 1, 4, 600_000)  # type: ignore[arg-type]
    assert expected
    for _ in range(2):  # the second start finds nothing left to evaluate
        service = Service(Database(db), owns_db=True, trends=False).start()
        try:
            got = [orjson.loads(b) for _, b in service.watching.store.events(wid)]
        finally:
            service.stop()
        assert [(e["at_ms"], [f"{p['source']}:{p['id']}" for p in e["posts"]]) for e in got] == [
            (ms, keys[:20]) for ms, keys in expected
        ]
