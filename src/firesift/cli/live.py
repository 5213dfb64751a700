"""Live-source commands: ``up`` runs sources into the store, ``sources`` lists the registry."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any

from firesift.cli._common import Add, db_opt, err, open_db, out
from firesift.config import Settings, load, source_tables
from firesift.errors import ConfigError, FiresiftError

if TYPE_CHECKING:
    from firesift.service import Service
    from firesift.sources import Source

_ENDED = ("stopped", "finished")


def configured_sources(uris: Sequence[str], settings: Settings) -> list[Source]:
    """The config file's ``[[sources]]`` and the ``--source`` URIs, built and checked."""
    from firesift.sources import build_all

    built = build_all(uris, settings, source_tables())
    if any(s.name == "http" for s in built):
        raise ConfigError(
            "the http source is firesift serve's POST /api/ingest, always on; it takes no --source"
        )
    return built


def source_opt(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="URI",
        help="a live source, NAME:ARG?opt=value (repeatable; see firesift sources); "
        "[[sources]] tables in the config file come first",
    )


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops ``up`` the way Ctrl-C does (drain, save cursors, exit 0)."""

    def raise_interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_up(args: argparse.Namespace) -> int:
    from firesift.service import Service

    settings = load({"db": args.db})
    sources = configured_sources(args.source, settings)
    if not sources:
        err(
            "firesift up: no sources; give --source NAME:ARG (firesift sources lists them) "
            "or add [[sources]] tables to the config file"
        )
        return 2
    keys = [s.spec.key for s in sources]
    db = open_db(settings)
    service = Service(
        db,
        batch_size=settings.batch_size,
        refresh_ms=settings.refresh_ms,
        sources=sources,
        owns_db=True,
        trends=False,  # nothing reads them here; `firesift serve` keeps them
    )
    err(f"firesift up: {len(keys)} source(s) into {settings.db}; Ctrl-C to stop")
    interrupted = False
    with _sigterm_interrupts():
        service.start()
        try:
            _watch(service, keys, every=args.status_every)
        except KeyboardInterrupt:
            interrupted = True
            err("firesift up: stopping: storing what is in flight and saving cursors")
        finally:
            service.stop()
    statuses = [s for s in service.sources.statuses() if s["key"] in keys]
    if args.json:
        out(statuses)
    else:
        from rich.console import Console

        from firesift.cli._render import sources_view

        Console(stderr=True, highlight=False).print(sources_view(statuses))
    failed = [s for s in statuses if s["state"] == "stopped" and s["reason"]]
    if interrupted or not failed:
        return 0
    return 1


def _watch(service: Service, keys: list[str], *, every: float) -> None:
    """Show the sources' status until each has ended (or Ctrl-C): a live table on a terminal,
    else one line per source every ``every`` seconds and whenever a state changes."""

    def current() -> list[dict[str, Any]]:
        return [s for s in service.sources.statuses() if s["key"] in keys]

    def ended(statuses: list[dict[str, Any]]) -> bool:
        return all(s["state"] in _ENDED for s in statuses)

    from firesift.cli._render import sources_line, sources_view

    if sys.stderr.isatty():
        from rich.console import Console
        from rich.live import Live

        with Live(
            sources_view(current()), console=Console(stderr=True), refresh_per_second=2
        ) as live:
            while not ended(statuses := current()):
                time.sleep(0.5)
                live.update(sources_view(statuses))
        return
    shown: dict[str, str] = {}
    last = 0.0
    while True:
        statuses = current()
        due = time.monotonic() - last >= every
        for s in statuses:
            if due or shown.get(s["key"]) != s["state"]:
                err(sources_line(s))
                shown[s["key"]] = s["state"]
        if due:
            last = time.monotonic()
        if ended(statuses):
            return
        time.sleep(0.2)


def cmd_sources(args: argparse.Namespace) -> int:
    from firesift import sources

    described, broken = [], []
    for name in sources.names():
        try:
            described.append(sources.get(name).describe())
        except FiresiftError as e:
            broken.append(str(e))
    for line in broken:
        err(f"firesift sources: {line}")
    if args.json:
        out(described)
        return 0
    from rich.console import Console

    from firesift.cli._render import registry_view

    Console(highlight=False).print(registry_view(described, sources.COMMON_OPTIONS))
    return 0


def register(add: Add) -> None:
    p = add("up", cmd_up, "Run live sources into the store until stopped (Ctrl-C drains).")
    source_opt(p)
    db_opt(p)
    p.add_argument(
        "--status-every",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds between status lines when stderr is not a terminal (default 10)",
    )
    p.add_argument("--json", action="store_true", help="print the final statuses as JSON")

    p = add("sources", cmd_sources, "List the live sources: options, settings they need.")
    p.add_argument("--json", action="store_true")


__all__ = ["configured_sources", "register", "source_opt"]
