"""Rumour veracity from the stream's evidence: PHEME 9 leave-one-event-out and RumourEval 2017
dev (``firesift eval veracity``).

The claim check (:func:`~firesift.answer.check.check_claim`) is scored as a veracity
classifier: a rumour's own text is the claim, the verdict maps to a label (``supported`` ->
true, ``disputed`` -> false, ``unverified`` and ``insufficient`` -> unverified) and the label is
compared with the annotators' veracity.

Method:

- **Stream.** One temporary database holds every RumourEval 2017 post (train and dev threads:
  source tweets and their replies) and every PHEME 9 source tweet, rumours and non-rumours (about
  9,000 distinct posts). That is all the evidence there is: replies for the rumours that are
  RumourEval threads, and for every rumour the other posts of the stream (later posts that
  confirm, correct or deny it, from any account, verified or not). PHEME's own reply threads are
  not in ``data/``.
- **Claims.** The tweet's text, less what the query syntax would read in it (links, a
  retweet prefix, quotes that would make a required phrase, ``-word`` exclusions, ``@`` of
  handles, which would become from-or-mention constraints): :func:`claim_text`.
- **As of.** Each claim is checked as of its source tweet's time plus ``AS_OF_HOURS`` (6 h,
  fixed for every item before any figure was seen: the claim check's "long unconfirmed"). Nothing
  created later is used (the check's as-of semantics).
- **Cached evidence.** Each item is checked once; the grid search re-decides over the cached
  per-role counts with :func:`~firesift.answer.check.decide`, once per distinct set of counts
  (the constants searched, :data:`GRID`, act only there; ``min_coverage`` and
  ``min_confidence`` shape the evidence itself and stay at their defaults).
- **Tuning.** A rule is chosen by macro-F1 over the three labels on *training* items only (ties:
  accuracy, then grid order), never on the items it is scored on. PHEME: leave one event out, nine
  folds; a fold's training items are the other eight events'. RumourEval 2017: tuned on the train
  threads, scored on the dev threads.
- **Scores.** Accuracy and macro-F1 (the unweighted mean of per-label F1, over the labels present
  in the gold or the predictions of the items scored: an event without true rumours is not
  charged for a label it cannot hold) with the confusion matrix (rows gold, columns predicted,
  :data:`LABELS` order); pooled figures are over every fold's held-out predictions. The
  **majority baseline** predicts the training items' most frequent label for every test item.
  The default :class:`~firesift.answer.check.Rule` is scored on the same items for comparison
  (its PHEME figure is in-sample: the defaults come from ``pooled_train_rule``, the rule the
  search picks on all PHEME rumours but the RumourEval dev threads).
- **Ablation.** ``without_new_constants``: the same search with ``reply_deny_weight`` 1 and
  ``report_weight`` 0, the rule as it was before those constants existed.

The stance model labelling replies was trained on RumourEval 2017 train replies' *stance*
(never veracity), so the RumourEval dev figures are clean of it; PHEME rumours that are
RumourEval train threads are labelled by a model that saw their replies' stance.
"""

from __future__ import annotations

import itertools
import re
import statistics
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from firesift.answer.check import CueStance, Rule, StancePredictor, check_claim, decide
from firesift.answer.model import VerdictLabel
from firesift.answer.train_stance import metrics
from firesift.database import Database
from firesift.errors import NotFound, ParseError
from firesift.evaluation import answers_eval
from firesift.pipeline import IngestSummary

__all__ = [
    "AS_OF_HOURS",
    "GRID",
    "LABELS",
    "Item",
    "as_label",
    "check_items",
    "choose_rule",
    "claim_text",
    "ingest",
    "load_pheme",
    "load_rumoureval",
    "loeo",
    "rules",
    "run",
    "score",
    "split_eval",
]

LABELS = ("true", "false", "unverified")
AS_OF_HOURS = 6.0
GRID: dict[str, tuple[float, ...]] = {
    "support_weight": (0.0, 0.5, 1.0),
    "verified_weight": (0.0, 1.0, 2.0),
    "min_support": (0.5, 1.0, 2.0, 3.0),
    "min_deny": (1.0, 2.0),
    "deny_ratio": (0.25, 0.5, 1.0),
    "reply_deny_weight": (0.0, 0.5, 1.0),
    "report_weight": (0.0, 0.5, 1.0),
}
"""The constants searched and their values (1,944 rules)."""

