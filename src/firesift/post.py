"""The canonical post and the other events a stream carries.

Every wire format (X API v2, Twitter v1.1, Bluesky Jetstream, Mastodon, canonical JSONL) is
parsed into these values and nothing else flows past the parsers. ``(source, id)`` is a post's
identity everywhere: in the store, the index, citations and URLs.

A stream carries more than posts, so a parser yields *events*:

- :class:`Post`: a new post, or a newer version of one (an edit replaces the text);
- :class:`Delete`: the post is gone (tombstone); no later read may return it;
- :class:`MetricsUpdate`: engagement on a post arrived separately (a Bluesky like or repost);
- :class:`Identity`: an account's handle became known or changed (Bluesky identity events).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

__all__ = [
    "Author",
    "Delete",
    "Event",
    "Identity",
    "Metrics",
    "MetricsUpdate",
    "Post",
    "from_ms",
    "to_ms",
]


@dataclass(frozen=True, slots=True)
class Author:
    """The account that wrote a post. ``id`` is the source's stable id (X user id, Bluesky DID,
    Mastodon account id); ``handle`` is what people type after ``@`` (no ``@``)."""

    id: str
    handle: str
    name: str = ""
    verified: bool = False
    followers: int | None = None


@dataclass(frozen=True, slots=True)
class Metrics:
    """Engagement counts as last reported by the source (``views`` only where it reports them)."""

    likes: int = 0
    reposts: int = 0
    replies: int = 0
    quotes: int = 0
    views: int | None = None


@dataclass(frozen=True, slots=True)
class Post:
    """One post in firesift's canonical shape.

    ``text`` is plain text (HTML already converted, t.co links expanded where the payload says
    how). ``created_at`` is timezone-aware UTC. ``edit_of`` lists earlier ids of the same post
    (X edits give a new id to each version; the newest replaces the older ones). A repost has
    ``repost_of`` set and usually the original's text.
    """

    source: str
    id: str
    text: str
    created_at: datetime
    author: Author
    url: str = ""
    lang: str | None = None
    reply_to: str | None = None
    conversation_id: str | None = None
    quote_of: str | None = None
    repost_of: str | None = None
    metrics: Metrics = field(default_factory=Metrics)
    hashtags: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    media_alt: tuple[str, ...] = ()
    edit_of: tuple[str, ...] = ()
    edited_at: datetime | None = None

    @property
    def key(self) -> str:
        """``source:id``, the identity as one string."""
        return f"{self.source}:{self.id}"


@dataclass(frozen=True, slots=True)
class Delete:
    """The post ``(source, id)`` was deleted (or withheld for compliance): a tombstone."""

    source: str
    id: str
    at: datetime | None = None
    reason: str = "deleted"


@dataclass(frozen=True, slots=True)
class MetricsUpdate:
    """Engagement that arrived apart from the post: increments (``delta=True``, a Bluesky like
    adds one) or absolute counts (``delta=False``)."""

    source: str
    id: str
    likes: int = 0
    reposts: int = 0
    replies: int = 0
    quotes: int = 0
    delta: bool = True


@dataclass(frozen=True, slots=True)
class Identity:
    """An account's handle (and optionally display name) as the source now reports it."""

    source: str
    author_id: str
    handle: str
    name: str | None = None


Event = Post | Delete | MetricsUpdate | Identity


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def to_ms(dt: datetime) -> int:
    """Milliseconds since the Unix epoch (UTC); naive datetimes are taken as UTC."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // _MS


def from_ms(ms: int) -> datetime:
    """The inverse of :func:`to_ms`: an aware UTC datetime."""
    return _EPOCH + timedelta(milliseconds=ms)
