"""Train the reply-stance model on RumourEval 2017 (SemEval-2017 Task 8, subtask A).

``train(data_dir, out)`` fits on the ``train`` split and makes every choice (feature families,
L2 strength, class weighting) on the ``dev`` split, then writes the chosen model and returns a
:class:`TrainReport` with dev accuracy, macro-F1, per-class F1, the confusion matrix and the
majority-class baseline. The shipped ``stance_model.npz`` is exactly this output.

Design decisions:

- **Every post counts, as in the shared task.** Source tweets are examples too (depth 0, nearly
  all ``support``); replies take the thread's source tweet as their target, because the labels
  are stance towards the rumour, not towards the parent tweet.
- **Deterministic fitting.** Full-batch L-BFGS on the convex weighted cross-entropy with L2
  (bias unpenalised), with fixed iteration limits (at the weakest L2 they stop a little short
  of convergence, which also regularises) and order-stable sums (``np.add.reduceat`` over a
  column-sorted copy), so the same data and seed give bit-identical weights. ``seed`` only
  draws a tiny starting point; with a convex objective it barely moves the optimum.
- **Class weights are a hyperparameter.** ``comment`` dominates (about 64% of train), so sample
  weights are ``(n / (k * n_class)) ** alpha`` with ``alpha`` chosen on dev: lower values
  favour accuracy, 1 buys recall on the rare ``deny`` and ``query`` classes.
- **Selection rule.** Among settings whose dev accuracy beats the majority baseline, take the
  best macro-F1 (ties: accuracy); the dev split is a single event (Germanwings) unseen in
  training, so it also measures transfer to a new story. The numbers reported are the ones
  the choice was made on, so they are slightly optimistic.
- **Search space.** Reply word uni/bigrams alone or with character 2-5-grams, crossed with the
  class-weight exponent and L2 strength (warm-started from strong to weak L2), 18 fits. Hashed
  words of the target (``FeatureConfig.target``) were tried and did not beat reply-only
  features on dev, so the search leaves them off; overlap with the target stays as a cue.
- **Veracity, cheaply.** A thread-level baseline (true/false/unverified) is a tiny logistic
  regression on a thread's mean predicted stance distribution, reported next to its majority
  baseline; nothing of it is shipped. On dev (24 threads) it does not beat the
  majority class, so stance counts alone are no veracity signal worth shipping.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from firesift.answer.stance import (
    CUE_NAMES,
    LABELS,
    FeatureConfig,
    SparseRows,
    StanceModel,
    featurize_many,
    softmax,
)
from firesift.errors import NotFound, ParseError

__all__ = [
    "Example",
    "Metrics",
    "TrainReport",
    "evaluate",
    "load_examples",
    "metrics",
    "train",
]

F64 = npt.NDArray[np.float64]

FEATURE_SETS: dict[str, FeatureConfig] = {
    "words": FeatureConfig(words=True, chars=False, target=False),
    "words+chars": FeatureConfig(words=True, chars=True, target=False),
}
L2_GRID = (3e-4, 1e-3, 3e-3)
ALPHA_GRID = (0.5, 0.75, 1.0)
MAX_ITER = 100
VERACITY = ("true", "false", "unverified")


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled post: its text, the claim it responds to and its depth in the thread."""

    id: str
    thread_id: str
    split: str
    text: str
    target: str | None
    depth: int
    label: str


@dataclass(frozen=True, slots=True)
class Metrics:
    """Accuracy, macro-F1, per-class F1 and the confusion matrix (rows gold, columns predicted,
    both in :data:`~firesift.answer.stance.LABELS` order)."""

    n: int
    accuracy: float
    macro_f1: float
    per_class_f1: dict[str, float]
    confusion: tuple[tuple[int, ...], ...]

    def to_dict(self, digits: int = 4) -> dict[str, Any]:
        """The figures rounded to ``digits``, the confusion matrix as lists (JSON-ready)."""
        return {
            "n": self.n,
            "accuracy": round(self.accuracy, digits),
            "macro_f1": round(self.macro_f1, digits),
            "per_class_f1": {k: round(v, digits) for k, v in self.per_class_f1.items()},
            "confusion": [list(row) for row in self.confusion],
        }


@dataclass(frozen=True)
class TrainReport:
    """What :func:`train` did and how well the written model does on the dev split."""

    model_path: str
    model_bytes: int
    seed: int
    n_train: int
    n_dev: int
    labels: tuple[str, ...]
    accuracy: float
    macro_f1: float
    per_class_f1: dict[str, float]
    confusion: tuple[tuple[int, ...], ...]
    majority_label: str
    majority_accuracy: float
    majority_macro_f1: float
    hyperparameters: dict[str, Any]
    search: tuple[dict[str, Any], ...]
    veracity: dict[str, float]
    train_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        data: dict[str, Any] = json.loads(json.dumps(asdict(self)))
        return data


