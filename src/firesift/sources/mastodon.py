"""``mastodon:INSTANCE``: Mastodon timelines live over the streaming API (WebSocket or SSE),
backfilled and gap-filled over REST so a reconnect or a restart leaves no hole.

Protocol, from docs.joinmastodon.org (``methods/streaming``, ``methods/timelines``,
``methods/instance``) and the reference server (``mastodon/mastodon`` ``streaming/index.js``):

- **Discovery.** The streaming server may live on another host: ``GET /api/v2/instance`` gives
  it as ``configuration.urls.streaming`` (``wss://...``); servers without v2 (404) give
  ``urls.streaming_api`` in ``/api/v1/instance``. Without either the instance streams itself.
- **Streams.** ``public``, ``public:local``, ``public:remote``, their ``:media`` variants,
  ``hashtag`` and ``hashtag:local`` (with ``tag``), ``list`` (with ``list``) and ``user``.
- **WebSocket** (``transport=ws``, the default): one connection to ``/api/v1/streaming``; the
  client sends ``{"type": "subscribe", "stream": NAME, "tag"/"list": ...}`` per stream (so one
  connection carries several, ``stream=public,hashtag&tag=a,b``), and receives ``{"stream":
  [NAME, tag?], "event", "payload"}`` where the payload is a JSON *string* (a Status) or, for
  ``delete``, the status id. A refused subscription comes back as ``{"error", "status"}``. The
  server authenticates the ``Authorization`` header first, then an ``access_token`` query, then
  ``Sec-WebSocket-Protocol`` (the browser workaround); the header is used here, so the token
  stays out of URLs and logs. A refused handshake is an HTTP status with the reason in
  ``X-Error-Message``. The server pings every 30 s and sends nothing else while a stream is
  quiet, so this client pings every ``stall / 3`` seconds (at most 15 s) and yields each pong as
  a keep-alive: a quiet hashtag is not a stall, a black-holed connection is.
- **SSE** (``transport=sse``): ``/api/v1/streaming/public[/local|/remote]`` (``only_media=true``
  for ``:media``), ``/hashtag[/local]?tag=``, ``/list?list=``, ``/user``, one stream per
  connection. Events are ``event: NAME`` / ``data: ...`` lines ended by a blank line; lines
  starting with ``:`` are comments (``:)`` on connect, ``:thump`` every 15 s), yielded as
  keep-alives. Lines end in ``\\n`` or ``\\r\\n``; one longer than
  :data:`~firesift.formats.reader.MAX_LINE_BYTES` is dropped as it streams past and reported.
- **Events.** ``update`` (a Status), ``status.update`` (an edit: the format sets ``edited_at``,
  so the store replaces the text) and ``delete`` (a tombstone) go through
  :mod:`firesift.formats.mastodon` as ``{"event", "payload"}`` frames, so a malformed one is a
  ``Batch.problems`` entry (``<stream>#<n>``, the n-th message of the connection) and the stream
  goes on. ``notification``, ``filters_changed``, ``announcement`` carry no posts.
- **Auth.** A user token is required for streaming since Mastodon 4.2; 401/403 stop the source
  with a message naming ``token=`` and ``mastodon_token``. 404 (an unknown list) and other 4xx
  stop it too; 429 retries after ``X-RateLimit-Reset`` (an ISO time; else ``Retry-After``), 5xx
  on the HTTP back-off. The streaming server has no replay.

Decisions:

- **Stream first, then REST.** Each connection subscribes before it reads any timeline page, so
  whatever is published from then on arrives live and whatever came before is in the pages; the
  store keeps the overlap once. (A WebSocket subscription is not acknowledged; the reference
  server registers it while this client's first REST request is still travelling.) The pages
  are the timeline matching each stream: ``/api/v1/timelines/public`` (``local`` / ``remote`` /
  ``only_media``), ``/timelines/tag/:tag`` (``local``), ``/timelines/list/:id``,
  ``/timelines/home``, at most 40 per page (the server's limit).
- **Cursor** = the largest status id seen (ids are numeric strings of varying length: compared
  by length, then text). Without one (a first start) each stream gets one page of its newest
  ``backfill`` statuses, so a new source does not start empty. With one (a reconnect, a
  restart) each stream pages *forward* from it with ``min_id`` (results immediately newer than
  the id; ``since_id`` would give the newest ones and leave a hole when more than a page was
  missed) until a page comes back empty or ``catchup`` statuses were read; reaching
  ``catchup`` is reported as a problem, since the statuses between the last page and the start
  of the stream are then missing. Pages carry no cursor; one batch with the new cursor follows
  the last page, so a failure half-way repeats the whole fill (absorbed by the store's dedupe)
  instead of skipping what a second stream still had to fetch. Known limit: a remote status
  that federates late can carry an id below the cursor (remote ids follow the original post
  time) and is then not refetched.
- One source reads one instance; several instances are several sources (their keys differ by
  the instance in the URI). Status ids are the instance's own (see the format's notes).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlencode, urlsplit

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from firesift import __version__
from firesift.errors import ConfigError
from firesift.formats.reader import MAX_LINE_BYTES, Messages, Parsed, Problem
from firesift.post import Event, Post
from firesift.sources.base import Batch, Fatal, Retry, Source, SourceSpec, retry_after

if TYPE_CHECKING:
    from firesift.config import Settings

__all__ = ["STREAMS", "MastodonSource", "Subscription"]


@dataclass(frozen=True, slots=True)
class _Kind:
    """How one stream name maps onto the wire: its SSE path, its REST timeline (a ``{}`` in the
    path takes the parameter) and filter query, and which parameter it needs."""

    sse: str
    rest: str
    flags: tuple[tuple[str, str], ...] = ()
    media: bool = False
    needs: str = ""


_LOCAL, _REMOTE, _MEDIA = ("local", "true"), ("remote", "true"), ("only_media", "true")
_PUBLIC = "/api/v1/timelines/public"
STREAMS: Mapping[str, _Kind] = {
    "public": _Kind("/public", _PUBLIC),
    "public:media": _Kind("/public", _PUBLIC, (_MEDIA,), media=True),
    "public:local": _Kind("/public/local", _PUBLIC, (_LOCAL,)),
    "public:local:media": _Kind("/public/local", _PUBLIC, (_LOCAL, _MEDIA), media=True),
    "public:remote": _Kind("/public/remote", _PUBLIC, (_REMOTE,)),
    "public:remote:media": _Kind("/public/remote", _PUBLIC, (_REMOTE, _MEDIA), media=True),
    "hashtag": _Kind("/hashtag", "/api/v1/timelines/tag/{}", needs="tag"),
    "hashtag:local": _Kind("/hashtag/local", "/api/v1/timelines/tag/{}", (_LOCAL,), needs="tag"),
    "list": _Kind("/list", "/api/v1/timelines/list/{}", needs="list"),
    "user": _Kind("/user", "/api/v1/timelines/home"),
}
"""The streams this source reads (``user:notification`` and ``direct`` carry no new posts)."""

_PAGE = 40
"""Mastodon's largest timeline page."""
_REST_TIMEOUT = httpx.Timeout(30.0)
_STREAM_TIMEOUT = httpx.Timeout(30.0, read=None)  # silence is the runner's stall detection
_MAX_FRAME = 4 * MAX_LINE_BYTES
_QUEUE = 256
_MAX_PING_S = 15.0
_FATAL = frozenset((400, 401, 403, 404, 405, 410, 422))


