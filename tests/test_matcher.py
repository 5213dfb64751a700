"""One in-memory evaluator for the live feed and the answer engine's context posts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from firesift.matcher import PostView, compile_matcher
from firesift.post import Author, Post


def _post(text: str, **kw: object) -> Post:
    return Post(
        source="x",
        id="1",
        text=text,
        created_at=datetime(2014, 10, 22, 15, tzinfo=UTC),
        author=Author(id="9", handle="CBCNews"),
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ("#Ottawa", "shots fired #ottawa", True),
        ("@cbcalerts", "via @CBCAlerts gunman down", True),
        ("url:cbc.ca", "live blog https://www.cbc.ca/news/x", True),
        ("url:cbc.ca", "live blog https://example.org/x", False),
        ("filter:links", "see https://example.org", True),
        ('"war memorial"', "the War Memorial in Ottawa", True),
        ('"war memorial"', "memorial of the war", False),
        ("from:cbcnews gunman", "Gunman down", True),
        ("shooting", "shootings downtown", False),
    ],
)
def test_entities_in_text_count_like_listed_ones(query: str, text: str, expected: bool) -> None:
    match = compile_matcher(query)
    assert match is not None
    assert match(PostView(_post(text))) is expected


def test_to_is_the_first_handle_of_a_reply() -> None:
    match = compile_matcher("to:ap")
    assert match is not None
    assert match(PostView(_post("@AP @CNN is this confirmed?", reply_to="5")))
    assert not match(PostView(_post("@CNN @AP is this confirmed?", reply_to="5")))
    assert not match(PostView(_post("@AP is this confirmed?")))
