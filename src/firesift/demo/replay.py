"""Replay the bundled corpus as if it were happening now.

The corpus (real posts from 2014-2015 breaking news, see ``NOTICE``) is months long with long
silences between events. The replay keeps the order and rhythm of the posts but:

1. squeezes every silence longer than ``max_gap`` down to ``max_gap`` (stream time);
2. plays stream time ``speed`` times faster than the wall clock;
3. rebases ``created_at`` to the wall-clock instant each post is replayed at, so the stream is
   happening *now* and "what is happening right now?" has an answer;
4. plays the first ``backfill`` of wall time at once, ending at the start instant, so trend
   baselines and answerable questions exist from the first second.

Posts keep their real ids, authors, texts and engagement; only times move. Replies keep their
parents (a parent is always replayed before its replies, as it was created before them).
"""

from __future__ import annotations

import gzip
import importlib.resources
import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from firesift.errors import FiresiftError
from firesift.formats.reader import Problem, read
from firesift.post import Post, from_ms, to_ms

__all__ = ["CORPUS", "Replay", "load_corpus"]

CORPUS = "corpus.jsonl.gz"


def load_corpus(path: Path | None = None) -> list[Post]:
    """The shipped demo posts (or those in ``path``), oldest first."""
    if path is None:
        data = importlib.resources.files("firesift.demo").joinpath(CORPUS).read_bytes()
        name = CORPUS
    else:
        data = path.read_bytes()
        name = str(path)
    items = list(read(io.BytesIO(gzip.decompress(data)), name=name))
    posts: list[Post] = []
    for item in items:
        if isinstance(item, Problem):
            raise FiresiftError(f"demo corpus is damaged: {item.where}: {item.reason}")
        posts.extend(e for e in item.events if isinstance(e, Post))
    posts.sort(key=lambda p: (p.created_at, p.id))
    return posts


@dataclass(frozen=True, slots=True)
class Replay:
    """A schedule: each post with the wall-clock offset (seconds from the start) it is due at.
    Negative offsets are the backfill, played at once."""

    posts: tuple[Post, ...]
    offsets: tuple[float, ...]

    @classmethod
    def plan(
        cls,
        posts: list[Post],
        *,
        speed: float = 60.0,
        max_gap: timedelta = timedelta(seconds=60),
        backfill: timedelta = timedelta(minutes=30),
    ) -> Replay:
        if speed <= 0:
            raise FiresiftError(f"--speed must be positive, got {speed}")
        if not posts:
            return cls((), ())
        gap = max_gap.total_seconds()
        stream = [0.0]
        for a, b in itertools.pairwise(posts):
            stream.append(stream[-1] + min(gap, (b.created_at - a.created_at).total_seconds()))
        lead = backfill.total_seconds()
        offsets = tuple(t / speed - lead for t in stream)
        return cls(tuple(posts), offsets)

    @property
    def duration(self) -> float:
        """Wall seconds from the start instant to the last post."""
        return max(0.0, self.offsets[-1]) if self.offsets else 0.0

    def rebased(self, i: int, start: datetime) -> Post:
        """Post ``i`` with its time moved to when it is replayed (edits keep their distance)."""
        post = self.posts[i]
        created = from_ms(to_ms(start) + int(self.offsets[i] * 1000))
        edited = None
        if post.edited_at is not None:
            edited = created + (post.edited_at - post.created_at)
        return replace(post, created_at=created, edited_at=edited)

    def batches(
        self, start: datetime, *, max_batch: int = 500
    ) -> Iterator[tuple[float, list[Post]]]:
        """``(due_offset, posts)`` in order: the whole backfill first (offset 0), then each post
        (grouped when due together) at its offset. The caller sleeps until each is due."""
        i, n = 0, len(self.posts)
        while i < n:
            due = max(0.0, self.offsets[i])
            batch: list[Post] = []
            while i < n and max(0.0, self.offsets[i]) <= due + 0.05 and len(batch) < max_batch:
                batch.append(self.rebased(i, start))
                i += 1
            yield due, batch
