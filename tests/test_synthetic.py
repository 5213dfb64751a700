"""The synthetic load stream keeps the shape of the real corpus where benchmarks depend on it."""

from __future__ import annotations

import gzip
import importlib.resources
import io
import statistics

from firesift.formats.reader import Problem, read
from firesift.post import Post
from firesift.synthetic import SyntheticStream
from firesift.trends import extract


def _posts(data: bytes) -> list[Post]:
    out: list[Post] = []
    for item in read(io.BytesIO(data), name="posts"):
        assert not isinstance(item, Problem), item
        out.extend(e for e in item.events if isinstance(e, Post))
    return out


def test_synthetic_posts_have_as_many_trend_terms_as_real_ones() -> None:
    raw = importlib.resources.files("firesift.demo").joinpath("corpus.jsonl.gz").read_bytes()
    real = _posts(gzip.decompress(raw))
    synthetic = _posts(b"".join(SyntheticStream(seed=3).lines(5000)))
    real_terms = statistics.mean(len(extract(p).terms) for p in real)
    synthetic_terms = statistics.mean(len(extract(p).terms) for p in synthetic)
    # the trends benchmark's cost is per term: synthetic posts must not be much cheaper
    assert 1.0 <= synthetic_terms / real_terms <= 1.3
    real_tokens = statistics.mean(len(p.text.split()) for p in real)
    synthetic_tokens = statistics.mean(len(p.text.split()) for p in synthetic)
    assert 0.85 <= synthetic_tokens / real_tokens <= 1.15


def test_synthetic_stream_is_deterministic() -> None:
    assert list(SyntheticStream(seed=9).lines(50)) == list(SyntheticStream(seed=9).lines(50))
