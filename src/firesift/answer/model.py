"""The values the answer engine hands to its callers (CLI, API server, web page).

An :class:`Answer` is text with inline ``[n]`` markers plus the :class:`Citation` each marker
points at, the :class:`Evidence` statistics behind it, the ``as_of`` instant it was computed for
and plain-language warnings. A :class:`Verdict` is the result of a claim check. Streaming callers
receive :class:`AnswerDelta` pieces of text and then one :class:`AnswerDone` with the full answer.
``to_dict()`` gives the documented ``--json`` / API shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from firesift.post import Post

__all__ = [
    "CLAIM_ROLES",
    "STANCES",
    "VERDICTS",
    "Answer",
    "AnswerDelta",
    "AnswerDone",
    "AnswerEvent",
    "Citation",
    "ClaimRole",
    "ClaimSummary",
    "Evidence",
    "Filters",
    "Message",
    "StancedPost",
    "Verdict",
]

STANCES = ("support", "deny", "query", "comment")
VERDICTS = ("supported", "disputed", "unverified", "insufficient")
CLAIM_ROLES = ("confirms", "supports", "denies", "questions", "reports", "comments")
"""What a post is to a claim check: evidence (a confirmation, a supporting reply, a denial or
correction, a question), a repetition of the claim (``reports``), or neither."""

Stance = Literal["support", "deny", "query", "comment"]
ClaimRole = Literal["confirms", "supports", "denies", "questions", "reports", "comments"]
VerdictLabel = Literal["supported", "disputed", "unverified", "insufficient"]


@dataclass(frozen=True, slots=True)
class Message:
    """One turn of a conversation (OpenAI roles: system, user, assistant)."""

    role: str
    content: str


@dataclass(frozen=True, slots=True)
class Filters:
    """Search controls a caller may set (xAI ``search_parameters``, Perplexity filters, the web
    page). Empty means "no restriction". Handles have no ``@``; domains may not start with
    ``-`` here (exclusions go in ``exclude_domains``)."""

    since: datetime | None = None
    until: datetime | None = None
    include_handles: tuple[str, ...] = ()
    exclude_handles: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    include_domains: tuple[str, ...] = ()
    exclude_domains: tuple[str, ...] = ()
    min_likes: int = 0
    min_views: int = 0
    max_results: int = 10
    query: str = ""
    """Extra X-style query text ANDed with the question's own (e.g. ``lang:en``)."""


@dataclass(frozen=True, slots=True)
class Citation:
    """``[n]`` in the answer text refers to ``post``."""

    n: int
    post: Post
    stance: Stance | None = None

    def to_dict(self) -> dict[str, Any]:
        p = self.post
        out: dict[str, Any] = {
            "n": self.n,
            "source": p.source,
            "id": p.id,
            "url": p.url,
            "author": p.author.handle,
            "author_name": p.author.name,
            "verified": p.author.verified,
            "created_at": p.created_at.isoformat(),
            "text": p.text,
            "metrics": {
                "likes": p.metrics.likes,
                "reposts": p.metrics.reposts,
                "replies": p.metrics.replies,
                "quotes": p.metrics.quotes,
                "views": p.metrics.views,
            },
        }
        if self.stance:
            out["stance"] = self.stance
        return out


@dataclass(frozen=True, slots=True)
class Evidence:
    """How much of the stream stands behind an answer."""

    posts: int = 0
    accounts: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "posts": self.posts,
            "accounts": self.accounts,
            "first_seen": self.first_seen.isoformat() if self.first_seen else None,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
        }


