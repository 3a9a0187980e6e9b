"""Identifiers: NHS numbers from the 999 test range with valid check digits, hospital numbers in each trust's format."""

from __future__ import annotations

import re

import pytest

from mpi.nhs_number import is_valid_nhs_number
from priorscan.errors import ConfigurationError
from priorscan.trusts import TrustRegistry, default_trusts
from regionsynth.identifiers import NhsNumberAllocator, PatternNumbers, UidFactory, invalid_nhs_number


def test_issued_nhs_numbers_are_valid_unique_and_in_the_test_range() -> None:
    allocator = NhsNumberAllocator(salt=3)
    numbers = [allocator.issue() for _ in range(20_000)]
    assert all(n.startswith("999") and len(n) == 10 for n in numbers)
    assert all(is_valid_nhs_number(n) for n in numbers)
    assert len(set(numbers)) == len(numbers)


def test_unissued_numbers_are_valid_and_never_issued() -> None:
    allocator = NhsNumberAllocator(salt=3)
    issued = {allocator.issue() for _ in range(5_000)}
    spare = [allocator.unissued() for _ in range(500)]
    assert all(is_valid_nhs_number(n) for n in spare)
    assert not issued & set(spare)


@pytest.mark.parametrize("position", range(3, 10))
def test_an_invalid_nhs_number_fails_the_check(position: int) -> None:
    number = NhsNumberAllocator().issue()
    made = [invalid_nhs_number(number, position, str(d)) for d in range(10)]
    assert any(made), "some replacement digit must break the check"
    assert all(not is_valid_nhs_number(m) for m in made if m)


@pytest.mark.parametrize("ods", [t.ods for t in default_trusts().trusts])
def test_hospital_numbers_fully_match_the_trust_pattern(ods: str) -> None:
    trust = default_trusts().by_ods(ods)
    numbers = PatternNumbers(trust.hospital_number_pattern, salt=1)
    issued = [numbers.next() for _ in range(5_000)]
    assert all(re.fullmatch(trust.hospital_number_pattern or "", n) for n in issued)
    assert len(set(issued)) == len(issued)


@pytest.mark.parametrize("pattern", [r"^[A-Z]+\d*$", r"^(RTK|ASPH)\d{6}$", r"^\w{8}$"])
def test_patterns_beyond_the_generator_are_refused(pattern: str) -> None:
    with pytest.raises(ConfigurationError):
        PatternNumbers(pattern)


def test_uids_are_reproducible_from_the_seed() -> None:
    first, again, other = UidFactory(1), UidFactory(1), UidFactory(2)
    a = [first.next("study") for _ in range(5)]
    assert a == [again.next("study") for _ in range(5)]
    assert not set(a) & {other.next("study") for _ in range(5)}
    assert all(len(uid) <= 64 and re.fullmatch(r"[0-9.]+", uid) for uid in a)


def test_default_trusts_are_loadable(trusts: TrustRegistry) -> None:
    assert {"RTK", "RXC", "RPC", "RA2", "RYR"} <= set(trusts.ods_codes)
