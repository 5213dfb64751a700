"""Twitter API v1.1 statuses (REST, streaming and the PHEME / RumourEval archives).

Posts get ``source="x"``: v1.1 and v2 share ids, so the same tweet from either API is one post.

Decisions:

- Text: ``extended_tweet.full_text`` (streaming, >140 chars) > ``full_text`` (``tweet_mode=
  extended``) > ``text``, with the matching ``entities``; t.co links expanded, HTML entities
  unescaped, media links (``entities.media``) expanded in the text but left out of ``urls``.
- A retweet (``retweeted_status``) is a post by the retweeter with the original's full text,
  links and tags (not the truncated ``"RT @user: ..."``) and ``repost_of`` set.
- v1.1 has no conversation id, so ``conversation_id`` stays ``None``.
- Streaming control messages: ``delete`` and ``status_withheld`` become deletes; ``limit``,
  ``scrub_geo``, ``warning``, ``disconnect``, friends lists and user events carry no posts.
- Archive files add their own keys (PHEME's ``_event``, ``VERACITY``); they are ignored.
  PHEME's ``structure.json`` reply trees carry no posts (each reply names its parent in
  ``in_reply_to_status_id``): ``[]``.
"""

from __future__ import annotations

from typing import Any

from firesift.errors import ParseError
from firesift.formats._common import (
    as_dict,
    as_list,
    as_str,
    dedupe,
    lang_or_none,
    metric,
    optional_int,
    optional_str,
    parse_time,
    unescape_x,
    x_url,
)
from firesift.post import Author, Delete, Event, Metrics, Post

__all__ = ["TwitterV1"]

_CONTROL = frozenset(
    {"limit", "scrub_geo", "warning", "disconnect", "friends", "friends_str", "event",
     "user_withheld", "control", "for_user", "status_withheld", "delete"}
)  # fmt: skip


class TwitterV1:
    """Twitter v1.1 status objects and streaming messages."""

    name = "twitter_v1"

    def sniff(self, obj: dict[str, Any]) -> bool:
        if "id_str" in obj:
            return "user" in obj or "text" in obj or "full_text" in obj
        if "user" in obj and ("text" in obj or "full_text" in obj):
            return isinstance(obj["user"], dict)
        if len(obj) <= 2 and any(k in obj for k in _CONTROL):
            return _is_control(obj)
        return _is_thread_tree(obj)

    def parse(self, obj: dict[str, Any]) -> list[Event]:
        if "user" in obj or "id_str" in obj:
            return [_status(obj)]
        if _is_thread_tree(obj):
            return []
        return _control(obj)


def _is_thread_tree(obj: dict[str, Any]) -> bool:
    """PHEME's ``structure.json``: ``{tweet id: {reply id: ...} | []}``."""
    return bool(obj) and all(k.isdigit() and isinstance(v, dict | list) for k, v in obj.items())


def _is_control(obj: dict[str, Any]) -> bool:
    return all(k in _CONTROL for k in obj) and all(isinstance(v, dict | list) for v in obj.values())


def _control(obj: dict[str, Any]) -> list[Event]:
    if "delete" in obj:
        envelope = as_dict(obj["delete"], "delete")
        body = as_dict(envelope.get("status"), "delete.status")
        ts = optional_int(envelope.get("timestamp_ms"))
        return [
            Delete(
                source="x",
                id=as_str(body.get("id_str", body.get("id")), "delete.status.id"),
                at=parse_time(ts, what="timestamp_ms") if ts else None,
            )
        ]
    if "status_withheld" in obj:
        body = as_dict(obj["status_withheld"], "status_withheld")
        return [
            Delete(source="x", id=as_str(body.get("id"), "status_withheld.id"), reason="withheld")
        ]
    if _is_control(obj):
        return []
    raise ParseError("not a Twitter v1.1 status: no user object")


def _status(s: dict[str, Any]) -> Post:
    post_id = as_str(s.get("id_str", s.get("id")), "id_str")
    user = as_dict(s.get("user"), "user")
    author = Author(
        id=optional_str(user.get("id_str", user.get("id"))) or "",
        handle=optional_str(user.get("screen_name")) or "",
        name=optional_str(user.get("name")) or "",
        verified=bool(user.get("verified")),
        followers=optional_int(user.get("followers_count")),
    )
    rt = s.get("retweeted_status")
    original = rt if isinstance(rt, dict) else None
    text, urls, hashtags, mentions, media_alt = _content(original if original is not None else s)
    repost_of = None
    if original is not None:
        repost_of = optional_str(original.get("id_str", original.get("id")))
    quote_of = optional_str(s.get("quoted_status_id_str", s.get("quoted_status_id")))
    if quote_of is None and isinstance(s.get("quoted_status"), dict):
        quoted = s["quoted_status"]
        quote_of = optional_str(quoted.get("id_str", quoted.get("id")))
    return Post(
        source="x",
        id=post_id,
        text=text,
        created_at=parse_time(s.get("created_at")),
        author=author,
        url=x_url(author.handle, post_id),
        lang=lang_or_none(s.get("lang")),
        reply_to=optional_str(s.get("in_reply_to_status_id_str", s.get("in_reply_to_status_id"))),
        quote_of=quote_of,
        repost_of=repost_of,
        metrics=Metrics(
            likes=metric(s, "favorite_count"),
            reposts=metric(s, "retweet_count"),
            replies=metric(s, "reply_count"),
            quotes=metric(s, "quote_count"),
        ),
        hashtags=hashtags,
        mentions=mentions,
        urls=urls,
        media_alt=media_alt,
    )


def _content(
    s: dict[str, Any],
) -> tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Full text (t.co expanded), links, hashtags, mentions and media alt text of a status."""
    ext = s.get("extended_tweet")
    if isinstance(ext, dict) and isinstance(ext.get("full_text"), str):
        text: Any = ext["full_text"]
        entities = ext.get("entities")
        ext_entities = ext.get("extended_entities") or s.get("extended_entities")
    else:
        text = s.get("full_text", s.get("text"))
        entities = s.get("entities")
        ext_entities = s.get("extended_entities")
    if not isinstance(text, str):
        raise ParseError("status text must be a string")
    if not isinstance(entities, dict):
        entities = {}
    urls: list[str] = []
    for u in as_list(entities.get("urls"), "entities.urls"):
        if isinstance(u, dict) and isinstance(u.get("expanded_url"), str) and u["expanded_url"]:
            if isinstance(u.get("url"), str) and u["url"]:
                text = text.replace(u["url"], u["expanded_url"])
            urls.append(u["expanded_url"])
    media = as_list(entities.get("media"), "entities.media")
    if isinstance(ext_entities, dict):
        media = as_list(ext_entities.get("media"), "extended_entities.media") or media
    media_alt: list[str] = []
    for m in media:
        if not isinstance(m, dict):
            continue
        short, expanded = m.get("url"), m.get("expanded_url")
        if isinstance(short, str) and short and isinstance(expanded, str) and expanded:
            text = text.replace(short, expanded)
        alt = m.get("ext_alt_text")
        if isinstance(alt, str):
            media_alt.append(alt)
    hashtags = dedupe(
        h["text"].lower()
        for h in as_list(entities.get("hashtags"), "entities.hashtags")
        if isinstance(h, dict) and isinstance(h.get("text"), str)
    )
    mentions = dedupe(
        m["screen_name"].lower()
        for m in as_list(entities.get("user_mentions"), "entities.user_mentions")
        if isinstance(m, dict) and isinstance(m.get("screen_name"), str)
    )
    return unescape_x(text), dedupe(urls), hashtags, mentions, dedupe(media_alt)
