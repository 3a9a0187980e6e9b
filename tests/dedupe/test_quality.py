"""Recall and precision against a synthetic region's ground-truth repeats (``priorscan synth``, then
``priorscan ingest``; every order is checked as of its own time). Slow: ``bench/bench_dedupe.py quality`` reports
the figures for a larger region (BENCHMARKS.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dedupe import evaluate_repeats
from priorscan.cli import main
from priorscan.db import make_engine, session_factory
from tests.fixed_dates import AS_OF


@pytest.mark.slow
def test_recall_and_precision_on_a_synthetic_region(tmp_path: Path, sqlite_url: str) -> None:
    region = tmp_path / "region"
    assert main(["synth", "--people", "300", "--out", str(region), "--seed", "11", "--as-of",
                 AS_OF.isoformat()]) == 0
    inputs = [str(p) for p in sorted(region.iterdir()) if p.name != "truth"]
    assert main(["--db", sqlite_url, "ingest", "--no-progress", *inputs]) in (0, 1)
    engine = make_engine(sqlite_url)
    with session_factory(engine)() as session:
        figures = evaluate_repeats(session, region / "truth" / "repeats.csv")
    engine.dispose()
    assert figures.true_repeats > 0
    assert figures.precision >= 0.9, figures.as_dict()
    assert figures.recall >= 0.8, figures.as_dict()
    # where identity, the prior and comparability were right, the rule engine missed nothing
    assert figures.misses["rules"] == 0, figures.as_dict()
