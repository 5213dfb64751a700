"""Mastodon: REST Status entities, timelines, search / context results and streaming events.

Decisions:

- A post's id is the status ``id`` as the serving instance reports it, not the global ``uri``.
  Everything else a stream says about a status uses that id: ``in_reply_to_id``, the id in a
  ``delete`` event, ``reblog.id``, ``quote.quoted_status_id``. With the ``uri`` those would not
  match any stored post. The ``uri`` still identifies the status globally and is the ``url``
  fallback when the status has no web ``url``. (Consequence: one remote status seen through two
  instances is two posts; ingest one instance per store, or key posts by instance upstream.)
- Handles are fully qualified, ``user@instance``: local accounts' ``acct`` has no domain, so
  it is taken from the account URL. Mentions are qualified the same way and lowercased.
- ``content`` HTML becomes plain text with :class:`html.parser.HTMLParser`: paragraphs and
  other blocks are separated by a blank line, ``<br>`` is a newline, entities are unescaped,
  tags are dropped (Mastodon's ``invisible``/``ellipsis`` spans hold parts of link text, so
  links read in full; a link whose text is its URL cut short with an ellipsis, as bridges
  write them, reads as the full URL). The ``quote-inline`` fallback (``RE: <link>``, hidden by
  Mastodon's own clients when the quote is rendered) is dropped; the quote is ``quote_of``. A
  content warning (``spoiler_text``) is kept as the first paragraph and poll options as a last
  one, one per line, so both are searchable.
- ``urls``: the links in the content except mentions and hashtags, plus the preview card's URL.
- A boost (``reblog``) is a post by the booster with the original's text, tags, links and
  media, and ``repost_of`` = the original's id.
- Streaming: the WebSocket frames ``{"event", "payload"}`` (payload a Status as a JSON string or
  object, or an id for ``delete``) are parsed here; for SSE use :func:`parse_stream_event`.
  ``status.update`` yields the new version with ``edited_at`` set (the payload's, else its
  ``created_at``). ``notification``, ``filters_changed`` etc. carry no posts.
- Non-post entities that appear in recorded responses carry no posts: StatusEdit (edit
  history; it has no id of its own, and the current version arrives as a Status), Tag, trends
  PreviewCard / link, Account.
"""

from __future__ import annotations

import re
from dataclasses import replace
from html import unescape
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import orjson

from firesift.errors import ParseError
from firesift.formats._common import (
    as_dict,
    as_list,
    as_str,
    dedupe,
    metric,
    optional_int,
    optional_str,
    parse_time,
)
from firesift.post import Author, Delete, Event, Metrics, Post

__all__ = ["Mastodon", "html_to_text", "parse_stream_event"]

