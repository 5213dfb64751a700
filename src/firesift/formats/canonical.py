"""Canonical JSONL: firesift's own flat post shape, and the flattened research files.

One JSON object per post with at least ``id``, ``text`` and ``created_at`` (ISO 8601, Twitter's
``"Wed Jan 07 11:06:08 +0000 2015"`` or epoch seconds/ms). Optional fields::

    source          "x" (default), "bluesky", "mastodon", ...
    author          "handle" or {id, handle | screen_name | username, name, verified,
                    followers | followers_count}
    url, lang, reply_to, conversation_id, quote_of, repost_of, edited_at
    metrics         {likes, reposts, replies, quotes, views} (X names like like_count work too)
    hashtags, mentions, urls, media_alt, edit_of     arrays of strings

The flattened PHEME / RumourEval files map as well: ``author_id``, ``author_screen_name``,
``author_name``, ``author_verified``, ``author_followers``; ``in_reply_to_status_id`` /
``parent_id`` -> ``reply_to``; ``thread_id`` -> ``conversation_id``; ``favorite_count``,
``retweet_count``, ``reply_count``, ``quote_count`` -> metrics. Other keys (labels such as
``stance`` or ``veracity``) are ignored.

Decisions:

- This is the catch-all format, registered last. Its sniff also refuses objects carrying keys
  that only a wire format has (X v2 ``entities``, v1.1 ``user`` / ``id_str``, Mastodon
  ``content``, Jetstream ``did``), so detection order never makes it steal them.
- Hashtags, mentions and URLs not listed in the object are extracted from the text (hashtags
  and mentions lowercased without ``#`` / ``@``). Listed ones are used as given (normalised the
  same way). t.co links in the text are left as they are: the flattened files list expanded
  URLs without saying which t.co link each replaces.
- ``url`` is built when absent: X posts get ``https://x.com/<handle>/status/<id>``; a Bluesky
  post whose id is an AT URI gets its bsky.app URL.
"""

from __future__ import annotations

from typing import Any

from firesift.errors import ParseError
from firesift.formats._common import (
    MAX_COUNT,
    as_list,
    as_str,
    dedupe,
    find_hashtags,
    find_mentions,
    find_urls,
    lang_or_none,
    metric,
    optional_int,
    optional_str,
    parse_time,
    x_url,
)
from firesift.formats.jetstream import POST_COLLECTION, web_url
from firesift.formats.x_v2 import TWEET_MARKERS
from firesift.post import Author, Event, Metrics, Post

__all__ = ["Canonical"]

_FOREIGN = frozenset(
    {*TWEET_MARKERS, "id_str", "user", "content", "account", "did", "commit", "payload"}
)


class Canonical:
    """firesift's canonical JSONL (and the flattened research corpora)."""

    name = "canonical"

    def sniff(self, obj: dict[str, Any]) -> bool:
        if "id" not in obj or "text" not in obj or "created_at" not in obj:
            return False
        return _FOREIGN.isdisjoint(obj)

    def parse(self, obj: dict[str, Any]) -> list[Event]:
        # The hot path of bulk ingest: one dict lookup per field, positional construction, and
        # the general helpers only for shapes other than the common one (same results).
        get = obj.get
        post_id = get("id")
        if type(post_id) is not str:
            post_id = as_str(post_id, "id")
        text = get("text")
        if not isinstance(text, str):
            raise ParseError(f"post {post_id}: text must be a string")
        source = get("source") or "x"
        if type(source) is not str or source not in _SOURCES_OK:  # noqa: SIM102
            if not isinstance(source, str) or not source.isascii() or not source.isidentifier():
                raise ParseError(f"post {post_id}: source must be a name like 'x', got {source!r}")
        author = _author(obj)
        url = get("url")
        if type(url) is not str or not _is_web(url):
            url = _url(source, author.handle, post_id)
        reply_to = get("reply_to")
        if type(reply_to) is not str or not reply_to:
            reply_to = _first_id(obj, "reply_to", "in_reply_to_status_id", "parent_id")
        conversation_id = get("conversation_id")
        if type(conversation_id) is not str or not conversation_id:
            conversation_id = _first_id(obj, "conversation_id", "thread_id")
        edited = get("edited_at")
        hashtags = _listed(obj, "hashtags", "#") if "hashtags" in obj else find_hashtags(text)
        mentions = _listed(obj, "mentions", "@") if "mentions" in obj else find_mentions(text)
        return [
            Post(
                source,
                post_id,
                text,
                parse_time(get("created_at")),
                author,
                url,
                lang_or_none(get("lang")),
                reply_to,
                conversation_id,
                optional_str(get("quote_of")),
                optional_str(get("repost_of")),
                _metrics(obj),
                hashtags,
                mentions,
                tuple(u for u in _strings(obj, "urls") if _is_web(u))
                if "urls" in obj
                else find_urls(text),
                _strings(obj, "media_alt") if "media_alt" in obj else (),
                _strings(obj, "edit_of") if "edit_of" in obj else (),
                parse_time(edited, what="edited_at") if edited else None,
            )
        ]


