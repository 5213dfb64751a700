"""A parsed X-style query evaluated in memory against one post.

The index answers queries over many posts; this answers "does *this* post match?" for posts
that did not come from a constrained search: the live SSE feed (each new post against each
client's filter) and the answer engine's thread context and tool results (each post against
the question's hard constraints). Both use this one evaluator so a filter means the same thing
everywhere.

Semantics follow the index as closely as cheap in-memory checks allow: words and ``"phrases"``
match case-insensitively on whole word tokens of the text, in order for phrases (no stemming,
so stricter than the index for inflected forms); ``#tag``, ``@mention`` and ``url:`` look at the
post's listed entities and at those written in its text; ``from:`` is the author's handle,
``to:`` the first handle a reply starts with; ``lang:``, ``min_*``, ``filter:*``, ``-``, ``OR``
and ``since:``/``until:`` as in search.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from firesift.post import Post, to_ms
from firesift.query import And, Field, Flag, MinCount, Node, Not, Or, Phrase, Query, Word, parse
from firesift.textnorm import (
    extract_hashtags,
    extract_mentions,
    extract_urls,
    handle_key,
    lang_keys,
    leading_mentions,
    tag_key,
    url_domains,
)

__all__ = ["PostView", "compile_matcher", "matches"]

_TOKEN = re.compile(r"\w+")


class PostView:
    """What matching needs from a post, computed on first use and kept, so one post is
    tokenised once however many filters look at it."""

    __slots__ = ("_fields", "_words", "post")

    def __init__(self, post: Post) -> None:
        self.post = post
        self._words: str | None = None
        self._fields: dict[str, set[str]] = {}

    def words(self) -> str:
        """The text's word tokens, lowercased, space-separated and space-padded."""
        if self._words is None:
            self._words = " " + " ".join(_TOKEN.findall(self.post.text.lower())) + " "
        return self._words

    def field(self, kind: str) -> set[str]:
        found = self._fields.get(kind)
        if found is None:
            found = self._fields[kind] = self._field(kind)
        return found

    def _field(self, kind: str) -> set[str]:
        p = self.post
        if kind == "from":
            return {handle_key(p.author.handle)}
        if kind == "mention":
            return {handle_key(m) for m in p.mentions} | set(extract_mentions(p.text))
        if kind == "hashtag":
            return {tag_key(t) for t in p.hashtags} | set(extract_hashtags(p.text))
        if kind == "to":
            lead = leading_mentions(p.text) if p.reply_to else []
            return {handle_key(lead[0])} if lead else set()
        if kind == "lang":
            return set(lang_keys(p.lang))
        if kind == "url":
            return {d for u in (*p.urls, *extract_urls(p.text)) for d in url_domains(u)}
        return set()


def matches(node: Node, view: PostView) -> bool:
    """Whether the post behind ``view`` satisfies ``node``."""
    if isinstance(node, And):
        return all(matches(c, view) for c in node.children)
    if isinstance(node, Or):
        return any(matches(c, view) for c in node.children)
    if isinstance(node, Not):
        return not matches(node.child, view)
    if isinstance(node, Word | Phrase):
        phrase = " ".join(_TOKEN.findall(node.text.lower()))
        return bool(phrase) and f" {phrase} " in view.words()
    if isinstance(node, Field):
        value = node.value.lower()
        if node.kind in ("from", "mention", "to"):
            value = handle_key(value)
        elif node.kind == "hashtag":
            value = tag_key(value)
        return value in view.field(node.kind)
    if isinstance(node, MinCount):
        return int(getattr(view.post.metrics, node.metric, 0) or 0) >= node.n
    if isinstance(node, Flag):
        p = view.post
        if node.kind == "links":
            return bool(p.urls or extract_urls(p.text))
        if node.kind == "media":
            return bool(p.media_alt)
        if node.kind == "replies":
            return p.reply_to is not None
        return p.repost_of is not None
    return False


def compile_matcher(query: str | Query) -> Callable[[PostView], bool] | None:
    """A predicate for ``query`` including its time bounds (None: an empty query, everything
    matches). Raises :class:`~firesift.errors.QueryError` for a malformed query."""
    if isinstance(query, str):
        if not query.strip():
            return None
        query = parse(query)
    expr, since, until = query.expr, query.since_ms, query.until_ms

    def match(view: PostView) -> bool:
        if since is not None or until is not None:
            ms = to_ms(view.post.created_at)
            if (since is not None and ms < since) or (until is not None and ms >= until):
                return False
        return expr is None or matches(expr, view)

    return match
