"""The trend tracker: incremental burst detection over a stream of posts.

Burst model (why Poisson + EWMA). For every term the tracker keeps, per minute, the number of
*distinct accounts* that used it (``d``), and an exponentially weighted moving average of ``d``
over the term's past (half-life ``half_life_ms``, 6 h by default, bias-corrected for the time
the tracker has run). A term bursts at minute ``M`` when ``x``, the sum of ``d`` over the last
``detect_window_ms`` (10 min), is improbably high for a Poisson count with mean
``mu = window * max(ewma, prior)``: the score is the signed root of the Poisson likelihood
ratio ``sqrt(2 (x ln(x/mu) - x + mu))`` (about a z-score, but honest for the small counts of a
new term, where a Gaussian z is not), and a term trends when the score is at least
``min_score``, ``x >= min_ratio * mu`` and at least ``min_authors`` distinct accounts carry it
in the window. The ``prior`` is a share of the stream's own EWMA rate, so a never-seen term is
not infinitely surprising and a busy stream needs more evidence than a quiet one. This model
needs O(1) state per term, updates lazily in O(1) per term-minute and answers at any minute;
a Kleinberg automaton gives similar bursts but needs a per-term state path and a lag, and a
Gaussian EWMA z-score misbehaves on sparse counts. Counting per-minute distinct accounts
rather than posts makes one account posting 200 times worth at most one per minute, and the
author gate makes it worth nothing.

Counting rules: a post counts once per identity (``source:id``, and any id in ``edit_of``); a
repost (``repost_of``, or text starting ``RT @x:``) counts toward its original at most once per
reposting account; other posts with identical normalised text count once (within
``dedupe_ms``). Terms are extracted by :mod:`firesift.trends.terms`.

Time and ``as_of``. Time is bucketed by minute of ``created_at``. The *watermark* is the
newest ``created_at`` seen. When it enters a new minute ``M``, the tracker "ticks": it scores
the window of complete minutes before ``M``, groups bursting terms into stories
(:mod:`firesift.trends.stories`) and keeps an immutable snapshot of the result. A report at
``as_of`` uses the snapshot of the last complete minute before ``as_of`` (never a post created
after it), with per-minute series read from the retained counts. Everything a tick reads is a
function of the posts observed, so feeding posts live and reporting at ``t`` equals replaying
only the posts created at or before ``t`` into a fresh tracker (tested). If ``as_of`` is later
than the newest post's minute, the report describes the last tick (call :meth:`advance` from a
clock or heartbeat to close quiet minutes).

Quiet gaps. Ticking costs O(1) per minute only while something is in the window. Once the
stream is *quiet* (no counts in or entering the window, no story alive: at most
``detect_window + story_ttl`` minutes after the last post), the remaining minutes up to the
next post are skipped in O(state) (:meth:`_skip_to`): baselines decay lazily anyway (the
stream's rate included: it is folded only at minutes with posts), the prunes of the skipped
minutes amount to the last one, and their snapshots, all empty, are represented by one (a
report reads the latest snapshot at or before its minute, and pruning keeps the one in force at
its cut). Reports at any instant, inside the gap or after it, equal those of ticking each
minute (tested). ``stats["ticks"]`` counts the minutes ticked and ``stats["skipped"]`` those
skipped: a post eleven years after the previous one costs ~130 ticks (draining the window and
the stories), not six million. After a silence longer than the baselines' memory every term is
new again (no warm-up: the stream has history, and it was silent).

Late posts. A post up to ``lateness_ms`` older than the watermark is counted in its own minute:
volumes, series and baselines include it; a tick already taken is not redone, so it reaches
burst scores and stories only through the following minutes. Older posts are dropped and
counted in ``stats["late_dropped"]``.

Memory. A term seen once is only *pending*: its hash, minute and author sit in a fixed-size
table of ``pending_slots`` slots (three flat arrays, 48 MB by default, no Python object per
term) for up to ``pending_ms``; its second occurrence within that time promotes it to a full
entry (losing nothing: the first occurrence is replayed into it). Most hapax words and bigrams
never get further. A slot is overwritten by another term's first occurrence when their hashes
collide, so at a very high rate of new terms a pending term is forgotten sooner than
``pending_ms`` (it then needs two more occurrences); memory stays fixed. Per full term:
one dict entry per active minute within ``retention_ms`` (a count and the author hash, or the
set of author hashes, capped at ``max_authors_per_minute``) plus two floats; a term whose
minutes have expired is dropped once its baseline falls below ``prune_rate`` per minute, and
never more than ``max_terms`` are kept (least active first). Post samples for storylines are
kept for the detection window only, at most ``sample_per_minute`` per minute (bottom-k by a
stable hash of the key, so which posts are kept does not depend on arrival order). Dedupe keys
live ``dedupe_ms``.

Complexity. ``observe``: O(terms in the post) dictionary updates (~11 terms for a tweet of the
demo data, ~28 for the synthetic benchmark), no allocation proportional to history. A tick
(once per stream minute while not quiet): O(distinct terms in the minute entering and the
minute leaving the window + candidates + sampled posts of the window).
``report``: O(limit x window minutes) plus the stories, independent of the posts observed.
"""

