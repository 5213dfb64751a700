from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from firesift.demo.replay import Replay, load_corpus

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_corpus_ships_real_events_in_order() -> None:
    posts = load_corpus()
    assert len(posts) > 8_000
    assert all(a.created_at <= b.created_at for a, b in itertools.pairwise(posts))
    texts = " ".join(p.text.lower() for p in posts)
    for event in ("ferguson", "ottawa", "sydneysiege", "charliehebdo", "germanwings"):
        assert event in texts
    assert sum(p.reply_to is not None for p in posts) > 3_000


def test_replay_squeezes_silences_and_rebases_to_now() -> None:
    posts = load_corpus()
    plan = Replay.plan(
        posts, speed=60, max_gap=timedelta(seconds=60), backfill=timedelta(minutes=30)
    )
    steps = [b - a for a, b in zip(plan.offsets, plan.offsets[1:], strict=False)]
    assert all(0 <= s <= 1.0 + 1e-9 for s in steps), "a 60 s gap at 60x is at most 1 s of wall"
    assert plan.offsets[0] == -30 * 60
    assert 30 * 60 < plan.duration < 3 * 3600

    first = plan.rebased(0, START)
    assert first.created_at == START - timedelta(minutes=30)
    assert (first.source, first.id, first.text) == (posts[0].source, posts[0].id, posts[0].text)

    batches = list(plan.batches(START))
    replayed = [p for _, batch in batches for p in batch]
    assert [p.id for p in replayed] == [p.id for p in posts]
    dues = [due for due, _ in batches]
    assert dues == sorted(dues)
    backfill = [p for due, batch in batches if due == 0 for p in batch]
    assert all(p.created_at <= START + timedelta(seconds=0.05) for p in backfill)
    assert len(backfill) > 1_000
    position = {p.id: i for i, p in enumerate(replayed)}
    for p in replayed:
        if p.reply_to in position:
            assert position[p.reply_to] < position[p.id], "parents replay before replies"
