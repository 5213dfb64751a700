"""The ``firesift`` command line: a thin shell over the library.

Data goes to stdout (``--json`` on every command that lists or reports), progress and status to
stderr; progress bars only on a terminal. Errors firesift raises on purpose become one line
that says how to fix the problem, with exit status 2; nothing else is caught here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from firesift import __version__
from firesift.config import SETTINGS, Settings, load
from firesift.errors import FiresiftError

__all__ = ["main"]

EPILOG = """examples:
  firesift ingest ../shared/data/rumoureval2017/posts.jsonl
  curl -sN https://example.org/stream | firesift ingest - --format x_v2
  firesift search '"gunman" from:ottawapolice -filter:replies' --as-of 2014-10-22T16:00Z
  firesift search '#sydneysiege OR #MartinPlace min_retweets:10' --limit 5 --json
  firesift trends --as-of 2014-12-15T06:00Z --window 1h
  firesift stats --json
"""


def _out(data: object) -> None:
    sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


def _settings(args: argparse.Namespace) -> Settings:
    return load({"db": getattr(args, "db", None)})


@contextmanager
def _progress(label: str, enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr when it is a terminal; a no-op otherwise."""
    if not (enabled and sys.stderr.isatty()):
        yield lambda done, total: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        yield update


def _open_db(settings: Settings) -> Any:
    from firesift.database import Database

    with _progress("rebuilding index", True) as update:
        db = Database(settings.db, progress=update)
    if db.caught_up:
        what = "rebuilt from" if db.rebuilt else "caught up with"
        _err(f"index {what} the store: {db.caught_up} changes replayed")
    return db


def _now() -> datetime:
    return datetime.now(UTC)


def _parse_as_of(text: str | None) -> datetime | None:
    from firesift.timeparse import parse_time

    return None if text is None else parse_time(text, now=_now())


# -- commands -------------------------------------------------------------------------------


def cmd_ingest(args: argparse.Namespace) -> int:
    from firesift.pipeline import IngestSummary

    settings = _settings(args)
    summary = IngestSummary()
    db = _open_db(settings)
    try:
        pipeline = db.pipeline(batch_size=settings.batch_size, refresh_ms=settings.refresh_ms)
        for name in args.paths:
            _ingest_one(name, args.format, pipeline, summary)
        pipeline.flush(summary)
    finally:
        db.close()
    if args.json:
        _out(summary.to_dict())
    else:
        _err(
            f"ingested {summary.ingested}, duplicates {summary.duplicates}, "
            f"updated {summary.updated}, deleted {summary.deleted}, "
            f"skipped {summary.skipped_total}"
        )
        for reason, n in summary.skipped.most_common():
            _err(f"  skipped {n}: {reason}")
        for where, reason in summary.problems:
            _err(f"  {where}: {reason}")
    return 1 if args.strict and summary.skipped_total else 0


def _ingest_one(name: str, fmt: str, pipeline: Any, summary: Any) -> None:
    from firesift.formats.reader import Problem, read

    def run(stream: BinaryIO, label: str, size: int | None) -> None:
        with _progress(f"ingesting {label}", size is not None) as update:
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


def cmd_search(args: argparse.Namespace) -> int:
    from firesift.search import search

    as_of = _parse_as_of(args.as_of) or _now()
    db = _open_db(_settings(args))
    try:
        resp = search(db, args.query, as_of=as_of, limit=args.limit, sort=args.sort)
    finally:
        db.close()
    if args.json:
        _out(resp.to_dict())
        return 0
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False, soft_wrap=True)
    if not resp.results:
        _err(f"no posts match {args.query!r} as of {resp.as_of.isoformat()}")
        return 0
    for i, r in enumerate(resp.results, 1):
        p = r.post
        when = p.created_at.strftime("%Y-%m-%d %H:%M")
        m = p.metrics
        console.print(
            f"[bold]{i:>2}. @{escape(p.author.handle)}[/bold] [dim]{when} · "
            f"♥{m.likes} ⟲{m.reposts} · {escape(p.url)}[/dim]"
        )
        console.print("    " + escape(p.text.replace("\n", " ")))
    if resp.collapsed:
        _err(f"({resp.collapsed} reposts and near-duplicates folded into the posts above)")
    return 0


