"""``rss:URL`` and ``rss:opml:PATH``: poll RSS 2.0 / Atom feeds; every new entry becomes a post.

Protocol (RFC 9110 sections 13.1.2, 13.1.3, 15.4.5 and 10.2.3; the RSS 2.0 specification,
rssboard.org; RFC 4287 for Atom; feedparser's documentation for what it hands back):

- **Conditional GET.** Each feed keeps the ``ETag`` and ``Last-Modified`` of its last good
  response and sends them back as ``If-None-Match`` / ``If-Modified-Since``. A ``304 Not
  Modified`` stores nothing (a keep-alive). Redirects are followed; state stays under the
  configured URL.
- **Interval.** A feed is polled every ``every=`` seconds (default 300), or every ``<ttl>``
  minutes when the channel asks for longer (the RSS 2.0 ``ttl``, capped at a day).
- **Errors, one feed** (``rss:URL``): 429 retries after ``Retry-After`` (seconds or an HTTP
  date) with the rate-limit back-off, 503 and other 5xx / 408 with the HTTP back-off and
  ``Retry-After`` when sent; 404, 410, 401, 403 and other 4xx stop the source with the URL and
  the reason; a network error or no complete response within two minutes reconnects.
- **Not a feed**: a body feedparser cannot read as one (``bozo`` with no entries, or no feed
  element: an HTML error page), or one over 16 MiB, is a ``Batch.problems`` entry naming the
  URL and the reason, and that feed is polled again after its interval doubled per
  consecutive failure (up to a day): the publisher may fix it.
- **Many feeds** (``rss:opml:PATH``, the ``xmlUrl`` of every ``<outline>`` at any depth, read
  when the source connects): one source, each feed with its own validators, interval and
  back-off, at most eight requests at a time. Any failure of one feed (the errors above, 404
  included) is such a problem, with the same doubling wait (at least what ``Retry-After``
  said); the other feeds go on. :func:`feeds_from_opml` gives the same list to a caller that
  prefers one source per feed.
- **Cursor**: compact JSON ``{feed URL: {"etag", "modified", "seen"}}``, ``seen`` being a
  short hash of every entry of the last good response (its id, text and links). A poll stores
  only entries whose hash is new, so a server that ignores conditional requests, or a restart,
  does not re-store everything; an entry whose text changes is stored again as an edit.
  The cursor is saved with the posts of the same poll, so a crash never skips one.

Posts (``source="rss"``):

- ``id``: the entry's ``id`` / ``guid`` when it is an absolute URI, else ``<feed URL>#<guid>``
  (a bare guid is only unique within its feed); no guid: the link; neither: a hash of the
  title and summary. Ids over 512 characters are replaced by their SHA-256.
- ``author``: handle = the site's host (``theguardian.com``, from the channel's ``link``, else
  the feed URL), name = the entry's author, else the feed's (an Atom entry inherits the
  feed's author), else the channel title; ``id`` = ``host/author`` so independent-account
  counting counts bylines, or the host alone when nobody is named.
- ``text``: the title, a blank line, then the summary (else the first content) as plain text.
  feedparser already sanitizes the HTML; tags are then dropped and entities decoded. An entry
  with neither is a problem.
- ``created_at``: published, else updated, else the fetch time; ``edited_at``: updated when
  later than published. Times after the fetch are clamped to it (a feed's clock can lie).
- ``url``: the entry link; ``urls``: the link, the enclosures, then the summary's links
  (http and https only). ``hashtags`` come from the text; ``lang`` from the entry, else feed.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import feedparser
import httpx
import orjson

from firesift import __version__
from firesift.errors import ConfigError
from firesift.formats._common import dedupe, find_hashtags, lang_or_none
from firesift.formats.mastodon import html_to_text
from firesift.post import Author, Event, Post
from firesift.sources.base import (
    COMMON_OPTIONS,
    Batch,
    Fatal,
    Retry,
    Source,
    SourceSpec,
    retry_after,
)

if TYPE_CHECKING:
    from firesift.config import Settings

__all__ = ["RssSource", "feeds_from_opml"]

OPML_PREFIX = "opml:"
MAX_FEED_BYTES = 16 << 20
"""Largest response body read (16 MiB); the biggest real news feeds are well under 1 MiB."""

_TIMEOUT = httpx.Timeout(30.0)
_DEADLINE_S = 120.0
_CONCURRENCY = 8
_MAX_WAIT_S = 86400.0
_MAX_ID = 512
_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
)
_HTML = frozenset({"text/html", "application/xhtml+xml"})
_WEB = ("http://", "https://")
_SPACES = re.compile(r"[^\S\n]+")
_EDGES = re.compile(r" ?\n ?")
_NEWLINES = re.compile(r"\n{3,}")
_PARSER_BUGS = (KeyError, TypeError, ValueError, AttributeError, IndexError)


def feeds_from_opml(path: str | Path) -> list[str]:
    """The feed URLs of an OPML file: the ``xmlUrl`` (http or https) of every ``<outline>`` at
    any depth, in document order, without repeats. Raises ConfigError when the file cannot be
    read, is not XML, or lists no feed."""
    where = Path(path).expanduser()
    try:
        root = ET.fromstring(where.read_bytes())
    except OSError as e:
        raise ConfigError(f"cannot read the OPML file {where}: {e.strerror}") from None
    except ET.ParseError as e:
        raise ConfigError(f"{where} is not an OPML file: {e}") from None
    urls: list[str] = []
    for outline in root.iter("outline"):
        url = next((v for k, v in outline.attrib.items() if k.lower() == "xmlurl"), "").strip()
        if url.lower().startswith(_WEB):
            urls.append(url)
    if not urls:
        raise ConfigError(f'{where} lists no feed (no <outline xmlUrl="http...">)')
    return list(dict.fromkeys(urls))


@dataclass(slots=True)
class _Feed:
    """One feed's state: what the cursor keeps (validators and seen entries) and what only
    this connection needs (when it is due, how many failures in a row)."""

    url: str
    etag: str = ""
    modified: str = ""
    seen: frozenset[str] = frozenset()
    due: float = 0.0
    failures: int = 0

    def saved(self) -> dict[str, Any]:
        return {"etag": self.etag, "modified": self.modified, "seen": sorted(self.seen)}


@dataclass(slots=True)
class _Poll:
    """What one request of one feed produced."""

    events: list[Event] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    changed: bool = False
    """A 200 that changed the feed's validators or seen entries: save the cursor."""
    ttl_s: float = 0.0
    """The channel's ``<ttl>`` in seconds."""


