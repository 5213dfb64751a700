"""Hostile input for the X query syntax, property-based: any text either parses or fails with a
:class:`~firesift.errors.QueryError` naming a position inside it; what parses prints back to
itself and compiles and runs against a real tantivy index.

``FIRESIFT_FUZZ_EXAMPLES=N`` runs every property with ``N`` examples.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator

import pytest
import tantivy
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from firesift.errors import QueryError
from firesift.formats import Parsed, read
from firesift.index import Hit, TantivyIndex
from firesift.post import Post
from firesift.query import MAX_DEPTH, OPERATORS, Query, parse
from firesift.recorded import DATA

_FUZZ = int(os.environ.get("FIRESIFT_FUZZ_EXAMPLES") or 0)


def fuzz(n: int) -> settings:
    """``n`` examples (or ``FIRESIFT_FUZZ_EXAMPLES``), no deadline: CI machines are shared."""
    return settings(
        max_examples=_FUZZ or n,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def real_posts(n: int = 300) -> list[Post]:
    with (DATA / "rumoureval2017/posts.jsonl").open("rb") as fh:
        head = b"".join(next(fh) for _ in range(n))
    return [e for item in read(io.BytesIO(head)) if isinstance(item, Parsed) for e in item.events]  # type: ignore[misc]


POSTS = real_posts()
WORDS = sorted({w for p in POSTS[:60] for w in p.text.split() if w.isalpha()})[:200]
HANDLES = sorted({p.author.handle for p in POSTS if p.author.handle})[:50]
TAGS = sorted({t for p in POSTS for t in p.hashtags})[:50]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TantivyIndex]:
    ix = TantivyIndex.open_or_create(tmp_path_factory.mktemp("fuzz") / "index")
    ix.add(POSTS)
    ix.commit(1)
    ix.refresh()
    yield ix
    ix.close()


# --- query text -------------------------------------------------------------------------------

_PIECES = [
    *(f"{name}:" for name in OPERATORS),
    "(", ")", '"', "“", "”", "-", "--", "OR", "or", "#", "@", ":", " ", "  ", "\t", "\n",
    "a", "covid-19", "2024-03-24", "2024-03-24T13:05:00Z", "2024-03-24_13:05:00_UTC", "_UTC",
    "9999-12-31T23:59:59-01:00", "0001-01-01", "99999999999999999999", "100", "-5",
    "https://", "x.com/", "example.com", "[::1", "links", "media", "replies", "retweets",
    "en", "pt_BR", "é", "ß", "İ", "中文", "١٢", "²", "\u0301", "\u202e", "\x00", "\ufeff",
    "foo:", "@@", "##", "-(", "OR)", "(OR", ".,;!?",
]  # fmt: skip
_PIECE = st.sampled_from(_PIECES) | st.sampled_from(WORDS)
_QUERY_TEXT = st.one_of(
    st.lists(_PIECE, max_size=25).map("".join),
    st.lists(_PIECE, max_size=25).map(" ".join),
    st.text(max_size=60),
)


@st.composite
def _term(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["word", "phrase", "tag", "mention", "from", "op", "neg"]))
    if kind == "word":
        return draw(st.sampled_from(WORDS))
    if kind == "phrase":
        return '"' + " ".join(draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=3))) + '"'
    if kind == "tag":
        return "#" + draw(st.sampled_from(TAGS))
    if kind == "mention":
        return "@" + draw(st.sampled_from(HANDLES))
    if kind == "from":
        return "from:" + draw(st.sampled_from(HANDLES))
    if kind == "op":
        return draw(
            st.sampled_from(
                ["lang:en", "url:bbc.co.uk", "filter:links", "filter:replies", "-filter:retweets"]
            )
            | st.integers(0, 2**64).map(lambda n: f"min_faves:{n}")
        )
    return "-" + draw(st.sampled_from(WORDS))


_EXPR = st.recursive(
    _term(),
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(" ".join),
        st.lists(inner, min_size=2, max_size=3).map(" OR ".join),
        inner.map(lambda q: f"({q})"),
        inner.map(lambda q: f"-({q})"),
    ),
    max_leaves=8,
)
_BOUNDS = st.sampled_from(
    ["", " since:2014-08-01", " until:2015-01-08", " since:2014-10-22 until:2014-10-23",
     " since:2014-12-16T00:00:00Z", " until:0001-01-02"]
)  # fmt: skip
_GRAMMAR_QUERY = st.tuples(_EXPR, _BOUNDS, st.sampled_from(["", "", *_PIECES])).map("".join)


def check_error(q: str, error: QueryError) -> None:
    """The error points inside the query (or just past its end) and says where."""
    assert isinstance(error.position, int), error
    assert 0 <= error.position <= len(q), (error.position, len(q))
    assert error.query == q and error.reason
    if q:
        assert f"(at character {error.position + 1})" in str(error)


_DEEP = "(" * 100_000 + "a" + ")" * 100_000
_DEEP_NOT = "-(" * 10_000 + "a" + ")" * 10_000


@fuzz(400)
@given(_QUERY_TEXT | _GRAMMAR_QUERY)
@example(_DEEP)
@example(_DEEP_NOT)
@example("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH)
@example("min_faves:" + "9" * 5000)
@example("since:9999-12-31T23:59:59-01:00 a")
@example("until:0001-01-01T00:00:00+01:00 a")
@example("since:0001-01-01 a")
@example("a OR " * 20_000 + "a")
@example('"' * 10_001)
def test_any_text_parses_or_fails_at_a_position(q: str) -> None:
    """A Query whose canonical text parses back to it, or a QueryError with a position;
    never another exception (RecursionError, OverflowError, ValueError...)."""
    try:
        parsed = parse(q)
    except QueryError as error:
        check_error(q, error)
        return
    assert isinstance(parsed, Query)
    assert parse(str(parsed)) == parsed, str(parsed)
    assert all(node is not None for node in parsed.walk())


@fuzz(200)
@given(
    _GRAMMAR_QUERY | _QUERY_TEXT,
    st.none() | st.integers(-(2**62), 2**62),
    st.sampled_from(["relevance", "recent"]),
)
@example("min_faves:9223372036854775807 a", None, "relevance")
@example("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH, None, "recent")
@example("a until:0001-01-02", 0, "relevance")
def test_parsed_queries_compile_and_search_a_real_index(
    index: TantivyIndex, q: str, as_of_ms: int | None, sort: str
) -> None:
    """Every query that parses compiles to a tantivy query (or None for an empty window) and
    runs, returning hits from the index; with a matching post, the hit is that post."""
    try:
        parsed = parse(q)
    except QueryError as error:
        check_error(q, error)
        return
    compiled = index.compile(parsed, as_of_ms=as_of_ms)
    assert compiled is None or isinstance(compiled, tantivy.Query)
    hits = index.search(parsed, as_of_ms=as_of_ms, limit=5, sort=sort)  # type: ignore[arg-type]
    assert isinstance(hits, list) and len(hits) <= 5
    keys = {p.key for p in POSTS}
    for hit in hits:
        assert isinstance(hit, Hit) and hit.key in keys
        if as_of_ms is not None:
            assert hit.created_ms <= as_of_ms


def test_grammar_strategy_writes_valid_nested_queries() -> None:
    """The grammar strategy reaches the index: it writes valid queries with OR and groups (a
    guard against a strategy that only ever tests the error path)."""
    from hypothesis import find

    found = find(_GRAMMAR_QUERY, lambda q: _parses(q) and " OR " in q and "(" in q)
    assert _parses(found)


def _parses(q: str) -> bool:
    try:
        parse(q)
    except QueryError:
        return False
    return True


def test_the_index_fixture_holds_real_posts(index: TantivyIndex) -> None:
    assert index.num_docs == len(POSTS) > 100
    assert index.search(parse(WORDS[0]), limit=1)