from __future__ import annotations

import bisect
import math
import zlib
from array import array
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from firesift.errors import ConfigError, NotFound
from firesift.post import Post, to_ms
from firesift.trends.config import HOUR, MINUTE, TrendConfig
from firesift.trends.model import Story, StoryStatus, Trend, TrendReport
from firesift.trends.stories import (
    R_AUTHOR,
    R_KEY,
    R_MS,
    R_TERMS,
    Rec,
    StoryState,
    cluster,
    pick_posts,
    story_id,
    story_status,
)
from firesift.trends.terms import extract, term_kind

__all__ = ["TrendConfig", "TrendTracker"]

_MASK = (1 << 64) - 1

Authors = int | set[int]
"""One author hash, or the set of them once a term-minute has several (fewer GC'd objects)."""


class _Term:
    """Per-minute counts ``c`` and authors ``a`` within retention, and the EWMA baseline ``s``
    of distinct authors per minute, folded up to (excluding) minute ``f``. Plain int-valued
    dicts rather than per-minute lists keep the cyclic GC from walking millions of objects."""

    __slots__ = ("a", "c", "f", "s")

    def __init__(self, minute: int) -> None:
        self.c: dict[int, int] = {}
        self.a: dict[int, Authors] = {}
        self.s = 0.0
        self.f = minute


def _distinct(authors: Authors) -> int:
    return len(authors) if isinstance(authors, set) else 1


@dataclass(frozen=True, slots=True)
class _StorySnap:
    state: StoryState
    title: str
    terms: tuple[str, ...]
    status: StoryStatus
    top_posts: tuple[str, ...]
    score: float
    recent: int


@dataclass(frozen=True, slots=True)
class _Snap:
    minute: int
    trends: tuple[tuple[str, float], ...]
    stories: tuple[_StorySnap, ...]


