"""Retrieval: from an :class:`~firesift.answer.understand.Understanding` to an evidence pool.

Pipeline (every step bounded by ``as_of``; nothing created later is ever read):

1. **Constraints** are hard filters: operators the person typed, ``@handles`` in the question
   ("by or mentioning"), :class:`~firesift.answer.model.Filters` and the time window. They are
   ANDed to every search below.
2. **First pass**: the question's terms and their paraphrases
   (:attr:`~firesift.answer.understand.Understanding.expansions`: "shooter" also asks for
   "gunman", "named" for "identified") OR-ed (BM25 in the index), ``candidates`` hits.
3. **Pseudo-relevance feedback (RM3-style).** The ``feedback_docs`` best first-pass posts give a
   relevance model: each word's weight is its share of each post's words, weighted by the
   post's normalised score. The ``feedback_terms`` heaviest words not already asked for form a
   second query; its BM25 is interpolated with the first pass's (``feedback_weight``), each
   normalised by its maximum. The index cannot weight query terms, so interpolation happens on
   scores; it still lets a post that says "Zehaf-Bibeau" without "gunman" in. Every top TREC
   Microblog run used feedback of this kind.
4. **Term coverage, IDF-weighted.** Hits are hydrated from the store (which is also how deleted
   posts drop out); relevance is multiplied by ``coverage_floor + covered weight share``
   (:class:`~firesift.answer.understand.TermCoverage`). A term's weight is the question's
   (a follow-up's own words weigh twice its context's) times its IDF relative to the mean IDF
   of the asked terms, raised to ``idf_power`` and clamped to ``[1/idf_clamp, idf_clamp]``:
   the event's name ("ottawa", in every post about it) must not outweigh the word that makes
   the question specific ("stopped"). Document frequencies come from the index's term
   dictionary (microseconds), or are estimated on the candidates when a backend cannot give
   them. A paraphrase covers its term at ``EXPANSION_CREDIT`` of the lesser of the two weights.
4b. **Answer-type and informativeness priors.** A ``person`` question ("who ...") multiplies by
   ``1 + answer_boost`` posts that name someone (two capitalised words not both asked about), a
   ``count`` question ("how many ...") posts with a number. A pure reaction (sympathy words such
   as "thoughts", "prayers", "omg", and no name or number; for ``happening`` questions also any
   post of fewer than ``short_words`` content words without them) is multiplied by
   ``reaction_penalty``: it tells the reader nothing that happened. For ``happening`` questions
   posts get up to ``1 + informative_boost`` for the signals of a report: a link, a verified or
   wide-reach (``wide_reach`` followers) author, not a reply, a name or a number. So the
   headline is "Soldier shot at National War Memorial", not "Thoughts with everybody in Ottawa".
5. **Trending boost** (``happening`` questions): posts of trend stories related to the question
   (or all stories, when the question has no terms) join the candidates, and candidates in a
   story get ``story_boost``.
5b. **The burst at** ``as_of`` (``happening`` questions with terms): what is happening is
   what the matches *started* saying. The ``burst_posts`` best matches of the last
   ``burst_window_ms`` join the candidates (a story told in the last hours is not lost to
   BM25's older favourites) and are compared with the matches just before the window
   (:func:`firesift.burst.burst_at`, the step search shares: per word, the share of the
   window's distinct accounts using it minus its share before; ``burst_accounts`` accounts at
   least); the terms of the related trend stories count as bursting too. A candidate is
   multiplied by ``1 + burst_boost * share``, ``share`` being how much of the burst its words carry
   (:func:`firesift.rank.burst_share`). So "What is happening in Boston?" an hour after the
   bombs leads with the blasts and the injured, not with the city's usual chatter, and not
   merely with whatever was posted last. Everything read is bounded by ``as_of``.
6. **Priors and collapsing** via :func:`firesift.rank.rank`: recency (half-life from the
   question's window) and engagement; reposts and near-duplicates fold into their earliest
   copy, which is the post to cite.
7. **Diversity**: the k-th post of an account is scored ``author_decay ** k`` lower, so ten
   posts from one loud account do not fill the answer.
8. **Threads**: the best ``thread_hits`` hits bring their thread's root (when a hit is a reply)
   and up to ``replies_per_hit`` direct replies, for context and stance ("is it disputed?").
   Context posts obey the same hard constraints as hits (:func:`post_matches`): a reply by an
   excluded account, from another source or outside the window is never pulled in.

No terms and no constraints (e.g. "what is happening right now?") means: the newest posts in the
window, ordered by engagement and story membership. An implicit window ("right now") that finds
fewer than ``min_results`` posts is dropped, with a warning; a window the person stated is not.
Hydration is bounded by ``candidates`` (two passes at most ~2x), which keeps the store read
under ~10 ms at 1M posts; a ``happening`` question with terms also reads the burst's two
searches (at most ``2 * burst_posts`` posts, not yet measured at 1M).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from itertools import islice
from typing import TYPE_CHECKING

from firesift.answer.evidence import EvidencePool
from firesift.answer.model import Filters
from firesift.answer.understand import NOT_CONTENT, TermCoverage, Understanding, content_words
from firesift.burst import BurstParams, burst_at, burst_terms, stem
from firesift.errors import FiresiftError, QueryError
from firesift.index import Hit
from firesift.matcher import PostView, matches
from firesift.post import Post, to_ms
from firesift.query import And, Field, MinCount, Node, Not, Or, Query, Word, parse
from firesift.rank import Ranked, RankedHit, RankParams, burst_share, rank
from firesift.search import split_key
from firesift.textnorm import (
    dup_fingerprint,
    handle_key,
    url_host,
)

if TYPE_CHECKING:
    from firesift.database import Database
    from firesift.trends.model import Story, TrendReport

__all__ = [
    "NO_FILTERS",
    "RetrieveParams",
    "StreamTools",
    "constraints",
    "filter_bounds",
    "first_pass_query",
    "post_matches",
    "retrieve",
    "trend_report",
]


NO_FILTERS = Filters()
CONSIDER_COVERAGE = 0.5
"""Share of the question's term weight a candidate must cover to count in the evidence
statistics (posts, accounts, first/last seen): posts that only share one word are retrieved
but not "about" the question."""


@dataclass(frozen=True, slots=True)
class RetrieveParams:
    """Retrieval constants (see the module docstring); evaluation may sweep them."""

    candidates: int = 120
    feedback_docs: int = 8
    feedback_terms: int = 12
    feedback_weight: float = 0.35
    author_decay: float = 0.5
    story_boost: float = 0.5
    story_posts: int = 5
    thread_hits: int = 4
    replies_per_hit: int = 12
    min_results: int = 3
    idf_clamp: float = 3.0
    idf_power: float = 2.0
    coverage_floor: float = 0.25
    answer_boost: float = 0.25
    reaction_penalty: float = 0.5
    short_words: int = 4
    wide_reach: int = 10_000
    informative_boost: float = 0.5
    expand_query: bool = True
    burst_boost: float = 2.0
    burst_window_ms: int = 6 * 3_600_000
    burst_posts: int = 200
    burst_accounts: int = 3


@dataclass(slots=True)
class _Cand:
    key: str
    score: float
    created_ms: int
    likes: int
    reposts: int
    dup: int
    orig: str
    bm25: float = 0.0
    feedback: float = 0.0
    story: str | None = None
    collapsed: tuple[str, ...] = ()

    @classmethod
    def of(cls, hit: Hit, bm25: float = 0.0) -> _Cand:
        """A candidate for an index hit (scores to be filled in by the caller)."""
        return cls(hit.key, 0.0, hit.created_ms, hit.likes, hit.reposts, hit.dup, hit.orig, bm25)


@dataclass(frozen=True, slots=True)
class Bounds:
    """The hard constraints of a search: query nodes ANDed, and ``[since_ms, until_ms)``."""

    nodes: tuple[Node, ...] = ()
    since_ms: int | None = None
    until_ms: int | None = None
    stated_window: bool = field(default=True)

    def query(self, terms: Node | None = None) -> Query:
        nodes = ([terms] if terms is not None else []) + list(self.nodes)
        expr: Node | None
        if not nodes:
            expr = None
        elif len(nodes) == 1:
            expr = nodes[0]
        else:
            expr = And(
                tuple(c for n in nodes for c in (n.children if isinstance(n, And) else (n,)))
            )
        return Query(expr, self.since_ms, self.until_ms)


def _any(nodes: list[Node]) -> Node:
    return nodes[0] if len(nodes) == 1 else Or(tuple(nodes))


_NEGATION = re.compile(r'(?<!\S)-(?:"[^"]*"|“[^”]*”|\S+)')


def _parse_operators(text: str) -> Query:
    """Parse operator text; exclusions alone (``-rumour``), which X's grammar rejects as a
    whole query, become ``Not`` constraints on the question's own terms."""
    negations = _NEGATION.findall(text)
    rest = _NEGATION.sub(" ", text).strip()
    base = parse(rest) if rest else Query(None)
    nots: list[Node] = []
    for neg in negations:
        try:
            inner = parse(neg[1:]).expr
        except QueryError:
            continue
        if inner is not None:
            nots.append(Not(inner))
    if not nots:
        return base
    nodes = ([base.expr] if base.expr is not None else []) + nots
    expr = nodes[0] if len(nodes) == 1 else And(tuple(nodes))
    return Query(expr, base.since_ms, base.until_ms)


