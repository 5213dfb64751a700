"""``firesift eval rerank``: MiniLM re-ranking of answer candidates, scored like the answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from firesift.cli import main
from firesift.database import Database
from firesift.evaluation import rerank_eval
from firesift.evaluation.answers_eval import load_questions


@pytest.fixture(scope="module")
def db(news_dir: Path) -> Iterator[Database]:
    database = Database(news_dir)
    yield database
    database.close()


def test_weight_zero_is_retrievals_own_order(db: Database) -> None:
    items = [q for q in load_questions() if q.get("kind", "answer") == "answer"][:4]
    result = rerank_eval.evaluate(db, items)
    assert result["questions"] == 4
    recall = result["evidence_recall@10"]
    assert set(recall) == {str(w) for w in rerank_eval.WEIGHTS}
    assert all(0.0 <= r <= 1.0 for r in recall.values())
    for h in result["held_out"].values():
        assert h["weight"] in rerank_eval.WEIGHTS and 0.0 <= h["recall"] <= 1.0
    assert result["encode_ms"]["p50"] > 0


def test_the_cli_rejects_an_unknown_evaluation(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["eval", "reranking", "--json"])
    assert exc.value.code == 2
    assert "rerank" in capsys.readouterr().err


def test_the_cli_runs_it_on_a_data_directory(
    news_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    few = [q for q in load_questions() if q.get("kind", "answer") == "answer"][:2]
    monkeypatch.setattr(rerank_eval, "load_questions", lambda: few)
    assert main(["eval", "rerank", "--data", str(news_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["questions"] == 2