def _posts_file(data_dir: Path) -> Path:
    for candidate in (data_dir / "posts.jsonl", data_dir / "rumoureval2017" / "posts.jsonl"):
        if candidate.is_file():
            return candidate
    raise NotFound(
        f"RumourEval 2017 posts.jsonl not found in {data_dir} or {data_dir / 'rumoureval2017'}"
    )


def load_examples(data_dir: Path) -> dict[str, list[Example]]:
    """The stance-labelled posts of ``posts.jsonl`` grouped by split (``train``, ``dev``).

    ``data_dir`` is the ``rumoureval2017`` folder or its parent.
    """
    path = _posts_file(data_dir)
    posts: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                post = json.loads(line)
                missing = [k for k in ("id", "text", "thread_id") if k not in post]
                if missing:
                    raise KeyError(", ".join(missing))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ParseError(f"bad RumourEval post ({exc})", where=f"{path}:{lineno}") from exc
            posts.append(post)
    by_id = {p["id"]: p for p in posts}

    def depth(post: dict[str, Any]) -> int:
        d, seen = 0, set()
        while post.get("parent_id") and post["parent_id"] in by_id and post["id"] not in seen:
            seen.add(post["id"])
            post = by_id[post["parent_id"]]
            d += 1
        return d

    out: dict[str, list[Example]] = {}
    for post in posts:
        label = post.get("stance")
        if label not in LABELS:
            continue
        source = by_id.get(post["thread_id"])
        is_source = bool(post.get("is_source")) or post["id"] == post["thread_id"]
        d = 0 if is_source else max(depth(post), 1)
        target = None if is_source or source is None else str(source["text"])
        split = str(post.get("split", "train"))
        out.setdefault(split, []).append(
            Example(
                str(post["id"]), str(post["thread_id"]), split, str(post["text"]), target, d, label
            )
        )
    return out


def metrics(gold: Sequence[int], pred: Sequence[int], labels: Sequence[str] = LABELS) -> Metrics:
    """Accuracy, macro-F1 (unweighted mean over ``labels``) and the confusion matrix."""
    k = len(labels)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (np.asarray(gold), np.asarray(pred)), 1)
    n = int(confusion.sum())
    f1s: dict[str, float] = {}
    for i, label in enumerate(labels):
        tp = confusion[i, i]
        denom = confusion[i, :].sum() + confusion[:, i].sum()
        f1s[label] = float(2 * tp / denom) if denom else 0.0
    return Metrics(
        n=n,
        accuracy=float(np.trace(confusion) / n) if n else 0.0,
        macro_f1=float(np.mean(list(f1s.values()))),
        per_class_f1=f1s,
        confusion=tuple(tuple(int(x) for x in row) for row in confusion),
    )


def evaluate(model: StanceModel, examples: Sequence[Example]) -> Metrics:
    """Score ``model`` on labelled examples."""
    rows = featurize_many(((e.text, e.target, e.depth) for e in examples), model.config)
    pred = model.probabilities(rows).argmax(axis=1)
    index = {label: i for i, label in enumerate(model.labels)}
    return metrics([index[e.label] for e in examples], pred.tolist(), model.labels)


def _lbfgs(
    objective: Callable[[F64], tuple[float, F64]],
    x0: F64,
    *,
    max_iter: int = MAX_ITER,
    memory: int = 10,
    tol: float = 1e-6,
) -> F64:
    """Minimise a smooth convex ``objective`` (returning value and gradient) by L-BFGS with
    Armijo backtracking. Deterministic: no randomness, fixed limits."""
    x = x0.copy()
    fx, g = objective(x)
    s_hist: list[F64] = []
    y_hist: list[F64] = []
    for _ in range(max_iter):
        if float(np.abs(g).max()) < tol:
            break
        q = g.copy()
        alphas: list[float] = []
        for s, y in zip(reversed(s_hist), reversed(y_hist), strict=True):
            a = float(s.ravel() @ q.ravel()) / float(y.ravel() @ s.ravel())
            alphas.append(a)
            q -= a * y
        if s_hist:
            s, y = s_hist[-1], y_hist[-1]
            q *= float(s.ravel() @ y.ravel()) / float(y.ravel() @ y.ravel())
        else:
            q /= max(float(np.linalg.norm(g)), 1.0)
        for s, y, a in zip(s_hist, y_hist, reversed(alphas), strict=True):
            b = float(y.ravel() @ q.ravel()) / float(y.ravel() @ s.ravel())
            q += (a - b) * s
        direction = -q
        slope = float(g.ravel() @ direction.ravel())
        if slope >= 0:
            direction, slope = -g, -float(g.ravel() @ g.ravel())
            s_hist.clear()
            y_hist.clear()
        step = 1.0
        for _ in range(30):
            x_new = x + step * direction
            f_new, g_new = objective(x_new)
            if f_new <= fx + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            break
        s_k, y_k = x_new - x, g_new - g
        if float(s_k.ravel() @ y_k.ravel()) > 1e-12:
            s_hist.append(s_k)
            y_hist.append(y_k)
            if len(s_hist) > memory:
                s_hist.pop(0)
                y_hist.pop(0)
        done = abs(fx - f_new) <= 1e-9 * max(1.0, abs(fx))
        x, fx, g = x_new, f_new, g_new
        if done:
            break
    return x