def filter_bounds(filters: Filters) -> Bounds:
    """The hard constraints of ``filters`` alone (no question): what tool searches obey."""
    return constraints(Understanding("", "", {}), filters, None)


def constraints(u: Understanding, filters: Filters, as_of: datetime | None) -> Bounds:
    """The hard constraints of question ``u`` under ``filters`` at ``as_of``."""
    nodes: list[Node] = []
    since: list[int] = []
    until: list[int] = []
    for text in (u.operators, filters.query):
        if text.strip():
            q = _parse_operators(text)
            if q.expr is not None:
                nodes.append(q.expr)
            if q.since_ms is not None:
                since.append(q.since_ms)
            if q.until_ms is not None:
                until.append(q.until_ms)
    if u.handles:
        nodes.append(_any([Field(k, h) for h in u.handles for k in ("from", "mention")]))
    if filters.include_handles:
        nodes.append(_any([Field("from", handle_key(h)) for h in filters.include_handles]))
    nodes += [Not(Field("from", handle_key(h))) for h in filters.exclude_handles]
    if filters.include_domains:
        nodes.append(_any([Field("url", url_host(d) or d) for d in filters.include_domains]))
    nodes += [Not(Field("url", url_host(d) or d)) for d in filters.exclude_domains]
    if filters.min_likes > 0:
        nodes.append(MinCount("likes", filters.min_likes))
    lo, hi = u.time.bounds(as_of) if as_of is not None else (None, None)
    if lo is not None:
        since.append(to_ms(lo))
    if hi is not None:
        until.append(to_ms(hi))
    if filters.since is not None:
        since.append(to_ms(filters.since))
    if filters.until is not None:
        until.append(to_ms(filters.until))
    stated = (
        u.time.explicit
        or filters.since is not None
        or bool(re.search(r"\bsince:", u.operators + " " + filters.query))
    )
    return Bounds(
        tuple(nodes), max(since) if since else None, min(until) if until else None, stated
    )