@dataclass(frozen=True, slots=True)
class Subscription:
    """One stream of one instance: ``stream`` (a :data:`STREAMS` name) and its ``tag`` or
    ``list`` id in ``param``."""

    stream: str
    param: str = ""

    @property
    def kind(self) -> _Kind:
        return STREAMS[self.stream]

    @property
    def label(self) -> str:
        """How the server names it in WebSocket messages, joined: ``hashtag/foo``."""
        return f"{self.stream}/{self.param}" if self.param else self.stream

    def message(self) -> dict[str, str]:
        """The WebSocket ``subscribe`` message."""
        msg = {"type": "subscribe", "stream": self.stream}
        if self.kind.needs:
            msg[self.kind.needs] = self.param
        return msg

    def sse(self) -> tuple[str, dict[str, str]]:
        """The SSE path (under ``/api/v1/streaming``) and query."""
        query = {self.kind.needs: self.param} if self.kind.needs else {}
        if self.kind.media:
            query["only_media"] = "true"
        return self.kind.sse, query

    def timeline(self) -> tuple[str, dict[str, str]]:
        """The REST timeline path and its filter query."""
        path = self.kind.rest.format(quote(self.param, safe="")) if self.kind.needs else None
        return path or self.kind.rest, dict(self.kind.flags)