class _Design:
    """A training matrix compacted to the columns it uses, with a column-sorted copy so both
    ``X @ W`` and ``X.T @ G`` are one gather plus one ``np.add.reduceat`` in float32."""

    def __init__(self, rows: SparseRows) -> None:
        self.n_rows, self.n_cols = rows.n_rows, rows.n_cols
        self.used, self.inv = np.unique(rows.indices, return_inverse=True)
        self.indptr = rows.indptr[:-1]
        self.data = rows.data.astype(np.float32)[:, None]
        row_of = np.repeat(np.arange(rows.n_rows), np.diff(rows.indptr))
        order = np.argsort(self.inv, kind="stable")
        self.t_rows = row_of[order]
        self.t_data = self.data[order]
        sorted_cols = self.inv[order]
        self.t_starts = np.flatnonzero(np.r_[True, sorted_cols[1:] != sorted_cols[:-1]])

    def dot(self, w: F64) -> F64:
        contrib = w.astype(np.float32)[self.inv] * self.data
        return np.add.reduceat(contrib, self.indptr, axis=0).astype(np.float64)

    def tdot(self, g: F64) -> F64:
        contrib = g.astype(np.float32)[self.t_rows] * self.t_data
        return np.add.reduceat(contrib, self.t_starts, axis=0).astype(np.float64)

    def expand(self, w: F64) -> npt.NDArray[np.float32]:
        full = np.zeros((self.n_cols, w.shape[1]), dtype=np.float32)
        full[self.used] = w
        return full


