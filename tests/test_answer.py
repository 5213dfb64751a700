"""The answer engine on a database built from real RumourEval 2017 + PHEME posts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from rich.console import Console

from firesift.answer.citations import MARKER, markers
from firesift.answer.composer import ComposeContext, Composer
from firesift.answer.engine import AnswerEngine
from firesift.answer.extractive import clean_post_text
from firesift.answer.model import (
    VERDICTS,
    Answer,
    AnswerDelta,
    AnswerDone,
    AnswerEvent,
    Filters,
    Message,
)
from firesift.answer.render import render_answer
from firesift.answer.understand import TermCoverage, expand, understand
from firesift.database import Database
from firesift.errors import FiresiftError, NotFound, QueryError
from firesift.evaluation.answers_eval import bench_answer, load_questions, run
from firesift.post import to_ms

OTTAWA = datetime(2014, 10, 22, 23, 30, tzinfo=UTC)
LATE = datetime(2014, 10, 23, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def db(news_dir: Path) -> Iterator[Database]:
    database = Database(news_dir)
    yield database
    database.close()


@pytest.fixture(scope="session")
def engine(db: Database) -> AnswerEngine:
    return AnswerEngine(db)


def ask(engine: AnswerEngine, question: str, as_of: datetime, **kw: Any) -> Answer:
    return engine.answer([Message("user", question)], as_of=as_of, **kw)


def assert_valid_citations(db: Database, answer: Answer) -> None:
    assert markers(answer.text) and sorted(set(markers(answer.text))) == [
        c.n for c in answer.citations
    ]
    first = list(dict.fromkeys(markers(answer.text)))
    assert first == list(range(1, len(first) + 1))
    for c in answer.citations:
        stored = db.store.get(c.post.source, c.post.id)
        assert stored is not None
        assert to_ms(stored.created_at) <= to_ms(answer.as_of)


# --- understanding --------------------------------------------------------------------------


def test_time_expressions_resolve_against_as_of() -> None:
    now = datetime(2015, 3, 24, 15, 30, tzinfo=UTC)
    cases = {
        "what happened in the last hour in the Alps?": (now - timedelta(hours=1), None),
        "Germanwings news since 9am": (datetime(2015, 3, 24, 9, tzinfo=UTC), None),
        "What happened yesterday in Ottawa?": (
            datetime(2015, 3, 23, tzinfo=UTC),
            datetime(2015, 3, 24, tzinfo=UTC),
        ),
        "What was said on 22 October about Ottawa?": (
            datetime(2014, 10, 22, tzinfo=UTC),
            datetime(2014, 10, 23, tzinfo=UTC),
        ),
        "What is happening in Sydney right now?": (now - timedelta(hours=2), None),
    }
    for question, expected in cases.items():
        u = understand([Message("user", question)])
        assert u.time.bounds(now) == expected, question
    assert understand([Message("user", "Sydney siege right now")]).intent == "happening"


def test_operators_handles_and_hashtags_pass_through() -> None:
    u = understand(
        [Message("user", 'is @ottawapolice saying "second gunman" -hoax from:cbcnews #ottnews?')]
    )
    assert u.handles == ("ottawapolice",)
    assert "from:cbcnews" in u.operators and '"second gunman"' in u.operators
    assert "-hoax" in u.operators
    assert u.terms["ottnews"] > 1.0 and "hoax" not in u.terms


def test_follow_up_inherits_the_topic() -> None:
    u = understand(
        [
            Message("user", "Has the Ottawa gunman been identified?"),
            Message("assistant", "Yes [1]."),
            Message("user", "What about the second gunman?"),
        ]
    )
    assert u.followup
    assert u.terms["second"] == 1.0 and u.terms["ottawa"] == 0.5


def test_claim_intent_extracts_the_claim() -> None:
    u = understand([Message("user", "Is it true that Prince will play a secret show in Toronto?")])
    assert u.intent == "claim"
    assert u.claim == "Prince will play a secret show in Toronto"


def test_paraphrases_and_answer_types() -> None:
    u = understand([Message("user", "Is there a second shooter in Ottawa?")])
    assert "gunman" in u.expansions["shooter"] and "2nd" in u.expansions["second"]
    assert "gunman" not in u.terms  # paraphrases never become asked terms
    assert "identified" in expand({"named": 1.0})["named"]
    assert "named" not in expand({"named": 1.0, "identified": 1.0}).get("identified", ())
    who = understand([Message("user", "Who stopped the gunman in the Ottawa parliament?")])
    assert who.answer_type == "person" and "shot" in who.expansions["stopped"]
    many = understand([Message("user", "How many gunmen attacked Charlie Hebdo?")])
    assert many.answer_type == "count" and "many" not in many.terms
    assert understand([Message("user", "Is the Sydney siege over?")]).answer_type == ""


def test_term_coverage_credits_paraphrases_at_a_discount() -> None:
    u = understand([Message("user", "Is there a second shooter in Ottawa?")])
    cov = TermCoverage(u.terms, u.expansions)
    assert cov("Second shooter reported in #Ottawa") == 1.0
    assert cov("Reports of a 2nd gunman in Ottawa") == pytest.approx((1 + 0.7 + 0.7) / 3)
    assert cov("Nothing to see here") == 0.0
    # weights tilt coverage towards the specific term; a common paraphrase earns less
    weighted = TermCoverage(u.terms, u.expansions, {"second": 3.0, "shooter": 2.0, "ottawa": 1.0})
    assert weighted("second shooter") == pytest.approx(5 / 6)
    # hyphenated terms match their parts, accents are folded
    place = TermCoverage({"dammartin-en-goele": 1.0})
    assert place("Hostages taken in Dammartin-en-Goële") == 1.0
    assert place("shooting at Dammartin en Goele") == 1.0


def test_no_question_is_an_error(engine: AnswerEngine) -> None:
    with pytest.raises(QueryError):
        engine.answer([Message("assistant", "hello")])


# --- answers --------------------------------------------------------------------------------


def test_answer_is_grounded_cited_and_copied(db: Database, engine: AnswerEngine) -> None:
    answer = ask(engine, "Has the Ottawa gunman been identified?", OTTAWA)
    assert answer.grounded and answer.composer == "extractive"
    assert answer.as_of == OTTAWA
    assert_valid_citations(db, answer)
    assert any("Zehaf-Bibeau" in c.post.text for c in answer.citations)
    assert answer.text.startswith("As of 23:30 UTC on 22 Oct 2014: ")
    ev = answer.evidence
    assert ev.posts >= ev.accounts > 1 and ev.first_seen and ev.last_seen
    assert ev.last_seen <= OTTAWA
    cited = {c.n: clean_post_text(c.post.text) for c in answer.citations}
    for line in answer.text.splitlines()[1:]:
        if not MARKER.search(line) or line.startswith("Claim check"):
            continue
        if line.startswith("Conflicting reports on "):
            for value, n in re.findall(r"“([^”]+)” \(\d+ accounts?\) \[(\d+)\]", line):
                assert value in cited[int(n)], line
            continue
        sentence = MARKER.split(line.lstrip("- "))[0].strip().rstrip(".")
        assert any(sentence in cited[n] for n in markers(line)), line


def test_answer_counts_a_claim_by_its_accounts_and_shows_the_rival_claim(
    engine: AnswerEngine,
) -> None:
    """Seven posts from six news accounts name Michael Zehaf-Bibeau in different words: one
    claim, counted once per account, and the name two accounts gave instead is a conflict."""
    answer = ask(engine, "Has the Ottawa gunman been identified?", LATE)
    lines = answer.text.splitlines()
    head = lines[2]
    assert "Zehaf-Bibeau" in head
    accounts = int(re.search(r"\((\d+) accounts", head).group(1))  # type: ignore[union-attr]
    assert accounts >= 6 and "news organisations" in head
    conflict = next(x for x in lines if x.startswith("Conflicting reports on who the suspect"))
    assert "“Michael Joseph Hall” (2 accounts)" in conflict and "Zehaf-Bibeau" in conflict
    assert lines.index(conflict) > 2


def test_as_of_is_never_crossed(db: Database, engine: AnswerEngine) -> None:
    early = datetime(2014, 10, 22, 14, 30, tzinfo=UTC)
    answer = ask(engine, "Has the Ottawa gunman been identified?", early)
    assert_valid_citations(db, answer)
    assert all(c.post.created_at <= early for c in answer.citations)
    assert not any("Zehaf-Bibeau" in c.post.text for c in answer.citations)


def test_stream_deltas_concatenate_to_the_answer(engine: AnswerEngine) -> None:
    events = list(
        engine.stream(
            [Message("user", "What is happening in Sydney right now?")],
            as_of=datetime(2014, 12, 15, 1, 0, tzinfo=UTC),
        )
    )
    assert isinstance(events[-1], AnswerDone)
    deltas = [e.text for e in events[:-1] if isinstance(e, AnswerDelta)]
    assert len(deltas) == len(events) - 1 > 1
    assert "".join(deltas) == events[-1].answer.text


def test_follow_up_answers_about_the_second_gunman(db: Database, engine: AnswerEngine) -> None:
    answer = engine.answer(
        [
            Message("user", "Has the Ottawa gunman been identified?"),
            Message("user", "What about the second gunman?"),
        ],
        as_of=datetime(2014, 10, 22, 17, 0, tzinfo=UTC),
    )
    assert_valid_citations(db, answer)
    assert any("Ottawa" in c.post.text or "ottawa" in c.post.text for c in answer.citations)


def test_paraphrased_evidence_is_found(db: Database, engine: AnswerEngine) -> None:
    """The posts that answer say "Sgt at Arms Kevin Vickers ... shot one assailant", not
    "stopped the gunman"; "named" is answered by "identified"."""
    answer = ask(engine, "Who stopped the gunman in the Ottawa parliament?", OTTAWA)
    assert_valid_citations(db, answer)
    assert any("Vickers" in c.post.text for c in answer.citations[:3])
    hebdo = datetime(2015, 1, 8, 12, 0, tzinfo=UTC)
    named = ask(engine, "Have the Charlie Hebdo suspects been named?", hebdo)
    assert any("Kouachi" in c.post.text or "identified" in c.post.text for c in named.citations)


def test_happening_headline_is_a_fact_not_a_reaction(engine: AnswerEngine) -> None:
    answer = ask(engine, "What is happening in Ottawa?", datetime(2014, 10, 22, 15, 0, tzinfo=UTC))
    headline = answer.text.split("\n\n")[1].lower()
    assert "shot" in headline or "shooting" in headline, headline
    assert not any(w in headline for w in ("thoughts", "prayers", "fear")), headline


def test_filters_matching_nothing_say_so(engine: AnswerEngine) -> None:
    answer = ask(
        engine,
        "Has the Ottawa gunman been identified?",
        OTTAWA,
        filters=Filters(include_handles=("no_such_account_here",)),
    )
    assert not answer.grounded and not answer.citations
    assert "Nothing in the stream answers this" in answer.text
    assert "no posts matched the filters" in answer.warnings


def test_context_posts_and_citations_respect_every_filter(
    db: Database, engine: AnswerEngine
) -> None:
    question = "What happened at the National War Memorial in Ottawa?"
    at = datetime(2014, 10, 22, 14, 40, tzinfo=UTC)
    plain = ask(engine, question, at)
    replies = [
        i for i in engine.prepare([Message("user", question)], as_of=at).pool if i.role == "reply"
    ]
    assert replies, "the unfiltered pool pulls in replies"
    author = plain.citations[0].post.author.handle
    only = Filters(include_handles=(author,), max_results=3)
    ctx = engine.prepare([Message("user", question)], as_of=at, filters=only)
    assert ctx.pool.items and all(i.author.lower() == author.lower() for i in ctx.pool)
    answer = ask(engine, question, at, filters=only)
    assert 0 < len(answer.citations) <= 3
    assert {c.post.author.handle.lower() for c in answer.citations} == {author.lower()}
    assert answer.usage is None and "usage" not in answer.to_dict()
    repliers = {i.author for i in replies}
    excluded = Filters(exclude_handles=tuple(repliers))
    ctx = engine.prepare([Message("user", question)], as_of=at, filters=excluded)
    assert not {i.author for i in ctx.pool} & repliers
    other = Filters(sources=("bluesky",))
    assert not engine.prepare([Message("user", question)], as_of=at, filters=other).pool.items
    for n in (1, 3, 5):
        capped = ask(engine, question, at, filters=Filters(max_results=n))
        assert 0 < len(capped.citations) <= n
        assert_valid_citations(db, capped)


def test_archive_answers_as_of_its_newest_post(db: Database) -> None:
    engine = AnswerEngine(db, clock=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    newest = db.store.stats().max_created_at
    answer = engine.answer([Message("user", "What is happening with Germanwings?")])
    assert answer.as_of == newest
    assert any("archive" in w for w in answer.warnings)
    live = AnswerEngine(db, clock=lambda: newest + timedelta(minutes=5))  # type: ignore[operator]
    assert live.resolve_as_of(None) == (newest + timedelta(minutes=5), [])  # type: ignore[operator]


def test_unknown_composer_names_the_valid_ones(engine: AnswerEngine) -> None:
    with pytest.raises(NotFound, match="extractive"):
        engine.stream([Message("user", "Ottawa?")], as_of=OTTAWA, composer="nope")
    assert "extractive" in engine.composer_names()


class _Scripted(Composer):
    """A composer that writes what it is told, citing pool numbers (as an LLM would)."""

    name: ClassVar[str] = "scripted"

    def __init__(self, text: str) -> None:
        self.text = text

    def compose(self, ctx: ComposeContext) -> Iterator[AnswerEvent]:
        out = ctx.writer(flag_uncited=True)
        for piece in (self.text[:7], self.text[7:]):
            yield AnswerDelta(out.feed(piece))
        yield AnswerDelta(out.close())
        yield AnswerDone(out.answer())


def test_invented_markers_are_removed_and_uncited_flagged(db: Database) -> None:
    fake = _Scripted("The gunman was named [2]. Invented [99]. This one cites nothing here.")
    engine = AnswerEngine(db, composers={"scripted": fake})
    answer = ask(engine, "Has the Ottawa gunman been identified?", OTTAWA, composer="scripted")
    assert answer.text == "The gunman was named [1]. Invented. This one cites nothing here."
    assert len(answer.citations) == 1
    assert any("[99]" in w for w in answer.warnings)
    assert any(w == "uncited sentence: This one cites nothing here." for w in answer.warnings)


class _Liar(Composer):
    name: ClassVar[str] = "liar"

    def compose(self, ctx: ComposeContext) -> Iterator[AnswerEvent]:
        yield AnswerDone(Answer("never streamed [1]", (), ctx.as_of, ctx.pool.stats()))


def test_engine_refuses_a_composer_whose_stream_differs(db: Database) -> None:
    engine = AnswerEngine(db, composers={"liar": _Liar()})
    with pytest.raises(FiresiftError, match="streamed text differs"):
        ask(engine, "Has the Ottawa gunman been identified?", OTTAWA, composer="liar")


def test_tools_respect_as_of_and_add_to_the_pool(engine: AnswerEngine) -> None:
    as_of = datetime(2014, 10, 22, 15, 0, tzinfo=UTC)
    ctx = engine.prepare([Message("user", "Ottawa shooting")], as_of=as_of)
    found = ctx.tools.search_posts("gunman", from_=None, limit=5)
    thread = ctx.tools.get_thread("x:524932935137628160")
    for post in [*found, *thread]:
        assert post.created_at <= as_of
        assert ctx.pool.number_of(post) is not None


def test_render_answer_links_markers_and_keeps_post_markup_literal(
    engine: AnswerEngine,
) -> None:
    answer = ask(engine, "Has the Ottawa gunman been identified?", OTTAWA)
    console = Console(width=120, record=True, force_terminal=True)
    console.print(render_answer(answer))
    exported = console.export_text(clear=False)
    assert "Sources" in exported and f"@{answer.citations[0].post.author.handle}" in exported
    assert answer.citations[0].post.url
    assert "\x1b]8;id=" in console.export_text(styles=True)
    assert clean_post_text("RT @x: BREAKING: [bold]now[/bold] [2] #a #b") == "[bold]now[/bold]"
    hostile = Answer("[bold]loud[/bold] [1]", answer.citations[:1], OTTAWA, answer.evidence)
    console.print(render_answer(hostile))
    assert "[bold]loud[/bold]" in console.export_text()


# --- claim checks ---------------------------------------------------------------------------


def test_claim_check_groups_evidence_by_stance(engine: AnswerEngine) -> None:
    as_of = datetime(2015, 3, 24, 13, 0, tzinfo=UTC)
    verdict = engine.check("A Germanwings Airbus A320 crashed in the French Alps", as_of=as_of)
    assert verdict.verdict in VERDICTS and verdict.verdict != "insufficient"
    assert set(verdict.counts) == {"support", "deny", "query", "comment"}
    assert verdict.counts["support"]["accounts"] >= 2
    assert all(e.post.created_at <= as_of for e in verdict.evidence)
    data = verdict.to_dict()
    assert data["verdict"] == verdict.verdict and data["evidence"][0]["stance"]


def test_claim_without_posts_is_insufficient(engine: AnswerEngine) -> None:
    verdict = engine.check("purple elephants parade on Mars", as_of=OTTAWA)
    assert verdict.verdict == "insufficient" and not verdict.evidence


def test_is_it_true_questions_carry_a_claim_check(db: Database, engine: AnswerEngine) -> None:
    answer = ask(
        engine,
        "Is it true that Prince will play a secret show in Toronto?",
        datetime(2014, 11, 4, 20, 0, tzinfo=UTC),
    )
    assert "Claim check:" in answer.text
    assert_valid_citations(db, answer)


# --- evaluation -----------------------------------------------------------------------------


def test_question_set_is_real_and_large_enough(db: Database) -> None:
    items = load_questions()
    answers = [i for i in items if i["kind"] == "answer"]
    assert len(answers) >= 40
    for item in answers:
        as_of = datetime.fromisoformat(item["as_of"].replace("Z", "+00:00"))
        found = db.store.get_many(("x", pid) for pid in item["relevant"])
        assert len(found) == len(item["relevant"]) > 0, item["id"]
        assert all(p.created_at <= as_of for p in found.values()), item["id"]


def test_eval_run_reports_valid_citations(tmp_path: Path) -> None:
    items = [i for i in load_questions() if i["id"] in {"ottawa-identified", "claim-gw-crash"}]
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    report = run(questions=path)
    assert report["questions"] == 1 and report["ingested"] > 9000
    assert report["citation_validity"] == 1.0
    assert report["recall@10"] > 0.5
    assert report["claims"]["items"] == 1


def test_bench_answer_reports_percentiles(db: Database) -> None:
    out = bench_answer(db, [("Ottawa gunman", OTTAWA), "Sydney siege"], warmup=1)
    assert out["answers"] == 2 and out["p99_ms"] >= out["p50_ms"] > 0


def test_sentences_do_not_split_after_titles() -> None:
    from firesift.answer.extractive import split_sentences

    text = "The soldier has been named as Cpl. Nathan Cirillo. More soon! Sgt. at Arms shot him."
    assert split_sentences(text) == [
        "The soldier has been named as Cpl. Nathan Cirillo.",
        "More soon!",
        "Sgt. at Arms shot him.",
    ]


def test_closing_hashtags_kept_when_the_sentence_needs_them() -> None:
    from firesift.answer.extractive import clean_post_text

    assert clean_post_text("Soldier named as Cpl. Nathan Cirillo of #Hamilton") == (
        "Soldier named as Cpl. Nathan Cirillo of Hamilton"
    )
    assert clean_post_text("Soldier shot at the memorial #ottawa #cdnpoli") == (
        "Soldier shot at the memorial"
    )


def test_repeating_a_rumour_reports_it_and_does_not_support_it(engine: AnswerEngine) -> None:
    """PHEME labels the "numerous gunmen" reports false: relayed by a dozen accounts, the
    claim is reported, not supported, and the reason says so."""
    as_of = datetime(2014, 10, 22, 20, 0, tzinfo=UTC)
    verdict = engine.check("a second gunman is on the loose in Ottawa", as_of=as_of)
    assert verdict.verdict == "unverified", verdict.reason
    assert verdict.roles["reports"]["accounts"] >= 5
    assert verdict.roles["confirms"]["accounts"] == 0
    assert verdict.reason.startswith("Reported by") and "confirmed by none" in verdict.reason
    assert 0 < verdict.confidence < 1 and verdict.first_reported is not None
    assert any(e.hedged for e in verdict.evidence if e.role == "reports")
    data = verdict.to_dict()
    assert data["roles"] == verdict.roles and data["reason"] == verdict.reason


def test_cues_tell_hedges_confirmations_corrections_and_questions_apart() -> None:
    from firesift.answer.cues import count_conflict, read_cues

    hedged = read_cues("Police believe there may be others on the loose")
    assert hedged.hedged and not hedged.confirms
    confirmed = read_cues("Ottawa police confirm the gunman was shot and killed")
    assert confirmed.confirms and not confirmed.hedged
    assert read_cues("Ottawa police correct their info. No shooting at Rideau").corrects
    assert read_cues("This is a hoax").denies
    assert read_cues("Is this true?").questions and not read_cues("True story.").questions
    assert count_conflict("a second gunman is on the loose", "police: a lone gunman") == "gunman"
    assert count_conflict("numerous gunmen", "only one gunman in two locations") == "gunman"
    assert count_conflict("a second gunman", "one gunman was shot dead") is None
    assert count_conflict("the gunman was shot", "a lone gunman") is None


def test_decide_counts_evidence_not_repetition() -> None:
    from firesift.answer.check import Rule, decide

    def roles(**accounts: int) -> dict[str, dict[str, int]]:
        names = ("confirms", "supports", "denies", "questions", "reports", "comments")
        return {
            r: {"posts": accounts.get(r, 0), "accounts": accounts.get(r, 0), "verified": 0}
            for r in names
        }

    assert decide(roles()) == "insufficient"
    assert decide(roles(reports=40)) == "unverified"
    assert decide(roles(reports=40, supports=3)) == "unverified"
    assert decide(roles(confirms=2, reports=5)) == "supported"
    assert decide(roles(confirms=2, denies=3)) == "disputed"
    assert decide(roles(confirms=1, reports=3), Rule(min_support=1)) == "supported"


def test_cue_stance_reads_the_claim_checks_cues() -> None:
    from firesift.answer.check import CueStance

    texts = [
        "This is a hoax",
        "Police correct their info: no shooting at Rideau",
        "is this true?",
        "BREAKING: police say the gunman is dead",
        "so sad",
        "so sad",
    ]
    got = [r.label for r in CueStance().predict_many(texts, depths=[1, 1, 1, 1, 1, 0])]
    assert got == ["deny", "deny", "query", "support", "comment", "support"]