class MastodonSource(Source):
    name = "mastodon"
    help = (
        "Mastodon timelines live (WebSocket or SSE streaming), backfilled and gap-filled over REST."
    )
    arg = "instance host (mastodon.social) or base URL"
    arg_required = True
    options: ClassVar[dict[str, str]] = {
        "stream": f"{', '.join(STREAMS)}; a comma list over one WebSocket (default public)",
        "tag": "hashtag(s) for stream=hashtag / hashtag:local, comma separated",
        "list": "list id(s) for stream=list, comma separated",
        "token": "user access token (default: the mastodon_token setting)",
        "transport": "ws (one WebSocket, several streams) or sse (one stream) (default ws)",
        "backfill": "statuses per stream read on a first start (default and max 40; 0 = off)",
        "catchup": "most statuses per stream read to fill a gap on reconnect (default 800)",
    }
    has_cursor = True
    stall_s = 60.0

    def __init__(self, spec: SourceSpec, settings: Settings) -> None:
        super().__init__(spec, settings)
        key = spec.key
        self.subscriptions = _subscriptions(
            key, _names(self.option("stream", "public")), self.option("tag"), self.option("list")
        )
        self.transport = self.option("transport", "ws").lower()
        if self.transport not in ("ws", "sse"):
            raise ConfigError(f"source {key}: transport={self.transport!r}; known: ws, sse")
        if self.transport == "sse" and len(self.subscriptions) > 1:
            labels = ", ".join(s.label for s in self.subscriptions)
            raise ConfigError(
                f"source {key}: transport=sse carries one stream, not {labels}; "
                "use transport=ws or one source per stream"
            )
        self.backfill = self._count("backfill", _PAGE)
        if self.backfill > _PAGE:
            raise ConfigError(f"source {key}: backfill is one page: at most {_PAGE} statuses")
        self.catchup = self._count("catchup", 800)
        self.token = self.option("token") or settings.mastodon_token
        self.base = _base_url(spec.arg, key)
        self.messages = Messages("mastodon")

    def _count(self, key: str, default: int) -> int:
        value = self.float_option(key, default)
        if value != int(value):
            raise ConfigError(f"source {self.spec.key}: {key} must be a whole number")
        return int(value)

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": f"firesift/{__version__}"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    # -- one connection -------------------------------------------------------------------

    async def stream(self, cursor: str | None) -> AsyncIterator[Batch]:
        async with httpx.AsyncClient(
            headers=self._headers(), timeout=_REST_TIMEOUT, follow_redirects=True
        ) as client:
            streaming = await self._streaming_base(client)
            live = self._ws(streaming) if self.transport == "ws" else self._sse(client, streaming)
            try:
                await anext(live)  # connected and subscribed
                newest = _Newest(cursor)
                for sub in self.subscriptions:
                    async for batch in self._fill(client, sub, cursor, newest):
                        yield batch
                if newest.cursor != cursor:
                    yield Batch(cursor=newest.cursor)
                async for results in live:
                    if results is None:
                        yield Batch()
                        continue
                    batch = Batch.of(results)
                    moved, when = newest.observe(batch.events)
                    saved = newest.cursor if moved else None
                    yield Batch(batch.events, saved, when, problems=batch.problems)
            finally:
                await live.aclose()
        raise Retry(f"{urlsplit(streaming).netloc}: the server ended the stream")

    async def _streaming_base(self, client: httpx.AsyncClient) -> str:
        """Where the streaming API lives (as an http(s) base URL): the instance's advertised
        streaming URL, else the instance itself."""
        response = await self._get(client, self.base + "/api/v2/instance")
        path: tuple[str, ...] = ("configuration", "urls", "streaming")
        if response.status_code in (404, 410):
            response = await self._get(client, self.base + "/api/v1/instance")
            path = ("urls", "streaming_api")
        if response.status_code == 429 or response.status_code >= 500:
            await self._check(response)
        url = _dig(response, path) if response.status_code == 200 else None
        return _http_base(url) or self.base

    async def _fill(
        self, client: httpx.AsyncClient, sub: Subscription, cursor: str | None, newest: _Newest
    ) -> AsyncIterator[Batch]:
        """REST pages of ``sub``'s timeline: on a first start one page of the newest
        ``backfill``; else pages forward from ``cursor`` until one comes back empty (caught up)
        or ``catchup`` statuses were read."""
        if cursor is None:
            if self.backfill:
                _, batch = await self._timeline(client, sub, {"limit": str(self.backfill)}, newest)
                yield batch
            return
        anchor = cursor
        got = 0
        while got < self.catchup:
            limit = min(_PAGE, self.catchup - got)
            ids, batch = await self._timeline(
                client, sub, {"limit": str(limit), "min_id": anchor}, newest
            )
            yield batch
            if not ids:
                return
            got += len(ids)
            step = max(ids, key=_order)
            if _order(step) <= _order(anchor):
                return  # the server ignored min_id: there is nothing newer to page to
            anchor = step
        if self.catchup:
            gap = (
                f"gap fill stopped after {got} statuses (catchup={self.catchup}); statuses "
                f"newer than {anchor} published before the stream started may be missing"
            )
            yield Batch(problems=[(sub.label, gap)])

    async def _timeline(
        self,
        client: httpx.AsyncClient,
        sub: Subscription,
        page: Mapping[str, str],
        newest: _Newest,
    ) -> tuple[list[str], Batch]:
        """One timeline page of ``sub``: its status ids and a batch of its events (no cursor:
        :meth:`stream` saves one after the last page)."""
        path, flags = sub.timeline()
        params = {**flags, **page}
        response = await self._get(client, self.base + path, params)
        await self._check(response)
        ids, results = self._page(response.content, f"{path}?{urlencode(params)}")
        batch = Batch.of(results)
        _, when = newest.observe(batch.events)
        return ids, Batch(batch.events, source_time=when, problems=batch.problems)

    def _page(self, body: bytes, where: str) -> tuple[list[str], list[Parsed | Problem]]:
        """The status ids of one timeline page (to page on, even past a status the format
        refuses) and its parse results."""
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            return [], [Problem(where, f"timeline page is not JSON: {e}")]
        if not isinstance(value, list):
            return [], [Problem(where, "timeline page is not a JSON array of statuses")]
        ids = [s["id"] for s in value if isinstance(s, dict) and isinstance(s.get("id"), str)]
        return ids, self.messages.value(value, where)

    # -- WebSocket ------------------------------------------------------------------------

    async def _ws(self, streaming: str) -> AsyncGenerator[list[Parsed | Problem] | None, None]:
        """Connect, subscribe, yield None once subscribed; then each message's results, and
        None per answered ping."""
        url = _ws_url(streaming) + "/api/v1/streaming"
        host = urlsplit(url).netloc
        try:
            ws = await connect(
                url,
                additional_headers={"Authorization": f"Bearer {self.token}"}
                if self.token
                else None,
                user_agent_header=f"firesift/{__version__}",
                open_timeout=15,
                ping_interval=None,  # pinged below, each pong a keep-alive
                close_timeout=2,
                max_size=_MAX_FRAME,
                max_queue=_QUEUE,
            )
        except InvalidStatus as e:
            r = e.response
            detail = r.headers.get("X-Error-Message") or (r.body or b"").decode("utf-8", "replace")
            raise self._refusal(host, r.status_code, detail.strip()[:200], r.headers) from None
        except InvalidURI as e:
            raise Fatal(f"source {self.spec.key}: bad streaming URL {url!r}: {e}") from None
        except (OSError, TimeoutError, InvalidHandshake) as e:
            raise Retry(f"{host}: cannot connect: {type(e).__name__}: {e}") from None
        async with ws:
            for sub in self.subscriptions:
                await ws.send(orjson.dumps(sub.message()).decode())
            yield None
            queue: asyncio.Queue[str | bytes | BaseException | None] = asyncio.Queue(_QUEUE)
            tasks = [
                asyncio.create_task(_receive(ws, queue, host)),
                asyncio.create_task(_ping(ws, queue, self._ping_interval())),
            ]
            try:
                count = 0
                while True:
                    item = await queue.get()
                    if isinstance(item, BaseException):
                        raise item
                    if item is None:
                        yield None
                        continue
                    count += 1
                    yield self._ws_message(item, count, host)
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(BaseException):
                        await task

    def _ping_interval(self) -> float:
        stall = self.stall_after
        return min(_MAX_PING_S, stall / 3) if stall else _MAX_PING_S

    def _ws_message(self, raw: str | bytes, count: int, host: str) -> list[Parsed | Problem]:
        data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
        where = f"ws#{count}"
        if len(data) > MAX_LINE_BYTES:
            return [Problem(where, f"message is longer than {MAX_LINE_BYTES} bytes")]
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as e:
            return [Problem(where, f"message is not JSON: {e}")]
        if isinstance(value, dict):
            stream = value.get("stream")
            if isinstance(stream, list) and stream and all(isinstance(s, str) for s in stream):
                where = f"{'/'.join(stream)}#{count}"
            if "error" in value and "event" not in value:
                return self._subscription_error(value, where, host)
        return self.messages.value(value, where)

    def _subscription_error(
        self, value: dict[str, Any], where: str, host: str
    ) -> list[Parsed | Problem]:
        """``{"error", "status"}``: the server refused a subscription (bad tag, a list that is
        not the token's, missing scope) or failed on it."""
        status = value.get("status")
        error = str(value.get("error"))[:200]
        if not isinstance(status, int):
            return [Problem(where, f"the server reported an error: {error}")]
        labels = ", ".join(s.label for s in self.subscriptions)
        what = f"{host} refused the subscription to {labels}: {status} {error}"
        if status in (401, 403):
            raise Fatal(f"{what}: {self._token_hint()}")
        if status in _FATAL:
            raise Fatal(what)
        raise Retry(what, kind="http")

    # -- Server-Sent Events ---------------------------------------------------------------

    async def _sse(
        self, client: httpx.AsyncClient, streaming: str
    ) -> AsyncGenerator[list[Parsed | Problem] | None, None]:
        """Open the one stream; yield None once it answered, then each event's results and
        None per comment line (the ``:thump`` heartbeat)."""
        sub = self.subscriptions[0]
        path, params = sub.sse()
        request = client.build_request(
            "GET",
            streaming + "/api/v1/streaming" + path,
            params=params,
            headers={"Accept": "text/event-stream"},
            timeout=_STREAM_TIMEOUT,
        )
        host = request.url.netloc.decode()
        try:
            response = await client.send(request, stream=True)
        except httpx.TransportError as e:
            raise Retry(f"{host}: cannot connect: {type(e).__name__}: {e}") from None
        try:
            await self._check(response)
            yield None
            count = 0
            try:
                async for event in _sse_events(response):
                    if event is None:
                        yield None
                        continue
                    count += 1
                    yield self._sse_event(event, f"{sub.label}#{count}")
            except httpx.TransportError as e:
                raise Retry(f"{host}: stream broke: {type(e).__name__}: {e}") from None
        finally:
            await response.aclose()

    def _sse_event(self, event: _Event, where: str) -> list[Parsed | Problem]:
        if event.data is None:
            return [Problem(where, f"event line is longer than {MAX_LINE_BYTES} bytes")]
        try:
            data = event.data.decode("utf-8")
        except UnicodeDecodeError as e:
            return [Problem(where, f"event data is not UTF-8 (byte {e.start})")]
        return self.messages.value({"event": event.name, "payload": data}, where)

    # -- HTTP -----------------------------------------------------------------------------

    async def _get(
        self, client: httpx.AsyncClient, url: str, params: Mapping[str, str] | None = None
    ) -> httpx.Response:
        try:
            return await client.get(url, params=params)
        except httpx.TransportError as e:
            raise Retry(f"{urlsplit(url).netloc}: {type(e).__name__}: {e}") from None

    async def _check(self, response: httpx.Response) -> None:
        """Raise what an HTTP error status means for this source."""
        if response.status_code < 400:
            return
        await response.aread()
        where = f"{response.request.url.netloc.decode()}{response.request.url.path}"
        raise self._refusal(where, response.status_code, _error_text(response), response.headers)

    def _refusal(
        self, where: str, status: int, detail: str, headers: Mapping[str, str]
    ) -> Exception:
        what = f"{where}: HTTP {status}" + (f" ({detail})" if detail else "")
        if status in (401, 403):
            return Fatal(f"{what}: {self._token_hint()}")
        if status == 404:
            return Fatal(f"{what}: no such instance endpoint, hashtag or list")
        if status == 429:
            return Retry(f"{what}: rate limited", kind="rate", after=_retry_after(headers))
        if status in _FATAL or status < 500:
            return Fatal(what)
        return Retry(what, kind="http", after=_retry_after(headers))

    def _token_hint(self) -> str:
        given = "the access token was refused" if self.token else "no access token was given"
        hint = (
            f"{given}; streaming needs a user access token (Mastodon 4.2+) with read scope: "
            "set token= on the source or the mastodon_token setting (FIRESIFT_MASTODON_TOKEN)"
        )
        lists = [s.param for s in self.subscriptions if s.stream == "list"]
        return hint + (f"; or list={','.join(lists)} is not that account's" if lists else "")


