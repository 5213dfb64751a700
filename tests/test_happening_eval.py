"""``firesift eval happening`` and the burst ranking it measures, on the real CrisisLexT26 dev
events: P@30 recomputed from the labels, no post after the as-of in any ranking, the CLI's
``--json`` shape, and firesift ahead of newest-first on a real event at its as-of."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from firesift.answer.retrieve import RetrieveParams
from firesift.answer.understand import content_words
from firesift.cli import main
from firesift.errors import NotFound
from firesift.evaluation import happening_eval
from firesift.evaluation.trends_eval import HOUR, find_onset, load_events
from firesift.post import to_ms
from firesift.rank import BurstDoc, burst_share, burst_words

RELATED = ("Related and informative", "Related - but not informative")
METEOR = "2013_Russia_meteor"
SAVAR = "2013_Savar_building_collapse"


def _labels(real_data: Path) -> dict[str, dict[str, Any]]:
    """``crisislex:<id>`` -> the raw labelled row, read straight from the data file."""
    out: dict[str, dict[str, Any]] = {}
    with gzip.open(real_data / "crisislext26_dev" / "tweets_labeled.jsonl.gz", "rt") as fh:
        for line in fh:
            row = json.loads(line)
            out[f"crisislex:{row['id']}"] = row
    return out


@pytest.fixture(scope="module")
def meteor(real_data: Path) -> dict[str, Any]:
    """The eval for the Russian meteor at 3 and 6 hours after its onset (all eight events in
    the database)."""
    return happening_eval.run(real_data, events=[METEOR, SAVAR], as_of_hours=(3.0, 6.0))


def test_p_at_30_recomputed_from_the_labels(real_data: Path, meteor: dict[str, Any]) -> None:
    labels = _labels(real_data)
    assert [e["event"] for e in meteor["events"]] == [METEOR, SAVAR]
    for event in meteor["events"]:
        assert event["question"] in (
            "What is happening in Chelyabinsk?",
            "What is happening in Savar?",
        )
        for point in event["points"]:
            assert set(point["p@30"]) == set(happening_eval.RANKERS)
            for name, keys in point["top"].items():
                assert len(keys) <= 30 and len(set(keys)) == len(keys)
                hits = sum(
                    labels[k]["event"] == event["event"] and labels[k]["informativeness"] in RELATED
                    for k in keys
                )
                assert point["p@30"][name] == pytest.approx(hits / 30, abs=1e-3)
            assert 0 < point["related_matches"] <= point["matches"]
            assert point["base_rate"] == pytest.approx(
                point["related_matches"] / max(30, point["matches"]), abs=1e-3
            )
    means = meteor["summary"]["p@30"]
    points = [p for e in meteor["events"] for p in e["points"]]
    for name in happening_eval.RANKERS:
        assert means[name] == pytest.approx(
            sum(p["p@30"][name] for p in points) / len(points), abs=2e-3
        )


def test_no_ranking_holds_a_post_after_its_as_of(real_data: Path, meteor: dict[str, Any]) -> None:
    events = load_events(real_data)
    for event in meteor["events"]:
        posts, onset = happening_eval.build_posts(events, event["event"])
        created = {p.key: to_ms(p.created_at) for p in posts}
        assert onset == find_onset([ms for ms, _ in events[event["event"]]["curve"]])
        for point in event["points"]:
            as_of_ms = onset + int(point["hours_after_onset"] * HOUR)
            for keys in point["top"].values():
                assert keys and all(created[k] <= as_of_ms for k in keys)
            assert sum(point["leaks"].values()) == 0
    assert meteor["summary"]["leaks"] == 0


def test_firesift_beats_newest_first_on_a_real_event(meteor: dict[str, Any]) -> None:
    """Three hours after the Chelyabinsk meteor few posts name the city; the ranking finds the
    story's posts (feedback words, the burst) where newest-first among the matches cannot."""
    for event in meteor["events"]:
        for point in event["points"]:
            got = point["p@30"]
            assert got["firesift"] > got["newest"], (event["event"], point["as_of"], got)
            assert got["firesift"] > got["bm25"], (event["event"], point["as_of"], got)


def test_other_events_are_shifted_around_the_target(real_data: Path) -> None:
    events = load_events(real_data)
    posts, onset = happening_eval.build_posts(events, METEOR)
    assert len(posts) == sum(len(e["labelled"]) for e in events.values())
    own = {f"crisislex:{r[0]}": r[1] for r in events[METEOR]["labelled"]}
    other_onsets = []
    for name, ev in events.items():
        if name == METEOR:
            continue
        first = {f"crisislex:{r[0]}" for r in ev["labelled"]}
        shifted = [to_ms(p.created_at) for p in posts if p.key in first]
        moved = shifted[0] - min(r[1] for r in ev["labelled"])
        other_onsets.append(find_onset([ms for ms, _ in ev["curve"]]) + moved)
    assert all(to_ms(p.created_at) == own[p.key] for p in posts if p.key in own)
    assert all(abs(o - onset) <= 12 * HOUR for o in other_onsets)