class _FeedProblem(Exception):
    """This response is not a usable feed: report it, poll again later."""


class RssSource(Source):
    name = "rss"
    help = "Poll RSS / Atom feeds (one URL, or opml:PATH for a list) with conditional GETs."
    arg = "feed URL, or opml:PATH of an OPML feed list"
    arg_required = True
    arg_is_url = True
    options: ClassVar[dict[str, str]] = {
        "every": "seconds between polls of a feed (default 300; a longer <ttl> wins)",
    }
    has_cursor = True
    stall_s = 0.0  # a quiet feed is not a stalled connection; each request has its deadline

    def __init__(self, spec: SourceSpec, settings: Settings) -> None:
        super().__init__(spec, settings)
        arg = spec.arg.strip()
        self.opml: Path | None = None
        if arg.lower().startswith(OPML_PREFIX):
            path, _, query = arg[len(OPML_PREFIX) :].partition("?")
            if query:
                known = ", ".join({**COMMON_OPTIONS, **self.options})
                raise ConfigError(f"source {spec.key}: unknown option(s) {query!r}; known: {known}")
            self.opml = Path(path).expanduser()
        elif not arg.lower().startswith(_WEB):
            raise ConfigError(f"source {spec.key}: {arg!r} is not an http(s) URL or opml:PATH")
        self.url = arg
        self.every = self.float_option("every", 300.0)
        if self.every <= 0:
            raise ConfigError(f"source {spec.key}: every must be more than 0 seconds")

    def _urls(self) -> list[str]:
        if self.opml is None:
            return [self.url]
        try:
            return feeds_from_opml(self.opml)
        except ConfigError as e:
            raise Fatal(str(e)) from None

    async def stream(self, cursor: str | None) -> AsyncIterator[Batch]:
        feeds = [_resume(url, cursor) for url in self._urls()]
        single = self.opml is None
        saved = {f.url: f.saved() for f in feeds}
        headers = {"User-Agent": f"firesift/{__version__} (feed poller)", "Accept": _ACCEPT}
        limit = asyncio.Semaphore(_CONCURRENCY)
        async with httpx.AsyncClient(
            headers=headers, timeout=_TIMEOUT, follow_redirects=True
        ) as client:
            while True:
                now = time.monotonic()
                due = [f for f in feeds if f.due <= now]
                if not due:
                    await asyncio.sleep(min(f.due for f in feeds) - now)
                    continue
                polls = await asyncio.gather(
                    *(self._guarded(client, limit, f, single) for f in due)
                )
                for feed, poll in zip(due, polls, strict=True):
                    if poll.changed:
                        saved[feed.url] = feed.saved()
                    yield Batch(
                        poll.events,
                        orjson.dumps(saved).decode() if poll.changed else None,
                        _newest(poll.events),
                        problems=poll.problems,
                    )

    async def _guarded(
        self, client: httpx.AsyncClient, limit: asyncio.Semaphore, feed: _Feed, single: bool
    ) -> _Poll:
        """Poll ``feed`` and schedule its next poll. A body that is not a feed, and any failure
        of one feed among many, is a problem and a longer wait for that feed alone."""
        async with limit:
            try:
                async with asyncio.timeout(_DEADLINE_S):
                    poll = await self._poll(client, feed)
            except TimeoutError:
                error: Exception = Retry(f"{feed.url}: no complete response in {_DEADLINE_S:g} s")
            except (_FeedProblem, Fatal, Retry, httpx.HTTPError, OSError) as e:
                error = e
            else:
                feed.failures = 0
                feed.due = time.monotonic() + max(self.every, poll.ttl_s)
                return poll
        if single and not isinstance(error, _FeedProblem):
            raise error
        feed.failures += 1
        after = error.after if isinstance(error, Retry) else None
        wait = max(after or 0.0, min(self.every * 2 ** (feed.failures - 1), _MAX_WAIT_S))
        feed.due = time.monotonic() + wait
        if isinstance(error, _FeedProblem | Fatal | Retry):
            reason = str(error).removeprefix(f"{feed.url}: ")
        else:
            reason = f"{type(error).__name__}: {error}".rstrip(": ")
        return _Poll(problems=[(feed.url, f"{reason}; next try in {wait:g} s")])

    async def _poll(self, client: httpx.AsyncClient, feed: _Feed) -> _Poll:
        """One conditional GET of ``feed``: its new entries. Raises _FeedProblem when the body
        is not a feed, Fatal / Retry for what the status says (see the module docstring)."""
        request = {"If-None-Match": feed.etag} if feed.etag else {}
        if feed.modified:
            request["If-Modified-Since"] = feed.modified
        async with client.stream("GET", feed.url, headers=request) as response:
            if response.status_code == 304:
                return _Poll()
            _check(feed.url, response)
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_FEED_BYTES:
                    raise _FeedProblem(f"larger than {MAX_FEED_BYTES >> 20} MiB")
            final_url = str(response.url)
            etag = response.headers.get("etag", "")
            modified = response.headers.get("last-modified", "")
            content_type = response.headers.get("content-type", "")
        fetched = datetime.now(UTC)
        parsed = await asyncio.to_thread(_parse, bytes(body), content_type, final_url)
        posts, problems = _entries(parsed, feed.url, fetched)
        keys = {p.id: _seen_key(p) for p in posts}
        fresh: list[Event] = [p for p in posts if keys[p.id] not in feed.seen]
        state = (etag, modified, frozenset(keys.values()))
        changed = state != (feed.etag, feed.modified, feed.seen)
        feed.etag, feed.modified, feed.seen = state
        return _Poll(fresh, problems, changed, _ttl_s(parsed.feed.get("ttl")))


