"""The population: households, twins, ages, names, postcodes and NHS numbers of the people themselves."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import pytest
from synth_feeds import read_csv

from mpi.nhs_number import is_valid_nhs_number

AREAS = {"GU", "KT", "TW", "RH", "BN", "TN"}


@pytest.fixture(scope="module")
def people(large_region: Path) -> list[dict[str, str]]:
    return read_csv(large_region / "truth" / "people.csv")


def _age(person: dict[str, str], on: date = date(2025, 6, 30)) -> int:
    born = date.fromisoformat(person["birth_date"])
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def test_twins_share_surname_birth_date_and_address_but_not_given_name(people: list[dict[str, str]]) -> None:
    by_id = {p["person_id"]: p for p in people}
    twins = [p for p in people if p["twin_of"]]
    assert len(twins) >= 10
    for twin in twins:
        other = by_id[twin["twin_of"]]
        assert other["twin_of"] == twin["person_id"]
        assert (twin["family"], twin["birth_date"], twin["postcode"], twin["address_line1"]) == (
            other["family"], other["birth_date"], other["postcode"], other["address_line1"])
        assert twin["given"] != other["given"]


def test_households_share_an_address_and_families_a_surname(people: list[dict[str, str]]) -> None:
    households = defaultdict(list)
    for p in people:
        households[p["family_id"]].append(p)
    assert len({(p["address_line1"], p["postcode"]) for p in households["H0000001"]}) == 1
    for members in households.values():
        assert len({(m["address_line1"], m["postcode"]) for m in members}) == 1
        children = [m for m in members if m["role"] == "child"]
        if children:
            householder = next(m for m in members if m["role"] == "householder")
            assert all(c["family"] == householder["family"] for c in children)


def test_ages_follow_a_realistic_pyramid(people: list[dict[str, str]]) -> None:
    ages = [_age(p) for p in people]
    share = lambda test: sum(map(test, ages)) / len(ages)  # noqa: E731
    assert 0.15 <= share(lambda a: a < 16) <= 0.25
    assert 0.13 <= share(lambda a: a >= 65) <= 0.25
    assert 0.02 <= share(lambda a: a >= 80) <= 0.08
    assert max(ages) <= 105


def test_common_names_are_over_represented(people: list[dict[str, str]]) -> None:
    surnames = Counter(p["family"] for p in people)
    assert surnames.most_common(1)[0][0] in {"Smith", "Jones", "Williams"}
    given = Counter(p["given"] for p in people)
    top = sum(n for _, n in given.most_common(5))
    assert top / len(people) > 0.04  # five names of 360 cover far more than 5/360 of people


def test_postcodes_are_in_the_region(people: list[dict[str, str]]) -> None:
    for p in people:
        outward = p["postcode"].split(" ")[0]
        assert outward.rstrip("0123456789") in AREAS


def test_nhs_numbers_are_valid_test_numbers_and_unique(people: list[dict[str, str]]) -> None:
    numbers = [p["nhs_number"] for p in people if p["nhs_number"]]
    assert len(numbers) >= 0.97 * len(people)
    assert all(n.startswith("999") and is_valid_nhs_number(n) for n in numbers)
    assert len(set(numbers)) == len(numbers)


def test_people_are_registered_at_one_to_three_trusts_by_geography(people: list[dict[str, str]]) -> None:
    counts = Counter(len(p["trusts"].split(";")) for p in people)
    assert set(counts) <= {1, 2, 3} and counts[2] > 0 and counts[3] > 0
    home = Counter((p["postcode"][:2].rstrip("0123456789"), p["trusts"].split(";")[0]) for p in people)
    assert home[("TN", "RXC")] > home[("TN", "RTK")]
    assert home[("BN", "RYR")] > home[("BN", "RA2")]
    assert home[("TW", "RTK")] > home[("TW", "RYR")]