def asked_words(u: Understanding, params: RetrieveParams | None = None) -> list[str]:
    """The words of the first pass: the question's terms, then their paraphrases (when
    ``expand_query``)."""
    terms = u.terms
    asked = list(terms)
    if (params or RetrieveParams()).expand_query:
        asked += [a for alts in u.expansions.values() for a in alts if a not in terms]
    return asked


def first_pass_query(
    u: Understanding,
    filters: Filters,
    as_of: datetime,
    params: RetrieveParams | None = None,
) -> Query:
    """The query of the first pass (module docstring, steps 1-2): the question's words OR-ed,
    ANDed with its constraints; just the constraints when it has no terms. What every
    retrieved post (but story posts and feedback hits) matches: evaluations rank the same
    matches with other orders."""
    bounds = constraints(u, filters, as_of)
    asked = asked_words(u, params)
    return bounds.query(_any([Word(w) for w in asked]) if asked else None)


def post_matches(post: Post, bounds: Bounds, filters: Filters = NO_FILTERS) -> bool:
    """Whether ``post`` satisfies the hard constraints (``bounds`` and the filters the index
    cannot apply: ``sources``, ``min_views``). The check for posts that did not come from a
    constrained search (thread context, tool results); words are matched as whole tokens of
    the text, which is stricter than the index for inflected forms: in doubt, leave it out."""
    ms = to_ms(post.created_at)
    if bounds.since_ms is not None and ms < bounds.since_ms:
        return False
    if bounds.until_ms is not None and ms >= bounds.until_ms:
        return False
    if filters.sources and post.source not in filters.sources:
        return False
    if filters.min_views and (post.metrics.views or 0) < filters.min_views:
        return False
    if not bounds.nodes:
        return True
    view = PostView(post)
    return all(matches(n, view) for n in bounds.nodes)


