"""firesift.semantic: the numpy all-MiniLM-L6-v2 against the sentence-transformers reference
(tests/fixtures/semantic), the distilled static model against the full one on real posts, the
not-installed path, and the embed bench."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from firesift import semantic
from firesift.errors import NotFound
from firesift.semantic import minilm
from firesift.semantic.bench import bench_embed
from firesift.semantic.static import StaticModel

FIXTURE = Path(__file__).parent / "fixtures" / "semantic" / "reference.json"

# `make install` installs the model (requirements-model.lock); these tests need it.
assert semantic.available(), f"model not installed: {semantic.INSTALL_HINT}"


@pytest.fixture(scope="module")
def full() -> minilm.MiniLM:
    model = semantic.load("full")
    assert isinstance(model, minilm.MiniLM)
    return model


@pytest.fixture(scope="module")
def static_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("firesift-cache") / "firesift"


@pytest.fixture(scope="module")
def static(full: minilm.MiniLM, static_cache: Path) -> StaticModel:
    return StaticModel.load(full, cache_dir=static_cache)


@pytest.fixture(scope="module")
def sources(real_data: Path) -> list[dict[str, str]]:
    """The RumourEval source tweets: one per conversation, eight news events."""
    lines = (real_data / "rumoureval2017/posts.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    return [r for r in rows if r["is_source"]]


def test_matches_sentence_transformers_reference(full: minilm.MiniLM) -> None:
    ref = json.loads(FIXTURE.read_text())
    full.batch_size = 3  # several padded batches, sorted by length, returned in order
    try:
        emb = full.encode(ref["texts"])
    finally:
        full.batch_size = 32
    assert emb.shape == (8, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(emb[:, :8], np.array(ref["first8"]), atol=1e-3)
    np.testing.assert_allclose(emb @ emb.T, np.array(ref["cosine"]), atol=1e-3)
    assert [len(ids) for ids in full.tokenize(ref["texts"])] == ref["token_counts"]


def test_padding_does_not_change_an_embedding(full: minilm.MiniLM) -> None:
    ref = json.loads(FIXTURE.read_text())
    alone = full.encode(ref["texts"][2:3])
    with_longer = full.encode([ref["texts"][2], ref["texts"][5]])[0]
    np.testing.assert_allclose(alone[0], with_longer, atol=1e-5)
    assert full.encode([]).shape == (0, 384)


def test_full_model_separates_events(full: minilm.MiniLM, sources: list[dict[str, str]]) -> None:
    """Same-event source tweets are closer than different-event ones, on average, by far."""
    emb = full.encode([s["text"] for s in sources])
    events = np.array([s["event"] for s in sources])
    sims = emb @ emb.T
    same = events[:, None] == events[None, :]
    np.fill_diagonal(same, False)
    different = events[:, None] != events[None, :]
    assert sims[same].mean() > sims[different].mean() + 0.2


def test_static_model_agrees_with_full_on_real_posts(
    full: minilm.MiniLM, static: StaticModel, sources: list[dict[str, str]]
) -> None:
    texts = [s["text"] for s in sources]
    f, s = full.encode(texts), static.encode(texts)
    assert s.shape == (len(texts), static.dim) and s.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(s, axis=1), 1.0, atol=1e-5)
    # Pairwise similarities correlate with the full model's ...
    i, j = np.triu_indices(len(texts), 1)
    r = np.corrcoef((f @ f.T)[i, j], (s @ s.T)[i, j])[0, 1]
    assert r > 0.3, r  # 0.39 when written
    # ... and the static model's nearest neighbour shares the full model's event far more
    # often than chance (19% of the pairs here are same-event; the full model: 99.7%).
    events = np.array([x["event"] for x in sources])
    sims = s @ s.T
    np.fill_diagonal(sims, -np.inf)
    hit = (events[sims.argmax(axis=1)] == events).mean()
    assert hit > 0.6, hit  # 0.82 when written


def test_static_model_is_cached_and_keyed(
    full: minilm.MiniLM, static: StaticModel, static_cache: Path
) -> None:
    files = list(static_cache.glob("minilm-static-*.npy"))
    assert len(files) == 1
    again = StaticModel.load(full, cache_dir=static_cache)  # read, not rebuilt
    np.testing.assert_array_equal(again.vectors, static.vectors)
    assert static.vectors.shape == (full.word.shape[0], 256)
    empty = static.encode(["", "Germanwings Airbus A320 crashes"])
    assert not empty[0].any() and abs(np.linalg.norm(empty[1]) - 1) < 1e-5


def test_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == minilm.PACKAGE else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(minilm.importlib.util, "find_spec", find_spec)
    assert minilm.model_dir() is None
    assert semantic.available() is False
    with pytest.raises(NotFound, match=r"not installed.*requirements-model\.lock"):
        semantic.load("static")


def test_bench_embed_small(
    static: StaticModel, static_cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(static_cache.parent))  # reuse the built matrix
    result = bench_embed(tmp_path, 40, lambda _: None)
    assert result["static_built"] is False
    for key in (
        "full_model_load_s",
        "static_posts_per_s",
        "full_posts_per_s",
        "rerank50_median_ms",
        "rerank50_p95_ms",
        "model_package_mib",
        "venv_mib",
    ):
        assert result[key] > 0, key
    assert result["quality_posts"] == 40
    assert 0.5 < result["same_event_auc_full"] <= 1
    assert result["model_package_mib"] > 80  # the safetensors alone are 87 MiB
