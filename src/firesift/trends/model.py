"""The values a trend report is made of, their JSON shape and their terminal rendering.

All are frozen dataclasses of plain values (tuples, not lists, so reports compare and hash),
so a report can be handed to the answer engine, the API server and the CLI without copying.
``TrendReport.to_json()`` is the wire shape (``--json``, ``/api/trends``); ``render_table``
is the TTY view, with unicode sparklines for the per-minute series (summed into at most
``SPARK_WIDTH`` bins, so each stays on one line of an 80-column terminal).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from rich.console import Group
from rich.table import Table
from rich.text import Text

from firesift.post import from_ms

__all__ = [
    "Story",
    "StoryStatus",
    "Trend",
    "TrendKind",
    "TrendReport",
    "render_table",
    "sparkline",
]

TrendKind = Literal["hashtag", "word", "phrase", "link", "mention"]
StoryStatus = Literal["emerging", "peaking", "fading"]


@dataclass(frozen=True, slots=True)
class Trend:
    """A bursting term.

    ``score`` is the burst score (signed-root Poisson likelihood ratio, ~ a z-score) at the
    report instant; ``volume`` the deduplicated posts carrying the term in the report window;
    ``authors`` the distinct accounts among them; ``series`` posts per minute over the window,
    oldest first.
    """

    term: str
    kind: TrendKind
    score: float
    volume: int
    authors: int
    series: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "term": self.term,
            "kind": self.kind,
            "score": round(self.score, 3),
            "volume": self.volume,
            "authors": self.authors,
            "series": list(self.series),
        }


@dataclass(frozen=True, slots=True)
class Story:
    """Co-bursting terms and their posts: one developing event.

    ``id`` stays the same while the event develops (new terms joining, old ones leaving).
    ``title`` is the most representative post's text, cleaned of handles, links and ``RT``.
    ``first_seen_ms`` is the earliest post of the story when it was detected and
    ``detected_ms`` the instant it was; ``volume`` the story's posts per minute over the report
    window (oldest first); ``top_posts`` are ``source:id`` keys, best first, for citation.
    """

    id: str
    title: str
    terms: tuple[str, ...]
    first_seen_ms: int
    detected_ms: int
    volume: tuple[int, ...]
    authors: int
    status: StoryStatus
    top_posts: tuple[str, ...]
    score: float

    @property
    def first_seen(self) -> datetime:
        return from_ms(self.first_seen_ms)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "terms": list(self.terms),
            "first_seen": from_ms(self.first_seen_ms).isoformat().replace("+00:00", "Z"),
            "first_seen_ms": self.first_seen_ms,
            "detected_ms": self.detected_ms,
            "volume": list(self.volume),
            "authors": self.authors,
            "status": self.status,
            "top_posts": list(self.top_posts),
            "score": round(self.score, 3),
        }


@dataclass(frozen=True, slots=True)
class TrendReport:
    """What is bursting at ``as_of_ms``, computed only from posts created at or before it."""

    as_of_ms: int
    window_ms: int
    terms: tuple[Trend, ...]
    stories: tuple[Story, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "as_of": from_ms(self.as_of_ms).isoformat().replace("+00:00", "Z"),
            "as_of_ms": self.as_of_ms,
            "window_ms": self.window_ms,
            "terms": [t.to_json() for t in self.terms],
            "stories": [s.to_json() for s in self.stories],
        }


_BARS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 20
"""Bins of the table's sparklines: a fixed-width column that fits an 80-column terminal."""


def sparkline(series: tuple[int, ...] | list[int], width: int = 30) -> str:
    """``series`` as unicode bars, summed into at most ``width`` bins (empty bins are spaces)."""
    values = list(series)
    if not values:
        return ""
    if len(values) > width:
        step = -(-len(values) // width)
        values = [sum(values[i : i + step]) for i in range(0, len(values), step)]
    top = max(values)
    if top <= 0:
        return " " * len(values)
    return "".join(
        " " if v <= 0 else _BARS[min(len(_BARS) - 1, (v * len(_BARS) - 1) // top)] for v in values
    )


def _clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a word with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + "…"


def render_table(report: TrendReport) -> Group:
    """A rich renderable: the stories, then the trending terms, each with a sparkline."""
    when = from_ms(report.as_of_ms).strftime("%Y-%m-%d %H:%M UTC")
    minutes = report.window_ms // 60_000
    stories = Table(
        title=f"Stories as of {when} (last {minutes} min)", title_justify="left", expand=True
    )
    stories.add_column("status")
    stories.add_column("story", overflow="fold", ratio=1)
    stories.add_column("terms", overflow="ellipsis", no_wrap=True, min_width=14, max_width=22)
    stories.add_column("authors", justify="right")
    stories.add_column("volume", no_wrap=True, min_width=SPARK_WIDTH, max_width=SPARK_WIDTH)
    for s in report.stories:
        style = {"emerging": "bold green", "peaking": "bold yellow", "fading": "dim"}[s.status]
        stories.add_row(
            Text(s.status, style=style),
            Text(_clip(s.title, 100) or "(no text)"),
            Text("\n".join(s.terms[:3])),
            str(s.authors),
            Text(sparkline(s.volume, SPARK_WIDTH), style="cyan"),
        )
    terms = Table(title="Trending terms", title_justify="left")
    terms.add_column("term", overflow="fold")
    terms.add_column("kind")
    terms.add_column("score", justify="right")
    terms.add_column("posts", justify="right")
    terms.add_column("authors", justify="right")
    terms.add_column("per minute", no_wrap=True, min_width=SPARK_WIDTH, max_width=SPARK_WIDTH)
    for t in report.terms:
        terms.add_row(
            t.term,
            t.kind,
            f"{t.score:.1f}",
            str(t.volume),
            str(t.authors),
            Text(sparkline(t.series, SPARK_WIDTH), style="cyan"),
        )
    if not report.stories and not report.terms:
        return Group(Text(f"Nothing is bursting as of {when}.", style="dim"))
    return Group(stories, terms)
