"""Crash trials: ``kill -9`` a real ingesting process at a random moment, restart it, and prove
that nothing acknowledged was lost, nothing is duplicated and the index agrees with the store.

Each trial runs the real command line in a subprocess (``python -m firesift.cli``) and kills it
with SIGKILL at a moment drawn uniformly over its run. What counts as *acknowledged* differs by
kind, and is read after the kill from where the acknowledgement lives:

- ``file``: ``firesift ingest`` of synthetic posts (:mod:`firesift.synthetic`, volume only) with
  edits and deletes mixed in. It has no cursor: a batch is acknowledged when its transaction
  commits, so what the store holds after the kill is what was acknowledged. The store must then
  equal the file's events applied up to some point (no torn batch: checked with an incremental
  hash of the expected state after every event), and re-running the ingest must end at the
  state of the whole file.
- ``jetstream``: ``firesift up`` on a local Jetstream v1 server (this module's
  :class:`JetstreamServer`: ``/subscribe``, ``time_us`` cursors, paced frames) replaying the
  real recorded events of ``data/fixtures/bluesky_jetstream``. Acknowledged: every event up to
  the one whose ``time_us`` is the cursor saved in the store. The restart must resume from that
  cursor (less the source's 3 s rewind).
- ``nats``: ``firesift up`` on a real ``nats-server`` (JetStream, durable pull consumer) to which
  the same recorded events are published while it runs. Acknowledged: every message up to the
  consumer's ack floor, as the server reports it; the restart must take the durable up to the
  last message with nothing pending.

After the restart the data directory is opened with :class:`~firesift.database.Database` (which
catches the index up) and compared: store rows against the expected final state (ids, texts,
deletes gone), every acknowledged post present once, and the index's documents (a match-all
search) against the store's rows, texts checked by searching words of each. Timings here are
for drawing kill moments, never asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from firesift.post import Delete, Event, Post, to_ms
from firesift.recorded import DATA
from firesift.synthetic import SyntheticStream

__all__ = [
    "KINDS",
    "Expected",
    "JetstreamServer",
    "TrialResult",
    "Verdict",
    "recorded_jetstream",
    "run_trial",
    "run_trials",
    "verify",
]

Log = Callable[[str], None]
Key = tuple[str, str]

_REWIND_US = 3_000_000
"""The jetstream source's default rewind on resume (``rewind=3``)."""
_FINISH_S = 60.0
"""How long a restarted live run may take to bring the store to the expected state."""


# -- the expected state ----------------------------------------------------------------------


@dataclass(slots=True)
class Expected:
    """What the store must hold after a sequence of events: visible texts and deleted keys,
    following the store's rules (a tombstone is final; a later version's text wins)."""

    texts: dict[Key, str] = field(default_factory=dict)
    gone: set[Key] = field(default_factory=set)
    digest: int = 0
    """XOR of a hash of every ``(key, text)`` in ``texts``: compared with the store's in O(1)."""

    def apply(self, event: Event) -> None:
        if isinstance(event, Post):
            key = (event.source, event.id)
            if key in self.gone:
                return
            old = self.texts.get(key)
            if old is not None:
                self.digest ^= _h(key, old)
            self.texts[key] = event.text
            self.digest ^= _h(key, event.text)
        elif isinstance(event, Delete):
            key = (event.source, event.id)
            old = self.texts.pop(key, None)
            if old is not None:
                self.digest ^= _h(key, old)
            self.gone.add(key)

    def copy(self) -> Expected:
        return Expected(dict(self.texts), set(self.gone), self.digest)


def _h(key: Key, text: str) -> int:
    raw = hashlib.blake2b(f"{key[0]}\0{key[1]}\0{text}".encode(), digest_size=8).digest()
    return int.from_bytes(raw, "big")


def _events_of(lines: Sequence[bytes], fmt: str = "auto") -> list[list[Event]]:
    """The events each line parses to, with firesift's own reader (what ingest sees)."""
    from firesift.formats.reader import Messages, Parsed

    parse = Messages(fmt).parse
    return [
        [e for r in parse(line, f"crash:{i}") if isinstance(r, Parsed) for e in r.events]
        for i, line in enumerate(lines)
    ]


