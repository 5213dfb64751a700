"""Storylines: bursting terms that burst *together* are one story.

Once per minute (a "tick") the tracker hands this module the terms bursting now (with their
scores) and a bounded sample of the posts of the last few minutes.

Clustering. Over the sampled posts, count for each bursting term its posts (``df``) and for
each pair the posts carrying both (``co``). Two terms are linked when ``co >= min_cooccur``
and either the Ochiai coefficient ``co / sqrt(df_a * df_b) >= link`` or the rarer term is
nearly always written with the other (``co / min(df) >= contain``, 0.7); the stories of this
minute are the connected components (union-find). A generic bursting word ("breaking") shared
by two events is contained in neither, so it does not glue them together, while a small new
phrase still joins the big hashtag it is always written with. Cost: O(sampled posts x
bursting terms per post^2), with at most ``max_pair_terms`` (10) terms paired per post.

Identity. A story keeps a *signature*: every term that was part of it in the last
``story_ttl`` minutes. A component joins the story whose signature covers the largest share of
its burst mass (sum of scores), if at least ``match``; several components may join one story
(an event that splits into sub-conversations stays one story); otherwise it starts a new story
whose id is a hash of the tick minute and its strongest term: a pure function of the stream, so
replaying the same posts gives the same ids. Because the signature accumulates, an event keeps
its id while its vocabulary drifts (from "#earthquake" to "death toll", "rescue teams").

Status, from the story's per-minute volume ``v`` (10-minute sums: ``recent``, the 10 minutes
before it ``previous``, and the largest ``recent`` seen so far ``peak``):
``fading`` when ``recent < fade * peak``; else ``emerging`` when
``recent >= grow * previous`` (still climbing); else ``peaking``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from firesift.trends.model import StoryStatus
from firesift.trends.terms import clean_text

__all__ = ["Rec", "StoryState", "cluster", "pick_posts", "story_id", "story_status"]

Rec = tuple[int, str, int, tuple[str, ...], str, int, int, int]
"""A sampled post: ``(ms, key, author_hash, terms, text, engagement, is_repost, is_reply)``."""

R_MS: Final = 0
R_KEY: Final = 1
R_AUTHOR: Final = 2
R_TERMS: Final = 3
R_TEXT: Final = 4
R_ENG: Final = 5
R_REPOST: Final = 6
R_REPLY: Final = 7


@dataclass(slots=True)
class StoryState:
    """The mutable state of one story between ticks (see the module docstring)."""

    id: str
    first_seen_ms: int
    detected_ms: int
    sig: dict[str, int] = field(default_factory=dict)
    terms: tuple[str, ...] = ()
    vol: dict[int, int] = field(default_factory=dict)
    authors: dict[int, set[int]] = field(default_factory=dict)
    """Per minute, the sampled authors of the story's posts (a report at any past instant
    counts the same authors live as on replay: later ticks only add newer minutes)."""
    peak: int = 0
    last_active: int = 0
    title: str = ""
    title_rank: tuple[int, int] = (2, 2)
    top_posts: tuple[str, ...] = ()
    score: float = 0.0


def story_id(minute: int, anchor: str) -> str:
    """A stable id: independent of the process, the hash seed and the report calls."""
    return hashlib.blake2b(f"{minute}|{anchor}".encode(), digest_size=6).hexdigest()


def cluster(
    hot: dict[str, float],
    recs: Iterable[Rec],
    *,
    min_cooccur: int,
    link: float,
    contain: float = 0.7,
    max_pair_terms: int = 10,
) -> tuple[list[list[str]], list[tuple[Rec, frozenset[str]]]]:
    """Group the bursting terms ``hot`` (term -> score) by co-occurrence in ``recs``.

    Returns the components (each sorted by score, best first; components sorted by total score)
    and the posts carrying at least one bursting term, with the bursting terms they carry.
    """
    hotset = frozenset(hot)
    matched: list[tuple[Rec, frozenset[str]]] = []
    df: dict[str, int] = {}
    co: dict[tuple[str, str], int] = {}
    for r in recs:
        inter = hotset.intersection(r[R_TERMS])
        if not inter:
            continue
        matched.append((r, inter))
        for t in inter:
            df[t] = df.get(t, 0) + 1
        if len(inter) > 1:
            ordered = sorted(inter, key=lambda t: (-hot[t], t))[:max_pair_terms]
            ordered.sort()
            for i, a in enumerate(ordered):
                for b in ordered[i + 1 :]:
                    co[(a, b)] = co.get((a, b), 0) + 1
    parent = {t: t for t in hot}

    def find(t: str) -> str:
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    for (a, b), n in co.items():
        if n < min_cooccur:
            continue
        if n >= link * math.sqrt(df[a] * df[b]) or n >= contain * min(df[a], df[b]):
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    groups: dict[str, list[str]] = {}
    for t in hot:
        if t in df:
            groups.setdefault(find(t), []).append(t)
    comps = [sorted(g, key=lambda t: (-hot[t], t)) for g in groups.values()]
    comps.sort(key=lambda g: (-sum(hot[t] for t in g), g[0]))
    return comps, matched


def pick_posts(
    posts: list[tuple[Rec, float]], k: int
) -> tuple[str, tuple[str, ...], int, frozenset[int], tuple[int, int]]:
    """Title, top ``k`` post keys, earliest post ms, distinct authors of a story's posts and
    the title's ``(is_reply, is_repost)`` (a story keeps a source-post title it once had
    rather than take a reply's).

    Posts are ranked by burst weight (sum of the scores of the story terms they carry), then
    engagement, then age (older first, the likely original), then key; texts that clean to the
    same string are cited once, and originals are preferred over reposts. The title is the
    best *source* post among the representative ones (burst weight at least half the best):
    not a reply or repost when there is one ("Surprised that Kochie's not there..." answers a
    story, it does not tell it), the most engaged first, at least 12 characters once cleaned.
    """
    ranked = sorted(
        posts, key=lambda p: (-p[1], p[0][R_REPOST], -p[0][R_ENG], p[0][R_MS], p[0][R_KEY])
    )
    keys: list[str] = []
    seen: set[str] = set()
    for r, _w in ranked:
        norm = clean_text(r[R_TEXT]).lower()
        if norm in seen:
            continue
        seen.add(norm)
        keys.append(r[R_KEY])
        if len(keys) >= k:
            break
    title = ""
    if ranked:
        floor = 0.5 * ranked[0][1]
        best: tuple[int, int, int, float, int, str] | None = None
        for r, w in ranked:
            if w < floor:
                break
            rank = (r[R_REPLY], r[R_REPOST], -r[R_ENG], -w, r[R_MS], r[R_KEY])
            if best is not None and rank >= best:
                continue
            cleaned = clean_text(r[R_TEXT])
            if len(cleaned) >= 12:
                best, title = rank, cleaned
        if not title:
            title = clean_text(ranked[0][0][R_TEXT])
    kind = (best[0], best[1]) if best is not None else (2, 2)
    first = min(r[R_MS] for r, _ in posts) if posts else 0
    authors = frozenset(r[R_AUTHOR] for r, _ in posts)
    return title, tuple(keys), first, authors, kind


def story_status(
    vol: dict[int, int], minute: int, peak: int, *, fade: float = 0.5, grow: float = 1.25
) -> tuple[StoryStatus, int, int]:
    """``(status, recent, peak)`` at ``minute`` (exclusive) from the per-minute volume."""
    recent = sum(vol.get(m, 0) for m in range(minute - 10, minute))
    previous = sum(vol.get(m, 0) for m in range(minute - 20, minute - 10))
    peak = max(peak, recent)
    if recent < fade * peak:
        return "fading", recent, peak
    if recent >= grow * previous and recent > 0:
        return "emerging", recent, peak
    return "peaking", recent, peak
