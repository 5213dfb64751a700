"""Search as a reader meets it: query text in, ranked posts from the store out.

Parses the X-style query (:mod:`firesift.query`), asks the index for candidates created at or
before ``as_of``, ranks them (:mod:`firesift.rank`: priors, reposts and near-duplicates folded)
and hydrates the winners from the store, the source of truth. Near-duplicate detection reads
only the texts of the candidates it compares (:meth:`Store.texts`, one cheap ``SELECT``). A
post the index still holds but the store has since deleted is dropped here, so a delete is
honoured even between index commits.

With ``sort="relevance"`` (and ``burst``, the default) the ranking leads with what the query's
matches *started* saying at ``as_of`` (:mod:`firesift.burst`, the step "what is happening in
X?" answers use): the matches of the last window are compared with those before it, distinct
accounts per word, and each candidate's relevance is multiplied by ``1 + boost * share``
before the priors; the window's best matches join the candidates. A search for a place an
hour after a quake then leads with the quake, not with the place's travel deals, and not
merely with the last post. The burst's store read also supplies the texts near-duplicate
detection compares. ``sort="recent"`` stays pure newest-first, and ``burst=False`` gives the
ranking without the step (evaluations compare the two).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from firesift.burst import BurstParams, burst_at, query_words, stem
from firesift.index import Hit, Sort
from firesift.post import Post, from_ms, to_ms
from firesift.query import Query, parse
from firesift.rank import RankParams, prior_score, rank

if TYPE_CHECKING:
    from firesift.database import Database

__all__ = ["Result", "SearchResponse", "post_dict", "search", "split_key"]


def split_key(key: str) -> tuple[str, str]:
    """``"bluesky:at://did/..."`` -> ``("bluesky", "at://did/...")`` (sources have no colon)."""
    source, _, pid = key.partition(":")
    return source, pid


@dataclass(frozen=True, slots=True)
class Result:
    post: Post
    score: float
    collapsed: int = 0


@dataclass(frozen=True, slots=True)
class SearchResponse:
    query: str
    as_of: datetime
    results: list[Result]
    collapsed: int
    candidates: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "as_of": self.as_of.isoformat(),
            "results": [{**post_dict(r.post), "score": round(r.score, 4)} for r in self.results],
        }


def post_dict(post: Post) -> dict[str, Any]:
    """A post's JSON shape in CLI and API output."""
    a, m = post.author, post.metrics
    return {
        "source": post.source,
        "id": post.id,
        "url": post.url,
        "author": {
            "id": a.id,
            "handle": a.handle,
            "name": a.name,
            "verified": a.verified,
            "followers": a.followers,
        },
        "created_at": post.created_at.isoformat(),
        "text": post.text,
        "lang": post.lang,
        "reply_to": post.reply_to,
        "conversation_id": post.conversation_id,
        "metrics": {
            "likes": m.likes,
            "reposts": m.reposts,
            "replies": m.replies,
            "quotes": m.quotes,
            "views": m.views,
        },
    }


def _window_texts(
    db: Database, hits: Sequence[Hit], as_of_ms: int, params: RankParams
) -> dict[str, str]:
    """Texts of the candidates :func:`firesift.rank.rank` compares for near-duplicates (its
    ``jaccard_window`` best by prior score), from :meth:`Store.texts`: no author join."""
    if not hits:
        return {}
    best = sorted(hits, key=lambda h: -prior_score(h, as_of_ms=as_of_ms, params=params))
    found = db.store.texts(split_key(h.key) for h in best[: params.jaccard_window])
    return {f"{s}:{i}": t for (s, i), t in found.items()}


def _burst_ranked(
    db: Database, q: Query, hits: list[Hit], as_of_ms: int, params: RankParams
) -> tuple[list[Hit], dict[str, str]]:
    """``hits`` and the window's best matches (module docstring), each scored ``bm25 * (1 +
    boost * share)``, with the texts of all of them (for near-duplicate detection)."""
    bp = BurstParams()
    found = burst_at(db, q, as_of_ms=as_of_ms, stems=[stem(w) for w in query_words(q)], params=bp)
    seen = {h.key for h in hits}
    pool = hits + [h for h in found.window if h.key not in seen]
    texts = {k: p.text for k, p in found.posts.items()}
    missing = [split_key(h.key) for h in pool if h.key not in texts]
    if missing:
        texts.update((f"{s}:{i}", t) for (s, i), t in db.store.texts(missing).items())
    if not found.words:
        return pool, texts
    boosted = []
    for h in pool:
        relevance = h.score if h.score > 0 else params.filter_only_relevance
        factor = found.factor(texts.get(h.key, ""), bp.boost, h.key)
        boosted.append(replace(h, score=relevance * factor) if factor != 1.0 else h)
    return boosted, texts


def search(
    db: Database,
    query: str | Query,
    *,
    as_of: datetime,
    limit: int = 20,
    sort: Sort = "relevance",
    candidates: int = 200,
    burst: bool = True,
) -> SearchResponse:
    """The ``limit`` best posts for ``query`` among those created at or before ``as_of``;
    ``burst`` (relevance order only) leads with what the matches started saying at ``as_of``
    (module docstring)."""
    q = parse(query) if isinstance(query, str) else query
    as_of_ms = to_ms(as_of)

    params = RankParams()
    hits = db.index.search(q, as_of_ms=as_of_ms, limit=max(candidates, limit), sort=sort)
    if burst and sort == "relevance" and hits:
        hits, texts = _burst_ranked(db, q, hits, as_of_ms, params)
    else:
        texts = _window_texts(db, hits, as_of_ms, params)
    ranked = rank(
        hits,
        as_of_ms=as_of_ms,
        limit=limit,
        sort=sort,
        texts=texts,
        params=params,
    )
    posts = db.store.get_many(split_key(h.key) for h in ranked.hits)
    results = []
    for h in ranked.hits:
        post = posts.get(split_key(h.key))
        if post is not None and to_ms(post.created_at) <= as_of_ms:
            results.append(Result(post, h.score, h.collapsed))
    return SearchResponse(
        query=str(query),
        as_of=from_ms(as_of_ms),
        results=results,
        collapsed=ranked.collapsed,
        candidates=ranked.candidates,
    )
