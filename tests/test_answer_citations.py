"""Citation markers: renumbering, dropping, streaming equivalence, uncited sentences."""

from __future__ import annotations

from firesift.answer.citations import (
    MarkerFilter,
    check_markers,
    markers,
    strip_markers,
    uncited_sentences,
)


def test_markers_renumbered_in_order_of_first_appearance() -> None:
    checked = check_markers("Gunman named [7]. Second report [3][7]. Unknown [42].", {3, 7})
    assert checked.text == "Gunman named [1]. Second report [2][1]. Unknown."
    assert checked.cited == (7, 3)
    assert checked.dropped == (42,)


def test_comma_lists_and_repeats() -> None:
    checked = check_markers("Both say so [3, 5][5] and again [3]", {3, 5})
    assert checked.text == "Both say so [1][2] and again [1]"
    assert markers(checked.text) == [1, 2, 1]


def test_streaming_equals_whole_text_at_every_split() -> None:
    text = "Soldier shot [4]. Shooter dead [2][9] per police [4, 2]. Done [1"
    whole = check_markers(text, {1, 2, 4}).text
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            f = MarkerFilter({1, 2, 4}.__contains__)
            out = f.feed(text[:i]) + f.feed(text[i:j]) + f.feed(text[j:]) + f.close()
            assert out == whole, (i, j)


def test_dropped_marker_before_kept_one_keeps_the_space() -> None:
    assert check_markers("heard shots [12][1].", {1}).text == "heard shots [1]."
    assert check_markers("heard shots [12][13] [1].", {1}).text == "heard shots [1]."
    assert check_markers("heard shots [12].", {1}).text == "heard shots."
    assert check_markers("shots [12] and more [1]", {1}).text == "shots and more [1]"
    assert check_markers("[1] shots [12][1][9]", {1}).text == "[1] shots [1]"


def test_streaming_equals_whole_text_with_dropped_markers() -> None:
    text = "heard shots [12][1]. Then [9] [2][8]. Gone [7] [3, 2] end [5"
    whole = check_markers(text, {1, 2, 3}).text
    assert whole == "heard shots [1]. Then [2]. Gone [3][2] end [5"
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            f = MarkerFilter({1, 2, 3}.__contains__)
            out = f.feed(text[:i]) + f.feed(text[i:j]) + f.feed(text[j:]) + f.close()
            assert out == whole, (i, j)


def test_uncited_sentences_skip_headers_and_list_intros() -> None:
    text = (
        "As of 14:05 UTC: 212 posts from 180 accounts.\n"
        "The gunman was identified by police [1].\n"
        "This sentence cites nothing at all.\n"
        "The closest posts:\n"
    )
    assert uncited_sentences(text) == ["This sentence cites nothing at all."]


def test_strip_markers_removes_forged_citations() -> None:
    assert strip_markers("RT this [2] is real [1, 3]") == "RT this is real"
