"""Bluesky Jetstream v1 messages (``{did, time_us, kind, commit | identity | account}``).

Decisions:

- A post's id is its AT URI, ``at://<did>/app.bsky.feed.post/<rkey>``: likes, reposts, replies,
  quotes and deletes all reference posts by that URI, so events can be matched to posts without
  a lookup. The web URL is ``https://bsky.app/profile/<did>/post/<rkey>`` (DIDs never change;
  handles do).
- Jetstream does not name the author's handle in a commit, so ``Author.handle`` is the DID until
  an ``identity`` event supplies the handle (:class:`~firesift.post.Identity`; the store resolves
  it). Identity events without a handle carry nothing: ``[]``.
- ``created_at`` is the record's ``createdAt`` (what Bluesky shows), falling back to the relay
  time ``time_us`` when it is missing or malformed. A post ``update`` (rare; edits are not a
  Bluesky feature yet) is a new version with ``edited_at`` = ``time_us``.
- Link facets carry the full URL while the text shows a shortened form (``example.com/pa...``);
  the text gets the full URL, spliced in by UTF-8 byte offsets as the facets specify. Mention
  facets give the mentioned handle from the text span, tag facets the hashtags.
- ``conversation_id`` is the thread root (``reply.root.uri``), the post's own id for a root post,
  as on X. A record embed of a post is ``quote_of``.
- A like / repost create is a :class:`~firesift.post.MetricsUpdate` increment on the subject post
  (a repost is not a new post); like / repost deletes carry no subject, so they are ``[]``, as are
  follows, blocks, profile and status records, and ``account`` events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from firesift.errors import ParseError
from firesift.formats._common import as_dict, as_list, as_str, dedupe, from_epoch, parse_time
from firesift.post import Author, Delete, Event, Identity, MetricsUpdate, Post

__all__ = ["POST_COLLECTION", "Jetstream", "at_uri", "web_url"]

POST_COLLECTION = "app.bsky.feed.post"
_LIKE = "app.bsky.feed.like"
_REPOST = "app.bsky.feed.repost"
_POST_PATH = f"/{POST_COLLECTION}/"
_LINK = "app.bsky.richtext.facet#link"
_MENTION = "app.bsky.richtext.facet#mention"
_TAG = "app.bsky.richtext.facet#tag"


def at_uri(did: str, rkey: str) -> str:
    """The AT URI (firesift's post id) of a Bluesky post."""
    return f"at://{did}/{POST_COLLECTION}/{rkey}"


def web_url(did: str, rkey: str) -> str:
    """The bsky.app URL of a Bluesky post."""
    return f"https://bsky.app/profile/{did}/post/{rkey}"


class Jetstream:
    """Bluesky Jetstream v1 (JSON) events."""

    name = "jetstream"

    def sniff(self, obj: dict[str, Any]) -> bool:
        return "did" in obj and "kind" in obj

    def parse(self, obj: dict[str, Any]) -> list[Event]:
        did = as_str(obj.get("did"), "did")
        kind = obj.get("kind")
        if kind == "commit":
            return _commit(did, obj)
        if kind == "identity":
            identity = obj.get("identity")
            handle = identity.get("handle") if isinstance(identity, dict) else None
            if isinstance(handle, str) and handle:
                return [Identity(source="bluesky", author_id=did, handle=handle)]
            return []
        if isinstance(kind, str):
            return []
        raise ParseError("Jetstream kind must be a string")


def _time(obj: dict[str, Any]) -> datetime | None:
    time_us = obj.get("time_us")
    if isinstance(time_us, int | float) and not isinstance(time_us, bool):
        try:
            return from_epoch(time_us)
        except ParseError:  # out of range: as good as missing
            return None
    return None


def _commit(did: str, obj: dict[str, Any]) -> list[Event]:
    commit = as_dict(obj.get("commit"), "commit")
    collection = commit.get("collection")
    operation = commit.get("operation")
    if collection == POST_COLLECTION:
        rkey = as_str(commit.get("rkey"), "commit.rkey")
        if operation == "delete":
            return [Delete(source="bluesky", id=at_uri(did, rkey), at=_time(obj))]
        if operation in ("create", "update"):
            record = as_dict(commit.get("record"), "commit.record")
            return [_post(did, rkey, record, obj, edited=operation == "update")]
        return []
    if operation == "create" and collection in (_LIKE, _REPOST):
        record = as_dict(commit.get("record"), "commit.record")
        subject = as_dict(record.get("subject"), "record.subject")
        uri = subject.get("uri")
        if not isinstance(uri, str) or _POST_PATH not in uri:
            return []
        if collection == _LIKE:
            return [MetricsUpdate(source="bluesky", id=uri, likes=1, delta=True)]
        return [MetricsUpdate(source="bluesky", id=uri, reposts=1, delta=True)]
    return []


def _post(
    did: str, rkey: str, record: dict[str, Any], obj: dict[str, Any], *, edited: bool
) -> Post:
    text = record.get("text", "")
    if not isinstance(text, str):
        raise ParseError("post record text must be a string")
    post_id = at_uri(did, rkey)
    urls: list[str] = []
    mentions: list[str] = []
    tags: list[str] = []
    facets = record.get("facets")
    if facets:
        text = _apply_facets(text, as_list(facets, "record.facets"), urls, mentions, tags)

    quote_of: str | None = None
    media_alt: list[str] = []
    embed = record.get("embed")
    if isinstance(embed, dict):
        quote_of = _embed(embed, urls, media_alt)

    reply_to = conversation_id = None
    reply = record.get("reply")
    if isinstance(reply, dict):
        reply_to = _ref_uri(reply.get("parent"))
        conversation_id = _ref_uri(reply.get("root"))
    relay_time = _time(obj)
    created_at: datetime | None = None
    if isinstance(record.get("createdAt"), str):
        try:
            created_at = parse_time(record["createdAt"], what="createdAt")
        except ParseError:
            created_at = None
    if created_at is None:
        created_at = relay_time
    if created_at is None:
        raise ParseError("post has neither a valid createdAt nor time_us")
    langs = record.get("langs")
    lang = langs[0] if isinstance(langs, list) and langs and isinstance(langs[0], str) else None
    return Post(
        source="bluesky",
        id=post_id,
        text=text,
        created_at=created_at,
        author=Author(id=did, handle=did),
        url=web_url(did, rkey),
        lang=lang,
        reply_to=reply_to,
        conversation_id=conversation_id or post_id,
        quote_of=quote_of,
        hashtags=dedupe(tags),
        mentions=dedupe(mentions),
        urls=dedupe(urls),
        media_alt=dedupe(media_alt),
        edited_at=relay_time if edited else None,
    )


def _apply_facets(
    text: str, facets: list[Any], urls: list[str], mentions: list[str], tags: list[str]
) -> str:
    """Collect links, mentions and tags; return the text with link spans replaced by the URL."""
    raw = text.encode()
    splices: list[tuple[int, int, str]] = []
    for facet in facets:
        if not isinstance(facet, dict):
            continue
        index = facet.get("index")
        start = end = -1
        if isinstance(index, dict):
            s, e = index.get("byteStart"), index.get("byteEnd")
            if isinstance(s, int) and isinstance(e, int) and 0 <= s < e <= len(raw):
                start, end = s, e
        for feature in as_list(facet.get("features"), "facet.features"):
            if not isinstance(feature, dict):
                continue
            kind = feature.get("$type")
            if kind == _LINK and isinstance(feature.get("uri"), str):
                urls.append(feature["uri"])
                if start >= 0:
                    splices.append((start, end, feature["uri"]))
            elif kind == _TAG and isinstance(feature.get("tag"), str):
                tags.append(feature["tag"].lstrip("#").lower())
            elif kind == _MENTION and start >= 0:
                handle = raw[start:end].decode(errors="ignore").strip().lstrip("@").lower()
                mentions.append(handle or str(feature.get("did", "")))
    if not splices:
        return text
    splices.sort()
    out: list[bytes] = []
    pos = 0
    for start, end, uri in splices:
        if start < pos:
            continue
        out.append(raw[pos:start])
        out.append(uri.encode())
        pos = end
    out.append(raw[pos:])
    return b"".join(out).decode(errors="replace")


def _embed(embed: dict[str, Any], urls: list[str], media_alt: list[str]) -> str | None:
    """Collect external links and alt text from an embed; return a quoted post's URI."""
    kind = embed.get("$type")
    quote_of: str | None = None
    if kind == "app.bsky.embed.images":
        for image in as_list(embed.get("images"), "embed.images"):
            if isinstance(image, dict) and isinstance(image.get("alt"), str):
                media_alt.append(image["alt"].strip())
    elif kind == "app.bsky.embed.video":
        if isinstance(embed.get("alt"), str):
            media_alt.append(embed["alt"].strip())
    elif kind == "app.bsky.embed.external":
        external = embed.get("external")
        if isinstance(external, dict) and isinstance(external.get("uri"), str):
            urls.append(external["uri"])
    elif kind == "app.bsky.embed.record":
        quote_of = _ref_uri(embed.get("record"))
    elif kind == "app.bsky.embed.recordWithMedia":
        inner = embed.get("record")
        quote_of = _ref_uri(inner.get("record")) if isinstance(inner, dict) else None
        media = embed.get("media")
        if isinstance(media, dict):
            _embed(media, urls, media_alt)
    if quote_of is not None and _POST_PATH not in quote_of:
        return None
    return quote_of


def _ref_uri(ref: Any) -> str | None:
    if isinstance(ref, dict) and isinstance(ref.get("uri"), str) and ref["uri"]:
        return str(ref["uri"])
    return None
