"""The burst step in :func:`firesift.search.search`, on a real CrisisLexT26 event: the typed
X-style search "los angeles" at hours after the LAX shooting's onset (every labelled tweet of
the eight dev events in one database, the others shifted around the onset as in ``firesift
eval happening``). Related = labelled related to the LAX shooting."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from firesift.burst import burst_at, burst_terms, query_words, stem
from firesift.database import Database
from firesift.evaluation import happening_eval
from firesift.evaluation.trends_eval import HOUR, load_events
from firesift.pipeline import IngestSummary
from firesift.post import from_ms, to_ms
from firesift.query import parse
from firesift.rank import RankParams, rank
from firesift.search import search, split_key

LAX = "2013_LA_airport_shootings"
QUERY = "los angeles"


@dataclass(frozen=True, slots=True)
class Event:
    db: Database
    onset: int
    related: frozenset[str]


@pytest.fixture(scope="module")
def lax(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Event]:
    events = load_events(real_data)
    posts, onset = happening_eval.build_posts(events, LAX)
    related = frozenset(f"crisislex:{r[0]}" for r in events[LAX]["labelled"] if r[3])
    with Database(tmp_path_factory.mktemp("lax")) as db:
        pipeline = db.pipeline()
        pipeline.feed(posts, IngestSummary())
        pipeline.flush(IngestSummary())
        yield Event(db, onset, related)


def _newest_first(db: Database, query: str, as_of_ms: int) -> list[str]:
    """Every match created at or before ``as_of_ms``, newest first (ties by key)."""
    hits = db.index.search(parse(query), as_of_ms=as_of_ms, limit=db.index.num_docs)
    hits.sort(key=lambda h: (-h.created_ms, h.key))
    return [h.key for h in hits]


@pytest.mark.parametrize("hours", [3.0, 6.0])
def test_the_burst_puts_more_of_the_story_in_the_top_30(lax: Event, hours: float) -> None:
    """Three and six hours after the shooting, "los angeles" also matches the city's chatter;
    the burst step ranks more of the shooting's posts into the first 30 than newest-first
    among the same matches, and than the same search without the step."""
    as_of_ms = lax.onset + int(hours * HOUR)
    as_of = from_ms(as_of_ms)
    on = search(lax.db, QUERY, as_of=as_of, limit=30)
    off = search(lax.db, QUERY, as_of=as_of, limit=30, burst=False)
    newest = _newest_first(lax.db, QUERY, as_of_ms)[:30]
    assert len(newest) == 30 and len(on.results) == 30

    def related(keys: list[str]) -> int:
        return sum(k in lax.related for k in keys)

    got = related([r.post.key for r in on.results])
    assert got > related(newest), (got, related(newest))
    assert got > related([r.post.key for r in off.results])
    assert all(to_ms(r.post.created_at) <= as_of_ms for r in on.results)
    matches = set(_newest_first(lax.db, QUERY, as_of_ms))
    assert {r.post.key for r in on.results} <= matches


def test_without_the_burst_the_ranking_is_the_priors_alone(lax: Event) -> None:
    """``burst=False`` is the ranking before the step: the index's 200 best matches, scored by
    the priors, copies collapsed (texts of the 100 best compared), nothing added."""
    as_of_ms = lax.onset + 6 * HOUR
    off = search(lax.db, QUERY, as_of=from_ms(as_of_ms), limit=30, burst=False)
    hits = lax.db.index.search(parse(QUERY), as_of_ms=as_of_ms, limit=200)
    texts = lax.db.store.texts(split_key(h.key) for h in hits)
    expected = rank(
        hits,
        as_of_ms=as_of_ms,
        limit=30,
        texts={f"{s}:{i}": t for (s, i), t in texts.items()},
        params=RankParams(),
    )
    assert [r.post.key for r in off.results] == expected.keys
    assert [r.score for r in off.results] == [h.score for h in expected.hits]
    on = search(lax.db, QUERY, as_of=from_ms(as_of_ms), limit=30)
    assert [r.post.key for r in on.results] != expected.keys


def test_recent_order_is_untouched_by_the_burst(lax: Event) -> None:
    as_of = from_ms(lax.onset + 6 * HOUR)
    on = search(lax.db, QUERY, as_of=as_of, limit=30, sort="recent")
    off = search(lax.db, QUERY, as_of=as_of, limit=30, sort="recent", burst=False)
    assert [(r.post.key, r.score) for r in on.results] == [
        (r.post.key, r.score) for r in off.results
    ]


def test_the_burst_words_are_the_shooting_not_the_query(lax: Event) -> None:
    """The words the matches started saying an hour after the onset: the shooting; never the
    query's own words or their inflections, never a post after the as-of."""
    as_of_ms = lax.onset + HOUR
    q = parse(QUERY)
    asked = query_words(q)
    assert asked == ["los", "angeles"]
    found = burst_at(lax.db, q, as_of_ms=as_of_ms, stems=[stem(w) for w in asked])
    top = sorted(found.words, key=lambda w: (-found.words[w], w))[:5]
    assert found.words[top[0]] == 1.0
    assert {"shooting", "airport", "lax"} & set(top), top
    assert not any(w.startswith(("los", "angel")) for w in found.words)
    assert all(to_ms(p.created_at) <= as_of_ms for p in found.posts.values())
    assert all(h.created_ms > as_of_ms - 6 * HOUR for h in found.window)
    # a post's share is the same from its cached words and from its text
    for key, post in list(found.posts.items())[:50]:
        assert found.share(post.text, key) == pytest.approx(found.share(post.text))


def test_query_words_and_burst_terms() -> None:
    q = parse('"Los Angeles" OR #LAX -hoax from:latimes')
    assert query_words(q) == ["los", "angeles", "lax"]
    text = "Shooting at #LAX terminal 3, TSA officer shot http://t.co/x @KTLA the airport's"
    assert burst_terms(text, [stem("lax")]) == {
        "shooting",
        "terminal",
        "tsa",
        "officer",
        "shot",
        "airport",
    }
