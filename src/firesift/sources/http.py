"""``http``: posts pushed to ``POST /api/ingest`` enter through the same interface as every
other source, so they share its acknowledgement rule, back-pressure and status.

The API handler parses the request body and calls :meth:`HttpPush.push`, which queues one batch
(never coalesced with others, so the response reports that request's own counts) and returns a
future that resolves only after the store has the batch: the handler answers 2xx then, and a
store failure becomes an error response instead. When the writer falls behind, the bounded
queue makes ``push`` wait, which slows the pushing clients down.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from firesift.sources.base import Batch, Source

if TYPE_CHECKING:
    from firesift.pipeline import IngestSummary
    from firesift.post import Event

__all__ = ["HttpPush"]


class HttpPush(Source):
    name = "http"
    help = "Posts pushed to POST /api/ingest (NDJSON, any supported format) by firesift serve."
    stall_s = 0.0  # quiet clients are not a stalled connection

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[Batch] | None = None
        self._ready = threading.Event()

    async def stream(self, cursor: str | None) -> AsyncIterator[Batch]:
        if self._queue is None:  # one queue across reconnects: nothing pushed is dropped
            self._loop = asyncio.get_running_loop()
            self._queue = asyncio.Queue(64)
            self._ready.set()
        yield Batch()  # accepting pushes from here on: the status says connected
        while True:
            yield await self._queue.get()

    def push(
        self, events: Sequence[Event], summary: IngestSummary, *, searchable: bool = False
    ) -> concurrent.futures.Future[IngestSummary]:
        """Queue a batch from any thread; the future resolves to ``summary`` (with the store's
        counts) once the store has it, or raises what stopped it."""
        done: concurrent.futures.Future[IngestSummary] = concurrent.futures.Future()
        if not self._ready.wait(10) or self._loop is None or self._queue is None:
            done.set_exception(RuntimeError("the ingest source is not running"))
            return done

        async def ack() -> None:
            if not done.done():
                done.set_result(summary)

        def nack(error: BaseException) -> None:
            if not done.done():
                done.set_exception(error)

        batch = Batch(events, ack=ack, nack=nack, summary=summary, searchable=searchable)
        queued = asyncio.run_coroutine_threadsafe(self._queue.put(batch), self._loop)

        def refused(f: concurrent.futures.Future[None]) -> None:
            error = f.exception()
            if error is not None:
                nack(error)

        queued.add_done_callback(refused)
        return done
