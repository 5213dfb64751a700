""" "What is happening in <place>?" at an instant, on the CrisisLexT26 dev events (``firesift
eval happening``).

Method, per event (eight: the labelled ones in ``data/crisislext26_dev/``):

- **Database.** One fresh database holding every labelled tweet of all eight events (about
  9,000 real tweets). The target event's tweets keep their own times; each other event is
  shifted as a block so that its onset lands at the target's onset plus a seeded random offset
  in ``[-offset_hours, +offset_hours]``: other crises bursting around the same hours are the
  competing stories (left at their real dates, the other events would be months away and
  could never compete). The target's own "Not related" tweets are its real keyword chatter
  (tweets that matched the collection keywords without being about the crisis). The data has
  no author ids, so every tweet is its own account (``e<id>``), as in ``eval trends``.
- **As-of instants.** The onset (:func:`firesift.evaluation.trends_eval.find_onset`, the
  first sustained rise of the event's collected volume) plus each of ``as_of_hours`` (1, 3, 6
  and 24 hours): a reader asking while the story develops. The onset is read from the volume
  curve only to choose the instants; no ranking sees anything created after its as-of.
- **Question.** "What is happening in <place>?", the place being ``location_description``
  from ``events.json`` taken verbatim ("Phillipines" included: a misspelling a person might
  type too; its matches are few, and every ranker shares them).
- **Rankers**, all over the same candidate matches (the question's first-pass query,
  :func:`firesift.answer.retrieve.first_pass_query`: its terms and paraphrases OR-ed, created
  at or before the as-of): ``firesift`` is what ``firesift ask`` retrieves (understanding, the
  trend report at the as-of, :func:`firesift.answer.retrieve.retrieve`), ``newest`` is
  newest-first among the matches, ``bm25`` is tantivy's score order without firesift's priors.
  ``search`` is the X-style search a person would type instead (the same first-pass query,
  the place's words OR-ed) through :func:`firesift.search.search` at the as-of, as ``firesift
  search`` and ``GET /api/search`` run it (priors, collapsing, the burst at the as-of);
  ``search-noburst`` is the same search without the burst step (``burst=False``).
- **P@30**: the share of a ranking's first 30 posts that are labelled related to THAT event
  ("Related and informative" or "Related - but not informative"), a short ranking counting
  its missing places as misses. The **base rate** is the expected P@30 of a random 30 of the
  matches: their related share, or related matches / 30 when there are fewer than 30.
  **leaks** counts ranked posts created after the as-of (must be 0). Each point lists every
  ranker's ``top`` keys, so P@30 can be recomputed.

The summary averages P@30 over all (event, as-of) points, and separately over the events of
each half of the sorted event list (``split``: the half where constants may be picked, and the
other half to report on); it counts the points where ``firesift`` (``wins``) and ``search``
(``search_wins``) beat each other ranker.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from firesift.answer.model import Message
from firesift.answer.retrieve import (
    NO_FILTERS,
    RetrieveParams,
    first_pass_query,
    retrieve,
    trend_report,
)
from firesift.answer.understand import understand
from firesift.database import Database
from firesift.errors import NotFound
from firesift.evaluation.trends_eval import EVENT_SOURCE, HOUR, find_onset, load_events
from firesift.pipeline import IngestSummary
from firesift.post import Author, Metrics, Post, from_ms, to_ms
from firesift.search import search

__all__ = [
    "AS_OF_HOURS",
    "BASELINES",
    "RANKERS",
    "K",
    "build_posts",
    "evaluate_event",
    "precision",
    "run",
]

K = 30
AS_OF_HOURS = (1.0, 3.0, 6.0, 24.0)
RANKERS = ("firesift", "search", "search-noburst", "newest", "bm25")
BASELINES = ("newest", "bm25")
Ranker = Callable[[Database, str, datetime], list[str]]


def build_posts(
    events: dict[str, dict[str, Any]], target: str, *, offset_hours: float = 12.0, seed: int = 0
) -> tuple[list[Post], int]:
    """Every labelled tweet of ``events``, the others shifted around ``target``'s onset (see
    the module docstring), and that onset (ms)."""
    onsets = {name: find_onset([ms for ms, _ in ev["curve"]]) for name, ev in events.items()}
    rnd = random.Random(f"{seed}:{target}")
    posts: list[Post] = []
    for name in sorted(events):
        shift = 0
        if name != target:
            jitter = rnd.uniform(-offset_hours, offset_hours) * HOUR
            shift = onsets[target] - onsets[name] + int(jitter)
        for tid, ms, text, _related in events[name]["labelled"]:
            posts.append(
                Post(
                    source=EVENT_SOURCE,
                    id=tid,
                    text=text,
                    created_at=from_ms(ms + shift),
                    author=Author(id=f"e{tid}", handle=f"e{tid}"),
                    metrics=Metrics(),
                )
            )
    posts.sort(key=lambda p: (p.created_at, p.id))
    return posts, onsets[target]


def precision(keys: Sequence[str], related: set[str], k: int = K) -> float:
    """Share of the first ``k`` of ``keys`` in ``related`` (missing places count as misses)."""
    return sum(key in related for key in keys[:k]) / k


def _firesift(params: RetrieveParams | None) -> Ranker:
    def ranker(db: Database, question: str, as_of: datetime) -> list[str]:
        u = understand([Message("user", question)])
        report = trend_report(db, to_ms(as_of)) if u.intent == "happening" else None
        pool = retrieve(db, u, as_of=as_of, params=params, report=report, limit=K)
        return [item.key for item in pool.hits()][:K]

    return ranker


def _search(burst: bool) -> Ranker:
    def ranker(db: Database, question: str, as_of: datetime) -> list[str]:
        u = understand([Message("user", question)])
        query = first_pass_query(u, NO_FILTERS, as_of)
        resp = search(db, query, as_of=as_of, limit=K, burst=burst)
        return [r.post.key for r in resp.results][:K]

    return ranker


def _matches(db: Database, question: str, as_of: datetime, sort: str) -> list[str]:
    """Every match of the question's first-pass query created at or before ``as_of``, newest
    first or by BM25; ties broken by key, so that the order is reproducible."""
    u = understand([Message("user", question)])
    query = first_pass_query(u, NO_FILTERS, as_of)
    hits = db.index.search(query, as_of_ms=to_ms(as_of), limit=db.index.num_docs or 1)
    if sort == "recent":
        hits.sort(key=lambda h: (-h.created_ms, h.key))
    else:
        hits.sort(key=lambda h: (-h.score, h.key))
    return [h.key for h in hits]


def _rankers(params: RetrieveParams | None) -> dict[str, Ranker]:
    return {
        "firesift": _firesift(params),
        "search": _search(True),
        "search-noburst": _search(False),
        "newest": lambda db, q, t: _matches(db, q, t, "recent")[:K],
        "bm25": lambda db, q, t: _matches(db, q, t, "relevance")[:K],
    }


def evaluate_event(
    events: dict[str, dict[str, Any]],
    target: str,
    *,
    as_of_hours: Sequence[float] = AS_OF_HOURS,
    params: RetrieveParams | None = None,
    offset_hours: float = 12.0,
    seed: int = 0,
) -> dict[str, Any]:
    """P@30 of every ranker at each as-of of one event (see the module docstring)."""
    posts, onset = build_posts(events, target, offset_hours=offset_hours, seed=seed)
    created = {f"{p.source}:{p.id}": to_ms(p.created_at) for p in posts}
    related = {f"{EVENT_SOURCE}:{r[0]}" for r in events[target]["labelled"] if r[3]}
    place = events[target]["meta"].get("location", {}).get("location_description") or target
    question = f"What is happening in {place}?"
    rankers = _rankers(params)
    points: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="firesift-happening-") as tmp,
        Database(Path(tmp)) as db,
    ):
        pipeline = db.pipeline()
        pipeline.feed(posts, IngestSummary())
        pipeline.flush(IngestSummary())
        for hours in as_of_hours:
            as_of_ms = onset + int(hours * HOUR)
            as_of = from_ms(as_of_ms)
            matches = _matches(db, question, as_of, "recent")
            point: dict[str, Any] = {
                "as_of": as_of.isoformat(),
                "hours_after_onset": hours,
                "matches": len(matches),
                "related_matches": sum(k in related for k in matches),
                "base_rate": round(sum(k in related for k in matches) / max(K, len(matches)), 3),
                "p@30": {},
                "leaks": {},
                "top": {},
            }
            for name, ranker in rankers.items():
                keys = ranker(db, question, as_of)
                point["p@30"][name] = round(precision(keys, related), 3)
                point["leaks"][name] = sum(created[k] > as_of_ms for k in keys)
                point["top"][name] = keys
            points.append(point)
    return {
        "event": target,
        "question": question,
        "onset": from_ms(onset).isoformat(),
        "posts": len(posts),
        "event_posts": len(events[target]["labelled"]),
        "related": len(related),
        "points": points,
    }


def _mean(rows: Sequence[dict[str, Any]], key: str, ranker: str | None = None) -> float | None:
    values = [(p[key][ranker] if ranker is not None else p[key]) for r in rows for p in r["points"]]
    return round(statistics.fmean(values), 3) if values else None


def _wins(rows: Sequence[dict[str, Any]], ranker: str, others: Sequence[str]) -> dict[str, int]:
    """Per ranker in ``others``: the points where ``ranker``'s P@30 is higher."""
    points = [p["p@30"] for r in rows for p in r["points"]]
    return {other: sum(p[ranker] > p[other] for p in points) for other in others}


