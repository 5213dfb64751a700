"""The running service: one database, one writer thread, trends, answers and the live feed.

Decisions:

- **One writer.** Everything that writes (HTTP ingest, the demo replay, live sources) calls
  :meth:`Service.submit`, which only enqueues and returns a :class:`concurrent.futures.Future`.
  The writer thread owns the pipeline: each submission is applied to the store in its own
  transaction (so its :class:`~firesift.pipeline.IngestSummary` is exact and its cursor is saved
  with its posts) and the future resolves only after the store has committed it: that is the
  acknowledgement. Index commits are amortised across submissions by the pipeline's
  ``refresh_ms`` budget: the writer wakes at least every :data:`TICK_S` to commit, so a stored
  post is searchable within about ``refresh_ms`` + one tick.
- **Derived views.** The live hub is a pipeline sink: it sees each batch's changes right after
  the store commits them, and only enqueues there; fan-out to readers happens on its own
  thread. The trend state (``db.trends``, thread-safe) is either a sink too, or, as
  :func:`~firesift.api.server.open_service` sets it up, a worker process that follows the
  store's change log (:mod:`firesift.worker`), so counting terms neither slows the
  writer nor holds the interpreter lock that answers need.
- **Answers off the event loop.** The :class:`~firesift.answer.engine.AnswerEngine` reads the
  store and index from any thread (the store keeps one read connection per thread), so the API
  runs engine calls in a thread pool and never blocks the event loop. With a read worker
  (:func:`~firesift.api.server.open_service`), chat answers are computed there instead
  (:meth:`Service.stream_answer`): the threads then only wait on a pipe, and the writer keeps
  this interpreter to itself.
- **Clock.** ``clock`` says what "now" is for defaults that need it (``search`` without
  ``as_of``, Perplexity's recency filter); a replay passes its simulated clock.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from firesift.api.live import LiveHub
from firesift.config import Settings
from firesift.errors import ConfigError, FiresiftError
from firesift.pipeline import IngestSummary, Pipeline
from firesift.post import Event
from firesift.sources.base import Source, SourceSpec
from firesift.sources.http import HttpPush
from firesift.sources.runner import Backoff, Sources
from firesift.store import Change
from firesift.trends import TrendReport

if TYPE_CHECKING:
    from firesift.answer.engine import AnswerEngine
    from firesift.answer.model import AnswerEvent, Filters, Message
    from firesift.database import Database
    from firesift.worker import ReadWorker

__all__ = ["TICK_S", "IngestCounters", "Service"]

log = logging.getLogger("firesift.service")

TICK_S = 0.05
"""Longest the writer sleeps: the granularity of index commits when ingest goes quiet."""

_RATE_WINDOW_S = 10.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class _Submission:
    events: Sequence[Event]
    summary: IngestSummary
    cursor: tuple[str, str] | None
    future: concurrent.futures.Future[IngestSummary]
    searchable: bool = False


@dataclass(slots=True)
class IngestCounters:
    """Totals since start, for ``/metrics`` and ``event: stats``."""

    submissions: int = 0
    events: int = 0
    ingested: int = 0
    duplicates: int = 0
    updated: int = 0
    deleted: int = 0
    failed: int = 0
    index_commits: int = 0
    write_seconds: float = 0.0
    recent: deque[tuple[float, int]] = field(default_factory=deque)

    def rate(self, now: float) -> float:
        """Posts stored per second over the last ten seconds."""
        while self.recent and self.recent[0][0] < now - _RATE_WINDOW_S:
            self.recent.popleft()
        if not self.recent:
            return 0.0
        return sum(n for _, n in self.recent) / _RATE_WINDOW_S


class _LiveSink:
    def __init__(self, hub: LiveHub) -> None:
        self.hub = hub

    def apply_changes(self, changes: Sequence[Change]) -> None:
        self.hub.publish([c.post for c in changes if c.post is not None])


class Service:
    """A database served: ingestion through one writer thread, answers, trends and live feed.

    Use as a context manager or call :meth:`start` / :meth:`stop`. ``engine`` defaults to an
    :class:`~firesift.answer.engine.AnswerEngine` over ``db`` with ``composers``. When ``db``
    keeps its trends in a worker, ``answer_workers`` processes compute chat answers.
    ``trends=False`` keeps no trend state at all (``firesift up``: it only ingests).
    """

    def __init__(
        self,
        db: Database,
        *,
        batch_size: int = 2000,
        refresh_ms: int = 100,
        engine: AnswerEngine | None = None,
        composers: Any = None,
        clock: Callable[[], datetime] = _utcnow,
        trends_every_s: float = 5.0,
        stats_every_s: float = 2.0,
        owns_db: bool = False,
        answer_workers: int = 0,
        sources: Sequence[Source] = (),
        backoff: Backoff | None = None,
        trends: bool = True,
    ) -> None:
        self.db = db
        self.clock = clock
        self.owns_db = owns_db
        self.started_at = time.time()
        self.counters = IngestCounters()
        self.live = LiveHub(
            trends=self._live_trends if trends else None,
            stats=self.stats,
            trends_every_s=trends_every_s,
            stats_every_s=stats_every_s,
        )
        # trend state costs the writer ~50 us per post when it is a sink in this process:
        # an ingest-only service (firesift up) keeps none
        self.trends = db.trends if trends else None
        self.pipeline = self._build_pipeline(batch_size, refresh_ms)
        # Answers go to worker processes when the database keeps trends in one and this
        # service adds nothing their engines lack (an injected engine, a clock of its own).
        if answer_workers < 0:
            raise ConfigError(f"answer_workers must be >= 0, got {answer_workers}")
        self._answerers: list[ReadWorker] = []
        if db.worker is not None and engine is None and clock is _utcnow:
            from firesift.worker import ReadWorker

            self._answerers = [
                ReadWorker(db.path, role="answers", trend_source=db.worker)
                for _ in range(answer_workers)
            ]
        if engine is None:
            from firesift.answer.engine import AnswerEngine

            engine = AnswerEngine(db, composers=composers, clock=clock)
        self.engine = engine
        # Watches: a pipeline sink on the writer; checks and webhooks on threads of their own.
        from firesift.watches.service import Watching

        self.watching = Watching.for_service(self)
        self.pipeline.sinks = [*self.pipeline.sinks, self.watching.evaluator]
        self._configured = set(composers or {})
        self._queue: queue.SimpleQueue[_Submission | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._stopping = False
        self._pending = 0
        self._pending_lock = threading.Lock()
        # Every way in is a source: POST /api/ingest is the ``http`` one, always present.
        self.ingest = HttpPush(SourceSpec("http"), Settings())
        self.sources = Sources([self.ingest, *sources], self, backoff=backoff)

    def _build_pipeline(self, batch_size: int, refresh_ms: int) -> Pipeline:
        pipeline = self.db.pipeline(batch_size=batch_size, refresh_ms=refresh_ms)
        pipeline.sinks = [*pipeline.sinks, _LiveSink(self.live)]
        return pipeline

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Service:
        if self._writer is None:
            self._stopping = False
            self.watching.start()
            self._writer = threading.Thread(target=self._run, name="firesift-writer", daemon=True)
            self._writer.start()
            self.live.start()
            self.sources.start()
            for worker in self._answerers:
                if not worker.wait_ready():
                    log.warning("answers worker %s is not ready; requests will retry", worker.pid)
        return self

    def stop(self) -> None:
        """Stop the sources (what they have in flight is stored and acknowledged), finish
        queued submissions, make them searchable, stop the threads."""
        self.sources.stop()
        if self._writer is not None:
            self._stopping = True
            self._queue.put(None)
            self._writer.join()
            self._writer = None
            self.watching.stop()
        self.live.stop()
        for worker in self._answerers:
            worker.close()
        if self.owns_db:
            self.db.close()

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def writer_alive(self) -> bool:
        return self._writer is not None and self._writer.is_alive()

    @property
    def queued(self) -> int:
        """Submissions accepted but not yet stored."""
        return self._pending

    # -- ingestion -----------------------------------------------------------------------

    def cursor(self, name: str) -> str | None:
        """The cursor the store holds for ``name`` (a source's resume point)."""
        return self.db.store.cursor(name)

    def submit(
        self,
        events: Iterable[Event],
        *,
        summary: IngestSummary | None = None,
        cursor: tuple[str, str] | None = None,
        searchable: bool = False,
    ) -> concurrent.futures.Future[IngestSummary]:
        """Queue events for the writer; the future resolves to the summary (``summary`` if
        given, counts added to it) once the store has them, or raises the store's error.
        ``searchable=True`` waits until search sees them too (an index commit of its own:
        for tests and scripts, not for a high-rate stream).
        Thread-safe and cheap: nothing is parsed or written on the caller's thread. From async
        code, ``await service.submit_async(...)``."""
        future: concurrent.futures.Future[IngestSummary] = concurrent.futures.Future()
        if self._stopping or self._writer is None:
            future.set_exception(RuntimeError("the service is not running"))
            return future
        events = events if isinstance(events, list | tuple) else list(events)
        with self._pending_lock:
            self._pending += 1
        self._queue.put(_Submission(events, summary or IngestSummary(), cursor, future, searchable))
        return future

    async def submit_async(
        self,
        events: Iterable[Event],
        *,
        summary: IngestSummary | None = None,
        cursor: tuple[str, str] | None = None,
        searchable: bool = False,
    ) -> IngestSummary:
        future = self.submit(events, summary=summary, cursor=cursor, searchable=searchable)
        return await asyncio.wrap_future(future)

    def _run(self) -> None:
        pipeline = self.pipeline
        index = self.db.index
        while True:
            applied = index.applied_seq
            try:
                item = self._queue.get(timeout=TICK_S)
            except queue.Empty:
                item = None if self._stopping else _IDLE
            if item is None:
                self._drain(pipeline)
                self._commit(pipeline, force=True)
            elif item is not _IDLE:
                self._apply(pipeline, item, self.counters)
                self._commit(pipeline, force=False)
            else:
                self._commit(pipeline, force=False)
            if index.applied_seq != applied:
                self.counters.index_commits += 1
                self.db.refreshed_at = time.time()
            if item is None:
                return

    def _drain(self, pipeline: Pipeline) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                self._apply(pipeline, item, self.counters)

    def _apply(self, pipeline: Pipeline, item: _Submission, counters: IngestCounters) -> None:
        s = item.summary
        before = (s.ingested, s.duplicates, s.updated, s.deleted)
        t0 = time.perf_counter()
        try:
            pipeline.feed(item.events, s)
            pipeline.write(s, item.cursor)
        except Exception as exc:
            counters.failed += 1
            log.exception("ingest failed")
            _settle(item.future, error=exc)
        else:
            counters.submissions += 1
            counters.events += len(item.events)
            counters.ingested += s.ingested - before[0]
            counters.duplicates += s.duplicates - before[1]
            counters.updated += s.updated - before[2]
            counters.deleted += s.deleted - before[3]
            counters.recent.append((time.monotonic(), s.ingested - before[0]))
            if item.searchable:
                self._commit(pipeline, force=True)
            _settle(item.future, result=s)
        finally:
            counters.write_seconds += time.perf_counter() - t0
            with self._pending_lock:
                self._pending -= 1

    @staticmethod
    def _commit(pipeline: Pipeline, *, force: bool) -> None:
        try:
            if force:
                pipeline.commit()
            else:
                pipeline.maybe_commit()
        except Exception:
            log.exception("index commit failed (the store has the posts; it will catch up)")

    # -- reads ---------------------------------------------------------------------------

    def composer_names(self) -> list[str]:
        """Composers usable here: the engine's, minus those that need an LLM backend
        (``needs_model``) unless one was configured and passed in ``composers``."""
        out = []
        for name in self.engine.composer_names():
            if name in self._configured:
                out.append(name)
                continue
            try:
                composer = self.engine.composer(name)
            except FiresiftError:
                continue
            if not getattr(composer, "needs_model", False):
                out.append(name)
        return out

    def now(self) -> datetime:
        return self.clock()

    def stream_answer(
        self,
        messages: Sequence[Message],
        *,
        filters: Filters,
        as_of: datetime | None,
        composer: str,
    ) -> Iterator[AnswerEvent]:
        """``engine.stream``, computed by the least busy answers worker when there are some (for
        the registered composers; one configured here, such as ``llm``, runs in this process)."""
        if self._answerers and composer not in self._configured:
            worker = min(self._answerers, key=lambda w: w.in_flight)
            return worker.stream(messages, filters=filters, as_of=as_of, composer=composer)
        return self.engine.stream(messages, filters=filters, as_of=as_of, composer=composer)

    def trend_report(
        self, *, as_of_ms: int | None = None, window_ms: int = 3_600_000, limit: int = 20
    ) -> TrendReport:
        """The database's trend report (an old ``as_of`` is replayed from the store)."""
        if self.trends is None:
            raise FiresiftError("this service keeps no trend state (started with trends=False)")
        return self.trends.report(as_of_ms=as_of_ms, window_ms=window_ms, limit=limit)

    def _live_trends(self) -> dict[str, Any]:
        return self.trend_report(limit=10).to_json()

    def stats(self) -> dict[str, Any]:
        """Store, index, ingest and live-feed numbers (``event: stats``, ``/api/stats``)."""
        s = self.db.stats()
        c = self.counters
        return {
            "posts": s.store.posts,
            "tombstones": s.store.tombstones,
            "last_seq": s.store.last_seq,
            "index_seq": s.index_seq,
            "index_lag": s.index_lag,
            "index_docs": s.indexed_docs,
            "index_refreshed_at": s.index_refreshed_at,
            "newest_post": (s.store.max_created_at.isoformat() if s.store.max_created_at else None),
            "ingest_rate": round(c.rate(time.monotonic()), 1),
            "ingested": c.ingested,
            "queued": self.queued,
            "live_clients": self.live.clients,
            "uptime_s": round(time.time() - self.started_at, 1),
            "sources": self.sources.statuses(),
        }


def _settle(
    future: concurrent.futures.Future[IngestSummary],
    *,
    result: IngestSummary | None = None,
    error: BaseException | None = None,
) -> None:
    """Resolve a submission's future unless its submitter gave up on it (a source runner
    cancelled while stopping): what was stored stays stored, it is just not acknowledged."""
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        if error is not None:
            future.set_exception(error)
        else:
            assert result is not None
            future.set_result(result)


_IDLE = _Submission((), IngestSummary(), None, concurrent.futures.Future())