def test_burst_words_on_a_real_onset(real_data: Path) -> None:
    """Costa Rica's labelled tweets an hour either side of the quake's onset: what the
    window's accounts started saying is the quake, not the place's chatter."""
    ev = load_events(real_data)["2012_Costa_Rica_earthquake"]
    onset = find_onset([ms for ms, _ in ev["curve"]])
    as_of = onset + HOUR
    asked = {"costa", "rica", "costarica"}
    docs = [
        BurstDoc(ms, f"e{tid}", frozenset(set(content_words(text)) - asked))
        for tid, ms, text, _rel in ev["labelled"]
        if onset - 48 * HOUR <= ms <= as_of + HOUR
    ]
    words = burst_words(docs, as_of_ms=as_of, window_ms=HOUR, min_accounts=3)
    top = sorted(words, key=lambda w: -words[w])[:3]
    assert words[top[0]] == 1.0 and set(top) <= {"tsunami", "alerta", "terremoto", "quake"}
    assert all(0 < w <= 1 for w in words.values())
    # only in the days before: no weight, however often it was said then
    before = {w for d in docs if d.created_ms <= onset for w in d.words}
    window = {w for d in docs if onset < d.created_ms <= as_of for w in d.words}
    assert before - window and not (before - window) & set(words)
    assert burst_share(top, words) == 1.0
    assert burst_share(top[:2], words) == pytest.approx((words[top[0]] + words[top[1]]) / 2)
    assert burst_share(["vacation"], words) == 0.0
    # nothing created after as_of counts: the same words with a post after it added
    later = [*docs, BurstDoc(as_of + 1, "late", frozenset({"zzlate"}))] * 3
    assert "zzlate" not in burst_words(later, as_of_ms=as_of, window_ms=HOUR)


def _subset(real_data: Path, dest: Path, names: set[str]) -> Path:
    """A data folder with only ``names``' events: the real files, filtered."""
    src, out = real_data / "crisislext26_dev", dest / "crisislext26_dev"
    out.mkdir(parents=True)
    shutil.copy(src / "events.json", out / "events.json")
    with (
        gzip.open(src / "tweets_labeled.jsonl.gz", "rt") as fh,
        gzip.open(out / "tweets_labeled.jsonl.gz", "wt") as w,
    ):
        w.writelines(line for line in fh if json.loads(line)["event"] in names)
    with (
        gzip.open(src / "tweetids_entire_period.csv.gz", "rt") as fh,
        gzip.open(out / "tweetids_entire_period.csv.gz", "wt", newline="") as w,
    ):
        reader = csv.DictReader(fh)
        writer = csv.DictWriter(w, fieldnames=list(reader.fieldnames or ()))
        writer.writeheader()
        writer.writerows(r for r in reader if r["event"] in names)
    return dest


def test_cli_json_and_table(
    real_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _subset(real_data, tmp_path, {METEOR, "2013_LA_airport_shootings"})
    assert main(["eval", "happening", "--data", str(data), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    s = result["summary"]
    assert s["events"] == 2 and s["points"] == 2 * len(happening_eval.AS_OF_HOURS)
    assert set(s["p@30"]) == {"firesift", "search", "search-noburst", "newest", "bm25"}
    assert set(s["wins"]) == {"newest", "bm25"} and s["leaks"] == 0
    assert set(s["search_wins"]) == {"search-noburst", "newest", "bm25"}
    points = [p["p@30"] for e in result["events"] for p in e["points"]]
    assert s["search_wins"]["newest"] == sum(p["search"] > p["newest"] for p in points)
    assert set(s["split"]) == {"first_half", "second_half"}
    assert 0 <= s["base_rate"] <= 1
    assert [e["event"] for e in result["events"]] == ["2013_LA_airport_shootings", METEOR]
    point = result["events"][0]["points"][0]
    assert {"as_of", "hours_after_onset", "matches", "base_rate", "p@30", "leaks", "top"} <= set(
        point
    )
    assert result["params"]["k"] == 30
    assert main(["eval", "happening", "--data", str(data)]) == 0
    table = capsys.readouterr().out
    assert "P@30 firesift" in table and "base rate" in table and "Chelyabinsk" not in table
    assert f"{s['p@30']['firesift']:.1%}" in table


def test_unknown_event_names_the_known_ones(real_data: Path) -> None:
    with pytest.raises(NotFound, match="2013_Russia_meteor"):
        happening_eval.run(real_data, events=["2013_Atlantis_flood"])


def test_the_burst_puts_more_of_the_story_first(real_data: Path) -> None:
    """Six hours into the Boston bombings and the Guatemala quake, the burst step (window
    candidates and burst share) lifts related posts into the top 30 that the ranking without
    it (``burst_boost=0``, the ranking before) left out, in answers and in the X-style search
    of the place (``search`` against ``search-noburst``); the baselines are unchanged."""
    events, hours = ["2012_Guatemala_earthquake", "2013_Boston_bombings"], (6.0,)
    on = happening_eval.run(real_data, events=events, as_of_hours=hours)
    off = happening_eval.run(
        real_data, events=events, as_of_hours=hours, params=RetrieveParams(burst_boost=0.0)
    )
    pairs = [
        (a["p@30"], b["p@30"])
        for ea, eb in zip(on["events"], off["events"], strict=True)
        for a, b in zip(ea["points"], eb["points"], strict=True)
    ]
    assert all(a["firesift"] > b["firesift"] for a, b in pairs), pairs
    assert all(a["search"] > a["search-noburst"] for a, _ in pairs), pairs
    assert all(a["newest"] == b["newest"] and a["bm25"] == b["bm25"] for a, b in pairs)