def _snapshot(db_dir: Path) -> tuple[dict[Key, str], set[Key], dict[str, str]]:
    """Visible texts, tombstones and cursors of a stopped data directory, read-only (the index
    is not touched)."""
    from firesift.store import FILENAME

    file = db_dir / FILENAME
    if not file.exists():
        return {}, set(), {}
    db = sqlite3.connect(f"file:{file}?mode=ro", uri=True, timeout=10)
    try:
        texts = {(s, i): t for s, i, t in db.execute("SELECT source, id, text FROM posts")}
        gone = {(s, i) for s, i in db.execute("SELECT source, id FROM tombstones")}
        cursors = {str(n): str(v) for n, v in db.execute("SELECT name, value FROM cursors")}
    except sqlite3.OperationalError:  # killed before the schema was committed
        return {}, set(), {}
    finally:
        db.close()
    return texts, gone, cursors


# -- verification ----------------------------------------------------------------------------


@dataclass(slots=True)
class Verdict:
    """The comparison of a restarted data directory with what it must hold."""

    posts: int = 0
    lost: int = 0
    """Acknowledged posts (not deleted later) missing from the store."""
    duplicates: int = 0
    """Extra copies of a key, in the store or among the index's documents."""
    wrong_texts: int = 0
    resurrected: int = 0
    """Deleted keys visible again."""
    unexpected: int = 0
    """Store rows the events never produced."""
    index_mismatches: int = 0
    """Keys in the store but not the index or the other way round, and posts whose words do not
    find them in the index."""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicates
            or self.wrong_texts
            or self.resurrected
            or self.unexpected
            or self.index_mismatches
        )

    def note(self, what: str) -> None:
        if len(self.problems) < 10:
            self.problems.append(what)


def _words(text: str) -> list[str]:
    """Two plain words of ``text`` to find it by in the index (None of them: not checked)."""
    found = [w for w in text.split() if len(w) >= 4 and w.isascii() and w.isalpha()]
    return sorted(set(found), key=lambda w: (-len(w), w))[:2]


def verify(
    db_dir: Path,
    expected: Expected,
    acknowledged: set[Key],
    markers: Mapping[str, Key | None] | None = None,
) -> Verdict:
    """Open ``db_dir`` as the product does and compare it with ``expected`` (see the module
    docstring); ``acknowledged`` are the keys that were acknowledged before the kill. Each of
    ``markers`` (a word) must find exactly its post in the index, or nothing when None (a
    replaced text, a deleted post)."""
    from firesift.database import Database
    from firesift.query import parse

    v = Verdict()
    with Database(db_dir) as db:
        rows = Counter[Key]()
        texts: dict[Key, str] = {}
        created: dict[Key, int] = {}
        for p in db.store.iter_posts():
            rows[p.source, p.id] += 1
            texts[p.source, p.id] = p.text
            created[p.source, p.id] = to_ms(p.created_at)
        v.posts = len(texts)
        v.duplicates += sum(n - 1 for n in rows.values())
        for key in acknowledged:
            if key in expected.texts and key not in texts:
                v.lost += 1
                v.note(f"acknowledged {key[0]}:{key[1]} missing")
        for key, text in expected.texts.items():
            if key not in texts:
                if key not in acknowledged:
                    v.lost += 1
                    v.note(f"{key[0]}:{key[1]} never arrived")
            elif texts[key] != text:
                v.wrong_texts += 1
                v.note(f"{key[0]}:{key[1]} has text {texts[key]!r}, not {text!r}")
        for key in texts:
            if key in expected.gone:
                v.resurrected += 1
                v.note(f"deleted {key[0]}:{key[1]} is back")
            elif key not in expected.texts:
                v.unexpected += 1
                v.note(f"{key[0]}:{key[1]} is not in the events")
        everything = parse("since:1970-01-01")
        hits = db.index.search(everything, limit=2 * len(texts) + 100, sort="recent")
        indexed = Counter(h.key for h in hits)
        v.duplicates += sum(n - 1 for n in indexed.values())
        stored = {f"{s}:{i}" for s, i in texts}
        diff = stored ^ set(indexed)
        v.index_mismatches += len(diff)
        for key_text in sorted(diff)[:3]:
            v.note(f"{key_text} is in {'the store' if key_text in stored else 'the index'} only")
        if db.index.num_docs != len(texts):
            v.index_mismatches += 1
            v.note(f"the index counts {db.index.num_docs} documents, the store {len(texts)} posts")
        for (source, pid), text in texts.items():
            words = _words(text)
            if not words:
                continue
            at = created[source, pid]  # the words, at the post's own millisecond
            query = replace(parse(" ".join(words)), since_ms=at, until_ms=at + 1)
            found = db.index.search(query, limit=1000)
            if f"{source}:{pid}" not in {h.key for h in found}:
                v.index_mismatches += 1
                v.note(f"{source}:{pid} is not found by {' '.join(words)!r} in the index")
        for word, marked in (markers or {}).items():
            got = {h.key for h in db.index.search(parse(word), limit=10)}
            want = set() if marked is None else {f"{marked[0]}:{marked[1]}"}
            if got != want:
                v.index_mismatches += 1
                v.note(f"the index finds {sorted(got)} for {word!r}, not {sorted(want)}")
    return v