def _resume(url: str, cursor: str | None) -> _Feed:
    """``url``'s state from the cursor; an unreadable cursor starts over (dedupe absorbs it)."""
    try:
        state = orjson.loads(cursor or "{}").get(url)
        if not isinstance(state, dict):
            return _Feed(url)
        seen = state.get("seen") or []
        return _Feed(
            url,
            str(state.get("etag") or ""),
            str(state.get("modified") or ""),
            frozenset(str(s) for s in seen) if isinstance(seen, list) else frozenset(),
        )
    except (orjson.JSONDecodeError, AttributeError):
        return _Feed(url)


def _check(url: str, response: httpx.Response) -> None:
    """Raise what an error status means for a feed."""
    code = response.status_code
    if code < 400:
        return
    what = f"{url}: HTTP {code} {response.reason_phrase}".rstrip()
    if code == 429:
        raise Retry(f"{what} (rate limited)", kind="rate", after=retry_after(response.headers))
    if code >= 500 or code == 408:
        raise Retry(what, kind="http", after=retry_after(response.headers))
    if code in (404, 410):
        raise Fatal(f"{what}: the feed does not exist (check the URL)")
    if code in (401, 403):
        raise Fatal(f"{what}: the server refuses to serve this feed")
    raise Fatal(f"{what}: the server refused the request")


