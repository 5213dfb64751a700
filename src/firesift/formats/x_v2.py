"""X API v2: tweet objects, response pages, filtered-stream lines, compliance records.

Shapes accepted, all producing one :class:`~firesift.post.Post` per tweet in ``data``:

- a response page ``{"data": [...] | {...}, "includes": {users, tweets, media}, "meta"}`` and a
  filtered-stream line (the same plus ``matching_rules``): ``includes`` fill in the author,
  media alt text and the full text of retweeted originals;
- a bare tweet object ``{"id", "text", ...}``, including twarc's "flattened" form where the
  expansions are inlined (``author``, ``referenced_tweets[i]`` holding the tweet,
  ``attachments.media``).

Decisions:

- Tweets without ``created_at`` (default-field responses) take the time encoded in the
  snowflake id, which is exact to the millisecond.
- Edits: ``edit_history_tweet_ids`` is ordered oldest first; ``edit_of`` is the ids *before*
  this one, so the newest version supersedes the older ones and never the other way round (an
  old version fetched late has ``edit_of=()``). An edited version keeps the original's creation
  time (decoded from the first id) in ``created_at`` and its own time in ``edited_at``.
- A retweet is a post by the retweeter whose text, links and tags are the original's full text
  (from ``includes.tweets``); the truncated ``"RT @user: ..."`` text is kept only when the
  original was not expanded.
- Data items that are not tweets (tweet counts, users, lists) and ``errors``-only or problem
  objects carry no posts: ``[]``. A tweet with ``withheld`` is still a post.
- Compliance: batch-compliance lines ``{"id", "action": "delete", "created_at", "reason"}`` for
  tweets become :class:`~firesift.post.Delete` with the reason; ``scrub_geo`` keeps the post. The
  users-compliance file has the very same shape, so the two are told apart by the id: a tweet's
  ``created_at`` is the time encoded in its snowflake id, a user's is not (pre-2013 user ids are
  not snowflakes at all). User records yield ``[]``. Compliance-stream events
  (``data.delete|withheld|drop.tweet``) become deletes as well.
- Text is unescaped (X sends ``&amp;``), t.co links are replaced by their ``expanded_url``;
  ``urls`` lists the expanded links except attached media (``pic.x.com`` / ``media_key``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
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
    snowflake_time,
    unescape_x,
    x_url,
)
from firesift.post import Author, Delete, Event, Metrics, Post

__all__ = ["TWEET_MARKERS", "XV2"]

TWEET_MARKERS = frozenset(
    {
        "edit_history_tweet_ids",
        "public_metrics",
        "referenced_tweets",
        "entities",
        "attachments",
        "edit_controls",
        "possibly_sensitive",
        "reply_settings",
        "context_annotations",
        "note_tweet",
        "matching_rules",
        "__twarc",
    }
)
"""Keys only an X v2 tweet object has (a canonical line never does)."""
_STREAM_COMPLIANCE = {"delete": "deleted", "withheld": "withheld", "drop": "dropped"}
_STREAM_COMPLIANCE_IGNORED = frozenset(
    {"undrop", "scrub_geo", "user_delete", "user_undelete", "user_withheld", "user_suspend",
     "user_unsuspend", "user_protect", "user_unprotect", "user_profile_modification"}
)  # fmt: skip
_VERIFIED_TYPES = frozenset({"blue", "business", "government"})
_COMPLIANCE_TIME_TOLERANCE = timedelta(minutes=1)
_EMPTY: Mapping[str, Any] = {}


class _Includes:
    """``includes`` of a page, indexed by id / media key."""

    __slots__ = ("media", "tweets", "users")

    def __init__(self, includes: Any) -> None:
        self.users: dict[str, dict[str, Any]] = {}
        self.tweets: dict[str, dict[str, Any]] = {}
        self.media: dict[str, dict[str, Any]] = {}
        if not isinstance(includes, dict):
            return
        for table, key, items in (
            (self.users, "id", includes.get("users")),
            (self.tweets, "id", includes.get("tweets")),
            (self.media, "media_key", includes.get("media")),
        ):
            if isinstance(items, list):
                for item in items:
                    if isinstance(item, dict) and key in item:
                        table[str(item[key])] = item


_NO_INCLUDES = _Includes(None)


class XV2:
    """X API v2 (tweets, pages, filtered stream, compliance)."""

    name = "x_v2"

    def sniff(self, obj: dict[str, Any]) -> bool:
        if "data" in obj:
            return isinstance(obj["data"], list | dict)
        if "id" in obj:
            if "text" in obj:
                if "id_str" in obj or "user" in obj:
                    return False
                return "created_at" not in obj or not TWEET_MARKERS.isdisjoint(obj)
            return "action" in obj and "reason" in obj
        if "errors" in obj:
            return isinstance(obj["errors"], list)
        problem_type = obj.get("type")
        return isinstance(problem_type, str) and "api.twitter.com/2/problems" in problem_type

    def parse(self, obj: dict[str, Any]) -> list[Event]:
        data = obj.get("data")
        if data is None:
            if "text" in obj and "id" in obj:
                return [self._tweet(obj, _NO_INCLUDES)]
            if "action" in obj and "id" in obj:
                return _compliance(obj)
            if "errors" in obj or "type" in obj:
                return []
            raise ParseError("not an X API v2 payload: no data, tweet or compliance record")
        if isinstance(data, dict):
            if "id" not in data:
                return _stream_compliance(data)
            items: list[Any] = [data]
        elif isinstance(data, list):
            items = data
        else:
            raise ParseError(f"X v2 data must be an object or array, got {type(data).__name__}")
        includes = _Includes(obj.get("includes")) if "includes" in obj else _NO_INCLUDES
        events: list[Event] = []
        for item in items:
            if not isinstance(item, dict):
                raise ParseError("X v2 data items must be objects")
            if "text" in item or "note_tweet" in item:
                events.append(self._tweet(item, includes))
        return events

    def _tweet(self, t: dict[str, Any], inc: _Includes) -> Post:
        post_id = as_str(t.get("id"), "tweet id")
        author_id = optional_str(t.get("author_id"))
        user = inc.users.get(author_id) if author_id else None
        if user is None:
            inline = t.get("author")
            user = inline if isinstance(inline, dict) else None
        author = _author(user, author_id)

        reply_to = quote_of = repost_of = None
        original: dict[str, Any] | None = None
        for ref in as_list(t.get("referenced_tweets"), "referenced_tweets"):
            if not isinstance(ref, dict):
                continue
            ref_id = optional_str(ref.get("id"))
            kind = ref.get("type")
            if kind == "replied_to":
                reply_to = ref_id
            elif kind == "quoted":
                quote_of = ref_id
            elif kind == "retweeted" and ref_id:
                repost_of = ref_id
                original = inc.tweets.get(ref_id) or (ref if "text" in ref else None)

        source = original if original is not None else t
        text, urls, hashtags, mentions = _content(source)
        media_alt = _media_alt(source, inc)

        created = t.get("created_at")
        created_at = parse_time(created) if created is not None else snowflake_time(post_id)
        if created_at is None:
            raise ParseError(f"tweet {post_id} has no created_at and its id encodes no time")
        edit_of: tuple[str, ...] = ()
        edited_at: datetime | None = None
        history = t.get("edit_history_tweet_ids")
        if isinstance(history, list) and len(history) > 1:
            ids = [str(h) for h in history]
            edit_of = tuple(ids[: ids.index(post_id)] if post_id in ids else ids)
            if edit_of:
                edited_at = created_at
                created_at = snowflake_time(edit_of[0]) or created_at

        pm = t.get("public_metrics")
        pm = pm if isinstance(pm, dict) else _EMPTY
        return Post(
            source="x",
            id=post_id,
            text=text,
            created_at=created_at,
            author=author,
            url=x_url(author.handle, post_id),
            lang=lang_or_none(t.get("lang")),
            reply_to=reply_to,
            conversation_id=optional_str(t.get("conversation_id")),
            quote_of=quote_of,
            repost_of=repost_of,
            metrics=Metrics(
                likes=metric(pm, "like_count"),
                reposts=metric(pm, "retweet_count"),
                replies=metric(pm, "reply_count"),
                quotes=metric(pm, "quote_count"),
                views=optional_int(pm.get("impression_count")),
            ),
            hashtags=hashtags,
            mentions=mentions,
            urls=urls,
            media_alt=media_alt,
            edit_of=edit_of,
            edited_at=edited_at,
        )


def _author(user: dict[str, Any] | None, author_id: str | None) -> Author:
    if user is None:
        return Author(id=author_id or "", handle="")
    pm = user.get("public_metrics")
    followers = optional_int(pm.get("followers_count")) if isinstance(pm, dict) else None
    return Author(
        id=optional_str(user.get("id")) or author_id or "",
        handle=optional_str(user.get("username")) or "",
        name=optional_str(user.get("name")) or "",
        verified=bool(user.get("verified")) or user.get("verified_type") in _VERIFIED_TYPES,
        followers=followers,
    )


def _content(t: dict[str, Any]) -> tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Text with t.co links expanded, plus the links, hashtags and mentions it carries."""
    note = t.get("note_tweet")
    if isinstance(note, dict) and isinstance(note.get("text"), str):
        text: Any = note["text"]
        entities = note.get("entities") or t.get("entities")
    else:
        text = t.get("text")
        entities = t.get("entities")
    if not isinstance(text, str):
        raise ParseError(f"tweet {t.get('id')!r} text must be a string")
    if not isinstance(entities, dict):
        return unescape_x(text), (), (), ()
    urls: list[str] = []
    for u in as_list(entities.get("urls"), "entities.urls"):
        if not isinstance(u, dict):
            continue
        short, expanded = u.get("url"), u.get("expanded_url")
        if not isinstance(expanded, str) or not expanded:
            continue
        if isinstance(short, str) and short:
            text = text.replace(short, expanded)
        display = u.get("display_url")
        is_media = "media_key" in u or (
            isinstance(display, str) and display.startswith(("pic.twitter.com/", "pic.x.com/"))
        )
        if not is_media:
            urls.append(expanded)
    hashtags = dedupe(
        h["tag"].lower()
        for h in as_list(entities.get("hashtags"), "entities.hashtags")
        if isinstance(h, dict) and isinstance(h.get("tag"), str)
    )
    mentions = dedupe(
        m["username"].lower()
        for m in as_list(entities.get("mentions"), "entities.mentions")
        if isinstance(m, dict) and isinstance(m.get("username"), str)
    )
    return unescape_x(text), dedupe(urls), hashtags, mentions


