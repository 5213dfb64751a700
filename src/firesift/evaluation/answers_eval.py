"""Answer quality on as-of questions written from RumourEval 2017 and PHEME (``firesift eval
answers``).

The question set (``answers_questions.jsonl``, next to this module) was written by hand from
the real threads: journalist questions ("Has the Ottawa gunman been identified?"), an ``as_of``
instant during the event, and the ids of the posts that answer it. Relevant ids are the
thread(s) the question is about (source tweet plus replies annotated as supporting or denying
it, created by ``as_of``) and the other source tweets of the same event, created by ``as_of``,
that state the same specific claim. Two items are follow-ups (``conversation`` holds the earlier
questions). ``kind: "claim"`` items are claim checks: a claim paraphrased from a thread's source
tweet, ``expected`` the thread's gold veracity mapped true -> supported, false -> disputed,
unverified -> unverified.

Method: the shipped demo corpus (``firesift/demo/corpus.jsonl.gz``, the same two datasets, so
an installed package needs no data folder) is ingested into a temporary database, every question
is asked with its ``as_of`` through :class:`~firesift.answer.engine.AnswerEngine`, and:

- **recall@10** (per question, then averaged): relevant posts among the answer's first 10
  citations, divided by ``min(10, relevant)``; **evidence recall@10** the same over the 10 best
  pool hits (what a composer was given);
- **citation validity**: every citation is a post the store holds, created at or before the
  question's ``as_of`` (must be 1.0);
- **latency** p50 / p99 of ``AnswerEngine.answer`` (extractive composer; the process is
  warmed by one untimed answer, which loads the stance model);
- **claim accuracy** and **macro-F1** (mean F1 over the expected labels the items hold):
  share of claim items whose verdict equals ``expected``, F1 per label, and the
  confusion counts.
"""

from __future__ import annotations

import gzip
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO, cast

import orjson

from firesift.answer.engine import AnswerEngine
from firesift.answer.model import VERDICTS, Message
from firesift.answer.train_stance import metrics
from firesift.database import Database
from firesift.errors import NotFound
from firesift.formats import Problem, read
from firesift.pipeline import IngestSummary
from firesift.post import to_ms

__all__ = ["bench_answer", "ingest", "load_questions", "percentile", "run"]


def load_questions(
    path: Path | None = None, *, shipped: str = "answers_questions.jsonl"
) -> list[dict[str, Any]]:
    """The question set (default: the ``shipped`` one of firesift.evaluation)."""
    if path is None:
        ref = resources.files("firesift.evaluation").joinpath(shipped)
        text = ref.read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


@contextmanager
def _open_corpus(path: Path | None) -> Iterator[BinaryIO]:
    if path is None:
        ref = resources.files("firesift.demo").joinpath("corpus.jsonl.gz")
        with resources.as_file(ref) as shipped, gzip.open(shipped, "rb") as fh:
            yield cast(BinaryIO, fh)
        return
    if not Path(path).is_file():
        raise NotFound(f"no such corpus file: {path}")
    if str(path).endswith(".gz"):
        with gzip.open(path, "rb") as gz:
            yield cast(BinaryIO, gz)
    else:
        with open(path, "rb") as fh:
            yield fh


def ingest(db: Database, corpus: Path | None = None, *more: Path) -> IngestSummary:
    """Ingest ``corpus`` (default: the shipped demo corpus), then the files ``more``, into
    ``db`` through one pipeline; a malformed line is counted as skipped, with its place."""
    summary = IngestSummary()
    pipeline = db.pipeline()
    for path in (corpus, *more):
        with _open_corpus(path) as fh:
            for item in read(fh, name=str(path or "demo corpus")):
                if isinstance(item, Problem):
                    summary.skip(item.where, item.reason)
                else:
                    pipeline.feed(item.events, summary)
    pipeline.flush(summary)
    return summary


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ``values``, nearest-rank."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def _messages(item: dict[str, Any]) -> list[Message]:
    return [Message("user", q) for q in [*item.get("conversation", []), item["question"]]]


def _as_of(item: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(item["as_of"]).replace("Z", "+00:00"))