# -- processes ---------------------------------------------------------------------------------


def _env(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["FIRESIFT_CONFIG"] = str(work / "no-config.toml")  # never the user's config file
    env["FIRESIFT_BATCH_SIZE"] = "500"
    env.pop("FIRESIFT_DB", None)
    return env


def _spawn(args: Sequence[str], work: Path, name: str) -> subprocess.Popen[bytes]:
    log = (work / f"{name}.log").open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "firesift.cli", *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=_env(work),
            cwd=work,
        )
    finally:
        log.close()


def _kill9(proc: subprocess.Popen[bytes]) -> bool:
    """SIGKILL, as a crash; True if the process was still running (the kill landed)."""
    running = proc.poll() is None
    if running:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return running


def _stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM (``firesift up`` drains and saves cursors), SIGKILL if it does not end."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-1500:]
    except OSError:
        return ""


# -- trial results ---------------------------------------------------------------------------


@dataclass(slots=True)
class TrialResult:
    kind: str
    trial: int
    kill_after_s: float
    killed_running: bool
    """The kill landed while the process ran (not after it ended by itself)."""
    acknowledged: int
    """Posts acknowledged before the kill (and not deleted by what was acknowledged)."""
    verdict: Verdict
    consistent_at_kill: bool = True
    """The store right after the kill held every acknowledged post (file: an exact prefix)."""
    cursor_resumed: bool = True

    @property
    def ok(self) -> bool:
        return self.verdict.ok and self.consistent_at_kill and self.cursor_resumed

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out


# -- file --------------------------------------------------------------------------------------


def _file_lines(n: int, seed: int) -> list[bytes]:
    """``n`` synthetic posts, each with a marker word; every 7th edited (a later version with
    another text) and every 11th deleted (an X v1.1 delete notice), some time after it."""
    stream = SyntheticStream(seed=seed)
    rng = random.Random(seed)
    lines: list[bytes] = []
    later: list[tuple[int, bytes]] = []
    for i in range(n):
        post = stream.post()
        post["text"] = f"{post['text']} zqpost{i}"
        lines.append(orjson.dumps(post))
        if i % 7 == 3:
            edit = dict(post)
            edit["text"] = f"{str(post['text']).rsplit(' ', 1)[0]} zqedit{i}"
            created = datetime.fromisoformat(str(post["created_at"]))
            edit["edited_at"] = (created + timedelta(minutes=1)).isoformat()
            later.append((i + rng.randint(1, 400), orjson.dumps(edit)))
        if i % 11 == 5:
            notice = {"delete": {"status": {"id": int(str(post["id"])), "id_str": post["id"]}}}
            later.append((i + rng.randint(1, 400), orjson.dumps(notice)))
        while later and later[0][0] <= i:
            lines.append(later.pop(0)[1])
        later.sort(key=lambda t: t[0])
    lines += [line for _, line in later]
    return lines


def _prefixes(events: list[list[Event]]) -> tuple[dict[int, int], Expected]:
    """Digest of the expected state after each line -> the first line count with it; and the
    expected state after every line."""
    state = Expected()
    digests = {0: 0}
    for n, line_events in enumerate(events, start=1):
        for e in line_events:
            state.apply(e)
        digests.setdefault(state.digest, n)
    return digests, state


