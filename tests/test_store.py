"""The durable store: dedupe, edits, tombstones, engagement, identities, the change log,
cursors, migrations, errors, threads, and that a killed writer loses nothing it acknowledged."""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from firesift import store as store_module
from firesift.errors import StoreError
from firesift.post import Author, Delete, Event, Identity, Metrics, MetricsUpdate, Post
from firesift.store import FILENAME, Change, Store

T0 = datetime(2026, 7, 4, 12, 0, tzinfo=UTC)
ALICE = Author("100", "alice", "Alice A", True, 1200)
DID = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"


def mk(pid: str, text: str | None = None, *, at: int = 0, source: str = "x", **kw: Any) -> Post:
    """A post ``at`` seconds after T0."""
    kw.setdefault("author", ALICE)
    return Post(
        source, pid, text if text is not None else f"post {pid}", T0 + timedelta(seconds=at), **kw
    )


def ids(posts: list[Post]) -> list[str]:
    return [p.id for p in posts]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "data") as s:
        yield s


def test_roundtrip_keeps_every_field(store: Store) -> None:
    full = mk(
        "1",
        "Hello #world @bob https://example.com",
        at=1,
        url="https://x.com/alice/status/1",
        lang="en",
        reply_to="0",
        conversation_id="0",
        quote_of="q",
        repost_of=None,
        metrics=Metrics(3, 2, 1, 0, 99),
        hashtags=("world",),
        mentions=("bob",),
        urls=("https://example.com",),
        media_alt=("a cat", ""),
        edited_at=T0 + timedelta(seconds=5, milliseconds=250),
    )
    root = mk("0", "root", conversation_id="0", author=Author("7", "seven"))
    result = store.apply([full, root])
    assert (result.ingested, result.duplicates, result.updated) == (2, 0, 0)
    assert store.get("x", "1") == full
    assert store.get("x", "0") == root
    assert [c.post for c in result.changed] == [full, root]
    assert store.get("x", "nope") is None
    assert store.get("mastodon", "1") is None


def test_change_reports_what_a_read_returns(store: Store) -> None:
    odd = Post("x", "1", "t", T0 + timedelta(microseconds=1500), ALICE, conversation_id="1")
    [change] = store.apply([odd]).changed
    assert change.post == store.get("x", "1")
    assert change.post is not None and change.post.created_at == T0 + timedelta(milliseconds=1)


def test_same_post_twice_is_stored_once(store: Store) -> None:
    p = mk("1")
    first = store.apply([p, p])
    assert (first.ingested, first.duplicates) == (1, 1)
    again = store.apply([p])
    assert (again.ingested, again.duplicates, again.changed) == (0, 1, [])
    assert store.stats().posts == 1
    assert ids(list(store.iter_posts())) == ["1"]


def test_reingest_takes_the_incoming_metrics(store: Store) -> None:
    store.apply([mk("1", metrics=Metrics(likes=1))])
    result = store.apply([mk("1", metrics=Metrics(likes=5, views=40))])
    assert (result.updated, result.duplicates) == (1, 0)
    got = store.get("x", "1")
    assert got is not None and got.metrics == Metrics(likes=5, views=40)
    assert store.edits("x", "1") == []


def test_mastodon_edit_replaces_text_and_keeps_history(store: Store) -> None:
    v1 = mk("9", "first", source="mastodon")
    v2 = mk("9", "second", source="mastodon", edited_at=T0 + timedelta(minutes=5))
    v3 = mk("9", "third", source="mastodon", edited_at=T0 + timedelta(minutes=9))
    store.apply([v1])
    result = store.apply([v2])
    assert (result.updated, [c.post for c in result.changed]) == (1, [v2])
    store.apply([v3])
    late = store.apply([v2, v1])
    assert (late.duplicates, late.changed) == (2, [])
    assert store.get("mastodon", "9") == v3
    assert [(e.id, e.text, e.at) for e in store.edits("mastodon", "9")] == [
        ("9", "first", T0),
        ("9", "second", T0 + timedelta(minutes=5)),
    ]


