"""Comparisons: the level each kind of pair reaches, and serialisation."""

from __future__ import annotations

import pytest
from mpi_factories import match_record

from mpi.comparisons import Comparison, ResidenceComparison, default_comparisons
from mpi.frames import frame_from_records
from mpi.normalise import MatchRecord


def level(name: str, a: MatchRecord, b: MatchRecord) -> str | None:
    comparison = next(c for c in default_comparisons() if c.name == name)
    frame = frame_from_records([a, b])
    import numpy as np

    found = int(comparison.levels(frame.take(np.array([0])), frame.take(np.array([1])))[0])
    return None if found < 0 else comparison.labels[found]


@pytest.mark.parametrize(("left", "right", "expected"), [
    ({}, {}, "exact"),
    ({"family": "Smith-Jones"}, {"family": "Smith Jones"}, "exact"),  # hyphen or space: the same words
    ({"family": "Smith-Jones"}, {"family": "Jones"}, "words-shared"),  # one half of a double-barrelled name
    ({"family": "Smith-Jones"}, {"family": "SmithJones"}, "words-shared"),  # run together
    ({"family": "Whitfield"}, {"family": "Whitfeild"}, "jaro-winkler>=0.92"),  # typo
    ({"family": "Whitfield"}, {"family": "Eleanor", "given": "Whitfield"}, "swapped"),
    ({"family": "Whitfield"}, {"family": "Okonkwo"}, "else"),
    ({"family": "Whitfield"}, {"family": None}, None),  # missing: no evidence
    # one name keyed into the other field, the other lost or replaced: crossed
    ({}, {"family": "Margaret", "given": "Whitfield"}, "crossed"),
    ({}, {"family": "Eleanor", "given": "Margaret"}, "crossed"),
    ({}, {"family": "Okonkwo", "given": "Whitfeld"}, "crossed"),  # with a slip
    ({"family": "Van Wijk", "given": "James"}, {"family": "Jones", "given": "Van"}, "crossed"),  # a word of it
    ({}, {"family": "Okonkwo", "given": "Margaret"}, "else"),
    ({}, {"family": "Eleanor", "given": "Whitfield"}, "swapped"),  # both ways round: swapped, not crossed
    ({"given": None}, {"family": "Margaret", "given": "Whitfield"}, "crossed"),
    ({"given": None}, {"family": "Margaret", "given": None}, "else"),  # no given name to cross with
])
def test_family_name_levels(left: dict, right: dict, expected: str | None) -> None:
    assert level("family", match_record(**left), match_record(**right)) == expected


@pytest.mark.parametrize(("left", "right", "expected"), [
    ({"given": "William"}, {"given": "Bill"}, "nickname"),
    ({"given": "Eleanor Grace"}, {"given": "Grace"}, "initial-or-middle"),  # middle name used as first
    ({"given": "Eleanor"}, {"given": "E"}, "initial-or-middle"),  # an initial
    ({"given": "Eleanor"}, {"given": "Elanor"}, "jaro-winkler>=0.92"),
    ({"given": "Eleanor"}, {"given": "Margaret"}, "else"),
    ({"given": "Eleanor"}, {"given": "Whitfield", "family": "Eleanor"}, "swapped"),
])
def test_given_name_levels(left: dict, right: dict, expected: str) -> None:
    assert level("given", match_record(**left), match_record(**right)) == expected


@pytest.mark.parametrize(("left", "right", "expected"), [
    ({}, {"given": "Ellie Grace"}, "exact"),  # the first names differ, the middle ones agree
    ({}, {"given": "Ellie G"}, "initial-or-first"),  # an initial of it
    ({"given": "Ellie G"}, {"given": "Eleanor G"}, "initial-or-first"),  # initials alone agree
    ({}, {"given": "Ellie Grace Mary"}, "initial-or-first"),  # the first middle name agrees, the rest not
    ({}, {"given": "Ellie Rose"}, "else"),
    ({}, {"given": "Ellie R"}, "else"),
    # the first names agree: a middle name that differs tells two people of one name apart (H-ID-32) ...
    ({}, {"given": "Eleanor Rose"}, "else"),
    ({}, {"given": "Eleanor R"}, "else"),
    # ... one that agrees is no further evidence (what a son named after his father shares)
    ({}, {"given": "Eleanor Grace"}, None),
    ({}, {"given": "Eleanor G"}, None),
    ({}, {"given": "Ellie"}, None),  # none on one side
])
def test_middle_name_levels(left: dict, right: dict, expected: str | None) -> None:
    assert level("middle", match_record(**left), match_record(**right)) == expected


@pytest.mark.parametrize(("right", "expected"), [
    ("1978-03-14", "exact"),
    ("1978-14-03", "exact"),  # a month over 12 is read as YYYY-DD-MM when normalising
    ("1978-03-13", "one-part-different"),  # one digit of the day
    ("1987-03-14", "one-part-different"),  # two year digits swapped
    ("1957-03-14", "else"),  # another person's birthday in another year
    ("1978", "partial-agrees"),
    ("1961-07-30", "else"),
])
def test_birth_date_levels(right: str, expected: str) -> None:
    assert level("birth_date", match_record(), match_record(birth_date=right)) == expected


