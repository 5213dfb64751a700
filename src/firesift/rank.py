"""From BM25 candidates to the list a person reads: priors, then collapsing copies.

Score of a candidate, relative to the ``as_of`` instant of the search::

    relevance  = bm25, or 1.0 when only filters matched (bm25 == 0)
    engagement = 1 + ENGAGEMENT_WEIGHT * log1p(likes + REPOST_WEIGHT * reposts)
    recency    = RECENCY_FLOOR + (1 - RECENCY_FLOOR) * 0.5 ** (age / HALF_LIFE_MS)
    score      = relevance * engagement * recency          (age = as_of - created, >= 0)

- ``log1p`` because engagement is heavy-tailed: 10 likes should beat 0 clearly, 10,000 should
  not bury a precise match with 50.
- Reposts count double: they redistribute a post, which is a stronger "this matters" signal.
- Recency halves every ``HALF_LIFE_MS`` (a few hours: the question is "what is happening now")
  but never drops below ``RECENCY_FLOOR``, so an exact, heavily shared post from yesterday still
  beats a weak match from a minute ago.

Collapsing (after scoring): candidates are joined into groups when they are reposts of the same
original (same ``orig``), have the same near-duplicate fingerprint (``dup``, see
:mod:`firesift.textnorm`), or, if the caller supplies texts, when their word sets have Jaccard
similarity >= ``JACCARD_THRESHOLD`` among the ``JACCARD_WINDOW`` best candidates (catching
copies that differ by a word). A group is shown once, as its *earliest* member (the original
of a repost, the first of a copypasta: the post to cite), scored with its best member's score;
``collapsed`` counts the rest. With ``sort="recent"`` groups are ordered by their newest member.

Bursts (:func:`burst_words`, :func:`burst_share`): what a set of matching posts *started*
saying at ``as_of``. The matches are split at ``as_of - window``; a word's lift is the share of
the window's distinct accounts that used it minus its share of the earlier accounts, kept when
at least ``min_accounts`` accounts in the window used it, and scaled so the heaviest is 1.
Accounts, not posts, so one account posting a word forty times is one vote (the trend
tracker's rule); a difference of shares rather than a ratio, so a word every window post uses
("earthquake" an hour after a quake) outweighs a rare one that merely never occurred before.
A post's burst share is its words' lifts summed, ``full`` of them making a full share: the
story that is developing now, told in the words its many accounts use, as opposed to the
place's usual chatter (travel deals, a football club) that matched the same query.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Literal, Protocol

from firesift.textnorm import token_set

__all__ = [
    "ENGAGEMENT_WEIGHT",
    "HALF_LIFE_MS",
    "JACCARD_THRESHOLD",
    "JACCARD_WINDOW",
    "RECENCY_FLOOR",
    "REPOST_WEIGHT",
    "BurstDoc",
    "Candidate",
    "RankParams",
    "Ranked",
    "RankedHit",
    "burst_share",
    "burst_words",
    "prior_score",
    "rank",
]

ENGAGEMENT_WEIGHT = 0.2
REPOST_WEIGHT = 2.0
HALF_LIFE_MS = 6 * 3600 * 1000
RECENCY_FLOOR = 0.1
JACCARD_THRESHOLD = 0.8
JACCARD_WINDOW = 100
FILTER_ONLY_RELEVANCE = 1.0


class Candidate(Protocol):
    """What ranking reads from a search hit (:class:`firesift.index.Hit` has these)."""

    @property
    def key(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def created_ms(self) -> int: ...
    @property
    def likes(self) -> int: ...
    @property
    def reposts(self) -> int: ...
    @property
    def dup(self) -> int: ...
    @property
    def orig(self) -> str: ...


@dataclass(frozen=True, slots=True)
class RankParams:
    """The ranking constants, overridable per call (evaluation sweeps them)."""

    engagement_weight: float = ENGAGEMENT_WEIGHT
    repost_weight: float = REPOST_WEIGHT
    half_life_ms: int = HALF_LIFE_MS
    recency_floor: float = RECENCY_FLOOR
    jaccard_threshold: float = JACCARD_THRESHOLD
    jaccard_window: int = JACCARD_WINDOW
    filter_only_relevance: float = FILTER_ONLY_RELEVANCE


@dataclass(frozen=True, slots=True)
class RankedHit:
    """A post to show: ``key`` is the group's earliest member, ``score`` the best final score in
    its group, ``bm25`` that member's text relevance, ``collapsed_keys`` the other members."""

    key: str
    score: float
    bm25: float
    created_ms: int
    likes: int
    reposts: int
    orig: str
    collapsed_keys: tuple[str, ...] = ()

    @property
    def collapsed(self) -> int:
        return len(self.collapsed_keys)