def test_x_edit_aliases_earlier_ids_to_the_newest(store: Store) -> None:
    a = mk("10", "typo", at=0, metrics=Metrics(likes=2))
    b = mk("11", "fixed", at=60, edit_of=("10",))
    c = mk("12", "fixed again", at=120, edit_of=("10", "11"))
    store.apply([a])
    before = store.last_seq()
    result = store.apply([b])
    assert (result.ingested, result.deleted) == (1, 0)
    assert {ch.key: ch.post for ch in result.changed} == {("x", "10"): None, ("x", "11"): b}
    assert store.get("x", "10") == b
    store.apply([c])
    assert store.get("x", "10") == store.get("x", "11") == store.get("x", "12") == c
    assert ids(list(store.iter_posts())) == ["12"]
    assert [(e.id, e.text) for e in store.edits("x", "10")] == [("10", "typo"), ("11", "fixed")]
    late = store.apply([a, b])
    assert (late.duplicates, late.ingested, late.changed) == (2, 0, [])
    assert store.get("x", "11") == c
    assert store.get_many([("x", "10"), ("x", "12"), ("x", "404")]) == {
        ("x", "10"): c,
        ("x", "12"): c,
    }
    assert {ch.key: ch.post for ch in store.changes_since(before, 100)} == {
        ("x", "10"): None,
        ("x", "11"): None,
        ("x", "12"): c,
    }
    assert store.stats().posts == 1


def test_older_x_version_arriving_after_the_newer_is_not_resurrected(store: Store) -> None:
    a = mk("20", "v1", at=0)
    b = mk("21", "v2", at=30, edit_of=("20",))
    first = store.apply([b])
    assert [ch.key for ch in first.changed] == [("x", "21")]
    result = store.apply([a])
    assert (result.duplicates, result.ingested, result.changed) == (1, 0, [])
    assert store.get("x", "20") == b
    assert ids(list(store.iter_posts())) == ["21"]
    assert [e.text for e in store.edits("x", "21")] == ["v1"]


def test_x_edit_in_one_batch_with_its_original(store: Store) -> None:
    a = mk("30", "v1")
    b = mk("31", "v2", at=10, edit_of=("30",))
    result = store.apply([a, b])
    assert result.ingested == 2
    assert {ch.key: ch.post for ch in result.changed} == {("x", "30"): None, ("x", "31"): b}
    assert store.changes_since(0, 10) == result.changed
    assert ids(list(store.iter_posts())) == ["31"]


def test_delete_is_final_even_if_the_post_comes_again(store: Store) -> None:
    p = mk("1")
    store.apply([p])
    result = store.apply([Delete("x", "1", at=T0, reason="withheld")])
    assert result.deleted == 1
    assert result.changed == [Change(store.last_seq(), ("x", "1"), None)]
    again = store.apply([p, MetricsUpdate("x", "1", likes=3), Delete("x", "1")])
    assert (again.ingested, again.duplicates, again.changed) == (0, 3, [])
    assert store.get("x", "1") is None
    assert list(store.iter_posts()) == []
    assert store.thread("x", "1") == []
    stats = store.stats()
    assert (stats.posts, stats.tombstones) == (0, 1)


def test_delete_before_the_post_arrives(store: Store) -> None:
    result = store.apply([Delete("bluesky", "at://did/app.bsky.feed.post/1")])
    assert (result.deleted, result.changed) == (1, [])
    late = store.apply([mk("at://did/app.bsky.feed.post/1", source="bluesky")])
    assert (late.ingested, late.duplicates) == (0, 1)
    assert store.get("bluesky", "at://did/app.bsky.feed.post/1") is None


def test_deleting_any_version_deletes_every_version(store: Store) -> None:
    store.apply([mk("40", "v1"), mk("41", "v2", at=5, edit_of=("40",))])
    result = store.apply([Delete("x", "40")])
    assert {ch.key for ch in result.changed} == {("x", "40"), ("x", "41")}
    assert all(ch.post is None for ch in result.changed)
    assert store.get("x", "41") is None and store.get("x", "40") is None
    assert store.edits("x", "41") == []
    late = store.apply([mk("42", "v3", at=9, edit_of=("40", "41"))])
    assert late.ingested == 0 and store.get("x", "42") is None


