"""Delivering watch events: signed webhooks with retries, and Server-Sent Events.

- **Webhook.** Each event is ``POST``\\ ed as JSON to the watch's URL, the stored body's exact
  bytes every time, with ``X-Firesift-Signature: sha256=<hex HMAC-SHA256 of the body keyed by
  the watch's secret>`` (:func:`sign`; a receiver checks it with :func:`verify`), and
  ``Idempotency-Key`` / ``X-Firesift-Event`` set to the event's id (``evt_<n>``), the same on
  every retry, so a receiver that saw it already can drop it. Any 2xx answer acknowledges; a
  network error, a timeout or another status is retried with exponential back-off
  (``base_s * 2**attempt``, at most ``max_s``), forever: delivery is at-least-once, and the
  owed deliveries are rows in the store, so a restart resumes them (:class:`Deliverer` sends
  what is due as soon as it starts). Deliveries go one at a time, oldest event first: a
  receiver that hangs delays the others by up to ``timeout_s`` per attempt.
- **SSE** (``/api/watches/{id}/events``): every event of the watch after ``Last-Event-ID`` (the
  header a reconnecting ``EventSource`` sends, or ``?last_event_id=``), then new ones as they
  are recorded; each carries ``id: <n>``, so a client resumes exactly where it stopped. Events
  are read back from the store, so nothing recorded is missed however long the client was
  away.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable

import anyio.to_thread
import httpx

from firesift.watches.store import WatchStore

__all__ = ["SIGNATURE_HEADER", "Deliverer", "sign", "sse_events", "verify"]

log = logging.getLogger("firesift.watches")

SIGNATURE_HEADER = "X-Firesift-Signature"


def sign(body: bytes, secret: str) -> str:
    """The signature header's value for ``body``: ``sha256=<hex digest>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, header: str | None) -> bool:
    """Whether ``header`` is a valid signature of ``body`` (constant-time comparison)."""
    return header is not None and hmac.compare_digest(sign(body, secret), header)


class Deliverer:
    """The webhook delivery thread over ``watches``' owed deliveries."""

    def __init__(
        self,
        watches: WatchStore,
        *,
        base_s: float = 1.0,
        max_s: float = 600.0,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.watches = watches
        self.base_s = base_s
        self.max_s = max_s
        self.clock = clock
        self._client = httpx.Client(timeout=timeout_s, transport=transport)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.failures = 0

    def start(self) -> Deliverer:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="firesift-webhooks", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout=30)
            self._thread = None
        self._client.close()

    def notify(self) -> None:
        """New deliveries may be due (called when events are recorded)."""
        self._wake.set()

    def backoff_s(self, attempts: int) -> float:
        """Wait before attempt ``attempts + 1``."""
        return float(min(self.max_s, self.base_s * 2 ** max(0, attempts - 1)))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.deliver_due()
                nxt = self.watches.next_due_ms()
            except Exception:
                log.exception("watches: webhook delivery failed; retrying in a second")
                nxt = self.clock() + 1000
            wait = 5.0 if nxt is None else max(0.0, (nxt - self.clock()) / 1000)
            self._wake.wait(min(wait, 5.0))
            self._wake.clear()

    def deliver_due(self) -> int:
        """Attempt every delivery due now; returns how many were acknowledged."""
        done = 0
        while not self._stop.is_set():
            due = self.watches.due(self.clock())
            if not due:
                return done
            for d in due:
                if self._stop.is_set():
                    return done
                error = self._post(d.url, d.body, d.secret, d.eid, d.attempts + 1)
                if error is None:
                    self.watches.delivered(d.eid)
                    self.sent += 1
                    done += 1
                else:
                    self.failures += 1
                    attempts = d.attempts + 1
                    delay_ms = int(self.backoff_s(attempts) * 1000)
                    self.watches.retry(d.eid, attempts, self.clock() + delay_ms, error)
        return done

    def _post(self, url: str, body: bytes, secret: str, eid: int, attempt: int) -> str | None:
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(body, secret),
            "Idempotency-Key": f"evt_{eid}",
            "X-Firesift-Event": f"evt_{eid}",
            "X-Firesift-Attempt": str(attempt),
            "User-Agent": "firesift-watches",
        }
        try:
            r = self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as e:
            return f"{type(e).__name__}: {e}"
        if 200 <= r.status_code < 300:
            return None
        return f"HTTP {r.status_code}"


async def sse_events(
    watches: WatchStore,
    watch_id: str,
    *,
    after: int,
    wake: asyncio.Event,
    heartbeat_s: float = 15.0,
) -> AsyncIterator[bytes]:
    """The SSE byte stream of a watch's events after event ``after``. ``wake`` is set when
    new watch events are recorded (the store is also polled each second, for events recorded
    by another process)."""
    yield b"retry: 3000\n: connected\n\n"
    last = after
    idle = 0.0
    while True:
        rows = await anyio.to_thread.run_sync(watches.events, watch_id, last)
        if rows:
            idle = 0.0
            last = rows[-1][0]
            yield b"".join(
                b"id: %d\nevent: watch\ndata: %s\n\n" % (eid, body) for eid, body in rows
            )
            continue
        if idle >= heartbeat_s:
            idle = 0.0
            yield b": heartbeat\n\n"
        try:
            await asyncio.wait_for(wake.wait(), timeout=1.0)
        except TimeoutError:
            idle += 1.0
        wake.clear()
