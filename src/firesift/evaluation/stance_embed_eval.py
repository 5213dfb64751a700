"""Reply stance from all-MiniLM-L6-v2 embeddings, scored next to the shipped model
(``firesift eval stance --features minilm``).

An experiment, not a shipped path: nothing here is used by answers, checks or threads. It
answers one question, whether sentence embeddings make better stance features than the
shipped hashed n-grams (:mod:`firesift.answer.stance`), on the same dev replies that
``firesift eval stance`` scores.

Design decisions:

- **Features.** For a reply ``r`` and its target ``t`` (the thread's source post, as in
  :mod:`firesift.answer.thread`): ``[r, t, r * t, cos(r, t)]``, 1,153 columns from the
  L2-normalised embeddings. Each column is z-scored with the train split's mean and spread so
  one L2 strength suits every block (the products are a hundred times smaller than ``r``).
- **Classifier.** Multinomial logistic regression in numpy: weighted cross-entropy plus L2
  (bias unpenalised), minimised by :func:`firesift.answer.train_stance._lbfgs`, so nothing new
  is installed. Class weights are ``(n / (k * n_class)) ** alpha`` as in train_stance.
- **Training data: train-split replies only.** The score is over replies; source tweets are
  nearly all ``support`` and are left to the caller (:meth:`EmbeddingStance.predict_many`
  labels depth 0 ``support``, as :class:`~firesift.answer.check.CueStance` does).
- **Choices on dev, like train_stance.** L2 and ``alpha`` are picked on the dev replies of
  :func:`~firesift.answer.train_stance.load_examples` with train_stance's rule (beat the
  majority's accuracy, then best macro-F1, then accuracy), so the figure is optimistic in the
  same way as the shipped model's. ``best_dev_macro_f1_any_setting`` is the best macro-F1 of
  any setting searched: an upper bound no honest choice could beat.
- **An ablation.** :data:`VARIANTS` also fits the reply's embedding alone: the target's block
  is the same for every reply of a thread, so it can learn threads rather than stance.
- **Scored on the product path.** :class:`EmbeddingStance` is a
  :class:`~firesift.answer.check.StancePredictor`; :func:`evaluate` asks
  :func:`~firesift.answer.thread.thread` for each dev thread with it, exactly as stance_eval
  does with the shipped model, so both are scored on the same replies with the same targets.
- **Is the difference real?** The dev split is 256 replies of one event with few ``deny``
  replies, so the macro-F1 difference comes with a paired bootstrap over replies (2,000
  resamples, fixed seed): its 95% interval and how often the embedding model is ahead.
- **Cost.** Embeddings are cached in memory per run (text -> vector; nothing on disk); the
  encoding time is reported, with the per-reply latency of one reply encoded alone (what a
  claim check would pay per uncached reply) next to the shipped model's.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from firesift.answer.stance import LABELS, StanceModel, StanceResult, softmax
from firesift.answer.train_stance import Example, Metrics, _lbfgs, load_examples, metrics
from firesift.errors import NotFound

if TYPE_CHECKING:
    from firesift.database import Database
    from firesift.semantic import Encoder

__all__ = [
    "ALPHA_GRID",
    "FEATURES",
    "L2_GRID",
    "VARIANTS",
    "CachedEncoder",
    "EmbeddingStance",
    "Fit",
    "choose",
    "evaluate",
    "features",
    "paired_bootstrap",
    "view",
]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

FEATURES = ("minilm",)
"""The values ``firesift eval stance --features`` accepts besides the default ``shipped``."""
_DIM = 384
VARIANTS: dict[str, I64] = {
    "reply+target": np.arange(3 * _DIM + 1),
    "reply": np.arange(_DIM),
}
"""Column sets of :func:`features` that are fitted and scored: the full set (the headline)
and, as an ablation, the reply's embedding alone."""
L2_GRID = (1.0, 0.3, 0.1, 0.03, 0.01, 0.003)
ALPHA_GRID = (0.0, 0.5, 0.75, 1.0)
MAX_ITER = 200
BOOTSTRAP = 2000