# -- helpers --------------------------------------------------------------------------------


class _Newest:
    """The largest status id seen (the cursor) and the newest post time."""

    def __init__(self, cursor: str | None) -> None:
        self.cursor = cursor or None

    def observe(self, events: Iterable[Event]) -> tuple[bool, datetime | None]:
        """Take the posts of a batch: whether the cursor moved, and their newest time (an
        edit counts at its edit time)."""
        advanced = False
        when: datetime | None = None
        for e in events:
            if not isinstance(e, Post):
                continue
            if self.cursor is None or _order(e.id) > _order(self.cursor):
                self.cursor = e.id
                advanced = True
            t = e.edited_at or e.created_at
            when = t if when is None or t > when else when
        return advanced, when


def _order(status_id: str) -> tuple[int, str]:
    """Sort key of a status id: Mastodon's are decimal strings of varying length (compared as
    numbers); Pleroma's flake ids are fixed-length strings (compared as text)."""
    return len(status_id), status_id


@dataclass(frozen=True, slots=True)
class _Event:
    """One dispatched SSE event; ``data`` None when one of its lines was too long."""

    name: str
    data: bytes | None


async def _sse_events(response: httpx.Response) -> AsyncIterator[_Event | None]:
    """The events of an SSE body (``event`` / ``data`` fields up to a blank line), and None
    for each comment line."""
    name = ""
    data: list[bytes] = []
    spoiled = False
    async for line in _lines(response):
        if line is None:
            spoiled = True
        elif not line:
            if data or spoiled:
                yield _Event(name or "message", None if spoiled else b"\n".join(data))
            name, data, spoiled = "", [], False
        elif line.startswith(b":"):
            yield None
        else:
            field, _, value = line.partition(b":")
            value = value.removeprefix(b" ")
            if field == b"event":
                name = value.decode("utf-8", "replace")
            elif field == b"data":
                data.append(value)


