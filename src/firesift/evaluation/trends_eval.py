"""Trend detection on real crises (CrisisLexT26) mixed into real background chatter.

Method (one stream per event, replayed into a fresh :class:`~firesift.trends.TrendTracker`):

- **Event posts.** ``tweetids_entire_period.csv.gz`` lists every tweet CrisisLex collected for
  the event (id and time): that is the event's volume curve, replayed at scale 1 (one post per
  collected tweet, at its own time). Texts come from ``tweets_labeled.jsonl.gz``: a collected
  tweet that is labelled keeps its own text; the others (the labelled set is a ~1/3 sample of
  the curve) replicate the labelled tweet of the same event nearest in time, as a repost of it
  (``repost_of`` = that tweet), which the tracker counts once per reposting account. Labelled
  tweets that are not in the curve are added at their own time. The data carries no author
  ids, so each event tweet gets its own synthetic account (``e<tweet id>``). An event with no
  curve (Boston) uses its labelled tweets' times as the curve.
- **Onset.** The first sustained rise of the per-minute curve: let ``P`` be the largest
  60-minute count in the first 72 h of the collection; the onset is the first minute at which
  the trailing 10 minutes hold at least 3 collected tweets (the keyword noise of the quiet days
  before an event is at most ~6 an hour) and the hour from that minute holds at least
  ``P / 4``. It is the earliest instant the event is visible in the volume at all.
- **Background.** All RumourEval 2017 posts and PHEME-9 source tweets (about 9,000 distinct
  real posts, real authors), re-timed uniformly at random (seeded) over the event stream's
  span: stationary chatter about other news, at roughly 12 posts a minute.
- **Stream span.** From ``pre_hours`` (6) before the onset to ``post_hours`` (6) after it. The
  first ``warmup_hours`` (2) of each stream are the tracker's warm-up and are not scored.
- **Scoring.** A report is taken at the end of every stream minute. A story is an *event
  story* when most of the top posts it has cited (over all reports) are event posts, else a
  *background story*. The event is **detected** at the first report, from one hour before
  the onset on, that holds an event story; the **delay** is that instant minus the onset.
  **Precision** is the share of event posts among the detected story's cited posts, and
  **related precision** the share of those labelled related to the crisis by the annotators.
  **False stories per hour** is the number of background stories first seen in the scored
  part of the streams, divided by the scored hours.

Parameters are the tracker defaults (:class:`~firesift.trends.TrendConfig`); the seed fixes the
background timing.
"""

from __future__ import annotations

import bisect
import csv
import gzip
import json
import random
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from firesift.errors import NotFound
from firesift.post import Author, Metrics, Post, from_ms
from firesift.trends import TrendConfig, TrendTracker

__all__ = ["event_stream", "find_onset", "load_background", "load_events", "run"]

MINUTE = 60_000
HOUR = 60 * MINUTE
EVENT_SOURCE = "crisislex"
BACKGROUND_SOURCE = "bg"


