"""Request bodies, validated with pydantic where untrusted input enters.

Unknown fields are ignored (clients add new ones all the time); the fields firesift uses are
checked, and a bad one is answered with a 422 naming it (see :mod:`firesift.api.errors`).
Validation is strict, as OpenAI's and xAI's is: a boolean is ``true``/``false`` (never ``0`` or
``"true"``), an integer a JSON integer (never ``"5"``, ``5.0`` or ``false``). The
search controls follow their origin's spelling and limits: xAI Live Search's
``search_parameters`` and Perplexity Sonar's ``search_*`` fields.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from starlette.requests import ClientDisconnect, Request

from firesift.api.errors import APIError, from_firesift, from_validation
from firesift.errors import TimeParseError
from firesift.timeparse import parse_time

__all__ = [
    "CHAT_BODY_LIMIT",
    "INGEST_BODY_LIMIT",
    "JSON_BODY_LIMIT",
    "ChatMessageIn",
    "ChatRequest",
    "CheckRequest",
    "ContentPart",
    "OtherSource",
    "RssSource",
    "SearchParameters",
    "StreamOptions",
    "XSource",
    "json_body",
    "parse_instant",
    "read_body",
]

M = TypeVar("M", bound=BaseModel)

CHAT_BODY_LIMIT = 1 << 20
JSON_BODY_LIMIT = 64 << 10
INGEST_BODY_LIMIT = 32 << 20

_YMD = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MDY = re.compile(r"^\d{1,2}/\d{1,2}/\d{4}$")
_DOMAIN = re.compile(r"^-?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")


class _Body(BaseModel):
    # strict: no coercion of 0 to false, "5" to 5 (OpenAI and xAI refuse them too)
    model_config = ConfigDict(extra="ignore", strict=True)


class ContentPart(_Body):
    """One part of a multi-part message; only text parts carry anything firesift reads."""

    type: str
    text: str | None = None


class ChatMessageIn(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content if p.type == "text" and p.text)


class StreamOptions(_Body):
    include_usage: bool = False


def _handles(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    for v in values:
        if v.startswith("@"):
            raise ValueError(f"handles are given without '@' (got {v!r})")
        if not v.strip():
            raise ValueError("a handle may not be empty")
    return values


class XSource(_Body):
    """xAI's ``{"type": "x"}`` source: firesift's whole post stream, whatever feeds it."""

    type: Literal["x"]
    included_x_handles: Annotated[list[str], Field(max_length=10)] | None = None
    excluded_x_handles: Annotated[list[str], Field(max_length=10)] | None = None
    post_favorite_count: Annotated[int, Field(ge=0)] | None = None
    post_view_count: Annotated[int, Field(ge=0)] | None = None

    _check_handles = field_validator("included_x_handles", "excluded_x_handles")(_handles)

    @model_validator(mode="after")
    def _exclusive(self) -> XSource:
        if self.included_x_handles and self.excluded_x_handles:
            raise ValueError("included_x_handles and excluded_x_handles cannot be used together")
        return self


class RssSource(_Body):
    type: Literal["rss"]
    links: list[str] = []


class OtherSource(_Body):
    """``web`` and ``news``: accepted, ignored, noted in ``warnings``."""

    type: Literal["web", "news"]


Source = Annotated[XSource | RssSource | OtherSource, Field(discriminator="type")]


def _ymd(value: str | None) -> str | None:
    if value is None:
        return None
    if not _YMD.match(value):
        raise ValueError(f"expected a date as YYYY-MM-DD, got {value!r}")
    date.fromisoformat(value)
    return value


def _mdy(value: str | None) -> str | None:
    if value is None:
        return None
    if not _MDY.match(value):
        raise ValueError(f"expected a date as %m/%d/%Y (e.g. 3/1/2025), got {value!r}")
    datetime.strptime(value, "%m/%d/%Y")
    return value


class SearchParameters(_Body):
    """xAI Live Search. ``mode``: ``off`` answers without retrieval (and says it cannot ground
    the answer); ``auto`` and ``on`` both search (firesift always grounds when it can)."""

    mode: Literal["off", "auto", "on"] = "auto"
    from_date: str | None = None
    to_date: str | None = None
    max_search_results: Annotated[int, Field(ge=1, le=30)] | None = None
    return_citations: bool = True
    sources: list[Source] | None = None

    _check_dates = field_validator("from_date", "to_date")(_ymd)

    @model_validator(mode="after")
    def _order(self) -> SearchParameters:
        if self.from_date and self.to_date and self.from_date > self.to_date:
            raise ValueError("from_date is after to_date")
        return self


class ChatRequest(_Body):
    model: str = "firesift-extractive"
    messages: Annotated[list[ChatMessageIn], Field(min_length=1)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    search_parameters: SearchParameters | None = None
    search_recency_filter: Literal["hour", "day", "week", "month", "year"] | None = None
    search_after_date_filter: str | None = None
    search_before_date_filter: str | None = None
    search_domain_filter: Annotated[list[str], Field(max_length=20)] | None = None
    as_of: str | None = None
    """firesift extension: answer as of this instant (ISO 8601, or a relative time)."""

    _check_mdy = field_validator("search_after_date_filter", "search_before_date_filter")(_mdy)

    @field_validator("search_domain_filter")
    @classmethod
    def _domains(cls, values: list[str] | None) -> list[str] | None:
        for v in values or []:
            if not _DOMAIN.match(v):
                raise ValueError(f"not a domain: {v!r} (e.g. example.com, or -example.com)")
        return values

    @field_validator("messages")
    @classmethod
    def _has_user(cls, values: list[ChatMessageIn]) -> list[ChatMessageIn]:
        if not any(m.role == "user" and m.text().strip() for m in values):
            raise ValueError("the conversation needs at least one user message with text")
        return values


class CheckRequest(_Body):
    claim: Annotated[str, Field(min_length=1, max_length=2000)]
    as_of: str | None = None

    @field_validator("claim")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the claim is empty")
        return value.strip()


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes:
    from ``Content-Length`` before reading anything, else while streaming it in."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise APIError(400, "Content-Length is not a number") from None
        if size > limit:
            raise _too_large(limit)
    chunks: list[bytes] = []
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise _too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect:
        raise APIError(400, "the client disconnected while sending the body") from None
    return b"".join(chunks)


def _too_large(limit: int) -> APIError:
    return APIError(
        413,
        f"request body too large (limit {limit:,} bytes)",
        code="request_too_large",
    )


async def json_body(request: Request, model: type[M], limit: int) -> M:
    """Read, parse (400 on malformed JSON) and validate (422 naming the field) a JSON body."""
    raw = await read_body(request, limit)
    if not raw.strip():
        raise APIError(400, "the request body is empty; send a JSON object")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise APIError(
            400, f"malformed JSON in the request body: {e}", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise APIError(400, "the request body must be a JSON object", code="invalid_json")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise from_validation(e) from None


def parse_instant(text: str | None, *, now: datetime, param: str) -> datetime | None:
    """An ``as_of``-style parameter (ISO 8601 or relative, see :mod:`firesift.timeparse`);
    422 naming ``param`` when it is not a time."""
    if text is None or not text.strip():
        return None
    try:
        return parse_time(text, now=now)
    except TimeParseError as e:
        raise from_firesift(e, param=param) from None