def test_transposed_day_and_month_in_slash_form() -> None:
    assert level("birth_date", match_record(birth_date="1978-03-04"), match_record(birth_date="1978-04-03")) == \
        "day-month-transposed"


@pytest.mark.parametrize(("left", "right", "expected"), [
    ({}, {}, "exact"),
    ({}, {"nhs_number": "9434765870"}, "else"),  # two different valid numbers
    ({}, {"nhs_number": "9434765918"}, None),  # a number failing the check is no evidence
    ({}, {"nhs_number": None}, None),
])
def test_nhs_number_levels(left: dict, right: dict, expected: str | None) -> None:
    assert level("nhs_number", match_record(**left), match_record(**right)) == expected


@pytest.mark.parametrize(("right", "expected"), [
    ({}, "postcode-and-address"),
    ({"address": "Flat 1, 12 Mill Lane, Guildford"}, "postcode-and-address"),
    # a neighbour is not the same address, but the postcode and the street: a level of its own (H-ID-42)
    ({"address": "14 Mill Lane, Guildford"}, "postcode-and-part"),
    ({"address": "12 Weyside Close, Burpham"}, "postcode-and-part"),  # the number, the street written otherwise
    ({"address": "3 Oak Road, Burpham"}, "postcode"),  # nothing of the address agrees
    ({"address": "012 Mill Lane, Guildford"}, "postcode-and-address"),  # a leading zero: one house number
    # one home at one postcode: the address partly alike (a district added, the town mistyped), its number agreeing
    ({"address": "12 Mill Lane, Merrow, Guildfrd, Surrey"}, "postcode-and-address"),
    # partly alike, but no number to name the home: the postcode and the street
    ({"address": "Mill Lane, Merrow, Guildford"}, "postcode-and-part"),
    ({"postcode": "GU1 4AD"}, "address"),  # postcode keyed wrongly
    ({"postcode": "GU1 4XY", "address": "3 Oak Road"}, "nearby"),  # same sector
    # one home keyed with slips in both: the same sector and the address partly alike, its number agreeing
    ({"postcode": "GU1 4AD", "address": "12 Mill Lane, Guildfrd, Surrey"}, "both-nearly"),
    ({"postcode": "GU1 4AD", "address": "14 Mill Lane, Merrow, Guildford"}, "nearby"),  # a neighbour's number
    ({"postcode": "GU2 7XH", "address": "12 Mill Lane, Guildfrd, Surrey"}, "nearby"),  # only the district
    ({"postcode": "TN2 1AA", "address": "3 Oak Road"}, "else"),  # moved house
    ({"postcode": "2615", "address": "9 Elvire Farm, Iron, NSW"}, "else"),
    ({"postcode": None, "address": None}, None),
])
def test_residence_levels(right: dict, expected: str | None) -> None:
    assert level("residence", match_record(), match_record(**right)) == expected


@pytest.mark.parametrize(("left", "right", "expected"), [
    # one street, a building and a locality's words dropped from one, another house number (H-ID-42)
    ("175 Muntz Street, Dorothy Genders Village, Yagoona", "19 Muntz Street, Yagoona", "postcode-and-part"),
    # the same house number, the street written otherwise (a postcode of two streets, or one replaced)
    ("3 Corona Place, Sweet Waters, Toowoomba", "3 Spinifex Street, Toowoomba", "postcode-and-part"),
    ("3 Corona Place, Sweet Waters, Toowoomba", "8 Spinifex Street, Toowoomba", "postcode"),
    ("Muntz Street, Yagoona", "19 Muntz Street, Yagoona", "postcode-and-address"),
])
def test_the_postcode_and_part_of_the_address(left: str, right: str, expected: str) -> None:
    assert level("residence", match_record(address=left), match_record(address=right)) == expected


def test_two_named_houses_of_one_street_are_not_one_home() -> None:
    # addresses partly alike at one postcode are one home only when both hold a number (which must agree)
    left, right = "Rose Cottage, Mill Lane, Guildford", "Ivy Cottage, Mill Lane, Guildford"
    assert level("residence", match_record(address=left), match_record(address=right)) == "postcode-and-part"
    assert "postcode-and-part" not in ResidenceComparison.home_levels
    assert level("residence", match_record(address="3 " + left), match_record(address="3 " + right)) == \
        "postcode-and-address"


