"""Postcodes: UK codes parsed into sector and district, others kept as given."""

from __future__ import annotations

import pytest

from mpi.postcodes import parse_postcode


@pytest.mark.parametrize(("raw", "code", "sector", "district"), [
    ("GU1 4AB", "GU1 4AB", "GU1 4", "GU1"),
    ("gu14ab", "GU1 4AB", "GU1 4", "GU1"),  # lower case, no space
    ("SW1A 1AA", "SW1A 1AA", "SW1A 1", "SW1A"),
])
def test_uk_postcodes(raw: str, code: str, sector: str, district: str) -> None:
    parsed = parse_postcode(raw)
    assert parsed is not None
    assert (parsed.code, parsed.sector, parsed.district, parsed.uk) == (code, sector, district, True)


@pytest.mark.parametrize("raw", ["2615", "90210", "75008", "K1A 0B1"])
def test_non_uk_postcodes_are_kept_as_given(raw: str) -> None:
    parsed = parse_postcode(raw)
    assert parsed is not None and not parsed.uk
    assert parsed.code == raw.replace(" ", "")


def test_letter_o_for_zero_in_the_inward_code() -> None:
    parsed = parse_postcode("GU1 OAB")
    assert parsed is not None and parsed.uk and parsed.code == "GU1 0AB"


def test_empty_postcode() -> None:
    assert parse_postcode("  ") is None and parse_postcode(None) is None
