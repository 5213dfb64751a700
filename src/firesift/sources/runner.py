"""Running sources: reconnects, back-off, stall detection, back-pressure, acknowledgement, status.

One :class:`SourceRunner` per source, the same for every protocol:

- **Acknowledge only what is stored.** Batches go to a :class:`Sink` (the service's single
  writer) with the source's cursor, which the store saves in the batch's own transaction; only
  when that commit is done is the batch's protocol ``ack`` awaited and the cursor counted as
  reached. On a reconnect the runner first waits for every batch in flight, then resumes from
  the cursor the store holds, so nothing acknowledged is lost and nothing is skipped; replayed
  events are absorbed by the store's dedupe.
- **Back-pressure.** A reader task pulls from the source into a bounded queue, and at most
  ``max_inflight`` submissions wait on the writer: when the writer falls behind, the queue
  fills, the reader stops reading and the socket's own flow control slows the server down.
  Memory stays bounded.
- **Coalescing.** Consecutive batches waiting in the queue are submitted as one store
  transaction (up to ``batch_events`` events), so a source can yield one event at a time.
- **Back-off** follows X's documented reconnect policy, used for every source (:class:`Backoff`):
  linear from 250 ms to 16 s for network errors, exponential from 5 s to 320 s for HTTP errors,
  exponential from 60 s for rate limits (or what the server said), all with jitter, reset once
  a connection delivers.
- **Stall detection.** No batch (keep-alives count) for the source's stall time forces a
  reconnect.
- **Fatal errors** (:class:`~firesift.sources.base.Fatal`, bad configuration) stop that source
  with its message; the other runners are independent.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from firesift.errors import ConfigError
from firesift.sources.base import Batch, Fatal, Retry, Source, cursor_key

if TYPE_CHECKING:
    from firesift.pipeline import IngestSummary
    from firesift.post import Event

__all__ = ["Backoff", "Sink", "SourceRunner", "SourceStatus", "Sources"]

log = logging.getLogger("firesift.sources")

_RATE_WINDOW_S = 10.0


class Sink(Protocol):
    """Where runners put batches: the service's writer, or anything with the same contract."""

    def submit(
        self,
        events: Sequence[Event],
        *,
        summary: IngestSummary | None = None,
        cursor: tuple[str, str] | None = None,
        searchable: bool = False,
    ) -> concurrent.futures.Future[IngestSummary]:
        """Queue ``events`` (and ``cursor``, saved in the same transaction); the future resolves
        once the store committed them (and search sees them, with ``searchable``)."""
        ...

    def cursor(self, name: str) -> str | None:
        """The cursor the store holds for ``name``."""
        ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays before reconnect attempt ``n`` (1-based) by failure kind; ``scale`` shrinks them
    all (tests), ``jitter`` is the random fraction taken off each."""

    scale: float = 1.0
    jitter: float = 0.25

    def delay(self, kind: str, attempt: int, after: float | None = None) -> float:
        n = max(1, attempt)
        if kind == "rate":
            base = max(after or 0.0, min(60.0 * 2 ** (n - 1), 900.0))
        elif kind == "http":
            base = max(after or 0.0, min(5.0 * 2 ** (n - 1), 320.0))
        else:
            base = max(after or 0.0, min(0.25 * n, 16.0))
        return float(base * self.scale * (1.0 - self.jitter * random.random()))


@dataclass(slots=True)
class SourceStatus:
    """What ``firesift up``, ``/api/sources``, ``/metrics`` and the page show for a source."""

    key: str
    source: str
    state: str = "starting"  # starting | connected | reconnecting | stopped | finished
    reason: str = ""
    events: int = 0
    posts: int = 0
    duplicates: int = 0
    skipped: int = 0
    last_problem: str = ""
    batches: int = 0
    reconnects: int = 0
    errors: int = 0
    last_error: str = ""
    last_event_at: datetime | None = None
    lag_s: float | None = None
    cursor: str | None = None
    connected_at: float | None = None
    recent: deque[tuple[float, int]] = field(default_factory=deque)

    def rate(self, now: float | None = None) -> float:
        """Posts stored per second over the last ten seconds."""
        now = time.monotonic() if now is None else now
        while self.recent and self.recent[0][0] < now - _RATE_WINDOW_S:
            self.recent.popleft()
        return sum(n for _, n in self.recent) / _RATE_WINDOW_S

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "source": self.source,
            "state": self.state,
            "reason": self.reason,
            "events": self.events,
            "posts": self.posts,
            "duplicates": self.duplicates,
            "skipped": self.skipped,
            "batches": self.batches,
            "last_problem": self.last_problem,
            "posts_per_s": round(self.rate(), 2),
            "last_event_at": None if self.last_event_at is None else self.last_event_at.isoformat(),
            "lag_s": None if self.lag_s is None else round(self.lag_s, 3),
            "reconnects": self.reconnects,
            "errors": self.errors,
            "last_error": self.last_error,
            "cursor": self.cursor,
        }


class _Stalled(Exception):
    pass


_END = object()


class SourceRunner:
    """Runs one source until it finishes, fails fatally or is stopped (see the module doc)."""

    def __init__(
        self,
        source: Source,
        sink: Sink,
        *,
        backoff: Backoff | None = None,
        batch_events: int = 2000,
        max_inflight: int = 4,
        queue_batches: int = 256,
    ) -> None:
        self.source = source
        self.sink = sink
        self.key = source.spec.key
        self.backoff = backoff or Backoff()
        self.batch_events = batch_events
        self.max_inflight = max_inflight
        self.queue_batches = queue_batches
        self.status = SourceStatus(self.key, source.name)
        self._inflight: deque[tuple[asyncio.Future[IngestSummary], list[Batch]]] = deque()
        self._cursor_key = cursor_key(self.key)

    async def run(self) -> SourceStatus:
        """Run until done; returns the final status. Cancelling drains what is in flight (so
        its cursor is saved) and re-raises."""
        st = self.status
        attempt = 0
        try:
            while True:
                cursor = await asyncio.to_thread(self.sink.cursor, self._cursor_key)
                st.cursor = cursor
                delivered = False
                try:
                    delivered = await self._connection(cursor)
                    st.state, st.reason = "finished", "the source has no more events"
                    return st
                except (Fatal, ConfigError) as e:
                    st.state, st.reason = "stopped", str(e)
                    st.errors += 1
                    st.last_error = str(e)
                    log.error("source %s stopped: %s", self.key, e)
                    return st
                except Exception as e:
                    delivered = delivered or getattr(e, "_delivered", False)
                    kind, after = _classify(e)
                    attempt = 1 if delivered else attempt + 1
                    st.errors += 1
                    st.last_error = _describe(e)
                    st.state, st.reason = "reconnecting", st.last_error
                    delay = self.backoff.delay(kind, attempt, after)
                    log.warning(
                        "source %s: %s; reconnecting in %.2fs", self.key, st.last_error, delay
                    )
                    await self._drain()
                    await asyncio.sleep(delay)
                    st.reconnects += 1
        finally:
            with contextlib.suppress(BaseException):
                await asyncio.shield(self._drain())
            await self.source.aclose()

    async def _connection(self, cursor: str | None) -> bool:
        """One connection: read into a bounded queue, submit in coalesced batches. Returns when
        the source finished; raises what ended the connection (marked with whether any batch
        was delivered, for the back-off reset)."""
        queue: asyncio.Queue[Any] = asyncio.Queue(self.queue_batches)
        reader = asyncio.create_task(self._read(self.source.stream(cursor), queue))
        delivered = False
        held: Any = None  # taken from the queue while coalescing, not part of that group
        try:
            while True:
                item, held = (held, None) if held is not None else (await self._next(queue), None)
                if isinstance(item, BaseException):
                    raise item
                if item is _END:
                    await self._drain()
                    return delivered
                delivered = True
                group = [item]
                events = len(item.events)
                while item.summary is None and events < self.batch_events and not queue.empty():
                    nxt = queue.get_nowait()
                    if not isinstance(nxt, Batch) or nxt.summary is not None or nxt.searchable:
                        held = nxt
                        break
                    group.append(nxt)
                    events += len(nxt.events)
                await self._submit(group)
        except BaseException as e:
            e._delivered = delivered  # type: ignore[attr-defined]
            raise
        finally:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
            _refuse_unsent(queue, held)

    async def _next(self, queue: asyncio.Queue[Any]) -> Any:
        """The next queued item; while waiting, acknowledge whatever the store has finished."""
        while True:
            while self._inflight and self._inflight[0][0].done():
                await self._complete_oldest()
            if not self._inflight or not queue.empty():
                return await queue.get()
            getter = asyncio.ensure_future(queue.get())
            try:
                await asyncio.wait(
                    {getter, self._inflight[0][0]}, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                if not getter.done():
                    getter.cancel()  # the item, if any, stays queued
            if getter.done() and not getter.cancelled():
                return getter.result()

    async def _read(self, stream: AsyncIterator[Batch], queue: asyncio.Queue[Any]) -> None:
        stall = self.source.stall_after
        st = self.status
        try:
            while True:
                try:
                    batch = await asyncio.wait_for(anext(stream), stall or None)
                except StopAsyncIteration:
                    await queue.put(_END)
                    return
                except TimeoutError:
                    raise _Stalled(f"no data for {stall:g} s") from None
                if st.state != "connected":  # anything at all, a keep-alive too, is a connection
                    st.state, st.reason, st.connected_at = "connected", "", time.time()
                if batch.keepalive:
                    continue
                await queue.put(batch)
        except asyncio.CancelledError:
            raise
        except BaseException as e:
            await queue.put(e)
        finally:
            with contextlib.suppress(BaseException):
                await stream.aclose()  # type: ignore[attr-defined]

    async def _submit(self, group: list[Batch]) -> None:
        while len(self._inflight) >= self.max_inflight:
            await self._complete_oldest()
        events: list[Event] = [e for b in group for e in b.events]
        cursor = next((b.cursor for b in reversed(group) if b.cursor is not None), None)
        summary = group[0].summary if len(group) == 1 else None
        future = self.sink.submit(
            events,
            summary=summary,
            cursor=None if cursor is None else (self._cursor_key, cursor),
            searchable=any(b.searchable for b in group),
        )
        self._inflight.append((asyncio.wrap_future(future), group))
        self.status.events += len(events)

    async def _complete_oldest(self) -> None:
        future, group = self._inflight[0]
        try:
            summary = await future
        except BaseException as e:
            for b in group:
                if b.nack is not None:
                    b.nack(e)
            raise
        finally:
            self._inflight.popleft()
        st = self.status
        st.batches += 1
        st.posts += summary.ingested
        st.duplicates += summary.duplicates
        st.recent.append((time.monotonic(), summary.ingested))
        for b in group:
            if b.problems:
                st.skipped += len(b.problems)
                where, reason = b.problems[-1]
                st.last_problem = f"{where}: {reason}"
                log.warning("source %s skipped %s: %s", self.key, where, reason)
            if b.cursor is not None:
                st.cursor = b.cursor
            if b.source_time is not None:
                st.last_event_at = b.source_time
                st.lag_s = max(0.0, (datetime.now(UTC) - b.source_time).total_seconds())
        for b in group:
            if b.ack is not None:
                await b.ack()

    async def _drain(self) -> None:
        while self._inflight:
            await self._complete_oldest()


def _refuse_unsent(queue: asyncio.Queue[Any], held: Any) -> None:
    """Batches read but never submitted when a connection ends: a pull source replays them
    from its cursor; a push source's sender is told they were not stored."""
    left = [held] if held is not None else []
    while not queue.empty():
        left.append(queue.get_nowait())
    for b in left:
        if isinstance(b, Batch) and b.nack is not None:
            b.nack(RuntimeError("the source reconnected before this batch was stored"))


