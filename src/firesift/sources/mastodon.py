"""``mastodon:INSTANCE``: a Mastodon streaming timeline over Server-Sent Events, with REST
backfill so a reconnect or a restart leaves no gap.

Protocol (docs.joinmastodon.org, ``methods/streaming`` and ``methods/timelines``):

- The streaming server may live on another host: ``GET /api/v2/instance`` gives it as
  ``configuration.urls.streaming`` (``wss://...``, used here as ``https://...``). An instance
  without that field (or without v2 instance info) streams from itself.
- SSE endpoints ``/api/v1/streaming/public``, ``/public/local``, ``/hashtag?tag=``,
  ``/list?list=`` and ``/user``, authenticated with ``Authorization: Bearer <token>`` (a user
  token is required since Mastodon 4.2). Each event is ``event: NAME`` and ``data:`` lines
  ended by a blank line; lines starting with ``:`` are comments (the ``:thump`` heartbeat),
  yielded here as keep-alives for stall detection. ``update`` and ``status.update`` (an edit)
  carry a Status as JSON, ``delete`` a status id; they are parsed by
  :mod:`firesift.formats.mastodon` as the ``{"event", "payload"}`` frame the WebSocket API
  sends, so a malformed one becomes a ``Batch.problems`` entry and the stream goes on. Other
  events (``notification``, ``filters_changed``) carry no posts.
- Backfill and gap fill: the stream is opened first (so nothing published from then on is
  missed), then one REST page of the matching timeline (``/api/v1/timelines/public`` with
  ``local=true`` for ``public:local``, ``/timelines/tag/:tag``, ``/timelines/list/:id``,
  ``/timelines/home``) is fetched with ``limit=backfill`` and, when there is a cursor,
  ``since_id=<cursor>``. What both deliver is stored once (the store keys posts by id).
- The cursor is the largest status id seen, compared as integers (Mastodon ids are numeric
  strings of varying length). Limits: one page only, so a gap longer than ``backfill``
  statuses keeps the newest ones; a remote status that federates late can carry an id below
  the cursor (remote ids follow their creation time) and is then not refetched.
- Errors: 401/403/404 stop the source (the token or the hashtag/list is wrong); 429 retries
  after ``X-RateLimit-Reset`` (an ISO time) or ``Retry-After``; 5xx retries with the HTTP
  back-off; a stream the server ends is a dropped connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
import orjson

from firesift.errors import ConfigError
from firesift.formats.reader import Messages, Parsed, Problem
from firesift.post import Post
from firesift.sources.base import Batch, Fatal, Retry, Source, SourceSpec

if TYPE_CHECKING:
    from firesift.config import Settings

__all__ = ["MastodonSource"]

_STREAMS: dict[str, tuple[str, str]] = {
    # stream -> (SSE path, REST timeline path); {tag} / {list} filled from the options
    "public": ("/api/v1/streaming/public", "/api/v1/timelines/public"),
    "public:local": ("/api/v1/streaming/public/local", "/api/v1/timelines/public"),
    "hashtag": ("/api/v1/streaming/hashtag", "/api/v1/timelines/tag/{tag}"),
    "list": ("/api/v1/streaming/list", "/api/v1/timelines/list/{list}"),
    "user": ("/api/v1/streaming/user", "/api/v1/timelines/home"),
}
_HTTP_SCHEME = {"wss": "https", "ws": "http"}
_REST_TIMEOUT = httpx.Timeout(30.0)
_STREAM_TIMEOUT = httpx.Timeout(30.0, read=None)  # silence is the runner's stall detection


class MastodonSource(Source):
    name = "mastodon"
    help = "A Mastodon streaming timeline (SSE), backfilled and gap-filled over REST."
    arg = "instance host (mastodon.social) or base URL"
    arg_required = True
    options: ClassVar[dict[str, str]] = {
        "stream": "public, public:local, hashtag, list or user (default public)",
        "tag": "the hashtag, for stream=hashtag",
        "list": "the list id, for stream=list",
        "token": "access token (default: the mastodon_token setting)",
        "backfill": "statuses fetched over REST per connect (default 40, the server cap; 0 = off)",
    }
    has_cursor = True
    stall_s = 60.0

    def __init__(self, spec: SourceSpec, settings: Settings) -> None:
        super().__init__(spec, settings)
        self.stream_name = self.option("stream", "public").lower()
        if self.stream_name not in _STREAMS:
            raise ConfigError(
                f"source {spec.key}: stream={self.stream_name!r}; known: {', '.join(_STREAMS)}"
            )
        self.tag = self.option("tag").lstrip("#")
        self.list_id = self.option("list")
        if self.stream_name == "hashtag" and not self.tag:
            raise ConfigError(f"source {spec.key}: stream=hashtag needs tag=NAME")
        if self.stream_name == "list" and not self.list_id:
            raise ConfigError(f"source {spec.key}: stream=list needs list=ID")
        self.backfill = int(self.float_option("backfill", 40))
        self.token = self.option("token") or settings.mastodon_token
        arg = spec.arg.strip().rstrip("/")
        self.base = arg if "://" in arg else f"https://{arg}"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def stream(self, cursor: str | None) -> AsyncIterator[Batch]:
        messages = Messages("mastodon")
        async with httpx.AsyncClient(headers=self._headers(), timeout=_REST_TIMEOUT) as client:
            streaming = await self._streaming_base(client)
            sse_path, rest_path = _STREAMS[self.stream_name]
            params = {"tag": self.tag} if self.stream_name == "hashtag" else {}
            if self.stream_name == "list":
                params = {"list": self.list_id}
            request = client.build_request(
                "GET",
                streaming + sse_path,
                params=params,
                headers={"Accept": "text/event-stream"},
                timeout=_STREAM_TIMEOUT,
            )
            response = await client.send(request, stream=True)
            try:
                await self._check(response)
                if self.backfill:
                    batch = await self._backfill(client, rest_path, cursor, messages)
                    cursor = batch.cursor or cursor
                    yield batch
                async for batch in self._events(response, cursor, messages):
                    cursor = batch.cursor or cursor
                    yield batch
            finally:
                await response.aclose()
        raise Retry("the server closed the stream")

    async def _streaming_base(self, client: httpx.AsyncClient) -> str:
        """Where the streaming API lives: the instance's advertised streaming URL, else the
        instance itself (older servers, or instance info without it)."""
        response = await client.get(self.base + "/api/v2/instance")
        if response.status_code == 429 or response.status_code >= 500:
            await self._check(response)
        if response.status_code != 200:
            return self.base
        try:
            url = orjson.loads(response.content)["configuration"]["urls"]["streaming"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return self.base
        if not isinstance(url, str) or "://" not in url:
            return self.base
        scheme, _, rest = url.rstrip("/").partition("://")
        return f"{ {'wss': 'https', 'ws': 'http'}.get(scheme, scheme) }://{rest}"

    async def _backfill(
        self, client: httpx.AsyncClient, rest_path: str, cursor: str | None, messages: Messages
    ) -> Batch:
        path = rest_path.format(tag=self.tag, list=self.list_id)
        params: dict[str, str | int] = {"limit": self.backfill}
        if self.stream_name == "public:local":
            params["local"] = "true"
        if cursor:
            params["since_id"] = cursor
        response = await client.get(self.base + path, params=params)
        await self._check(response)
        return _batch(messages.parse(response.content, f"{path}?since_id={cursor}"), cursor)

    async def _events(
        self, response: httpx.Response, cursor: str | None, messages: Messages
    ) -> AsyncIterator[Batch]:
        """Batches from the SSE body: one per event, a keep-alive per comment line."""
        event = ""
        data: list[str] = []
        count = 0
        async for line in response.aiter_lines():
            if line.startswith(":"):
                yield Batch()
            elif not line:
                if event and data:
                    count += 1
                    frame = {"event": event, "payload": "\n".join(data)}
                    batch = _batch(messages.value(frame, f"{self.stream_name}:{count}"), cursor)
                    cursor = batch.cursor or cursor
                    yield batch
                event, data = "", []
            else:
                field, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if field == "event":
                    event = value
                elif field == "data":
                    data.append(value)

    async def _check(self, response: httpx.Response) -> None:
        """Raise what an HTTP error status means for this source."""
        code = response.status_code
        if code < 400:
            return
        await response.aread()
        detail = _error_text(response)
        what = f"{response.request.method} {response.request.url.path} -> HTTP {code}{detail}"
        if code in (401, 403):
            raise Fatal(
                f"{what}: the access token was refused; set token= or mastodon_token "
                "(FIRESIFT_MASTODON_TOKEN) to a valid user token"
            )
        if code == 404:
            raise Fatal(f"{what}: no such instance, hashtag or list (check the URI and token)")
        if code == 429:
            raise Retry(f"{what}: rate limited", kind="rate", after=_retry_after(response))
        raise Retry(what, kind="http")


def _batch(results: list[Parsed | Problem], cursor: str | None) -> Batch:
    """A batch whose cursor is the largest status id among ``cursor`` and its posts."""
    batch = Batch.of(results)
    posts = [e for e in batch.events if isinstance(e, Post)]
    ids = [int(p.id) for p in posts if p.id.isdigit()]
    if cursor and cursor.isdigit():
        ids.append(int(cursor))
    newest = max((p.created_at for p in posts), default=None)
    best = str(max(ids)) if ids else cursor
    return Batch(batch.events, best, newest, problems=batch.problems)


def _error_text(response: httpx.Response) -> str:
    try:
        body: Any = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    return f" ({str(error)[:200]})" if error else ""


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait: Mastodon's ``X-RateLimit-Reset`` (an ISO time), else ``Retry-After``
    (seconds or an HTTP date)."""
    now = datetime.now(UTC)
    reset = response.headers.get("X-RateLimit-Reset")
    if reset:
        try:
            return max(0.0, (datetime.fromisoformat(reset) - now).total_seconds())
        except ValueError:
            pass
    after = response.headers.get("Retry-After")
    if after:
        if after.strip().isdigit():
            return float(after)
        try:
            return max(0.0, (parsedate_to_datetime(after) - now).total_seconds())
        except (TypeError, ValueError):
            pass
    return None