@dataclass(frozen=True, slots=True)
class ClaimSummary:
    """One claim of an answer: posts asserting the same thing. ``citations`` are the answer's
    ``[n]`` numbers of its cited posts, ``posts`` the keys of all of them; ``independent``
    counts accounts that said it first-hand (reposts and copies excluded); ``kinds`` the
    accounts per kind (news, official, verified, anonymous); ``conflicts`` pairs what two
    claims disagree on with the index of the rival claim in :attr:`Answer.claims`."""

    text: str
    citations: tuple[int, ...]
    posts: tuple[str, ...]
    accounts: int
    independent: int
    kinds: dict[str, int]
    first_seen: datetime
    conflicts: tuple[tuple[str, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "claim": self.text,
            "citations": list(self.citations),
            "posts": list(self.posts),
            "accounts": self.accounts,
            "independent_accounts": self.independent,
            "kinds": dict(self.kinds),
            "first_seen": self.first_seen.isoformat(),
            "conflicts": [{"about": about, "claim": k} for about, k in self.conflicts],
        }


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    citations: tuple[Citation, ...]
    as_of: datetime
    evidence: Evidence
    warnings: tuple[str, ...] = ()
    composer: str = "extractive"
    grounded: bool = True
    """False when nothing in the stream answers the question (the text says so)."""
    usage: dict[str, int] | None = None
    """Model tokens this answer consumed (``prompt_tokens``, ``completion_tokens``,
    ``total_tokens``), as the endpoint reported them, summed over tool rounds; ``None`` for
    composers that call no model (and left out of :meth:`to_dict`)."""
    claims: tuple[ClaimSummary, ...] = ()
    """The cited posts grouped by what they assert, most independent accounts first."""
    claims_grouping: str = "words"
    """How claims were grouped: ``words`` (slots and word overlap) or ``words+minilm`` (also
    paraphrase by the sentence encoder)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "answer": self.text,
            "citations": [c.to_dict() for c in self.citations],
            "claims": [c.to_dict() for c in self.claims],
            "claims_grouping": self.claims_grouping,
            "as_of": self.as_of.isoformat(),
            "evidence": self.evidence.to_dict(),
            "warnings": list(self.warnings),
            "composer": self.composer,
            "grounded": self.grounded,
        }
        if self.usage is not None:
            out["usage"] = dict(self.usage)
        return out


@dataclass(frozen=True, slots=True)
class AnswerDelta:
    """A piece of answer text, in order; citations are final only in :class:`AnswerDone`."""

    text: str


@dataclass(frozen=True, slots=True)
class AnswerDone:
    answer: Answer


AnswerEvent = AnswerDelta | AnswerDone


@dataclass(frozen=True, slots=True)
class StancedPost:
    post: Post
    stance: Stance
    confidence: float
    role: ClaimRole = "comments"
    hedged: bool = False
    """It asserts the claim in a hedged form ("reports of", "police believe", "may")."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.post.source,
            "id": self.post.id,
            "url": self.post.url,
            "author": self.post.author.handle,
            "created_at": self.post.created_at.isoformat(),
            "text": self.post.text,
            "stance": self.stance,
            "confidence": round(self.confidence, 3),
            "role": self.role,
            "hedged": self.hedged,
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """A claim check: the label, the evidence, independent-account counts per stance
    (``counts[stance] = {"posts": n, "accounts": m}``) and per role (``roles[role] = {"posts",
    "accounts", "verified"}``), a ``reason`` naming the deciding posts, and a ``confidence``
    in [0, 1] of how firmly the evidence points to the label."""

    claim: str
    verdict: VerdictLabel
    evidence: tuple[StancedPost, ...]
    counts: dict[str, dict[str, int]]
    as_of: datetime
    summary: str = ""
    warnings: tuple[str, ...] = field(default=())
    roles: dict[str, dict[str, int]] = field(default_factory=dict)
    reason: str = ""
    confidence: float = 0.0
    first_reported: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "claim": self.claim,
            "verdict": self.verdict,
            "summary": self.summary,
            "evidence": [e.to_dict() for e in self.evidence],
            "counts": self.counts,
            "roles": self.roles,
            "reason": self.reason,
            "confidence": round(self.confidence, 3),
            "first_reported": self.first_reported.isoformat() if self.first_reported else None,
            "as_of": self.as_of.isoformat(),
            "warnings": list(self.warnings),
        }
