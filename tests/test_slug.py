"""Task slugs: what is a valid name, and deriving one from free text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orch import slug
from orch.errors import OrchError

PROPS = settings(database=None, deadline=None, max_examples=300)

texts = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from("ab0 -_.:/É\n\t🙂"), max_size=150),
    st.text(alphabet="xyz", min_size=30, max_size=120),
)

VALID = ["a", "0day", "fix-login_v2.1", "a" * slug.MAX_LEN, "9", "a-b-c", "v1.2.3"]
INVALID = [
    "",
    "@60",
    "%3",
    "$1",
    "-1",
    "a:b",
    "Upper",
    "a b",
    "a" * (slug.MAX_LEN + 1),
    ".hidden",
    "_x",
    "fix.md",
    "a/b",
    "café",
    "a\n",
]


@pytest.mark.parametrize("name", VALID)
def test_valid_slugs(name):
    assert slug.is_valid(name)
    assert slug.problem(name) is None
    assert slug.check(name) == name


@pytest.mark.parametrize("name", INVALID)
def test_invalid_slugs(name):
    assert not slug.is_valid(name)
    why = slug.problem(name)
    assert why and "\n" not in why
    with pytest.raises(OrchError) as info:
        slug.check(name)
    assert str(info.value) == why


def test_problem_explains_tmux_like_names():
    assert "tmux" in slug.problem("@60")
    assert "'/'" in slug.problem("a/b")


def test_derive_examples():
    assert slug.derive("Fix the LOGIN page!") == "fix-the-login-page"
    assert slug.derive("  --  ") == "task"
    assert slug.derive("") == "task"
    assert slug.derive("fix login", taken={"fix-login", "fix-login-2"}) == "fix-login-3"


def test_derive_cuts_long_text_at_a_word_boundary():
    text = "implement the new search box on the home page with autocomplete"
    derived = slug.derive(text)
    assert len(derived) <= 40
    assert text.replace(" ", "-").startswith(derived + "-")


@PROPS
@given(text=texts, limit=st.integers(min_value=4, max_value=slug.MAX_LEN))
def test_derive_gives_a_valid_slug_within_the_limit(text, limit):
    derived = slug.derive(text, limit=limit)
    assert slug.is_valid(derived), derived
    assert len(derived) <= limit


@PROPS
@given(text=texts, extra=st.integers(min_value=0, max_value=5))
def test_derive_is_unique_against_taken(text, extra):
    taken: set[str] = set()
    for _ in range(extra + 2):
        derived = slug.derive(text, taken=taken)
        assert derived not in taken
        assert slug.is_valid(derived) and len(derived) <= 40
        taken.add(derived)


@PROPS
@given(text=texts, limit=st.integers(min_value=4, max_value=slug.MAX_LEN))
def test_derive_stays_valid_when_the_base_is_taken(text, limit):
    """The ``-N`` suffix must not push a derived slug past MAX_LEN."""
    base = slug.derive(text, limit=limit)
    derived = slug.derive(text, taken={base}, limit=limit)
    assert derived != base
    assert slug.is_valid(derived), derived


def test_derive_long_word_with_taken_base_is_still_valid():
    derived = slug.derive("a" * 100, taken={"a" * slug.MAX_LEN}, limit=slug.MAX_LEN)
    assert slug.is_valid(derived), derived
