"""Helpers every command shares: output, settings, progress bars, opening the database."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, overload

import orjson

from firesift.config import Settings, load

if TYPE_CHECKING:
    from firesift.database import Database

Command = Callable[[argparse.Namespace], int]
Add = Callable[[str, Command, str], argparse.ArgumentParser]


class LazyChoices(Sequence[str]):
    """An argument's ``choices`` listed by importing their module only when argparse checks a
    value or prints help, so building the parser (every command pays for it) stays cheap."""

    def __init__(self, load: Callable[[], Iterable[str]]) -> None:
        self._load = load
        self._items: tuple[str, ...] | None = None

    def _all(self) -> tuple[str, ...]:
        if self._items is None:
            self._items = tuple(self._load())
        return self._items

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[str]: ...
    def __getitem__(self, i: int | slice) -> str | Sequence[str]:
        return self._all()[i]

    def __len__(self) -> int:
        return len(self._all())


def lazy_choices(action: argparse.Action, load: Callable[[], Iterable[str]]) -> None:
    """Give ``action`` choices from ``load`` (set after ``add_argument``, which would otherwise
    list them at once to check the metavar)."""
    action.choices = LazyChoices(load)


def db_opt(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="DIR", help="data directory (env FIRESIFT_DB)")


def as_of_opt(p: argparse.ArgumentParser, default: str = "now") -> None:
    p.add_argument(
        "--as-of", metavar="TIME", help=f"ISO 8601 or relative (2h, yesterday); default {default}"
    )


def out(data: object) -> None:
    sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


def err(msg: str) -> None:
    print(msg, file=sys.stderr)


def settings_of(args: argparse.Namespace) -> Settings:
    return load({"db": getattr(args, "db", None)})


@contextmanager
def progress(label: str, enabled: bool) -> Iterator[Callable[[int, int], None]]:
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


def open_db(settings: Settings) -> Database:
    from firesift.database import Database

    with progress("rebuilding index", True) as update:
        db = Database(settings.db, progress=update)
    if db.caught_up:
        what = "rebuilt from" if db.rebuilt else "caught up with"
        err(f"index {what} the store: {db.caught_up} changes replayed")
    return db


def now() -> datetime:
    return datetime.now(UTC)


def parse_as_of(text: str | None) -> datetime | None:
    from firesift.timeparse import parse_time

    return None if text is None else parse_time(text, now=now())