class CachedEncoder:
    """An :class:`~firesift.semantic.Encoder` with an in-memory ``text -> vector`` cache;
    ``seconds`` and ``encoded`` count only the texts actually sent to the model."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.name = encoder.name
        self.dim = encoder.dim
        self.cache: dict[str, F32] = {}
        self.seconds = 0.0
        self.encoded = 0

    def encode(self, texts: Sequence[str]) -> F32:
        new = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if new:
            started = time.perf_counter()
            rows = self.encoder.encode(new)
            self.seconds += time.perf_counter() - started
            self.encoded += len(new)
            self.cache.update(zip(new, rows, strict=True))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.cache[t] for t in texts]).astype(np.float32)


def features(encoder: CachedEncoder, texts: Sequence[str], targets: Sequence[str | None]) -> F64:
    """``[r, t, r * t, cos(r, t)]`` per reply; a missing target is a zero vector."""
    reply = encoder.encode(texts).astype(np.float64)
    known = [t for t in targets if t is not None]
    vectors = dict(zip(known, encoder.encode(known).astype(np.float64), strict=True))
    zero = np.zeros(encoder.dim)
    target = np.stack([vectors[t] if t is not None else zero for t in targets]).reshape(
        len(texts), encoder.dim
    )
    product = reply * target
    return np.hstack([reply, target, product, product.sum(axis=1, keepdims=True)])


@dataclass(frozen=True, slots=True)
class Fit:
    """A fitted model: z-score ``mean``/``scale`` then ``[1, x] @ weights``."""

    weights: F64
    mean: F64
    scale: F64
    l2: float
    alpha: float

    def probabilities(self, x: F64) -> F64:
        z = (x - self.mean) / self.scale
        return softmax(z @ self.weights[1:] + self.weights[0])


def _fit_path(x: F64, y: I64, *, alpha: float, l2_grid: Sequence[float] = L2_GRID) -> list[Fit]:
    """One fit per L2 strength, strong to weak, each warm-started from the last."""
    k = len(LABELS)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    # float32 products (float64 weights and sums in L-BFGS): the matmuls are memory-bound
    design = np.hstack([np.ones((len(x), 1)), (x - mean) / scale]).astype(np.float32)
    counts = np.bincount(y, minlength=k).astype(np.float64)
    sample_w = ((len(y) / (k * np.maximum(counts, 1.0))) ** alpha)[y]
    sample_w /= sample_w.sum()
    onehot = np.eye(k)[y]
    mask = np.ones((design.shape[1], 1))
    mask[0] = 0.0
    w = np.zeros((design.shape[1], k))
    out: list[Fit] = []
    for l2 in sorted(l2_grid, reverse=True):

        def objective(w: F64, l2: float = l2) -> tuple[float, F64]:
            p = softmax(design @ w.astype(np.float32))
            loss = -float(sample_w @ np.log(np.maximum((p * onehot).sum(axis=1), 1e-300)))
            loss += 0.5 * l2 * float((mask * w * w).sum())
            residual = (sample_w[:, None] * (p - onehot)).astype(np.float32)
            grad = (design.T @ residual).astype(np.float64) + l2 * mask * w
            return loss, grad

        w = _lbfgs(objective, w, max_iter=MAX_ITER)
        out.append(Fit(w, mean, scale, l2, alpha))
    return out


def _key(m: Metrics, majority_accuracy: float) -> tuple[bool, float, float]:
    return (m.accuracy > majority_accuracy, m.macro_f1, m.accuracy)


def choose(
    x: F64, y: I64, x_dev: F64, y_dev: I64, *, majority: int
) -> tuple[Fit, Metrics, list[dict[str, float]]]:
    """Fit the grid on ``x``/``y`` and keep the best on dev by train_stance's rule."""
    baseline = float((y_dev == majority).mean())
    best: tuple[tuple[bool, float, float], Fit, Metrics] | None = None
    search: list[dict[str, float]] = []
    for alpha in ALPHA_GRID:
        for candidate in _fit_path(x, y, alpha=alpha):
            pred = candidate.probabilities(x_dev).argmax(axis=1)
            m = metrics(y_dev.tolist(), pred.tolist())
            search.append(
                {"l2": candidate.l2, "alpha": alpha, "accuracy": m.accuracy, "macro_f1": m.macro_f1}
            )
            if best is None or _key(m, baseline) > best[0]:
                best = (_key(m, baseline), candidate, m)
    assert best is not None
    return best[1], best[2], search