_SOURCES_OK = frozenset({"x", "bluesky", "mastodon"})
"""Source names known to be valid, so the common ones skip the check."""


def _author(obj: dict[str, Any]) -> Author:
    a = obj.get("author")
    if isinstance(a, dict):
        get = a.get
        handle = get("handle") or get("screen_name") or get("username")
        if type(handle) is not str:
            handle = optional_str(handle) or ""
        if handle[:1] == "@":
            handle = handle.lstrip("@")
        author_id = get("id")
        if author_id is None and "id" not in a:
            author_id = get("id_str")
        if type(author_id) is not str or not author_id:
            author_id = optional_str(author_id) or handle
        name = get("name")
        if type(name) is not str:
            name = optional_str(name) or ""
        followers = get("followers")
        if followers is None and "followers" not in a:
            followers = get("followers_count")
        return Author(
            author_id,
            handle,
            name,
            bool(get("verified")),
            followers
            if type(followers) is int and 0 <= followers <= MAX_COUNT
            else optional_int(followers),
        )
    if isinstance(a, str):
        handle = a.lstrip("@")
    else:
        flat = (
            obj.get("author_screen_name") or obj.get("author_handle") or obj.get("author_username")
        )
        handle = optional_str(flat) or ""
    return Author(
        id=optional_str(obj.get("author_id")) or handle,
        handle=handle,
        name=optional_str(obj.get("author_name")) or "",
        verified=bool(obj.get("author_verified")),
        followers=optional_int(obj.get("author_followers")),
    )


def _metrics(obj: dict[str, Any]) -> Metrics:
    counts = obj.get("metrics")
    if isinstance(counts, dict):
        get = counts.get
        likes = get("likes")
        reposts = get("reposts")
        replies = get("replies")
        quotes = get("quotes")
        views = get("views")
        if views is None and "views" not in counts:
            views = get("impression_count")
        if type(likes) is not int or not 0 <= likes <= MAX_COUNT:
            likes = metric(counts, "likes", "like_count", "favorite_count")
        return Metrics(
            likes,
            reposts
            if type(reposts) is int and 0 <= reposts <= MAX_COUNT
            else metric(counts, "reposts", "retweet_count", "repost_count"),
            replies
            if type(replies) is int and 0 <= replies <= MAX_COUNT
            else metric(counts, "replies", "reply_count"),
            quotes
            if type(quotes) is int and 0 <= quotes <= MAX_COUNT
            else metric(counts, "quotes", "quote_count"),
            None if views is None else optional_int(views),
        )
    return Metrics(
        likes=metric(obj, "favorite_count", "like_count"),
        reposts=metric(obj, "retweet_count", "repost_count"),
        replies=metric(obj, "reply_count"),
        quotes=metric(obj, "quote_count"),
    )


def _url(source: str, handle: str, post_id: str) -> str:
    if source == "x":
        return x_url(handle, post_id)
    if source == "bluesky" and post_id.startswith("at://"):
        did, _, rest = post_id[5:].partition("/")
        collection, _, rkey = rest.partition("/")
        if collection == POST_COLLECTION and rkey:
            return web_url(did, rkey)
    return ""


def _first_id(obj: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = optional_str(obj.get(key))
        if value:
            return value
    return None


def _is_web(url: str) -> bool:
    """Only http(s) links are kept: a ``javascript:`` or ``data:`` URL in a hostile payload
    must never reach a page or an API client as a link."""
    return url[:8].lower().startswith(("https://", "http://"))


def _strings(obj: dict[str, Any], key: str) -> tuple[str, ...]:
    return dedupe(v for v in as_list(obj.get(key), key) if isinstance(v, str))


def _listed(obj: dict[str, Any], key: str, sigil: str) -> tuple[str, ...]:
    return dedupe(v.lstrip(sigil).lower() for v in as_list(obj.get(key), key) if isinstance(v, str))
