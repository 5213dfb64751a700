"""The reply-stance model: the shipped file, its dev-split quality, training determinism and
the errors a bad model file gives."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from firesift.answer.stance import (
    FEATURE_VERSION,
    LABELS,
    FeatureConfig,
    ModelFileError,
    StanceModel,
    featurize,
)
from firesift.answer.train_stance import evaluate, load_examples, metrics, train
from firesift.errors import FiresiftError, NotFound

CLAIM = "Germanwings A320 has crashed in the French Alps with 148 people on board"


@pytest.fixture(scope="module")
def model() -> StanceModel:
    return StanceModel.load()


@pytest.fixture(scope="module")
def rumoureval(real_data: Path) -> Path:
    return real_data / "rumoureval2017"


def test_shipped_model_predicts_a_distribution(model: StanceModel) -> None:
    result = model.predict("@cnnbrk Oh my god, thoughts with the families", CLAIM)
    assert result.label in LABELS
    assert set(result.probs) == set(LABELS)
    assert sum(result.probs.values()) == pytest.approx(1.0)
    assert result.label == max(result.probs, key=lambda k: result.probs[k])


def test_shipped_model_reaches_recorded_dev_quality(model: StanceModel, rumoureval: Path) -> None:
    dev = load_examples(rumoureval)["dev"]
    m = evaluate(model, dev)
    majority = metrics([LABELS.index(e.label) for e in dev], [LABELS.index("comment")] * len(dev))
    assert m.n == 281
    assert m.accuracy == pytest.approx(model.meta["dev"]["accuracy"])
    assert m.macro_f1 == pytest.approx(model.meta["dev"]["macro_f1"])
    assert m.accuracy > majority.accuracy + 0.08
    assert m.accuracy >= 0.72
    assert m.macro_f1 >= 0.60
    assert majority.macro_f1 < 0.25


@pytest.mark.parametrize("target", [CLAIM, None])
def test_obvious_denial_is_deny(model: StanceModel, target: str | None) -> None:
    probs = model.predict("This is fake, not true", target).probs
    assert probs["deny"] > probs["support"]
    assert max(probs, key=lambda k: probs[k]) == "deny"


def test_obvious_question_is_query(model: StanceModel) -> None:
    assert model.predict("@BBCBreaking is this true? source?", CLAIM).label == "query"


def test_predict_many_matches_predict_and_is_thread_safe(model: StanceModel) -> None:
    texts = [
        "This is fake, not true",
        "@user RIP to everyone on board",
        "Is this confirmed?",
        "Police have confirmed the crash http://t.co/abc",
    ] * 25
    targets: list[str | None] = [CLAIM, None] * 50
    depths = [1, 2] * 50
    batch = model.predict_many(texts, targets, depths)
    single = [model.predict(t, g, depth=d) for t, g, d in zip(texts, targets, depths, strict=True)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(
            pool.map(
                lambda i: model.predict(texts[i], targets[i], depth=depths[i]), range(len(texts))
            )
        )
    assert [r.label for r in batch] == [r.label for r in single] == [r.label for r in threaded]
    for a, b in zip(batch, threaded, strict=True):
        assert a.probs == pytest.approx(b.probs)
    with pytest.raises(ValueError):
        model.predict_many(["a", "b"], [None])


def test_features_use_stable_hashing() -> None:
    config = FeatureConfig(hash_bits=12)
    a = featurize("Is this TRUE? #Germanwings http://t.co/x", CLAIM, 1, config)
    b = featurize("Is this TRUE? #Germanwings http://t.co/x", CLAIM, 1, config)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert np.all(np.diff(a[0]) > 0)
    assert a[0][0] == 0 and a[0][-1] < config.n_features


def _subset(src: Path, dst: Path, n_train: int = 6, n_dev: int = 3) -> Path:
    """A small copy of RumourEval: whole threads, so every reply keeps its source tweet."""
    wanted: dict[str, int] = {"train": n_train, "dev": n_dev}
    chosen: set[str] = set()
    with (src / "threads.jsonl").open() as fh:
        for line in fh:
            thread = json.loads(line)
            if wanted.get(thread["split"], 0) > 0:
                wanted[thread["split"]] -= 1
                chosen.add(thread["thread_id"])
    dst.mkdir()
    for name, key in (("posts.jsonl", "thread_id"), ("threads.jsonl", "thread_id")):
        with (src / name).open() as fh, (dst / name).open("w") as out:
            out.writelines(line for line in fh if json.loads(line)[key] in chosen)
    return dst


def test_training_is_deterministic(rumoureval: Path, tmp_path: Path) -> None:
    data = _subset(rumoureval, tmp_path / "data")
    first = train(data, tmp_path / "a.npz", seed=3)
    second = train(data, tmp_path / "b.npz", seed=3)
    a, b = StanceModel.load(tmp_path / "a.npz"), StanceModel.load(tmp_path / "b.npz")
    assert np.array_equal(a.weights, b.weights)
    assert a.meta == b.meta
    one, two = first.to_dict(), second.to_dict()
    one.pop("train_seconds"), two.pop("train_seconds")
    one.pop("model_path"), two.pop("model_path")
    assert one == two
    assert one["n_train"] > 0 and one["n_dev"] > 0
    assert len(one["confusion"]) == len(LABELS)
    assert sum(map(sum, one["confusion"])) == one["n_dev"]
    assert set(one["per_class_f1"]) == set(LABELS)


def test_missing_model_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="train-stance"):
        StanceModel.load(tmp_path / "nope.npz")


def test_corrupt_model_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.npz"
    path.write_bytes(b"PK\x03\x04 definitely not a model")
    with pytest.raises(ModelFileError, match=r"broken\.npz") as info:
        StanceModel.load(path)
    assert isinstance(info.value, FiresiftError)
    assert "firesift train-stance" in str(info.value)


def _rewrite(model: StanceModel, path: Path, **meta: object) -> Path:
    blob = json.dumps({**model.meta, **meta}).encode()
    np.savez(path, meta=np.frombuffer(blob, dtype=np.uint8), weights=model.weights)
    return path


def test_model_from_another_feature_version_is_refused(model: StanceModel, tmp_path: Path) -> None:
    path = _rewrite(model, tmp_path / "old.npz", feature_version=FEATURE_VERSION + 1)
    with pytest.raises(ModelFileError, match="feature_version"):
        StanceModel.load(path)


def test_model_with_wrong_shape_is_refused(model: StanceModel, tmp_path: Path) -> None:
    features = {**model.config.to_dict(), "hash_bits": model.config.hash_bits - 1}
    path = _rewrite(model, tmp_path / "shape.npz", features=features)
    with pytest.raises(ModelFileError, match="expected float32"):
        StanceModel.load(path)


def test_round_trip_through_save(model: StanceModel, tmp_path: Path) -> None:
    size = model.save(tmp_path / "copy.npz")
    copy = StanceModel.load(tmp_path / "copy.npz")
    assert size == (tmp_path / "copy.npz").stat().st_size
    assert np.array_equal(copy.weights, model.weights)
    assert copy.predict("This is fake", CLAIM) == model.predict("This is fake", CLAIM)
