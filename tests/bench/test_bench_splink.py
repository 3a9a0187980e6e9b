"""The benchmarks' Splink model (``bench.bench_mpi_batch_vs_splink.splink_settings``, used on DuckDB and on Spark)
and where ``bench mpi_spark`` keeps each engine's clusters."""

from __future__ import annotations

import argparse
from collections import Counter

import pytest

from bench.bench_mpi_spark import labels_path

HOUSEHOLD = {"postcode", "address", "phone"}


@pytest.mark.parametrize("lean", [False, True], ids=["full model", "lean model"])
def test_what_a_household_shares_is_counted_once(lean: bool) -> None:
    """Splink multiplies its comparisons' evidence as if independent; a household shares postcode, address and
    phone, so as three comparisons they counted one home three times and merged households (F1 0.55)."""
    from bench.bench_mpi_batch_vs_splink import splink_settings

    columns = [{c.unquote().name for c in creator.get_comparison("duckdb")._input_columns_used_by_case_statement}
               for creator in splink_settings(lean=lean).comparisons]
    household = [used & HOUSEHOLD for used in columns if used & HOUSEHOLD]
    assert len(household) == 1
    read = Counter(name for used in columns for name in used)
    assert all(count == 1 for count in read.values())  # no field in two comparisons either


def test_a_small_driver_run_keeps_its_own_clusters() -> None:
    """The 512 MB-driver run is compared with the default run and the local relink: it must not overwrite them."""
    def args(driver_memory: str | None) -> argparse.Namespace:
        return argparse.Namespace(people=1000, seed=3, driver_memory=driver_memory)

    paths = {labels_path("spark", args(None)), labels_path("spark", args("512m")), labels_path("local", args(None))}
    assert len(paths) == 3
    assert labels_path("local", args("512m")) == labels_path("local", args(None))  # the local relink has no driver
