"""Helpers shared by the parsers: time parsing, X ids and URLs, text extraction.

These run once or more per post on the ingest hot path, so the common cases take the cheapest
route: ``datetime.fromisoformat`` for ISO 8601 (C code, accepts ``Z`` on 3.11), a hand-rolled
splitter for Twitter's ``"Wed Jan 07 11:06:08 +0000 2015"`` (``strptime`` is ~10x slower), and
a substring test before any regular expression.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from html import unescape
from typing import Any

from firesift.errors import ParseError

__all__ = [
    "MAX_COUNT",
    "UNDETERMINED_LANGS",
    "as_dict",
    "as_list",
    "as_str",
    "dedupe",
    "find_hashtags",
    "find_mentions",
    "find_urls",
    "from_epoch",
    "lang_or_none",
    "metric",
    "optional_int",
    "optional_str",
    "parse_time",
    "snowflake_time",
    "unescape_x",
    "x_url",
]

SNOWFLAKE_EPOCH_MS = 1288834974657
"""X ids since Nov 2010 are snowflakes: ``ms = (id >> 22) + SNOWFLAKE_EPOCH_MS``."""

SNOWFLAKE_MIN = 1 << 32
"""Below this an X id predates snowflakes (and decodes to a meaningless 2010 instant)."""

MAX_COUNT = (1 << 63) - 1
"""Largest count (likes, followers, ...) a payload may carry: SQLite's largest INTEGER. Counts
outside ``0..MAX_COUNT`` are taken as absent, since a larger one would fail the store's write
of a whole batch."""

UNDETERMINED_LANGS = frozenset({"und", "zxx", "qam", "qct", "qht", "qme", "qst"})
"""X's codes for "no language" (media only, hashtags only, ...): stored as ``lang=None``."""

_MONTHS = {
    "Jan": 1,
    "Feb": 2,
    "Mar": 3,
    "Apr": 4,
    "May": 5,
    "Jun": 6,
    "Jul": 7,
    "Aug": 8,
    "Sep": 9,
    "Oct": 10,
    "Nov": 11,
    "Dec": 12,
}

_HASHTAG = re.compile(r"(?<![\w&/])[#＃](\w*[^\W\d_]\w*)")
_MENTION = re.compile(r"(?<![\w@.])@(\w{1,30}(?:@[\w.-]+\w)?)")
_URL = re.compile(r"https?://[^\s<>\"'`]+")
_URL_TRAILING = ".,;:!?)]}…'\""


def parse_time(value: Any, *, what: str = "created_at") -> datetime:
    """A timezone-aware UTC datetime from ISO 8601, Twitter's v1.1 form or epoch seconds/ms."""
    if isinstance(value, str):
        if value[:4].isdigit():
            try:
                dt = datetime.fromisoformat(value)
                if dt.tzinfo is None:
                    return dt.replace(tzinfo=UTC)
                return dt if dt.tzinfo is UTC else dt.astimezone(UTC)
            except ValueError:
                raise ParseError(f"{what} is not a valid ISO 8601 time: {value!r}") from None
            except OverflowError:  # 9999-12-31T23:59:59-01:00 is past datetime.max in UTC
                raise ParseError(f"{what} is out of range: {value!r}") from None
        return _twitter_time(value, what)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return from_epoch(value, what=what)
    raise ParseError(f"{what} must be a time string, got {type(value).__name__}")


def _twitter_time(value: str, what: str) -> datetime:
    parts = value.split()
    try:
        _, mon, day, clock, offset, year = parts
        hh, mm, ss = clock.split(":")
        sign = -1 if offset[0] == "-" else 1
        delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])) * sign
        tz = timezone(delta) if delta else UTC
        dt = datetime(int(year), _MONTHS[mon], int(day), int(hh), int(mm), int(ss), tzinfo=tz)
        return dt.astimezone(UTC) if delta else dt
    except (ValueError, KeyError, IndexError):
        raise ParseError(f"{what} is not a recognised time: {value!r}") from None
    except OverflowError:
        raise ParseError(f"{what} is out of range: {value!r}") from None


def from_epoch(value: float, *, what: str = "time") -> datetime:
    """Epoch seconds, or milliseconds/microseconds when the number is too large for seconds.
    Raises :class:`ParseError` for a number outside the years 1-9999."""
    seconds = value
    if value > 1e14:
        seconds = value / 1_000_000
    elif value > 1e11:
        seconds = value / 1000
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ParseError(f"{what} is out of range: {value!r}") from None


def snowflake_time(post_id: str) -> datetime | None:
    """The creation time encoded in an X snowflake id, or None for pre-snowflake/odd ids."""
    try:
        n = int(post_id)
    except ValueError:
        return None
    if n < SNOWFLAKE_MIN:
        return None
    try:
        return datetime.fromtimestamp(((n >> 22) + SNOWFLAKE_EPOCH_MS) / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):  # an id too large to be a real snowflake
        return None


def x_url(handle: str, post_id: str) -> str:
    """The public URL of an X post; ``/i/web/`` works without knowing the author."""
    if handle:
        return f"https://x.com/{handle}/status/{post_id}"
    return f"https://x.com/i/web/status/{post_id}"


def unescape_x(text: str) -> str:
    """X escapes ``&``, ``<`` and ``>`` in post text as HTML entities."""
    return unescape(text) if "&" in text else text


def lang_or_none(value: Any) -> str | None:
    if not value or not isinstance(value, str) or value in UNDETERMINED_LANGS:
        return None
    return value


def as_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ParseError(f"{what} must be an object, got {type(value).__name__}")
    return value


def as_list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ParseError(f"{what} must be an array, got {type(value).__name__}")
    return value


def as_str(value: Any, what: str) -> str:
    """A required id or text: strings as-is, integers (v1.1 numeric ids) as decimal strings."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value is None:
        raise ParseError(f"missing {what}")
    raise ParseError(f"{what} must be a string, got {type(value).__name__}")


def optional_str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def optional_int(value: Any) -> int | None:
    """A count given as an integer or a string of digits; None when absent or out of range."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 20:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT:
        return value
    return None


def dedupe(values: Iterable[str]) -> tuple[str, ...]:
    """Non-empty values in first-seen order, without repeats."""
    if isinstance(values, list | tuple) and not values:
        return ()
    return tuple(dict.fromkeys(v for v in values if v))


def find_hashtags(text: str) -> tuple[str, ...]:
    if "#" not in text and "＃" not in text:
        return ()
    found = _HASHTAG.findall(text)
    if len(found) == 1:
        return (found[0].lower(),)
    return dedupe(m.lower() for m in found) if found else ()


def find_mentions(text: str) -> tuple[str, ...]:
    if "@" not in text:
        return ()
    found = _MENTION.findall(text)
    if len(found) == 1:
        return (found[0].lower(),)
    return dedupe(m.lower() for m in found) if found else ()


def find_urls(text: str) -> tuple[str, ...]:
    if "http" not in text:
        return ()
    found = _URL.findall(text)
    if len(found) == 1:
        return (found[0].rstrip(_URL_TRAILING),)
    return dedupe(u.rstrip(_URL_TRAILING) for u in found) if found else ()


def metric(counts: Mapping[str, Any], *keys: str) -> int:
    """The first integer count present under one of ``keys`` (0 when none is)."""
    for key in keys:
        value = counts.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT:
            return value
    return 0
