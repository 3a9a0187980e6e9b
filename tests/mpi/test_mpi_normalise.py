"""Normalisation: dates (partial, invalid, transposed), sex, NHS numbers, addresses, phones."""

from __future__ import annotations

from datetime import date

import pytest
from mpi_factories import NHS, match_record

from mpi.nhs_number import is_valid_nhs_number
from mpi.normalise import MatchRecord, as_date, normalise_address, normalise_phone, normalise_sex, parse_birth_date


@pytest.mark.parametrize(("raw", "parts"), [
    (date(1980, 5, 17), (1980, 5, 17)),
    ("1980-05-17", (1980, 5, 17)),
    ("19800517", (1980, 5, 17)),  # HL7 DTM
    ("1980-05", (1980, 5, 0)),  # partial
    ("1980", (1980, 0, 0)),  # year only
    ("17/05/1980", (1980, 5, 17)),  # UK order
    ("1980-02-30", (1980, 2, 30)),  # invalid: parts kept
    ("1980-17-05", (1980, 5, 17)),  # a month over 12 is a transposition
    ("1980-05-17T10:00:00", (1980, 5, 17)),
    ("not a date", (0, 0, 0)),
    ("0001-01-01", (0, 0, 0)),  # implausible year
    ("", (0, 0, 0)),
])
def test_birth_dates(raw: object, parts: tuple[int, int, int]) -> None:
    assert parse_birth_date(raw) == parts  # type: ignore[arg-type]


def test_as_date_only_for_full_valid_dates() -> None:
    assert as_date("1980-05-17") == date(1980, 5, 17)
    assert as_date("1980-02-30") is None and as_date("1980") is None


@pytest.mark.parametrize(("raw", "sex"), [("male", "M"), ("F", "F"), ("female", "F"), ("other", "O"),
                                          ("unknown", None), ("U", None), (None, None)])
def test_sex(raw: str | None, sex: str | None) -> None:
    assert normalise_sex(raw) == sex


def test_nhs_number_validity_and_verification() -> None:
    assert is_valid_nhs_number(NHS)
    record = match_record(nhs_number="943 476 5919")
    assert (record.nhs_number, record.nhs_valid, record.nhs_verified) == (NHS, True, True)
    mistyped = match_record(nhs_number="9434765918")
    assert mistyped.nhs_valid is False and mistyped.nhs_verified is False
    untraced = match_record(nhs_verification="02")
    assert untraced.nhs_valid and not untraced.nhs_verified


def test_address_and_phone() -> None:
    assert normalise_address("12 Mill Ln, Guildford") == normalise_address("12, MILL LANE GUILDFORD")
    assert normalise_address("Flat 2, 5 High St", "GU1 4AB") == "2 5 FLAT HIGH STREET"
    assert normalise_phone("+44 1483 555123") == "01483555123"
    assert normalise_phone("12") is None


def test_match_record_round_trips_through_storage() -> None:
    record = match_record(given="Mrs Anne-Marie", family="Smith-Jones")
    assert (record.given, record.middle, record.family) == ("ANNE", "MARIE", "SMITH JONES")
    assert MatchRecord.from_stored(record.record_id, record.as_stored()) == record
