"""``firesift eval claims``: hand-checked claims on the bundled news data, through the CLI."""

from __future__ import annotations

import json

import pytest

from firesift.cli import main
from firesift.evaluation.claims_eval import load_questions


def test_eval_claims_scores_every_grouping_against_the_hand_checks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["eval", "claims", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    questions = load_questions()
    assert result["questions"] == len(questions) >= 5
    groupings = result["groupings"]
    assert {"points", "claims"} <= set(groupings)
    for name, g in groupings.items():
        rows = [q[name] for q in result["per_question"]]
        assert g["recall"] == pytest.approx(sum(r["recall"] for r in rows) / len(rows), abs=1e-3)
        assert g["leads"] == sum(r["leads"] for r in rows)
        assert all(0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1 for r in rows)
    # Claims count the Zehaf-Bibeau reports together and show the rival name; the old
    # word-overlap points gave each report its own line.
    ottawa = next(q for q in result["per_question"] if q["id"] == "ottawa-identified")
    assert ottawa["claims"]["recall"] == 1.0 and ottawa["claims"]["rival"] is True
    assert ottawa["points"]["recall"] < 0.5 and ottawa["points"]["rival"] is False
    assert groupings["claims"]["recall"] > groupings["points"]["recall"]
    assert groupings["claims"]["account_error"] < groupings["points"]["account_error"]
