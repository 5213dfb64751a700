"""Time expressions people type: ISO 8601, relative ages and a few words.

``parse_time`` answers "which instant does this text mean?" relative to a given ``now`` (never
the wall clock itself, so callers decide what "now" is: the wall clock, or the newest post of an
archive being replayed).

Accepted forms (case-insensitive):

- ISO 8601 dates and datetimes: ``2015-01-07``, ``2015-01-07T11:06``, ``2015-01-07 11:06:08Z``,
  ``2015-01-07T11:06:08+01:00``. A time without an offset is UTC; a bare date is its midnight UTC.
- Relative ages meaning "that long before now": ``90s``, ``15m``, ``2h``, ``3d``, ``1w``, also
  ``2 hours ago``, ``15 min``.
- Words: ``now``, ``today`` (midnight UTC), ``yesterday`` (the previous midnight UTC).
- Unix epoch seconds or milliseconds (``1420628768``, ``1420628768000``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from firesift.errors import TimeParseError

__all__ = ["parse_duration", "parse_time"]

_UNITS: dict[str, float] = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "week": 604800,
    "weeks": 604800,
}
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)(?:\s+ago)?\s*$")
_EXAMPLES = "e.g. 2015-01-07T11:06Z, 2h, 30m, yesterday, now"


def parse_duration(text: str) -> timedelta:
    """``"2h"`` -> ``timedelta(hours=2)``; raises :class:`TimeParseError` otherwise."""
    m = _RELATIVE.match(text.lower())
    if not m or m.group(2) not in _UNITS:
        raise TimeParseError(f"not a duration: {text!r} (e.g. 90s, 15m, 2h, 3d, 1w)")
    try:
        return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    except OverflowError:  # beyond timedelta's ~2.7 million years
        raise TimeParseError(f"duration out of range: {text!r}") from None


def _midnight(dt: datetime) -> datetime:
    return dt.replace(hour=0, minute=0, second=0, microsecond=0)


def parse_time(text: str, *, now: datetime) -> datetime:
    """The instant ``text`` names, as an aware UTC datetime (see the module docstring)."""
    raw = text.strip()
    low = raw.lower()
    if not low:
        raise TimeParseError(f"empty time ({_EXAMPLES})")
    now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    if low == "now":
        return now
    if low == "today":
        return _midnight(now)
    if low == "yesterday":
        return _midnight(now) - timedelta(days=1)
    if low.isascii() and low.isdigit():  # str.isdigit() also takes '²', which int() refuses
        value = int(low)
        if value > 10**11:
            value //= 1000
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise TimeParseError(f"epoch time out of range: {text!r} ({_EXAMPLES})") from None
    if _RELATIVE.match(low) and not re.match(r"^\d{4}", low):
        return now - parse_duration(low)
    iso = raw.replace(" ", "T", 1) if re.match(r"^\d{4}-\d\d-\d\d \d", raw) else raw
    if iso.endswith(("z", "Z")):
        iso = iso[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        raise TimeParseError(f"not a time: {text!r} ({_EXAMPLES})") from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
