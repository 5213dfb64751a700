"""``/metrics`` in the Prometheus text format, through ``prometheus_client``: two latency
histograms kept here, and every other figure read from the service at scrape time by a
collector (so gauges are never stale and cost nothing between scrapes).

Request latency is recorded per route *template* (``/api/posts/{source}/{id:path}``, never the
raw path, so label cardinality stays fixed) from the request's arrival to the end of its
response; for Server-Sent-Event responses (chat streams, the live feed) it is the time to the
response headers, and chat streams also record their time to first token. Live sources are
labelled by their key and type (``firesift_source_*``).

``prometheus_client`` (about 60 kB, pure Python, no dependencies) replaces a hand-written
exposition: its escaping, ``_total`` naming and histogram layout are the reference ones.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from firesift.service import Service

__all__ = ["Metrics", "MetricsMiddleware", "metrics_endpoint"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

_TEXT_0_0_4 = "text/plain; version=0.0.4; charset=utf-8"
"""The classic text format, which generate_latest writes and every Prometheus reads."""

SOURCE_STATES = ("starting", "connected", "reconnecting", "stopped", "finished")


class Metrics:
    """One app's registry: the latency histograms, and the service read when scraped."""

    def __init__(self, service: Service) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Histogram(
            "firesift_http_request_duration_seconds",
            "Time to answer a request (to the headers for event streams).",
            ("route", "method", "status"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "firesift_chat_time_to_first_token_seconds",
            "Streaming chat completions: request arrival to the first content delta.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_ServiceCollector(service))

    def observe_ttft(self, seconds: float) -> None:
        self.ttft.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ServiceCollector(Collector):
    """Store, index, ingest, live-feed and source figures, read at scrape time."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        service = self.service
        stats = service.db.stats()
        c = service.counters
        refreshed = stats.index_refreshed_at

        def gauge(name: str, help: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, help, value=value)

        def counter(name: str, help: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(name, help, value=value)

        yield gauge("firesift_store_posts", "Visible posts in the store.", stats.store.posts)
        yield gauge(
            "firesift_store_tombstones", "Deleted posts remembered.", stats.store.tombstones
        )
        yield gauge(
            "firesift_store_last_seq",
            "Sequence number of the store's latest change.",
            stats.store.last_seq,
        )
        yield gauge(
            "firesift_index_applied_seq",
            "Store sequence the search index has applied.",
            stats.index_seq,
        )
        yield gauge(
            "firesift_index_lag_changes",
            "Store changes not yet in the search index (last_seq - applied_seq).",
            stats.index_lag,
        )
        yield gauge("firesift_index_docs", "Documents in the search index.", stats.indexed_docs)
        yield gauge(
            "firesift_index_freshness_seconds",
            "Seconds since the search index last made new posts searchable.",
            max(0.0, time.time() - refreshed) if refreshed else 0.0,
        )
        yield counter("firesift_ingest_submissions", "Ingest submissions stored.", c.submissions)
        yield counter("firesift_ingest_events", "Events submitted for ingest.", c.events)
        yield counter("firesift_ingest_posts", "New posts stored.", c.ingested)
        yield counter("firesift_ingest_duplicates", "Events that changed nothing.", c.duplicates)
        yield counter("firesift_ingest_updates", "Posts updated (edits, engagement).", c.updated)
        yield counter("firesift_ingest_deletes", "Posts deleted.", c.deleted)
        yield counter("firesift_ingest_failures", "Submissions the store refused.", c.failed)
        yield counter(
            "firesift_ingest_write_seconds", "Writer thread time spent storing.", c.write_seconds
        )
        yield counter("firesift_index_commits", "Search index commits.", c.index_commits)
        yield gauge(
            "firesift_ingest_rate_posts_per_second",
            "New posts stored per second (10 s average).",
            c.rate(time.monotonic()),
        )
        yield gauge("firesift_ingest_queued", "Submissions waiting for the writer.", service.queued)
        yield gauge(
            "firesift_live_clients", "Connected live-feed (SSE) clients.", service.live.clients
        )
        yield counter(
            "firesift_live_posts_published",
            "New posts offered to the live feed.",
            service.live.published,
        )
        yield counter(
            "firesift_live_dropped",
            "Live events dropped for slow clients.",
            service.live.dropped_total,
        )
        yield from _source_metrics(service.sources.statuses())


def _source_metrics(statuses: list[dict[str, object]]) -> Iterator[Metric]:
    labels = ["source", "type"]
    state = GaugeMetricFamily(
        "firesift_source_state",
        "1 for the state each live source is in (starting, connected, reconnecting, stopped, "
        "finished).",
        labels=[*labels, "state"],
    )
    families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {
        "posts": CounterMetricFamily(
            "firesift_source_posts", "New posts a live source stored.", labels=labels
        ),
        "events": CounterMetricFamily(
            "firesift_source_events", "Events a live source delivered.", labels=labels
        ),
        "skipped": CounterMetricFamily(
            "firesift_source_skipped", "Messages a live source could not parse.", labels=labels
        ),
        "reconnects": CounterMetricFamily(
            "firesift_source_reconnects", "Reconnects of a live source.", labels=labels
        ),
        "errors": CounterMetricFamily(
            "firesift_source_errors", "Errors that ended a live source's connection.", labels=labels
        ),
        "posts_per_s": GaugeMetricFamily(
            "firesift_source_rate_posts_per_second",
            "New posts a live source stored per second (10 s average).",
            labels=labels,
        ),
        "lag_s": GaugeMetricFamily(
            "firesift_source_lag_seconds",
            "Seconds between the newest stored event's time on the source and now.",
            labels=labels,
        ),
    }
    for s in statuses:
        values = [str(s["key"]), str(s["source"])]
        for name in SOURCE_STATES:
            state.add_metric([*values, name], 1.0 if s["state"] == name else 0.0)
        for field, family in families.items():
            value = s.get(field)
            if isinstance(value, int | float):
                family.add_metric(values, float(value))
    yield state
    yield from families.values()


async def metrics_endpoint(request: Request) -> Response:
    import anyio.to_thread

    metrics: Metrics = request.app.state.metrics
    body = await anyio.to_thread.run_sync(metrics.render)
    return Response(body, media_type=_TEXT_0_0_4)


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
            self.metrics.requests.labels(path, scope.get("method", ""), str(status)).observe(
                time.perf_counter() - t0
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
