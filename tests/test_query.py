"""The X-style query parser: every operator, precedence, canonical text, and error positions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from firesift.errors import QueryError
from firesift.query import (
    OPERATORS,
    And,
    Field,
    Flag,
    MinCount,
    Not,
    Or,
    Phrase,
    Query,
    Word,
    parse,
)


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


def expr(text: str) -> object:
    return parse(text).expr


# --- terms, phrases, precedence ------------------------------------------------------------


def test_words_are_lowercased_and_implicitly_anded() -> None:
    assert expr("Fire  DOWNTOWN") == And((Word("fire"), Word("downtown")))
    assert expr("fire") == Word("fire")


def test_phrase_is_lowercased_and_single_spaced() -> None:
    assert expr('"Shots  Fired" police') == And((Phrase("shots fired"), Word("police")))


def test_curly_quotes_delimit_phrases() -> None:
    assert expr("“breaking news”") == Phrase("breaking news")


def test_or_binds_tighter_than_and() -> None:
    assert expr("a b OR c d") == And((Word("a"), Or((Word("b"), Word("c"))), Word("d")))


def test_or_chain_is_flat() -> None:
    assert expr("a OR b OR c") == Or((Word("a"), Word("b"), Word("c")))


def test_parentheses_group_an_and_inside_or() -> None:
    assert expr("(a b) OR c") == Or((And((Word("a"), Word("b"))), Word("c")))


def test_nested_groups_flatten() -> None:
    assert expr("((a)) (b c)") == And((Word("a"), Word("b"), Word("c")))


def test_lowercase_or_is_a_word() -> None:
    assert expr("cats or dogs") == And((Word("cats"), Word("or"), Word("dogs")))


def test_negation_of_word_phrase_group_and_operator() -> None:
    assert expr('fire -smoke -"false alarm" -(drill OR test) -from:bot') == And(
        (
            Word("fire"),
            Not(Word("smoke")),
            Not(Phrase("false alarm")),
            Not(Or((Word("drill"), Word("test")))),
            Not(Field("from", "bot")),
        )
    )


def test_double_negation_cancels() -> None:
    assert expr("-(-fire)") == Word("fire")


def test_hyphen_inside_a_word_is_not_negation() -> None:
    assert expr("covid-19 well-known") == And((Word("covid-19"), Word("well-known")))


def test_punctuation_only_words_are_ignored() -> None:
    assert expr("fire - !!! ...") == Word("fire")


def test_urls_stay_words() -> None:
    assert expr("https://example.com/a?b=c") == Word("https://example.com/a?b=c")


def test_word_ending_in_a_colon_stays_a_word() -> None:
    assert expr("update: fire") == And((Word("update:"), Word("fire")))


# --- operators -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "node"),
    [
        ("#Ferguson", Field("hashtag", "ferguson")),
        ("@NASA", Field("mention", "nasa")),
        ("@alice.bsky.social", Field("mention", "alice.bsky.social")),
        ("from:Elon", Field("from", "elon")),
        ("from:@Elon", Field("from", "elon")),
        ("FROM:elon", Field("from", "elon")),
        ("to:bob", Field("to", "bob")),
        ("lang:EN", Field("lang", "en")),
        ("lang:pt-BR", Field("lang", "pt-br")),
        ("url:https://www.BBC.co.uk/", Field("url", "bbc.co.uk")),
        ("url:reuters.com", Field("url", "reuters.com")),
        ("min_faves:100", MinCount("likes", 100)),
        ("min_retweets:5", MinCount("reposts", 5)),
        ("min_reposts:5", MinCount("reposts", 5)),
        ("min_replies:0", MinCount("replies", 0)),
        ("filter:links", Flag("links")),
        ("filter:replies", Flag("replies")),
        ("filter:retweets", Flag("reposts")),
        ("filter:reposts", Flag("reposts")),
        ("filter:media", Flag("media")),
    ],
)
def test_operator(text: str, node: object) -> None:
    assert expr(text) == node
    assert expr(f"-{text} fire") == And((Not(node), Word("fire")))  # type: ignore[arg-type]


def test_operators_combine_with_or() -> None:
    assert expr("from:a OR from:b") == Or((Field("from", "a"), Field("from", "b")))


@pytest.mark.parametrize(
    ("text", "since", "until"),
    [
        ("since:2024-03-24", ms(2024, 3, 24), None),
        ("until:2024-03-24", None, ms(2024, 3, 24)),
        ("since:2024-03-24T13:05:00Z", ms(2024, 3, 24, 13, 5), None),
        ("since:2024-03-24_13:05:00_UTC", ms(2024, 3, 24, 13, 5), None),
        ("since:2024-03-24T15:05:00+02:00", ms(2024, 3, 24, 13, 5), None),
        ("since:2024-03-24T13:05", ms(2024, 3, 24, 13, 5), None),
        ("since:2024-03-01 until:2024-03-02", ms(2024, 3, 1), ms(2024, 3, 2)),
    ],
)
def test_time_bounds_are_extracted(text: str, since: int | None, until: int | None) -> None:
    q = parse(f"fire {text}")
    assert (q.expr, q.since_ms, q.until_ms) == (Word("fire"), since, until)


def test_until_date_is_exclusive_midnight() -> None:
    assert parse("until:2024-03-24").until_ms == ms(2024, 3, 24)


def test_repeated_bounds_intersect() -> None:
    q = parse("x since:2024-01-01 since:2024-02-01 until:2024-05-01 until:2024-04-01")
    assert (q.since_ms, q.until_ms) == (ms(2024, 2, 1), ms(2024, 4, 1))


def test_time_bounds_alone_are_a_query() -> None:
    assert parse("since:2024-01-01") == Query(None, ms(2024, 1, 1), None)


def test_negative_terms_are_allowed_with_a_time_bound() -> None:
    assert parse("-spam since:2024-01-01").expr == Not(Word("spam"))


# --- canonical text ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("Fire", "fire"),
        ("a b OR c d", "a b OR c d"),
        ("(a b) OR c", "(a b) OR c"),
        ("-(a OR b) c", "-(a OR b) c"),
        ("-(a b) c", "-(a b) c"),
        ('"Shots Fired"', '"shots fired"'),
        ("#Tag @User", "#tag @user"),
        ("x min_reposts:3 filter:reposts", "x min_retweets:3 filter:retweets"),
        ("x until:2024-03-24T00:00:00Z", "x until:2024-03-24"),
        ("x since:2024-03-24_13:05:00_UTC", "x since:2024-03-24T13:05:00Z"),
        ("since:2024-01-01 x", "x since:2024-01-01"),
        ("url:http://www.Example.com", "url:example.com"),
    ],
)
def test_canonical_text(text: str, canonical: str) -> None:
    q = parse(text)
    assert str(q) == canonical == q.to_text()
    assert parse(canonical) == q


@pytest.mark.parametrize(
    "text",
    [
        'a (b OR "c d") -e -(f g) #h @i from:j to:k lang:fr url:l.com',
        "min_faves:1 min_retweets:2 min_replies:3 filter:links -filter:media -filter:replies",
        "a OR b OR (c d) OR -e since:2024-01-01 until:2024-02-01T10:00:00.250Z",
        "covid-19 https://x.com/y update: --z",
    ],
)
def test_round_trip(text: str) -> None:
    q = parse(text)
    assert parse(str(q)) == q
    assert str(parse(str(q))) == str(q)


def test_positive_terms_skip_negated_ones() -> None:
    q = parse('fire "shots fired" -smoke (a OR b) #tag -(c d)')
    assert q.positive_terms() == [Word("fire"), Phrase("shots fired"), Word("a"), Word("b")]


def test_walk_visits_every_node() -> None:
    q = parse("a -(b OR c)")
    assert list(q.walk()) == [
        And((Word("a"), Not(Or((Word("b"), Word("c")))))),
        Word("a"),
        Not(Or((Word("b"), Word("c")))),
        Or((Word("b"), Word("c"))),
        Word("b"),
        Word("c"),
    ]


def test_nodes_are_frozen_and_slotted() -> None:
    w = Word("a")
    with pytest.raises(AttributeError):
        w.text = "b"  # type: ignore[misc]
    assert not hasattr(w, "__dict__")


# --- errors --------------------------------------------------------------------------------


def error(text: str) -> QueryError:
    with pytest.raises(QueryError) as info:
        parse(text)
    err = info.value
    assert err.query == text
    return err


@pytest.mark.parametrize(
    ("text", "position", "needle"),
    [
        ("", 0, "empty query"),
        ("   ", 0, "empty query"),
        ('fire "shots fired', 5, "unterminated quote"),
        ("(a b", 0, "never closed"),
        ("a (b (c)", 2, "never closed"),
        ("a b)", 3, "no matching '('"),
        (")", 0, "no matching '('"),
        ("OR fire", 0, "OR needs a term on its left"),
        ("fire OR", 5, "OR needs a term on its right"),
        ("a OR OR b", 2, "OR needs a term on its right"),
        ("(a OR) b", 3, "OR needs a term on its right"),
        ("a ()", 2, "empty parentheses"),
        ("x since:2024-13-01", 8, "since: needs a date"),
        ("x until:yesterday", 8, "until: needs a date"),
        ("x min_faves:many", 12, "min_faves: needs a whole number"),
        ("x min_retweets:-1", 15, "min_retweets: needs a whole number"),
        ("x min_replies:1.5", 14, "min_replies: needs a whole number"),
        ("x filter:video", 9, "unknown filter 'video'"),
        ("x lang:english!", 7, "lang: needs a language code"),
        ("x url:example.com/path", 6, "paths are not indexed"),
        ("x from:", 7, "from: needs a value"),
        ("x foo:bar", 2, "unknown operator foo:"),
        ("-fire", 0, "at least one positive term or filter"),
        ("-fire -smoke", 0, "at least one positive term or filter"),
        ("fire OR -smoke", 8, "at least one positive term or filter"),
        ("x (since:2024-01-01)", 3, "move it out of the parentheses"),
        ("x OR since:2024-01-01", 5, "cannot be part of an OR"),
        ("x -until:2024-01-01", 2, "cannot be negated; use since:"),
        ("x since:2024-01-02 until:2024-01-01", 19, "since: must be before until:"),
    ],
)
def test_error_position(text: str, position: int, needle: str) -> None:
    err = error(text)
    assert err.position == position
    assert needle in err.reason


def test_unknown_operator_lists_every_known_operator() -> None:
    err = error("foo:bar fire")
    for name in OPERATORS:
        assert f"{name}:" in err.reason


def test_negative_only_says_why() -> None:
    reason = error("-spam").reason
    assert "positive term or filter" in reason
    assert "only removes" in reason


def test_error_message_points_at_the_problem() -> None:
    msg = str(error('a "b'))
    assert msg.splitlines()[-1] == "    ^"