_BEFORE = {"reply_deny_weight": 1.0, "report_weight": 0.0}
"""The grid's new constants at the values that reproduce the rule before them (a denying reply
counts as a denying post; reporting accounts count for nothing): the ablation."""

_LABEL_OF: dict[VerdictLabel, str] = {
    "supported": "true",
    "disputed": "false",
    "unverified": "unverified",
    "insufficient": "unverified",
}


def as_label(verdict: VerdictLabel) -> str:
    """A verdict as a veracity label."""
    return _LABEL_OF[verdict]


@dataclass(slots=True)
class Item:
    """One labelled rumour and the evidence its check found (per-role counts)."""

    id: str
    event: str
    gold: str
    claim: str
    created_at: datetime
    roles: dict[str, dict[str, int]] = field(default_factory=dict)
    verdict: VerdictLabel = "insufficient"
    """The verdict under the default rule."""


_URL = re.compile(r"https?://\S+")
_RT = re.compile(r"^RT\s+@\w+:\s*")
_SYNTAX = re.compile(r"[\"“”]|(?<!\S)-(?=[#\w])|(?<![\w@])@(?=\w)")


def claim_text(text: str) -> str:
    """A tweet as a plain claim: no links, no retweet prefix, and none of the characters the
    query syntax reads (quotes make a required phrase, ``-word`` an exclusion, ``@handle`` a
    from-or-mention constraint; the handle stays as a word)."""
    return " ".join(_SYNTAX.sub("", _URL.sub(" ", _RT.sub("", text))).split())


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise NotFound(f"no such data file: {path}")
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def load_pheme(data: Path, events: Iterable[str] | None = None) -> list[Item]:
    """PHEME 9's labelled rumours (optionally only ``events``'), in file order."""
    keep = set(events) if events is not None else None
    return [
        Item(str(r["id"]), r["event"], r["veracity"], claim_text(r["text"]), _time(r["created_at"]))
        for r in _lines(data / "pheme9" / "source_tweets.jsonl")
        if r.get("is_rumour") and r.get("veracity") in LABELS
        if keep is None or r["event"] in keep
    ]


def load_rumoureval(data: Path) -> dict[str, list[Item]]:
    """RumourEval 2017's threads by split (``train``, ``dev``); an item's ``id`` is the thread's
    source tweet id."""
    out: dict[str, list[Item]] = {"train": [], "dev": []}
    for t in _lines(data / "rumoureval2017" / "threads.jsonl"):
        if t.get("veracity") in LABELS and t.get("split") in out:
            item = Item(
                str(t["thread_id"]),
                t["event"],
                t["veracity"],
                claim_text(t["source_text"]),
                _time(t["source_created_at"]),
            )
            out[t["split"]].append(item)
    return out


def ingest(db: Database, data: Path) -> IngestSummary:
    """The stream: RumourEval 2017 posts (with replies) and PHEME 9 source tweets."""
    return answers_eval.ingest(
        db, data / "rumoureval2017" / "posts.jsonl", data / "pheme9" / "source_tweets.jsonl"
    )


def check_items(
    db: Database,
    items: Sequence[Item],
    model: StancePredictor,
    *,
    hours: float = AS_OF_HOURS,
) -> None:
    """Check every item's claim as of its time + ``hours``; its roles and verdict are set."""
    for item in items:
        verdict = check_claim(
            db, item.claim, as_of=item.created_at + timedelta(hours=hours), model=model
        )
        item.roles = verdict.roles
        item.verdict = verdict.verdict


def rules(grid: dict[str, tuple[float, ...]] = GRID) -> list[Rule]:
    """Every rule of the grid (other constants at their defaults), in grid order."""
    names = list(grid)
    return [Rule(**dict(zip(names, v, strict=True))) for v in itertools.product(*grid.values())]


