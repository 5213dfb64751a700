"""Evaluating watches as posts are stored: a pipeline sink that follows the change log.

Cost on the ingest path (what ``firesift bench watches`` measures): with no watch the sink only
notes the batch's last seq. Otherwise each new post is tokenised **once** (its lowercased text,
hashtags and mentions, and the author's handle when a ``from:`` watch needs it) and its tokens
are looked up in an **anchor index**: for every watch, the set of tokens at least one of which
any matching post must contain (a word or phrase's first token; an ``AND``'s most selective
operand's anchors; the union of an ``OR``'s operands'). Only the watches a token points at
(and the few with no anchor at all, such as ``lang:fr -filter:replies``) run the full
:mod:`firesift.matcher` predicate, so the cost per post grows with the watches a post could
match, not with the number of watches.

Kinds (see :mod:`firesift.watches.model`):

- ``matches`` is decided on the ingest path, post by post in the batch's order: the matching
  posts not reported yet stay in a window of ``window_ms`` of stream time; an event fires at
  the post that brings them to ``min_posts`` posts from ``min_accounts`` accounts, carrying
  them, and the window starts afresh.
- ``story`` and ``verdict`` need work too slow for the writer (a trend report, a claim check
  with retrieval and a stance model), so the sink only schedules a **check**: a story check
  each time the stream enters a new minute (the tracker scores complete minutes), a verdict
  check every ``every`` posts matching the watch's query (not on a timer: a quiet claim costs
  nothing, and a replay checks at the same instants as the live stream did). Checks run on
  the checker thread (:meth:`Evaluator.run_checks`) once the search index and the trend state
  hold the changes up to the scheduling batch, ``as_of`` the instant they were scheduled at,
  so their result depends only on the posts, never on timing. A story watch fires once per
  trend story (not fading) whose top posts match the query; a verdict watch fires when the
  verdict differs from its previous check (the first check fires with ``previous: null``).

Durability: state changes, events and the position in the change log are written together
(:meth:`~firesift.watches.store.WatchStore.record`); the position alone is saved at most every
``save_every_s`` when nothing happened. After a crash, or if evaluating a batch failed,
:meth:`Evaluator.catch_up` replays the change log from the saved position. The change log
read back does not say which changes were first versions, so a post edited during that window
counts once more: events are at-least-once there, as delivery is. Like the index, the
evaluator assumes one writer: posts another process stores while a service runs (a concurrent
``firesift ingest`` into the same directory) take seqs below the service's position and are not
evaluated; stored while no service runs, they are (the start catches up).
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from firesift.matcher import PostView, compile_matcher
from firesift.post import Post, from_ms, to_ms
from firesift.query import And, Field, Node, Or, Phrase, Word, parse
from firesift.search import post_dict
from firesift.store import Change, Store
from firesift.watches.model import Watch, WatchEvent
from firesift.watches.store import NewEvent, WatchStore

if TYPE_CHECKING:
    from firesift.answer.model import Verdict
    from firesift.trends import TrendReport

__all__ = ["Evaluator", "TrendSource", "anchors"]

log = logging.getLogger("firesift.watches")

_TOKEN = re.compile(r"\w+")
_MINUTE = 60_000
_FOLD = bytes(
    c + 32 if 65 <= c <= 90 else c if c in b"_" or 48 <= c <= 57 or 97 <= c <= 122 else 32
    for c in range(256)
)
"""ASCII case folding, and every non-word byte (not a letter, digit or underscore) to a space."""
MAX_POSTS = 20
"""Posts an event carries at most (the first ones that triggered it)."""


class TrendSource(Protocol):
    def report(
        self, *, as_of_ms: int | None = None, window_ms: int = 3_600_000, limit: int = 20
    ) -> TrendReport: ...


Checker = Callable[[str, datetime], "Verdict"]
"""Checks a claim as of an instant (the service passes its answer engine's ``check``)."""


def anchors(node: Node | None) -> set[str] | None:
    """Tokens at least one of which every post matching ``node`` contains (lowercased ``\\w+``
    tokens of its text, hashtags, mentions and handle); None when no such set exists."""
    if node is None:
        return None
    if isinstance(node, Word | Phrase):
        tokens = _TOKEN.findall(node.text.lower())
        return {tokens[0]} if tokens else None
    if isinstance(node, Field):
        if node.kind in ("lang", "url") or not node.value.isascii():
            return None
        tokens = _TOKEN.findall(node.value.lower())
        return {tokens[0]} if tokens else None
    if isinstance(node, And):
        options = [a for a in (anchors(c) for c in node.children) if a]
        return min(options, key=len) if options else None
    if isinstance(node, Or):
        out: set[str] = set()
        for c in node.children:
            a = anchors(c)
            if a is None:
                return None
            out |= a
        return out
    return None


def _needs(node: Node | None) -> set[str]:
    """Tokens every post matching ``node`` contains: those of its positive words, phrases
    and ``#tag`` / ``@mention`` / ``from:`` values, at the top level of an ``AND``."""
    if isinstance(node, Word | Phrase):
        return set(_TOKEN.findall(node.text.lower()))
    if isinstance(node, Field):
        if node.kind in ("lang", "url") or not node.value.isascii():
            return set()
        return set(_TOKEN.findall(node.value.lower()))
    if isinstance(node, And):
        return set().union(*(_needs(c) for c in node.children))
    return set()


def _plain(node: Node | None) -> bool:
    """A single-token ASCII word, or one AND / one OR of them (see ``_Live.exact``)."""

    def word(n: Node) -> bool:
        return isinstance(n, Word) and n.text.isascii() and len(_TOKEN.findall(n.text)) == 1

    if isinstance(node, And | Or):
        return all(word(c) for c in node.children)
    return node is not None and word(node)


def _has_field(node: Node | None, kinds: tuple[str, ...]) -> bool:
    """Whether ``node`` has a field operator of ``kinds`` (outside negations: a negated one
    anchors nothing)."""
    if isinstance(node, Field):
        return node.kind in kinds
    if isinstance(node, And | Or):
        return any(_has_field(c, kinds) for c in node.children)
    return False


@dataclass(slots=True, eq=False)
class _Live:
    """A watch at run time: its predicate and its evaluation state (saved as JSON)."""

    watch: Watch
    match: Callable[[PostView], bool]
    state: dict[str, Any]
    posts: dict[str, Post] = field(default_factory=dict)
    needs: frozenset[bytes] = frozenset()
    """ASCII tokens every matching post contains (a prefilter; may be empty)."""
    exact: frozenset[bytes] | None = None
    """When the query is single-token words under one AND or one OR, without time bounds:
    its words. A post whose text has all of them (``exact_all``) or any (OR) matches, no
    matcher call needed."""
    exact_all: bool = True


@dataclass(frozen=True, slots=True)
class _Check:
    kind: str
    watch: str
    as_of_ms: int
    seq: int


class Evaluator:
    """Evaluates the watches of ``watches`` on the changes of ``store`` (a pipeline sink).

    ``trends`` answers story checks, ``check`` verdict checks (either may be None: those
    watches are then not checked); ``wait_for(seq)`` returns once the index and trend state
    hold every change up to ``seq`` (checks read them); ``on_events`` is told of new events
    (the delivery thread and SSE clients wake on it)."""

    def __init__(
        self,
        watches: WatchStore,
        store: Store,
        *,
        trends: TrendSource | None = None,
        check: Checker | None = None,
        wait_for: Callable[[int], None] | None = None,
        on_events: Callable[[list[WatchEvent]], None] | None = None,
        save_every_s: float = 5.0,
        poll_s: float = 1.0,
    ) -> None:
        self.watches = watches
        self.store = store
        self.trends = trends
        self.check = check
        self.wait_for = wait_for
        self.on_events = on_events
        self.save_every_s = save_every_s
        self.poll_s = poll_s
        self._polled = time.monotonic()
        self._local = watches.local_version
        self._lock = threading.RLock()
        self._checks: queue.SimpleQueue[_Check | None] = queue.SimpleQueue()
        self._stale = False
        self._saved_at = time.monotonic()
        self._watermark = -1
        self.position = watches.position()
        if self.position < 0:
            # The first evaluator starts at the oldest watch's creation (watches added from the
            # CLI before any service ran), else at the present: watches look forward only.
            since = [w.since_seq for w, _ in watches.load()[1]]
            self.position = min(since) if since else store.last_seq()
            watches.record([], {}, self.position)
        self._load()

    # -- watches -------------------------------------------------------------------------

    def _load(self) -> None:
        """(Re)load the watches and their state; rebuild the anchor index."""
        version, rows = self.watches.load()
        old = getattr(self, "_live", {})
        live: dict[str, _Live] = {}
        for watch, state in rows:
            match = compile_matcher(watch.query)
            if match is None:
                continue
            prev = old.get(watch.id)
            live[watch.id] = prev if prev is not None else _Live(watch, match, state)
        self._version = version
        self._live = live
        index: dict[str, list[_Live]] = {}
        always: list[_Live] = []
        self._handles = False
        self._fields = False
        for lw in live.values():
            if lw.watch.kind == "story":
                continue
            parsed = parse(lw.watch.query)
            expr = parsed.expr
            lw.needs = frozenset(t.encode() for t in _needs(expr) if t.isascii())
            if parsed.since_ms is None and parsed.until_ms is None and _plain(expr):
                words = expr.children if isinstance(expr, And | Or) else (expr,)
                lw.exact = frozenset(w.text.lower().encode() for w in words)  # type: ignore[union-attr]
                lw.exact_all = not isinstance(expr, Or)
            self._handles |= _has_field(expr, ("from",))
            self._fields |= _has_field(expr, ("hashtag", "mention"))
            found = anchors(expr)
            if found is None:
                always.append(lw)
            else:
                for token in found:
                    index.setdefault(token, []).append(lw)
        self._index = index
        self._bindex = {t.encode(): ws for t, ws in index.items() if t.isascii()}
        self._bkeys = frozenset(self._bindex)
        self._always = always
        self._stories = [lw for lw in live.values() if lw.watch.kind == "story"]
        if not old:
            for lw in live.values():
                self._requeue(lw)

    def _requeue(self, lw: _Live) -> None:
        """Checks scheduled before a restart and not run yet are scheduled again."""
        due = lw.state.get("due")
        if due:
            self._checks.put(_Check(lw.watch.kind, lw.watch.id, int(due[0]), int(due[1])))

    @property
    def count(self) -> int:
        return len(self._live)

    # -- the sink ------------------------------------------------------------------------

    def apply_changes(self, changes: Sequence[Change]) -> None:
        """A pipeline sink: evaluate a batch just stored. Never raises into ingest: on an
        error the batch is logged and evaluated again from the change log next time."""
        if not changes:
            return
        try:
            with self._lock:
                if self._stale:
                    self._catch_up()
                else:
                    self._apply(changes, fresh_only=True)
        except Exception:
            log.exception("watches: evaluating a batch failed; it is replayed on the next one")
            self._stale = True

    def catch_up(self) -> int:
        """Evaluate the changes stored after the saved position (on start, after an error)."""
        with self._lock:
            return self._catch_up()

    def _catch_up(self) -> int:
        self._live = {}
        self._load()
        done = 0
        while True:
            changes = self.store.changes_since(self.position, 5000)
            if not changes:
                break
            self._apply(changes, fresh_only=False, save=True)
            done += len(changes)
        self._stale = False
        return done

    def _apply(self, changes: Sequence[Change], *, fresh_only: bool, save: bool = False) -> None:
        seq = changes[-1].seq
        now = time.monotonic()
        if self.watches.local_version != self._local or now - self._polled >= self.poll_s:
            # Changes made through this WatchStore are seen at once; another process's (the
            # CLI's) within poll_s: the version query is not paid on every small batch.
            self._polled = now
            self._local = self.watches.local_version
            if self.watches.version() != self._version:
                self._load()
        if not self._live:
            self._advance(seq, save)
            return
        events: list[NewEvent] = []
        dirty: set[str] = set()
        index = self._index
        bindex = self._bindex
        bkeys = self._bkeys
        always = self._always
        handles = self._handles
        fields = self._fields
        stories = self._stories
        minute = self._watermark
        fold = _FOLD
        for c in changes:
            p = c.post
            if p is None or (fresh_only and not c.new):
                continue
            if stories:
                m = to_ms(p.created_at) // _MINUTE
                if m > minute:
                    minute = m
            text = p.text
            extra = ""
            if fields and (p.hashtags or p.mentions):
                extra = f" {' '.join(p.hashtags)} {' '.join(p.mentions)}"
            if handles:
                extra = f"{extra} {p.author.handle}"
            found: list[_Live]
            sure: set[_Live] | None = None
            if text.isascii() and extra.isascii():
                # The fast path (most posts): one C pass folds case and turns every non-word
                # byte into a space, so split() gives exactly the \w+ tokens, lowercased.
                ttoks = text.encode().translate(fold).split()
                btoks = ttoks + extra.encode().translate(fold).split() if extra else ttoks
                if bkeys.isdisjoint(btoks):
                    if not always:
                        continue
                    found = always
                else:
                    # A watch whose query needs several tokens is dropped here, in C, when
                    # one is missing: most anchored candidates never reach the matcher.
                    tokset = set(btoks)
                    found = [
                        *always,
                        *(lw for t in tokset & bkeys for lw in bindex[t] if lw.needs <= tokset),
                    ]
                    # Plain words only: the text's tokens decide, no matcher call.
                    if extra:
                        tokset = set(ttoks)
                    sure = {
                        lw
                        for lw in found
                        if lw.exact is not None
                        and (
                            lw.exact <= tokset if lw.exact_all else not lw.exact.isdisjoint(tokset)
                        )
                    }
            else:
                text = text + extra
                found = [
                    *always,
                    *(lw for t in _TOKEN.findall(text.lower()) if t in index for lw in index[t]),
                ]
            if len(found) > 1:
                found = list(dict.fromkeys(found))
            if not found:
                continue
            view = PostView(p)
            for lw in found:
                if c.seq > lw.watch.since_seq and (
                    lw in sure if sure is not None and lw.exact is not None else lw.match(view)
                ):
                    self._matched(lw, p, seq, events)
                    dirty.add(lw.watch.id)
        if stories and minute > self._watermark:
            if self._watermark >= 0:
                as_of = minute * _MINUTE - 1
                for lw in stories:
                    lw.state["due"] = [as_of, seq]
                    dirty.add(lw.watch.id)
                    self._checks.put(_Check("story", lw.watch.id, as_of, seq))
            self._watermark = minute
        if events or dirty:
            self._record(events, {w: self._live[w].state for w in dirty if w in self._live}, seq)
        else:
            self._advance(seq, save)

    def _advance(self, seq: int, save: bool) -> None:
        self.position = seq
        if save or time.monotonic() - self._saved_at >= self.save_every_s:
            self.watches.record([], {}, seq)
            self._saved_at = time.monotonic()

    def _record(
        self, events: list[NewEvent], states: dict[str, dict[str, Any]], seq: int | None
    ) -> None:
        saved = self.watches.record(events, states, seq)
        if seq is not None:
            self.position = seq
            self._saved_at = time.monotonic()
        if saved and self.on_events is not None:
            self.on_events(saved)

    def _matched(self, lw: _Live, post: Post, seq: int, events: list[NewEvent]) -> None:
        w, st = lw.watch, lw.state
        ms = to_ms(post.created_at)
        if w.kind == "matches":
            pending: list[list[Any]] = st.setdefault("pending", [])
            pending.append([ms, f"{post.source}:{post.author.id}", post.key])
            lw.posts[post.key] = post
            cut = ms - w.window_ms
            if any(e[0] <= cut for e in pending):  # posts may arrive out of time order
                pending[:] = [e for e in pending if e[0] > cut]
                lw.posts = {e[2]: lw.posts[e[2]] for e in pending if e[2] in lw.posts}
            accounts = {e[1] for e in pending}
            if len(pending) >= w.min_posts and len(accounts) >= w.min_accounts:
                posts = self._posts(lw, [e[2] for e in pending])
                detail = {"matches": len(pending), "accounts": len(accounts)}
                events.append(NewEvent(w, ms, posts, detail))
                pending.clear()
                lw.posts.clear()
        elif w.kind == "verdict":
            recent: list[list[Any]] = st.setdefault("posts", [])
            recent.append([ms, post.key])
            lw.posts[post.key] = post
            if len(recent) > 4 * MAX_POSTS:
                # Bounded: the latest MAX_POSTS up to a pending check's instant (its event
                # carries them) and the latest 2 x MAX_POSTS after it.
                due = st.get("due")
                cut = due[0] if due else -1
                keep = [e for e in recent if e[0] <= cut][-MAX_POSTS:]
                keep += [e for e in recent if e[0] > cut][-2 * MAX_POSTS :]
                kept = {e[1] for e in keep}
                for _, key in recent:
                    if key not in kept:
                        lw.posts.pop(key, None)
                recent[:] = keep
            st["count"] = st.get("count", 0) + 1
            if st["count"] >= w.every and not st.get("due"):
                st["count"] = 0
                st["due"] = [ms, seq]
                self._checks.put(_Check("verdict", w.id, ms, seq))

    def _posts(self, lw: _Live, keys: Iterable[str]) -> tuple[dict[str, Any], ...]:
        """The API shape of the posts ``keys`` (kept in memory, else read from the store)."""
        keys = list(keys)[:MAX_POSTS]
        missing = [k for k in keys if k not in lw.posts]
        found = dict(lw.posts)
        if missing:
            split = [tuple(k.split(":", 1)) for k in missing]
            for (s, i), p in self.store.get_many([(a, b) for a, b in split]).items():
                found[f"{s}:{i}"] = p
        return tuple(post_dict(found[k]) for k in keys if k in found)

    # -- checks (story, verdict) ---------------------------------------------------------

    def run_checks(self, *, block: bool = False, timeout: float | None = None) -> int:
        """Run the scheduled checks (all that are queued; with ``block``, wait for one
        first). Returns how many ran; a None in the queue (:meth:`stop_checks`) ends it."""
        ran = 0
        while True:
            try:
                job = self._checks.get(block=block and ran == 0, timeout=timeout)
            except queue.Empty:
                return ran
            if job is None:
                return ran
            try:
                self._run_check(job)
            except Exception:
                log.exception("watches: the %s check of %s failed", job.kind, job.watch)
            ran += 1

    def stop_checks(self) -> None:
        self._checks.put(None)

    def _run_check(self, job: _Check) -> None:
        with self._lock:
            lw = self._live.get(job.watch)
        if lw is None or (job.kind == "verdict" and lw.state.get("due") != [job.as_of_ms, job.seq]):
            return
        if self.wait_for is not None:
            self.wait_for(job.seq)
        new: list[NewEvent] = []
        if job.kind == "story":
            if self.trends is not None:
                new = self._story_events(lw, job)
        elif self.check is not None and lw.watch.claim:
            new = self._verdict_events(lw, job)
        with self._lock:
            if lw.state.get("due") == [job.as_of_ms, job.seq]:
                lw.state["due"] = None
            self._record(new, {lw.watch.id: lw.state}, None)

    def _story_events(self, lw: _Live, job: _Check) -> list[NewEvent]:
        assert self.trends is not None
        report = self.trends.report(as_of_ms=job.as_of_ms, limit=50)
        seen: list[str] = lw.state.setdefault("stories", [])
        out = []
        for story in report.stories:
            if story.id in seen or story.status == "fading":
                continue
            keys = [tuple(k.split(":", 1)) for k in story.top_posts]
            posts = self.store.get_many([(a, b) for a, b in keys])
            hits = [p for p in posts.values() if lw.match(PostView(p))]
            if not hits:
                continue
            seen.append(story.id)
            del seen[:-500]
            detail = {"story": story.to_json()}
            out.append(NewEvent(lw.watch, job.as_of_ms, tuple(map(post_dict, hits)), detail))
        return out

    def _verdict_events(self, lw: _Live, job: _Check) -> list[NewEvent]:
        assert self.check is not None and lw.watch.claim
        verdict = self.check(lw.watch.claim, from_ms(job.as_of_ms))
        previous = lw.state.get("verdict")
        lw.state["verdict"] = verdict.verdict
        if verdict.verdict == previous:
            return []
        with self._lock:
            # The posts that triggered it: those matched up to the check's instant (the
            # latest MAX_POSTS); later ones wait for the next check.
            recent = lw.state.get("posts", [])
            before = [k for ms, k in recent if ms <= job.as_of_ms]
            posts = self._posts(lw, before[-MAX_POSTS:])
            lw.state["posts"] = [e for e in recent if e[0] > job.as_of_ms]
            for key in before:
                lw.posts.pop(key, None)
        detail = {
            "claim": lw.watch.claim,
            "verdict": verdict.verdict,
            "previous": previous,
            "summary": verdict.summary,
            "evidence": [
                {"post": e.post.key, "role": e.role} for e in verdict.evidence[:MAX_POSTS]
            ],
        }
        return [NewEvent(lw.watch, job.as_of_ms, posts, detail)]
