"""Reply stance: does a post support, deny, query or merely comment on a claim?

Claim checks ask this of every reply in a thread, so the model is small, CPU-only and fast: a
multinomial logistic regression over sparse features, trained with numpy alone
(:mod:`firesift.answer.train_stance`) on RumourEval 2017 and shipped as ``stance_model.npz``.

Design decisions:

- **Stable hashing.** Word uni/bigrams, character n-grams and the target's words are hashed
  with ``zlib.crc32`` (never Python's per-process randomised ``hash()``) into one ``2**bits``
  space, each family under its own namespace byte, so the same text gives the same features on
  every machine and run. Hand-made cues (negation, "fake"/"hoax"/"not true", "source?",
  "confirmed", question marks, URLs, ``RT``, reply depth, word overlap with the target) take
  the first columns; column 0 is the bias, so every row has at least one entry.
- **Sparse rows without scipy.** A batch is CSR-like index arrays (:class:`SparseRows`);
  ``X @ W`` is a gather plus ``np.add.reduceat``, which keeps inference at several thousand
  replies per second and the model free of extra dependencies.
- **What "target" means.** RumourEval labels a reply's stance towards the thread's source
  tweet (the rumour), so ``target`` is the claim's text and ``depth`` says where the post sits:
  ``0`` the claim itself, ``1`` a direct reply to it, ``2`` or more a reply further down.
- **A versioned file.** The ``.npz`` holds ``weights`` (float32, ``(n_features, n_labels)``)
  and ``meta`` (UTF-8 JSON as uint8: ``format``, ``format_version``, ``feature_version``,
  ``labels``, the feature settings and training provenance). Features are code, so a file
  written by another feature version, a wrong shape or a damaged archive raises
  :class:`ModelFileError` naming the file and how to fix it, never a silent misprediction.
- **Thread safety.** A loaded model is immutable (read-only arrays, no per-call state), so one
  instance can serve concurrent requests.
"""

from __future__ import annotations

import json
import math
import re
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from firesift.errors import NotFound, ParseError

__all__ = [
    "CUE_NAMES",
    "FEATURE_VERSION",
    "FORMAT",
    "FORMAT_VERSION",
    "LABELS",
    "FeatureConfig",
    "ModelFileError",
    "SparseRows",
    "StanceModel",
    "StanceResult",
    "featurize",
    "featurize_many",
]

LABELS: tuple[str, ...] = ("support", "deny", "query", "comment")
FORMAT = "firesift-stance"
FORMAT_VERSION = 1
FEATURE_VERSION = 1
SHIPPED_MODEL = "stance_model.npz"

FloatArray = npt.NDArray[np.float32]
IndexArray = npt.NDArray[np.int64]


class ModelFileError(ParseError):
    """A stance model file is damaged or was written for a different feature version."""


@dataclass(frozen=True, slots=True)
class StanceResult:
    """The predicted ``label`` and the probability of every label (they sum to 1)."""

    label: str
    probs: dict[str, float]


