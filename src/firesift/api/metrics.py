"""``/metrics`` in the Prometheus text exposition format (version 0.0.4), without a client
library: a few histograms and counters kept here, and gauges read from the service at scrape
time (so they are never stale and cost nothing between scrapes).

Request latency is recorded per route *template* (``/api/posts/{source}/{id:path}``, never the
raw path, so label cardinality stays fixed) from the request's arrival to the end of its
response; for Server-Sent-Event responses (chat streams, the live feed) it is the time to the
response headers, and chat streams also record their time to first token.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from firesift.service import Service

__all__ = ["Histogram", "Metrics", "MetricsMiddleware", "metrics_endpoint"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items())) + "}"


def _num(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class Histogram:
    """Cumulative-bucket histogram series keyed by a label tuple."""

    def __init__(self, name: str, help: str, label_names: tuple[str, ...]) -> None:
        self.name = name
        self.help = help
        self.label_names = label_names
        self.buckets = LATENCY_BUCKETS
        self._series: dict[tuple[str, ...], list[float]] = {}
        self._lock = threading.Lock()

    def observe(self, value: float, *labels: str) -> None:
        i = bisect.bisect_left(self.buckets, value)
        with self._lock:
            s = self._series.get(labels)
            if s is None:
                s = self._series[labels] = [0.0] * (len(self.buckets) + 3)
            s[i] += 1
            s[-2] += value
            s[-1] += 1

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        with self._lock:
            series = {k: list(v) for k, v in self._series.items()}
        for key, s in sorted(series.items()):
            base = dict(zip(self.label_names, key, strict=True))
            running = 0.0
            for i, bound in enumerate((*self.buckets, float("inf"))):
                running += s[i]
                yield f"{self.name}_bucket{_labels({**base, 'le': _num(bound)})} {_num(running)}"
            yield f"{self.name}_sum{_labels(base)} {_num(s[-2])}"
            yield f"{self.name}_count{_labels(base)} {_num(s[-1])}"


class Metrics:
    """What the app measures itself (the rest is read from the service when scraped)."""

    def __init__(self) -> None:
        self.requests = Histogram(
            "firesift_http_request_duration_seconds",
            "Time to answer a request (to the headers for event streams).",
            ("route", "method", "status"),
        )
        self.ttft = Histogram(
            "firesift_chat_time_to_first_token_seconds",
            "Streaming chat completions: request arrival to the first content delta.",
            (),
        )

    def observe_ttft(self, seconds: float) -> None:
        self.ttft.observe(seconds)

    def render(self, service: Service) -> str:
        lines: list[str] = []

        def metric(name: str, kind: str, help: str, value: float) -> None:
            lines.extend(
                (f"# HELP {name} {help}", f"# TYPE {name} {kind}", f"{name} {_num(value)}")
            )

        stats = service.db.stats()
        c = service.counters
        now = time.time()
        metric("firesift_store_posts", "gauge", "Visible posts in the store.", stats.store.posts)
        metric(
            "firesift_store_tombstones",
            "gauge",
            "Deleted posts remembered.",
            stats.store.tombstones,
        )
        metric(
            "firesift_store_last_seq",
            "gauge",
            "Sequence number of the store's latest change.",
            stats.store.last_seq,
        )
        metric(
            "firesift_index_applied_seq",
            "gauge",
            "Store sequence the search index has applied.",
            stats.index_seq,
        )
        metric(
            "firesift_index_lag_changes",
            "gauge",
            "Store changes not yet in the search index (last_seq - applied_seq).",
            stats.index_lag,
        )
        metric("firesift_index_docs", "gauge", "Documents in the search index.", stats.indexed_docs)
        refreshed = stats.index_refreshed_at
        metric(
            "firesift_index_freshness_seconds",
            "gauge",
            "Seconds since the search index last made new posts searchable.",
            max(0.0, now - refreshed) if refreshed else 0.0,
        )
        metric(
            "firesift_ingest_submissions_total",
            "counter",
            "Ingest submissions stored.",
            c.submissions,
        )
        metric("firesift_ingest_events_total", "counter", "Events submitted for ingest.", c.events)
        metric("firesift_ingest_posts_total", "counter", "New posts stored.", c.ingested)
        metric(
            "firesift_ingest_duplicates_total",
            "counter",
            "Events that changed nothing.",
            c.duplicates,
        )
        metric(
            "firesift_ingest_updates_total",
            "counter",
            "Posts updated (edits, engagement).",
            c.updated,
        )
        metric("firesift_ingest_deletes_total", "counter", "Posts deleted.", c.deleted)
        metric(
            "firesift_ingest_failures_total", "counter", "Submissions the store refused.", c.failed
        )
        metric(
            "firesift_ingest_write_seconds_total",
            "counter",
            "Writer thread time spent storing.",
            c.write_seconds,
        )
        metric("firesift_index_commits_total", "counter", "Search index commits.", c.index_commits)
        metric(
            "firesift_ingest_rate_posts_per_second",
            "gauge",
            "New posts stored per second (10 s average).",
            c.rate(time.monotonic()),
        )
        metric(
            "firesift_ingest_queued", "gauge", "Submissions waiting for the writer.", service.queued
        )
        metric(
            "firesift_live_clients",
            "gauge",
            "Connected live-feed (SSE) clients.",
            service.live.clients,
        )
        metric(
            "firesift_live_posts_published_total",
            "counter",
            "New posts offered to the live feed.",
            service.live.published,
        )
        metric(
            "firesift_live_dropped_total",
            "counter",
            "Live events dropped for slow clients.",
            service.live.dropped_total,
        )
        lines.extend(self.requests.render())
        lines.extend(self.ttft.render())
        return "\n".join(lines) + "\n"


async def metrics_endpoint(request: Request) -> Response:
    import anyio.to_thread

    metrics: Metrics = request.app.state.metrics
    service: Service = request.app.state.service
    text = await anyio.to_thread.run_sync(metrics.render, service)
    return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")


class MetricsMiddleware:
    """Times every HTTP request into :attr:`Metrics.requests` (see the module docstring)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        scope["firesift.t0"] = t0
        status = 500
        recorded = False

        def record() -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.observe(
                time.perf_counter() - t0, path, scope.get("method", ""), str(status)
            )

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = dict(message.get("headers") or [])
                if headers.get(b"content-type", b"").startswith(b"text/event-stream"):
                    record()
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                record()

        try:
            await self.app(scope, receive, timed_send)
        finally:
            record()
