"""Serving commands: serve, demo, keys, mcp."""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from datetime import timedelta

from firesift.cli._common import Add, db_opt, err, now, out, settings_of
from firesift.cli.live import configured_sources, source_opt
from firesift.config import load


def _serve_opts(p: argparse.ArgumentParser, port_default: str) -> None:
    p.add_argument("--host", default=None, help="listen address (default 127.0.0.1)")
    p.add_argument(
        "--port", type=int, default=None, help=f"port, 0 = any free (default {port_default})"
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from firesift.api.server import serve

    flags = {"db": args.db, "host": args.host, "port": args.port, "rate_limit": args.rate_limit}
    settings = load(flags)
    sources = configured_sources(args.source, settings)
    serve(settings, sources=sources, require_key=args.require_key, log_level=args.log_level)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Replay the bundled corpus into a fresh database through the service and serve the page."""
    from firesift.api.server import open_service, serve
    from firesift.demo.replay import Replay, load_corpus

    temp = None
    db_dir = args.db
    if db_dir is None:
        temp = tempfile.mkdtemp(prefix="firesift-demo-")
        db_dir = temp
    settings = load({"db": db_dir, "host": args.host, "port": args.port})
    plan = Replay.plan(load_corpus(), speed=args.speed, backfill=timedelta(minutes=args.backfill))
    started = threading.Event()
    stopping = threading.Event()
    service = open_service(settings)

    def announce(url: str) -> None:
        err(f"firesift: serving on {url}")
        err(
            f"firesift demo: open {url}/ — replaying {len(plan.posts):,} real posts from "
            f"2014-15 breaking news at {args.speed:g}x, as if they were happening now "
            f"({plan.duration / 60:.0f} min; Ctrl-C to stop)"
        )
        started.set()

    def replay() -> None:
        started.wait()
        start, t0 = now(), time.monotonic()
        sent = 0
        for due, batch in plan.batches(start):
            delay = t0 + due - time.monotonic()
            if delay > 0 and stopping.wait(delay):
                return
            if stopping.is_set():
                return
            try:
                service.submit(batch)
            except RuntimeError:
                return
            sent += len(batch)
        err(f"firesift demo: replay finished ({sent:,} posts); still serving")

    thread = threading.Thread(target=replay, name="demo-replay", daemon=True)
    thread.start()
    try:
        serve(settings, service=service, announce=announce)
    finally:
        stopping.set()
        thread.join(timeout=5)
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from firesift.api.auth import KeyStore

    store = KeyStore(settings_of(args).db)
    if args.action == "create":
        key, secret = store.create(args.name or "")
        if args.json:
            out({**key.public(), "secret": secret})
        else:
            print(secret)
            err(f"created key {key.id} (shown once; keep it secret)")
    elif args.action == "list":
        keys = [k.public() for k in store.list()]
        if args.json:
            out(keys)
        else:
            from rich.console import Console

            from firesift.cli._render import rows_table

            columns = ("id", "prefix", "name", "created", "last_used")
            empty = "No API keys yet (firesift keys create --name NAME)."
            Console(highlight=False).print(rows_table(keys, columns, empty=empty))
    else:
        if not args.key:
            err("firesift: keys revoke needs the key id or prefix (see firesift keys list)")
            return 2
        key = store.revoke(args.key)
        err(f"revoked key {key.id}")
    store.flush()
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    """The MCP server on stdin/stdout (for an assistant that launches it); status on stderr.
    Its tools only read, so the service's writer is not started."""
    from firesift.cli._common import open_db
    from firesift.mcp_server import run_stdio
    from firesift.service import Service

    service = Service(open_db(settings_of(args)), owns_db=True)
    try:
        run_stdio(service)
    finally:
        service.stop()
    return 0


def register(add: Add) -> None:
    p = add("serve", cmd_serve, "Serve the API (OpenAI-compatible + REST + SSE) and web page.")
    _serve_opts(p, "8000")
    db_opt(p)
    source_opt(p)
    p.add_argument(
        "--require-key",
        action="store_true",
        help="require an API key even on loopback once keys exist",
    )
    p.add_argument(
        "--rate-limit",
        type=int,
        default=None,
        help="requests a minute per API key, 429 beyond (setting rate_limit; 0: no limit)",
    )
    p.add_argument(
        "--log-level",
        default="warning",
        help="uvicorn's log level; info adds an access log (key-like query values redacted)",
    )

    p = add("demo", cmd_demo, "The live demo: replay the bundled real stream and serve the page.")
    p.add_argument("--speed", type=float, default=60.0, help="stream seconds per wall second")
    p.add_argument(
        "--backfill",
        type=float,
        default=30.0,
        help="wall minutes of the replay to ingest at once at start (default 30)",
    )
    _serve_opts(p, "8000")
    p.add_argument("--db", metavar="DIR", help="keep the demo database here (default: temporary)")

    p = add("keys", cmd_keys, "Manage API keys: create, list, revoke.")
    p.add_argument("action", choices=["create", "list", "revoke"])
    p.add_argument("key", nargs="?", help="key id or prefix (revoke)")
    p.add_argument("--name", help="a label for a new key")
    db_opt(p)
    p.add_argument("--json", action="store_true")

    p = add(
        "mcp",
        cmd_mcp,
        "Serve the MCP tools (search, trends, threads, checks, answers) over stdio; "
        "firesift serve has them over HTTP at /mcp.",
    )
    db_opt(p)


__all__ = ["register"]