_BLOCKS = frozenset(
    {"p", "div", "blockquote", "pre", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "hr"}
)
_VOID = frozenset({"br", "hr", "img", "wbr", "input", "meta", "link", "area", "col", "source"})
_BLANK_RUN = re.compile(r"[ \t]*\n(?:[ \t]*\n)+[ \t]*")
_STATUS_EVENTS = frozenset({"update", "status.update"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.links: list[str] = []
        self._skip = 0
        self._href: str | None = None
        self._anchor_at = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip:
            if tag not in _VOID:
                self._skip += 1
            return
        classes = ""
        href = None
        for key, value in attrs:
            if key == "class" and value:
                classes = value
            elif key == "href":
                href = value
        if classes and "quote-inline" in classes.split():
            if tag not in _VOID:
                self._skip = 1
            return
        if tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCKS:
            self.parts.append("\n\n")
        elif tag == "li":
            self.parts.append("\n")
        elif tag == "a" and href and "mention" not in classes.split():
            self.links.append(href)
            self._href = href
            self._anchor_at = len(self.parts)

    def handle_endtag(self, tag: str) -> None:
        if self._skip:
            if tag not in _VOID:
                self._skip -= 1
            return
        if tag in _BLOCKS:
            self.parts.append("\n\n")
        elif tag == "a" and self._href is not None:
            shown = "".join(self.parts[self._anchor_at :])
            if _is_shortened(shown, self._href):
                self.parts[self._anchor_at :] = [self._href]
            self._href = None

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _is_shortened(shown: str, href: str) -> bool:
    """Whether a link's text is its URL cut short (``example.com/pa...``), as bridges and some
    servers write it instead of Mastodon's hidden-span markup."""
    shown = shown.strip()
    if shown.endswith("…"):
        shown = shown[:-1]
    elif shown.endswith("..."):
        shown = shown[:-3]
    else:
        return False
    if not shown:
        return False
    bare = href.partition("://")[2]
    return href.startswith(shown) or bare.startswith(shown) or bare.startswith("www." + shown)


def html_to_text(html: str) -> tuple[str, list[str]]:
    """Plain text of Mastodon-flavoured HTML, and the hrefs of its non-mention links."""
    if "<" not in html:
        return (unescape(html) if "&" in html else html).strip(), []
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    text = _BLANK_RUN.sub("\n\n", "".join(parser.parts)).strip()
    return text, parser.links


class Mastodon:
    """Mastodon REST entities and streaming events."""

    name = "mastodon"

    def sniff(self, obj: dict[str, Any]) -> bool:
        if "content" in obj:
            return "account" in obj
        if "payload" in obj:
            return "event" in obj
        if "ancestors" in obj:
            return "descendants" in obj
        if "statuses" in obj:
            return "accounts" in obj or "hashtags" in obj
        if "history" in obj:
            return "name" in obj or "title" in obj
        if "acct" in obj:
            return "username" in obj
        return "provider_name" in obj and "url" in obj

    def parse(self, obj: dict[str, Any]) -> list[Event]:
        if "content" in obj:
            if "id" not in obj:
                return []
            return [_status(obj)]
        if "payload" in obj:
            event = obj.get("event")
            if not isinstance(event, str):
                raise ParseError("Mastodon streaming event name must be a string")
            return _stream(event, obj["payload"])
        if "ancestors" in obj or "statuses" in obj:
            events: list[Event] = []
            for key in ("ancestors", "descendants", "statuses"):
                for status in as_list(obj.get(key), key):
                    events.append(_status(as_dict(status, f"{key} item")))
            return events
        return []


def parse_stream_event(event: str, data: str) -> list[Event]:
    """The events of one Server-Sent Event from Mastodon's streaming API (``event:`` name and
    ``data:`` text): ``update`` / ``status.update`` carry a Status as JSON, ``delete`` an id."""
    return _stream(event.strip(), data)


def _stream(event: str, payload: Any) -> list[Event]:
    if event == "delete":
        status_id = payload.strip() if isinstance(payload, str) else optional_str(payload)
        if not status_id:
            raise ParseError("Mastodon delete event without a status id")
        return [Delete(source="mastodon", id=status_id)]
    if event not in _STATUS_EVENTS:
        return []
    if isinstance(payload, str | bytes):
        try:
            payload = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"Mastodon {event} payload is not valid JSON: {exc}") from None
    status = _status(as_dict(payload, f"{event} payload"))
    if event == "status.update" and status.edited_at is None:
        status = replace(status, edited_at=status.created_at)
    return [status]


def _qualify(acct: str, profile_url: Any) -> str:
    if "@" in acct or not isinstance(profile_url, str):
        return acct
    host = urlsplit(profile_url).netloc
    return f"{acct}@{host}" if host else acct


def _status(s: dict[str, Any]) -> Post:
    status_id = as_str(s.get("id"), "status id")
    account = as_dict(s.get("account"), "account")
    acct = optional_str(account.get("acct")) or optional_str(account.get("username")) or ""
    author = Author(
        id=optional_str(account.get("id")) or "",
        handle=_qualify(acct, account.get("url")),
        name=optional_str(account.get("display_name")) or "",
        followers=optional_int(account.get("followers_count")),
    )
    reblog = s.get("reblog")
    body = reblog if isinstance(reblog, dict) else s
    content = body.get("content") or ""
    if not isinstance(content, str):
        raise ParseError(f"status {status_id} content must be a string")
    text, links = html_to_text(content)
    spoiler = body.get("spoiler_text")
    if isinstance(spoiler, str) and spoiler.strip():
        text = f"{spoiler.strip()}\n\n{text}" if text else spoiler.strip()
    poll = body.get("poll")
    if isinstance(poll, dict):
        options = [
            o["title"]
            for o in as_list(poll.get("options"), "poll.options")
            if isinstance(o, dict) and isinstance(o.get("title"), str)
        ]
        if options:
            text = "\n\n".join(filter(None, (text, "\n".join(options))))
    card = body.get("card")
    if isinstance(card, dict) and isinstance(card.get("url"), str):
        links.append(card["url"])
    mentions = dedupe(
        _qualify(m["acct"], m.get("url")).lower()
        for m in as_list(body.get("mentions"), "mentions")
        if isinstance(m, dict) and isinstance(m.get("acct"), str)
    )
    hashtags = dedupe(
        t["name"].lower()
        for t in as_list(body.get("tags"), "tags")
        if isinstance(t, dict) and isinstance(t.get("name"), str)
    )
    media_alt = dedupe(
        m["description"].strip()
        for m in as_list(body.get("media_attachments"), "media_attachments")
        if isinstance(m, dict) and isinstance(m.get("description"), str)
    )
    edited = s.get("edited_at")
    lang = body.get("language")
    url = optional_str(s.get("url")) or optional_str(body.get("url")) or optional_str(s.get("uri"))
    return Post(
        source="mastodon",
        id=status_id,
        text=text,
        created_at=parse_time(s.get("created_at")),
        author=author,
        url=url or "",
        lang=lang if isinstance(lang, str) and lang else None,
        reply_to=optional_str(s.get("in_reply_to_id")),
        quote_of=_quote_id(s.get("quote")),
        repost_of=optional_str(reblog.get("id")) if isinstance(reblog, dict) else None,
        metrics=Metrics(
            likes=metric(s, "favourites_count"),
            reposts=metric(s, "reblogs_count"),
            replies=metric(s, "replies_count"),
            quotes=metric(s, "quotes_count"),
        ),
        hashtags=hashtags,
        mentions=mentions,
        urls=dedupe(links),
        media_alt=media_alt,
        edited_at=parse_time(edited, what="edited_at") if edited else None,
    )


def _quote_id(quote: Any) -> str | None:
    if not isinstance(quote, dict):
        return None
    if "content" in quote:
        return optional_str(quote.get("id"))
    quoted = quote.get("quoted_status")
    if isinstance(quoted, dict):
        return optional_str(quoted.get("id"))
    return optional_str(quote.get("quoted_status_id"))
