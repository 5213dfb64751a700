"""Watches inside a running :class:`~firesift.service.Service`: the parts, wired together.

The evaluator is a pipeline sink on the writer thread; story and verdict checks run on their
own thread (``firesift-watch-checks``), webhooks on another (``firesift-webhooks``), and SSE
clients are woken on their event loops. Starting catches the evaluator up with the change log
(posts stored while no service ran, e.g. by ``firesift ingest``) and resumes owed deliveries.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx

from firesift.store import Store
from firesift.watches.deliver import Deliverer
from firesift.watches.evaluate import Checker, Evaluator, TrendSource
from firesift.watches.model import WatchEvent
from firesift.watches.store import WatchStore

if TYPE_CHECKING:
    from firesift.service import Service

__all__ = ["Watching"]

log = logging.getLogger("firesift.watches")


class Watching:
    """The watches of one store, evaluated and delivered (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        trends: TrendSource | None = None,
        check: Checker | None = None,
        wait_for: Callable[[int], None] | None = None,
        backoff_s: float = 1.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.store = WatchStore(store)
        self.deliverer = Deliverer(self.store, base_s=backoff_s, transport=transport)
        self._subscribers: dict[asyncio.Event, asyncio.AbstractEventLoop] = {}
        self._lock = threading.Lock()
        self.evaluator = Evaluator(
            self.store,
            store,
            trends=trends,
            check=check,
            wait_for=wait_for,
            on_events=self._on_events,
        )
        self._checker: threading.Thread | None = None
        self._stopping = threading.Event()

    @classmethod
    def for_service(cls, service: Service, **kwargs: object) -> Watching:
        """Watching wired to ``service``: its trend state, its engine's claim checks, and
        checks that wait for the index (and trends worker) to hold what they read."""
        db = service.db

        def wait_for(seq: int) -> None:
            deadline = time.monotonic() + 30
            while db.index.applied_seq < seq and time.monotonic() < deadline:
                if not service.writer_alive:
                    break
                time.sleep(0.02)
            worker = db.worker
            if worker is not None:
                worker.sync(seq)

        return cls(
            db.store,
            trends=service.trends,
            check=lambda claim, at: service.engine.check(claim, as_of=at),
            wait_for=wait_for,
            **kwargs,  # type: ignore[arg-type]
        )

    def start(self) -> Watching:
        caught = self.evaluator.catch_up()
        if caught:
            log.info("watches: caught up with %d stored changes", caught)
        self.deliverer.start()
        if self._checker is None:
            self._stopping.clear()
            self._checker = threading.Thread(
                target=self._run_checks, name="firesift-watch-checks", daemon=True
            )
            self._checker.start()
        return self

    def stop(self) -> None:
        if self._checker is not None:
            self._stopping.set()
            self.evaluator.stop_checks()
            self._checker.join(timeout=60)
            self._checker = None
        self.deliverer.stop()
        self.store.close()

    def _run_checks(self) -> None:
        while not self._stopping.is_set():
            self.evaluator.run_checks(block=True, timeout=0.5)

    # -- SSE wake-ups ----------------------------------------------------------------------

    def subscribe(self) -> asyncio.Event:
        """An event set (on the running loop) whenever watch events are recorded."""
        flag = asyncio.Event()
        with self._lock:
            self._subscribers[flag] = asyncio.get_running_loop()
        return flag

    def unsubscribe(self, flag: asyncio.Event) -> None:
        with self._lock:
            self._subscribers.pop(flag, None)

    def _on_events(self, events: list[WatchEvent]) -> None:
        self.deliverer.notify()
        with self._lock:
            subscribers = list(self._subscribers.items())
        for flag, loop in subscribers:
            try:
                loop.call_soon_threadsafe(flag.set)
            except RuntimeError:  # its loop closed: the client is gone
                self.unsubscribe(flag)
