"""``firesift bench embed``: what the sentence-embedding models cost and how far the static one
can stand in for the full one, on the real RumourEval 2017 post texts.

Speed: posts/s of the static and the full model on the real texts (repeated to volume), the
latency of re-ranking 50 candidates for one query with the full model (query and candidates
encoded, cosine, sorted), the model's load time and the static matrix's load (or first build)
time. Quality, on the RumourEval source tweets (one per conversation, eight news events): how
well each model's cosine separates same-event pairs from different-event pairs (ROC AUC, with
WordPiece count vectors as the lexical baseline), and how many of the full model's 10 nearest
neighbours the static model also finds. Disk: the model package and the whole environment
(``sys.prefix``), counted in allocated blocks as ``du`` does.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from firesift.recorded import DATA

__all__ = ["bench_embed"]

Log = Callable[[str], None]
F32 = npt.NDArray[np.float32]


def _posts() -> list[dict[str, Any]]:
    path = DATA / "rumoureval2017" / "posts.jsonl"
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def _du_mib(path: Path) -> float:
    blocks = 0
    for f in path.rglob("*"):
        if f.is_file() and not f.is_symlink():
            blocks += f.lstat().st_blocks
    return round(blocks * 512 / 2**20, 1)


def _auc(scores: F32, labels: npt.NDArray[np.bool_]) -> float:
    """ROC AUC by the rank-sum formula (ties get their mean rank)."""
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.arange(1, len(scores) + 1)
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    ranks = (sums / counts)[inverse]
    pos = int(labels.sum())
    neg = len(labels) - pos
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _pair_auc(emb: F32, events: list[str]) -> float:
    i, j = np.triu_indices(len(events), 1)
    same = np.array([events[a] == events[b] for a, b in zip(i, j, strict=True)])
    sims = np.einsum("ij,ij->i", emb[i], emb[j]).astype(np.float32)
    return round(_auc(sims, same), 3)


def _neighbour_overlap(full: F32, other: F32, k: int = 10) -> float:
    k = min(k, len(full) - 1)
    a = full @ full.T
    b = other @ other.T
    np.fill_diagonal(a, -np.inf)
    np.fill_diagonal(b, -np.inf)
    top_a = np.argsort(-a, axis=1)[:, :k]
    top_b = np.argsort(-b, axis=1)[:, :k]
    shared = [len(set(x) & set(y)) for x, y in zip(top_a, top_b, strict=True)]
    return round(float(np.mean(shared)) / k, 3)


def _bag_of_wordpieces(full: Any, texts: list[str]) -> F32:
    """The lexical baseline: L2-normalised WordPiece count vectors (no model at all)."""
    out = np.zeros((len(texts), full.word.shape[0]), dtype=np.float32)
    for row, enc in enumerate(full.tokenizer.encode_batch(texts, add_special_tokens=False)):
        np.add.at(out[row], enc.ids, 1.0)
    norms = np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    result: F32 = out / norms
    return result


def bench_embed(work: Path, posts: int | None, log: Log) -> dict[str, Any]:
    """``posts`` scales the run: the static model embeds ``50 * posts`` texts, the full model
    ``posts`` (1,000 by default), quality uses up to ``posts`` source tweets (297 at most)."""
    from firesift import semantic
    from firesift.semantic import minilm
    from firesift.semantic.static import StaticModel, cache_dir

    n = posts or 1_000
    rows = _posts()
    texts = [p["text"] for p in rows]
    t0 = time.perf_counter()
    full = semantic.load("full")
    load_s = time.perf_counter() - t0
    assert isinstance(full, minilm.MiniLM)
    cached = any(cache_dir().glob("minilm-static-*.npy"))
    log(f"embed: static model ({'from cache' if cached else 'distilling, about a minute'})")
    t0 = time.perf_counter()
    static = StaticModel.load(full)
    static_load_s = time.perf_counter() - t0

    volume = [texts[i % len(texts)] for i in range(50 * n)]
    log(f"embed: static model on {len(volume):,} real post texts")
    static.encode(volume[:200])
    t0 = time.perf_counter()
    static.encode(volume)
    static_rate = len(volume) / (time.perf_counter() - t0)

    log(f"embed: full model on {n:,} real post texts")
    full.encode(texts[:32])
    t0 = time.perf_counter()
    full.encode(volume[:n])
    full_rate = n / (time.perf_counter() - t0)

    runs = max(3, min(20, n // 50))
    log(f"embed: re-ranking 50 candidates with the full model, {runs} queries")
    rng = random.Random(7)
    sources = [p for p in rows if p["is_source"]]
    latencies = []
    for _ in range(runs):
        query = rng.choice(sources)["text"]
        candidates = rng.sample(texts, 50)
        t0 = time.perf_counter()
        vectors = full.encode([query, *candidates])
        order = np.argsort(-(vectors[1:] @ vectors[0]))
        latencies.append((time.perf_counter() - t0) * 1000)
        assert len(order) == 50

    sample = rng.sample(sources, min(n, len(sources)))
    log(f"embed: quality on {len(sample)} source tweets")
    events = [p["event"] for p in sample]
    stexts = [p["text"] for p in sample]
    f_emb = full.encode(stexts)
    s_emb = static.encode(stexts)
    latencies.sort()
    model = minilm.model_dir()
    return {
        "full_model_load_s": round(load_s, 2),
        "static_load_s": round(static_load_s, 2),
        "static_built": not cached,
        "static_posts_per_s": round(static_rate),
        "full_posts_per_s": round(full_rate, 1),
        "rerank50_median_ms": round(statistics.median(latencies), 1),
        "rerank50_p95_ms": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 1),
        "quality_posts": len(sample),
        "same_event_auc_full": _pair_auc(f_emb, events),
        "same_event_auc_static": _pair_auc(s_emb, events),
        "same_event_auc_wordpiece_counts": _pair_auc(_bag_of_wordpieces(full, stexts), events),
        "static_top10_overlap_with_full": _neighbour_overlap(f_emb, s_emb),
        "model_package_mib": _du_mib(model.parent) if model is not None else None,
        "venv_mib": _du_mib(Path(sys.prefix)),
    }
