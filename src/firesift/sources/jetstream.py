"""``jetstream``: Bluesky's Jetstream v1 over WebSocket (``/subscribe``).

The protocol (github.com/bluesky-social/jetstream, README "Consuming Jetstream"): connect to
``wss://HOST/subscribe`` with query parameters ``wantedCollections`` (repeatable; NSIDs or
``prefix.*``), ``wantedDids`` (repeatable), ``cursor`` (a Unix-microseconds ``time_us``: replay
from there), ``compress=true`` (each message is then a binary frame, zstd-compressed with the
dictionary Jetstream publishes, shipped here as ``dictionaries/jetstream_v1.zdict``) and
``maxMessageSizeBytes``. Every message is one JSON event ``{did, time_us, kind, commit |
identity | account}``, parsed by :mod:`firesift.formats.jetstream` (identity events keep
handles current). Filters change live with a subscriber message ``{"type": "options_update",
"payload": {...}}`` (:meth:`JetstreamSource.update_options`).

Decisions:

- The cursor is the ``time_us`` of the newest stored event. Jetstream instances are independent
  replicas whose ``time_us`` differ slightly, so a reconnect rewinds by ``rewind`` seconds
  (default 3) before resuming: a few events twice (the store's dedupe absorbs them) rather than
  a gap. With no ARG the public v1 instances are used, failing over to the next on each
  reconnect.
- Messages already received are handed on together (up to 1,000), so the
  runner and the store see batches, not single events: that is what sustains tens of thousands
  of events a second.
- A frame that does not decompress or parse is a problem with its position; the events around
  it are kept. The server going silent is left to the runner's stall detection (Jetstream sends
  events continuously; websockets' pings catch a dead TCP connection).
- Jetstream v2 (``network.bsky.jetstream.subscribeEvents``: sequence cursors, ``$type``
  frames) is not implemented yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import zstandard
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from firesift.errors import ConfigError
from firesift.formats.reader import Messages, Parsed, Problem
from firesift.sources.base import Batch, Fatal, Retry, Source

__all__ = ["PUBLIC_ENDPOINTS", "JetstreamSource"]

PUBLIC_ENDPOINTS = (
    "wss://jetstream1.us-east.bsky.network/subscribe",
    "wss://jetstream2.us-east.bsky.network/subscribe",
    "wss://jetstream1.us-west.bsky.network/subscribe",
    "wss://jetstream2.us-west.bsky.network/subscribe",
)
DEFAULT_COLLECTIONS = ("app.bsky.feed.post", "app.bsky.feed.like", "app.bsky.feed.repost")
_DICTIONARY = Path(__file__).with_name("dictionaries") / "jetstream_v1.zdict"
_BATCH_MESSAGES = 1000


@cache
def _dictionary() -> zstandard.ZstdCompressionDict:
    return zstandard.ZstdCompressionDict(_DICTIONARY.read_bytes())


def decompressor() -> zstandard.ZstdDecompressor:
    """A decompressor for ``compress=true`` frames (Jetstream's published dictionary)."""
    return zstandard.ZstdDecompressor(dict_data=_dictionary())


class JetstreamSource(Source):
    name = "jetstream"
    help = "Bluesky Jetstream v1 over WebSocket: posts, likes, reposts, deletes, handles."
    arg = "endpoint URL, wss://HOST/subscribe (default: the public instances, with fail-over)"
    arg_is_url = True
    options: ClassVar[dict[str, str]] = {
        "collections": "comma-separated NSIDs or prefix.* (default: posts, likes, reposts)",
        "dids": "comma-separated DIDs to follow (default: everyone)",
        "compress": "true: zstd-compressed frames with Jetstream's dictionary (~56% smaller)",
        "max_message_bytes": "ask the server to drop events larger than this",
        "rewind": "seconds to replay before the cursor on reconnect (default 3)",
    }
    has_cursor = True
    stall_s = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._attempt = 0
        self._ws: ClientConnection | None = None
        self.endpoints = [self.spec.arg] if self.spec.arg else list(PUBLIC_ENDPOINTS)
        self.compress = self.option("compress", "false").lower() in ("true", "1", "yes")
        if self.option("max_message_bytes") and not self.option("max_message_bytes").isdigit():
            raise ConfigError(f"source {self.spec.key}: max_message_bytes must be a whole number")

    def url(self, cursor: str | None) -> str:
        """The endpoint for the next connection (the next one on each reconnect) with the
        filters and the rewound cursor."""
        base = self.endpoints[self._attempt % len(self.endpoints)]
        parts = urlsplit(base)
        query = parse_qsl(parts.query, keep_blank_values=True)
        collections = _csv(self.option("collections")) or list(DEFAULT_COLLECTIONS)
        query += [("wantedCollections", c) for c in collections]
        query += [("wantedDids", d) for d in _csv(self.option("dids"))]
        if self.compress:
            query.append(("compress", "true"))
        if self.option("max_message_bytes"):
            query.append(("maxMessageSizeBytes", self.option("max_message_bytes")))
        if cursor and cursor.isdigit():
            rewind_us = int(self.float_option("rewind", 3.0) * 1_000_000)
            query.append(("cursor", str(max(0, int(cursor) - rewind_us))))
        return urlunsplit(parts._replace(query=urlencode(query)))

    async def stream(self, cursor: str | None) -> AsyncIterator[Batch]:
        url = self.url(cursor)
        self._attempt += 1
        messages = Messages("jetstream")
        dctx = decompressor() if self.compress else None
        try:
            ws = await connect(url, max_size=None, compression=None, open_timeout=15)
        except InvalidStatus as e:
            code = e.response.status_code
            if code == 429:
                raise Retry(f"{_host(url)}: 429 Too Many Requests", kind="rate") from None
            if 400 <= code < 500 and len(self.endpoints) == 1:
                raise Fatal(f"{_host(url)} refused the subscription: HTTP {code}") from None
            raise Retry(f"{_host(url)}: HTTP {code}", kind="http") from None
        self._ws = ws
        n = 0
        inbox: asyncio.Queue[str | bytes | BaseException] = asyncio.Queue(_BATCH_MESSAGES * 4)
        pump = asyncio.create_task(_pump(ws, inbox))
        try:
            while True:
                frames = [await inbox.get()]
                while len(frames) < _BATCH_MESSAGES and not inbox.empty():
                    frames.append(inbox.get_nowait())
                results: list[Parsed | Problem] = []
                newest: int | None = None
                for frame in frames:
                    if isinstance(frame, BaseException):
                        if results:
                            yield _batch(results, newest)
                        raise frame
                    n += 1
                    where = f"{_host(url)}:+{n}"
                    data, problem = _payload(frame, dctx, where)
                    if problem is not None:
                        results.append(problem)
                        continue
                    results.extend(messages.parse(data, where))
                    t = _time_us(data)
                    if t is not None and (newest is None or t > newest):
                        newest = t
                yield _batch(results, newest)
        finally:
            self._ws = None
            pump.cancel()
            await ws.close()

    async def update_options(
        self,
        *,
        collections: list[str] | None = None,
        dids: list[str] | None = None,
        max_message_bytes: int | None = None,
    ) -> None:
        """Change the filters of the open connection (Jetstream's ``options_update``)."""
        if self._ws is None:
            raise RuntimeError("not connected")
        payload: dict[str, Any] = {
            "wantedCollections": collections or [],
            "wantedDids": dids or [],
        }
        if max_message_bytes is not None:
            payload["maxMessageSizeBytes"] = max_message_bytes
        await self._ws.send(orjson.dumps({"type": "options_update", "payload": payload}).decode())


async def _pump(ws: ClientConnection, inbox: asyncio.Queue[str | bytes | BaseException]) -> None:
    """Move frames off the socket as they come; the error that ends the connection last."""
    try:
        async for frame in ws:
            await inbox.put(frame)
        await inbox.put(ConnectionError("the server closed the connection"))
    except Exception as e:
        await inbox.put(e)


def _batch(results: list[Parsed | Problem], newest: int | None) -> Batch:
    when = None if newest is None else datetime.fromtimestamp(newest / 1e6, UTC)
    return Batch.of(results, cursor=None if newest is None else str(newest), source_time=when)


def _payload(
    frame: str | bytes, dctx: zstandard.ZstdDecompressor | None, where: str
) -> tuple[bytes, Problem | None]:
    if isinstance(frame, str):
        return frame.encode(), None
    if dctx is None:
        return frame, None
    try:
        return dctx.decompressobj().decompress(frame), None
    except zstandard.ZstdError as e:
        return b"", Problem(where, f"frame does not decompress with Jetstream's dictionary: {e}")


def _time_us(data: bytes) -> int | None:
    """``time_us`` without a second parse: it sits in the first few dozen bytes."""
    i = data.find(b'"time_us":')
    if i < 0:
        return None
    j = i + 10
    k = j
    while k < len(data) and 48 <= data[k] <= 57:
        k += 1
    return int(data[j:k]) if k > j else None


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _host(url: str) -> str:
    return urlsplit(url).netloc
