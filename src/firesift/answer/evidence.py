"""The evidence pool: the numbered posts a composer may cite, and the statistics behind them.

Retrieval fills an :class:`EvidencePool`; a composer reads it and cites items by number.
Design decisions:

- **One numbering for everything.** Items are numbered 1..N as they are added (ranked hits
  first, then thread context, then anything a composer's tools fetch), and ``[n]`` in composer
  text always means item ``n`` of this pool. The citation check
  (:mod:`firesift.answer.citations`) renumbers the answer's markers afterwards.
- **The pool enforces as-of.** :meth:`EvidencePool.add` refuses a post created after
  ``as_of``; since every post enters from the store, "every citation is a stored post created at
  or before ``as_of``" holds by construction, and the engine checks it once more.
- **Considered vs. shown.** ``Evidence`` statistics (posts, accounts, first/last seen) count
  every candidate retrieval looked at (:meth:`EvidencePool.consider`), including reposts and
  near-duplicates folded into a shown item; the items are the few a reader is shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from firesift.answer.model import Evidence, Stance
from firesift.post import Post, from_ms, to_ms
from firesift.trends.model import Story

__all__ = ["EvidenceItem", "EvidencePool", "Role"]

Role = Literal["hit", "root", "reply", "story", "tool", "claim"]


@dataclass(slots=True)
class EvidenceItem:
    """One citable post.

    ``role`` says why it is in the pool: a ranked search ``hit``, the ``root`` of a hit's
    thread, a ``reply`` to a hit (``parent`` is the hit's key), a trending ``story`` post, a post
    a composer's ``tool`` fetched, or ``claim`` evidence from a claim check. ``collapsed`` are the
    keys of reposts and near-duplicates folded into it; ``story`` the trend story id;
    ``stance`` (with ``confidence``) is towards ``parent`` for replies and towards the claim
    for claim evidence.
    """

    n: int
    post: Post
    score: float = 0.0
    role: Role = "hit"
    parent: str | None = None
    collapsed: tuple[str, ...] = ()
    story: str | None = None
    stance: Stance | None = None
    confidence: float = 0.0

    @property
    def key(self) -> str:
        return self.post.key

    @property
    def author(self) -> str:
        return self.post.author.handle


@dataclass(slots=True)
class EvidencePool:
    """Numbered evidence for one answer, all created at or before ``as_of``."""

    as_of: datetime
    items: list[EvidenceItem] = field(default_factory=list)
    stories: tuple[Story, ...] = ()
    warnings: list[str] = field(default_factory=list)
    _by_key: dict[str, EvidenceItem] = field(default_factory=dict)
    _considered: dict[str, tuple[str, int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[EvidenceItem]:
        return iter(self.items)

    def __contains__(self, n: object) -> bool:
        return isinstance(n, int) and 1 <= n <= len(self.items)

    def get(self, n: int) -> EvidenceItem:
        """Item number ``n`` (1-based); :class:`KeyError` if there is none."""
        if n not in self:
            raise KeyError(n)
        return self.items[n - 1]

    def by_key(self, key: str) -> EvidenceItem | None:
        return self._by_key.get(key)

    def add(self, post: Post, role: Role = "hit", **info: object) -> EvidenceItem | None:
        """Add ``post`` (or return the item it already is); ``None`` if it was created after
        ``as_of``. ``info`` sets :class:`EvidenceItem` fields (``score``, ``parent`` ...)."""
        if to_ms(post.created_at) > to_ms(self.as_of):
            return None
        found = self._by_key.get(post.key)
        if found is not None:
            return found
        item = EvidenceItem(len(self.items) + 1, post, role=role)
        for name, value in info.items():
            setattr(item, name, value)
        self.items.append(item)
        self._by_key[post.key] = item
        self.consider([post])
        return item

    def add_many(self, posts: Iterable[Post], role: Role = "tool") -> list[EvidenceItem]:
        """Add posts (as :meth:`add`), returning the items of those accepted."""
        return [item for p in posts if (item := self.add(p, role)) is not None]

    def number_of(self, post: Post | str) -> int | None:
        """The number ``[n]`` that cites ``post`` (a post or its ``source:id`` key)."""
        item = self._by_key.get(post if isinstance(post, str) else post.key)
        return item.n if item else None

    def consider(self, posts: Iterable[Post]) -> None:
        """Count posts towards the evidence statistics without making them citable."""
        for p in posts:
            self._considered.setdefault(
                p.key, (p.author.id or p.author.handle, to_ms(p.created_at))
            )

    def consider_keys(self, keys: Iterable[tuple[str, str, int]]) -> None:
        """Like :meth:`consider` from ``(key, author_id, created_ms)`` triples."""
        for key, author, ms in keys:
            self._considered.setdefault(key, (author, ms))

    def folded_accounts(self, item: EvidenceItem) -> set[str]:
        """The accounts of the reposts and near-duplicates folded into ``item``."""
        return {self._considered[k][0] for k in item.collapsed if k in self._considered}

    def hits(self) -> list[EvidenceItem]:
        """Ranked search hits (and story posts), best first."""
        return [i for i in self.items if i.role in ("hit", "story")]

    def replies(self, parent: str) -> list[EvidenceItem]:
        return [i for i in self.items if i.role == "reply" and i.parent == parent]

    def stats(self) -> Evidence:
        """Posts and distinct accounts considered, and when the first and last were posted."""
        if not self._considered:
            return Evidence()
        times = [ms for _, ms in self._considered.values()]
        return Evidence(
            posts=len(self._considered),
            accounts=len({a for a, _ in self._considered.values()}),
            first_seen=from_ms(min(times)),
            last_seen=from_ms(max(times)),
        )
