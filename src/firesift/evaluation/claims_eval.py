"""Claim corroboration on the bundled news data: does the answer find the claim, count its
accounts right, and show the rival claim?

Each question of ``claims_questions.jsonl`` was checked by hand: the claim (a phrase every
supporting post contains, e.g. "Zehaf-Bibeau"), the ids of the posts that assert it (read one
by one in the store), how many distinct accounts they are, and the rival claim if the stream
carried one ("Michael Joseph Hall"). For each question the answer engine retrieves as it does
for ``firesift ask`` at the question's as-of; then each grouping under test groups the same
hits, and the claim holding most of the expected posts is scored:

- ``leads``: it is the first claim (the answer's headline);
- ``recall``: expected posts it holds / expected posts retrieval found (retrieval's own
  recall is reported apart, as ``retrieved``);
- ``precision``: its posts that are expected / its posts;
- ``account_error``: |accounts of its posts - the hand count of the expected posts
  retrieved| (accounts of reposts folded into its posts are reported apart, as
  ``folded_accounts``: no hand count covers them);
- ``rival``: the rival claim is a separate claim and paired as a conflict with it.

Groupings: ``points`` (the answer's grouping before claims: content-word Jaccard >= 0.5, the
baseline), ``claims`` (slots and paraphrase by words: :mod:`firesift.answer.claims`), and
``claims+minilm`` adding paraphrase by the full all-MiniLM-L6-v2 encoder of
:mod:`firesift.semantic` when it is installed (the static, distilled encoder is not tried:
its cosines barely separate paraphrases from other posts of the same event).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from firesift.answer.claims import Claim, Encode, conflicts, pool_claims
from firesift.answer.engine import AnswerEngine
from firesift.answer.evidence import EvidenceItem, EvidencePool
from firesift.answer.model import Message
from firesift.answer.understand import content_words
from firesift.database import Database
from firesift.evaluation import answers_eval
from firesift.evaluation.answers_eval import corpus_db

__all__ = ["evaluate", "load_questions", "points_baseline", "run"]

Grouping = Callable[[EvidencePool, Any], list[Claim]]


def load_questions(path: Path | None = None) -> list[dict[str, Any]]:
    """The hand-checked claims (default: the set shipped with firesift)."""
    return answers_eval.load_questions(path, shipped="claims_questions.jsonl")


def points_baseline(items: Sequence[EvidenceItem], sentences: Sequence[str]) -> list[Claim]:
    """The grouping the extractive answer used before claims: a sentence joins the first
    point whose content words overlap it by Jaccard >= 0.5; points in rank order."""
    points: list[tuple[set[str], Claim]] = []
    for item, sentence in zip(items, sentences, strict=True):
        if not sentence:
            continue
        words = set(content_words(sentence))
        same = next(
            (c for w, c in points if words and w and len(words & w) / len(words | w) >= 0.5),
            None,
        )
        if same is None:
            points.append((words, Claim(sentence, [item])))
        else:
            same.items.append(item)
    return [c for _, c in points]


def _groupings() -> dict[str, Callable[[EvidencePool, Any], list[Claim]]]:
    from firesift.answer.sentences import best_sentence
    from firesift.answer.understand import TermCoverage

    def sentences(pool: EvidencePool, u: Any) -> list[str]:
        stems = TermCoverage(u.terms, u.expansions)
        return [best_sentence(i.post.text, stems)[0] for i in pool.hits()]

    def with_encoder(encode: Encode | None) -> Grouping:
        return lambda pool, u: pool_claims(pool, u, encode=encode).claims

    out: dict[str, Grouping] = {
        "points": lambda pool, u: points_baseline(pool.hits(), sentences(pool, u)),
        "claims": with_encoder(None),
    }
    from firesift import semantic

    if semantic.available():
        out["claims+minilm"] = with_encoder(semantic.load("full").encode)
    return out


def _score(claims: list[Claim], item: dict[str, Any], found: set[str]) -> dict[str, Any]:
    expected = set(item["support"]) & found
    if not claims or not expected:
        return {"leads": False, "recall": 0.0, "precision": 0.0, "accounts": 0, "rival": False}
    k, best = max(
        enumerate(claims), key=lambda kc: (len({i.post.id for i in kc[1].items} & expected), -kc[0])
    )
    ids = {i.post.id for i in best.items}
    hit = ids & expected
    out: dict[str, Any] = {
        "leads": k == 0 and bool(hit),
        "recall": round(len(hit) / len(expected), 3),
        "precision": round(len(hit) / len(ids), 3),
        "accounts": len({i.post.author.id or i.author for i in best.items}),
        "folded_accounts": best.accounts - len({i.post.author.id or i.author for i in best.items}),
        "claim": best.sentence,
    }
    rival = item.get("rival")
    if rival:
        rival_ids = set(rival["support"]) & found
        r = max(
            range(len(claims)),
            key=lambda j: len({i.post.id for i in claims[j].items} & rival_ids),
        )
        paired = any({x.a, x.b} == {k, r} for x in conflicts(claims))
        separate = r != k and bool({i.post.id for i in claims[r].items} & rival_ids)
        out["rival"] = paired and separate
        out["rival_accounts"] = claims[r].accounts if separate else 0
    return out


def evaluate(db: Database, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    engine = AnswerEngine(db)
    groupings = _groupings()
    per: list[dict[str, Any]] = []
    for item in items:
        as_of = datetime.fromisoformat(item["as_of"].replace("Z", "+00:00"))
        ctx = engine.prepare([Message("user", item["question"])], as_of=as_of)
        found = {i.post.id for i in ctx.pool.hits()}
        expected = set(item["support"]) & found
        authors = {i.post.author.id or i.author for i in ctx.pool.hits() if i.post.id in expected}
        row: dict[str, Any] = {
            "id": item["id"],
            "retrieved": round(len(expected) / len(item["support"]), 3),
            "hand_accounts": len(authors),
            "rival_expected": bool(item.get("rival")),
        }
        for name, group in groupings.items():
            scored = _score(group(ctx.pool, ctx.understanding), item, found)
            scored["account_error"] = abs(scored["accounts"] - len(authors))
            row[name] = scored
        per.append(row)
    summary: dict[str, Any] = {}
    rivals = [r for r in per if r["rival_expected"]]
    for name in groupings:
        rows = [r[name] for r in per]
        summary[name] = {
            "leads": sum(r["leads"] for r in rows),
            "recall": round(sum(r["recall"] for r in rows) / len(rows), 3),
            "precision": round(sum(r["precision"] for r in rows) / len(rows), 3),
            "account_error": round(sum(r["account_error"] for r in rows) / len(rows), 3),
            "rivals_shown": sum(bool(r[name].get("rival")) for r in rivals),
        }
    return {
        "questions": len(per),
        "rivals_expected": len(rivals),
        "retrieved": round(sum(r["retrieved"] for r in per) / len(per), 3),
        "groupings": summary,
        "per_question": per,
    }


def run(source: Path | None = None, *, questions: Path | None = None) -> dict[str, Any]:
    """Ingest ``source`` (default: the shipped demo corpus) into a temporary database, or open
    the data directory ``source``, and score every grouping."""
    items = load_questions(questions)
    method = {"method": "hand-checked claims on the bundled news data; firesift.evaluation."
              "claims_eval"}  # fmt: skip
    with corpus_db(source) as (db, _):
        return {**method, **evaluate(db, items)}
