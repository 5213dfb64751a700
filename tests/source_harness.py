"""What every connector test shares: a real service on a throwaway data dir running sources,
and waiting on what the store (not the source) says it holds."""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from firesift.config import Settings
from firesift.database import Database
from firesift.service import Service
from firesift.sources import Source, build
from firesift.sources.runner import Backoff

FAST = Backoff(scale=0.01, jitter=0.0)
"""Back-off for tests: X's schedule shrunk a hundredfold."""


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