@dataclass(frozen=True, slots=True)
class FeatureConfig:
    """Which feature families are on and how wide the hashed space is."""

    hash_bits: int = 16
    words: bool = True
    chars: bool = True
    target: bool = False
    char_min: int = 2
    char_max: int = 5

    @property
    def n_features(self) -> int:
        return len(CUE_NAMES) + (1 << self.hash_bits)

    def to_dict(self) -> dict[str, Any]:
        return {
            "hash_bits": self.hash_bits,
            "words": self.words,
            "chars": self.chars,
            "target": self.target,
            "char_min": self.char_min,
            "char_max": self.char_max,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureConfig:
        return cls(
            hash_bits=int(data["hash_bits"]),
            words=bool(data["words"]),
            chars=bool(data["chars"]),
            target=bool(data["target"]),
            char_min=int(data["char_min"]),
            char_max=int(data["char_max"]),
        )


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_TOKEN = re.compile(
    r"https?://\S+|www\.\S+|[@＠]\w+|#\w+|\w+(?:['’]\w+)*|[?？]+|!+|[^\w\s]", re.UNICODE
)

_NEGATION = _words(
    "not no never nothing nobody none neither nor cannot nope dont doesnt didnt isnt wasnt "
    "arent werent cant wont aint shouldnt couldnt wouldnt hasnt havent"
)
_DENY_WORDS = _words(
    "fake fakes faked hoax hoaxes false lie lies lying liar liars untrue rumor rumour rumors "
    "rumours debunked debunk bs bullshit nonsense wrong misinformation disinformation "
    "misleading fabricated photoshop photoshopped myth incorrect unconfirmed unverified doubt "
    "doubtful propaganda bogus staged conspiracy inaccurate retracted denied denies"
)
_DENY_PHRASES = (
    "not true",
    "isn't true",
    "no evidence",
    "no proof",
    "don't believe",
    "dont believe",
    "not real",
    "not confirmed",
    "made up",
    "didn't happen",
    "did not happen",
    "not the case",
    "stop spreading",
    "fake news",
    "not dead",
    "still alive",
    "wait for",
)
_QUERY_STARTERS = _words(
    "who what when where why how is are was were do does did can could will would should has "
    "have any really source sources proof"
)
_QUERY_PHRASES = (
    "is this true",
    "is that true",
    "is it true",
    "is this real",
    "any source",
    "source?",
    "sources?",
    "really?",
    "how do you know",
    "who says",
    "says who",
    "any confirmation",
    "can you confirm",
    "are you sure",
    "any proof",
    "any evidence",
    "where did you",
    "link?",
    "confirmed?",
    "true?",
    "what happened",
)
_SUPPORT_WORDS = _words(
    "confirmed confirms confirm official officially reports reported reporting breaking "
    "according true indeed yes yep exactly correct verified witnesses witness"
)
_SUPPORT_PHRASES = (
    "according to",
    "it's true",
    "its true",
    "confirmed by",
    "been confirmed",
    "have confirmed",
    "has confirmed",
    "sources say",
    "police say",
    "police said",
    "i can confirm",
    "this is true",
    "so true",
)
_STOP = _words(
    "the a an and or of to in on at for is are was were be been it this that with as by from "
    "i you he she we they his her its their my your our <user> <url> <num> rt"
)

CUE_NAMES: tuple[str, ...] = (
    "bias",
    "is_source",
    "direct_reply",
    "nested_reply",
    "has_target",
    "question_any",
    "question_end",
    "question_count",
    "question_start",
    "query_phrase",
    "negation_any",
    "negation_count",
    "deny_word",
    "deny_phrase",
    "negated_support",
    "support_word",
    "support_phrase",
    "has_url",
    "retweet",
    "quoted_tweet",
    "exclamation",
    "caps_ratio",
    "length",
    "mentions",
    "hashtags",
    "target_overlap",
    "target_overlap_any",
    "target_question",
)
_N_CUES = len(CUE_NAMES)


def _normalize(token: str) -> str:
    first = token[0]
    if first in "@＠":
        return "<user>"
    if token.startswith(("http://", "https://", "www.")):
        return "<url>"
    if first == "#" and len(token) > 1:
        return token[1:].lower()
    if token.isdigit():
        return "<num>"
    if first in "?？":
        return "?"
    if first == "!":
        return "!"
    return token.lower().replace("’", "'")


@dataclass(frozen=True, slots=True)
class _Text:
    raw: str
    tokens: tuple[str, ...]
    body: tuple[str, ...]
    lowered: str
    hashtag: bool
    """A raw token starts with ``#`` (normalising drops the sign)."""


@lru_cache(maxsize=1 << 10)
def _analyse(text: str) -> _Text:
    """Tokens of ``text``, normalised. Cached (the result is immutable): the replies labelled
    in one batch often answer the same post, which is every one's target."""
    raw = _TOKEN.findall(text)
    tokens = tuple(_normalize(t) for t in raw)
    start = 0
    while start < len(tokens) and tokens[start] in ("<user>", "rt", ".", ":"):
        start += 1
    lowered = " ".join(text.lower().replace("’", "'").split())
    hashtag = any(t.startswith("#") for t in raw)
    return _Text(text, tokens, tokens[start:], lowered, hashtag)


def _hash_text(namespace: str, feature: str) -> int:
    return zlib.crc32(f"{namespace}\x1f{feature}".encode())


_hash = lru_cache(maxsize=1 << 18)(_hash_text)


def _char_grams(token: str, lo: int, hi: int) -> tuple[str, ...]:
    padded = f"^{token}$"
    return tuple(padded[i : i + n] for n in range(lo, hi + 1) for i in range(len(padded) - n + 1))


@lru_cache(maxsize=1 << 16)
def _char_columns(token: str, lo: int, hi: int, mask: int) -> tuple[int, ...]:
    """The columns of ``token``'s character n-grams (the ``c`` family): hashed once per token,
    since the same words recur in post after post, rather than once per n-gram per post."""
    return tuple({_N_CUES + (_hash_text("c", g) & mask) for g in _char_grams(token, lo, hi)})


def _content(tokens: Iterable[str]) -> set[str]:
    return {t for t in tokens if t[:1].isalnum() and t not in _STOP}


def _cues(reply: _Text, target: _Text | None, depth: int) -> list[float]:
    body = reply.body
    words = {t.replace("'", "") for t in body}
    lowered = reply.lowered
    n_questions = reply.tokens.count("?")
    first = next((t for t in body if t[:1].isalnum()), "")
    negations = sum(1 for t in body if t.replace("'", "") in _NEGATION or t.endswith("n't"))
    letters = list(filter(str.isalpha, reply.raw))
    caps = sum(map(str.isupper, letters)) / len(letters) if letters else 0.0
    support_word = bool(words & _SUPPORT_WORDS)
    overlap = 0.0
    if target is not None:
        mine, theirs = _content(body), _content(target.body)
        if mine and theirs:
            overlap = len(mine & theirs) / len(mine | theirs)
    return [
        1.0,
        float(depth == 0),
        float(depth == 1),
        float(depth >= 2),
        float(target is not None and depth > 0),
        float(n_questions > 0),
        float(bool(body) and body[-1] == "?"),
        min(n_questions, 3) / 3,
        float(first in _QUERY_STARTERS),
        float(any(p in lowered for p in _QUERY_PHRASES)),
        float(negations > 0),
        min(negations, 3) / 3,
        float(bool(words & _DENY_WORDS)),
        float(any(p in lowered for p in _DENY_PHRASES)),
        float(support_word and negations > 0),
        float(support_word),
        float(any(p in lowered for p in _SUPPORT_PHRASES)),
        float("<url>" in reply.tokens),
        float("rt" in reply.tokens[:1] or " rt @" in f" {lowered}"),
        float('"@' in reply.raw or "“@" in reply.raw),
        float("!" in reply.tokens),
        caps,
        min(math.log1p(len(body)) / math.log(50), 1.0),
        min(reply.tokens.count("<user>"), 3) / 3,
        float(reply.hashtag),
        overlap,
        float(overlap > 0),
        float(target is not None and "?" in target.tokens),
    ]


def featurize(
    text: str, target: str | None, depth: int, config: FeatureConfig
) -> tuple[IndexArray, FloatArray]:
    """The sparse feature vector of one post as ``(column indices, values)``, sorted, unique.

    Each family (words, character n-grams, target words) is a set of hashed columns sharing
    ``scale / sqrt(size)``; a column two families hash to gets both shares, added in that
    order."""
    reply = _analyse(text)
    tgt = _analyse(target) if target is not None and depth > 0 else None
    row: dict[int, float] = {i: v for i, v in enumerate(_cues(reply, tgt, depth)) if v}
    mask = (1 << config.hash_bits) - 1

    def add_block(columns: set[int], scale: float = 1.0) -> None:
        if not columns:
            return
        value = scale / math.sqrt(len(columns))
        earlier = {c: row[c] for c in row.keys() & columns}
        row.update(dict.fromkeys(columns, value))
        for c, v in earlier.items():
            row[c] = v + value

    body = reply.body
    if config.words:
        padded = ("<s>", *body, "</s>")
        bigrams = (f"{a} {b}" for a, b in pairwise(padded))
        add_block({_N_CUES + (_hash("w", f) & mask) for f in (*body, *bigrams)})
    if config.chars:
        chars: set[int] = set()
        for t in body:
            if not t.startswith("<"):
                chars.update(_char_columns(t, config.char_min, config.char_max, mask))
        add_block(chars)
    if config.target and tgt is not None:
        add_block({_N_CUES + (_hash("t", f) & mask) for f in _content(tgt.body)}, 0.5)
    ordered = sorted(row)
    columns = np.array(ordered, dtype=np.int64)
    values = np.array([row[c] for c in ordered], dtype=np.float32)
    return columns, values


@dataclass(frozen=True, slots=True)
class SparseRows:
    """A CSR-style batch: row ``i`` is ``indices[indptr[i]:indptr[i+1]]`` with ``data``."""

    indptr: IndexArray
    indices: IndexArray
    data: FloatArray
    n_cols: int

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    def dot(self, weights: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """``X @ W``. Every row is non-empty (the bias column), as ``reduceat`` requires."""
        contrib = weights[self.indices] * self.data[:, None]
        out: npt.NDArray[Any] = np.add.reduceat(contrib, self.indptr[:-1], axis=0)
        return out

    def tdot(self, grad: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """``X.T @ G`` as one ``bincount`` per column of ``G`` (deterministic summation)."""
        rows = np.repeat(np.arange(self.n_rows), np.diff(self.indptr))
        contrib = self.data[:, None].astype(np.float64) * grad[rows]
        return np.stack(
            [
                np.bincount(self.indices, weights=contrib[:, k], minlength=self.n_cols)
                for k in range(grad.shape[1])
            ],
            axis=1,
        )


def featurize_many(
    items: Iterable[tuple[str, str | None, int]], config: FeatureConfig
) -> SparseRows:
    """Featurize ``(text, target, depth)`` triples into one :class:`SparseRows` batch."""
    columns: list[IndexArray] = []
    values: list[FloatArray] = []
    indptr = [0]
    for text, target, depth in items:
        c, v = featurize(text, target, depth, config)
        columns.append(c)
        values.append(v)
        indptr.append(indptr[-1] + len(c))
    return SparseRows(
        indptr=np.asarray(indptr, dtype=np.int64),
        indices=np.concatenate(columns) if columns else np.zeros(0, dtype=np.int64),
        data=np.concatenate(values) if values else np.zeros(0, dtype=np.float32),
        n_cols=config.n_features,
    )


def softmax(logits: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]:
    """Row-wise softmax in float64."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


class StanceModel:
    """A trained stance model; immutable once built, so safe to share between threads."""

    def __init__(
        self,
        weights: FloatArray,
        config: FeatureConfig,
        labels: Sequence[str] = LABELS,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        if weights.shape != (config.n_features, len(labels)):
            raise ValueError(
                f"weights have shape {weights.shape}, expected {(config.n_features, len(labels))}"
            )
        self.weights: FloatArray = np.array(weights, dtype=np.float32, copy=True)
        self.weights.setflags(write=False)
        self.config = config
        self.labels: tuple[str, ...] = tuple(labels)
        self.meta: dict[str, Any] = dict(meta or {})

    @classmethod
    def load(cls, path: Path | None = None) -> StanceModel:
        """Load a model file; without ``path``, the model shipped inside the package.

        Raises :class:`~firesift.errors.NotFound` if the file does not exist and
        :class:`ModelFileError` if it is damaged or from another format or feature version.
        """
        if path is None:
            ref = resources.files("firesift.answer").joinpath(SHIPPED_MODEL)
            with resources.as_file(ref) as shipped:
                return cls._read(Path(shipped))
        return cls._read(Path(path))

    @classmethod
    def _read(cls, path: Path) -> StanceModel:
        if not path.is_file():
            raise NotFound(f"stance model not found: {path} (train one with firesift train-stance)")
        hint = "retrain it with `firesift train-stance` or reinstall firesift"
        try:
            with path.open("rb") as fh, np.load(fh, allow_pickle=False) as archive:
                meta = json.loads(bytes(archive["meta"]).decode())
                weights = np.asarray(archive["weights"])
        except (
            OSError,
            ValueError,
            KeyError,
            EOFError,
            AttributeError,
            TypeError,
            zipfile.BadZipFile,
            UnicodeError,
        ) as exc:
            raise ModelFileError(
                f"not a readable stance model ({exc}); {hint}", where=str(path)
            ) from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ModelFileError(f"not a {FORMAT} model file; {hint}", where=str(path))
        for key, expected in (
            ("format_version", FORMAT_VERSION),
            ("feature_version", FEATURE_VERSION),
        ):
            if meta.get(key) != expected:
                raise ModelFileError(
                    f"{key} is {meta.get(key)!r} but this firesift reads {expected}; {hint}",
                    where=str(path),
                )
        try:
            config = FeatureConfig.from_dict(meta["features"])
            labels = [str(x) for x in meta["labels"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(
                f"incomplete model metadata ({exc}); {hint}", where=str(path)
            ) from exc
        if sorted(labels) != sorted(LABELS):
            raise ModelFileError(f"unexpected labels {labels}; {hint}", where=str(path))
        if weights.dtype != np.float32 or weights.shape != (config.n_features, len(labels)):
            raise ModelFileError(
                f"weights are {weights.dtype}{list(weights.shape)}, expected float32"
                f"{[config.n_features, len(labels)]}; {hint}",
                where=str(path),
            )
        if not np.isfinite(weights).all():
            raise ModelFileError(f"weights contain NaN or infinity; {hint}", where=str(path))
        return cls(weights, config, labels, meta)

    def save(self, path: Path) -> int:
        """Write the model to ``path`` (atomically) and return the file's size in bytes."""
        meta = {
            **self.meta,
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "feature_version": FEATURE_VERSION,
            "labels": list(self.labels),
            "features": self.config.to_dict(),
        }
        blob = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as fh:
            np.savez_compressed(fh, meta=blob, weights=self.weights)
        tmp.replace(path)
        return path.stat().st_size

    def probabilities(self, rows: SparseRows) -> npt.NDArray[np.float64]:
        """Label probabilities for a featurized batch, columns in :attr:`labels` order."""
        if rows.n_rows == 0:
            return np.zeros((0, len(self.labels)))
        return softmax(rows.dot(self.weights))

    def predict(self, text: str, target: str | None = None, *, depth: int = 1) -> StanceResult:
        """The stance of ``text`` towards the claim ``target``.

        ``depth`` is where the post sits in the claim's thread: ``0`` the claim itself, ``1`` a
        direct reply (the default), ``2`` or more a reply to a reply.
        """
        return self.predict_many([text], [target], [depth])[0]

    def predict_many(
        self,
        texts: Sequence[str],
        targets: Sequence[str | None] | None = None,
        depths: Sequence[int] | None = None,
    ) -> list[StanceResult]:
        """Batch :meth:`predict`; ``targets`` and ``depths`` default to ``None`` and ``1``."""
        n = len(texts)
        targets = [None] * n if targets is None else targets
        depths = [1] * n if depths is None else depths
        if len(targets) != n or len(depths) != n:
            raise ValueError("texts, targets and depths must have the same length")
        probs = self.probabilities(
            featurize_many(zip(texts, targets, depths, strict=True), self.config)
        )
        labels = self.labels
        return [
            StanceResult(labels[int(p.argmax())], dict(zip(labels, map(float, p), strict=True)))
            for p in probs
        ]