def test_metrics_delta_adds_and_absolute_sets(store: Store) -> None:
    store.apply([mk("1", metrics=Metrics(likes=1, reposts=1))])
    r = store.apply([MetricsUpdate("x", "1", likes=1), MetricsUpdate("x", "1", likes=1, reposts=2)])
    assert r.updated == 2 and len(r.changed) == 1
    got = store.get("x", "1")
    assert got is not None and got.metrics == Metrics(likes=3, reposts=3)
    assert r.changed[0].post == got
    store.apply([MetricsUpdate("x", "1", likes=10, replies=4, delta=False)])
    got = store.get("x", "1")
    assert got is not None and got.metrics == Metrics(likes=10, replies=4)
    same = store.apply([MetricsUpdate("x", "1", likes=10, replies=4, delta=False)])
    assert (same.duplicates, same.changed) == (1, [])


def test_metrics_before_the_post_are_kept_and_applied(store: Store) -> None:
    early = store.apply(
        [
            MetricsUpdate("bluesky", "p1", likes=1),
            MetricsUpdate("bluesky", "p1", likes=1, reposts=1),
            MetricsUpdate("bluesky", "p2", likes=7, delta=False),
            MetricsUpdate("bluesky", "p2", likes=1),
        ]
    )
    assert (early.pending, early.changed) == (4, [])
    store.apply([mk("p1", source="bluesky", metrics=Metrics(likes=5))])
    store.apply([mk("p2", source="bluesky", metrics=Metrics(likes=100, quotes=1))])
    p1, p2 = store.get("bluesky", "p1"), store.get("bluesky", "p2")
    assert p1 is not None and p1.metrics == Metrics(likes=7, reposts=1)
    assert p2 is not None and p2.metrics == Metrics(likes=8)
    store.apply([mk("p1", source="bluesky", metrics=Metrics(likes=5))])
    p1 = store.get("bluesky", "p1")
    assert p1 is not None and p1.metrics == Metrics(likes=5), "pending counts are applied once"