def cmd_trends(args: argparse.Namespace) -> int:
    from firesift.post import to_ms
    from firesift.timeparse import parse_duration
    from firesift.trends import render_table

    as_of = _parse_as_of(args.as_of)
    window_ms = int(parse_duration(args.window).total_seconds() * 1000)
    db = _open_db(_settings(args))
    try:
        report = db.trends.report(
            as_of_ms=None if as_of is None else to_ms(as_of), window_ms=window_ms, limit=args.limit
        )
    finally:
        db.close()
    if args.json:
        _out(report.to_json())
        return 0
    from rich.console import Console

    Console(highlight=False).print(render_table(report))
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    db = _open_db(_settings(args))
    try:
        stats = db.stats().to_dict()
    finally:
        db.close()
    if args.json:
        _out(stats)
        return 0
    for key, value in stats.items():
        print(f"{key:>14}: {value}")
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    shown = _settings(args).shown()
    if args.json:
        _out(
            [
                {"name": s.name, "env": s.env, "value": shown[s.name], "help": s.help}
                for s in SETTINGS
            ]
        )
        return 0
    for s in SETTINGS:
        print(f"{s.name:<13} {shown[s.name]:<40} {s.env}: {s.help}")
    return 0


def cmd_train_stance(args: argparse.Namespace) -> int:
    from firesift.answer.train_stance import train

    if not args.data.is_dir():
        raise FiresiftError(
            f"no RumourEval 2017 data at {args.data}: pass --data DIR (the folder with posts.jsonl)"
        )
    out = args.out or Path(__file__).parent / "answer" / "stance_model.npz"
    _err(f"training on {args.data} -> {out}")
    report = train(args.data, out, seed=args.seed).to_dict()
    if args.json:
        _out(report)
    else:
        for key in ("accuracy", "macro_f1", "majority_accuracy", "majority_macro_f1", "n_dev"):
            if key in report:
                print(f"dev {key:>18}: {report[key]}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from firesift import bench

    results = bench.run(args.what, posts=args.posts, workdir=args.workdir, log=_err)
    if args.json:
        _out(results)
    else:
        _err(bench.render(results))
    return 0


# -- parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from firesift.formats import FORMATS

    parser = argparse.ArgumentParser(
        prog="firesift",
        description="Answer engine for the live social stream: ingest, search, trends, answers.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"firesift {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    def db_opt(p: argparse.ArgumentParser) -> None:
        p.add_argument("--db", metavar="DIR", help="data directory (env FIRESIFT_DB)")

    p = add("ingest", cmd_ingest, "Ingest posts from files or stdin ('-') into the database.")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument(
        "--format",
        default="auto",
        choices=["auto", *FORMATS],
        help="payload format (default: detect per line)",
    )
    db_opt(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--strict", action="store_true", help="exit 1 if any line was skipped")

    p = add("search", cmd_search, "Search posts with X-style query syntax.")
    p.add_argument("query")
    p.add_argument("--as-of", metavar="TIME", help="ISO 8601 or relative (2h, yesterday)")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--sort", choices=["relevance", "recent"], default="relevance")
    db_opt(p)
    p.add_argument("--json", action="store_true")

    p = add("trends", cmd_trends, "What is bursting: trending terms and stories with volumes.")
    p.add_argument("--as-of", metavar="TIME", help="default: the newest post")
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

    p = add("train-stance", cmd_train_stance, "Retrain the shipped reply-stance model.")
    p.add_argument(
        "--data",
        type=Path,
        default=Path("../shared/data/rumoureval2017"),
        help="RumourEval 2017 folder (default: ../shared/data/rumoureval2017)",
    )
    p.add_argument("--out", type=Path, default=None, help="model file (default: the shipped one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")

    from firesift.bench import BENCHES

    p = add("bench", cmd_bench, "Benchmarks on synthetic posts shaped like the real corpus.")
    p.add_argument("what", choices=[*BENCHES, "all"])
    p.add_argument("--posts", type=int, default=None, help="how many synthetic posts")
    p.add_argument("--workdir", type=Path, default=None, help="where to build (default: temp)")
    p.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except FiresiftError as e:
        _err(f"firesift: {e}")
        return 2
    except KeyboardInterrupt:
        _err("firesift: interrupted")
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
