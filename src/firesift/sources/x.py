"""``x`` / ``x:API_BASE``: the X API v2 filtered stream, with its rules kept in sync.

Protocol (X API v2 docs, "Filtered stream" introduction, rules and integration guides):

- Rules live on the app, not on the connection: ``GET /2/tweets/search/stream/rules`` lists
  them (``{"data": [{"id", "value", "tag"}], "meta"}``; no ``data`` when there are none),
  ``POST`` the same path with ``{"add": [{"value", "tag"}]}`` or ``{"delete": {"ids": [...]}}``
  changes them. Each connect makes the app's rules match the ``rules`` option: stale ones
  deleted first (so a rule re-tagged is not refused as a ``DuplicateRule``), missing ones added.
  The diff is kept as :attr:`XStreamSource.rules_diff` and logged. An ``errors`` entry in the
  answer other than ``DuplicateRule`` (an invalid rule) stops the source: retrying cannot help.
- ``GET /2/tweets/search/stream`` with ``expansions`` and ``*.fields`` covering what
  :mod:`firesift.formats.x_v2` reads, ``Authorization: Bearer``. The body is chunked, one JSON
  object per ``\\r\\n``-terminated line (``data``, ``includes``, ``matching_rules``) and a blank
  ``\\r\\n`` keep-alive every 20 s (so the stall default is 30 s). A line
  ``{"errors": [...]}`` without ``data`` is X ending the stream (``operational-disconnect``):
  a reconnect. A malformed line is a reported problem; the lines around it are kept.
- Status codes: 401/403 stop the source (the ``x_bearer_token`` is wrong or lacks access), 429
  (rate limit, or ``TooManyConnections``) reconnects after ``x-rate-limit-reset`` (Unix
  seconds), other 4xx stop it, 5xx reconnect with the HTTP back-off.
- No cursor: the filtered stream cannot resume (recovery/backfill is an Enterprise feature), so
  posts sent while disconnected are not seen; the store's dedupe absorbs any overlap.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
import orjson

from firesift import __version__
from firesift.errors import ConfigError
from firesift.formats.reader import Messages
from firesift.post import Post
from firesift.sources.base import Batch, Fatal, Retry, Source, SourceSpec

if TYPE_CHECKING:
    from firesift.config import Settings

__all__ = ["XStreamSource", "parse_rules"]

log = logging.getLogger(__name__)

API_BASE = "https://api.x.com"
RULES_PATH = "/2/tweets/search/stream/rules"
STREAM_PATH = "/2/tweets/search/stream"

STREAM_PARAMS: Mapping[str, str] = {
    "expansions": ",".join(
        [
            "author_id",
            "referenced_tweets.id",
            "referenced_tweets.id.author_id",
            "attachments.media_keys",
            "entities.mentions.username",
            "in_reply_to_user_id",
            "geo.place_id",
        ]
    ),
    "tweet.fields": ",".join(
        [
            "attachments",
            "author_id",
            "conversation_id",
            "created_at",
            "edit_history_tweet_ids",
            "entities",
            "geo",
            "in_reply_to_user_id",
            "lang",
            "note_tweet",
            "possibly_sensitive",
            "public_metrics",
            "referenced_tweets",
            "withheld",
        ]
    ),
    "user.fields": "id,name,username,verified,verified_type,public_metrics,url",
    "media.fields": "media_key,type,url,preview_image_url,alt_text",
    "place.fields": "id,full_name,name,country_code,geo",
}
"""Query of the stream request: every expansion and field the x_v2 parser reads."""

_TIMEOUT = httpx.Timeout(30.0, read=None)  # the runner's stall detection bounds a quiet read
Rule = tuple[str, str]
"""``(value, tag)``; the tag is ``""`` when none is given."""


def parse_rules(text: str) -> list[Rule]:
    """The ``rules`` option: rules separated by ``;``, each ``value`` or ``value#tag``. The tag
    follows the last ``#`` that does not start a word, so hashtag operators stay in the value
    (``#python lang:en`` has no tag, ``#python lang:en#py`` is tagged ``py``)."""
    rules: list[Rule] = []
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        value, tag = part, ""
        cut = part.rfind("#")
        if cut > 0 and not part[cut - 1].isspace():
            value, tag = part[:cut].strip(), part[cut + 1 :].strip()
        if (value, tag) not in rules:
            rules.append((value, tag))
    return rules


class XStreamSource(Source):
    """The X API v2 filtered stream. ``rules`` lists the stream's rules, separated by ``;``,
    each ``value`` or ``value#tag`` (the tag follows the last ``#`` not starting a word, so
    ``#python lang:en#py`` is the rule ``#python lang:en`` tagged ``py``); without it the app's
    current rules are used as they are. ``sync=true`` (the default) deletes the app's rules that
    are not listed; ``sync=false`` only adds the missing ones. No cursor: X cannot resume a
    filtered stream."""

    name = "x"
    help = "X API v2 filtered stream; keeps the stream rules in sync with the rules option."
    arg = "API base URL (default https://api.x.com)"
    options: ClassVar[dict[str, str]] = {
        "rules": "stream rules, ';'-separated, each 'value' or 'value#tag'",
        "sync": "delete the app's rules that are not listed (true/false, default true)",
    }
    needs = ("x_bearer_token",)
    has_cursor = False
    stall_s = 30.0  # X sends a keep-alive every 20 s

    def __init__(self, spec: SourceSpec, settings: Settings) -> None:
        super().__init__(spec, settings)
        key = spec.key
        self.rules = parse_rules(self.option("rules"))
        self.sync = self.bool_option("sync", True)
        self.base = (spec.arg or API_BASE).rstrip("/")
        if not self.base.startswith(("http://", "https://")):
            raise ConfigError(f"source {key}: the API base must be an http(s) URL: {spec.arg!r}")
        self.messages = Messages("x_v2")
        self.rules_diff: dict[str, list[dict[str, str]]] = {"added": [], "deleted": []}
        self.count = 0

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.settings.x_bearer_token}",
            "User-Agent": f"firesift/{__version__}",
        }

    async def stream(self, cursor: str | None) -> AsyncIterator[Batch]:
        async with httpx.AsyncClient(
            base_url=self.base, headers=self._headers(), timeout=_TIMEOUT
        ) as client:
            if self.rules:
                await self._sync_rules(client)
            request = client.build_request("GET", STREAM_PATH, params=STREAM_PARAMS)
            try:
                response = await client.send(request, stream=True)
            except httpx.TransportError as e:
                raise Retry(f"{self._host()}: cannot connect: {type(e).__name__}: {e}") from None
            try:
                await self._check(response)
                try:
                    async for line in response.aiter_lines():
                        yield self._line(line)
                except httpx.TransportError as e:
                    raise Retry(f"{self._host()}: stream broke: {type(e).__name__}: {e}") from None
            finally:
                await response.aclose()
        raise Retry(f"{self._host()}: the server ended the stream")

    def _line(self, line: str) -> Batch:
        """The batch of one stream line: a keep-alive, a post, or a problem."""
        if not line.strip():
            return Batch()
        self.count += 1
        if '"errors"' in line and '"data"' not in line:
            _raise_disconnect(line, self._host())
        batch = Batch.of(self.messages.parse(line, f"x:{self.count}"))
        times = [e.created_at for e in batch.events if isinstance(e, Post)]
        newest: datetime | None = max(times) if times else None
        return Batch(batch.events, source_time=newest, problems=batch.problems)

    # -- rules ----------------------------------------------------------------------------

    async def _sync_rules(self, client: httpx.AsyncClient) -> None:
        current = await self._rules_request(client, "GET", None)
        have = [
            (str(r.get("id", "")), str(r.get("value", "")), str(r.get("tag") or ""))
            for r in current.get("data") or []
            if isinstance(r, dict)
        ]
        wanted = set(self.rules)
        stale = [(i, v, t) for i, v, t in have if self.sync and (v, t) not in wanted]
        kept = {(v, t) for i, v, t in have if (i, v, t) not in stale}
        kept_values = {v for v, _ in kept}
        missing = [
            (v, t)
            for v, t in self.rules
            if (v, t) not in kept and (self.sync or v not in kept_values)
        ]
        if stale:
            await self._rules_request(client, "POST", {"delete": {"ids": [i for i, _, _ in stale]}})
        if missing:
            add = [{"value": v, "tag": t} if t else {"value": v} for v, t in missing]
            await self._rules_request(client, "POST", {"add": add})
        self.rules_diff = {
            "added": [{"value": v, "tag": t} for v, t in missing],
            "deleted": [{"id": i, "value": v, "tag": t} for i, v, t in stale],
        }
        if stale or missing:
            log.info(
                "source %s: stream rules: added %s, deleted %s",
                self.spec.key,
                [v for v, _ in missing],
                [v for _, v, _ in stale],
            )

    async def _rules_request(
        self, client: httpx.AsyncClient, method: str, body: dict[str, Any] | None
    ) -> dict[str, Any]:
        try:
            response = await client.request(method, RULES_PATH, json=body)
        except httpx.TransportError as e:
            raise Retry(f"{self._host()}: cannot connect: {type(e).__name__}: {e}") from None
        await self._check(response)
        try:
            answer = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise Retry(f"{self._host()}{RULES_PATH}: answer is not JSON", kind="http") from None
        if not isinstance(answer, dict):
            raise Retry(f"{self._host()}{RULES_PATH}: answer is not an object", kind="http")
        refused = [
            e
            for e in answer.get("errors") or []
            if not (isinstance(e, dict) and e.get("title") == "DuplicateRule")
        ]
        if refused:
            raise Fatal(f"source {self.spec.key}: X refused the stream rules: {refused!r:.500}")
        return answer

    # -- HTTP -----------------------------------------------------------------------------

    def _host(self) -> str:
        return httpx.URL(self.base).netloc.decode()

    async def _check(self, response: httpx.Response) -> None:
        """Raise what an HTTP error status means for this source."""
        status = response.status_code
        if status < 400:
            return
        await response.aread()
        detail = response.text.strip()[:200]
        what = f"{self._host()}{response.request.url.path}: HTTP {status}" + (
            f" ({detail})" if detail else ""
        )
        if status in (401, 403):
            raise Fatal(
                f"{what}: the x_bearer_token was refused (set FIRESIFT_X_BEARER_TOKEN to an "
                "app bearer token with filtered-stream access)"
            )
        if status == 429:
            raise Retry(f"{what}: rate limited", kind="rate", after=_reset_after(response.headers))
        if status < 500:
            raise Fatal(what)
        raise Retry(what, kind="http")


def _reset_after(headers: Mapping[str, str]) -> float | None:
    """Seconds until ``x-rate-limit-reset`` (Unix seconds), None when absent or unreadable."""
    raw = headers.get("x-rate-limit-reset", "")
    try:
        return max(0.0, float(raw) - time.time())
    except ValueError:
        return None


def _raise_disconnect(line: str, host: str) -> None:
    """Raise a reconnect for an ``{"errors": [...]}`` line without ``data``; else return."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return
    if isinstance(obj, dict) and "data" not in obj and isinstance(obj.get("errors"), list):
        first = obj["errors"][0] if obj["errors"] else {}
        title = first.get("title", "") if isinstance(first, dict) else ""
        detail = first.get("detail", "") if isinstance(first, dict) else ""
        raise Retry(f"{host}: X ended the stream: {title} {detail}".strip(), kind="network")