def trend_report(db: Database, as_of_ms: int, window_ms: int = 3_600_000) -> TrendReport | None:
    """The database's trend report at ``as_of_ms``, or ``None`` when it keeps no trends or
    cannot answer for that instant."""
    trends = getattr(db, "trends", None)
    if trends is None:
        return None
    try:
        report: TrendReport = trends.report(as_of_ms=as_of_ms, window_ms=window_ms, limit=10)
    except FiresiftError:
        return None
    return report


def _idf_weights(
    db: Database, u: Understanding, posts: Sequence[Post], params: RetrieveParams
) -> dict[str, float]:
    """IDF-scaled weights of the asked terms and their paraphrases (module docstring, step 4).

    ``idf = log(1 + N / (df + 1))`` from the index's document frequencies, or, when the backend
    cannot give them, from the first-pass candidates (``N`` = candidates). Each asked term's
    weight is multiplied by its idf relative to the mean idf of the asked terms, clamped to
    ``[1 / idf_clamp, idf_clamp]``, so a word in every post of the event ("ottawa") counts
    less than the specific one ("stopped") without any term vanishing."""
    words = list(dict.fromkeys([*u.terms, *(a for alts in u.expansions.values() for a in alts)]))
    if not words or params.idf_clamp <= 1.0:
        return dict(u.terms)
    df = db.index.doc_freqs(words)
    if df is not None:
        n = max(1, db.index.num_docs)
    else:
        n = max(1, len(posts))
        texts = [" " + " ".join(re.findall(r"\w+", p.text.lower())) for p in posts]
        df = {w: sum(f" {_stem(w)}" in t for t in texts) for w in words}
    idf = {w: math.log(1 + n / (df.get(w, 0) + 1)) for w in words}
    mean = sum(idf[t] for t in u.terms) / len(u.terms) or 1.0
    lo, hi = 1 / params.idf_clamp, params.idf_clamp
    base = dict(u.terms)
    for alts in u.expansions.values():
        for a in alts:
            base.setdefault(a, 1.0)
    return {w: base[w] * min(hi, max(lo, (idf[w] / mean) ** params.idf_power)) for w in words}


_REACTION_TEXT = """
    thoughts prayers praying pray prayer condolences rip heartbroken heartbreaking sad saddened
    omg wow shocked shocking horrible horrific terrible awful scary sick disgusting tragic
    unbelievable fear scared safe hearts heart thinking solidarity sympathy sympathies
    """
_REACTION = frozenset(_REACTION_TEXT.split())
"""Words of sympathy and reaction: a post made of them (no name, no number) reports nothing."""
_NUMBER_TEXT = "two three four five six seven eight nine ten eleven twelve dozen dozens hundreds"
_NUMBER_WORDS = frozenset(_NUMBER_TEXT.split())
_NOISE = re.compile(r"https?://\S+|www\.\S+|[@#]\w+")
_NAME = re.compile(
    r"(?=[A-Z])\b([A-Z][a-z]+(?:[-'’][A-Za-z]+)?)\s+([A-Z][a-z]+(?:[-'’][A-Za-z]+)?)"
)
_NUMBER = re.compile(r"\d(?<![\w:]\d)[\d,.]*(?![\w:])")
"""Both run on every candidate of some questions, so each starts with a character test (a
capital, a digit) that rejects most positions at once; the word-boundary and look-behind
conditions, checked after it, are the same as written first."""


_LETTER_BYTES = bytes(c if 97 <= c <= 122 else 32 for c in range(256))
"""Byte table keeping ``a``-``z``, every other byte a space."""


def _letter_words(text: str) -> list[str]:
    """The ``[a-z]+`` runs of ``text.lower()``, through a byte table rather than a regex (it
    runs on every candidate): the UTF-8 bytes of other characters are all non-letters, so they
    separate words just as the characters do."""
    raw = text.lower().encode("utf-8", "surrogatepass")
    return raw.translate(_LETTER_BYTES).decode("ascii").split()