@dataclass(slots=True)
class _FileCase:
    path: Path
    events: list[list[Event]]
    digests: dict[int, int]
    final: Expected
    markers: dict[str, Key | None]
    run_s: float = 0.0


def _file_case(work: Path, posts: int, seed: int) -> _FileCase:
    lines = _file_lines(posts, seed)
    path = work / "posts.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    events = _events_of(lines)
    digests, state = _prefixes(events)
    final = {w: key for key, text in state.texts.items() for w in _markers(text)}
    markers: dict[str, Key | None] = {}
    for line in lines:
        for w in _markers(orjson.loads(line).get("text", "")):
            markers[w] = final.get(w)
    return _FileCase(path, events, digests, state, markers)


def _markers(text: str) -> list[str]:
    return [w for w in text.split() if w.startswith(("zqpost", "zqedit"))]


def _calibrate_file(case: _FileCase, work: Path) -> float:
    """Seconds from the store's appearance to the end of an uninterrupted ingest."""
    db = work / "calibrate"
    proc = _spawn(["ingest", str(case.path), "--db", str(db)], work, "calibrate")
    _wait(lambda: (db / "store.sqlite3").exists() or proc.poll() is not None, 120, "the store")
    t0 = time.monotonic()
    if proc.wait(600) != 0:
        raise RuntimeError(f"firesift ingest failed: {_tail(work / 'calibrate.log')}")
    shutil.rmtree(db, ignore_errors=True)
    return time.monotonic() - t0


def _file_trial(case: _FileCase, work: Path, trial: int, rng: random.Random) -> TrialResult:
    db = work / "db"
    args = ["ingest", str(case.path), "--db", str(db)]
    proc = _spawn(args, work, "run")
    _wait(lambda: (db / "store.sqlite3").exists() or proc.poll() is not None, 120, "the store")
    delay = rng.uniform(0, case.run_s * 1.05)
    time.sleep(delay)
    landed = _kill9(proc)
    texts, _, _ = _snapshot(db)
    digest = 0
    for key, text in texts.items():
        digest ^= _h(key, text)
    prefix = case.digests.get(digest)
    consistent = prefix is not None and _acked_state(case.events, prefix).texts == texts
    acked = set(texts)
    restart = _spawn([*args, "--json"], work, "restart")
    if restart.wait(600) != 0:
        raise RuntimeError(f"the restarted ingest failed: {_tail(work / 'restart.log')}")
    verdict = verify(db, case.final, acked, case.markers)
    if not consistent:
        verdict.note("the store after the kill is not the file applied up to any line")
    return TrialResult("file", trial, round(delay, 3), landed, len(acked), verdict, consistent)


# -- recorded Jetstream events, and a server for them ------------------------------------------


def recorded_jetstream(data: Path = DATA) -> list[bytes]:
    """The real recorded Jetstream v1 events, in wire order (the ten golden events, then the
    152-event window of July 2026)."""
    folder = data / "fixtures" / "bluesky_jetstream"
    out: list[bytes] = []
    for name in ("golden_v1.jsonl", "expected_v1.jsonl"):
        path = folder / name
        if not path.is_file():
            from firesift.errors import NotFound

            raise NotFound(f"no recorded Jetstream events at {path}: run from a source checkout")
        out += [line for line in path.read_bytes().splitlines() if line.strip()]
    return out