def _parse(body: bytes, content_type: str, url: str) -> Any:
    """feedparser over the body (a stream, never a string: a string may be opened as a path
    or URL); the content type gives the charset, the final URL the base for relative links."""
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    return feedparser.parse(io.BytesIO(body), response_headers=headers)


def _ttl_s(raw: Any) -> float:
    """The channel's ``<ttl>`` (minutes) in seconds, capped at a day; 0 when absent or bad."""
    try:
        minutes = float(str(raw).strip()) if raw else 0.0
    except ValueError:
        return 0.0
    return min(max(minutes, 0.0) * 60.0, _MAX_WAIT_S)


def _entries(parsed: Any, url: str, fetched: datetime) -> tuple[list[Post], list[tuple[str, str]]]:
    """The posts of a parsed feed, and a problem for each entry that cannot be one. Raises
    _FeedProblem when the body is not a feed at all."""
    entries = parsed.get("entries") or []
    if not entries and (parsed.get("bozo") or not parsed.get("version")):
        reason = parsed.get("bozo_exception")
        raise _FeedProblem(f"not an RSS or Atom feed ({reason or 'no feed element'})")
    feed = parsed.get("feed") or {}
    site = _host(feed.get("link")) or _host(url)
    title = _plain(feed.get("title_detail"), feed.get("title"))
    fallback = _byline(feed) or title or site
    lang = lang_or_none(feed.get("language"))
    posts: list[Post] = []
    problems: list[tuple[str, str]] = []
    for n, entry in enumerate(entries, 1):
        try:
            post = _post(entry, url, site, fallback, lang, fetched)
        except _PARSER_BUGS as e:
            problems.append((f"{url} entry {n}", f"unreadable entry ({type(e).__name__}: {e})"))
            continue
        if post is None:
            problems.append((f"{url} entry {n}", "entry has neither a title nor any text"))
        else:
            posts.append(post)
    return posts, problems


