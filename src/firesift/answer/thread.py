"""A conversation with every reply's stance: ``firesift thread`` and ``GET /api/posts/...``.

:func:`thread` gathers the conversation a post belongs to (its source post and every reply
created at or before ``as_of``, in time order, each with its parent and depth) and labels
every reply's stance (support / deny / query / comment) with the shipped stance model, then
tallies the stances by posts and by distinct accounts. Claim checks label only the few replies
they cite; this labels all of them, which is also how ``firesift eval stance`` measures the
model on every reply of the RumourEval dev threads.

Design decisions:

- **Stance towards the source post, not the parent** (the RumourEval convention the model was
  trained on): every reply's target is the conversation's first post and its depth says where
  it sits (``1`` a direct reply, ``2`` or more further down), as in
  :mod:`firesift.answer.train_stance`.
- **The model's own label.** Each reply gets the model's most probable label and that
  label's probability as ``confidence``; no threshold folds weak labels into ``comment`` (a
  claim check does that for its verdict), so the thread shows what the model says and the
  evaluation measures exactly that.
- **One predictor interface.** Any :class:`~firesift.answer.check.StancePredictor` can be
  passed; by default the shipped :class:`~firesift.answer.stance.StanceModel`, loaded once per
  process, or :class:`~firesift.answer.check.CueStance` when the model file is missing or
  damaged. ``stance_by`` says which one labelled the replies, and a warning says why when it
  is the fallback.
- **A conversation without its first post** (the root was never ingested, or was deleted):
  the earliest post whose parent is not in the conversation stands in as the source, with a
  warning; a post with no conversation id is the root of the replies below it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from firesift.answer.check import CueStance, StancePredictor, as_stance
from firesift.answer.model import STANCES, Stance
from firesift.answer.stance import StanceModel
from firesift.errors import NotFound, ParseError
from firesift.post import Post, to_ms
from firesift.search import post_dict, split_key

if TYPE_CHECKING:
    from firesift.database import Database

__all__ = ["Thread", "ThreadPost", "shipped_stance", "stance_by", "tally", "thread"]

MAX_DESCENDANTS = 10_000
"""How many replies are gathered below a post that has no conversation id."""


@dataclass(frozen=True, slots=True)
class ThreadPost:
    """One post of a conversation: where it sits and, for a reply, its stance towards the
    conversation's source post (``None`` for the source post itself)."""

    post: Post
    parent: str | None
    """The ``source:id`` key of the post it replies to (``None`` for the source post)."""
    depth: int
    stance: Stance | None = None
    confidence: float | None = None
    probs: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            **post_dict(self.post),
            "key": self.post.key,
            "parent": self.parent,
            "depth": self.depth,
            "stance": self.stance,
            "confidence": None if self.confidence is None else round(self.confidence, 4),
            "probs": None
            if self.probs is None
            else {k: round(v, 4) for k, v in self.probs.items()},
        }


