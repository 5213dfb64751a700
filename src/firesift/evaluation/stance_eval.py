"""Reply stance over every reply of the RumourEval 2017 dev threads (``firesift eval stance``).

``firesift train-stance`` reports the model on the dev split's posts as a labelled list. This
measures the product path instead: the posts are ingested into a temporary database like any
stream, :func:`firesift.answer.thread.thread` is asked for each dev thread's source post, and
every reply it returns is compared with its gold stance. So the figures include how the thread
is rebuilt from the store (parents, depths, the source post as every reply's target), and they
cover every reply, not only the few a claim check cites.

- **Items**: every reply (not the source tweet) in a dev thread's ``structure``
  (``threads.jsonl``) whose ``stance`` is labelled in ``posts.jsonl``. A gold reply the thread
  does not return counts as missed (``missing``, expected 0) and is left out of the scores.
- **Scores**: accuracy, macro-F1, per-class F1 and the confusion matrix (rows gold, columns
  predicted, in ``support, deny, query, comment`` order) from
  :func:`firesift.answer.train_stance.metrics`; the **majority baseline** predicts the most
  common stance of the *train* split's replies for every dev reply; the lexical
  :class:`~firesift.answer.check.CueStance` fallback is scored on the same replies.
- **Returned**: every reply the threads hold, labelled or not (RumourEval labels them all).
- **Depth agreement**: the share of replies whose depth in the rebuilt thread equals their
  depth in the gold ``structure`` tree.
- **Anchors** (published, on the SemEval test sets, not on this dev split): RumourEval 2017
  best stance accuracy 0.784; RumourEval 2019 best macro-F1 0.619.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from firesift.answer.check import CueStance, StancePredictor
from firesift.answer.stance import LABELS, StanceModel
from firesift.answer.thread import stance_by, thread
from firesift.answer.train_stance import metrics
from firesift.database import Database
from firesift.errors import NotFound
from firesift.evaluation.answers_eval import ingest

__all__ = ["ANCHORS", "gold_replies", "run"]

ANCHORS = {
    "rumoureval2017_best_accuracy": 0.784,
    "rumoureval2019_best_macro_f1": 0.619,
}


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise NotFound(f"no {path.name} in {path.parent}: pass --data DIR (the RumourEval folder)")
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def _walk(tree: Mapping[str, Any], depth: int = 0) -> Iterator[tuple[str, int]]:
    for pid, children in tree.items():
        yield pid, depth
        if isinstance(children, Mapping):
            yield from _walk(children, depth + 1)


def gold_replies(
    posts: list[dict[str, Any]], threads: list[dict[str, Any]], split: str
) -> dict[str, dict[str, tuple[str, int]]]:
    """``thread_id -> {reply id: (gold stance, gold depth)}`` for the ``split``'s threads."""
    stance = {str(p["id"]): p.get("stance") for p in posts}
    out: dict[str, dict[str, tuple[str, int]]] = {}
    for t in threads:
        if t.get("split") != split:
            continue
        tid = str(t["thread_id"])
        replies = {
            pid: (str(stance[pid]), depth)
            for pid, depth in _walk(t.get("structure") or {})
            if depth > 0 and stance.get(pid) in LABELS
        }
        out[tid] = replies
    return out


def _scores(gold: list[str], pred: list[str]) -> dict[str, Any]:
    index = {label: i for i, label in enumerate(LABELS)}
    return metrics([index[g] for g in gold], [index[p] for p in pred]).to_dict()


def run(
    data: Path,
    *,
    split: str = "dev",
    stance: StancePredictor | None = None,
    features: str = "shipped",
) -> dict[str, Any]:
    """Score reply stance on every reply of the ``split`` threads in the RumourEval folder
    ``data`` (the one holding ``posts.jsonl`` and ``threads.jsonl``); see the module docstring.
    ``stance`` defaults to the shipped model. ``features="minilm"`` also trains and scores the
    embedding model of :mod:`firesift.evaluation.stance_embed_eval` on the same replies, under
    the ``"minilm"`` key."""
    started = time.perf_counter()
    posts = _jsonl(data / "posts.jsonl")
    threads = _jsonl(data / "threads.jsonl")
    gold = gold_replies(posts, threads, split)
    if not gold:
        raise NotFound(f"no {split!r} threads in {data / 'threads.jsonl'}")
    train = Counter(
        label for t in gold_replies(posts, threads, "train").values() for label, _ in t.values()
    )
    majority = train.most_common(1)[0][0] if train else "comment"
    model = stance or StanceModel.load()
    cues = CueStance()
    golds: list[str] = []
    preds: list[str] = []
    cue_preds: list[str] = []
    scored_ids: list[tuple[str, str]] = []
    embedded: dict[str, Any] | None = None
    missing = 0
    returned = 0
    depth_ok = 0
    with (
        tempfile.TemporaryDirectory(prefix="firesift-eval-stance-") as tmp,
        Database(Path(tmp) / "db") as db,
    ):
        summary = ingest(db, data / "posts.jsonl")
        ingest_s = time.perf_counter() - started
        t0 = time.perf_counter()
        for tid, replies in gold.items():
            got = {p.post.id: p for p in thread(db, f"x:{tid}", stance=model).replies}
            returned += len(got)
            by_cue = {p.post.id: p for p in thread(db, f"x:{tid}", stance=cues).replies}
            for pid, (label, depth) in replies.items():
                reply = got.get(pid)
                if reply is None or reply.stance is None:
                    missing += 1
                    continue
                golds.append(label)
                scored_ids.append((tid, pid))
                preds.append(reply.stance)
                cue_preds.append(by_cue[pid].stance or "comment")
                depth_ok += reply.depth == depth
        thread_s = time.perf_counter() - t0
        if features != "shipped":
            from firesift.evaluation import stance_embed_eval

            embedded = stance_embed_eval.evaluate(db, data, scored_ids, golds, preds)
    scored = len(golds)
    base = _scores(golds, [majority] * scored)
    return {
        "split": split,
        "data": str(data),
        "threads": len(gold),
        "replies": sum(len(r) for r in gold.values()),
        "missing": missing,
        "returned": returned,
        "ingested": summary.ingested,
        "stance_by": stance_by(model),
        **_scores(golds, preds),
        "labels": list(LABELS),
        "gold_counts": dict(Counter(golds)),
        "depth_agreement": round(depth_ok / scored, 4) if scored else 0.0,
        "majority": {"label": majority, **base},
        "cues": _scores(golds, cue_preds),
        "anchors": ANCHORS,
        "seconds": {
            "ingest": round(ingest_s, 2),
            "threads": round(thread_s, 2),
            "total": round(time.perf_counter() - started, 2),
        },
        **({"minilm": embedded} if embedded is not None else {}),
    }