def _post(
    entry: Any, url: str, site: str, fallback: str, lang: str | None, fetched: datetime
) -> Post | None:
    title = _plain(entry.get("title_detail"), entry.get("title"))
    detail = entry.get("summary_detail")
    if not detail and entry.get("content"):
        detail = entry["content"][0]
    body, links = _html(detail, entry.get("summary"))
    if body == title or body.startswith(title + " "):
        title = ""  # feeds without titles repeat the text's start as one
    text = "\n\n".join(part for part in (title, body) if part)
    if not text:
        return None
    link = _web(entry.get("link"))
    enclosures = [_web(e.get("href")) for e in entry.get("enclosures") or []]
    published = _time(entry.get("published_parsed"), fetched)
    # dict.get: FeedParserDict.get("updated_parsed") falls back to published, with a warning
    updated = _time(dict.get(entry, "updated_parsed"), fetched)
    created = published or updated or fetched
    edited = updated if updated is not None and updated > created else None
    byline = _byline(entry) or fallback
    author_id = f"{site}/{byline}" if byline and byline != site else site
    return Post(
        source="rss",
        id=_entry_id(entry, url, link, text),
        text=text,
        created_at=created,
        author=Author(author_id[:_MAX_ID], site, byline[:200]),
        url=link,
        lang=lang_or_none((detail or {}).get("language")) or lang,
        hashtags=find_hashtags(text),
        urls=dedupe([link, *enclosures, *(_web(u) for u in links)]),
        edited_at=edited,
    )


def _entry_id(entry: Any, url: str, link: str, text: str) -> str:
    guid = str(entry.get("id") or "").strip()
    if guid:
        scheme = urlsplit(guid).scheme
        ident = guid if scheme and len(scheme) > 1 else f"{url}#{guid}"
    elif link:
        ident = link
    else:
        ident = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    if len(ident) > _MAX_ID:
        ident = "sha256:" + hashlib.sha256(ident.encode()).hexdigest()
    return ident


def _seen_key(post: Post) -> str:
    """A short hash of what a poll compares: the entry's id, text and links."""
    h = hashlib.blake2b(digest_size=6)
    for part in (post.id, post.text, *post.urls):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _plain(detail: Mapping[str, Any] | None, value: Any) -> str:
    """A text construct as plain text (feedparser marks which ones hold HTML)."""
    if detail:
        return _html(detail, value)[0]
    return str(value or "").strip()


def _html(detail: Mapping[str, Any] | None, value: Any) -> tuple[str, list[str]]:
    """Plain text and the link targets of a text construct."""
    raw = str((detail or {}).get("value", value) or "")
    if (detail or {}).get("type") in _HTML:
        text, links = html_to_text(raw)
        return _tidy(text), links
    return _tidy(raw), []


def _tidy(text: str) -> str:
    """Runs of spaces as one, no space around line breaks, at most one blank line."""
    text = _NEWLINES.sub("\n\n", _EDGES.sub("\n", _SPACES.sub(" ", text)))
    return text.strip()


def _byline(obj: Any) -> str:
    """Who wrote it: the author's name, else the address (RSS ``<author>`` is an email)."""
    detail = obj.get("author_detail") or {}
    name = detail.get("name") or detail.get("email") or obj.get("author") or ""
    return " ".join(str(name).split())


def _web(value: Any) -> str:
    """``value`` when it is an http(s) URL, else empty (a feed's ``javascript:`` link, say)."""
    text = str(value or "").strip()
    return text if text.lower().startswith(_WEB) else ""


def _host(url: Any) -> str:
    """The host of an http(s) URL without ``www.``, lowercased; empty when there is none."""
    link = _web(url)
    host = (urlsplit(link).hostname or "") if link else ""
    return host.removeprefix("www.")


def _time(value: Any, fetched: datetime) -> datetime | None:
    """feedparser's UTC ``struct_time`` as an aware datetime, no later than ``fetched``."""
    if not value:
        return None
    try:
        year, month, day, hour, minute, second = (int(v) for v in value[:6])
        when = datetime(year, month, day, hour, minute, min(second, 59), tzinfo=UTC)
    except (TypeError, ValueError):
        return None
    return min(when, fetched)


def _newest(events: Sequence[Event]) -> datetime | None:
    return max((e.created_at for e in events if isinstance(e, Post)), default=None)