@dataclass(frozen=True, slots=True)
class Ranked:
    """The top hits, how many candidates were folded into them, and how many were ranked."""

    hits: tuple[RankedHit, ...]
    collapsed: int
    candidates: int

    @property
    def keys(self) -> list[str]:
        return [h.key for h in self.hits]


@dataclass(frozen=True, slots=True)
class BurstDoc:
    """What burst detection reads of a matching post: when, by whom, which words."""

    created_ms: int
    account: str
    words: frozenset[str]


def burst_words(
    docs: Iterable[BurstDoc], *, as_of_ms: int, window_ms: int, min_accounts: int = 3
) -> dict[str, float]:
    """The words bursting among ``docs`` at ``as_of_ms``, each with its lift relative to the
    heaviest (module docstring). Docs created after ``as_of_ms`` are ignored."""
    cut = as_of_ms - window_ms
    recent: dict[str, set[str]] = {}
    past: dict[str, set[str]] = {}
    accounts: tuple[set[str], set[str]] = (set(), set())
    for d in docs:
        if d.created_ms > as_of_ms:
            continue
        now = d.created_ms > cut
        accounts[0 if now else 1].add(d.account)
        side = recent if now else past
        for w in d.words:
            side.setdefault(w, set()).add(d.account)
    n_recent, n_past = len(accounts[0]), len(accounts[1])
    lifts: dict[str, float] = {}
    for w, who in recent.items():
        if len(who) < min_accounts:
            continue
        lift = len(who) / n_recent - (len(past.get(w, ())) / n_past if n_past else 0.0)
        if lift > 0:
            lifts[w] = lift
    top = max(lifts.values(), default=0.0)
    return {w: x / top for w, x in lifts.items()} if top > 0 else {}


def burst_share(words: Iterable[str], burst: Mapping[str, float], full: float = 2.0) -> float:
    """How much of the burst a post with ``words`` carries: their lifts summed over ``full``,
    capped at 1."""
    return min(1.0, sum(burst.get(w, 0.0) for w in words) / full)


def prior_score(hit: Candidate, *, as_of_ms: int, params: RankParams | None = None) -> float:
    """The final score of one candidate (formula in the module docstring)."""
    p = params or RankParams()
    relevance = hit.score if hit.score > 0 else p.filter_only_relevance
    engagement = 1.0 + p.engagement_weight * math.log1p(
        max(0, hit.likes) + p.repost_weight * max(0, hit.reposts)
    )
    age = max(0, as_of_ms - hit.created_ms)
    recency = p.recency_floor + (1.0 - p.recency_floor) * math.exp2(-age / p.half_life_ms)
    return float(relevance * engagement * recency)


def rank(
    hits: Sequence[Candidate],
    *,
    as_of_ms: int,
    limit: int = 20,
    sort: Literal["relevance", "recent"] = "relevance",
    texts: Mapping[str, str] | None = None,
    params: RankParams | None = None,
) -> Ranked:
    """Score ``hits`` with the priors, collapse reposts and near-duplicates, keep ``limit``."""
    p = params or RankParams()
    n = len(hits)
    scores = [prior_score(h, as_of_ms=as_of_ms, params=p) for h in hits]
    groups = _UnionFind(n)
    by_orig: dict[str, int] = {}
    by_dup: dict[int, int] = {}
    for i, h in enumerate(hits):
        if (j := by_orig.setdefault(h.orig, i)) != i:
            groups.union(i, j)
        if h.dup and (j := by_dup.setdefault(h.dup, i)) != i:
            groups.union(i, j)
    if texts:
        _join_similar(hits, scores, texts, groups, p)

    members: dict[int, list[int]] = {}
    for i in range(n):
        members.setdefault(groups.find(i), []).append(i)
    ranked: list[tuple[float, RankedHit]] = []
    for idx in members.values():
        first, best, others = _representatives(idx, hits, scores)
        h = hits[first]
        hit = RankedHit(
            key=h.key,
            score=scores[best],
            bm25=hits[best].score,
            created_ms=h.created_ms,
            likes=h.likes,
            reposts=h.reposts,
            orig=h.orig,
            collapsed_keys=tuple(hits[i].key for i in others),
        )
        order = max(hits[i].created_ms for i in idx) if sort == "recent" else scores[best]
        ranked.append((order, hit))
    ranked.sort(key=lambda pair: (-pair[0], pair[1].key))
    top = tuple(hit for _, hit in ranked[: max(0, limit)])
    return Ranked(hits=top, collapsed=sum(h.collapsed for h in top), candidates=n)


