"""The answer path's fast implementations give exactly what the plain definitions give.

Each hot spot of an extractive answer (coverage of every candidate, near-duplicate joining,
tokenisers, stance features, the unbounded index search, streaming the header first) was
rewritten for speed; these tests compare each one with the straightforward version it
replaced, on random and real inputs, for equality (floats included), not closeness.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import combinations, pairwise
from pathlib import Path

import numpy as np
import pytest

from firesift.answer import retrieve, sentences, stance
from firesift.answer.engine import AnswerEngine
from firesift.answer.model import AnswerDelta, AnswerDone, Message
from firesift.answer.retrieve import _letter_words, _search
from firesift.answer.stance import FeatureConfig, StanceResult, featurize
from firesift.answer.understand import EXPANSION_CREDIT, PARAPHRASES, TermCoverage, fold
from firesift.database import Database
from firesift.errors import QueryError
from firesift.evaluation.answers_eval import ingest, load_questions
from firesift.post import to_ms
from firesift.query import Or, Query, Word
from firesift.rank import RankParams, _similar_pairs, prior_score, rank
from firesift.textnorm import dup_text, token_set

ALPHABET = [
    *"abcdefghij klmnop ABC 0123 _-'’.,:;!?#@/",
    "é",
    "Ö",
    "\u0301",
    "ß",
    "😀",
    "\u00a0",
    "\u2003",
    "\x1c",
    "\t",
    "\n",
    "K",
    "İ",
]
WORDS = [
    "gunman",
    "gunmen",
    "shooter",
    "shooting",
    "shot",
    "ottawa",
    "parliament",
    "identified",
    "named",
    "hostage-taker",
    "police",
    "cops",
    "rip",
    "uk",
    "Goële",
    "killed",
    "dead",
    "stopped",
    "second",
    "2nd",
]


def random_text(rng: random.Random, n: int = 40) -> str:
    if rng.random() < 0.5:
        return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, n)))
    parts = [rng.choice(WORDS + ALPHABET) for _ in range(rng.randint(0, 12))]
    prefix = rng.choice(["", "RT @cbc: ", "@a @b ", "BREAKING: "])
    return prefix + " ".join(parts) + rng.choice(["", " http://t.co/x", " #ottawa", "!"])


# --- coverage -------------------------------------------------------------------------------


def _stem(word: str) -> str:
    return word[: max(4, len(word) - 2)]


def reference_coverage(
    terms: dict[str, float],
    expansions: dict[str, tuple[str, ...]],
    weights: dict[str, float] | None,
    text: str,
) -> float:
    """TermCoverage as first written: scan every word for every stem."""

    def stems_of(term: str) -> tuple[str, ...]:
        parts = re.findall(r"\w+", fold(term))
        return tuple(_stem(p) if len(parts) == 1 else p for p in parts) or (term,)

    def has(words: set[str], stems: tuple[str, ...]) -> bool:
        return all(any(x.startswith(s) for x in words) for s in stems)

    scaled = {t: (weights or {}).get(t, w) for t, w in terms.items()}
    total = sum(scaled.values())
    if total <= 0:
        return 1.0
    alts = {
        t: [
            (stems_of(a), EXPANSION_CREDIT * min(scaled[t], (weights or {}).get(a, scaled[t])))
            for a in options
        ]
        for t, options in expansions.items()
        if t in scaled
    }
    words = set(re.findall(r"\w+", fold(text)))
    got = 0.0
    for t, w in scaled.items():
        if has(words, stems_of(t)):
            got += w
            continue
        got += max((c for s, c in alts.get(t, ()) if has(words, s)), default=0.0)
    return got / total


def test_term_coverage_equals_scanning_every_word() -> None:
    rng = random.Random(7)
    vocabulary = [*WORDS, "a", "ab", "x-y", "'", "naïve", "mh17", "isis"]
    for _ in range(400):
        terms = {rng.choice(vocabulary).lower(): rng.choice([0.5, 1.0, 1.5]) for _ in range(4)}
        expansions = {t: PARAPHRASES[t] for t in terms if t in PARAPHRASES}
        weights = (
            {w: rng.uniform(0.3, 3.0) for w in [*terms, *PARAPHRASES["gunman"]]}
            if rng.random() < 0.5
            else None
        )
        coverage = TermCoverage(terms, expansions, weights)
        for _ in range(20):
            text = random_text(rng)
            assert coverage(text) == reference_coverage(terms, expansions, weights, text), text


# --- tokenisers -----------------------------------------------------------------------------


def test_token_set_equals_the_words_of_dup_text() -> None:
    rng = random.Random(3)
    for _ in range(20_000):
        text = random_text(rng)
        assert token_set(text) == frozenset(re.findall(r"\w+", dup_text(text))), repr(text)


def test_letter_words_equal_the_regex() -> None:
    rng = random.Random(5)
    for _ in range(20_000):
        text = random_text(rng) + rng.choice(["", "\ud800", "\u212a"])
        assert _letter_words(text) == re.findall(r"[a-z]+", text.lower()), repr(text)


def test_reordered_patterns_match_as_first_written() -> None:
    first_written = {
        sentences._TRAILING_TAGS: re.compile(
            r"(?<=\S)(?<!\b(?:of|in|at|on|to))(?<!\bfor)(?<!\bfrom)(?<!\bnear)(?<!\bthe)"
            r"(?:\s+#\w+)+\s*$",
            re.IGNORECASE,
        ),
        sentences._HASH: re.compile(r"(?<![\w&])#(\w)"),
        retrieve._NAME: re.compile(
            r"\b([A-Z][a-z]+(?:[-'’][A-Za-z]+)?)\s+([A-Z][a-z]+(?:[-'’][A-Za-z]+)?)"
        ),
        retrieve._NUMBER: re.compile(r"(?<![\w:])\d[\d,.]*(?![\w:])"),
    }
    rng = random.Random(19)
    pieces = [
        *ALPHABET,
        "of",
        "OF",
        "the",
        "near",
        " #tag",
        "&#",
        "Ab Cd",
        "x9",
        "1,000",
        "٣",
        ":5",
    ]
    texts = ["Shooting of #Hamilton #Ottawa", "Pray for #Ottawa  ", "Cpl Nathan Cirillo, 24"]
    texts += ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 14))) for _ in range(20_000)]
    for fast, plain in first_written.items():
        for text in texts:
            assert [m.span() for m in fast.finditer(text)] == [
                m.span() for m in plain.finditer(text)
            ], (fast.pattern, text)


# --- near-duplicates ------------------------------------------------------------------------


def test_similar_pairs_propose_every_pair_that_passes() -> None:
    rng = random.Random(11)
    vocabulary = [f"w{i}" for i in range(30)]
    for threshold in (0.8, 0.5, 0.3, 1.0, 0.0, -0.5, 1.5, 0.7000000000000001):
        for _ in range(60):
            base = rng.sample(vocabulary, rng.randint(1, 12))
            sets = [
                frozenset(rng.sample(base, rng.randint(1, len(base))) + rng.sample(vocabulary, 2))
                for _ in range(rng.randint(0, 25))
            ]
            proposed = list(_similar_pairs(sets, threshold))
            assert len(proposed) == len(set(proposed))
            assert all(x < y for x, y in proposed)
            passing = {
                (x, y)
                for x, y in combinations(range(len(sets)), 2)
                if len(sets[x] & sets[y]) >= threshold * len(sets[x] | sets[y])
            }
            assert passing <= set(proposed), threshold


@dataclass(frozen=True)
class Cand:
    key: str
    score: float
    created_ms: int
    likes: int
    reposts: int
    dup: int
    orig: str


def test_rank_groups_equal_comparing_every_pair() -> None:
    rng = random.Random(13)
    vocabulary = [f"w{i}" for i in range(40)]
    for threshold in (0.8, 0.5, 0.0):
        params = RankParams(jaccard_threshold=threshold, jaccard_window=60)
        for _ in range(40):
            base = rng.sample(vocabulary, 10)
            texts = {}
            hits = []
            for i in range(rng.randint(1, 90)):
                key = f"x:{i}"
                words = rng.sample(base, rng.randint(3, 10)) + rng.sample(vocabulary, 1)
                texts[key] = " ".join(words) if rng.random() < 0.95 else "@only http://t.co/x"
                orig = f"x:{rng.randint(0, i)}" if rng.random() < 0.1 else key
                hits.append(Cand(key, rng.random(), rng.randint(0, 10**6), 0, 0, 0, orig))
            got = rank(hits, as_of_ms=10**6, limit=len(hits), texts=texts, params=params)
            want = reference_rank_groups(hits, texts, params)
            assert {h.key: set(h.collapsed_keys) for h in got.hits} == want


def reference_rank_groups(
    hits: list[Cand], texts: dict[str, str], p: RankParams
) -> dict[str, set[str]]:
    """Groups as first written: every pair of the window compared."""
    parent = list(range(len(hits)))

    def find(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        parent[max(ra, rb)] = min(ra, rb)

    by_orig: dict[str, int] = {}
    for i, h in enumerate(hits):
        union(i, by_orig.setdefault(h.orig, i))
    scores = [prior_score(h, as_of_ms=10**6, params=p) for h in hits]
    best = sorted(range(len(hits)), key=lambda i: -scores[i])[: p.jaccard_window]
    words = {i: token_set(texts[hits[i].key]) for i in best}
    for a_pos, a in enumerate(best):
        for b in best[a_pos + 1 :]:
            wa, wb = words[a], words[b]
            if not wa or not wb:
                continue
            small, large = sorted((len(wa), len(wb)))
            if small < p.jaccard_threshold * large:
                continue
            if len(wa & wb) >= p.jaccard_threshold * len(wa | wb):
                union(a, b)
    groups: dict[int, list[int]] = {}
    for i in range(len(hits)):
        groups.setdefault(find(i), []).append(i)
    out = {}
    for members in groups.values():
        first = min(members, key=lambda i: (hits[i].created_ms, hits[i].key))
        out[hits[first].key] = {hits[i].key for i in members if i != first}
    return out


# --- stance features ------------------------------------------------------------------------


def reference_featurize(
    text: str, target: str | None, depth: int, config: FeatureConfig
) -> tuple[list[int], list[float]]:
    """Stance features as first written: every n-gram hashed, every column added one by one."""
    reply = stance._analyse(text)
    tgt = stance._analyse(target) if target is not None and depth > 0 else None
    row = {i: v for i, v in enumerate(stance._cues(reply, tgt, depth)) if v}
    mask = (1 << config.hash_bits) - 1

    def add_block(namespace: str, features: list[str], scale: float = 1.0) -> None:
        columns = {stance._N_CUES + (stance._hash_text(namespace, f) & mask) for f in features}
        if columns:
            value = scale / math.sqrt(len(columns))
            for c in columns:
                row[c] = row.get(c, 0.0) + value

    body = reply.body
    if config.words:
        add_block("w", [*body, *(f"{a} {b}" for a, b in pairwise(("<s>", *body, "</s>")))])
    if config.chars:
        grams = [
            g
            for t in body
            if not t.startswith("<")
            for g in stance._char_grams(t, config.char_min, config.char_max)
        ]
        add_block("c", grams)
    if config.target and tgt is not None:
        add_block("t", sorted(stance._content(tgt.body)), 0.5)
    ordered = sorted(row)
    return ordered, [float(np.float32(row[c])) for c in ordered]


def test_stance_features_equal_hashing_every_ngram() -> None:
    rng = random.Random(17)
    configs = [FeatureConfig(), FeatureConfig(hash_bits=4, target=True), FeatureConfig(chars=False)]
    texts = [
        "@cbc Is this TRUE?? #Ottawa http://t.co/x not confirmed!!",
        "RT @a: Police say the gunman is dead. Praying for Ottawa",
        "That's not him, stop spreading fake news",
        "",
        *(random_text(rng) for _ in range(300)),
    ]
    for config in configs:
        for text in texts:
            target = rng.choice([None, texts[0], "The gunman has been identified?"])
            depth = rng.choice([0, 1, 2])
            columns, values = featurize(text, target, depth, config)
            want_columns, want_values = reference_featurize(text, target, depth, config)
            assert columns.tolist() == want_columns
            assert values.tolist() == want_values


# --- the index and the engine, on the shipped demo corpus -----------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    with Database(Path(tmp_path_factory.mktemp("speed-demo"))) as db:
        ingest(db)
        yield db


def test_open_ended_search_equals_the_bounded_one(demo: Database) -> None:
    newest = demo.store.stats().max_created_at
    assert newest is not None
    now = to_ms(newest)
    earlier = now - 3_600_000 * 24 * 30
    for words in (["ottawa", "gunman"], ["sydney", "hostages", "cafe", "police", "lindt"], ["x"]):
        query = Query(Or(tuple(Word(w) for w in words)))
        for as_of_ms in (now, earlier):
            bounded = demo.index.search(query, as_of_ms=as_of_ms, limit=50)
            for open_ended in (True, False):
                got = _search(demo, query, as_of_ms=as_of_ms, limit=50, open_ended=open_ended)
                assert [(h.key, h.score) for h in got] == [(h.key, h.score) for h in bounded]


def as_of_of(item: dict[str, str]) -> datetime:
    return datetime.fromisoformat(item["as_of"].replace("Z", "+00:00")).astimezone(UTC)


class Recorder:
    """A stance predictor that records when it was asked, relative to streamed events."""

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.model = stance.StanceModel.load()

    def predict_many(
        self,
        texts: Sequence[str],
        targets: Sequence[str | None] | None = None,
        depths: Sequence[int] | None = None,
    ) -> list[StanceResult]:
        self.events.append("stance")
        return self.model.predict_many(texts, targets, depths)


def test_streaming_sends_the_header_before_stances_and_the_claim_check(demo: Database) -> None:
    events: list[str] = []
    engine = AnswerEngine(demo, stance=Recorder(events))
    plain = AnswerEngine(demo)
    questions = [
        (q["question"], as_of_of(q)) for q in load_questions() if q.get("kind") == "answer"
    ]
    questions.append(
        ("Is it true that the Ottawa gunman was identified?", datetime(2014, 10, 23, tzinfo=UTC))
    )
    labelled = 0
    for question, as_of in questions:
        events.clear()
        pieces = []
        done = None
        for event in engine.stream([Message("user", question)], as_of=as_of):
            if isinstance(event, AnswerDelta):
                events.append("delta")
                pieces.append(event.text)
            else:
                assert isinstance(event, AnswerDone)
                done = event.answer
        assert done is not None and "".join(pieces) == done.text
        if "stance" in events:
            assert events.index("delta") < events.index("stance"), question
        # the same answer as preparing everything first
        ctx = plain.prepare([Message("user", question)], as_of=as_of)
        assert ctx.pending is None
        settled = list(plain.compose(ctx))[-1]
        assert isinstance(settled, AnswerDone) and settled.answer == done
        labelled += "stance" in events
    assert labelled, "some answers label reply stances"


def test_a_malformed_claim_operator_still_raises_before_any_event(demo: Database) -> None:
    engine = AnswerEngine(demo)
    with pytest.raises(QueryError):
        engine.stream(
            [Message("user", "Is it true that min_faves:lots the gunman was named?")],
            as_of=datetime(2014, 10, 23, tzinfo=UTC),
        )
