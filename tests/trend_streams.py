"""Posts for trend tests: background chatter and a synthetic spike (names only, no real event)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from firesift.post import Author, Post, to_ms

T0 = datetime(2024, 3, 1, tzinfo=UTC)
CHATTER = [
    "apple",
    "banana",
    "cherry",
    "river",
    "mountain",
    "coffee",
    "music",
    "movie",
    "game",
    "phone",
    "laptop",
    "garden",
    "city",
    "train",
    "weather",
    "football",
    "school",
    "dinner",
    "party",
    "weekend",
]


def post_at(i: int, sec: float, text: str, author: str, **kw: object) -> Post:
    return Post(
        source="x",
        id=str(i),
        text=text,
        created_at=T0 + timedelta(seconds=sec),
        author=Author(id=author, handle=author),
        **kw,  # type: ignore[arg-type]
    )


def chatter(hours: float, every_s: float = 6.0, seed: int = 1) -> list[Post]:
    rnd = random.Random(seed)
    return [
        post_at(
            i,
            sec,
            " ".join(rnd.sample(CHATTER, 5)) + f" {rnd.choice(CHATTER)}{rnd.randrange(100)}",
            f"a{rnd.randrange(500)}",
        )
        for i, sec in enumerate(range(0, int(hours * 3600), int(every_s)))
    ]


def spike(start_s: float, n: int, every_s: float, first_id: int = 10**6) -> list[Post]:
    rnd = random.Random(7)
    return [
        post_at(
            first_id + k,
            start_s + k * every_s,
            f"Huge explosion reported near the harbour #HarbourBlast witnesses say "
            f"{rnd.choice(CHATTER)} {k}",
            f"s{k}",
        )
        for k in range(n)
    ]


def at(seconds: float) -> int:
    return to_ms(T0 + timedelta(seconds=seconds))


def ordered(posts: list[Post]) -> list[Post]:
    return sorted(posts, key=lambda p: (p.created_at, p.id))
