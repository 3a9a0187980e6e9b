"""The accuracy report (``priorscan evaluate --report``) and its figures: charts written, nothing identifying in
them, a labelled sample opened near the threshold and read back once stewards decide."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bench.mpi_population import make_population
from mpi.accuracy import cluster_sizes, sample_near_threshold, suggested_threshold, threshold_curve
from mpi.batch import bulk_load, relink
from mpi.report import build_report
from mpi.tables import ReviewItem

CHARTS = ("m_u.png", "weights.png", "threshold.png", "clusters.png", "linkability.png")


def test_threshold_curve_counts_what_each_threshold_would_link() -> None:
    probability = np.asarray([0.99, 0.95, 0.9, 0.6, 0.3])
    same = np.asarray([True, True, False, True, False])
    curve = threshold_curve(probability, same)
    assert curve.thresholds.tolist() == [0.99, 0.95, 0.9, 0.6, 0.3]
    assert curve.precision.tolist() == pytest.approx([1.0, 1.0, 2 / 3, 3 / 4, 3 / 5])
    assert curve.recall.tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3, 1.0, 1.0])
    assert suggested_threshold(curve, target_precision=0.999) == 0.95, "the lowest threshold still precise"
    assert suggested_threshold(threshold_curve(np.asarray([0.9]), np.asarray([False]))) is None


def test_sample_is_drawn_around_the_threshold() -> None:
    rng = np.random.default_rng(0)
    probability = 1 / (1 + 2.0 ** -rng.uniform(-40, 40, 20_000))
    chosen = sample_near_threshold(probability, 200, threshold=0.99, rng=rng)
    assert len(chosen) == 200 and len(set(chosen.tolist())) == 200
    weights = np.log2(probability[chosen] / (1 - probability[chosen]))
    assert weights.min() >= np.log2(0.05 / 0.95) - 1e-9 and weights.max() <= 2 * np.log2(99) + 4.3
    assert (weights < np.log2(99)).sum() > 50 and (weights > np.log2(99)).sum() > 20, "both sides of it"


def test_cluster_sizes() -> None:
    assert cluster_sizes(["a", "a", "b", "c", "c", "c"]) == {1: 1, 2: 1, 3: 1}


def test_report_writes_charts_without_identifiers_and_reads_stewards_labels(session: Session,
                                                                            tmp_path: Path) -> None:
    from mpi import PatientIndex
    from priorscan.trusts import default_trusts

    population = make_population(600, seed=5)
    bulk_load(session, population.records)
    session.commit()
    relink(session)
    session.commit()
    truth = {(ns, local): person for person, ns, local in population.truth}
    out = tmp_path / "report"
    summary = build_report(session, out, truth=truth, sample=12)
    session.commit()
    for chart in CHARTS:
        assert (out / chart).stat().st_size > 5_000, chart
    assert summary["labelled_by_truth"] > 1000 and summary["labelled"]["suggested_threshold"] is not None
    opened = summary["sample_opened"]
    assert 1 <= opened <= 12, "pairs near the threshold, in two patients, undecided"
    assert sum(summary["cluster_sizes"].values()) < summary["records"]
    written = b"".join(p.read_bytes() for p in out.iterdir())
    for record in population.records[:200]:  # pseudonymised: no name, NHS number, hospital number or address
        for value in (record.family, record.nhs_number, record.local_id, record.address):
            if value and len(value) > 4:
                assert value.encode() not in written, "an identifier left the store"

    sampled = session.scalars(select(ReviewItem).where(ReviewItem.weights["guard"].as_string()
                                                       == "labelled-sample")).all()
    assert len(sampled) == opened
    index = PatientIndex(session, default_trusts())
    for item in sampled[:5]:
        index.resolve_review(item.id, "no-match", actor="steward")
    session.commit()
    again = build_report(session, tmp_path / "again")
    decided = min(5, opened)
    assert again["labelled_by_stewards"] == decided and again["labelled"]["pairs"] == decided
    assert json.loads((tmp_path / "again" / "summary.json").read_text())["model_version"] == summary["model_version"]
