"""What a watch is, and what it produces: the values the rest of :mod:`firesift.watches` passes.

A :class:`Watch` is a standing question with one of three :data:`KINDS`:

- ``matches``: new posts matching an X-style ``query``; an event fires once at least
  ``min_posts`` matching posts from at least ``min_accounts`` distinct accounts, not reported
  yet, fall within ``window_ms`` of stream time (the defaults, 1 and 1, fire on every match);
- ``story``: a trend story (:mod:`firesift.trends`) bursting whose top posts match ``query``;
  one event per story;
- ``verdict``: the verdict of ``claim`` (:func:`firesift.answer.check.check_claim`) changing,
  re-checked every ``every`` posts matching ``query`` (by default the claim's own words).

Each :class:`WatchEvent` carries the posts that triggered it. Times are epoch milliseconds of
*stream* time (the triggering posts' ``created_at``), so a replay fires at the instants the
live stream did.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from firesift.errors import ConfigError
from firesift.query import parse
from firesift.trends.terms import STOPWORDS

__all__ = [
    "KINDS",
    "Kind",
    "Watch",
    "WatchEvent",
    "claim_query",
    "new_watch",
]

Kind = Literal["matches", "story", "verdict"]
KINDS: tuple[str, ...] = get_args(Kind)

_CLAIM_WORD = re.compile(r"[^\W\d_][\w'-]{3,}")


@dataclass(frozen=True, slots=True)
class Watch:
    """One standing question. ``secret`` signs its webhook deliveries (HMAC-SHA256);
    ``since_seq`` is the store position at creation: nothing stored before it triggers it."""

    id: str
    kind: Kind
    query: str
    name: str = ""
    claim: str | None = None
    min_posts: int = 1
    min_accounts: int = 1
    window_ms: int = 600_000
    every: int = 10
    webhook: str | None = None
    secret: str | None = None
    created_ms: int = 0
    since_seq: int = 0

    def to_dict(self, *, secret: bool = False) -> dict[str, Any]:
        """The JSON shape (API, CLI); the secret only when asked (on creation)."""
        out: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "query": self.query,
            "claim": self.claim,
            "min_posts": self.min_posts,
            "min_accounts": self.min_accounts,
            "window_ms": self.window_ms,
            "every": self.every,
            "webhook": self.webhook,
            "created_ms": self.created_ms,
        }
        if secret:
            out["secret"] = self.secret
        return out


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One alert. ``id`` is the store's event number (the SSE ``id`` and, as ``evt_<id>``, the
    webhook idempotency key); ``at_ms`` the stream instant it fired; ``posts`` the triggering
    posts in their API shape; ``detail`` what the kind adds (the story, the verdicts...)."""

    id: int
    watch: str
    kind: Kind
    at_ms: int
    posts: tuple[dict[str, Any], ...]
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"evt_{self.id}"


def claim_query(claim: str) -> str:
    """The default trigger query of a verdict watch: any of the claim's content words."""
    words = list(dict.fromkeys(w.lower() for w in _CLAIM_WORD.findall(claim)))
    words = [w for w in words if w not in STOPWORDS]
    if not words:
        raise ConfigError(f"claim: no content word to watch for in {claim!r}; give a --query")
    return " OR ".join(f'"{w}"' for w in words)


def _positive(name: str, value: int, low: int = 1) -> int:
    if not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be a whole number >= {low}, got {value!r}")
    return value


def new_watch(
    kind: str,
    *,
    query: str | None = None,
    claim: str | None = None,
    name: str = "",
    min_posts: int = 1,
    min_accounts: int = 1,
    window_ms: int = 600_000,
    every: int = 10,
    webhook: str | None = None,
    secret: str | None = None,
    created_ms: int = 0,
    since_seq: int = 0,
) -> Watch:
    """A validated watch with a fresh id (and a fresh secret when it has a webhook and none is
    given). Raises :class:`~firesift.errors.ConfigError` naming the bad field, or
    :class:`~firesift.errors.QueryError` for a malformed query."""
    if kind not in KINDS:
        raise ConfigError(f"kind: unknown watch kind {kind!r}; known: {', '.join(KINDS)}")
    if kind == "verdict":
        if not claim or not claim.strip():
            raise ConfigError("claim: a verdict watch needs the claim to check")
        claim = claim.strip()
        query = query.strip() if query and query.strip() else claim_query(claim)
    elif claim:
        raise ConfigError(f"claim: only a verdict watch takes a claim (this one is {kind!r})")
    if not query or not query.strip():
        raise ConfigError(f"query: a {kind} watch needs a query")
    query = query.strip()
    parse(query)
    if webhook is not None:
        if not re.match(r"^https?://[^\s/]+", webhook):
            raise ConfigError(f"webhook: expected an http(s) URL, got {webhook!r}")
        secret = secret or secrets.token_urlsafe(24)
    return Watch(
        id="w_" + secrets.token_hex(6),
        kind=kind,  # type: ignore[arg-type]
        query=query,
        name=name,
        claim=claim,
        min_posts=_positive("min_posts", min_posts),
        min_accounts=_positive("min_accounts", min_accounts),
        window_ms=_positive("window_ms", window_ms, 1000),
        every=_positive("every", every),
        webhook=webhook,
        secret=secret,
        created_ms=created_ms,
        since_seq=since_seq,
    )
