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
        post_id = as_str(obj.get("id"), "id")
        text = obj.get("text")
        if not isinstance(text, str):
            raise ParseError(f"post {post_id}: text must be a string")
        source = obj.get("source") or "x"
        if not isinstance(source, str) or not source.isascii() or not source.isidentifier():
            raise ParseError(f"post {post_id}: source must be a name like 'x', got {source!r}")
        author = _author(obj)
        url = optional_str(obj.get("url")) or _url(source, author.handle, post_id)
        edited = obj.get("edited_at")
        hashtags = _listed(obj, "hashtags", "#") if "hashtags" in obj else find_hashtags(text)
        mentions = _listed(obj, "mentions", "@") if "mentions" in obj else find_mentions(text)
        return [
            Post(
                source=source,
                id=post_id,
                text=text,
                created_at=parse_time(obj.get("created_at")),
                author=author,
                url=url,
                lang=lang_or_none(obj.get("lang")),
                reply_to=_first_id(obj, "reply_to", "in_reply_to_status_id", "parent_id"),
                conversation_id=_first_id(obj, "conversation_id", "thread_id"),
                quote_of=optional_str(obj.get("quote_of")),
                repost_of=optional_str(obj.get("repost_of")),
                metrics=_metrics(obj),
                hashtags=hashtags,
                mentions=mentions,
                urls=_strings(obj, "urls") if "urls" in obj else find_urls(text),
                media_alt=_strings(obj, "media_alt") if "media_alt" in obj else (),
                edit_of=_strings(obj, "edit_of") if "edit_of" in obj else (),
                edited_at=parse_time(edited, what="edited_at") if edited else None,
            )
        ]


def _author(obj: dict[str, Any]) -> Author:
    a = obj.get("author")
    if isinstance(a, dict):
        handle = optional_str(a.get("handle") or a.get("screen_name") or a.get("username")) or ""
        handle = handle.lstrip("@")
        followers = a.get("followers", a.get("followers_count"))
        return Author(
            id=optional_str(a.get("id", a.get("id_str"))) or handle,
            handle=handle,
            name=optional_str(a.get("name")) or "",
            verified=bool(a.get("verified")),
            followers=optional_int(followers),
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
        return Metrics(
            likes=metric(counts, "likes", "like_count", "favorite_count"),
            reposts=metric(counts, "reposts", "retweet_count", "repost_count"),
            replies=metric(counts, "replies", "reply_count"),
            quotes=metric(counts, "quotes", "quote_count"),
            views=optional_int(counts.get("views", counts.get("impression_count"))),
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


def _strings(obj: dict[str, Any], key: str) -> tuple[str, ...]:
    return dedupe(v for v in as_list(obj.get(key), key) if isinstance(v, str))


def _listed(obj: dict[str, Any], key: str, sigil: str) -> tuple[str, ...]:
    return dedupe(v.lstrip(sigil).lower() for v in as_list(obj.get(key), key) if isinstance(v, str))
