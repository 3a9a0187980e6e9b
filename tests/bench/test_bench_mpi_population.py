"""The MPI benchmarks' population (``bench.mpi_population.make_population``): the same records for a seed as the
generator has always drawn (the benchmarks' figures are comparable across runs and changes), and more people than
the 999 test range of NHS numbers holds."""

from __future__ import annotations

import hashlib
import random

import pytest

import bench.mpi_population as population
from bench.mpi_population import ErrorRates, make_people, make_population
from mpi import is_valid_nhs_number


def test_a_seed_draws_the_same_population_as_it_always_has() -> None:
    """The digest of ``make_population(2000, seed=3)`` as the generator drew it before it was made faster
    (cumulative weights, 2026-12-07): a change here changes every benchmark's data."""
    made = make_population(2000, seed=3)
    digest = hashlib.sha256(repr((made.records, made.truth)).encode()).hexdigest()[:16]
    assert (len(made.records), digest) == (3620, "d8194d5590ee085b")


def test_more_people_than_the_test_range_holds_get_distinct_valid_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(population, "TEST_RANGE_PEOPLE", 100)
    people = make_people(3000, random.Random(4), ErrorRates())
    numbers = [person.nhs_number for person in people]
    assert all(is_valid_nhs_number(n) for n in numbers)
    assert len(set(numbers)) == len(numbers)
    assert sum(n.startswith("999") for n in numbers) < len(numbers) // 10  # numbered by index, not drawn from 999
