"""Trends and storylines: burst detection, counting rules, as-of replay, stories, memory."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from firesift.errors import ConfigError, NotFound
from firesift.evaluation import trends_eval
from firesift.post import Post, to_ms
from firesift.trends import (
    TrendConfig,
    TrendReport,
    TrendTracker,
    clean_text,
    extract,
    render_table,
    sparkline,
    term_kind,
)
from trend_streams import CHATTER, T0
from trend_streams import at as _at
from trend_streams import chatter as _chatter
from trend_streams import ordered as _ordered
from trend_streams import post_at as _post
from trend_streams import spike as _spike

# -- terms ----------------------------------------------------------------------------------


def test_stopwords_numbers_links_and_mentions() -> None:
    post = _post(
        1,
        0,
        "The 2015 strong quake in la Ciudad de México: 3.3 magnitude! "
        "http://t.co/AbC @Bob #Sismo #1",
        "u",
    )
    terms = extract(post).terms
    for absent in ("the", "2015", "3.3", "la", "de", "in", "#1", "t.co", "http"):
        assert absent not in terms
    assert {"strong quake", "quake", "ciudad", "méxico", "magnitude"} <= set(terms)
    assert "ciudad méxico" not in terms
    assert "méxico magnitude" not in terms
    assert {"@bob", "#sismo"} <= set(terms)
    assert not any("t.co" in t for t in terms)
    assert {term_kind(t) for t in terms} == {"word", "phrase", "mention", "hashtag"}


def test_expanded_urls_are_link_terms_and_rt_prefix_is_a_repost() -> None:
    post = _post(
        1,
        0,
        "RT @alice: Read this https://t.co/xyz",
        "u",
        urls=("https://www.NYTimes.com/2015/01/07/world/story.html?utm_source=tw",),
    )
    ex = extract(post)
    assert "nytimes.com" in ex.terms
    assert "nytimes.com/2015/01/07/world/story.html" in ex.terms
    assert "@alice" not in ex.terms
    assert ex.repost_of is not None
    assert {term_kind("nytimes.com"), term_kind("#x"), term_kind("@x")} == {
        "link",
        "hashtag",
        "mention",
    }


def test_clean_text_for_titles() -> None:
    text = "RT @cnn: BREAKING: Explosion at #Boston marathon http://t.co/x via @ap &amp; more"
    assert clean_text(text) == "BREAKING: Explosion at #Boston marathon via & more"
    assert clean_text(".@cbcnews is safe and has left Parliament Hill.") == (
        "is safe and has left Parliament Hill."
    )


# -- detection ------------------------------------------------------------------------------


def test_synthetic_spike_is_detected_as_a_story() -> None:
    spike_at = 2 * 3600
    tracker = TrendTracker()
    tracker.observe_many(_ordered(_chatter(3) + _spike(spike_at, 300, 4)))
    before = tracker.report(as_of_ms=_at(spike_at - 60))
    assert not any(t.term == "#harbourblast" for t in before.terms)
    report = tracker.report(as_of_ms=_at(spike_at + 8 * 60))
    top = {t.term: t for t in report.terms}
    assert "#harbourblast" in top
    trend = top["#harbourblast"]
    assert trend.kind == "hashtag" and trend.authors >= 100 and trend.score > 10
    assert len(trend.series) == 60 and sum(trend.series) == trend.volume
    story = report.stories[0]
    assert "#harbourblast" in story.terms
    assert story.title.startswith("Huge explosion reported near the harbour")
    assert story.top_posts and all(k.startswith("x:") for k in story.top_posts)
    assert story.first_seen_ms >= _at(spike_at)
    assert story.authors > 50 and sum(story.volume) > 50


def test_one_spammy_account_is_not_a_trend() -> None:
    spam = [
        _post(10**6 + k, 2 * 3600 + k * 3, f"Buy cheap followers now #GetFamous offer {k}", "bot")
        for k in range(200)
    ]
    tracker = TrendTracker()
    tracker.observe_many(_ordered(_chatter(3) + spam))
    for minutes in (3, 5, 10):
        report = tracker.report(as_of_ms=_at(2 * 3600 + minutes * 60))
        assert not any(t.term in ("#getfamous", "followers", "cheap") for t in report.terms)
        assert not any("#getfamous" in s.terms for s in report.stories)


def test_reposts_and_duplicates_count_once() -> None:
    tracker = TrendTracker()
    base = 3600
    posts = [_post(1, base, "Fire at the old mill #MillFire", "a")]
    posts += [
        _post(2 + k, base + 1 + k, "fire at the OLD mill!! #millfire", f"c{k}") for k in range(5)
    ]
    posts += [
        _post(20 + k, base + 10 + k, "Fire at the old mill #MillFire", f"r{k % 3}", repost_of="1")
        for k in range(9)
    ]
    posts += [_post(1, base + 30, "Fire at the old mill #MillFire", "a")]
    tracker.observe_many(posts)
    assert tracker.stats["counted"] == 1 + 3
    assert tracker.stats["duplicates"] == 5 + 6 + 1
    tracker.advance(_at(base + 120))
    trend_series = tracker._terms["#millfire"].c
    assert sum(trend_series.values()) == 4


def test_a_fresh_stream_detects_its_first_event_but_not_its_chatter() -> None:
    """The warm-up (20 min: the 10-minute window plus 10 minutes of history) is short enough
    that an event a stream starts with is found (as a tracker rebuilt from the Ottawa shooting's
    first post finds it by 14:20) and long enough that a fresh stream's steady chatter makes no
    story."""
    quiet = TrendTracker()
    quiet.observe_many(_chatter(1.5, every_s=3))
    for minute in range(1, 90):
        assert not quiet.report(as_of_ms=_at(minute * 60)).stories, minute
    fresh = TrendTracker()
    fresh.observe_many(_ordered(_chatter(1, every_s=20) + _spike(11 * 60, 200, 6)))
    found = [
        m for m in range(1, 60) if fresh.report(as_of_ms=_at(m * 60), window_ms=600_000).stories
    ]
    assert found and found[0] <= 22


def test_burst_needs_history_to_be_exceeded() -> None:
    """A term that is always this busy is not a trend, however busy it is."""
    rnd = random.Random(5)
    steady = [
        _post(10**6 + k, k * 10, f"#weather update {rnd.choice(CHATTER)} {k}", f"w{k % 300}")
        for k in range(3 * 360)
    ]
    tracker = TrendTracker()
    tracker.observe_many(_ordered(_chatter(3) + steady))
    report = tracker.report(as_of_ms=_at(3 * 3600 - 1))
    assert not any(t.term == "#weather" for t in report.terms)


# -- time, as_of, late posts ---------------------------------------------------------------


def test_as_of_live_equals_replay_on_real_data(real_data: Path) -> None:
    posts = _real_stream(real_data, "2013_LA_airport_shootings", hours_before=2, hours_after=1)
    onset = trends_eval.find_onset(
        [ms for ms, _ in trends_eval.load_events(real_data)["2013_LA_airport_shootings"]["curve"]]
    )
    checkpoints = [onset - 30 * 60_000 + 17_345, onset + 12 * 60_000 + 999, onset + 55 * 60_000]
    live = TrendTracker()
    snapshots: list[TrendReport] = []
    pending = list(checkpoints)
    for post in posts:
        while pending and to_ms(post.created_at) > pending[0]:
            snapshots.append(live.report(as_of_ms=pending.pop(0)))
        live.observe(post)
    assert not pending
    assert any(s.stories for s in snapshots)
    for t, snap in zip(checkpoints, snapshots, strict=True):
        replayed = TrendTracker.replay(posts, until_ms=t)
        assert replayed.report(as_of_ms=t) == snap
        assert replayed.report(as_of_ms=t).to_json() == snap.to_json()


def _shifted(posts: list[Post], seconds: float, id_offset: int) -> list[Post]:
    return [
        p.__class__(
            **{
                **{f: getattr(p, f) for f in p.__dataclass_fields__},
                "id": str(int(p.id) + id_offset),
                "created_at": p.created_at + timedelta(seconds=seconds),
            }
        )
        for p in posts
    ]


def test_quiet_gap_is_skipped_with_the_same_reports_as_ticking_each_minute() -> None:
    """A gap longer than the retention costs O(state), and every report (inside the gap,
    across it, after it) equals the one of a tracker that ticks through each quiet minute."""
    before = _ordered(_chatter(2.5) + _spike(2 * 3600, 60, 4))
    gap = 5 * 3600 + 17
    after = _shifted(before, 2.5 * 3600 + gap, 10**7)
    skipping, ticking = TrendTracker(), TrendTracker()
    ticking._skip = False
    skipping.observe_many(before + after)
    ticking.observe_many(before + after)
    assert skipping.stats["skipped"] > 4 * 60
    assert skipping.stats["ticks"] + skipping.stats["skipped"] == ticking.stats["ticks"]
    assert skipping.stats["ticks"] < ticking.stats["ticks"] - 4 * 60
    end = 2 * (2.5 * 3600) + gap
    checked = 0
    for sec in range(int(end - 3 * 3600), int(end) + 120, 97):
        for window in (10 * 60_000, 3_600_000):
            try:
                expected = ticking.report(as_of_ms=_at(sec), window_ms=window)
            except NotFound:
                with pytest.raises(NotFound):
                    skipping.report(as_of_ms=_at(sec), window_ms=window)
                continue
            assert skipping.report(as_of_ms=_at(sec), window_ms=window) == expected
            checked += 1
    assert checked > 100
    assert skipping.report(as_of_ms=_at(end)).stories
    assert skipping.memory()["terms"] == ticking.memory()["terms"]


def test_a_post_years_later_costs_a_bounded_number_of_ticks() -> None:
    """Posts from 2014, then from 2026: the jump takes a bounded number of ticks (not one per
    minute of the eleven years), the 2014 state is compacted, and live equals replay after it."""
    old = _ordered(_chatter(1.5) + _spike(3600, 40, 4))
    old = _shifted(old, (datetime(2014, 10, 22, tzinfo=UTC) - T0).total_seconds(), 0)
    new = _ordered(_chatter(1, seed=3) + _spike(1800, 60, 4))
    new = _shifted(new, (datetime(2026, 1, 5, tzinfo=UTC) - T0).total_seconds(), 10**7)
    live = TrendTracker()
    live.observe_many(old)
    old_end = to_ms(old[-1].created_at)
    in_2014 = live.report(as_of_ms=old_end)
    assert any("#harbourblast" in s.terms for s in in_2014.stories)
    ticks = live.stats["ticks"]
    live.observe(new[0])
    assert live.stats["ticks"] - ticks <= 3 * 60
    assert live.stats["skipped"] > 5 * 10**6
    assert live.memory()["terms"] == 0 and live.memory()["snapshots"] <= 2
    with pytest.raises(NotFound):
        live.report(as_of_ms=old_end)
    with pytest.raises(NotFound):  # as ticking each minute: older than the retention
        live.report(as_of_ms=to_ms(datetime(2020, 1, 1, tzinfo=UTC)))
    gap = live.report(as_of_ms=to_ms(new[0].created_at) - 3_600_000)
    assert gap.terms == () and gap.stories == ()
    live.observe_many(new[1:])
    for post in new[:: len(new) // 7]:
        t = to_ms(post.created_at)
        replayed = TrendTracker.replay(old + new, until_ms=t)
        assert live.report(as_of_ms=t) == replayed.report(as_of_ms=t)
    after = live.report(as_of_ms=to_ms(new[0].created_at) + 40 * 60_000)
    assert any("#harbourblast" in s.terms for s in after.stories)


def test_report_never_uses_posts_after_as_of() -> None:
    tracker = TrendTracker()
    tracker.observe_many(_ordered(_chatter(3) + _spike(2 * 3600, 300, 4)))
    early = tracker.report(as_of_ms=_at(2 * 3600 - 1))
    assert not any("harbour" in t.term for t in early.terms)
    assert all(sum(s.volume) == 0 or "#harbourblast" not in s.terms for s in early.stories)


def test_late_posts_within_allowance_count_and_older_are_dropped() -> None:
    tracker = TrendTracker(TrendConfig(lateness_ms=5 * 60_000))
    tracker.observe(_post(1, 3600, "river crossing tonight", "a"))
    tracker.observe(_post(2, 3600 - 3 * 60, "river crossing delayed", "b"))
    tracker.observe(_post(3, 3600 - 30 * 60, "river crossing closed", "c"))
    assert tracker.stats["counted"] == 2 and tracker.stats["late_dropped"] == 1
    tracker.advance(_at(3600 + 60))
    tracker.observe(_post(4, 3600 + 1, "river crossing again", "d"))
    st = tracker._terms["river crossing"]
    assert sum(st.c.values()) + len(tracker._cur.get("river crossing", ())) == 3


def test_a_term_seen_once_is_pending_and_its_second_occurrence_replays_the_first() -> None:
    tracker = TrendTracker(TrendConfig(pending_slots=1024))
    tracker.observe(_post(1, 0, "zebracrossing", "a"))
    tracker.observe(_post(2, 61, "unrelated words", "b"))
    assert "zebracrossing" not in tracker._terms and tracker.memory()["pending_terms"] >= 1
    tracker.observe(_post(3, 30 * 60, "zebracrossing closed", "c"))
    st = tracker._terms["zebracrossing"]
    assert st.c == {0 + _at(0) // 60_000: 1} and len(tracker._cur["zebracrossing"]) == 1
    tracker.advance(_at(3 * 3600))
    assert tracker.memory()["pending_terms"] == 0
    with pytest.raises(ConfigError, match="pending_slots"):
        TrendConfig(pending_slots=1000)


def test_as_of_older_than_retained_state_raises() -> None:
    tracker = TrendTracker(TrendConfig(retention_ms=30 * 60_000))
    tracker.observe_many(_chatter(2))
    with pytest.raises(NotFound):
        tracker.report(as_of_ms=_at(600), window_ms=10 * 60_000)
    with pytest.raises(ConfigError):
        tracker.report(window_ms=2 * 3_600_000)


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="lateness_ms"):
        TrendConfig(lateness_ms=20 * 60_000)
    with pytest.raises(ConfigError, match="min_authors"):
        TrendConfig(min_authors=1)


# -- stories ----------------------------------------------------------------------------------


def test_story_status_goes_emerging_peaking_fading() -> None:
    spike_at = 2 * 3600
    rise = [spike_at + i * (60 / (1 + i // 60)) for i in range(60 * 10)]
    rise = [s for s in rise if s < spike_at + 15 * 60]
    plateau = [spike_at + 15 * 60 + i * 3 for i in range(20 * 20)]
    decay = [spike_at + 35 * 60 + i * 30 for i in range(40)]
    times = rise + plateau + decay
    posts = [
        _post(
            10**6 + k,
            s,
            f"Dam breach floods valley #DamBreach rescue {CHATTER[k % 20]} {k}",
            f"d{k}",
        )
        for k, s in enumerate(times)
    ]
    tracker = TrendTracker()
    tracker.observe_many(_ordered(_chatter(3.5) + posts))
    seen: list[str] = []
    story_ids: set[str] = set()
    for minute in range(3, 80):
        report = tracker.report(as_of_ms=_at(spike_at + minute * 60))
        flood = [s for s in report.stories if "#dambreach" in s.terms]
        if flood:
            story_ids.add(flood[0].id)
            if not seen or seen[-1] != flood[0].status:
                seen.append(flood[0].status)
    assert len(story_ids) == 1
    assert seen[0] == "emerging"
    assert "peaking" in seen and seen[-1] == "fading"
    assert seen.index("peaking") < len(seen) - 1


def test_story_id_is_stable_as_a_real_event_develops(real_data: Path) -> None:
    posts = _real_stream(real_data, "2013_LA_airport_shootings", hours_before=3, hours_after=3)
    onset = trends_eval.find_onset(
        [ms for ms, _ in trends_eval.load_events(real_data)["2013_LA_airport_shootings"]["curve"]]
    )
    tracker = TrendTracker()
    ids: list[str] = []
    titles: set[str] = set()
    it = iter(posts)
    nxt = next(it, None)
    for minutes in (15, 30, 45, 60, 90, 120):
        t = onset + minutes * 60_000
        while nxt is not None and to_ms(nxt.created_at) <= t:
            tracker.observe(nxt)
            nxt = next(it, None)
        report = tracker.report(as_of_ms=t)
        lax = [
            s for s in report.stories if sum(k.startswith("crisislex:") for k in s.top_posts) > 2
        ]
        assert lax, f"no LAX story at +{minutes} min"
        ids.append(lax[0].id)
        titles.add(lax[0].title)
    assert len(set(ids)) == 1
    assert len(titles) > 1


# -- memory, output ---------------------------------------------------------------------------


def test_memory_stays_bounded_after_pruning() -> None:
    rnd = random.Random(11)
    letters = "abcdefghijklmnopqrstuvwxyz"
    config = TrendConfig(retention_ms=60 * 60_000, dedupe_ms=10 * 60_000, story_ttl_ms=30 * 60_000)
    tracker = TrendTracker(config)
    vocab = ["".join(rnd.choices(letters, k=7)) for _ in range(20_000)]
    sizes = []
    for hour in range(8):
        for k in range(1800):
            words = " ".join(rnd.choices(vocab, k=6))
            tracker.observe(_post(hour * 10**5 + k, hour * 3600 + k * 2, words, f"u{k % 700}"))
        sizes.append(tracker.memory())
    total = [s["terms"] + s["pending_terms"] for s in sizes]
    assert max(total[3:]) < 1.3 * total[2]
    assert all(s["dedupe_keys"] <= 2 * 30 * (10 + 10 + 1) for s in sizes)
    assert all(s["snapshots"] <= 60 + 10 + 1 for s in sizes)
    per_minute = 30 * 11
    assert all(0 < s["term_minutes"] <= (60 + 10 + 1) * per_minute for s in sizes[1:])
    tracker.advance(_at(20 * 3600))
    tracker.advance(_at(30 * 3600))
    quiet = tracker.memory()
    assert quiet["terms"] == 0 and quiet["pending_terms"] == 0 and quiet["dedupe_keys"] == 0


def test_json_and_table_rendering() -> None:
    tracker = TrendTracker()
    tracker.observe_many(_ordered(_chatter(3) + _spike(2 * 3600, 300, 4)))
    report = tracker.report(as_of_ms=_at(2 * 3600 + 10 * 60), limit=5)
    data = json.loads(json.dumps(report.to_json()))
    assert data["as_of_ms"] == report.as_of_ms and len(data["terms"]) == 5
    assert data["stories"][0]["first_seen"].endswith("Z")
    assert isinstance(data["terms"][0]["series"], list)
    console = Console(record=True, width=160, color_system=None)
    console.print(render_table(report))
    out = console.export_text()
    assert "#harbourblast" in out and "█" in out
    narrow = Console(record=True, width=80, color_system=None)
    narrow.print(render_table(tracker.report(as_of_ms=_at(2 * 3600 + 10 * 60), limit=20)))
    lines = narrow.export_text().splitlines()
    assert all(len(line) <= 80 for line in lines)
    wide = report.stories[0].volume + report.terms[0].series
    for series in (report.stories[0].volume, report.terms[0].series, wide):
        assert len(sparkline(series, width=20)) <= 20
    for series in [s.volume for s in report.stories] + [t.series for t in report.terms]:
        bars = sparkline(series, width=20).strip()
        assert any(bars in line for line in lines), bars
    assert sparkline([0, 1, 2, 4, 8]) == " ▁▂▄█"
    assert len(sparkline(list(range(120)), width=30)) == 30
    empty = TrendTracker().report()
    assert empty.terms == () and empty.stories == ()


# -- evaluation -------------------------------------------------------------------------------


def test_eval_smoke_detects_one_event(real_data: Path) -> None:
    result = trends_eval.run(real_data, events=["2013_LA_airport_shootings"], pre_hours=3)
    (event,) = result["events"]
    assert event["detected"]
    assert event["delay_min"] is not None and event["delay_min"] <= 30
    assert event["precision"] >= 0.5
    assert result["summary"]["false_stories_per_hour"] <= 2
    json.dumps(result)
    from rich.console import Console

    from firesift.cli._render import eval_view

    console = Console(width=100, record=True)
    console.print(eval_view("trends", result))
    shown = console.export_text()
    assert "events detected" in shown and "1 / 1" in shown
    assert "2013_LA_airport_shootings" in shown and f"{event['delay_min']} min" in shown


def _real_stream(
    real_data: Path, name: str, *, hours_before: float, hours_after: float
) -> list[Post]:
    event = trends_eval.load_events(real_data)[name]
    posts, _onset = trends_eval.event_stream(
        event,
        trends_eval.load_background(real_data),
        pre_hours=hours_before,
        post_hours=hours_after,
    )
    return posts
