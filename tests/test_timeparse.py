from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from firesift.errors import TimeParseError
from firesift.timeparse import parse_duration, parse_time

NOW = datetime(2015, 1, 7, 14, 5, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("2h", NOW - timedelta(hours=2)),
        ("90s", NOW - timedelta(seconds=90)),
        ("15 min", NOW - timedelta(minutes=15)),
        ("2 hours ago", NOW - timedelta(hours=2)),
        ("1w", NOW - timedelta(weeks=1)),
        ("today", datetime(2015, 1, 7, tzinfo=UTC)),
        ("yesterday", datetime(2015, 1, 6, tzinfo=UTC)),
        ("2015-01-07", datetime(2015, 1, 7, tzinfo=UTC)),
        ("2015-01-07T11:06", datetime(2015, 1, 7, 11, 6, tzinfo=UTC)),
        ("2015-01-07 11:06:08Z", datetime(2015, 1, 7, 11, 6, 8, tzinfo=UTC)),
        ("2015-01-07T12:06:08+01:00", datetime(2015, 1, 7, 11, 6, 8, tzinfo=UTC)),
        ("1420628768", datetime(2015, 1, 7, 11, 6, 8, tzinfo=UTC)),
        ("1420628768000", datetime(2015, 1, 7, 11, 6, 8, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    got = parse_time(text, now=NOW)
    assert got == expected
    assert got.tzinfo is not None


@pytest.mark.parametrize("text", ["", "soon", "2 fortnights", "2015-13-40", "yesterdayish"])
def test_parse_time_rejects_with_examples(text: str) -> None:
    with pytest.raises(TimeParseError, match=r"e\.g\."):
        parse_time(text, now=NOW)


def test_parse_duration() -> None:
    assert parse_duration("1h") == timedelta(hours=1)
    assert parse_duration("30m") == timedelta(minutes=30)
    with pytest.raises(TimeParseError):
        parse_duration("an hour")
