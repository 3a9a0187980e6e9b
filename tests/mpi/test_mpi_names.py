"""Names: cleaning, titles, hyphens and double-barrelled names, nicknames, phonetic keys."""

from __future__ import annotations

import pytest

from mpi.names import fold_accents, name_words, nickname_keys, phonetic_key


@pytest.mark.parametrize(("raw", "words"), [
    ("Smith", ("SMITH",)),  # case
    ("  smith ", ("SMITH",)),  # spaces
    ("Zoë", ("ZOE",)),  # accents folded
    ("Ångström-Øster", ("ANGSTROM", "OSTER")),  # accents and a hyphen
    ("Smith-Jones", ("SMITH", "JONES")),  # hyphenated double-barrelled name
    ("Smith Jones", ("SMITH", "JONES")),  # the same written with a space
    ("O'Neill", ("ONEILL",)),  # apostrophes joined
    ("Mrs Anne-Marie", ("ANNE", "MARIE")),  # title dropped
    ("Dr. John", ("JOHN",)),
    ("UNKNOWN", ()),  # placeholder
    ("", ()),
    (None, ()),
])
def test_name_words(raw: str | None, words: tuple[str, ...]) -> None:
    assert name_words(raw) == words


def test_fold_accents_handles_letters_without_decomposition() -> None:
    assert fold_accents("Łukasz Strauß") == "Lukasz Strauss"


@pytest.mark.parametrize(("a", "b"), [("WILLIAM", "BILL"), ("ELIZABETH", "LIZ"), ("ROBERT", "BOB")])
def test_nicknames_are_related(a: str, b: str) -> None:
    assert b in nickname_keys(a) or a in nickname_keys(b)


def test_names_sharing_only_a_nickname_are_not_related() -> None:
    # both William and Robert are called Bill, but William is not Robert
    assert "ROBERT" not in nickname_keys("WILLIAM") and "WILLIAM" not in nickname_keys("ROBERT")


def test_phonetic_key_groups_spellings() -> None:
    assert phonetic_key("SMITH") == phonetic_key("SMYTH")
    assert phonetic_key("") is None
