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

Filtering (``/api/live?q=``): the query is parsed with firesift's X-style parser
(:mod:`firesift.query`) and evaluated in memory on each post: words and ``"phrases"`` match
case-insensitively on word tokens of the text (no stemming, unlike the index), ``#tag``,
``@mention``, ``from:``, ``to:`` (the first replied-to handle), ``lang:``, ``url:`` (link
domain, subdomains included), ``filter:links|media|replies|retweets``, ``min_faves:`` etc.,
``-``, ``OR``, parentheses and ``since:``/``until:`` behave as in search.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from firesift.post import Post, to_ms
from firesift.query import And, Field, Flag, MinCount, Node, Not, Phrase, Word, parse
from firesift.search import post_dict
from firesift.textnorm import handle_key, lang_keys, leading_mentions, tag_key, url_domains

__all__ = ["CLIENT_QUEUE", "LiveClient", "LiveHub", "Matcher", "compile_matcher", "sse"]

log = logging.getLogger("firesift.live")

CLIENT_QUEUE = 5000
"""Events a client may fall behind by before the oldest are dropped (one second at 5k posts/s)."""

_RECENT_KEYS = 200_000
_TOKEN = re.compile(r"\w+")

Matcher = Callable[[Post], bool]


def sse(event: str, data: Any) -> bytes:
    """One Server-Sent Event (``data`` serialised as JSON on one line)."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


# -- in-memory query matching -------------------------------------------------------------


@dataclass(slots=True)
class _View:
    """What matching needs from a post, computed once per post however many clients there are."""

    post: Post
    _tokens: list[str] | None = None
    _tokset: frozenset[str] | None = None

    @property
    def tokens(self) -> list[str]:
        if self._tokens is None:
            self._tokens = _TOKEN.findall(self.post.text.lower())
        return self._tokens

    @property
    def tokset(self) -> frozenset[str]:
        if self._tokset is None:
            self._tokset = frozenset(self.tokens)
        return self._tokset


def _has_seq(tokens: list[str], seq: list[str]) -> bool:
    n = len(seq)
    if n == 0:
        return True
    first = seq[0]
    return any(tokens[i] == first and tokens[i : i + n] == seq for i in range(len(tokens) - n + 1))


def _field(node: Field, v: _View) -> bool:
    p = v.post
    if node.kind == "hashtag":
        want = tag_key(node.value)
        return any(tag_key(t) == want for t in p.hashtags) or ("#" + want) in p.text.lower()
    if node.kind == "mention":
        want = handle_key(node.value)
        return any(handle_key(h) == want for h in p.mentions)
    if node.kind == "from":
        return handle_key(p.author.handle) == handle_key(node.value)
    if node.kind == "to":
        lead = leading_mentions(p.text) if p.reply_to else []
        return bool(lead) and handle_key(lead[0]) == handle_key(node.value)
    if node.kind == "lang":
        return node.value.lower() in lang_keys(p.lang)
    want = node.value.lower()
    return any(want in url_domains(u) for u in p.urls)


def _flag(node: Flag, p: Post) -> bool:
    if node.kind == "links":
        return bool(p.urls)
    if node.kind == "media":
        return bool(p.media_alt)
    if node.kind == "replies":
        return p.reply_to is not None
    return p.repost_of is not None


def _eval(node: Node, v: _View) -> bool:
    if isinstance(node, Word):
        words = _TOKEN.findall(node.text.lower())
        if len(words) == 1:
            return words[0] in v.tokset
        return _has_seq(v.tokens, words)
    if isinstance(node, Phrase):
        return _has_seq(v.tokens, _TOKEN.findall(node.text.lower()))
    if isinstance(node, Field):
        return _field(node, v)
    if isinstance(node, Flag):
        return _flag(node, v.post)
    if isinstance(node, MinCount):
        m = v.post.metrics
        return int(getattr(m, node.metric) or 0) >= node.n
    if isinstance(node, Not):
        return not _eval(node.child, v)
    if isinstance(node, And):
        return all(_eval(c, v) for c in node.children)
    return any(_eval(c, v) for c in node.children)


def compile_matcher(q: str) -> Callable[[_View], bool] | None:
    """A predicate for ``q`` (None: everything matches). Raises
    :class:`~firesift.errors.QueryError` for a malformed query."""
    if not q.strip():
        return None
    query = parse(q)
    expr, since, until = query.expr, query.since_ms, query.until_ms

    def match(v: _View) -> bool:
        if since is not None or until is not None:
            ms = to_ms(v.post.created_at)
            if (since is not None and ms < since) or (until is not None and ms >= until):
                return False
        return expr is None or _eval(expr, v)

    return match


# -- clients and the hub ------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class LiveClient:
    """One SSE subscriber: its filter, its bounded queue and its wake-up event."""

    match: Callable[[_View], bool] | None
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
        views = [_View(p) for p in fresh]
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
