"""The live feed: new posts, trends and stats fanned out to Server-Sent-Event clients.

Design (why ingest never waits for a reader):

- The writer thread hands each committed batch to :meth:`LiveHub.publish`, which only appends
  to a queue. A hub thread does the rest off the writer's path: it decides which posts are new
  (a bounded memory of recently published keys: edits and engagement updates of a post already
  sent are not re-sent), serialises each post once (only when some client wants it) and offers
  the bytes to every client whose filter matches.
- Each client has a bounded queue (:data:`CLIENT_QUEUE` events). When a slow reader lets it
  fill, the oldest events are dropped and counted; the client's stream then carries an
  ``event: lag`` note with the count instead of slowing anyone down. A client is woken once per
  batch (``call_soon_threadsafe``), not once per post, so the event loop does O(batches) work.
- Every few seconds the hub also broadcasts ``event: trends`` (the trend report) and
  ``event: stats`` (store and ingest counters), computed once for all clients and only while
  someone is listening. Heartbeats are SSE comments, so proxies keep the connection open.

Filtering (``/api/live?q=``): the query is parsed with firesift's X-style parser and evaluated
in memory on each post by :mod:`firesift.matcher`, the same evaluator the answer engine uses.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from firesift.matcher import PostView, compile_matcher
from firesift.post import Post
from firesift.search import post_dict

__all__ = ["CLIENT_QUEUE", "LiveClient", "LiveHub", "compile_matcher", "sse"]

log = logging.getLogger("firesift.live")

CLIENT_QUEUE = 5000
"""Events a client may fall behind by before the oldest are dropped (one second at 5k posts/s)."""

_RECENT_KEYS = 200_000


def sse(event: str, data: Any) -> bytes:
    """One Server-Sent Event (``data`` serialised as JSON on one line)."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


# -- clients and the hub ------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class LiveClient:
    """One SSE subscriber: its filter, its bounded queue and its wake-up event."""

    match: Callable[[PostView], bool] | None
    loop: asyncio.AbstractEventLoop
    events: deque[bytes] = field(default_factory=lambda: deque(maxlen=CLIENT_QUEUE))
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: int = 0
    reported: int = 0
    sent: int = 0

    def offer(self, items: list[bytes]) -> None:
        """Called from the hub thread: queue ``items`` (dropping the oldest if full)."""
        room = CLIENT_QUEUE - len(self.events)
        if len(items) > room:
            self.dropped += len(items) - max(room, 0)
        self.events.extend(items)
        self.loop.call_soon_threadsafe(self.wake.set)

    def take(self) -> list[bytes]:
        out: list[bytes] = []
        while self.events:
            out.append(self.events.popleft())
        return out


class LiveHub:
    """Fan-out of committed posts and periodic reports to SSE clients (see module docstring).

    ``trends`` and ``stats`` are called on the hub thread and return the JSON bodies of the
    periodic events (or None to skip one)."""

    def __init__(
        self,
        *,
        trends: Callable[[], Any] | None = None,
        stats: Callable[[], Any] | None = None,
        trends_every_s: float = 5.0,
        stats_every_s: float = 2.0,
    ) -> None:
        self._trends = trends
        self._stats = stats
        self.trends_every_s = trends_every_s
        self.stats_every_s = stats_every_s
        self._queue: queue.SimpleQueue[list[Post] | None] = queue.SimpleQueue()
        self._clients: set[LiveClient] = set()
        self._lock = threading.Lock()
        self._recent: dict[str, None] = {}
        self._thread: threading.Thread | None = None
        self.published = 0
        self.dropped_total = 0

    # -- writer side ---------------------------------------------------------------------

    def publish(self, posts: list[Post]) -> None:
        """Hand over posts just committed to the store (cheap; called by the writer thread)."""
        if posts:
            self._queue.put(posts)

    # -- client side ---------------------------------------------------------------------

    @property
    def clients(self) -> int:
        return len(self._clients)

    def subscribe(self, q: str = "") -> LiveClient:
        """A new client for the running event loop; raises QueryError for a bad ``q``."""
        client = LiveClient(compile_matcher(q), asyncio.get_running_loop())
        with self._lock:
            self._clients.add(client)
        return client

    def unsubscribe(self, client: LiveClient) -> None:
        with self._lock:
            self._clients.discard(client)

    async def stream(
        self, client: LiveClient, *, first: list[bytes], heartbeat_s: float = 15.0
    ) -> AsyncIterator[bytes]:
        """The SSE byte stream of ``client``; unsubscribes when the reader goes away."""
        try:
            yield b"retry: 3000\n: connected\n\n" + b"".join(first)
            while True:
                try:
                    await asyncio.wait_for(client.wake.wait(), timeout=heartbeat_s)
                except TimeoutError:
                    yield b": heartbeat\n\n"
                    continue
                client.wake.clear()
                items = client.take()
                if client.dropped > client.reported:
                    lag = client.dropped - client.reported
                    client.reported = client.dropped
                    items.insert(0, sse("lag", {"dropped": lag, "total_dropped": client.dropped}))
                if items:
                    client.sent += len(items)
                    yield b"".join(items)
        finally:
            self.unsubscribe(client)

    # -- hub thread ----------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="firesift-live", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        now = time.monotonic()
        next_trends = now + self.trends_every_s
        next_stats = now + self.stats_every_s
        while True:
            timeout = max(0.0, min(next_trends, next_stats) - time.monotonic())
            try:
                batch = self._queue.get(timeout=timeout)
            except queue.Empty:
                batch = []
            if batch is None:
                return
            try:
                if batch:
                    self._fan_out(batch)
                now = time.monotonic()
                if now >= next_stats:
                    next_stats = now + self.stats_every_s
                    self._broadcast("stats", self._stats)
                if now >= next_trends:
                    next_trends = now + self.trends_every_s
                    self._broadcast("trends", self._trends)
            except Exception:
                log.exception("live feed: a batch could not be delivered")

    def _new(self, posts: list[Post]) -> list[Post]:
        recent = self._recent
        fresh = []
        for p in posts:
            key = p.key
            if key not in recent:
                recent[key] = None
                fresh.append(p)
        if len(recent) > _RECENT_KEYS:
            for key in list(itertools.islice(recent, _RECENT_KEYS // 10)):
                del recent[key]
        return fresh

    def _fan_out(self, posts: list[Post]) -> None:
        fresh = self._new(posts)
        self.published += len(fresh)
        with self._lock:
            clients = list(self._clients)
        if not clients or not fresh:
            return
        views = [PostView(p) for p in fresh]
        payloads: list[bytes | None] = [None] * len(views)
        for client in clients:
            out: list[bytes] = []
            for i, v in enumerate(views):
                if client.match is None or client.match(v):
                    data = payloads[i]
                    if data is None:
                        data = payloads[i] = sse("post", post_dict(v.post))
                    out.append(data)
            if out:
                before = client.dropped
                client.offer(out)
                self.dropped_total += client.dropped - before

    def _broadcast(self, event: str, source: Callable[[], Any] | None) -> None:
        if source is None:
            return
        with self._lock:
            clients = list(self._clients)
        if not clients:
            return
        body = source()
        if body is None:
            return
        data = sse(event, body)
        for client in clients:
            client.offer([data])

    def snapshot(self, event: str) -> bytes | None:
        """The current ``trends`` or ``stats`` event, for a client that just connected."""
        source = self._trends if event == "trends" else self._stats
        if source is None:
            return None
        body = source()
        return None if body is None else sse(event, body)