def test_pending_metrics_expire(tmp_path: Path) -> None:
    with Store(tmp_path, pending_ttl_ms=1000) as store:
        store.apply([MetricsUpdate("bluesky", "gone", likes=1)])
        assert store.prune_pending(now_ms=time.time_ns() // 1_000_000 + 5000) == 1
        store.apply([mk("gone", source="bluesky")])
        got = store.get("bluesky", "gone")
        assert got is not None and got.metrics == Metrics()


def test_metrics_on_an_earlier_x_id_reach_the_current_version(store: Store) -> None:
    store.apply([mk("50", "v1"), mk("51", "v2", at=3, edit_of=("50",))])
    store.apply([MetricsUpdate("x", "50", likes=4)])
    got = store.get("x", "51")
    assert got is not None and got.metrics.likes == 4


def test_identity_gives_bluesky_posts_their_handle(store: Store) -> None:
    anon = Author(DID, DID)
    store.apply([mk("b1", source="bluesky", author=anon)])
    got = store.get("bluesky", "b1")
    assert got is not None and got.author.handle == DID
    result = store.apply([Identity("bluesky", DID, "alice.bsky.social", "Alice")])
    assert result.updated == 1
    store.apply([mk("b2", source="bluesky", author=anon, at=1)])
    posts = list(store.iter_posts(source="bluesky"))
    assert [p.author for p in posts] == [Author(DID, "alice.bsky.social", "Alice")] * 2
    again = store.apply([Identity("bluesky", DID, "alice.bsky.social")])
    assert (again.updated, again.duplicates) == (0, 1)


def test_identity_before_any_post(store: Store) -> None:
    store.apply([Identity("bluesky", DID, "early.bsky.social")])
    [change] = store.apply([mk("b1", source="bluesky", author=Author(DID, DID))]).changed
    assert change.post is not None and change.post.author.handle == "early.bsky.social"
    assert change.post == store.get("bluesky", "b1")


def test_cursor_is_saved_with_its_batch(store: Store) -> None:
    assert store.cursor("jetstream") is None
    store.apply([mk("1")], cursor=("jetstream", "1783175888085434"))
    assert store.cursor("jetstream") == "1783175888085434"
    bad: list[Any] = [mk("2"), "not an event"]
    with pytest.raises(TypeError):
        store.apply(bad, cursor=("jetstream", "1783175888099999"))
    assert store.cursor("jetstream") == "1783175888085434"
    assert store.get("x", "2") is None
    assert store.last_seq() == 1
    store.apply([], cursor=("jetstream", "1783175888100000"))
    store.set_cursor("mastodon", "110")
    assert (store.cursor("jetstream"), store.cursor("mastodon")) == ("1783175888100000", "110")


def _random_events(rng: random.Random, n: int) -> list[Event]:
    events: list[Event] = []
    for _ in range(n):
        pid = str(rng.randrange(60))
        roll = rng.random()
        if roll < 0.5:
            events.append(
                mk(pid, f"text {rng.randrange(3)}", at=int(pid), metrics=Metrics(rng.randrange(3)))
            )
        elif roll < 0.6:
            events.append(mk(pid + "e", "edited", at=int(pid) + 1, edit_of=(pid,)))
        elif roll < 0.7:
            events.append(Delete("x", pid))
        elif roll < 0.9:
            events.append(MetricsUpdate("x", pid, likes=1, delta=rng.random() < 0.7))
        else:
            events.append(Identity("x", "100", rng.choice(["alice", "alice2"])))
    return events


def _replay(state: dict[tuple[str, str], Post], changes: list[Change]) -> None:
    for ch in changes:
        if ch.post is None:
            state.pop(ch.key, None)
        else:
            state[ch.key] = ch.post


def test_change_log_lets_a_consumer_catch_up(store: Store) -> None:
    rng = random.Random(5)
    live: dict[tuple[str, str], Post] = {}
    crashed_at = 0
    for n in range(30):
        before = store.last_seq()
        result = store.apply(_random_events(rng, 40))
        seqs = [c.seq for c in result.changed]
        assert seqs == sorted(set(seqs)) and all(s > before for s in seqs)
        assert not result.changed or result.changed[-1].seq == store.last_seq()
        if n < 10:
            _replay(live, result.changed)
            crashed_at = store.last_seq()
    seen: list[Change] = []
    while batch := store.changes_since(seen[-1].seq if seen else crashed_at, 7):
        seen += batch
    assert [c.seq for c in seen] == sorted({c.seq for c in seen})
    assert len({c.key for c in seen}) == len(seen)
    _replay(live, seen)

    def visible(p: Post) -> Post:
        return dataclasses.replace(p, author=ALICE)

    stored = {(p.source, p.id): p for p in store.iter_posts()}
    assert {k: visible(p) for k, p in live.items()} == {k: visible(p) for k, p in stored.items()}
    rebuilt: dict[tuple[str, str], Post] = {}
    _replay(rebuilt, store.changes_since(0, 10_000))
    assert rebuilt == stored


def test_iter_posts_in_time_order_with_inclusive_bounds(store: Store) -> None:
    times = [5, 1, 3, 3, 3, 9, 0]
    store.apply(
        [mk(f"p{i}", at=t, source="x" if i % 2 else "bluesky") for i, t in enumerate(times)]
    )
    everything = list(store.iter_posts(batch=2))
    assert [p.created_at for p in everything] == sorted(p.created_at for p in everything)
    assert ids(everything) == ["p6", "p1", "p2", "p3", "p4", "p0", "p5"]
    ms = 1_000 * int(T0.timestamp())
    bounded = store.iter_posts(since_ms=ms + 1000, until_ms=ms + 5000, batch=1)
    assert ids(list(bounded)) == ["p1", "p2", "p3", "p4", "p0"]
    assert ids(list(store.iter_posts(source="x", until_ms=ms + 3000))) == ["p1", "p3"]
    assert list(store.iter_posts(since_ms=ms + 10_000)) == []


def _real_thread(real_data: Path, thread_id: str) -> list[Post]:
    posts = []
    with (real_data / "rumoureval2017" / "posts.jsonl").open("rb") as f:
        for line in f:
            r = orjson.loads(line)
            if r["thread_id"] != thread_id:
                continue
            posts.append(
                Post(
                    "x",
                    r["id"],
                    r["text"],
                    datetime.fromisoformat(r["created_at"].replace("Z", "+00:00")),
                    Author(
                        r["author_id"],
                        r["author_screen_name"],
                        r["author_name"],
                        r["author_verified"],
                        r["author_followers"],
                    ),
                    url=f"https://x.com/{r['author_screen_name']}/status/{r['id']}",
                    lang=r["lang"],
                    reply_to=r["in_reply_to_status_id"],
                    conversation_id=r["thread_id"],
                    metrics=Metrics(r["favorite_count"], r["retweet_count"]),
                    hashtags=tuple(r["hashtags"]),
                    urls=tuple(r["urls"]),
                )
            )
    return posts


def test_thread_and_replies_on_a_real_conversation(store: Store, real_data: Path) -> None:
    real = _real_thread(real_data, "553506608203169792")
    assert len(real) == 23
    shuffled = real[:]
    random.Random(1).shuffle(shuffled)
    assert store.apply(shuffled).ingested == 23
    by_time = sorted(real, key=lambda p: (p.created_at, p.id))
    thread = store.thread("x", "553506608203169792")
    assert [p.created_at for p in thread] == [p.created_at for p in by_time]
    assert set(thread) == set(real)
    root = thread[0]
    assert root.id == "553506608203169792" and root.conversation_id == root.id
    direct = [p for p in by_time if p.reply_to == root.id]
    assert store.replies_to("x", root.id) == direct
    cut = thread[5].created_at
    cut_ms = (cut - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    assert store.thread("x", root.id, until_ms=cut_ms) == [p for p in thread if p.created_at <= cut]
    assert store.thread("x", "unknown") == []


def test_thread_follows_edited_roots(store: Store) -> None:
    store.apply(
        [
            mk("1", "root", conversation_id="1"),
            mk("2", "reply", at=2, reply_to="1", conversation_id="1"),
        ]
    )
    store.apply([mk("3", "root, edited", at=1, conversation_id="1", edit_of=("1",))])
    assert ids(store.thread("x", "1")) == ["3", "2"]
    assert ids(store.replies_to("x", "3")) == ["2"]
    assert ids(store.replies_to("x", "1")) == ["2"]


def test_stats(store: Store) -> None:
    store.apply([mk("1", at=10), mk("2", at=20), mk("b", source="bluesky", at=5), Delete("x", "9")])
    store.apply([Delete("x", "2")])
    s = store.stats()
    assert (s.posts, s.tombstones, s.last_seq) == (2, 2, store.last_seq())
    assert s.sources["x"].posts == 1 and s.sources["bluesky"].posts == 1
    assert s.sources["x"].min_created_at == T0 + timedelta(seconds=10)
    assert (s.min_created_at, s.max_created_at) == (
        T0 + timedelta(seconds=5),
        T0 + timedelta(seconds=10),
    )
    assert s.file_bytes > 0
    d = s.to_dict()
    assert d["posts"] == 2 and orjson.loads(orjson.dumps(d)) == d


def test_reads_from_other_threads_see_committed_writes(store: Store) -> None:
    seen: list[Post | None] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                n = len(list(store.iter_posts()))
                assert n % 100 == 0, "a reader never sees half a batch"
            seen.append(store.get("x", "4.99"))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=reader)
    t.start()
    for b in range(5):
        store.apply([mk(f"{b}.{i}") for i in range(100)])
    stop.set()
    t.join()
    assert not errors
    assert seen == [mk("4.99")]


def test_migrations_fresh_and_older_databases_reach_the_latest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store(tmp_path) as store:
        store.apply([mk("1")])
        assert store.version == len(store_module.MIGRATIONS) == 1
    added: list[int] = []

    def m2(db: sqlite3.Connection) -> None:
        db.execute("ALTER TABLE posts ADD COLUMN extra TEXT")
        added.append(1)

    monkeypatch.setattr(store_module, "MIGRATIONS", [*store_module.MIGRATIONS, ("extra", m2)])
    with Store(tmp_path) as store:
        assert store.version == 2 and store.get("x", "1") == mk("1")
    with Store(tmp_path) as store:
        assert store.version == 2
    assert added == [1]
    db = sqlite3.connect(tmp_path / FILENAME)
    rows = db.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert rows == [(1, "initial schema"), (2, "extra")]
    assert "extra" in [r[1] for r in db.execute("PRAGMA table_info(posts)")]
    db.close()


def test_a_failing_migration_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Store(tmp_path).close()

    def broken(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE half (x)")
        db.execute("SELECT * FROM no_such_table")

    monkeypatch.setattr(store_module, "MIGRATIONS", [*store_module.MIGRATIONS, ("broken", broken)])
    with pytest.raises(StoreError, match="no such table"):
        Store(tmp_path)
    db = sqlite3.connect(tmp_path / FILENAME)
    assert db.execute("SELECT max(version) FROM schema_migrations").fetchone() == (1,)
    assert db.execute("SELECT count(*) FROM sqlite_schema WHERE name = 'half'").fetchone() == (0,)
    db.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    Store(tmp_path).close()
    db = sqlite3.connect(tmp_path / FILENAME)
    db.execute("INSERT INTO schema_migrations VALUES (99, 'future', 0)")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer than this firesift"):
        Store(tmp_path)


def test_store_error_on_a_path_that_cannot_be_a_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create the data directory"):
        Store(blocker / "data")
    (tmp_path / "dir" / FILENAME).mkdir(parents=True)
    with pytest.raises(StoreError, match=FILENAME):
        Store(tmp_path / "dir")


def test_store_error_on_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    (tmp_path / FILENAME).write_bytes(os.urandom(8192))
    with pytest.raises(StoreError, match=r"not a database.*move it aside"):
        Store(tmp_path)


def test_closed_store_says_so(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get("x", "1")
    with pytest.raises(StoreError, match="closed"):
        store.apply([mk("1")])


_WRITER = """
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from firesift.post import Author, Post
from firesift.store import Store

store = Store(Path(sys.argv[1]))
start = int(store.cursor("crash") or -1) + 1
t0 = datetime(2026, 1, 1, tzinfo=UTC)
author = Author("1", "writer")
for b in range(start, start + 100_000):
    batch = [
        Post("x", f"{b}-{j}", "some words " * 12, t0 + timedelta(seconds=b), author)
        for j in range(BATCH)
    ]
    store.apply(batch, cursor=("crash", str(b)))
    print(b, flush=True)
"""


@pytest.mark.slow
def test_sigkill_loses_nothing_acknowledged(tmp_path: Path) -> None:
    batch = 400
    code = _WRITER.replace("BATCH", str(batch))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    rng = random.Random(3)
    for _round in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, env=env
        )
        assert proc.stdout is not None
        acked = [int(proc.stdout.readline())]
        time.sleep(rng.uniform(0.2, 0.6))
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        acked += [int(line) for line in proc.stdout.read().split()]
        proc.stdout.close()
        with Store(tmp_path) as store:
            cursor = store.cursor("crash")
            assert cursor is not None and int(cursor) >= max(acked)
            stored = int(cursor) + 1
            assert store.stats().posts == stored * batch
            last = [store.get("x", f"{stored - 1}-{j}") for j in (0, batch - 1)]
            assert all(p is not None for p in last)
            assert store.get("x", f"{stored}-0") is None
            assert store.last_seq() == stored * batch
        db = sqlite3.connect(tmp_path / FILENAME)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        db.close()
