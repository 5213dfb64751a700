"""Semantic re-ranking with all-MiniLM-L6-v2: would it earn its latency on the answer path?

For every answer question of ``firesift eval answers``, retrieval fetches its ``CANDIDATES`` best
posts at the question's as-of, exactly as an answer does; they are re-ordered by
``score / best score + weight * cosine(question, post)`` (the full encoder of
:mod:`firesift.semantic`) and the first 10 are scored as evidence recall@10 against the
question's relevant posts. ``weight = 0`` is retrieval's own order, the baseline. The weight is
chosen on the even-numbered questions and reported on the odd ones too (and the reverse), so
the figure is not picked on the questions it is reported on. The encoder's time per question
(the question and its candidates) is reported as well.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from firesift.answer.retrieve import retrieve, trend_report
from firesift.answer.understand import understand
from firesift.database import Database
from firesift.evaluation.answers_eval import _as_of, _messages, corpus_db, load_questions
from firesift.post import to_ms

__all__ = ["CANDIDATES", "WEIGHTS", "evaluate", "run"]

CANDIDATES = 30
WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


def evaluate(db: Database, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    from firesift import semantic

    encoder = semantic.load("full")
    recalls: dict[float, list[float]] = {w: [] for w in WEIGHTS}
    seconds: list[float] = []
    for item in items:
        if item.get("kind", "answer") != "answer":
            continue
        as_of = _as_of(item)
        u = understand(_messages(item))
        report = trend_report(db, to_ms(as_of)) if u.intent == "happening" else None
        hits = retrieve(db, u, as_of=as_of, report=report, limit=CANDIDATES).hits()
        relevant = set(item["relevant"])
        denominator = max(1, min(10, len(relevant)))
        if not hits:
            for w in WEIGHTS:
                recalls[w].append(0.0)
            continue
        start = time.perf_counter()
        vectors = encoder.encode([u.question, *(h.post.text for h in hits)])
        seconds.append(time.perf_counter() - start)
        cosine = vectors[1:] @ vectors[0]
        top = max(h.score for h in hits) or 1.0
        for w in WEIGHTS:
            order = sorted(range(len(hits)), key=lambda i: -(hits[i].score / top + w * cosine[i]))
            ids = {hits[i].post.id for i in order[:10]}
            recalls[w].append(len(relevant & ids) / denominator)
    n = len(recalls[0.0])

    def mean(w: float, part: int | None = None) -> float:
        values = [r for i, r in enumerate(recalls[w]) if part is None or i % 2 == part]
        return round(statistics.fmean(values), 3) if values else 0.0

    held_out = {}
    for chosen_on, reported_on in ((0, 1), (1, 0)):
        best = max(WEIGHTS, key=lambda w: (mean(w, chosen_on), -w))
        held_out[f"chosen on {'even' if chosen_on == 0 else 'odd'}"] = {
            "weight": best,
            "recall": mean(best, reported_on),
            "baseline": mean(0.0, reported_on),
        }
    ms = sorted(s * 1000 for s in seconds)
    return {
        "questions": n,
        "candidates": CANDIDATES,
        "evidence_recall@10": {str(w): mean(w) for w in WEIGHTS},
        "held_out": held_out,
        "encode_ms": {
            "p50": round(statistics.median(ms), 1) if ms else 0.0,
            "p95": round(ms[int(0.95 * (len(ms) - 1))], 1) if ms else 0.0,
        },
    }


def run(source: Path | None = None) -> dict[str, Any]:
    """Ingest ``source`` (default: the demo corpus) into a temporary database, or open the data
    directory ``source``, and evaluate the re-ranking."""
    items = load_questions()
    method = {"method": "firesift.evaluation.rerank_eval", "model": "all-MiniLM-L6-v2"}
    with corpus_db(source) as (db, _):
        return {**method, **evaluate(db, items)}