@dataclass(frozen=True, slots=True)
class Thread:
    """A post's conversation as of an instant, every reply labelled (module docstring)."""

    post: Post
    """The post that was asked for (the source post or any reply in the conversation)."""
    root: Post
    """The conversation's source post: the target of every reply's stance."""
    posts: tuple[ThreadPost, ...]
    """The source post and every reply, in time order."""
    tally: dict[str, dict[str, int]]
    """Per stance: ``posts`` and distinct ``accounts`` among the replies."""
    stance_by: str
    """``model`` (the stance model) or ``cues`` (the lexical fallback)."""
    as_of: datetime | None = None
    warnings: tuple[str, ...] = ()

    @property
    def replies(self) -> tuple[ThreadPost, ...]:
        """Every post but the source post, in time order."""
        return tuple(p for p in self.posts if p.post.key != self.root.key)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` and ``GET /api/posts/{source}/{id}`` shape."""
        return {
            "key": self.post.key,
            "as_of": None if self.as_of is None else self.as_of.isoformat(),
            "post": post_dict(self.post),
            "root": post_dict(self.root),
            "thread": [p.to_dict() for p in self.posts],
            "replies": len(self.posts) - 1,
            "tally": self.tally,
            "stance_by": self.stance_by,
            "warnings": list(self.warnings),
        }


@lru_cache(maxsize=1)
def shipped_stance() -> tuple[StancePredictor, str | None]:
    """The shipped stance model (loaded once), or :class:`CueStance` with a note saying why."""
    try:
        return StanceModel.load(), None
    except (NotFound, ParseError) as exc:
        return CueStance(), f"stance model unavailable ({exc}); stances from keyword cues"


def stance_by(predictor: StancePredictor) -> str:
    """``model``, ``cues``, or the class name of another predictor."""
    if isinstance(predictor, StanceModel):
        return "model"
    if isinstance(predictor, CueStance):
        return "cues"
    return type(predictor).__name__


def tally(posts: Sequence[ThreadPost]) -> dict[str, dict[str, int]]:
    """Posts and distinct accounts per stance over the posts that have one."""
    out = {s: {"posts": 0, "accounts": 0} for s in STANCES}
    seen: set[tuple[str, str]] = set()
    for p in posts:
        if p.stance is None:
            continue
        account = p.post.author.id or p.post.author.handle
        out[p.stance]["posts"] += 1
        if (p.stance, account) not in seen:
            seen.add((p.stance, account))
            out[p.stance]["accounts"] += 1
    return out


def _descendants(db: Database, post: Post, until_ms: int | None) -> list[Post]:
    """``post`` and the replies below it (breadth first), for a post with no conversation id."""
    out, frontier, seen = [post], [post], {post.key}
    while frontier and len(out) <= MAX_DESCENDANTS:
        nxt = []
        for p in frontier:
            for r in db.store.replies_to(p.source, p.id, until_ms=until_ms):
                if r.key not in seen:
                    seen.add(r.key)
                    nxt.append(r)
        out.extend(nxt)
        frontier = nxt
    out.sort(key=lambda p: (p.created_at, p.id))
    return out


def _conversation(
    db: Database, post: Post, until_ms: int | None
) -> tuple[list[Post], Post, list[str]]:
    """The conversation's posts in time order, its source post, and warnings."""
    conv = post.conversation_id or post.id
    posts = db.store.thread(post.source, conv, until_ms=until_ms)
    if not any(p.key == post.key for p in posts):
        posts = _descendants(db, post, until_ms)
        return posts, post, []
    root = next((p for p in posts if p.id == conv), None)
    if root is not None:
        return posts, root, []
    ids = {p.id for p in posts}
    root = next(p for p in posts if not p.reply_to or p.reply_to not in ids)
    note = (
        f"the conversation's first post ({post.source}:{conv}) is not in the store; "
        f"stances are towards {root.key}, its earliest post present"
    )
    return posts, root, [note]


def _depths(posts: Sequence[Post], root: Post) -> dict[str, tuple[str | None, int]]:
    """``id -> (parent key, depth)``; a reply whose parent is missing counts as direct."""
    by_id = {p.id: p for p in posts}
    out: dict[str, tuple[str | None, int]] = {root.id: (None, 0)}

    def walk(p: Post) -> None:
        chain: list[Post] = []
        ids: set[str] = set()
        cur = p
        while cur.id not in out and cur.id not in ids:
            chain.append(cur)
            ids.add(cur.id)
            parent = by_id.get(cur.reply_to or "")
            if parent is None:
                break
            cur = parent
        for q in reversed(chain):
            above = out.get(q.reply_to or "")
            parent_key = f"{q.source}:{q.reply_to}" if q.reply_to else root.key
            out[q.id] = (parent_key, 1 if above is None else above[1] + 1)

    for p in posts:
        walk(p)
    return out


def thread(
    db: Database,
    key: str,
    *,
    as_of: datetime | None = None,
    stance: StancePredictor | None = None,
) -> Thread:
    """The conversation of the post ``key`` (``source:id``) as of ``as_of`` (default: all of
    it), every reply labelled by ``stance`` (default :func:`shipped_stance`).

    Raises :class:`~firesift.errors.NotFound` if no such post is stored (or it was created after
    ``as_of``)."""
    source, pid = split_key(key)
    if not source or not pid:
        raise NotFound(f"{key!r} is not a post key: expected SOURCE:ID, e.g. x:524925050739490816")
    until_ms = None if as_of is None else to_ms(as_of)
    post = db.store.get(source, pid)
    if post is None or (until_ms is not None and to_ms(post.created_at) > until_ms):
        when = "" if as_of is None else f" as of {as_of.isoformat()}"
        raise NotFound(f"no post {key}{when} (unknown, deleted or newer)")
    warnings: list[str] = []
    if stance is None:
        stance, note = shipped_stance()
        if note:
            warnings.append(note)
    elif not isinstance(stance, StanceModel):
        warnings.append(f"stances from {stance_by(stance)}, not the stance model")
    posts, root, notes = _conversation(db, post, until_ms)
    warnings.extend(notes)
    where = _depths(posts, root)
    replies = [p for p in posts if p.key != root.key]
    results = stance.predict_many(
        [p.text for p in replies], [root.text] * len(replies), [where[p.id][1] for p in replies]
    )
    labelled = dict(zip((p.key for p in replies), results, strict=True))
    out: list[ThreadPost] = []
    for p in posts:
        parent, depth = where[p.id]
        res = labelled.get(p.key)
        if res is None:
            out.append(ThreadPost(p, parent, depth))
        else:
            out.append(
                ThreadPost(
                    p,
                    parent,
                    depth,
                    as_stance(res.label),
                    res.probs.get(res.label, 0.0),
                    dict(res.probs),
                )
            )
    return Thread(
        post=post,
        root=root,
        posts=tuple(out),
        tally=tally(out),
        stance_by=stance_by(stance),
        as_of=as_of,
        warnings=tuple(warnings),
    )