def _representatives(
    idx: list[int], hits: Sequence[Candidate], scores: list[float]
) -> tuple[int, int, list[int]]:
    """A group's earliest member (the one shown), its best-scored member, and the others,
    best first. Most groups are a single post, which is all three at once."""
    if len(idx) == 1:
        return idx[0], idx[0], []
    first = min(idx, key=lambda i: (hits[i].created_ms, hits[i].key))
    best = max(idx, key=lambda i: scores[i])
    others = sorted((i for i in idx if i != first), key=lambda i: -scores[i])
    return first, best, others


def _join_similar(
    hits: Sequence[Candidate],
    scores: list[float],
    texts: Mapping[str, str],
    groups: _UnionFind,
    p: RankParams,
) -> None:
    """Join the ``jaccard_window`` best candidates whose word sets have Jaccard similarity
    >= ``jaccard_threshold`` (and sizes within that ratio of each other).

    Only the pairs :func:`_similar_pairs` proposes are compared: every pair that can pass is
    among them, and joining is union-find, whose groups do not depend on the order pairs are
    joined in, so the groups are those of comparing every pair, at a fraction of the cost."""
    threshold = p.jaccard_threshold
    best = sorted(range(len(hits)), key=lambda i: -scores[i])[: p.jaccard_window]
    members = [(i, words) for i in best if (words := token_set(texts.get(hits[i].key, "")))]
    find = groups.find
    for x, y in _similar_pairs([words for _, words in members], threshold):
        a, wa = members[x]
        b, wb = members[y]
        small, large = sorted((len(wa), len(wb)))
        if small < threshold * large or find(a) == find(b):
            continue
        if len(wa & wb) >= threshold * len(wa | wb):
            groups.union(a, b)


def _similar_pairs(sets: Sequence[frozenset[str]], threshold: float) -> Iterator[tuple[int, int]]:
    """Pairs ``(x, y)``, ``x < y``, of non-empty ``sets`` that may have Jaccard similarity
    >= ``threshold``: a superset of those that do, each pair once.

    Prefix filtering (Chaudhuri, Ganti and Kaushik, 2006). A pair that passes shares at least
    ``need = ceil(threshold * len(s))`` words with each of its sets ``s`` (the union is at least
    ``s``; computed with the same float product as the test, so rounding cannot let a passing
    pair escape). Order all words, rarest first: the rarest shared word is then among the first
    ``len(s) - need + 1`` words of both sets (otherwise all shared words would sit in the last
    ``need - 1``). So only sets whose prefixes share a word are paired, found through an
    inverted index of the prefixes; rare words make prefixes short and selective, where
    comparing all pairs of a hundred tweets about one event is thousands of set operations.
    A threshold of zero or less lets pairs with no word in common pass: then every pair is
    proposed."""
    if threshold <= 0:
        yield from combinations(range(len(sets)), 2)
        return
    freq: Counter[str] = Counter()
    for s in sets:
        freq.update(s)
    rank = {w: r for r, (_, w) in enumerate(sorted((n, w) for w, n in freq.items()))}
    postings: dict[int, list[int]] = {}
    for y, s in enumerate(sets):
        keep = len(s) - math.ceil(threshold * len(s)) + 1
        seen: set[int] = set()
        for r in sorted(map(rank.__getitem__, s))[: max(0, keep)]:
            earlier = postings.setdefault(r, [])
            for x in earlier:
                if x not in seen:
                    seen.add(x)
                    yield x, y
            earlier.append(y)


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)