class EmbeddingStance:
    """A :class:`~firesift.answer.check.StancePredictor` over MiniLM features (the
    ``columns`` of :func:`features` that ``model`` was fitted on)."""

    def __init__(self, encoder: CachedEncoder, model: Fit, columns: I64) -> None:
        self.encoder = encoder
        self.model = model
        self.columns = columns
        self.labels = LABELS

    def predict_many(
        self,
        texts: Sequence[str],
        targets: Sequence[str | None] | None = None,
        depths: Sequence[int] | None = None,
    ) -> list[StanceResult]:
        n = len(texts)
        targets = [None] * n if targets is None else targets
        depths = [1] * n if depths is None else depths
        probs = self.model.probabilities(features(self.encoder, texts, targets)[:, self.columns])
        out: list[StanceResult] = []
        for p, depth in zip(probs, depths, strict=True):
            if depth == 0:
                p = np.eye(len(LABELS))[LABELS.index("support")]
            out.append(
                StanceResult(LABELS[int(p.argmax())], dict(zip(LABELS, map(float, p), strict=True)))
            )
        return out


def paired_bootstrap(
    gold: Sequence[int], a: Sequence[int], b: Sequence[int], *, n: int = BOOTSTRAP, seed: int = 0
) -> dict[str, float]:
    """Macro-F1 of ``b`` minus ``a`` over ``n`` resamples of the items: the 2.5% and 97.5%
    quantiles and the share of resamples where ``b`` is ahead."""
    g, pa, pb = (np.asarray(v, dtype=np.int64) for v in (gold, a, b))
    rng = np.random.default_rng(seed)
    k = len(LABELS)
    diffs = np.empty(n)

    def macro(gold: I64, pred: I64) -> float:
        confusion = np.bincount(gold * k + pred, minlength=k * k).reshape(k, k)
        denom = confusion.sum(axis=0) + confusion.sum(axis=1)
        f1 = np.divide(2 * np.diag(confusion), denom, out=np.zeros(k), where=denom > 0)
        return float(f1.mean())

    for i in range(n):
        idx = rng.integers(0, len(g), len(g))
        diffs[i] = macro(g[idx], pb[idx]) - macro(g[idx], pa[idx])
    return {
        "low": round(float(np.quantile(diffs, 0.025)), 4),
        "high": round(float(np.quantile(diffs, 0.975)), 4),
        "share_ahead": round(float((diffs > 0).mean()), 4),
    }


def _latency_ms(
    encoder: Encoder, shipped: StanceModel, replies: Sequence[Example]
) -> dict[str, float]:
    """Median milliseconds to label one reply alone: MiniLM (reply encoded, target cached,
    features, classifier) and the shipped model, on up to 30 dev replies."""
    sample = list(replies)[:30]
    embed: list[float] = []
    base: list[float] = []
    for e in sample:
        started = time.perf_counter()
        encoder.encode([e.text])
        embed.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        shipped.predict_many([e.text], [e.target], [e.depth])
        base.append((time.perf_counter() - started) * 1000)
    return {
        "minilm_one_reply_ms": round(float(np.median(embed)), 2) if embed else 0.0,
        "shipped_one_reply_ms": round(float(np.median(base)), 3) if base else 0.0,
    }


