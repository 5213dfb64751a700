"""The ``firesift`` command line: a thin shell over the library.

Data goes to stdout (``--json`` on every command that lists or reports), progress and status to
stderr; progress bars only on a terminal. Errors firesift raises on purpose become one line
that says how to fix the problem, with exit status 2; nothing else is caught here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from firesift import __version__
from firesift.cli import answers, data, live, serving, watches
from firesift.cli._common import err, lazy_choices, out
from firesift.errors import FiresiftError

__all__ = ["main"]

EPILOG = """examples:
  firesift ingest data/rumoureval2017/posts.jsonl
  curl -sN https://example.org/stream | firesift ingest - --format x_v2
  firesift search '"gunman" from:ottawapolice -filter:replies' --as-of 2014-10-22T16:00Z
  firesift search '#sydneysiege OR #MartinPlace min_retweets:10' --limit 5 --json
  firesift trends --as-of 2014-12-15T06:00Z --window 1h
  firesift ask "Has the Ottawa gunman been identified?" --as-of 2014-10-22T22:00Z
  firesift check "a second gunman is on the loose in Ottawa" --json
  firesift serve --port 8000          # API + web page
  firesift up --source jetstream --source 'mastodon:mastodon.social?stream=public'
  firesift serve --source jetstream   # ingest live and serve in one process
  firesift demo                       # the live demo on the bundled real stream
"""


def cmd_bench(args: argparse.Namespace) -> int:
    from firesift import bench

    if args.target is not None and args.what not in bench.TARGETED:
        err(f"firesift bench {args.what} takes no target ({args.target!r} given)")
        return 2
    if args.what == "source" and args.target not in (None, "all"):
        from firesift.sources.bench import TARGETS

        if args.target not in TARGETS:
            err(f"unknown source bench {args.target!r}; known: {', '.join(TARGETS)}, all")
            return 2
    results = bench.run(
        args.what,
        posts=args.posts,
        workdir=args.workdir,
        log=err,
        target=args.target,
        trials=args.trials,
    )
    if args.json:
        out(results)
    else:
        err(bench.render(results))
    return 0


def _bench_names() -> list[str]:
    from firesift.bench import BENCHES

    return [*BENCHES, "all"]


def build_parser() -> argparse.ArgumentParser:
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

    for module in (data, answers, live, serving, watches):
        module.register(add)

    p = add("bench", cmd_bench, "Benchmarks on synthetic posts shaped like the real corpus.")
    lazy_choices(p.add_argument("what"), _bench_names)
    p.add_argument(
        "target",
        nargs="?",
        help="for source: jetstream or nats (default: both); for crash: file, jetstream or nats",
    )
    p.add_argument("--posts", type=int, default=None, help="how many synthetic posts")
    p.add_argument("--workdir", type=Path, default=None, help="where to build (default: temp)")
    p.add_argument("--trials", type=int, default=None, help="for crash: trials per kind (20)")
    p.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except FiresiftError as e:
        err(f"firesift: {e}")
        return 2
    except KeyboardInterrupt:
        err("firesift: interrupted")
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