class JetstreamServer:
    """A Jetstream v1 ``/subscribe`` server on 127.0.0.1 in a thread of its own: each
    connection gets the log from its ``cursor`` (the first event with ``time_us`` at or after
    it, as the reference server does) and then waits; ``pace`` seconds between frames.
    ``cursors`` records each connection's cursor (None: none given)."""

    def __init__(self, lines: Sequence[bytes], *, pace: float = 0.0) -> None:
        self.lines = list(lines)
        self.times = [int(orjson.loads(line)["time_us"]) for line in self.lines]
        self.pace = pace
        self.port = 0
        self.cursors: list[int | None] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Future[None] | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/subscribe"

    def start(self) -> JetstreamServer:
        from websockets.asyncio.server import ServerConnection, serve
        from websockets.exceptions import ConnectionClosed

        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        async def handler(ws: ServerConnection) -> None:
            assert ws.request is not None
            query = parse_qs(urlsplit(ws.request.path).query)
            cursor = int(query["cursor"][0]) if "cursor" in query else None
            self.cursors.append(cursor)
            start = 0
            if cursor is not None:
                start = next((i for i, t in enumerate(self.times) if t >= cursor), len(self.times))
            with contextlib.suppress(ConnectionClosed):  # the client was killed
                for line in self.lines[start:]:
                    await ws.send(line.decode())
                    await asyncio.sleep(self.pace)
                await ws.wait_closed()

        async def main() -> None:
            self._stop = loop.create_future()
            async with serve(handler, "127.0.0.1", 0, max_size=None) as server:
                self.port = server.sockets[0].getsockname()[1]
                ready.set()
                await self._stop

        self._thread = threading.Thread(target=loop.run_until_complete, args=(main(),))
        self._thread.daemon = True
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the Jetstream server did not start")
        return self

    def close(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set_result, None)
        if self._thread is not None:
            self._thread.join(10)
        if self._loop is not None:
            self._loop.close()


def _cursor_name(uri: str) -> str:
    """The store's cursor name for the source ``firesift up --source uri`` runs."""
    from firesift.config import Settings
    from firesift.sources import build
    from firesift.sources.base import cursor_key

    return cursor_key(build(uri, Settings()).spec.key)


def _acked_state(events: list[list[Event]], upto: int) -> Expected:
    state = Expected()
    for line_events in events[:upto]:
        for e in line_events:
            state.apply(e)
    return state


def _holds(texts: dict[Key, str], gone: set[Key], acked: Expected) -> list[str]:
    """What the store right after a kill lacks of an acknowledged state."""
    missing = [f"{k[0]}:{k[1]} acknowledged but not stored" for k in acked.texts if k not in texts]
    missing += [f"{k[0]}:{k[1]} deleted but visible" for k in acked.gone if k in texts]
    missing += [f"{k[0]}:{k[1]} deletion not stored" for k in acked.gone if k not in gone]
    return missing


def _wait_store(db: Path, final: Expected, proc: subprocess.Popen[bytes]) -> None:
    """Until the running process's store holds ``final`` (or it ends, or time runs out)."""

    def level() -> bool:
        if proc.poll() is not None:
            return True
        try:
            texts, gone, _ = _snapshot(db)
        except sqlite3.Error:
            return False
        return texts == final.texts and final.gone <= gone

    with contextlib.suppress(RuntimeError):  # what is missing is counted by verify()
        _wait(level, _FINISH_S, "the restarted source to store every event")


def _jetstream_trial(
    lines: list[bytes], work: Path, trial: int, rng: random.Random, pace: float
) -> TrialResult:
    events = _events_of(lines, "jetstream")
    final = _acked_state(events, len(events))
    server = JetstreamServer(lines, pace=pace).start()
    db = work / "db"
    try:
        uri = f"jetstream:{server.url}"
        args = ["up", "--source", uri, "--db", str(db)]
        args += ["--status-every", "60"]
        proc = _spawn(args, work, "run")
        _wait(lambda: server.cursors or proc.poll() is not None, 120, "a connection")
        delay = rng.uniform(0, pace * len(lines) * 1.1)
        time.sleep(delay)
        landed = _kill9(proc)
        texts, gone, cursors = _snapshot(db)
        saved = cursors.get(_cursor_name(uri))
        upto = 0
        if saved is not None:  # the frame that set the cursor and every frame before it
            upto = server.times.index(int(saved)) + 1
        acked = _acked_state(events, upto)
        missing = _holds(texts, gone, acked)
        server.pace = 0.0
        before = len(server.cursors)
        proc = _spawn(args, work, "restart")
        _wait(lambda: len(server.cursors) > before or proc.poll() is not None, 120, "a reconnect")
        resumed_at = server.cursors[before] if len(server.cursors) > before else -1
        wanted = None if saved is None else int(saved) - _REWIND_US
        _wait_store(db, final, proc)
        _stop(proc)
    finally:
        server.close()
    verdict = verify(db, final, set(acked.texts))
    for m in missing[:5]:
        verdict.note(f"after the kill: {m}")
    if resumed_at != wanted:
        verdict.note(f"the restart asked for cursor {resumed_at}, not {wanted}")
    return TrialResult(
        "jetstream",
        trial,
        round(delay, 3),
        landed,
        len(acked.texts),
        verdict,
        not missing,
        resumed_at == wanted,
    )