def _classify(e: BaseException) -> tuple[str, float | None]:
    if isinstance(e, Retry):
        return e.kind, e.after
    return "network", None


def _describe(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return text if isinstance(e, Retry | _Stalled) else f"{type(e).__name__}: {text}"


class Sources:
    """Several runners on one event loop in a thread of their own, started and stopped as one
    (the service owns one). Each runner is independent: one stopping leaves the others."""

    def __init__(
        self,
        sources: Sequence[Source],
        sink: Sink,
        *,
        backoff: Backoff | None = None,
        on_status: Callable[[SourceStatus], Awaitable[None]] | None = None,
    ) -> None:
        keys = [s.spec.key for s in sources]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ConfigError(
                f"two sources share the key {', '.join(dupes)}: give one a ?name= of its own"
            )
        self.runners = [SourceRunner(s, sink, backoff=backoff) for s in sources]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[SourceStatus]] = []
        self._thread: Any = None
        self._done = concurrent.futures.Future[None]()

    def statuses(self) -> list[dict[str, Any]]:
        return [r.status.to_dict() for r in self.runners]

    def runner(self, key: str) -> SourceRunner:
        for r in self.runners:
            if r.key == key:
                return r
        raise KeyError(key)

    async def run(self) -> list[SourceStatus]:
        """Run every source on the current loop until all end (or this is cancelled)."""
        self._loop = asyncio.get_running_loop()
        self._tasks = [asyncio.create_task(r.run(), name=f"source {r.key}") for r in self.runners]
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        return [r for r in results if isinstance(r, SourceStatus)]

    def start(self) -> Sources:
        """Run in a background thread (its own event loop)."""
        import threading

        ready = threading.Event()

        def main() -> None:
            async def go() -> None:
                task = asyncio.ensure_future(self.run())
                ready.set()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

            try:
                asyncio.run(go())
                self._done.set_result(None)
            except BaseException as e:
                self._done.set_exception(e)

        self._thread = threading.Thread(target=main, name="firesift-sources", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every runner: what is in flight is stored and acknowledged first."""
        loop = self._loop
        if loop is not None and loop.is_running():
            for t in self._tasks:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: all ended
                    loop.call_soon_threadsafe(t.cancel)
        if self._thread is not None:
            self._thread.join(timeout)