@pytest.mark.parametrize(("left", "right", "expected"), [
    # one address keyed with a word run together, split or mistyped: its words sort elsewhere, the ratio drops
    ("11 Copland Drive, Birmingham Gardens", "11 Coplanddrive, Birmingha m Gardens", "similar"),
    ("21 Fihelly Street Villa 2, St Lucia", "21 Fihellystreet Villa2, St Lucia", "similar"),
    ("16 Wolff Crescent Brentwood, Kurrajong", "16 Wolffcrescent Brentwoo e, Kurrajong", "similar"),
    # what must stay apart: a neighbour's number, another street of one name, another flat
    ("11 Copland Drive, Birmingham Gardens", "13 Coplanddrive, Birmingham Gardens", "else"),
    ("12 Mill Lane, Guildford", "12 Mill Road, Guildford", "partial"),
    ("Flat 1, 12 Mill Lane, Guildford", "Flat 2, 12 Mill Lane, Guildford", "else"),
])
def test_address_slips_in_words(left: str, right: str, expected: str) -> None:
    import numpy as np

    from mpi.comparisons import AddressComparison

    frame = frame_from_records([match_record(address=left), match_record(address=right)])
    found = int(AddressComparison().levels(frame.take(np.array([0])), frame.take(np.array([1])))[0])
    assert AddressComparison.labels[found] == expected


def test_bigram_dice() -> None:
    from mpi.comparisons import bigram_dice

    assert bigram_dice("COPLAND DRIVE", "DRIVE COPLAND") == 1.0  # word order does not matter
    assert bigram_dice("COPLAND DRIVE", "COPLANDDRIVE") == pytest.approx(20 / 21)  # one pair across the join
    assert bigram_dice("A", "B") == 0.0 and bigram_dice("", "") == 0.0


def _dice_by_code_and_pair_by_pair(addresses: list[str]) -> tuple[list[float], list[float]]:
    """:func:`bigram_dice` of every two of ``addresses``: from value codes (the relink's) and pair by pair."""
    import numpy as np

    from mpi.comparisons import _bigram_dice_by_code, bigram_dice

    frame = frame_from_records([match_record(address=a or None) for a in addresses])
    vocab = frame.vocab["address"]
    codes = np.arange(len(vocab))
    a, b = np.repeat(codes, len(vocab)), np.tile(codes, len(vocab))
    expected = [bigram_dice(x, y) for x, y in zip(vocab[a].tolist(), vocab[b].tolist(), strict=True)]
    return _bigram_dice_by_code(frame, a, b).tolist(), expected


def test_bigram_dice_by_code_gives_the_same_values() -> None:
    """The relink's dice from value codes (letter pairs as bits) against the function pair by pair: the same
    floats, including repeated pairs (``AAAA`` holds AA three times), one-letter words and empty addresses."""
    by_code, expected = _dice_by_code_and_pair_by_pair([
        "COPLAND DRIVE 12", "12 COPLANDDRIVE", "AAAA AA", "AA", "A B C", "", "FLAT 1 12 MILL LANE",
        "MILL LANE 12 FLAT 2", "BANANA BANDANA", "NANA", "ABABABAB BA"])
    assert by_code == expected
    assert len(set(expected)) > 10  # the cases differ


@pytest.mark.parametrize("addresses", [
    pytest.param(["12\u3000MILL LANE", "12 MILL\xa0LANE", "MILL\x1cLANE", "MILL LANE"],
                 id="Unicode spaces split words"),
    pytest.param(["\U0001f3e0\U0001f3e0 HOUSE", "\U0001f3e0\U0001f3e0\U0001f3e0", "HOUSE"],
                 id="characters past the BMP"),
    pytest.param(["", "A", " ", "AB", "BA", ""], id="empty, one letter and space-only texts next to each other"),
    pytest.param(["AAAAAAAA", "AAAA AAAA", "AA" * 40], id="a pair held many times"),
])
def test_letter_pairs_found_at_once_agree_with_the_pairs_text_by_text(addresses: list[str]) -> None:
    """The letter pairs of every address found over all of them at once (one pass over code points, not text by
    text): the same dice as :func:`bigram_dice` pair by pair, whatever splits words or however often a pair recurs."""
    by_code, expected = _dice_by_code_and_pair_by_pair(addresses)
    assert by_code == expected


def test_no_space_lies_past_the_code_points_the_letter_pairs_check() -> None:
    """:data:`mpi.comparisons._WHITESPACE` holds every character :meth:`str.split` splits on."""
    from mpi.comparisons import _WHITESPACE

    assert sorted(_WHITESPACE.tolist()) == [c for c in range(0x110000) if chr(c).isspace()]


def test_non_uk_postcodes_compare_as_strings() -> None:
    a = match_record(postcode="2615", address="9 Elvire Farm")
    assert level("residence", a, match_record(postcode="2615", address="9 Elvire Farm")) == "postcode-and-address"
    assert level("residence", a, match_record(postcode="2614", address="1 Other St")) == "nearby"
    assert level("residence", a, match_record(postcode="2614", address="9 Elvire Farms, Iron")) == "both-nearly"


@pytest.mark.parametrize("comparison", default_comparisons(), ids=lambda c: c.name)
def test_comparisons_serialise(comparison: Comparison) -> None:
    again = Comparison.from_dict(comparison.to_dict())
    assert again == comparison and again.labels == comparison.labels