async def _lines(response: httpx.Response) -> AsyncIterator[bytes | None]:
    """Lines of a streamed body without their ``\\n`` / ``\\r\\n``; None for a line longer
    than :data:`MAX_LINE_BYTES`, whose bytes are discarded as they arrive."""
    buffer = bytearray()
    dropping = False
    async for chunk in response.aiter_bytes():
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                if not dropping:
                    buffer += chunk[start:]
                    if len(buffer) > MAX_LINE_BYTES:
                        buffer.clear()
                        dropping = True
                break
            if dropping:
                dropping = False
                yield None
            else:
                buffer += chunk[start:end]
                line = bytes(buffer).removesuffix(b"\r")
                buffer.clear()
                yield line if len(line) <= MAX_LINE_BYTES else None
            start = end + 1


async def _receive(
    ws: ClientConnection, queue: asyncio.Queue[str | bytes | BaseException | None], host: str
) -> None:
    """Move messages from the socket to ``queue``; the reason it closed goes last."""
    try:
        while True:
            await queue.put(await ws.recv())
    except ConnectionClosed as e:
        frame = e.rcvd
        how = "no close frame" if frame is None else f"code {frame.code}"
        if frame is not None and frame.reason:
            how += f": {frame.reason}"
        await queue.put(Retry(f"{host}: connection closed ({how})"))
    except Exception as e:
        await queue.put(e)


