"""The description merge (collab.domain.textmerge): both sides' edits kept when they touch different
words, the later write winning the words both changed, and each such stretch counted."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collab.domain.textmerge import Hunk, _widen, merge

WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyzé😀", min_size=1, max_size=8)


def test_edits_of_different_words_are_both_kept():
    assert merge("hello world", "hello brave world", "hello world!").text == "hello brave world!"
    m = merge(
        "Intro.\n\nBody.\n\nEnd.", "Intro, by Bob.\n\nBody.\n\nEnd.", "Intro.\n\nBody.\n\nThe end, by Ann."
    )
    assert m == type(m)("Intro, by Bob.\n\nBody.\n\nThe end, by Ann.", 0)


def test_two_people_typing_at_the_same_place_both_keep_their_text_theirs_first():
    assert merge("Notes:", "Notes: from Bob", "Notes: from Ann").text == "Notes: from Bob from Ann"
    assert merge("", "A", "B").text == "AB"


def test_the_same_word_changed_by_both_is_a_conflict_the_later_write_wins():
    m = merge("Intro.\n\nBody.\n\nEnd.", "Intro.\n\nBob's body.\n\nEnd.", "Intro.\n\nAnn's body.\n\nFin.")
    assert m.text == "Intro.\n\nAnn's body.\n\nFin." and m.conflicts == 1


def test_one_side_unchanged_gives_the_other():
    assert (
        merge("a b", "a b", "a c") == merge("a b", "a c", "a b") == type(merge("a b", "a b", "a c"))("a c", 0)
    )
    assert merge("a b", "a c", "a c") == merge("x", "a c", "a c")


@given(st.lists(WORD, min_size=4, max_size=12), st.data())
def test_words_changed_apart_are_all_kept_and_the_same_word_goes_to_mine(words, data):
    i = data.draw(st.integers(0, len(words) - 1))
    j = data.draw(st.integers(0, len(words) - 1))
    new_i, new_j = data.draw(WORD), data.draw(WORD)
    base = " ".join(words)
    theirs = " ".join(new_i if k == i else w for k, w in enumerate(words))
    mine = " ".join(new_j if k == j else w for k, w in enumerate(words))
    m = merge(base, theirs, mine)
    if i != j:
        both = " ".join(new_i if k == i else new_j if k == j else w for k, w in enumerate(words))
        assert m.text == both and m.conflicts == 0
    elif mine == base:  # mine changed nothing: theirs
        assert m.text == theirs and m.conflicts == 0
    else:
        assert m.text == mine and m.conflicts == (0 if theirs in (base, mine) else 1)


def test_each_stretch_both_changed_is_counted():
    m = merge("alpha beta gamma delta", "alpha BETA gamma DELTA", "alpha Beta gamma Delta")
    assert m == type(m)("alpha Beta gamma Delta", 2)


def test_a_point_at_the_end_of_the_other_sides_range_is_apart_from_it():
    assert merge("ab cd", "ab XY", "ab cd ef") == type(merge("a", "b", "c"))("ab XY ef", 0)


def test_a_change_inside_a_stretch_the_other_side_rewrote_takes_that_stretch_only():
    """Theirs rewrote every word, mine changed one inside: the words both changed go to mine, the
    rest of theirs is kept (judged in the order of the base, whatever the hunks' lengths)."""
    m = merge("one two three", "uno dos tres", "one twxo three")
    assert m == type(m)("one twxo tres", 1)


@pytest.mark.parametrize(
    ("base", "hunk", "judged"),
    [
        ("hello world", Hunk(5, 5, "s", True), (0, 5)),  # typed at a word's end: that word
        ("a cd", Hunk(1, 1, "x", True), (0, 1)),  # ... a one-letter word at the text's start
        ("ab cd", Hunk(3, 3, "x", True), (3, 5)),  # typed at a word's start: that word
        ("ab cd", Hunk(2, 2, " x", True), (2, 2)),  # set off by white space: a point
        ("ab cd", Hunk(5, 5, " ef", True), (5, 5)),  # at the end, set off: a point
        ("ab cd", Hunk(1, 2, "", True), (0, 2)),  # a range: the whole words it touches
        ("ab cd", Hunk(3, 4, "", True), (3, 5)),
        ("ab cd", Hunk(0, 1, "", True), (0, 2)),
        ("ab cd", Hunk(1, 4, "", True), (0, 5)),
    ],
)
def test_a_hunk_is_judged_by_the_words_it_touches(base, hunk, judged):
    assert _widen(base, hunk) == judged


def test_mine_rewriting_a_stretch_around_their_change_takes_it_whole():
    """The mirror of the case above: theirs changed a word inside what mine rewrote. Judged in the
    base's order, the group starts where mine does, and mine's text replaces it once."""
    m = merge("one two three", "one twxo three", "uno dos tres")
    assert m == type(m)("uno dos tres", 1)
    m = merge("alpha beta gamma", "alpha bexta gamma", "ALPHA BETA GAMMA")
    assert m == type(m)("ALPHA BETA GAMMA", 1)
