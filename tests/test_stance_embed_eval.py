"""``firesift eval stance --features minilm``: the MiniLM stance experiment on a subset of real
RumourEval 2017 threads (5 dev, 16 train, copied verbatim into a temporary folder), through
the CLI, checked against its own confusion matrices and against the shipped model's figures
from the same run."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from firesift import semantic
from firesift.cli import build_parser, main
from firesift.evaluation.stance_embed_eval import (
    ALPHA_GRID,
    FEATURES,
    L2_GRID,
    VARIANTS,
    CachedEncoder,
    features,
    paired_bootstrap,
    view,
)

assert semantic.available(), f"model not installed: {semantic.INSTALL_HINT}"

N_DEV, N_TRAIN = 5, 16


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@pytest.fixture(scope="module")
def subset(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first dev threads and train threads from every train event, with all their posts."""
    src = real_data / "rumoureval2017"
    threads = _rows(src / "threads.jsonl")
    dev = [t for t in threads if t["split"] == "dev"][:N_DEV]
    train: list[dict[str, Any]] = []
    events = sorted({t["event"] for t in threads if t["split"] == "train"})
    while len(train) < N_TRAIN:
        for event in events:
            rest = [t for t in threads if t["event"] == event and t not in train]
            if rest and len(train) < N_TRAIN:
                train.append(rest[0])
    keep = {t["thread_id"] for t in dev + train}
    out = tmp_path_factory.mktemp("rumoureval-subset")
    lines = (src / "threads.jsonl").read_text(encoding="utf-8").splitlines()
    (out / "threads.jsonl").write_text(
        "\n".join(x for x in lines if x and json.loads(x)["thread_id"] in keep) + "\n"
    )
    lines = (src / "posts.jsonl").read_text(encoding="utf-8").splitlines()
    (out / "posts.jsonl").write_text(
        "\n".join(x for x in lines if x and json.loads(x)["thread_id"] in keep) + "\n"
    )
    return out


@pytest.fixture(scope="module")
def result(subset: Path) -> Iterator[dict[str, Any]]:
    raw = io.BytesIO()
    buf = io.TextIOWrapper(raw, encoding="utf-8")  # out() writes to sys.stdout.buffer
    with redirect_stdout(buf):
        code = main(["eval", "stance", "--data", str(subset), "--features", "minilm", "--json"])
    buf.flush()
    assert code == 0
    yield json.loads(raw.getvalue())


def _f1s(confusion: list[list[int]]) -> list[float]:
    c = np.asarray(confusion)
    denom = c.sum(axis=0) + c.sum(axis=1)
    return [float(2 * c[i, i] / denom[i]) if denom[i] else 0.0 for i in range(len(c))]


def test_figures_match_their_confusion_matrices(result: dict[str, Any]) -> None:
    emb = result["minilm"]
    labels = result["labels"]
    gold = [result["gold_counts"].get(label, 0) for label in labels]
    assert emb["n"] == result["n"] > 20
    assert set(emb["variants"]) == set(VARIANTS)
    for name, v in emb["variants"].items():
        c = np.asarray(v["confusion"])
        assert c.sum(axis=1).tolist() == gold, name  # the same replies as the shipped model
        assert v["n"] == c.sum()
        assert v["accuracy"] == pytest.approx(np.trace(c) / c.sum(), abs=1e-4)
        f1s = _f1s(v["confusion"])
        assert list(v["per_class_f1"].values()) == pytest.approx(f1s, abs=1e-4)
        assert v["macro_f1"] == pytest.approx(np.mean(f1s), abs=1e-4)
        shipped_f1 = np.mean(_f1s(result["confusion"]))
        assert v["macro_f1_gain"] == pytest.approx(v["macro_f1"] - shipped_f1, abs=2e-4)
        assert v["bootstrap_gain"]["low"] <= v["bootstrap_gain"]["high"]
        assert len(v["search"]) == len(L2_GRID) * len(ALPHA_GRID)
        assert v["best_dev_macro_f1_any_setting"] >= v["macro_f1"] - 1e-4
        # choices are made on the dev replies, which are the replies scored: the chosen
        # setting's search entry is the figure reported
        h = v["hyperparameters"]
        entry = next(
            s for s in v["search"] if (s["l2"], s["alpha"]) == (h["l2"], h["class_weight_alpha"])
        )
        assert entry["macro_f1"] == pytest.approx(v["macro_f1"], abs=1e-4)
    head = emb["variants"][emb["headline"]]
    assert emb["headline"] == "reply+target" and emb["macro_f1"] == head["macro_f1"]


def test_shipped_figures_are_the_same_run(result: dict[str, Any], subset: Path) -> None:
    emb = result["minilm"]
    for key in ("n", "accuracy", "macro_f1", "confusion", "per_class_f1"):
        assert emb["shipped"][key] == result[key], key
    # every text embedded once: train and dev replies and their targets; the product path
    # (the same texts from the store) is all cache hits
    posts = _rows(subset / "posts.jsonl")
    by_id = {p["id"]: p for p in posts}
    texts = set()
    for p in posts:
        if p.get("stance") and not p["is_source"]:
            texts.update([p["text"], by_id[p["thread_id"]]["text"]])
    assert emb["embedded_texts"] == len(texts)
    assert emb["n_train"] + emb["n_dev_choice"] == sum(
        1 for p in posts if p.get("stance") and not p["is_source"]
    )
    assert emb["seconds"]["embed"] > 0 and emb["latency"]["minilm_one_reply_ms"] > 0


def test_view_shows_both_models(result: dict[str, Any]) -> None:
    console = Console(file=io.StringIO(), width=160, record=True)
    console.print(view(result["minilm"]))
    text = console.export_text()
    assert "shipped (hashed n-grams)" in text and "minilm: reply+target" in text
    assert f"{result['accuracy']:.3f}" in text
    assert f"{result['minilm']['accuracy']:.3f}" in text


def test_cli_features_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "trends", "--features", "minilm"]) == 2
    assert "applies to `firesift eval stance` only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "stance", "--features", "bert"])
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    flag = next(a for a in sub.choices["eval"]._actions if a.dest == "features")
    assert list(flag.choices or []) == ["shipped", *FEATURES]  # no drift from the module


def test_features_and_cache_on_real_posts(real_data: Path) -> None:
    posts = _rows(real_data / "rumoureval2017" / "posts.jsonl")[:6]
    encoder = CachedEncoder(semantic.load("full"))
    texts = [p["text"] for p in posts[1:]]
    target = posts[0]["text"]
    x = features(encoder, texts, [target] * len(texts))
    assert x.shape == (5, 3 * 384 + 1) and encoder.encoded == 6
    r, t = x[:, :384], x[:, 384:768]
    assert np.allclose(x[:, 768:1152], r * t) and np.allclose(x[:, -1], (r * t).sum(axis=1))
    assert np.allclose(np.linalg.norm(r, axis=1), 1.0, atol=1e-4)
    again = features(encoder, texts[:2], [None, target])
    assert encoder.encoded == 6  # all cached
    assert np.allclose(again[0, 384:768], 0.0) and np.allclose(again[1], x[1])


def test_paired_bootstrap_sees_a_real_difference() -> None:
    gold = [0, 1, 2, 3] * 30
    same = paired_bootstrap(gold, gold, gold)
    assert same == {"low": 0.0, "high": 0.0, "share_ahead": 0.0}
    worse = [3] * len(gold)
    better = paired_bootstrap(gold, worse, gold)
    assert better["low"] > 0.5 and better["share_ahead"] == 1.0