def _facts(text: str, asked: set[str]) -> tuple[bool, bool]:
    """Whether ``text`` states a name (two capitalised words, one not asked about) and a number
    (a figure or number word outside links, handles and hashtags)."""
    body = _NOISE.sub(" ", text)
    name = any(a.lower() not in asked or b.lower() not in asked for a, b in _NAME.findall(body))
    number = bool(_NUMBER.search(body)) or not _NUMBER_WORDS.isdisjoint(_letter_words(body))
    return name, number


def _prior(post: Post, u: Understanding, asked: set[str], params: RetrieveParams) -> float:
    """Answer-type and informativeness prior (module docstring, step 4b)."""
    reaction = not _REACTION.isdisjoint(_letter_words(post.text))
    happening = u.intent == "happening"
    if not reaction and not u.answer_type and not happening:
        return 1.0
    name, number = _facts(post.text, asked)
    factor = 1.0
    if (u.answer_type == "person" and name) or (u.answer_type == "count" and number):
        factor *= 1 + params.answer_boost
    if (
        (reaction or (happening and len(content_words(post.text)) < params.short_words))
        and not name
        and not number
    ):
        factor *= params.reaction_penalty
    if happening:
        a = post.author
        signals = (
            bool(post.urls) or "http" in post.text,
            a.verified or (a.followers or 0) >= params.wide_reach,
            not post.reply_to,
            name or number,
        )
        factor *= 1 + params.informative_boost * sum(signals) / len(signals)
    return factor


def _burst(
    db: Database,
    bounds: Bounds,
    asked: Sequence[str],
    as_of_ms: int,
    params: RetrieveParams,
    stories: Sequence[Story],
) -> tuple[dict[str, float], list[Hit], dict[str, Post]]:
    """The words bursting among the question's matches at ``as_of_ms`` (module docstring,
    step 5b), the window's best BM25 matches (candidates too) and the posts read.

    :func:`firesift.burst.burst_at` on the first-pass query, asked words and their
    inflections excluded, words read as :func:`~firesift.answer.understand.content_words`
    reads them. Terms of the trend stories related to the question, which the tracker found
    bursting across the whole stream, count at full weight."""
    stems = [_stem(w) for w in asked]
    found = burst_at(
        db,
        bounds.query(_any([Word(w) for w in asked])),
        as_of_ms=as_of_ms,
        stems=stems,
        params=BurstParams(
            boost=params.burst_boost,
            window_ms=params.burst_window_ms,
            posts=params.burst_posts,
            accounts=params.burst_accounts,
        ),
        stop=NOT_CONTENT,
    )
    words = dict(found.words)
    if words:
        for story in stories:
            for term in story.terms:
                words.update(dict.fromkeys(burst_terms(term, stems, NOT_CONTENT), 1.0))
    return words, found.window, found.posts


_stem = stem


def _feedback_terms(
    posts: Sequence[tuple[Post, float]], asked: dict[str, float], k: int
) -> list[str]:
    """RM1 weights over the feedback posts; the ``k`` heaviest words not already asked."""
    total = sum(s for _, s in posts) or 1.0
    weights: dict[str, float] = {}
    stems = [_stem(w) for w in asked]
    for post, score in posts:
        words = content_words(post.text)
        if not words:
            continue
        share = (score / total) / len(words)
        for w in words:
            if len(w) < 3 or w.isdigit() or w.startswith(("http", "t.co")):
                continue
            weights[w] = weights.get(w, 0.0) + share
    ranked = sorted(weights, key=lambda w: (-weights[w], w))
    fresh = (w for w in ranked if not any(w.startswith(s) or s.startswith(_stem(w)) for s in stems))
    return list(islice(fresh, k)) if k >= 0 else list(fresh)[:k]


