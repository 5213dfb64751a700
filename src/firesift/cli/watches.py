"""``firesift watch add|list|rm``: standing questions that alert (:mod:`firesift.watches`).

The commands edit the watch tables of the data directory's store; a running ``firesift
serve`` picks the change up with its next ingest batch.
"""

from __future__ import annotations

import argparse

from firesift.cli._common import Add, db_opt, err, lazy_choices, out, settings_of

EXAMPLES = """examples:
  firesift watch add '#ottawashooting' --min-accounts 3 --window 10m
  firesift watch add 'gunman ottawa' --webhook https://hooks.example.org/firesift
  firesift watch add --kind story 'ottawa OR parliament'
  firesift watch add --kind verdict --claim 'a second gunman is on the loose in Ottawa'
  firesift watch list --json
  firesift watch rm w_3f2a9c01d4e5
"""


def _store(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from firesift.store import Store
    from firesift.watches.store import WatchStore

    return WatchStore(Store(settings_of(args).db))


def cmd_watch(args: argparse.Namespace) -> int:
    from firesift.timeparse import parse_duration
    from firesift.watches.model import new_watch

    watches = _store(args)
    try:
        if args.action == "add":
            watch = new_watch(
                args.kind,
                query=args.query,
                claim=args.claim,
                name=args.name or "",
                min_posts=args.min_posts,
                min_accounts=args.min_accounts,
                window_ms=int(parse_duration(args.window).total_seconds() * 1000),
                every=args.every,
                webhook=args.webhook,
                secret=args.secret,
            )
            saved = watches.add(watch)
            if args.json:
                out(saved.to_dict(secret=True))
            else:
                print(saved.id)
                if saved.secret:
                    err(f"webhook secret (shown once): {saved.secret}")
        elif args.action == "list":
            rows = [w.to_dict() for w in watches.all()]
            if args.json:
                out(rows)
            else:
                from rich.console import Console

                from firesift.cli._render import rows_table

                columns = ("id", "kind", "query", "claim", "min_posts", "min_accounts", "webhook")
                empty = "No watches yet (firesift watch add QUERY)."
                Console(highlight=False).print(rows_table(rows, columns, empty=empty))
        else:
            for wid in args.ids:
                watches.remove(wid)
                err(f"removed watch {wid}")
    finally:
        watches.close()
        watches.store.close()
    return 0


def _kinds() -> tuple[str, ...]:
    from firesift.watches.model import KINDS

    return KINDS


def register(add: Add) -> None:
    p = add("watch", cmd_watch, "Watches: standing questions that alert (add, list, rm).")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EXAMPLES
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = sub.add_parser(
        "add",
        help="add a watch; prints its id",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a.add_argument(
        "query", nargs="?", help="X-style query (a verdict watch: default the claim's words)"
    )
    lazy_choices(a.add_argument("--kind", default="matches"), _kinds)
    a.add_argument("--claim", help="the claim a verdict watch checks")
    a.add_argument("--name", help="a label for the watch")
    a.add_argument("--min-posts", type=int, default=1, help="matches: posts per window (default 1)")
    a.add_argument(
        "--min-accounts", type=int, default=1, help="matches: distinct accounts (default 1)"
    )
    a.add_argument("--window", default="10m", help="matches: the window (default 10m)")
    a.add_argument("--every", type=int, default=10, help="verdict: re-check every N matching posts")
    a.add_argument("--webhook", metavar="URL", help="POST each event here (signed)")
    a.add_argument("--secret", help="the webhook's HMAC secret (default: generated)")
    db_opt(a)
    a.add_argument("--json", action="store_true")
    ls = sub.add_parser("list", help="list the watches")
    db_opt(ls)
    ls.add_argument("--json", action="store_true")
    rm = sub.add_parser("rm", help="remove watches (and their events)")
    rm.add_argument("ids", nargs="+", metavar="ID")
    db_opt(rm)
