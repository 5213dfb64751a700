"""The burst at an instant: what a query's matches *started* saying at ``as_of``.

One step shared by search (:func:`firesift.search.search` with ``sort="relevance"``, the
``firesift search`` / ``GET /api/search`` path) and answers (:mod:`firesift.answer.retrieve`,
step 5b, for "what is happening in X?"): both rank a query's matches, and both want the
developing story's posts ahead of the place's usual chatter and of whatever merely came last.

- **Two index searches, bounded by** ``as_of``: the ``posts`` best BM25 matches created in the
  last ``window_ms`` (``(as_of - window, as_of]``), and the ``posts`` newest matches created at
  or before ``as_of - window``. Both are hydrated from the store (accounts and texts); a post
  created after ``as_of`` is never read. The window's hits are returned too: a caller may add
  them to its candidates, so a story told in the last hours is not lost to BM25's older
  favourites.
- **Words that can burst** (:func:`burst_terms`): content words (:func:`firesift.textnorm.
  content_words` with the caller's stopwords) of three letters or more, not links, and not
  the query's own words or their inflections (the posts match those by construction).
- **Lifts** (:func:`firesift.rank.burst_words`): per word, the share of the window's distinct
  accounts using it minus its share of the earlier accounts, ``accounts`` accounts at least,
  scaled so the heaviest is 1. A candidate is multiplied by ``1 + boost * share``, ``share``
  being how much of the burst its words carry (:func:`firesift.rank.burst_share`,
  :meth:`Burst.factor`).
- **Constants** (:class:`BurstParams`) are those answer retrieval picked on the first half of
  the CrisisLexT26 dev events (``firesift eval happening``): a 6-hour window, 200 posts a side,
  3 accounts, boost 2. Search uses the same ones.

Cost: two searches of ``posts`` hits and one store read of at most ``2 * posts`` posts; a
window with fewer matches than ``accounts`` (nothing can burst) costs one search and its
posts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from firesift.index import Hit
from firesift.post import Post, to_ms
from firesift.query import And, Field, Node, Or, Phrase, Query, Word
from firesift.rank import BurstDoc, burst_share, burst_words
from firesift.textnorm import content_words
from firesift.trends.terms import STOPWORDS

if TYPE_CHECKING:
    from firesift.database import Database

__all__ = [
    "Burst",
    "BurstParams",
    "burst_at",
    "burst_terms",
    "query_words",
    "stem",
]


@dataclass(frozen=True, slots=True)
class BurstParams:
    """The burst constants (module docstring); ``boost`` 0 switches the boost off."""

    boost: float = 2.0
    window_ms: int = 6 * 3_600_000
    posts: int = 200
    accounts: int = 3


@dataclass(frozen=True, slots=True)
class Burst:
    """What :func:`burst_at` found: the bursting ``words`` with their lifts (heaviest 1; empty
    when nothing bursts), the window's best matches, the posts read (by ``source:id`` key, in
    the order searched) and the stopwords its words were read with."""

    words: dict[str, float]
    window: list[Hit]
    posts: dict[str, Post]
    stop: frozenset[str] = field(default=STOPWORDS)
    terms: dict[str, frozenset[str]] = field(default_factory=dict)
    """The :func:`burst_terms` of each post read, by key (so no post is tokenized twice)."""

    def share(self, text: str, key: str = "") -> float:
        """How much of the burst a post saying ``text`` carries (0 to 1); ``key`` reuses the
        words of a post read. The asked words those leave out never burst, so the share is the
        same either way."""
        if not self.words:
            return 0.0
        words = self.terms.get(key)
        if words is None:
            words = burst_terms(text, (), self.stop)
        return burst_share(words, self.words)

    def factor(self, text: str, boost: float, key: str = "") -> float:
        """The multiplier of a candidate saying ``text``: ``1 + boost * share``."""
        return 1.0 + boost * self.share(text, key)


def stem(word: str) -> str:
    """A crude stem: ``word`` without its last two letters, four letters at least (so
    ``explosion`` also excludes ``explosions``, ``boston`` also ``boston's``)."""
    return word[: max(4, len(word) - 2)]


def burst_terms(
    text: str, stems: Sequence[str], stop: frozenset[str] = STOPWORDS
) -> frozenset[str]:
    """The words of ``text`` that can burst: content words of three letters or more, not
    links, not starting with one of ``stems`` (the asked words and their inflections)."""
    prefixes = ("http", "t.co", *stems)
    return frozenset(
        w for w in content_words(text, stop) if len(w) >= 3 and not w.startswith(prefixes)
    )


def query_words(query: Query) -> list[str]:
    """The lowercase words a query asks for (bare words, phrases' words, hashtags), not those
    it excludes: every match says them, so they cannot tell the story from the chatter."""
    out: dict[str, None] = {}

    def walk(node: Node | None) -> None:
        if isinstance(node, Word | Phrase):
            out.update(dict.fromkeys(content_words(node.text)))
        elif isinstance(node, Field) and node.kind == "hashtag":
            out.update(dict.fromkeys(content_words(node.value)))
        elif isinstance(node, And | Or):
            for child in node.children:
                walk(child)

    walk(query.expr)
    return list(out)


def burst_at(
    db: Database,
    query: Query,
    *,
    as_of_ms: int,
    stems: Sequence[str],
    params: BurstParams | None = None,
    stop: frozenset[str] = STOPWORDS,
) -> Burst:
    """The burst among the matches of ``query`` at ``as_of_ms`` (module docstring); words
    starting with one of ``stems`` never burst, words in ``stop`` are not read."""
    p = params or BurstParams()
    cut = as_of_ms - p.window_ms
    since = cut + 1 if query.since_ms is None else max(query.since_ms, cut + 1)
    until = cut + 1 if query.until_ms is None else min(query.until_ms, cut + 1)
    window = db.index.search(
        Query(query.expr, since, query.until_ms), as_of_ms=as_of_ms, limit=p.posts
    )
    if len(window) < p.accounts:
        # fewer window posts than a word needs accounts: nothing bursts, whatever came before
        return Burst({}, window, db.store.get_keyed(h.key for h in window), stop)
    before = db.index.search(
        Query(query.expr, query.since_ms, until),
        as_of_ms=as_of_ms,
        limit=p.posts,
        sort="recent",
    )
    posts = db.store.get_keyed(dict.fromkeys(h.key for h in (*window, *before)))
    terms = {key: burst_terms(post.text, stems, stop) for key, post in posts.items()}
    docs = [
        BurstDoc(to_ms(post.created_at), post.author.id or post.author.handle, terms[key])
        for key, post in posts.items()
    ]
    words = burst_words(docs, as_of_ms=as_of_ms, window_ms=p.window_ms, min_accounts=p.accounts)
    return Burst(words, window, posts, stop, terms)
