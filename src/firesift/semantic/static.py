"""A static embedding model distilled from all-MiniLM-L6-v2 (the model2vec recipe).

Every vocabulary token goes through the full transformer once, as ``[CLS] token [SEP]``; its
vector is the last layer's output at the token's own position. The 30,522 x 384 matrix is
centred and reduced by PCA to :data:`DIMS` dimensions, and each row is scaled by
``log(1 + token id)`` (model2vec's Zipf weighting: BERT's vocabulary is roughly in frequency
order, so the weight plays the part of an inverse document frequency). A text's embedding is
the L2-normalised mean of its tokens' rows: no attention, no word order, thousands of posts a
second where the full model does tens.

The matrix is built on first use (about a minute on two cores; a one-line note on stderr says
how long it took) and cached as ``.npy`` in the user cache dir, keyed by the SHA-256 of the
weights file and the recipe, so a new model or recipe never reads a stale matrix.

How good it is (``firesift bench embed`` measures it on real posts): it agrees only loosely
with the full model's neighbour ranking. Use it to embed whole streams cheaply, and the full
model to re-rank the few candidates that matter.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import platformdirs

from firesift.semantic.minilm import MiniLM

__all__ = ["DIMS", "RECIPE", "StaticModel", "cache_dir", "distill"]

F32 = npt.NDArray[np.float32]

DIMS = 256
"""PCA output dimensions."""
RECIPE = "tokpos-pca256-zipf-v1"
"""Part of the cache key: change it whenever :func:`distill` changes."""


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/firesift`` (``~/.cache/firesift``) on Linux."""
    return Path(platformdirs.user_cache_dir("firesift", appauthor=False))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def distill(full: MiniLM, *, dims: int = DIMS, batch: int = 1024) -> F32:
    """The ``(vocab, dims)`` float32 token matrix (see the module docstring for the recipe)."""
    vocab = full.word.shape[0]
    cls = full.tokenizer.token_to_id("[CLS]")
    sep = full.tokenizer.token_to_id("[SEP]")
    if cls is None or sep is None:
        raise ValueError("the tokenizer has no [CLS]/[SEP] token")
    raw = np.zeros((vocab, full.dim), dtype=np.float32)
    for start in range(0, vocab, batch):
        ids = np.arange(start, min(vocab, start + batch), dtype=np.int64)
        rows = np.stack([np.full_like(ids, cls), ids, np.full_like(ids, sep)], axis=1)
        raw[start : start + len(ids)] = full.hidden_states(rows, np.ones_like(rows))[:, 1]
    centred = raw - raw.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    reduced = centred @ vt[:dims].T
    weights = np.log1p(np.arange(vocab, dtype=np.float32))[:, None]
    out: F32 = np.ascontiguousarray(reduced * weights, dtype=np.float32)
    return out


class StaticModel:
    """Mean of distilled token vectors; same tokenizer as the full model, no special tokens."""

    def __init__(self, full: MiniLM, vectors: F32) -> None:
        self.name = f"{full.name}-static{vectors.shape[1]}"
        self.dim = int(vectors.shape[1])
        self.vectors = vectors
        self.tokenizer = full.tokenizer

    @classmethod
    def load(cls, full: MiniLM, *, cache_dir: Path | None = None) -> StaticModel:
        """From the cache, distilling (and caching) the matrix on first use."""
        folder = cache_dir if cache_dir is not None else globals()["cache_dir"]()
        key = hashlib.sha256(f"{_file_sha256(full.weights_file)}:{RECIPE}".encode()).hexdigest()
        path = folder / f"minilm-static-{key[:16]}.npy"
        if path.is_file():
            return cls(full, np.load(path))
        t0 = time.perf_counter()
        vectors = distill(full)
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        with partial.open("wb") as f:
            np.save(f, vectors)
        os.replace(partial, path)
        elapsed = time.perf_counter() - t0
        print(
            f"firesift: built the static embedding model in {elapsed:.0f} s: {path}",
            file=sys.stderr,
        )
        return cls(full, vectors)

    def encode(self, texts: Sequence[str]) -> F32:
        """``(len(texts), dim)`` L2-normalised rows; a text with no tokens gets a zero row."""
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # A few hundred texts at a time: their gathered token rows stay in the CPU cache.
        for start in range(0, len(encodings), 256):
            chunk = encodings[start : start + 256]
            lengths = np.array([len(e.ids) for e in chunk], dtype=np.int64)
            present = lengths > 0
            if not present.any():
                continue
            flat = np.fromiter((i for e in chunk for i in e.ids), dtype=np.int64)
            starts = (np.cumsum(lengths) - lengths)[present]  # strictly increasing, < len(flat)
            rows = out[start : start + len(chunk)]
            rows[present] = np.add.reduceat(self.vectors[flat], starts, axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        result: F32 = np.where(norms > 0, out / np.maximum(norms, 1e-12), 0).astype(np.float32)
        return result