async def _ping(
    ws: ClientConnection, queue: asyncio.Queue[str | bytes | BaseException | None], every: float
) -> None:
    """Ping every ``every`` seconds; each pong is a keep-alive. An unanswered ping waits: the
    runner's stall timer decides when the connection is dead."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            await asyncio.sleep(every)
            pong = await ws.ping()
            await pong
            await queue.put(None)


def _names(raw: str) -> list[str]:
    return [n.strip() for n in raw.split(",") if n.strip()]


def _subscriptions(key: str, streams: Sequence[str], tags: str, lists: str) -> list[Subscription]:
    """The subscriptions of the ``stream`` / ``tag`` / ``list`` options: every hashtag stream
    for every tag, the list stream for every list id."""
    params = {
        "tag": [t.lstrip("#") for t in _names(tags) if t.lstrip("#")],
        "list": _names(lists),
    }
    if not streams:
        raise ConfigError(f"source {key}: stream= is empty; known: {', '.join(STREAMS)}")
    out: list[Subscription] = []
    for stream in (s.lower() for s in streams):
        kind = STREAMS.get(stream)
        if kind is None:
            raise ConfigError(f"source {key}: stream={stream!r}; known: {', '.join(STREAMS)}")
        if not kind.needs:
            out.append(Subscription(stream))
        elif not params[kind.needs]:
            what = "NAME" if kind.needs == "tag" else "ID"
            raise ConfigError(f"source {key}: stream={stream} needs {kind.needs}={what}")
        else:
            out += [Subscription(stream, p) for p in params[kind.needs]]
    for option, values in params.items():
        if values and not any(s.kind.needs == option for s in out):
            users = "hashtag or hashtag:local" if option == "tag" else "list"
            raise ConfigError(f"source {key}: {option}= is for stream={users}")
    return list(dict.fromkeys(out))


def _base_url(arg: str, key: str) -> str:
    text = arg.strip().rstrip("/")
    url = text if "://" in text else f"https://{text}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"source {key}: {arg!r} is not an instance host or http(s) URL")
    return url


def _http_base(url: Any) -> str | None:
    """An advertised streaming URL (``wss://host``) as the http(s) base it is served from."""
    if not isinstance(url, str) or "://" not in url:
        return None
    scheme, _, rest = url.strip().rstrip("/").partition("://")
    scheme = {"wss": "https", "ws": "http"}.get(scheme.lower(), scheme.lower())
    return f"{scheme}://{rest}" if scheme in ("http", "https") and rest else None


def _ws_url(base: str) -> str:
    scheme, _, rest = base.partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}"


def _dig(response: httpx.Response, path: Sequence[str]) -> Any:
    try:
        value: Any = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _error_text(response: httpx.Response) -> str:
    """Mastodon's ``{"error": ...}`` message, if the body is one."""
    try:
        body: Any = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    return str(error)[:200] if error else ""


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait: Mastodon's ``X-RateLimit-Reset`` (an ISO time), else ``Retry-After``
    (seconds or an HTTP date)."""
    now = datetime.now(UTC)
    reset = headers.get("X-RateLimit-Reset")
    if reset:
        with contextlib.suppress(ValueError):
            when = datetime.fromisoformat(reset.strip())
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return max(0.0, (when - now).total_seconds())
    return retry_after(headers)