def evaluate(db: Database, questions: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Run the question set against an opened database (see the module docstring)."""
    engine = AnswerEngine(db)
    engine.stance_model()
    engine.answer([Message("user", "warm up")], as_of=datetime(2015, 1, 1, tzinfo=UTC))
    per_question: list[dict[str, Any]] = []
    latencies: list[float] = []
    cited = valid = 0
    for item in questions:
        if item.get("kind", "answer") != "answer":
            continue
        as_of = _as_of(item)
        messages = _messages(item)
        start = time.perf_counter()
        answer = engine.answer(messages, as_of=as_of)
        latencies.append((time.perf_counter() - start) * 1000)
        ctx = engine.prepare(messages, as_of=as_of)
        relevant = set(item["relevant"])
        denominator = max(1, min(10, len(relevant)))
        top = [c.post.id for c in answer.citations[:10]]
        pool_top = [i.post.id for i in ctx.pool.hits()[:10]]
        recall = len(relevant.intersection(top)) / denominator
        pool_recall = len(relevant.intersection(pool_top)) / denominator
        for c in answer.citations:
            cited += 1
            stored = db.store.get(c.post.source, c.post.id)
            if stored is not None and to_ms(stored.created_at) <= to_ms(as_of):
                valid += 1
        per_question.append(
            {
                "id": item["id"],
                "recall@10": round(recall, 3),
                "evidence_recall@10": round(pool_recall, 3),
                "citations": len(answer.citations),
                "grounded": answer.grounded,
                "ms": round(latencies[-1], 1),
            }
        )
    claims = [i for i in questions if i.get("kind") == "claim"]
    confusion: Counter[str] = Counter()
    gold: list[int] = []
    got: list[int] = []
    for item in claims:
        verdict = engine.check(item["claim"], as_of=_as_of(item))
        confusion[f"{item['expected']}->{verdict.verdict}"] += 1
        gold.append(VERDICTS.index(item["expected"]))
        got.append(VERDICTS.index(verdict.verdict))
    scored = metrics(gold, got, VERDICTS)
    classes = sorted({VERDICTS[g] for g in gold})  # macro-F1 over the labels the items hold
    n = len(per_question)
    return {
        "questions": n,
        "recall@10": round(statistics.fmean(q["recall@10"] for q in per_question), 3) if n else 0,
        "evidence_recall@10": (
            round(statistics.fmean(q["evidence_recall@10"] for q in per_question), 3) if n else 0
        ),
        "citation_validity": round(valid / cited, 4) if cited else 1.0,
        "citations": cited,
        "grounded_share": round(sum(q["grounded"] for q in per_question) / n, 3) if n else 0,
        "latency_ms": {
            "p50": round(percentile(latencies, 0.5), 1),
            "p99": round(percentile(latencies, 0.99), 1),
            "max": round(max(latencies, default=0.0), 1),
        },
        "claims": {
            "items": len(claims),
            "accuracy": round(scored.accuracy, 3) if claims else None,
            "macro_f1": (
                round(statistics.fmean(scored.per_class_f1[c] for c in classes), 3)
                if claims
                else None
            ),
            "confusion": dict(sorted(confusion.items())),
        },
        "per_question": per_question,
    }


@contextmanager
def corpus_db(source: Path | None) -> Iterator[tuple[Database, int | None]]:
    """The database an evaluation reads, and how many posts were ingested into it: the data
    directory ``source`` opened as it is (``None`` ingested), or a temporary database holding
    the corpus file ``source`` (default: the shipped demo corpus)."""
    if source is not None and Path(source).is_dir():
        with Database(Path(source)) as db:
            yield db, None
        return
    with tempfile.TemporaryDirectory(prefix="firesift-eval-") as tmp, Database(Path(tmp)) as db:
        yield db, ingest(db, source).ingested


def run(source: Path | None = None, *, questions: Path | None = None) -> dict[str, Any]:
    """Evaluate answers. ``source`` is a corpus file to ingest into a temporary database
    (default: the shipped demo corpus) or the data directory of an existing database."""
    items = load_questions(questions)
    method = {
        "method": "as-of questions from RumourEval 2017 / PHEME; see firesift.evaluation."
        "answers_eval",
        "composer": "extractive",
    }
    with corpus_db(source) as (db, ingested):
        where: dict[str, Any] = {"source": str(source or "demo corpus")}
        if ingested is not None:
            where["ingested"] = ingested
        return {**method, **where, **evaluate(db, items)}


def bench_answer(
    db: Database,
    questions: Sequence[str | tuple[str, datetime | None]],
    *,
    composer: str = "extractive",
    repeats: int = 1,
    warmup: int = 2,
) -> dict[str, Any]:
    """Latency of ``AnswerEngine.answer`` over ``questions`` (text, or ``(text, as_of)``):
    p50 / p99 / mean in ms after ``warmup`` untimed answers."""
    engine = AnswerEngine(db)
    asks = [(q, None) if isinstance(q, str) else q for q in questions]
    for text, as_of in asks[:warmup]:
        engine.answer([Message("user", text)], as_of=as_of, composer=composer)
    times: list[float] = []
    for _ in range(max(1, repeats)):
        for text, as_of in asks:
            start = time.perf_counter()
            engine.answer([Message("user", text)], as_of=as_of, composer=composer)
            times.append((time.perf_counter() - start) * 1000)
    return {
        "answers": len(times),
        "composer": composer,
        "p50_ms": round(percentile(times, 0.5), 2),
        "p99_ms": round(percentile(times, 0.99), 2),
        "mean_ms": round(statistics.fmean(times), 2) if times else 0.0,
    }
