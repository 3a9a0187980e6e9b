"""Data-entry errors: each kind meets its configured rate; each kind of slip changes what it should."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from nicknames import NickNamer
from synth_feeds import read_csv

from regionsynth.corruption import ERROR_KINDS, Quota, nickname, postcode_typo, typo
from regionsynth.settings import ErrorRates


@pytest.mark.parametrize("rate,eligible_share", [
    (0.05, 1.0),  # every record can carry the error
    (0.02, 0.3),  # only some can (a day/month swap needs a day of 12 or less)
    (0.002, 1.0),  # rare errors still appear at their rate
])
def test_a_quota_meets_its_rate(rate: float, eligible_share: float) -> None:
    rng = random.Random(1)
    quota = Quota(rate)
    applied = sum(quota.draw(rng, rng.random() < eligible_share) for _ in range(20_000))
    assert abs(applied - rate * 20_000) <= 2


def test_forced_errors_count_towards_the_rate() -> None:
    rng = random.Random(2)
    quota = Quota(0.08)
    applied = sum(quota.draw(rng, True, forced=i % 50 == 0) for i in range(10_000))
    assert abs(applied - 800) <= 2


@pytest.mark.parametrize("name", ["Smith", "O'Brien", "Smith-Jones", "Li", "Catherine"])
def test_a_typo_changes_the_name(name: str) -> None:
    rng = random.Random(3)
    for _ in range(50):
        assert typo(rng, name).lower() != name.lower()


def test_a_postcode_typo_keeps_a_postcode_shape() -> None:
    rng = random.Random(4)
    for _ in range(200):
        slipped = postcode_typo(rng, "GU1 4AB")
        assert slipped != "GU1 4AB"
        assert re.fullmatch(r"GU1 \d[A-Z]{2}", slipped)


def test_nicknames_come_from_the_nicknames_package() -> None:
    rng = random.Random(5)
    known = {n.capitalize() for n in NickNamer().nicknames_of("william")}
    assert {nickname(rng, "William") for _ in range(30)} <= known
    assert nickname(rng, "Zzyzx") is None


@pytest.mark.parametrize("kind", ERROR_KINDS)
def test_each_error_rate_is_met_within_tolerance(large_region: Path, kind: str) -> None:
    records = read_csv(large_region / "truth" / "records.csv")
    rate = getattr(ErrorRates(), kind.replace("-", "_"))
    observed = sum(kind in r["errors"].split(";") for r in records) / len(records)
    assert abs(observed - rate) <= max(0.1 * rate, 0.0015), f"{kind}: {observed:.4f} vs {rate}"


def test_duplicate_registrations_meet_their_rate(large_region: Path) -> None:
    records = read_csv(large_region / "truth" / "records.csv")
    primaries = sum(r["kind"] == "primary" for r in records)
    duplicates = sum(r["kind"] == "duplicate" for r in records)
    assert abs(duplicates / primaries - ErrorRates().duplicate_registration) <= 0.003


def test_errors_show_in_what_the_record_holds(large_region: Path) -> None:
    people = {p["person_id"]: p for p in read_csv(large_region / "truth" / "people.csv")}
    for record in read_csv(large_region / "truth" / "records.csv"):
        person, errors = people[record["person_id"]], record["errors"].split(";")
        if "missing-nhs-number" in errors:
            assert record["nhs_number_sent"] == "" and record["nhs_status"] in ("03", "04", "07")
        elif "mistyped-nhs-number" in errors:
            assert record["nhs_number_sent"] != person["nhs_number"] and record["nhs_status"] != "01"
        elif person["nhs_number"]:
            assert record["nhs_number_sent"] == person["nhs_number"]
        if "date-transposed" in errors:
            y, m, d = person["birth_date"].split("-")
            assert record["birth_date"] == f"{y}-{d}-{m}"
        if "surname-change" in errors and "typo" not in errors and "swapped-names" not in errors:
            assert record["family"] == person["previous_family"]
        if "moved-house" in errors and "postcode-typo" not in errors:
            assert record["postcode"] == person["previous_postcode"]
        if not set(errors) & {"typo", "nickname", "swapped-names", "surname-change"}:
            assert (record["given"], record["family"]) == (person["given"], person["family"])