def _half_life(u: Understanding) -> int:
    if u.time.kind in ("live", "recent") and u.time.window is not None:
        return max(30 * 60_000, to_ms_delta(u.time.window) // 2)
    if u.time.kind in ("day", "date", "since_day", "since_clock"):
        return 24 * 3_600_000
    return RankParams().half_life_ms


def to_ms_delta(d: timedelta) -> int:
    return int(d.total_seconds() * 1000)


def _related_stories(report: TrendReport | None, terms: dict[str, float]) -> list[Story]:
    if report is None:
        return []
    if not terms:
        return list(report.stories)
    stems = [_stem(t) for t in terms]
    out = []
    for s in report.stories:
        words = " ".join((*s.terms, s.title)).lower().replace("#", " ").split()
        if any(w.startswith(st) for w in words for st in stems):
            out.append(s)
    return out


def _newest_ms(db: Database) -> int | None:
    """When the newest stored post was created (``None`` for an empty store)."""
    newest = db.store.stats().max_created_at
    return None if newest is None else to_ms(newest)


def _search(
    db: Database, query: Query, *, as_of_ms: int, limit: int, open_ended: bool
) -> list[Hit]:
    """The ``limit`` best BM25 hits of ``query`` among posts created at or before ``as_of_ms``.

    ``open_ended`` says that no stored post was newer than ``as_of_ms`` a moment ago ("now" on a
    live stream, an archive's newest post). A query without a time window then cannot lose
    anything to the ``created <= as_of`` bound, yet that bound costs the index about half of a
    search: a range filter intersected with the words stops the index from skipping blocks of
    postings that cannot reach the top. So the query runs without it and the bound is checked
    on the hits: a bound is a filter (it changes no score), so when every one of the best
    ``limit`` unbounded hits satisfies it they are exactly the best ``limit`` bounded ones. A
    post newer than ``as_of_ms`` among them (one arrived since, or the hint was wrong) means
    running the bounded query, as without the hint."""
    index = db.index
    if open_ended and query.since_ms is None and query.until_ms is None:
        hits = index.search(query, as_of_ms=None, limit=limit)
        if all(h.created_ms <= as_of_ms for h in hits):
            return hits
    return index.search(query, as_of_ms=as_of_ms, limit=limit)


def retrieve(
    db: Database,
    u: Understanding,
    *,
    as_of: datetime,
    filters: Filters = NO_FILTERS,
    params: RetrieveParams | None = None,
    report: TrendReport | None = None,
    limit: int | None = None,
) -> EvidencePool:
    """The evidence pool for question ``u`` at ``as_of`` (see the module docstring);
    ``limit`` hits (default ``filters.max_results``) plus their thread context."""
    params = params or RetrieveParams()
    pool = EvidencePool(as_of)
    bounds = constraints(u, filters, as_of)
    n_hits = max(1, limit if limit is not None else filters.max_results)
    newest = _newest_ms(db)
    open_ended = newest is not None and newest <= to_ms(as_of)
    ranked, found = _ranked(db, u, bounds, as_of, filters, params, report, pool, n_hits, open_ended)
    if found < params.min_results and not bounds.stated_window and bounds.since_ms is not None:
        wider = Bounds(bounds.nodes, None, bounds.until_ms, False)
        more, more_found = _ranked(
            db, u, wider, as_of, filters, params, report, pool, n_hits, open_ended
        )
        if more_found > found:
            pool.warnings.append(
                f"few posts in the {u.time.describe()} window; older posts are included"
            )
            ranked = more
    for post, cand in ranked:
        pool.add(
            post,
            "story" if cand.story and cand.bm25 == 0 else "hit",
            score=cand.score,
            story=cand.story,
            collapsed=cand.collapsed,
        )
    _threads(db, pool, params, as_of, bounds, filters)
    return pool


def _diversified(
    result: Ranked,
    cands: dict[str, _Cand],
    posts: dict[str, Post],
    params: RetrieveParams,
    n: int,
) -> list[tuple[Post, _Cand]]:
    """The ``n`` best ranked hits once the k-th post of an account is scored ``author_decay **
    k`` lower (module docstring, step 7), best first, each with the story of its group.

    Every hit's decayed score is needed to know the best, but only those ``n`` are built."""
    seen_authors: dict[str, int] = {}
    decayed: list[tuple[float, str, RankedHit]] = []
    for rh in result.hits:
        author = posts[rh.key].author
        k = seen_authors.get(author.id or author.handle, 0)
        seen_authors[author.id or author.handle] = k + 1
        decayed.append((rh.score * params.author_decay**k, rh.key, rh))
    decayed.sort(key=lambda t: (-t[0], t[1]))
    out = []
    for score, key, rh in decayed[: max(0, n)]:
        cand = cands[key]
        story = cand.story or next(
            (cands[x].story for x in rh.collapsed_keys if cands[x].story), None
        )
        best = replace(cand, score=score, story=story, collapsed=rh.collapsed_keys)
        out.append((posts[key], best))
    return out


def _ranked(
    db: Database,
    u: Understanding,
    bounds: Bounds,
    as_of: datetime,
    filters: Filters,
    params: RetrieveParams,
    report: TrendReport | None,
    pool: EvidencePool,
    n_hits: int,
    open_ended: bool = False,
) -> tuple[list[tuple[Post, _Cand]], int]:
    """The ``n_hits`` best hits (module docstring, steps 2-7) and how many there were in
    all (after collapsing)."""
    as_of_ms = to_ms(as_of)
    index = db.index
    cands: dict[str, _Cand] = {}
    terms = u.terms
    asked = asked_words(u, params)

    scale: list[float] = []

    def any_of(words: Sequence[str]) -> list[tuple[Hit, float]]:
        """Hits for posts with any of ``words``, each with its score relative to the best."""
        hits = _search(
            db,
            bounds.query(_any([Word(w) for w in words])),
            as_of_ms=as_of_ms,
            limit=params.candidates,
            open_ended=open_ended,
        )
        top = max((h.score for h in hits), default=0.0) or 1.0
        scale.append(top)
        return [(h, h.score / top) for h in hits]

    if terms:
        for h, relative in any_of(asked):
            cands[h.key] = _Cand.of(h, bm25=relative)
    else:
        first = index.search(
            bounds.query(), as_of_ms=as_of_ms, limit=params.candidates, sort="recent"
        )
        for h in first:
            cands[h.key] = _Cand.of(h)
    posts = db.store.get_keyed(cands)
    if terms and params.feedback_terms and cands:
        best = sorted(cands.values(), key=lambda c: -c.bm25)[: params.feedback_docs]
        fb_posts = [(posts[c.key], c.bm25) for c in best if c.key in posts]
        extra = _feedback_terms(fb_posts, dict.fromkeys(asked, 1.0), params.feedback_terms)
        if extra:
            second = any_of(extra)
            new = [h.key for h, _ in second if h.key not in cands]
            for h, relative in second:
                c = cands.get(h.key)
                if c is None:
                    c = cands[h.key] = _Cand.of(h)
                c.feedback = relative
            posts.update(db.store.get_keyed(new))
    stories = _related_stories(report, terms) if u.intent == "happening" else []
    if stories:
        story_of = {k: s.id for s in reversed(stories) for k in s.top_posts[: params.story_posts]}
        missing = [k for k in story_of if k not in cands]
        posts.update(db.store.get_keyed(missing))
        for key, sid in story_of.items():
            p = posts.get(key)
            if p is None:
                continue
            c = cands.get(key)
            if c is None:
                c = cands[key] = _Cand(
                    key,
                    0.0,
                    to_ms(p.created_at),
                    p.metrics.likes,
                    p.metrics.reposts,
                    dup_fingerprint(p.text),
                    p.repost_of or key,
                )
            c.story = sid
        pool.stories = tuple(stories)
    burst: dict[str, float] = {}
    if u.intent == "happening" and terms and params.burst_boost > 0:
        burst, window, read = _burst(db, bounds, asked, as_of_ms, params, stories)
        posts.update((k, p) for k, p in read.items() if k not in posts)
        for h in window:
            if h.key not in cands:
                cands[h.key] = _Cand.of(h, bm25=min(1.0, h.score / scale[0]))
    weights = _idf_weights(db, u, list(posts.values()), params) if terms else {}
    coverage = TermCoverage(terms, u.expansions, weights)
    asked_set = {w for t in asked for w in re.findall(r"\w+", t.lower())}
    lam = params.feedback_weight
    kept: list[_Cand] = []
    considered: list[Post] = []
    for key, c in cands.items():
        p = posts.get(key)
        if p is None or to_ms(p.created_at) > as_of_ms:
            continue
        if filters.sources and p.source not in filters.sources:
            continue
        if filters.min_views and (p.metrics.views or 0) < filters.min_views:
            continue
        if terms:
            cov = coverage(p.text)
            rel = ((1 - lam) * c.bm25 + lam * c.feedback) * (params.coverage_floor + cov)
            rel *= _prior(p, u, asked_set, params)
            if cov >= CONSIDER_COVERAGE:
                considered.append(p)
        else:
            rel = 1.0
            considered.append(p)
        if c.story:
            rel *= 1 + params.story_boost
        if burst:
            rel *= 1 + params.burst_boost * burst_share(burst_terms(p.text, (), NOT_CONTENT), burst)
        c.score = max(rel, 1e-6)
        kept.append(c)
    pool.consider(considered)
    texts = {c.key: posts[c.key].text for c in kept}
    rparams = RankParams(half_life_ms=_half_life(u))
    result = rank(kept, as_of_ms=as_of_ms, limit=len(kept), texts=texts, params=rparams)
    return _diversified(result, {c.key: c for c in kept}, posts, params, n_hits), len(result.hits)


def _threads(
    db: Database,
    pool: EvidencePool,
    params: RetrieveParams,
    as_of: datetime,
    bounds: Bounds,
    filters: Filters,
) -> None:
    as_of_ms = to_ms(as_of)
    for item in pool.hits()[: params.thread_hits]:
        post = item.post
        if post.reply_to and post.conversation_id and post.conversation_id != post.id:
            root = db.store.get(post.source, post.conversation_id)
            if root is not None and post_matches(root, bounds, filters):
                pool.add(root, "root", parent=item.key)
        replies = db.store.replies_to(post.source, post.id, until_ms=as_of_ms)
        allowed = [r for r in replies if post_matches(r, bounds, filters)]
        for reply in allowed[: params.replies_per_hit]:
            pool.add(reply, "reply", parent=item.key)


class StreamTools:
    """:class:`~firesift.answer.composer.Tools` over a database, bounded by ``pool.as_of``;
    every post returned is added to ``pool`` so it can be cited."""

    def __init__(self, db: Database, pool: EvidencePool, filters: Filters = NO_FILTERS) -> None:
        self.db = db
        self.pool = pool
        self.filters = filters
        self.bounds = filter_bounds(filters)

    def _allowed(self, posts: Sequence[Post]) -> list[Post]:
        return [p for p in posts if post_matches(p, self.bounds, self.filters)]

    def search_posts(
        self,
        query: str,
        since: datetime | None = None,
        until: datetime | None = None,
        from_: str | None = None,
        limit: int = 10,
    ) -> list[Post]:
        q = parse(query)
        nodes = [n for n in (q.expr,) if n is not None] + list(self.bounds.nodes)
        if from_:
            nodes.append(Field("from", handle_key(from_)))
        lo = [
            x
            for x in (q.since_ms, to_ms(since) if since else None, self.bounds.since_ms)
            if x is not None
        ]
        hi = [
            x
            for x in (q.until_ms, to_ms(until) if until else None, self.bounds.until_ms)
            if x is not None
        ]
        expr = Bounds(tuple(nodes)).query().expr
        as_of_ms = to_ms(self.pool.as_of)
        ranked = self.db.index.ranked_search(
            Query(expr, max(lo) if lo else None, min(hi) if hi else None),
            as_of_ms=as_of_ms,
            limit=max(1, min(limit, 50)),
        )
        found = self.db.store.get_many(split_key(k) for k in ranked.keys)
        posts = [found[split_key(k)] for k in ranked.keys if split_key(k) in found]
        return [i.post for i in self.pool.add_many(self._allowed(posts), "tool")]

    def get_thread(self, id: str) -> list[Post]:
        source, pid = ("", id) if ":" not in id or id.startswith("at://") else split_key(id)
        sources = [source] if source else sorted(self.db.store.stats().sources) or ["x"]
        as_of_ms = to_ms(self.pool.as_of)
        for src in sources:
            post = self.db.store.get(src, pid)
            if post is None:
                continue
            conv = post.conversation_id or post.id
            thread = self.db.store.thread(src, conv, until_ms=as_of_ms) or [post]
            return [i.post for i in self.pool.add_many(self._allowed(thread), "tool")]
        return []

    def get_trends(self) -> TrendReport | None:
        return trend_report(self.db, to_ms(self.pool.as_of))