def _summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "events": len(rows),
        "points": sum(len(r["points"]) for r in rows),
        "p@30": {name: _mean(rows, "p@30", name) for name in RANKERS},
        "base_rate": _mean(rows, "base_rate"),
        "wins": _wins(rows, "firesift", BASELINES),
        "search_wins": _wins(rows, "search", ("search-noburst", *BASELINES)),
        "leaks": sum(sum(p["leaks"].values()) for r in rows for p in r["points"]),
    }


def run(
    data_dir: Path,
    *,
    events: Sequence[str] | None = None,
    as_of_hours: Sequence[float] = AS_OF_HOURS,
    params: RetrieveParams | None = None,
    offset_hours: float = 12.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Evaluate "what is happening in <place>" retrieval on the CrisisLexT26 dev events in
    ``data_dir`` (the folder holding ``crisislext26_dev/``). ``events`` restricts the
    questions to some events (the database always holds all of them)."""
    started = time.perf_counter()
    all_events = load_events(Path(data_dir))
    names = sorted(all_events) if events is None else list(events)
    for name in names:
        if name not in all_events:
            raise NotFound(f"unknown event {name!r}; known: {', '.join(sorted(all_events))}")
    rows = [
        evaluate_event(
            all_events,
            name,
            as_of_hours=as_of_hours,
            params=params,
            offset_hours=offset_hours,
            seed=seed,
        )
        for name in names
    ]
    ordered = sorted(all_events)
    first = set(ordered[: len(ordered) // 2])
    return {
        "summary": {
            **_summary(rows),
            "split": {
                "first_half": _summary([r for r in rows if r["event"] in first]),
                "second_half": _summary([r for r in rows if r["event"] not in first]),
            },
            "seconds": round(time.perf_counter() - started, 1),
        },
        "events": rows,
        "params": {
            "k": K,
            "as_of_hours": list(as_of_hours),
            "offset_hours": offset_hours,
            "seed": seed,
            "first_half": sorted(first),
        },
    }