def _ms(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def load_events(data_dir: Path) -> dict[str, dict[str, Any]]:
    """Per event: ``labelled`` tweets (id, ms, text, related), the ``curve`` ([ms, id]) and
    ``meta`` from ``events.json``."""
    root = data_dir / "crisislext26_dev"
    if not root.is_dir():
        raise NotFound(f"CrisisLexT26 data not found at {root}")
    meta = {e["event"]: e for e in json.loads((root / "events.json").read_text())}
    events: dict[str, dict[str, Any]] = {}
    with gzip.open(root / "tweets_labeled.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            ev = events.setdefault(row["event"], {"labelled": [], "curve": []})
            ev["labelled"].append(
                (
                    row["id"],
                    _ms(row["created_at"]),
                    row["text"],
                    row["informativeness"] not in ("Not related", "Not applicable"),
                )
            )
    with gzip.open(root / "tweetids_entire_period.csv.gz", "rt", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            if rec["event"] in events:
                events[rec["event"]]["curve"].append((_ms(rec["created_at"]), rec["tweet_id"]))
    for name, ev in events.items():
        ev["labelled"].sort(key=lambda r: (r[1], r[0]))
        if not ev["curve"]:
            ev["curve"] = [(ms, tid) for tid, ms, _t, _r in ev["labelled"]]
        ev["curve"].sort()
        ev["meta"] = meta.get(name, {})
    return events


def find_onset(curve_ms: Sequence[int]) -> int:
    """The onset minute's start (ms) of a volume curve; see the module docstring."""
    if not curve_ms:
        raise ValueError("empty volume curve")
    first = curve_ms[0] // MINUTE
    counts: dict[int, int] = {}
    for ms in curve_ms:
        m = ms // MINUTE
        if m - first > 72 * 60:
            break
        counts[m] = counts.get(m, 0) + 1
    last = max(counts)
    series = [counts.get(m, 0) for m in range(first, last + 1)]
    peak = hour = 0
    for i, v in enumerate(series):
        hour += v - (series[i - 60] if i >= 60 else 0)
        peak = max(peak, hour)
    quarter = peak / 4
    ten = 0
    ahead = sum(series[:60])
    for i, v in enumerate(series):
        ten += v - (series[i - 10] if i >= 10 else 0)
        if ten >= 3 and ahead >= quarter:
            return (first + i) * MINUTE
        ahead += (series[i + 60] if i + 60 < len(series) else 0) - v
    return first * MINUTE


def load_background(data_dir: Path) -> list[tuple[str, str, str, str]]:
    """Distinct background posts as ``(id, author_id, handle, text)``."""
    out: dict[str, tuple[str, str, str, str]] = {}
    for rel in ("rumoureval2017/posts.jsonl", "pheme9/source_tweets.jsonl"):
        path = data_dir / rel
        if not path.is_file():
            raise NotFound(f"background corpus not found at {path}")
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                out.setdefault(
                    row["id"],
                    (row["id"], row["author_id"], row.get("author_screen_name", ""), row["text"]),
                )
    return [out[k] for k in sorted(out)]


def _event_posts(ev: dict[str, Any], start: int, end: int) -> list[Post]:
    labelled = ev["labelled"]
    by_id = {r[0]: r for r in labelled}
    times = [r[1] for r in labelled]
    posts: list[Post] = []
    used: set[str] = set()
    for ms, tid in ev["curve"]:
        if not start <= ms < end:
            continue
        own = by_id.get(tid)
        repost_of = None
        if own is None:
            i = bisect.bisect_left(times, ms)
            j = min(range(max(0, i - 1), min(len(times), i + 1)), key=lambda k: abs(times[k] - ms))
            own = labelled[j]
            repost_of = own[0]
        else:
            used.add(tid)
        posts.append(_post(EVENT_SOURCE, tid, ms, own[2], f"e{tid}", repost_of))
    for tid, ms, text, _rel in labelled:
        if tid not in used and start <= ms < end:
            posts.append(_post(EVENT_SOURCE, tid, ms, text, f"e{tid}", None))
    return posts


def _post(source: str, pid: str, ms: int, text: str, author: str, repost_of: str | None) -> Post:
    return Post(
        source=source,
        id=pid,
        text=text,
        created_at=from_ms(ms),
        author=Author(id=author, handle=author),
        repost_of=repost_of,
        metrics=Metrics(),
    )


def _background_posts(
    bg: Sequence[tuple[str, str, str, str]], start: int, end: int, seed: int
) -> list[Post]:
    rnd = random.Random(seed)
    return [
        Post(
            source=BACKGROUND_SOURCE,
            id=pid,
            text=text,
            created_at=from_ms(start + rnd.randrange(end - start)),
            author=Author(id=author, handle=handle),
        )
        for pid, author, handle, text in bg
    ]


def event_stream(
    event: dict[str, Any],
    background: Sequence[tuple[str, str, str, str]],
    *,
    pre_hours: float = 6.0,
    post_hours: float = 6.0,
    seed: int = 0,
) -> tuple[list[Post], int]:
    """The time-ordered stream of one event mixed into background, and its onset (ms)."""
    onset = find_onset([ms for ms, _ in event["curve"]])
    start = onset - int(pre_hours * HOUR)
    end = onset + int(post_hours * HOUR)
    posts = _event_posts(event, start, end) + _background_posts(background, start, end, seed)
    posts.sort(key=lambda p: (p.created_at, p.source, p.id))
    return posts, onset


def _replay(
    posts: Iterable[Post], tracker: TrendTracker, start: int, end: int
) -> list[tuple[int, list[tuple[str, tuple[str, ...], str, tuple[str, ...]]]]]:
    """Observe ``posts`` (time-ordered); a report at the end of every minute."""
    out: list[tuple[int, list[tuple[str, tuple[str, ...], str, tuple[str, ...]]]]] = []
    it = iter(posts)
    nxt = next(it, None)
    t = start + MINUTE - 1
    while t < end:
        while nxt is not None and nxt.created_at.timestamp() * 1000 <= t:
            tracker.observe(nxt)
            nxt = next(it, None)
        tracker.advance(t)
        rep = tracker.report(as_of_ms=t, window_ms=HOUR, limit=20)
        out.append((t, [(s.id, s.top_posts, s.title, s.terms) for s in rep.stories]))
        t += MINUTE
    return out


def evaluate_event(
    name: str,
    ev: dict[str, Any],
    background: Sequence[tuple[str, str, str, str]],
    *,
    config: TrendConfig,
    pre_hours: float = 6.0,
    post_hours: float = 6.0,
    warmup_hours: float = 2.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Replay one event mixed into background; see the module docstring for the scoring."""
    onset = find_onset([ms for ms, _ in ev["curve"]])
    start = onset - int(pre_hours * HOUR)
    end = onset + int(post_hours * HOUR)
    scored_from = start + int(warmup_hours * HOUR)
    event_posts = _event_posts(ev, start, end)
    posts = event_posts + _background_posts(background, start, end, seed)
    posts.sort(key=lambda p: (p.created_at, p.source, p.id))
    related = {r[0] for r in ev["labelled"] if r[3]}
    origin = {p.id: (p.repost_of or p.id) for p in event_posts}
    tracker = TrendTracker(config)
    reports = _replay(posts, tracker, start, end)

    cited: dict[str, set[str]] = {}
    first_seen: dict[str, int] = {}
    titles: dict[str, str] = {}
    terms: dict[str, tuple[str, ...]] = {}
    for t, stories in reports:
        for sid, keys, title, story_terms in stories:
            cited.setdefault(sid, set()).update(keys)
            first_seen.setdefault(sid, t)
            titles.setdefault(sid, title)
            terms.setdefault(sid, story_terms)

    def share(keys: set[str]) -> float:
        return sum(k.startswith(EVENT_SOURCE + ":") for k in keys) / len(keys) if keys else 0.0

    event_stories = {sid for sid, keys in cited.items() if share(keys) > 0.5}
    detected_at = None
    story = None
    for t, stories in reports:
        if t < scored_from:
            continue
        hit = [sid for sid, *_rest in stories if sid in event_stories]
        if hit:
            detected_at, story = t, hit[0]
            break
    false_stories = sorted(
        sid for sid in cited if sid not in event_stories and first_seen[sid] >= scored_from
    )
    result: dict[str, Any] = {
        "event": name,
        "onset": from_ms(onset).isoformat(),
        "event_posts": len(event_posts),
        "stream_posts": len(posts),
        "detected": detected_at is not None,
        "delay_min": None,
        "story_id": story,
        "story_title": None,
        "precision": None,
        "related_precision": None,
        "event_stories": len(event_stories),
        "background_stories": [
            {"id": sid, "title": titles[sid][:80], "terms": list(terms[sid][:5])}
            for sid in false_stories
        ],
        "scored_hours": (end - scored_from) / HOUR,
    }
    if detected_at is not None and story is not None:
        story_keys = cited[story]
        ev_keys = [k.split(":", 1)[1] for k in story_keys if k.startswith(EVENT_SOURCE + ":")]
        result["delay_min"] = round((detected_at - onset) / MINUTE, 1)
        result["story_title"] = titles[story]
        result["precision"] = round(share(story_keys), 3)
        rel = sum(1 for k in ev_keys if origin.get(k, k) in related)
        result["related_precision"] = round(rel / len(story_keys), 3) if story_keys else None
    return result


def run(
    data_dir: Path,
    *,
    events: Sequence[str] | None = None,
    config: TrendConfig | None = None,
    pre_hours: float = 6.0,
    post_hours: float = 6.0,
    warmup_hours: float = 2.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Evaluate trend detection on the CrisisLexT26 dev events in ``data_dir`` (the data
    folder holding ``crisislext26_dev/``, ``rumoureval2017/`` and ``pheme9/``: the repository's
    ``data/``).

    ``events`` restricts the run to some event names (e.g. ``["2013_Russia_meteor"]``).
    Returns per-event results and a summary: events detected, median detection delay in
    stream minutes, false (background) stories per scored hour.
    """
    config = config or TrendConfig()
    started = time.perf_counter()
    all_events = load_events(Path(data_dir))
    names = sorted(all_events) if events is None else list(events)
    for name in names:
        if name not in all_events:
            raise NotFound(f"unknown event {name!r}; known: {', '.join(sorted(all_events))}")
    background = load_background(Path(data_dir))
    per_event = [
        evaluate_event(
            name,
            all_events[name],
            background,
            config=config,
            pre_hours=pre_hours,
            post_hours=post_hours,
            warmup_hours=warmup_hours,
            seed=seed + i,
        )
        for i, name in enumerate(names)
    ]
    delays = [r["delay_min"] for r in per_event if r["delay_min"] is not None]
    hours = sum(r["scored_hours"] for r in per_event)
    false = sum(len(r["background_stories"]) for r in per_event)
    precisions = [r["precision"] for r in per_event if r["precision"] is not None]
    return {
        "summary": {
            "events": len(per_event),
            "detected": sum(r["detected"] for r in per_event),
            "median_delay_min": statistics.median(delays) if delays else None,
            "max_delay_min": max(delays) if delays else None,
            "mean_precision": round(statistics.fmean(precisions), 3) if precisions else None,
            "false_stories": false,
            "scored_hours": hours,
            "false_stories_per_hour": round(false / hours, 3) if hours else None,
            "seconds": round(time.perf_counter() - started, 1),
        },
        "events": per_event,
        "params": {
            "pre_hours": pre_hours,
            "post_hours": post_hours,
            "warmup_hours": warmup_hours,
            "seed": seed,
            "background_posts": len(background),
            "config": asdict(config),
        },
    }