def score(gold: Sequence[str], pred: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 (over the labels in ``gold`` or ``pred``), per-label F1 and the
    confusion matrix (rows gold, columns predicted, :data:`LABELS` order)."""
    m = metrics([LABELS.index(g) for g in gold], [LABELS.index(p) for p in pred], LABELS)
    present = [label for label in LABELS if label in set(gold) | set(pred)]
    macro = statistics.fmean(m.per_class_f1[c] for c in present) if present else 0.0
    return {
        "n": m.n,
        "accuracy": round(m.accuracy, 4),
        "macro_f1": round(macro, 4),
        "f1": {k: round(v, 4) for k, v in m.per_class_f1.items()},
        "confusion": [list(row) for row in m.confusion],
    }


def _signature(roles: dict[str, dict[str, int]]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((f"{r}.{k}", n) for r, c in roles.items() for k, n in c.items()))


def _predictions(items: Sequence[Item], grid: Sequence[Rule]) -> list[list[str]]:
    """Each rule's label for each item: :func:`decide` once per distinct set of counts."""
    distinct: dict[tuple[tuple[str, int], ...], dict[str, dict[str, int]]] = {}
    keys = []
    for i in items:
        key = _signature(i.roles)
        distinct.setdefault(key, i.roles)
        keys.append(key)
    out = []
    for rule in grid:
        labels = {k: as_label(decide(roles, rule)) for k, roles in distinct.items()}
        out.append([labels[k] for k in keys])
    return out


def choose_rule(
    gold: Sequence[str], predictions: Sequence[Sequence[str]], train: Sequence[int]
) -> int:
    """The grid index with the best macro-F1 over :data:`LABELS` on the ``train`` positions
    (ties: accuracy, then the earlier rule)."""
    rows = list(train)
    k = len(LABELS)
    g = np.array([LABELS.index(gold[i]) for i in rows], dtype=np.int64)
    p = np.array([[LABELS.index(pred[i]) for i in rows] for pred in predictions], dtype=np.int64)
    # one confusion matrix per rule: counts of (rule, gold, predicted)
    cells = np.arange(len(p))[:, None] * k * k + g[None, :] * k + p
    confusion = np.bincount(cells.ravel(), minlength=len(p) * k * k).reshape(len(p), k, k)
    tp = np.diagonal(confusion, axis1=1, axis2=2)
    denom = confusion.sum(axis=2) + confusion.sum(axis=1)
    f1 = np.divide(2 * tp, denom, out=np.zeros(tp.shape), where=denom > 0)
    macro = np.round(f1.mean(axis=1), 9)
    accuracy = np.round(tp.sum(axis=1) / max(1, len(rows)), 9)
    order = np.lexsort((np.arange(len(p)), -accuracy, -macro))  # best first, then grid order
    return int(order[0])


def _majority(gold: Sequence[str], train: Sequence[int]) -> str:
    counts = Counter(gold[i] for i in train)
    return max(LABELS, key=lambda label: (counts[label], -LABELS.index(label)))


def _rule_dict(rule: Rule) -> dict[str, float]:
    return {k: v for k, v in asdict(rule).items() if k in GRID}


def loeo(items: Sequence[Item], grid: Sequence[Rule] | None = None) -> dict[str, Any]:
    """Leave-one-event-out over checked ``items`` (see the module docstring)."""
    grid = list(grid) if grid is not None else rules()
    gold = [i.gold for i in items]
    preds = _predictions(items, grid)
    events = sorted({i.event for i in items})
    held: list[int] = []
    tuned: list[str] = []
    majority: list[str] = []
    folds = []
    for event in events:
        test = [k for k, i in enumerate(items) if i.event == event]
        train = [k for k, i in enumerate(items) if i.event != event]
        if not train:
            continue
        chosen = choose_rule(gold, preds, train)
        base = _majority(gold, train)
        got = [preds[chosen][k] for k in test]
        held += test
        tuned += got
        majority += [base] * len(test)
        folds.append(
            {
                "event": event,
                "items": len(test),
                "train_items": len(train),
                "train_events": sorted({items[k].event for k in train}),
                "rule": _rule_dict(grid[chosen]),
                "train": score([gold[k] for k in train], [preds[chosen][k] for k in train]),
                **score([gold[k] for k in test], got),
                "majority_label": base,
                "majority": score([gold[k] for k in test], [base] * len(test)),
            }
        )
    held_gold = [gold[k] for k in held]
    return {
        "train_macro_f1": round(statistics.fmean(f["train"]["macro_f1"] for f in folds), 4),
        "folds": folds,
        "pooled": score(held_gold, tuned),
        "majority": score(held_gold, majority),
        "default_rule": score(held_gold, [as_label(items[k].verdict) for k in held]),
    }


def split_eval(
    train: Sequence[Item], test: Sequence[Item], grid: Sequence[Rule] | None = None
) -> dict[str, Any]:
    """Tune on ``train``, score on ``test`` (both checked)."""
    grid = list(grid) if grid is not None else rules()
    both = [*train, *test]
    gold = [i.gold for i in both]
    preds = _predictions(both, grid)
    positions = range(len(train))
    chosen = choose_rule(gold, preds, positions)
    base = _majority(gold, positions)
    test_gold = gold[len(train) :]
    return {
        "train_items": len(train),
        "items": len(test),
        "rule": _rule_dict(grid[chosen]),
        "train": score(gold[: len(train)], preds[chosen][: len(train)]),
        **score(test_gold, preds[chosen][len(train) :]),
        "majority_label": base,
        "majority": score(test_gold, [base] * len(test)),
        "default_rule": score(test_gold, [as_label(i.verdict) for i in test]),
    }


def _model() -> tuple[StancePredictor, str]:
    from firesift.answer.stance import StanceModel

    try:
        return StanceModel.load(), "shipped stance model"
    except (NotFound, ParseError) as exc:
        return CueStance(), f"keyword cues (stance model unavailable: {exc})"


def run(
    data: Path,
    *,
    events: Iterable[str] | None = None,
    hours: float = AS_OF_HOURS,
    rumoureval: bool = True,
) -> dict[str, Any]:
    """Evaluate veracity on ``data`` (the repository's ``data/``): PHEME 9 leave-one-event-out
    (optionally only ``events``) and RumourEval 2017 train -> dev."""
    items = load_pheme(data, events)
    threads = load_rumoureval(data) if rumoureval else {"train": [], "dev": []}
    model, stance = _model()
    with tempfile.TemporaryDirectory(prefix="firesift-veracity-") as tmp, Database(Path(tmp)) as db:
        summary = ingest(db, data)
        check_items(db, items, model, hours=hours)
        check_items(db, [*threads["train"], *threads["dev"]], model, hours=hours)
    grid = rules()
    dev_ids = {i.id for i in threads["dev"]}
    pool = [i for i in items if i.id not in dev_ids]
    pool_gold, pool_preds = [i.gold for i in pool], _predictions(pool, grid)
    chosen = choose_rule(pool_gold, pool_preds, range(len(pool)))
    unreported = [k for k, r in enumerate(grid) if r.report_weight == 0]
    quiet = unreported[
        choose_rule(pool_gold, [pool_preds[k] for k in unreported], range(len(pool)))
    ]
    out: dict[str, Any] = {
        "method": "veracity from the claim check's evidence; see firesift.evaluation.veracity_eval",
        "as_of_hours": hours,
        "stance": stance,
        "ingested": summary.ingested,
        "grid_rules": len(grid),
        "default_rule": _rule_dict(Rule()),
        "pheme": {"items": len(items), "labels": dict(Counter(i.gold for i in items))},
        "pooled_train_rule": _rule_dict(grid[chosen]),
        "pooled_train_rule_report_weight_0": _rule_dict(grid[quiet]),
        "pooled_train": {
            "rule": score(pool_gold, pool_preds[chosen]),
            "rule_report_weight_0": score(pool_gold, pool_preds[quiet]),
        },
    }
    before = [r for r in grid if all(getattr(r, k) == v for k, v in _BEFORE.items())]
    ablation: dict[str, Any] = {"fixed": _BEFORE, "grid_rules": len(before)}
    if items:
        out["pheme"].update(loeo(items, grid))
        old = loeo(items, before)
        ablation["pheme"] = {"train_macro_f1": old["train_macro_f1"], "pooled": old["pooled"]}
    if threads["dev"]:
        out["rumoureval2017"] = split_eval(threads["train"], threads["dev"], grid)
        old = split_eval(threads["train"], threads["dev"], before)
        ablation["rumoureval2017"] = {
            k: old[k] for k in ("rule", "train", "accuracy", "macro_f1", "confusion")
        }
    out["without_new_constants"] = ablation
    return out