def evaluate(
    db: Database,
    data: Path,
    scored: Sequence[tuple[str, str]],
    gold: Sequence[str],
    shipped_pred: Sequence[str],
    *,
    encoder: Encoder | None = None,
    shipped: StanceModel | None = None,
    limit_train: int | None = None,
) -> dict[str, Any]:
    """Train the MiniLM stance models on ``data``'s train replies (choices on its dev replies)
    and score them on the replies stance_eval scored: ``scored`` holds their ``(thread id,
    reply id)`` in order, ``gold`` their stances and ``shipped_pred`` the shipped model's
    labels; ``db`` holds the ingested posts. ``limit_train`` keeps only the first that many
    train replies (a quick run). The headline is :data:`VARIANTS`' first entry."""
    from firesift import semantic
    from firesift.answer.thread import thread

    started = time.perf_counter()
    raw = encoder or semantic.load("full")
    cached = CachedEncoder(raw)
    examples = load_examples(data)
    train = [e for e in examples.get("train", []) if e.depth > 0][:limit_train]
    dev = [e for e in examples.get("dev", []) if e.depth > 0]
    if not train or not dev:
        raise NotFound(f"{data} needs labelled replies in both the train and the dev split")
    index = {label: i for i, label in enumerate(LABELS)}
    y = np.array([index[e.label] for e in train], dtype=np.int64)
    y_dev = np.array([index[e.label] for e in dev], dtype=np.int64)
    majority = int(np.bincount(y, minlength=len(LABELS)).argmax())
    x = features(cached, [e.text for e in train], [e.target for e in train])
    x_dev = features(cached, [e.text for e in dev], [e.target for e in dev])
    embed_choice_s = cached.seconds
    g = [index[v] for v in gold]
    base = [index[v] for v in shipped_pred]
    shipped_m = metrics(g, base)
    variants: dict[str, dict[str, Any]] = {}
    fit_s = 0.0
    for name, columns in VARIANTS.items():
        fit_started = time.perf_counter()
        chosen, _, search = choose(x[:, columns], y, x_dev[:, columns], y_dev, majority=majority)
        fit_s += time.perf_counter() - fit_started
        predictor = EmbeddingStance(cached, chosen, columns)
        labels: dict[tuple[str, str], str] = {}
        for tid in dict.fromkeys(t for t, _ in scored):
            for p in thread(db, f"x:{tid}", stance=predictor).replies:
                labels[(tid, p.post.id)] = p.stance or "comment"
        mine = [index[labels[k]] for k in scored]
        m = metrics(g, mine)
        variants[name] = {
            "columns": len(columns),
            "hyperparameters": {"l2": chosen.l2, "class_weight_alpha": chosen.alpha},
            **m.to_dict(),
            "macro_f1_gain": round(m.macro_f1 - shipped_m.macro_f1, 4),
            "accuracy_gain": round(m.accuracy - shipped_m.accuracy, 4),
            "bootstrap_gain": paired_bootstrap(g, base, mine),
            "best_dev_macro_f1_any_setting": round(max(r["macro_f1"] for r in search), 4),
            "search": search,
        }
    headline = next(iter(VARIANTS))
    return {
        "features": "minilm",
        "encoder": cached.name,
        "headline": headline,
        "n_train": len(train),
        "n_dev_choice": len(dev),
        "train_counts": dict(Counter(e.label for e in train)),
        "shipped": shipped_m.to_dict(),
        **{k: v for k, v in variants[headline].items() if k != "search"},
        "variants": variants,
        "embedded_texts": cached.encoded,
        "latency": _latency_ms(raw, shipped or StanceModel.load(), dev),
        "seconds": {
            "embed": round(cached.seconds, 2),
            "embed_train_dev": round(embed_choice_s, 2),
            "fit": round(fit_s, 2),
            "total": round(time.perf_counter() - started, 2),
        },
    }


def view(result: dict[str, Any]) -> Any:
    """The embedding model next to the shipped one, for ``firesift eval stance --features
    minilm`` (``--json`` has every figure, the search included)."""
    from rich.console import Group
    from rich.table import Table

    shipped = result["shipped"]
    table = Table(
        "stance model",
        "accuracy",
        "macro-F1",
        "macro-F1 gain (95% bootstrap)",
        "L2, alpha",
        title=f"MiniLM stance features ({result['n']} dev replies, same run)",
        title_justify="left",
    )
    table.add_row(
        "shipped (hashed n-grams)", f"{shipped['accuracy']:.3f}", f"{shipped['macro_f1']:.3f}"
    )
    for name, v in result["variants"].items():
        b = v["bootstrap_gain"]
        h = v["hyperparameters"]
        table.add_row(
            f"minilm: {name}",
            f"{v['accuracy']:.3f}",
            f"{v['macro_f1']:.3f} (best any setting {v['best_dev_macro_f1_any_setting']:.3f})",
            f"{v['macro_f1_gain']:+.3f} ({b['low']:+.3f} to {b['high']:+.3f})",
            f"{h['l2']:g}, {h['class_weight_alpha']:g}",
        )
    sec, lat = result["seconds"], result["latency"]
    cost = Table("cost", "value", title_justify="left")
    cost.add_row(
        "embedding", f"{result['embedded_texts']} texts in {sec['embed']:.1f} s (cached per run)"
    )
    cost.add_row("fitting", f"{sec['fit']:.1f} s; total {sec['total']:.1f} s")
    cost.add_row(
        "one reply alone",
        f"minilm {lat['minilm_one_reply_ms']:.1f} ms, shipped {lat['shipped_one_reply_ms']:.2f} ms",
    )
    return Group(table, cost)
