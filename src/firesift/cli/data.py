"""Data commands: ingest, search, trends, stats, settings."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from firesift.cli._common import (
    Add,
    as_of_opt,
    db_opt,
    err,
    lazy_choices,
    now,
    open_db,
    out,
    parse_as_of,
    progress,
    settings_of,
)
from firesift.config import SETTINGS
from firesift.errors import FiresiftError


def cmd_ingest(args: argparse.Namespace) -> int:
    from firesift.pipeline import IngestSummary

    settings = settings_of(args)
    summary = IngestSummary()
    db = open_db(settings)
    try:
        pipeline = db.pipeline(batch_size=settings.batch_size, refresh_ms=settings.refresh_ms)
        for name in args.paths:
            _ingest_one(name, args.format, pipeline, summary)
        pipeline.flush(summary)
    finally:
        db.close()
    if args.json:
        out(summary.to_dict())
    else:
        err(
            f"ingested {summary.ingested}, duplicates {summary.duplicates}, "
            f"updated {summary.updated}, deleted {summary.deleted}, "
            f"skipped {summary.skipped_total}"
        )
        for reason, n in summary.skipped.most_common():
            err(f"  skipped {n}: {reason}")
        for where, reason in summary.problems:
            err(f"  {where}: {reason}")
    return 1 if args.strict and summary.skipped_total else 0


def _ingest_one(name: str, fmt: str, pipeline: Any, summary: Any) -> None:
    from firesift.formats.reader import Problem, read

    def run(stream: BinaryIO, label: str, size: int | None) -> None:
        with progress(f"ingesting {label}", size is not None) as update:
            for i, item in enumerate(read(stream, fmt=fmt, name=label)):
                if isinstance(item, Problem):
                    summary.skip(item.where, item.reason)
                else:
                    pipeline.feed(item.events, summary)
                if size and i % 2048 == 0:
                    update(stream.tell(), size)

    if name == "-":
        run(sys.stdin.buffer, "<stdin>", None)
        return
    path = Path(name)
    if not path.is_file():
        raise FiresiftError(f"no such file: {name}")
    with path.open("rb") as fh:
        run(fh, name, path.stat().st_size)


_CONTROL = dict.fromkeys([*range(32), *range(127, 160)], " ")


def _safe(text: str) -> str:
    """``text`` without control characters (an escape sequence in a post must not drive the
    terminal)."""
    return text.translate(_CONTROL)


def _styles(stream: TextIO) -> tuple[str, str, str]:
    """Bold, dim and reset escapes for a terminal (none with ``NO_COLOR`` or when piped)."""
    if os.environ.get("NO_COLOR") or not stream.isatty():
        return "", "", ""
    return "\x1b[1m", "\x1b[2m", "\x1b[0m"


def cmd_search(args: argparse.Namespace) -> int:
    from firesift.search import search

    as_of = parse_as_of(args.as_of) or now()
    db = open_db(settings_of(args))
    try:
        resp = search(db, args.query, as_of=as_of, limit=args.limit, sort=args.sort)
    finally:
        db.close()
    if args.json:
        out(resp.to_dict())
        return 0
    if not resp.results:
        err(f"no posts match {args.query!r} as of {resp.as_of.isoformat()}")
        return 0
    # Plain writes, not rich: this is the command people time, and rich costs more to import
    # than the search takes. Post text is hostile: control characters never reach the terminal.
    bold, dim, reset = _styles(sys.stdout)
    lines = []
    for i, r in enumerate(resp.results, 1):
        p = r.post
        when = p.created_at.strftime("%Y-%m-%d %H:%M")
        m = p.metrics
        lines.append(
            f"{bold}{i:>2}. @{_safe(p.author.handle)}{reset} {dim}{when} · "
            f"♥{m.likes} ⟲{m.reposts} · {_safe(p.url)}{reset}\n"
            f"    {_safe(p.text.replace(chr(10), ' '))}\n"
        )
    sys.stdout.write("".join(lines))
    sys.stdout.flush()
    if resp.collapsed:
        err(f"({resp.collapsed} reposts and near-duplicates folded into the posts above)")
    return 0


def cmd_trends(args: argparse.Namespace) -> int:
    from firesift.post import to_ms
    from firesift.timeparse import parse_duration
    from firesift.trends import render_table

    as_of = parse_as_of(args.as_of)
    window_ms = int(parse_duration(args.window).total_seconds() * 1000)
    db = open_db(settings_of(args))
    try:
        report = db.trends.report(
            as_of_ms=None if as_of is None else to_ms(as_of), window_ms=window_ms, limit=args.limit
        )
    finally:
        db.close()
    if args.json:
        out(report.to_json())
        return 0
    from rich.console import Console

    Console(highlight=False).print(render_table(report))
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    from firesift.sources.base import CURSOR_PREFIX as SOURCE_CURSOR_PREFIX

    db = open_db(settings)
    try:
        stats = db.stats()
        cursors = db.store.cursors(SOURCE_CURSOR_PREFIX)
    finally:
        db.close()
    resume = {name.removeprefix(SOURCE_CURSOR_PREFIX): value for name, value in cursors.items()}
    if args.json:
        out({**stats.to_dict(), "source_cursors": resume})
        return 0
    from rich.console import Console

    from firesift.cli._render import stats_view

    Console(highlight=False).print(stats_view(stats, str(settings.db), cursors=resume))
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    shown = settings_of(args).shown()
    if args.json:
        out(
            [
                {"name": s.name, "env": s.env, "value": shown[s.name], "help": s.help}
                for s in SETTINGS
            ]
        )
        return 0
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True, style="bold")
    grid.add_column()
    for s in SETTINGS:
        cell = Text(shown[s.name] or "(not set)", style="" if shown[s.name] else "dim")
        cell.append(f"\n{s.env}: {s.help}", style="dim")
        grid.add_row(s.name, cell)
    Console(highlight=False).print(grid)
    return 0


def _format_names() -> list[str]:
    from firesift.formats import FORMATS

    return ["auto", *FORMATS]


def register(add: Add) -> None:
    p = add("ingest", cmd_ingest, "Ingest posts from files or stdin ('-') into the database.")
    p.add_argument("paths", nargs="+", metavar="PATH")
    lazy_choices(
        p.add_argument(
            "--format", default="auto", help="payload format (default: detect per line)"
        ),
        _format_names,
    )
    db_opt(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--strict", action="store_true", help="exit 1 if any line was skipped")

    p = add("search", cmd_search, "Search posts with X-style query syntax.")
    p.add_argument("query")
    as_of_opt(p)
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--sort", choices=["relevance", "recent"], default="relevance")
    db_opt(p)
    p.add_argument("--json", action="store_true")

    p = add("trends", cmd_trends, "What is bursting: trending terms and stories with volumes.")
    as_of_opt(p, "the newest post")
    p.add_argument("--window", default="1h", help="span of volumes and series (default 1h)")
    p.add_argument("--limit", type=int, default=10)
    db_opt(p)
    p.add_argument("--json", action="store_true")

    p = add("stats", cmd_stats, "Counts per source, time span and index freshness.")
    db_opt(p)
    p.add_argument("--json", action="store_true")

    p = add("settings", cmd_settings, "Show every setting, its value and where to set it.")
    db_opt(p)
    p.add_argument("--json", action="store_true")