# -- NATS JetStream ------------------------------------------------------------------------------


@contextmanager
def _nats_server(work: Path) -> Iterator[str]:
    from firesift.sources.bench import nats_server_binary

    port = _free_port()
    log = work / "nats-server.log"
    log.write_text("")
    args = [nats_server_binary(), "-js", "-a", "127.0.0.1", "-p", str(port)]
    args += ["-sd", str(work / "nats"), "-l", str(log)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(
            lambda: "Server is ready" in log.read_text(errors="replace") or proc.poll() is not None,
            30,
            "nats-server",
        )
        if proc.poll() is not None:
            raise RuntimeError(f"nats-server exited: {_tail(log)}")
        yield f"nats://127.0.0.1:{port}"
    finally:
        _stop(proc, 10)


class _Nats:
    """A client of the test's own on a loop in a thread: publish paced, read consumer state."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.nc: Any = self.call(self._connect())

    async def _connect(self) -> Any:
        import nats

        return await nats.connect(self.url)

    def call(self, coro: Any, timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def add_stream(self) -> None:
        self.call(self.nc.jetstream().add_stream(name="POSTS", subjects=["posts.>"]))

    def publish(self, lines: Sequence[bytes], pace: float) -> Any:
        """Start publishing ``lines`` one every ``pace`` seconds; the future ends with the last."""

        async def go() -> list[int]:
            js = self.nc.jetstream()
            seqs = []
            for line in lines:
                seqs.append((await js.publish("posts.bsky", line)).seq)
                await asyncio.sleep(pace)
            return seqs

        return asyncio.run_coroutine_threadsafe(go(), self.loop)

    def consumer(self, durable: str) -> Any:
        import nats.js.errors

        try:
            return self.call(self.nc.jetstream().consumer_info("POSTS", durable))
        except nats.js.errors.NotFoundError:
            return None

    def close(self) -> None:
        self.call(self.nc.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _nats_trial(
    lines: list[bytes], work: Path, trial: int, rng: random.Random, pace: float
) -> TrialResult:
    events = _events_of(lines)
    final = _acked_state(events, len(events))
    db = work / "db"
    durable = "crash"
    with _nats_server(work) as url:
        client = _Nats(url)
        try:
            client.add_stream()
            uri = f"nats:{url}?stream=POSTS&durable={durable}&ack_wait=1&wait=0.5"
            args = ["up", "--source", uri, "--db", str(db), "--status-every", "60"]
            proc = _spawn(args, work, "run")
            _wait(lambda: client.consumer(durable) or proc.poll() is not None, 120, "the durable")
            publishing = client.publish(lines, pace)
            delay = rng.uniform(0, pace * len(lines) * 1.1)
            time.sleep(delay)
            landed = _kill9(proc)
            floor = int(client.consumer(durable).ack_floor.stream_seq)
            texts, gone, _ = _snapshot(db)
            acked = _acked_state(events, floor)  # stream seq n is line n - 1
            missing = _holds(texts, gone, acked)
            seqs = publishing.result(120)
            proc = _spawn(args, work, "restart")

            def drained() -> bool:
                info = client.consumer(durable)
                return bool(
                    proc.poll() is not None
                    or (
                        info.ack_floor.stream_seq == seqs[-1]
                        and not info.num_pending
                        and not info.num_ack_pending
                    )
                )

            with contextlib.suppress(RuntimeError):  # counted below
                _wait(drained, _FINISH_S, "the durable to be acknowledged to the end")
            info = client.consumer(durable)
            _stop(proc)
            _, _, cursors = _snapshot(db)
        finally:
            client.close()
    verdict = verify(db, final, set(acked.texts))
    for m in missing[:5]:
        verdict.note(f"after the kill: {m}")
    stored_cursor = cursors.get(_cursor_name(uri))  # for status only: redeliveries move it
    resumed = info.ack_floor.stream_seq == seqs[-1] and not info.num_pending
    if not resumed:
        verdict.note(
            f"the durable ended at ack floor {info.ack_floor.stream_seq} of {seqs[-1]} "
            f"({info.num_pending} pending), stored cursor {stored_cursor}"
        )
    return TrialResult(
        "nats", trial, round(delay, 3), landed, len(acked.texts), verdict, not missing, resumed
    )


# -- running trials ------------------------------------------------------------------------------

KINDS = ("file", "jetstream", "nats")


def run_trial(
    kind: str,
    work: Path,
    trial: int,
    rng: random.Random,
    *,
    posts: int = 20_000,
    pace: float = 0.012,
    file_case: _FileCase | None = None,
) -> TrialResult:
    """One trial of ``kind`` in ``work`` (an empty directory)."""
    work.mkdir(parents=True, exist_ok=True)
    if kind == "file":
        case = file_case or _file_case(work, posts, seed=trial)
        if not case.run_s:
            case.run_s = _calibrate_file(case, work)
        return _file_trial(case, work, trial, rng)
    if kind == "jetstream":
        return _jetstream_trial(recorded_jetstream(), work, trial, rng, pace)
    if kind == "nats":
        return _nats_trial(recorded_jetstream(), work, trial, rng, pace)
    raise ValueError(f"unknown crash trial kind {kind!r}; known: {', '.join(KINDS)}")


def run_trials(
    work: Path,
    trials: int,
    log: Log,
    *,
    kinds: Sequence[str] = KINDS,
    posts: int = 20_000,
    pace: float = 0.012,
    seed: int | None = None,
    keep_failed: bool = True,
) -> dict[str, Any]:
    """``trials`` trials of each kind; per kind: trials, kills that landed while running,
    posts acknowledged, lost, duplicated, index mismatches, failed trials (with why)."""
    rng = random.Random(seed)
    out: dict[str, Any] = {}
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"unknown crash trial kind {kind!r}; known: {', '.join(KINDS)}")
        case = None
        if kind == "file":
            base = work / "file-case"
            base.mkdir(parents=True, exist_ok=True)
            case = _file_case(base, posts, seed=rng.randrange(1 << 30))
            case.run_s = _calibrate_file(case, base)
            log(f"crash file: {posts:,} posts with edits and deletes, {case.run_s:.2f} s to ingest")
        results: list[TrialResult] = []
        for n in range(trials):
            where = work / f"{kind}-{n}"
            result = run_trial(kind, where, n, rng, posts=posts, pace=pace, file_case=case)
            results.append(result)
            if result.ok or not keep_failed:
                shutil.rmtree(where, ignore_errors=True)
            v = result.verdict
            log(
                f"crash {kind} {n + 1}/{trials}: killed at {result.kill_after_s:.2f} s, "
                f"{result.acknowledged} acknowledged, lost {v.lost}, duplicates {v.duplicates}"
                + ("" if result.ok else f", FAILED: {'; '.join(v.problems[:3])}")
            )
        out[kind] = _summary(results)
    return out


def _summary(results: list[TrialResult]) -> dict[str, Any]:
    return {
        "trials": len(results),
        "kills_while_running": sum(r.killed_running for r in results),
        "acknowledged_posts": sum(r.acknowledged for r in results),
        "posts_after_restart": sum(r.verdict.posts for r in results),
        "lost": sum(r.verdict.lost for r in results),
        "duplicates": sum(r.verdict.duplicates for r in results),
        "wrong_texts": sum(r.verdict.wrong_texts for r in results),
        "resurrected": sum(r.verdict.resurrected for r in results),
        "index_mismatches": sum(r.verdict.index_mismatches for r in results),
        "consistent_at_kill": sum(r.consistent_at_kill for r in results),
        "cursor_resumed": sum(r.cursor_resumed for r in results),
        "failed": sum(not r.ok for r in results),
        "failures": [
            {"trial": r.trial, "kill_after_s": r.kill_after_s, "problems": r.verdict.problems}
            for r in results
            if not r.ok
        ][:5],
    }
