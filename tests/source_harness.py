"""What every connector test shares: a real service on a throwaway data dir running sources,
and waiting on what the store (not the source) says it holds."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from firesift.config import Settings
from firesift.database import Database
from firesift.service import Service
from firesift.sources import Source, build
from firesift.sources.runner import Backoff

T = TypeVar("T")

FAST = Backoff(scale=0.01, jitter=0.0)
"""Back-off for tests: X's schedule shrunk a hundredfold."""


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to its end on a fresh event loop in a thread of its own, so a test does
    not depend on whether the main thread already runs a loop (Playwright's sync API does)."""
    result: list[T] = []
    error: list[BaseException] = []

    def main() -> None:
        try:
            result.append(asyncio.run(make()))
        except BaseException as e:
            error.append(e)

    thread = threading.Thread(target=main, name="test-async")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def source(uri: str, **settings: Any) -> Source:
    """A configured source from its URI, as ``firesift up --source URI`` builds it."""
    return build(uri, Settings(**settings))


@contextmanager
def live_service(db_dir: Path, *sources: Source, backoff: Backoff = FAST) -> Iterator[Service]:
    """A started service over ``db_dir`` running ``sources``; stopped (drained) on exit. Open
    it again on the same dir to test a restart."""
    db = Database(db_dir)
    service = Service(db, sources=list(sources), backoff=backoff, owns_db=True)
    service.start()
    try:
        yield service
    finally:
        service.stop()


def wait_for(check: Callable[[], Any], *, timeout: float = 20.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(0.02)


def status(service: Service, key: str) -> dict[str, Any]:
    """One source's status as ``GET /api/sources`` reports it."""
    for s in service.sources.statuses():
        if s["key"] == key:
            return s
    raise KeyError(f"no source {key!r}; have {[s['key'] for s in service.sources.statuses()]}")


def stored_ids(service: Service, source: str | None = None) -> Counter[tuple[str, str]]:
    """(source, id) of every visible post in the store, with multiplicity (a 2 is a duplicate)."""
    return Counter((p.source, p.id) for p in service.db.store.iter_posts(source=source))