class TrendTracker:
    """Incremental trends and storylines; see the module docstring for the model.

    >>> tracker = TrendTracker()
    >>> tracker.observe_many(posts)          # doctest: +SKIP
    >>> tracker.report(limit=10).to_json()   # doctest: +SKIP
    """

    def __init__(self, config: TrendConfig | None = None) -> None:
        c = self.config = config or TrendConfig()
        self._w = c.detect_window_ms // MINUTE
        self._late = c.lateness_ms // MINUTE
        self._ret = c.retention_ms // MINUTE
        self._ttl = c.story_ttl_ms // MINUTE
        self._warm = -(-c.warmup_ms // MINUTE)
        self._dedupe = max(1, c.dedupe_ms // MINUTE)
        self._alpha = 0.5 ** (MINUTE / c.half_life_ms)
        self._terms: dict[str, _Term] = {}
        self._pmask = c.pending_slots - 1
        self._pend = c.pending_ms // MINUTE
        self._ph, self._pm, self._pa = self._slots(c.pending_slots)
        self._cur: dict[str, list[int]] = {}
        self._cur_m = -1
        self._cap = c.max_authors_per_minute
        self._late_terms: dict[int, set[str]] = {}
        self._added: dict[int, dict[str, int]] = {}
        self._xwin: dict[str, int] = {}
        self._cand: set[str] = set()
        self._posts: dict[int, int] = {}
        self._gs = 0.0
        self._gf = 0
        self._recs: dict[int, list[Rec]] = {}
        self._thr: dict[int, tuple[int, str]] = {}
        self._seen: dict[int, int] = {}
        self._seen_by_min: dict[int, list[int]] = {}
        self._stories: dict[str, StoryState] = {}
        self._snaps: dict[int, _Snap] = {}
        self._snap_minutes: list[int] = []
        self._m0 = -1
        self._wm = -1
        self._tick = -1
        self._skip = True
        self.stats = {
            "observed": 0,
            "counted": 0,
            "duplicates": 0,
            "late_dropped": 0,
            "ticks": 0,
            "skipped": 0,
        }

    # -- ingest ---------------------------------------------------------------------------

    def observe(self, post: Post) -> bool:
        """Count ``post``; False if it was a duplicate or too late. O(terms in the post)."""
        stats = self.stats
        stats["observed"] += 1
        ms = to_ms(post.created_at)
        m = ms // MINUTE
        if self._m0 < 0:
            self._m0 = self._tick = self._gf = self._cur_m = m
            self._wm = ms
        elif ms > self._wm:
            self._wm = ms
            if m > self._tick:
                self._advance(m)
        elif m < self._tick - self._late:
            stats["late_dropped"] += 1
            return False
        seen = self._seen
        kid = hash((post.source, post.id))
        if kid in seen:
            stats["duplicates"] += 1
            return False
        for old in post.edit_of:
            if hash((post.source, old)) in seen:
                stats["duplicates"] += 1
                return False
        ext = extract(post)
        terms = ext.terms
        if ext.repost_of is not None:
            ck = hash((ext.repost_of, post.author.id))
        else:
            ck = hash(ext.dedupe or terms)
        bym = self._seen_by_min.get(m)
        if bym is None:
            bym = self._seen_by_min[m] = []
        seen[kid] = m
        bym.append(kid)
        if ck in seen:
            stats["duplicates"] += 1
            return False
        seen[ck] = m
        bym.append(ck)
        stats["counted"] += 1
        posts = self._posts
        posts[m] = posts.get(m, 0) + 1
        ah = hash((post.source, post.author.id)) & _MASK
        if m == self._cur_m:
            cur = self._cur
            get = cur.get
            table = self._terms
            ph = self._ph
            pm = self._pm
            pa = self._pa
            pmask = self._pmask
            pcut = m - self._pend
            for t in terms:
                hits = get(t)
                if hits is not None:
                    hits.append(ah)
                    continue
                if t not in table:
                    # Not tracked: a first occurrence only fills its pending slot.
                    h = hash(t) or 1
                    i = h & pmask
                    if ph[i] != h or pm[i] < pcut:
                        ph[i] = h
                        pm[i] = m
                        pa[i] = ah
                        continue
                    ph[i] = 0
                    a1 = pa[i]
                    if pm[i] == m:
                        cur[t] = [a1, ah]
                        continue
                    self._promote(t, pm[i], a1, m)
                cur[t] = [ah]
        else:
            self._observe_late(m, terms, ah)
        key = post.key
        thr = self._thr.get(m)
        if thr is not None and (zlib.crc32(key.encode()), key) >= thr:
            return True
        recs = self._recs.get(m)
        if recs is None:
            if m < self._tick - self._w:
                return True
            recs = self._recs[m] = []
        metrics = post.metrics
        recs.append(
            (
                ms,
                key,
                ah,
                terms,
                post.text,
                metrics.likes + metrics.reposts + metrics.quotes,
                int(ext.repost_of is not None),
                int(post.reply_to is not None),
            )
        )
        if len(recs) > 2 * self.config.sample_per_minute:
            self._sample(m)
        return True

    def _term_for(self, t: str, m: int, ah: int) -> _Term | None:
        """The term's state, promoting it from its pending slot on its second occurrence."""
        st = self._terms.get(t)
        if st is not None:
            return st
        h = hash(t) or 1
        i = h & self._pmask
        if self._ph[i] != h or self._pm[i] < self._cur_m - self._pend:
            self._ph[i] = h
            self._pm[i] = m
            self._pa[i] = ah
            return None
        self._ph[i] = 0
        return self._promote(t, self._pm[i], self._pa[i], m)

    def _promote(self, t: str, m1: int, a1: int, m: int) -> _Term:
        """A full entry for ``t``, seen first at minute ``m1`` by ``a1`` (replayed into it, or
        into the current minute's counts) and now at minute ``m``."""
        st = self._terms[t] = _Term(min(m1, m))
        if m1 == self._cur_m:
            hits = self._cur.get(t)
            if hits is None:
                self._cur[t] = [a1]
            else:
                hits.append(a1)
            return st
        st.c[m1] = 1
        st.a[m1] = a1
        if m1 < self._tick:
            if m1 <= self._tick - self._w - 1:
                self._fold_term(st, m1, 1)
            else:
                late = self._late_terms.get(m1)
                if late is None:
                    late = self._late_terms[m1] = set()
                late.add(t)
        return st

    def _distinct_authors(self, hits: list[int]) -> Authors:
        """The authors of a term's posts in the current minute, as kept per term-minute: one
        hash, or the set of the first ``max_authors_per_minute`` distinct ones."""
        if len(hits) == 1:
            return hits[0]
        distinct = set(hits)
        if len(distinct) == 1:
            return hits[0]
        if len(distinct) > self._cap:
            return set(list(dict.fromkeys(hits))[: self._cap])
        return distinct

    def _observe_late(self, m: int, terms: tuple[str, ...], ah: int) -> None:
        late = self._late_terms.get(m)
        if late is None:
            late = self._late_terms[m] = set()
        for t in terms:
            st = self._term_for(t, m, ah)
            if st is None:
                continue
            late.add(t)
            n = st.c.get(m)
            if n is None:
                st.c[m] = 1
                st.a[m] = ah
                continue
            st.c[m] = n + 1
            a = st.a[m]
            if isinstance(a, int):
                if a != ah:
                    st.a[m] = {a, ah}
            elif len(a) < self._cap:
                a.add(ah)

    @staticmethod
    def _slots(n: int) -> tuple[array[int], array[int], array[int]]:
        """Pending slots: term hash (0: empty), minute and author of a first occurrence."""
        zeros = bytes(8 * n)
        return array("q", zeros), array("q", zeros), array("Q", zeros)

    def _pending_count(self) -> int:
        if self._m0 < 0:
            return 0
        h = np.frombuffer(self._ph, dtype=np.int64)
        m = np.frombuffer(self._pm, dtype=np.int64)
        return int(np.count_nonzero((h != 0) & (m >= self._tick - self._pend)))

    def observe_many(self, posts: Iterable[Post]) -> int:
        """Observe every post; the number counted (not duplicates, not too late)."""
        n = 0
        for post in posts:
            n += self.observe(post)
        return n

    def advance(self, now_ms: int) -> None:
        """Move the watermark to ``now_ms`` without a post (a clock tick on a quiet stream)."""
        if self._m0 < 0 or now_ms <= self._wm:
            return
        self._wm = now_ms
        if now_ms // MINUTE > self._tick:
            self._advance(now_ms // MINUTE)

    @classmethod
    def replay(
        cls,
        posts: Iterable[Post],
        *,
        config: TrendConfig | None = None,
        until_ms: int | None = None,
    ) -> TrendTracker:
        """A tracker rebuilt from ``posts`` (e.g. ``Store.iter_posts(since_ms=as_of -
        config.replay_ms, until_ms=as_of)``), skipping any created after ``until_ms``."""
        tracker = cls(config)
        for post in posts:
            if until_ms is None or to_ms(post.created_at) <= until_ms:
                tracker.observe(post)
        return tracker

    # -- ticks ----------------------------------------------------------------------------

    def _sample(self, m: int) -> None:
        recs = self._recs[m]
        cap = self.config.sample_per_minute
        if len(recs) > cap:
            recs.sort(key=lambda r: (zlib.crc32(r[R_KEY].encode()), r[R_KEY]))
            del recs[cap:]
            last = recs[-1][R_KEY]
            self._thr[m] = (zlib.crc32(last.encode()), last)

    def _advance(self, new_minute: int) -> None:
        while self._tick < new_minute:
            gap = new_minute - self._tick
            if gap > 1 and self._skip and self._quiet():
                self._skip_to(new_minute - 1)
                continue
            self._tick += 1
            self._do_tick(self._tick)

    def _quiet(self) -> bool:
        """True when no minute in or entering the window has counts and no story is alive:
        every further tick without posts then only decays baselines (lazily), prunes and
        takes an empty snapshot."""
        return not (
            self._xwin
            or self._stories
            or self._cur
            or self._posts
            or self._late_terms
            or self._recs
            or any(self._added.values())
        )

    def _skip_to(self, last: int) -> None:
        """The ticks ``self._tick + 1 .. last`` of a quiet stream, in O(state): the same state
        and reports as ticking each minute. Baselines decay lazily (nothing to do); the prunes
        of the skipped ticks amount to the last one (all they drop only grows with time); their
        snapshots are all empty, so one stands for them all (``report`` answers a minute from the
        latest snapshot at or before it, and ``_prune`` keeps the one in force at its cut)."""
        first = self._tick + 1
        self._snaps[first] = _Snap(first, (), ())
        self._snap_minutes.append(first)
        prune = last - last % 10
        if prune >= first:
            self._prune(prune)
        self._added.clear()
        self._tick = self._cur_m = last
        self.stats["skipped"] += last - first + 1

    def _fold_term(self, st: _Term, minute: int, d: int) -> None:
        if minute < st.f:
            return
        a = self._alpha
        st.s = st.s * a ** (minute - st.f) * a + (1 - a) * d
        st.f = minute + 1

    def _do_tick(self, tick: int) -> None:
        self.stats["ticks"] += 1
        c = self.config
        w = self._w
        table = self._terms
        xwin = self._xwin
        cand = self._cand
        newest = tick - 1
        added: dict[str, int] = {}
        if self._cur_m == newest:
            min_volume = c.min_volume
            for t, hits in self._cur.items():
                n = len(hits)
                authors = self._distinct_authors(hits)
                st = table.get(t)
                if st is None:
                    st = table[t] = _Term(newest)
                st.c[newest] = n
                st.a[newest] = authors
                d = len(authors) if type(authors) is set else 1
                added[t] = d
                x = xwin.get(t, 0) + d
                xwin[t] = x
                if x >= min_volume:
                    cand.add(t)
            self._cur = {}
        self._cur_m = tick
        self._added[newest] = added
        old = tick - w - 1
        gone = self._added.pop(old, None) or {}
        alpha = self._alpha
        keep = 1 - alpha
        for t, d in gone.items():
            x = xwin[t] - d
            if x > 0:
                xwin[t] = x
                if x < c.min_volume:
                    cand.discard(t)
            else:
                del xwin[t]
                cand.discard(t)
            st = table.get(t)
            if st is not None and old >= st.f:
                au = st.a.get(old)
                if au is not None:
                    st.s = st.s * alpha ** (old - st.f + 1) + keep * (
                        len(au) if type(au) is set else 1
                    )
                    st.f = old + 1
        for t in self._late_terms.pop(old, ()):
            st = table.get(t)
            if st is not None:
                au = st.a.get(old)
                if au is not None:
                    self._fold_term(st, old, _distinct(au))
        a = self._alpha
        n_old = self._posts.pop(old, 0)
        if n_old and old >= self._gf:
            self._gs = self._gs * a ** (old - self._gf) * a + (1 - a) * n_old
            self._gf = old + 1
        self._recs.pop(old, None)
        self._thr.pop(old, None)
        if newest in self._recs:
            self._sample(newest)

        trends: list[tuple[float, str]] = []
        if tick - self._m0 >= self._warm:
            trends = self._score(tick)
        hot = {t: s for s, t in trends[: c.max_story_terms]}
        stories = self._story_step(tick, hot)
        snap = _Snap(tick, tuple((t, s) for s, t in trends[: c.max_trends]), stories)
        self._snaps[tick] = snap
        self._snap_minutes.append(tick)
        if tick % 10 == 0:
            self._prune(tick)

    def _score(self, tick: int) -> list[tuple[float, str]]:
        c = self.config
        w = self._w
        a = self._alpha
        frontier = tick - w
        history = frontier - self._m0
        corr = 1 - a**history if history > 0 else 0.0
        glam = self._gs * a ** max(0, frontier - self._gf) / corr if corr > 0 else 0.0
        lam0 = max(c.min_prior, c.prior_share * glam)
        table = self._terms
        xwin = self._xwin
        out: list[tuple[float, str]] = []
        log = math.log
        for t in self._cand:
            x = xwin[t]
            st = table[t]
            lam = st.s * a ** (frontier - st.f) / corr if corr > 0 and st.s else 0.0
            mu = w * (lam if lam > lam0 else lam0)
            if x < c.min_ratio * mu:
                continue
            score = math.sqrt(2 * (x * log(x / mu) - x + mu))
            if score < c.min_score:
                continue
            if self._authors(st, tick - w, tick, c.min_authors) < c.min_authors:
                continue
            out.append((score, t))
        out.sort(key=lambda p: (-p[0], p[1]))
        return out

    @staticmethod
    def _authors(
        st: _Term, start: int, stop: int, enough: int | None = None, extra: Authors | None = None
    ) -> int:
        seen: set[int] = set()
        mins = st.a
        slots = [mins.get(m) for m in range(start, stop)]
        slots.append(extra)
        for a in slots:
            if a is None:
                continue
            if isinstance(a, int):
                seen.add(a)
            else:
                seen.update(a)
            if enough is not None and len(seen) >= enough:
                break
        return len(seen)

    def _story_step(self, tick: int, hot: dict[str, float]) -> tuple[_StorySnap, ...]:
        c = self.config
        stories = self._stories
        if not hot and not stories:
            return ()
        window = [r for m in range(tick - self._w, tick) for r in self._recs.get(m, ())]
        if hot:
            comps, matched = cluster(hot, window, min_cooccur=c.min_cooccur, link=c.link)
        else:
            comps, matched = [], []
        parts: dict[str, tuple[list[str], list[tuple[Rec, float]]]] = {}
        created: set[str] = set()
        for comp in comps:
            cset = frozenset(comp)
            posts = [
                (r, sum(hot[t] for t in inter if t in cset))
                for r, inter in matched
                if not cset.isdisjoint(inter)
            ]
            if len(posts) < c.story_min_posts or len(comp) < c.story_min_terms:
                continue
            if len({r[R_TERMS] for r, _ in posts}) < c.story_min_texts:
                continue
            if len({r[R_AUTHOR] for r, _ in posts}) < c.min_authors:
                continue
            best: StoryState | None = None
            best_cov = c.match
            for st in sorted(stories.values(), key=lambda s: s.id):
                if st.id in created:
                    continue
                sig = st.sig
                cov = sum(1 for r, _ in posts if not sig.keys().isdisjoint(r[R_TERMS])) / len(posts)
                if cov > best_cov or (cov >= best_cov and best is None):
                    best, best_cov = st, cov
            if best is None:
                sid = story_id(tick, comp[0])
                best = StoryState(
                    id=sid,
                    first_seen_ms=min(r[R_MS] for r, _ in posts),
                    detected_ms=tick * MINUTE,
                )
                stories[sid] = best
                created.add(sid)
                for r, _ in posts:
                    m = r[R_MS] // MINUTE
                    if m < tick - 1:
                        best.vol[m] = best.vol.get(m, 0) + 1
            entry = parts.setdefault(best.id, ([], []))
            entry[0].extend(comp)
            entry[1].extend(posts)
        for sid, (terms, posts) in parts.items():
            st = stories[sid]
            ordered = sorted(set(terms), key=lambda t: (-hot[t], t))
            for t in ordered:
                st.sig[t] = tick
            df: dict[str, int] = {}
            for r, _ in posts:
                for t in r[R_TERMS]:
                    df[t] = df.get(t, 0) + 1
            for t in sorted(df, key=lambda t: (-df[t], t))[: c.story_profile]:
                if df[t] >= c.story_min_posts:
                    st.sig[t] = tick
            st.terms = tuple(ordered[: c.story_terms])
            st.last_active = tick
            st.score = sum(hot[t] for t in ordered)
            title, st.top_posts, first, _authors, rank = pick_posts(posts, c.story_posts)
            if rank <= st.title_rank or not st.title:
                st.title, st.title_rank = title, rank
            st.first_seen_ms = min(st.first_seen_ms, first)

        newest = tick - 1
        recs = self._recs.get(newest, ())
        counted = self._posts.get(newest, 0)
        scale = counted / len(recs) if recs else 0.0
        out: list[_StorySnap] = []
        for sid in sorted(stories):
            st = stories[sid]
            if tick - st.last_active > self._ttl:
                del stories[sid]
                continue
            keyset = frozenset(st.terms)
            n = 0
            seen: set[int] = set()
            for r in recs:
                if not keyset.isdisjoint(r[R_TERMS]):
                    n += 1
                    seen.add(r[R_AUTHOR])
            if seen:
                st.authors[newest] = seen
            if n:
                st.vol[newest] = round(n * scale)
            status, recent, st.peak = story_status(st.vol, tick, st.peak)
            out.append(_StorySnap(st, st.title, st.terms, status, st.top_posts, st.score, recent))
        out.sort(key=lambda s: (s.status == "fading", -s.recent, -s.score, s.state.id))
        return tuple(out)

    def _prune(self, tick: int) -> None:
        cut = tick - self._ret
        a = self._alpha
        frontier = tick - self._w
        table = self._terms
        for t in list(table):
            st = table[t]
            mins = st.c
            if mins:
                stale = [m for m in mins if m < cut]
                for m in stale:
                    del mins[m]
                    del st.a[m]
            if not mins and st.s * a ** (frontier - st.f) < self.config.prune_rate:
                del table[t]
        if len(table) > self.config.max_terms:
            active = set(self._xwin)
            victims = sorted(
                (t for t in table if t not in active),
                key=lambda t: (bool(table[t].c), table[t].s * a ** (frontier - table[t].f), t),
            )
            for t in victims[: len(table) - self.config.max_terms]:
                del table[t]
        expire = tick - self._dedupe
        seen = self._seen
        for m in [m for m in self._seen_by_min if m < expire]:
            for k in self._seen_by_min.pop(m):
                if seen.get(k) == m:
                    del seen[k]
        for story in self._stories.values():
            for m in [m for m in story.vol if m < cut]:
                del story.vol[m]
            for m in [m for m in story.authors if m < cut]:
                del story.authors[m]
            for t in [t for t, m in story.sig.items() if tick - m > self._ttl]:
                del story.sig[t]
        minutes = self._snap_minutes
        keep = bisect.bisect_left(minutes, cut)
        if keep:
            last = self._snaps[minutes[keep - 1]]
            for m in minutes[:keep]:
                self._snaps.pop(m, None)
            del minutes[:keep]
            if not last.trends and not last.stories and (not minutes or minutes[0] != cut):
                # An empty snapshot standing for skipped quiet minutes: it is still the one
                # in force at ``cut`` (as the per-minute loop's snapshot of ``cut`` would be).
                self._snaps[cut] = _Snap(cut, (), ())
                minutes.insert(0, cut)
        for m in [m for m in self._late_terms if m < tick - self._w - 1]:
            del self._late_terms[m]

    # -- reading --------------------------------------------------------------------------

    @property
    def watermark_ms(self) -> int | None:
        """The newest ``created_at`` observed (ms), or None before the first post."""
        return self._wm if self._m0 >= 0 else None

    @property
    def horizon_ms(self) -> int | None:
        """The earliest ``as_of`` a report can be answered for from the retained state."""
        if not self._snap_minutes:
            return None
        return self._snap_minutes[0] * MINUTE - 1

    def memory(self) -> dict[str, int]:
        """Sizes of the retained structures (for tests and monitoring)."""
        return {
            "terms": len(self._terms),
            "pending_terms": self._pending_count(),
            "term_minutes": sum(len(st.c) for st in self._terms.values()),
            "dedupe_keys": len(self._seen),
            "sampled_posts": sum(len(r) for r in self._recs.values()),
            "stories": len(self._stories),
            "snapshots": len(self._snaps),
        }

    def report(
        self,
        *,
        as_of_ms: int | None = None,
        window_ms: int = HOUR,
        limit: int = 20,
    ) -> TrendReport:
        """What is bursting at ``as_of_ms`` (default: the newest post), from posts created at or
        before it. ``window_ms`` (at most ``retention_ms``) sets the span of the volumes, author
        counts and per-minute series; detection itself uses ``detect_window_ms``.

        Raises :class:`~firesift.errors.NotFound` when ``as_of_ms`` is older than the retained
        state (:attr:`horizon_ms`): rebuild with :meth:`replay` up to that instant.
        """
        if window_ms < MINUTE or window_ms > self.config.retention_ms:
            raise ConfigError(
                f"window_ms must be between {MINUTE} and trends.retention_ms "
                f"({self.config.retention_ms}), got {window_ms}"
            )
        if limit < 0:
            raise ConfigError(f"limit must be >= 0, got {limit}")
        if self._m0 < 0:
            return TrendReport(as_of_ms or 0, window_ms, (), ())
        as_of = self._wm if as_of_ms is None else as_of_ms
        end = (as_of + 1) // MINUTE
        n = -(-window_ms // MINUTE)
        start = end - n
        i = bisect.bisect_right(self._snap_minutes, min(end, self._tick)) - 1
        if i < 0:
            if end <= self._m0 + 1 or not self._snap_minutes:
                return TrendReport(as_of, window_ms, (), ())
            raise NotFound(
                f"trend state before {self._snap_minutes[0] * MINUTE} ms was compacted; "
                f"rebuild with TrendTracker.replay(posts, until_ms={as_of})"
            )
        snap = self._snaps[self._snap_minutes[i]]
        trends: list[Trend] = []
        for term, score in snap.trends[:limit]:
            st = self._terms.get(term)
            if st is None:
                continue
            counts = dict(st.c)
            extra = None
            hits = self._cur.get(term) if start <= self._cur_m < end else None
            if hits is not None:
                counts[self._cur_m] = len(hits)
                extra = self._distinct_authors(hits)
            series = tuple(counts.get(m, 0) for m in range(start, end))
            authors = self._authors(st, start, end, extra=extra)
            trends.append(Trend(term, term_kind(term), score, sum(series), authors, series))
        stories: list[Story] = []
        for ss in snap.stories:
            vol = ss.state.vol
            volume = tuple(vol.get(m, 0) for m in range(start, end))
            if not any(volume):
                continue
            sets = [a for m, a in ss.state.authors.items() if start <= m < end]
            authors = len(set().union(*sets))
            stories.append(
                Story(
                    id=ss.state.id,
                    title=ss.title,
                    terms=ss.terms,
                    first_seen_ms=ss.state.first_seen_ms,
                    detected_ms=ss.state.detected_ms,
                    volume=volume,
                    authors=authors,
                    status=ss.status,
                    top_posts=ss.top_posts,
                    score=ss.score,
                )
            )
            if len(stories) >= limit:
                break
        return TrendReport(as_of, window_ms, tuple(trends), tuple(stories))
