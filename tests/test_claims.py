"""Claims: grouping real news posts by what they assert, independent accounts, conflicts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from firesift.answer.accounts import account_kind
from firesift.answer.claims import Slot, conflicts, group_claims, read_slot
from firesift.answer.engine import AnswerEngine
from firesift.answer.evidence import EvidenceItem
from firesift.answer.model import Message
from firesift.database import Database
from firesift.post import Author, Post

LATE = datetime(2014, 10, 23, 0, 0, tzinfo=UTC)

# Real posts of 22 Oct 2014 (data/pheme9/source_tweets.jsonl), by id.
ZEHAF = {
    "525033778637721600": "@AP",
    "525044004287971329": "@cnnbrk",
    "525027317551079424": "@ABC",
    "525039208139087872": "@AJEnglish",
}
HALL = {"525039242771464193": "@NBCNightlyNews", "525040408653754368": "@TheAnonMessage"}
CIRILLO = "525025329916948481"


@pytest.fixture(scope="module")
def db(news_dir: Path) -> Iterator[Database]:
    database = Database(news_dir)
    yield database
    database.close()


def _posts(db: Database, ids: list[str]) -> list[Post]:
    found = db.store.get_many(("x", i) for i in ids)
    return [found[("x", i)] for i in ids]


def _items(posts: list[Post]) -> list[EvidenceItem]:
    return [EvidenceItem(n, p, score=1.0 / n) for n, p in enumerate(posts, start=1)]


def test_a_name_in_any_wording_fills_the_same_slot(db: Database) -> None:
    posts = _posts(db, [*ZEHAF, *HALL, CIRILLO])
    slots = [read_slot(p.text) for p in posts]
    assert all(s is not None for s in slots)
    assert [s.value.split()[-1] for s in slots if s] == [
        *["Zehaf-Bibeau"] * 4,
        "Hall",
        "Hall",
        "Cirillo",
    ]
    assert {s.subject for s in slots[:6] if s} == {"perpetrator"}
    assert slots[6] == Slot("identity", "victim", "Nathan Cirillo")


def test_counts_and_tolls_are_slots_and_plain_reports_are_not() -> None:
    # Real post texts (data/pheme9/source_tweets.jsonl: Ottawa and Charlie Hebdo events).
    several = read_slot(
        "Police in Canada have confirmed to NBC that multiple gunmen were involved in what"
        " appears to be coordinated series of shootings in #Ottawa"
    )
    one = read_slot(
        "Several MPs tweeting that lone gunman shot dead in Centre Block. All MPs reportedly"
        " safe. #cdnpoli #ottawa"
    )
    assert several == Slot("count", "gunman", "several")
    assert one == Slot("count", "gunman", "one")
    toll = read_slot(
        "At least 12 killed in today's attack on satirical magazine #CharlieHebdo in Paris,"
        " official says. http://t.co/zUfxcG3Rfs"
    )
    assert toll == Slot("toll", "dead", "12")
    assert read_slot("BREAKING NEWS: Soldier shot at National War Memorial in Ottawa") is None


def test_claims_count_accounts_and_pair_the_rival_name(db: Database) -> None:
    posts = _posts(db, [*ZEHAF, *HALL, CIRILLO])
    claims = group_claims(_items(posts), [p.text for p in posts])
    assert [c.accounts for c in claims] == [4, 2, 1]
    assert claims[0].kinds["news"] == 4
    assert {i.post.id for i in claims[1].items} == set(HALL)
    assert claims[1].kinds["anonymous"] == 1  # @TheAnonMessage
    (conflict,) = conflicts(claims)
    assert (conflict.a, conflict.b, conflict.about) == (0, 1, "who the suspect is")


def test_copies_and_reposts_are_not_independent(db: Database) -> None:
    (original,) = _posts(db, ["525033778637721600"])
    copier = replace(original, id="1", author=Author("99", "copier"))
    repost = replace(original, id="2", author=Author("98", "fan"), repost_of=original.key)
    claims = group_claims(
        _items([original, copier, repost]), [original.text] * 3, folded=lambda _: {"97"}
    )
    (claim,) = claims
    assert claim.accounts == 4 and claim.independent == 1


def test_an_encoder_joins_paraphrases_words_do_not(db: Database) -> None:
    import numpy as np

    a, b = _posts(db, ["525033778637721600", CIRILLO])
    same = np.array([[1.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    texts = ["Soldier shot at National War Memorial", "Uniformed Canadian soldier gunned down"]
    assert len(group_claims(_items([a, b]), texts)) == 2
    assert len(group_claims(_items([a, b]), texts, encode=lambda _: same)) == 1


def test_account_kinds() -> None:
    assert account_kind(Author("1", "CBCAlerts", "CBC News Alerts", True)) == "news"
    assert account_kind(Author("2", "OttawaPolice", "Ottawa Police", True)) == "official"
    assert account_kind(Author("3", "TheAnonMessage", "Anonymous")) == "anonymous"
    assert account_kind(Author("4", "jdoe", "Jane Doe", True)) == "verified"


def test_answer_claims_reach_the_json_with_valid_citations(db: Database) -> None:
    engine = AnswerEngine(db)
    answer = engine.answer([Message("user", "Has the Ottawa gunman been identified?")], as_of=LATE)
    data = answer.to_dict()
    claims = data["claims"]
    assert claims and claims[0]["accounts"] >= 6
    numbers = {c["n"] for c in data["citations"]}
    assert all(set(c["citations"]) <= numbers and c["citations"] for c in claims)
    rival = claims[0]["conflicts"][0]
    assert rival["about"] == "who the suspect is"
    assert "Hall" in claims[rival["claim"]]["claim"]


def test_the_configured_encoder_groups_claims_and_the_answer_says_so(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    question = [Message("user", "Has the Ottawa gunman been identified?")]
    plain = AnswerEngine(db).answer(question, as_of=LATE)
    assert plain.claims_grouping == "words" and plain.to_dict()["claims_grouping"] == "words"
    monkeypatch.setenv("FIRESIFT_CLAIMS_ENCODER", "minilm")
    engine = AnswerEngine(db)
    encode, note = engine.encoder()
    assert encode is not None and note is None
    answer = engine.answer(question, as_of=LATE)
    assert answer.claims_grouping == "words+minilm"
    assert "Zehaf-Bibeau" in answer.claims[0].text


def test_an_unknown_encoder_is_a_config_error(db: Database) -> None:
    from firesift.errors import ConfigError

    with pytest.raises(ConfigError, match="claims_encoder"):
        AnswerEngine(db, claims_encoder="word2vec")