def _fit(
    design: _Design,
    y: npt.NDArray[np.int64],
    n_classes: int,
    *,
    l2: float,
    alpha: float,
    seed: int,
    start: F64 | None = None,
    max_iter: int = MAX_ITER,
) -> F64:
    """Weighted multinomial logistic regression on the compacted columns; the bias (column 0
    of the full space) is not penalised. ``start`` warm-starts along a regularisation path."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    class_w = (len(y) / (n_classes * np.maximum(counts, 1.0))) ** alpha
    sample_w = class_w[y]
    sample_w /= sample_w.sum()
    onehot = np.eye(n_classes)[y]
    penalty = np.where(design.used == 0, 0.0, l2)[:, None]

    def objective(w: F64) -> tuple[float, F64]:
        p = softmax(design.dot(w))
        loss = -float(sample_w @ np.log(np.maximum((p * onehot).sum(axis=1), 1e-300)))
        loss += 0.5 * float((penalty * w * w).sum())
        grad = design.tdot(sample_w[:, None] * (p - onehot)) + penalty * w
        return loss, grad

    if start is None:
        rng = np.random.default_rng(seed)
        start = rng.normal(0.0, 1e-3, size=(len(design.used), n_classes))
    return _lbfgs(objective, start, max_iter=max_iter)


def _veracity(
    model: StanceModel, data_dir: Path, examples: Mapping[str, Sequence[Example]], seed: int
) -> dict[str, float]:
    threads_file = _posts_file(data_dir).with_name("threads.jsonl")
    if not threads_file.is_file():
        return {}
    with threads_file.open(encoding="utf-8") as fh:
        truth = {
            str(t["thread_id"]): (str(t.get("split", "train")), t.get("veracity"))
            for t in map(json.loads, filter(str.strip, fh))
        }
    feats: dict[str, dict[str, F64]] = {}
    for split, items in examples.items():
        replies = [e for e in items if e.depth > 0]
        rows = featurize_many(((e.text, e.target, e.depth) for e in replies), model.config)
        probs = model.probabilities(rows)
        sums: dict[str, F64] = {}
        for e, p in zip(replies, probs, strict=True):
            sums[e.thread_id] = sums.get(e.thread_id, np.zeros(len(LABELS))) + p
        feats[split] = {t: s / s.sum() for t, s in sums.items()}

    def dataset(split: str) -> tuple[SparseRows, npt.NDArray[np.int64]]:
        ids = sorted(
            t
            for t, (s, v) in truth.items()
            if s == split and v in VERACITY and t in feats.get(split, {})
        )
        n_cols = 1 + len(LABELS)
        data = np.array([[1.0, *feats[split][t]] for t in ids], dtype=np.float32).reshape(
            -1, n_cols
        )
        rows = SparseRows(
            indptr=np.arange(0, n_cols * len(ids) + 1, n_cols, dtype=np.int64),
            indices=np.tile(np.arange(n_cols, dtype=np.int64), len(ids)),
            data=data.ravel(),
            n_cols=n_cols,
        )
        labels = np.array([VERACITY.index(truth[t][1]) for t in ids], dtype=np.int64)
        return rows, labels

    train_rows, train_y = dataset("train")
    dev_rows, dev_y = dataset("dev")
    if not train_rows.n_rows or not dev_rows.n_rows:
        return {}
    design = _Design(train_rows)
    w = design.expand(_fit(design, train_y, len(VERACITY), l2=1e-3, alpha=1.0, seed=seed))
    pred = softmax(dev_rows.dot(w)).argmax(axis=1)
    majority = int(np.bincount(train_y, minlength=len(VERACITY)).argmax())
    return {
        "dev_accuracy": float((pred == dev_y).mean()),
        "dev_macro_f1": metrics(dev_y.tolist(), pred.tolist(), VERACITY).macro_f1,
        "majority_accuracy": float((dev_y == majority).mean()),
        "n_dev_threads": float(len(dev_y)),
    }


def train(data_dir: Path, out: Path, *, seed: int = 0) -> TrainReport:
    """Fit on RumourEval 2017 ``train``, choose on ``dev``, write the model to ``out``."""
    started = time.perf_counter()
    examples = load_examples(data_dir)
    train_set, dev_set = examples.get("train", []), examples.get("dev", [])
    if not train_set or not dev_set:
        raise NotFound(f"{_posts_file(data_dir)} needs labelled posts in both train and dev")
    index = {label: i for i, label in enumerate(LABELS)}
    y_train = np.array([index[e.label] for e in train_set], dtype=np.int64)
    y_dev = [index[e.label] for e in dev_set]
    majority = int(np.bincount(y_train, minlength=len(LABELS)).argmax())
    baseline = metrics(y_dev, [majority] * len(y_dev))

    search: list[dict[str, Any]] = []
    best: tuple[tuple[bool, float, float], StanceModel, Metrics] | None = None
    for name, config in FEATURE_SETS.items():
        rows = featurize_many(((e.text, e.target, e.depth) for e in train_set), config)
        dev_rows = featurize_many(((e.text, e.target, e.depth) for e in dev_set), config)
        design = _Design(rows)
        for alpha in ALPHA_GRID:
            w: F64 | None = None
            for l2 in sorted(L2_GRID, reverse=True):
                w = _fit(design, y_train, len(LABELS), l2=l2, alpha=alpha, seed=seed, start=w)
                weights = design.expand(w)
                candidate = StanceModel(weights, config)
                pred = candidate.probabilities(dev_rows).argmax(axis=1)
                m = metrics(y_dev, pred.tolist())
                hyper = {"features": name, "l2": l2, "class_weight_alpha": alpha}
                search.append({**hyper, "accuracy": m.accuracy, "macro_f1": m.macro_f1})
                key = (m.accuracy > baseline.accuracy, m.macro_f1, m.accuracy)
                if best is None or key > best[0]:
                    meta = {
                        "hyperparameters": hyper,
                        "seed": seed,
                        "cues": list(CUE_NAMES),
                        "trained_on": {
                            "dataset": "RumourEval 2017 (SemEval-2017 Task 8A) train split",
                            "posts_sha256": hashlib.sha256(
                                _posts_file(data_dir).read_bytes()
                            ).hexdigest(),
                            "n_train": len(train_set),
                        },
                        "dev": {"accuracy": m.accuracy, "macro_f1": m.macro_f1},
                    }
                    best = (key, StanceModel(weights, config, LABELS, meta), m)
    assert best is not None
    _, model, dev = best
    size = model.save(out)
    return TrainReport(
        model_path=str(out),
        model_bytes=size,
        seed=seed,
        n_train=len(train_set),
        n_dev=len(dev_set),
        labels=LABELS,
        accuracy=dev.accuracy,
        macro_f1=dev.macro_f1,
        per_class_f1=dev.per_class_f1,
        confusion=dev.confusion,
        majority_label=LABELS[majority],
        majority_accuracy=baseline.accuracy,
        majority_macro_f1=baseline.macro_f1,
        hyperparameters=dict(model.meta["hyperparameters"]),
        search=tuple(search),
        veracity=_veracity(model, data_dir, examples, seed),
        train_seconds=time.perf_counter() - started,
    )
