"""Trends and storylines: what is bursting now, grouped into stories.

The tracker is fed every post as it is stored (``observe``) and answers ``report(as_of_ms=...)``
in milliseconds; its state is derived data, rebuilt after a restart by replaying the store
(``TrendTracker.replay(store.iter_posts(since_ms=..., until_ms=...))``).

- :mod:`~firesift.trends.terms`: what a post is about (hashtags, words, phrases, links, mentions);
- :mod:`~firesift.trends.tracker`: per-term burst detection (Poisson likelihood against an
  EWMA baseline of distinct accounts per minute) and the tick/snapshot machinery behind
  ``as_of``;
- :mod:`~firesift.trends.stories`: co-bursting terms clustered into stories with stable ids;
- :mod:`~firesift.trends.model`: the report values, their JSON shape and ``render_table``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from firesift import _lazy

if TYPE_CHECKING:
    from firesift.trends.model import (
        Story,
        StoryStatus,
        Trend,
        TrendKind,
        TrendReport,
        render_table,
        sparkline,
    )
    from firesift.trends.terms import STOPWORDS, clean_text, extract, term_kind
    from firesift.trends.tracker import TrendConfig, TrendTracker

__getattr__ = _lazy.exports(
    __name__,
    {
        **dict.fromkeys(
            ("Story", "StoryStatus", "Trend", "TrendKind", "TrendReport", "render_table"), "model"
        ),
        "sparkline": "model",
        **dict.fromkeys(("STOPWORDS", "clean_text", "extract", "term_kind"), "terms"),
        **dict.fromkeys(("TrendConfig", "TrendTracker"), "tracker"),
    },
)

__all__ = [
    "STOPWORDS",
    "Story",
    "StoryStatus",
    "Trend",
    "TrendConfig",
    "TrendKind",
    "TrendReport",
    "TrendTracker",
    "clean_text",
    "extract",
    "render_table",
    "sparkline",
    "term_kind",
]
