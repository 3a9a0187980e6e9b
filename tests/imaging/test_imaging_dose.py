"""imaging.dose: totals that never count a re-sent report twice, effective-dose estimates, DRL comparisons."""

from __future__ import annotations

import pytest

from imaging import dose as dz
from imaging.reference import effective_dose_coefficients, national_drls

K = effective_dose_coefficients()


def ct(uid: str, dlp: float | None, ctdivol: float = 10.0, region: str | None = "chest",
       phantom: int | None = 32) -> dz.DoseEvent:
    return dz.DoseEvent(uid, dz.CT, target_region=region, phantom_cm=phantom, ctdivol_mgy=ctdivol, dlp_mgycm=dlp)


def report(key: str, uids: set[str], **totals: float) -> dz.ReportTotals:
    return dz.ReportTotals(key, frozenset(uids), **totals)


def test_planes_a_and_b_add_and_duplicate_containers_do_not() -> None:
    planes = [dz.PlaneTotals("a", dap_total_gym2=2.0), dz.PlaneTotals("b", dap_total_gym2=1.0),
              dz.PlaneTotals("a", dap_total_gym2=2.0)]
    totals = dz.report_totals("r", [], planes)
    assert totals.dap_total_gym2 == 3.0


def test_a_growing_report_keeps_its_largest_totals_and_every_event() -> None:
    first = report("study:1", {"e1"}, dlp_total_mgycm=100.0)
    grown = report("study:1", {"e1", "e2"}, dlp_total_mgycm=250.0)
    merged = dz.merge_report(dz.merge_report(None, first), grown)
    again = dz.merge_report(merged, first)  # the older, shorter version re-sent late
    assert (again.dlp_total_mgycm, again.event_uids) == (250.0, frozenset({"e1", "e2"}))


@pytest.mark.parametrize(("reports", "events", "expected"), [
    # one report: its accumulated total stands for its events (vendors round event values)
    ([report("s", {"e1", "e2"}, dlp_total_mgycm=301.0)], [ct("e1", 150.0), ct("e2", 150.0)], 301.0),
    # two reports sharing an event (a growing report re-sent under a new SOP UID): the larger counts once
    ([report("r1", {"e1"}, dlp_total_mgycm=150.0), report("r2", {"e1", "e2"}, dlp_total_mgycm=300.0)],
     [ct("e1", 150.0), ct("e2", 150.0)], 300.0),
    # two performed procedure steps with disjoint events: both count
    ([report("pps1", {"e1"}, dlp_total_mgycm=150.0), report("pps2", {"e2"}, dlp_total_mgycm=200.0)],
     [ct("e1", 150.0), ct("e2", 200.0)], 350.0),
    # a report without an accumulated DLP: its events are added
    ([report("s", {"e1", "e2"})], [ct("e1", 150.0), ct("e2", 100.0)], 250.0),
])
def test_dlp_total(reports: list[dz.ReportTotals], events: list[dz.DoseEvent], expected: float) -> None:
    summary = dz.summarise(events, reports, study_region="chest", coefficients=K)
    assert summary.dlp_total_mgycm == pytest.approx(expected)
    assert summary.irradiation_events == len(events)


def test_ctdivol_is_the_highest_event_value() -> None:
    summary = dz.summarise([ct("e1", 10.0, ctdivol=3.0), ct("e2", 400.0, ctdivol=12.5)], [], study_region="chest",
                           coefficients=K)
    assert summary.ctdivol_mgy == 12.5


def test_header_dose_counts_only_without_an_rdsr() -> None:
    header = dz.DoseEvent("header:ct:s1", dz.CT, source="header", ctdivol_mgy=99.0)
    assert dz.summarise([header], [], study_region="head", coefficients=K).dose_source == "header"
    summary = dz.summarise([header, ct("e1", 10.0, ctdivol=5.0)], [], study_region="head", coefficients=K)
    assert (summary.dose_source, summary.ctdivol_mgy) == ("rdsr", 5.0)


def test_mammography_agd_per_side() -> None:
    events = [dz.DoseEvent(f"v{i}", dz.MAMMO, laterality=side, agd_mgy=agd)
              for i, (side, agd) in enumerate([("left", 1.2), ("left", 1.3), ("right", 1.1)])]
    summary = dz.summarise(events, [], study_region="breast", coefficients=K)
    assert (summary.agd_left_mgy, summary.agd_right_mgy) == (pytest.approx(2.5), pytest.approx(1.1))
    assert summary.effective_dose_msv is None


def test_effective_dose_per_event_uses_region_and_phantom() -> None:
    head, chest = ct("h", 1000.0, region="head", phantom=16), ct("c", 400.0, region="chest", phantom=32)
    estimate = dz.effective_dose([head, chest], 1400.0, None, K)
    assert estimate.value_msv == pytest.approx(0.0019 * 1000 + 0.0145 * 400)  # REFERENCE.md coefficients
    assert "estimate" in estimate.method and "ICRP 103" in estimate.method


def test_effective_dose_falls_back_to_the_study_region() -> None:
    estimate = dz.effective_dose([ct("e", 500.0, region=None)], 500.0, "abdomen", K)
    assert estimate.value_msv == pytest.approx(0.0153 * 500)


def test_a_head_scan_reported_on_the_body_phantom_is_not_given_the_head_coefficient() -> None:
    estimate = dz.effective_dose([ct("e", 500.0, region="head", phantom=32)], 500.0, None, K)
    assert estimate.value_msv is None and estimate.method.startswith("not estimated")


def test_incomplete_events_use_the_total_with_the_study_region() -> None:
    estimate = dz.effective_dose([ct("e", 100.0, region="chest")], 660.0, "chest-abdomen-pelvis", K)
    assert estimate.value_msv == pytest.approx(0.0152 * 660)
    assert "total DLP" in estimate.method


def test_region_without_coefficient_gives_no_estimate() -> None:
    estimate = dz.effective_dose([ct("e", 100.0, region="knee")], 100.0, "knee", K)
    assert estimate.value_msv is None


@pytest.mark.parametrize(("modality", "region", "description", "age", "category"), [
    ("CT", "head", "CT HEAD", 60, "ct-head"),
    ("CT", "abdomen-pelvis", "CT KUB", 40, "ct-kub"),  # KUB has its own DRL
    ("CT", "pulmonary-angiography", "CTPA", 70, "ctpa"),
    ("CT", "head", "CT HEAD", 10, None),  # the DRLs are for adults
    ("MR", "head", "MR HEAD", 60, None),
    ("CT", "knee", "CT KNEE", 60, None),
])
def test_drl_category(modality: str, region: str, description: str, age: int, category: str | None) -> None:
    assert dz.drl_category(modality, region, description, age) == category


def test_drl_comparison() -> None:
    comparison = dz.compare_with_drl("ct-head", 50.0, 700.0, national_drls())
    assert comparison.ctdivol_ratio == pytest.approx(50 / 47)
    assert comparison.dlp_ratio == pytest.approx(700 / 790)
    assert comparison.above_drl is True
    cap = dz.compare_with_drl("ct-chest-abdomen-pelvis", 12.0, 600.0, national_drls())
    assert cap.ctdivol_ratio is None and cap.above_drl is False  # no CTDIvol DRL for CAP
