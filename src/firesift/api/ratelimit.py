"""Per-key request rate limits: one token bucket per API key (or per client address when no key
is needed), checked by :class:`~firesift.api.app.AuthMiddleware` after the key.

Design decisions:

- **Token bucket.** A bucket holds up to ``burst`` tokens and refills at ``per_minute / 60``
  tokens a second; a request takes one. A client may send ``burst`` requests at once, then
  ``per_minute`` a minute on average. Refusals cost nothing (no token is taken), so a client
  hammering a full bucket does not push its own recovery further away.
- **Answers like OpenAI's.** Refusal is ``429`` with ``type: rate_limit_error`` and ``code:
  rate_limit_exceeded``, ``retry-after`` in whole seconds (rounded up, as HTTP wants) and
  ``retry-after-ms`` (which the OpenAI SDKs read first, so their own retry waits no longer than
  needed). Every limited request, allowed or refused, carries ``x-ratelimit-limit-requests``
  (the per-minute limit), ``x-ratelimit-remaining-requests`` and ``x-ratelimit-reset-requests``
  (time until the bucket is full again, as OpenAI writes it: ``1s``, ``250ms``).
- **Bounded memory.** Buckets are keyed by key id (few) or by loopback client address (only
  loopback clients may go without a key). Past :data:`MAX_BUCKETS`, full buckets (idle clients:
  forgetting them changes nothing) are dropped.
- One lock, no thread hops: a check is a few float operations, cheaper than moving to a thread.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["MAX_BUCKETS", "Decision", "RateLimiter", "format_reset"]

MAX_BUCKETS = 10_000


def format_reset(seconds: float) -> str:
    """A duration the way OpenAI's ``x-ratelimit-reset-*`` headers write it (``250ms``, ``2s``,
    ``1m30s``)."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    whole = math.ceil(seconds)
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one check: allowed or not, and what the response headers say."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: float
    retry_after_s: float

    def headers(self) -> dict[str, str]:
        out = {
            "x-ratelimit-limit-requests": str(self.limit),
            "x-ratelimit-remaining-requests": str(self.remaining),
            "x-ratelimit-reset-requests": format_reset(self.reset_s),
        }
        if not self.allowed:
            out["retry-after"] = str(max(1, math.ceil(self.retry_after_s)))
            out["retry-after-ms"] = str(max(1, math.ceil(self.retry_after_s * 1000)))
        return out


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """``per_minute`` requests a minute per bucket name, ``burst`` at once (0: ``per_minute``).
    ``clock`` is monotonic seconds (injectable for tests of the arithmetic)."""

    def __init__(
        self,
        per_minute: int,
        burst: int = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive (0 means no limiter at all)")
        self.per_minute = per_minute
        self.burst = burst if burst > 0 else per_minute
        self.rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, name: str) -> Decision:
        """Take a token from ``name``'s bucket if it has one."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(name)
            if bucket is None:
                if len(self._buckets) >= MAX_BUCKETS:
                    self._forget_full(now)
                bucket = self._buckets[name] = _Bucket(float(self.burst), now)
            else:
                bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
                bucket.at = now
            allowed = bucket.tokens >= 1.0
            if allowed:
                bucket.tokens -= 1.0
            tokens = bucket.tokens
        return Decision(
            allowed=allowed,
            limit=self.per_minute,
            remaining=int(tokens),
            reset_s=(self.burst - tokens) / self.rate,
            retry_after_s=0.0 if allowed else (1.0 - tokens) / self.rate,
        )

    def _forget_full(self, now: float) -> None:
        full = [
            name
            for name, b in self._buckets.items()
            if b.tokens + (now - b.at) * self.rate >= self.burst
        ]
        for name in full:
            del self._buckets[name]
