"""Search as a reader meets it: query text in, ranked posts from the store out.

Parses the X-style query (:mod:`firesift.query`), asks the index for candidates created at or
before ``as_of``, ranks them (:mod:`firesift.rank`: priors, reposts and near-duplicates folded)
and hydrates the winners from the store, the source of truth. A post the index still holds but
the store has since deleted is dropped here, so a delete is honoured even between index commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from firesift.index import Sort
from firesift.post import Post, from_ms, to_ms
from firesift.query import Query, parse

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


def search(
    db: Database,
    query: str | Query,
    *,
    as_of: datetime,
    limit: int = 20,
    sort: Sort = "relevance",
    candidates: int = 200,
) -> SearchResponse:
    """The ``limit`` best posts for ``query`` among those created at or before ``as_of``."""
    q = parse(query) if isinstance(query, str) else query
    as_of_ms = to_ms(as_of)

    def texts(keys: Sequence[str]) -> dict[str, str]:
        found = db.store.get_many(split_key(k) for k in keys)
        return {f"{s}:{i}": p.text for (s, i), p in found.items()}

    ranked = db.index.ranked_search(
        q,
        as_of_ms=as_of_ms,
        limit=limit,
        sort=sort,
        candidates=max(candidates, limit),
        texts=texts,
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