def _media_alt(t: dict[str, Any], inc: _Includes) -> tuple[str, ...]:
    attachments = t.get("attachments")
    if not isinstance(attachments, dict):
        return ()
    media: list[Any] = []
    for key in as_list(attachments.get("media_keys"), "attachments.media_keys"):
        item = inc.media.get(str(key))
        if item is not None:
            media.append(item)
    if not media:
        media = as_list(attachments.get("media"), "attachments.media")
    return dedupe(
        m["alt_text"] for m in media if isinstance(m, dict) and isinstance(m.get("alt_text"), str)
    )


def _compliance(obj: dict[str, Any]) -> list[Event]:
    post_id = as_str(obj.get("id"), "compliance id")
    reason = optional_str(obj.get("reason")) or "deleted"
    if obj.get("action") != "delete" or reason == "scrub_geo":
        return []
    created = obj.get("created_at")
    if created is not None:
        encoded = snowflake_time(post_id)
        if encoded is None or abs(encoded - parse_time(created)) > _COMPLIANCE_TIME_TOLERANCE:
            return []
    redacted = obj.get("redacted_at")
    at: datetime | None = parse_time(redacted, what="redacted_at") if redacted else None
    return [Delete(source="x", id=post_id, at=at, reason=reason)]


def _stream_compliance(data: dict[str, Any]) -> list[Event]:
    for key, body in data.items():
        if key in _STREAM_COMPLIANCE:
            body = as_dict(body, f"data.{key}")
            tweet = as_dict(body.get("tweet"), f"data.{key}.tweet")
            event_at = body.get("event_at")
            return [
                Delete(
                    source="x",
                    id=as_str(tweet.get("id"), "tweet id"),
                    at=parse_time(event_at, what="event_at") if event_at else None,
                    reason=_STREAM_COMPLIANCE[key],
                )
            ]
        if key in _STREAM_COMPLIANCE_IGNORED:
            return []
    raise ParseError("X v2 data object has neither a tweet id nor a compliance event")
