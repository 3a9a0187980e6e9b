"""imaging.dose: totals that count every event once, effective-dose estimates that apply, DRL comparisons that match.

Coefficients are REFERENCE.md's (adults: ICRP 103) and AAPM Report 96 table 3's (children, after Shrimpton 2005),
as shipped in ``imaging/data/effective_dose_coefficients.csv``.
"""

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
    ("CT", "abdomen-pelvis", "CT Urogram", 40, "ct-urogram"),  # a urogram is not a KUB (890 vs 290 mGy·cm)
    ("CT", "abdomen-pelvis", "CT UROGRAM KUB", 40, "ct-urogram"),  # a urogram whose phases include a KUB
    ("CT", "abdomen-pelvis", "CT colonography", 70, "ct-colonography"),  # not the abdomen-pelvis DRL
    ("CT", "abdomen-pelvis", "CTC prone and supine", 70, "ct-colonography"),  # the UK abbreviation
    ("CT", "chest", "HRCT chest", 55, "ct-hrct"),  # not the lung-cancer chest DRL
    ("CT", "chest", "CT chest high resolution", 55, "ct-hrct"),
    ("CT", "chest", "HR CT chest", 55, "ct-hrct"),  # H-DOSE-13: was the lung-cancer chest DRL (290, not 300)
    ("CT", "chest", "CT thorax high res", 55, "ct-hrct"),  # H-DOSE-13: "high res" (was the chest DRL)
    ("CT", "abdomen-pelvis", "CT K.U.B", 40, "ct-kub"),  # H-DOSE-13: dotted, was abdomen-pelvis (530, not 290)
    ("CT", "chest-abdomen-pelvis", "CT NTAP", 50, "ct-neck-chest-abdomen-pelvis"),
    ("CT", "face", "CT PNS", 30, "ct-sinuses"),
    ("CT", "chest", "CT CHEST", 55, "ct-chest"),
    ("CT", "face", "CT sinuses", 30, "ct-sinuses"),
    ("CT", "face", "CT facial bones", 30, None),  # facial bones have no national DRL
    ("CT", "chest-abdomen-pelvis", "CT neck chest abdomen pelvis", 50, "ct-neck-chest-abdomen-pelvis"),
    ("CT", "chest-abdomen-pelvis", "CT CAP", 50, "ct-chest-abdomen-pelvis"),
    ("CT", "chest-abdomen", "CT chest and abdomen", 50, "ct-chest-abdomen"),
    ("CT", "pulmonary-angiography", "CTPA", 70, "ctpa"),
    ("CT", "coronary-angiography", "CT coronary angiogram", 60, None),  # not shipped: no values in REFERENCE.md
    ("CT", "abdomen", "CT abdomen", 60, None),  # the national DRL is for abdomen and pelvis
    ("CT", "cervical-spine", "CT C-spine", 30, "ct-cervical-spine"),
    ("CT", "head", "CT HEAD", 10, None),  # the DRLs are for adults
    ("CT", "head", "CT HEAD", None, None),  # an unknown age is not known to be an adult's
    ("MR", "head", "MR HEAD", 60, None),
    ("CT", "knee", "CT KNEE", 60, None),
])
def test_drl_category(modality: str, region: str, description: str, age: int | None, category: str | None) -> None:
    assert dz.drl_category(modality, region, description, age) == category


def test_drl_comparison() -> None:
    comparison = dz.compare_with_drl("ct-head", 50.0, 700.0, national_drls())
    assert comparison.ctdivol_ratio == pytest.approx(50 / 47)
    assert comparison.dlp_ratio == pytest.approx(700 / 790)
    assert comparison.above_drl is True
    cap = dz.compare_with_drl("ct-chest-abdomen-pelvis", 12.0, 600.0, national_drls())
    assert cap.ctdivol_ratio is None and cap.above_drl is False  # no CTDIvol DRL for CAP
    assert "median" in cap.note and "not a finding" in cap.note and cap.indication == "cancer"


# --- several reports of one study -----------------------------------------------------------------------------------

def test_two_reports_of_one_study_with_disjoint_events_add_up_and_the_estimate_follows() -> None:
    # a continued CT examination: two reports, one scope (the study), different events (issue 14: 710 vs 1410)
    reports = [report("report:1.2.3.1", {"a1"}, dlp_total_mgycm=700.0),
               report("report:1.2.3.2", {"b1"}, dlp_total_mgycm=710.0)]
    summary = dz.summarise([ct("a1", 700.0), ct("b1", 710.0)], reports, study_region="chest", coefficients=K)
    assert summary.dlp_total_mgycm == pytest.approx(1410.0)
    assert summary.effective_dose_msv == pytest.approx(0.0145 * 1410.0)  # the same DLP, never the larger report's


def test_a_report_sent_again_under_its_own_uid_counts_once() -> None:
    first = report("report:1.2.3.1", {"a1", "a2"}, dlp_total_mgycm=300.0)
    merged = dz.merge_report(dz.merge_report(None, first), first)
    summary = dz.summarise([ct("a1", 150.0), ct("a2", 150.0)], [merged], study_region="chest", coefficients=K)
    assert summary.dlp_total_mgycm == pytest.approx(300.0)


def test_a_grown_report_with_a_new_uid_counts_its_largest_version() -> None:
    reports = [report("report:v1", {"a1"}, dlp_total_mgycm=7.46),  # OpenREM's Siemens "Multi" reports
               report("report:v2", {"a1", "a2"}, dlp_total_mgycm=77.27),
               report("report:v3", {"a1", "a2", "a3"}, dlp_total_mgycm=236.09)]
    events = [ct("a1", 7.46), ct("a2", 69.81), ct("a3", 158.82)]
    assert dz.summarise(events, reports, study_region="chest", coefficients=K).dlp_total_mgycm == pytest.approx(236.09)


def test_reports_that_overlap_in_part_count_each_event_once() -> None:
    reports = [report("report:x", {"e1", "e2"}, dlp_total_mgycm=300.0),
               report("report:y", {"e2", "e3"}, dlp_total_mgycm=250.0)]
    events = [ct("e1", 100.0), ct("e2", 200.0), ct("e3", 50.0)]
    assert dz.summarise(events, reports, study_region="chest", coefficients=K).dlp_total_mgycm == pytest.approx(350.0)


@pytest.mark.parametrize(("second", "expected", "reason"), [
    (9.0e-6, 9.0e-6, "the same totals without events: the same report re-sent under a new UID"),
    (4.0e-6, 13.0e-6, "different totals: two reports"),
])
def test_reports_without_events(second: float, expected: float, reason: str) -> None:
    reports = [report("report:1", set(), dap_total_gym2=9.0e-6), report("report:2", set(), dap_total_gym2=second)]
    summary = dz.summarise([], reports, study_region="abdomen", coefficients=K)
    assert summary.dap_total_gym2 == pytest.approx(expected), reason


@pytest.mark.parametrize(("reports", "headers", "dap", "fluoro", "reason"), [
    ([report("summary:s", set(), dap_total_gym2=2.4e-5, fluoro_time_s=34.0)], [], 2.4e-5, 34.0,
     "a summary alone: its totals"),
    ([report("summary:s", set(), dap_total_gym2=2.4e-5, fluoro_time_s=34.0),
      report("report:r", {"e"}, dap_total_gym2=2.0e-5, fluoro_time_s=30.0)], [], 2.0e-5, 30.0,
     "an RDSR of the same work beside it: the RDSR only, the summary is not added (was 4.4e-5)"),
    ([report("summary:s", set(), dap_total_gym2=2.4e-5, fluoro_time_s=34.0),
      report("report:r", set(), dap_total_gym2=2.0e-5)], [], 2.0e-5, 34.0,
     "an RDSR without events beside it: its DAP; the fluoroscopy time it does not state, from the summary"),
    ([report("summary:s", set(), dap_total_gym2=2.4e-5, fluoro_time_s=34.0),
      report("report:ct", set(), dlp_total_mgycm=500.0)], [], 2.4e-5, 34.0,
     "a CT RDSR in the same study states no DAP: the summary's DAP is not dropped"),
    ([report("summary:s1", set(), dap_total_gym2=1.0e-5, fluoro_time_s=20.0),
      report("summary:s2", set(), dap_total_gym2=2.4e-5, fluoro_time_s=34.0)], [], 2.4e-5, 34.0,
     "a summary re-sent as the examination grew: the largest, not the sum (was 3.4e-5)"),
    ([report("summary:s", set(), dap_total_gym2=2.4e-5, fluoro_time_s=34.0)],
     [dz.DoseEvent("h1", dz.PROJECTION, source="header", dap_gym2=5.0e-6)], 2.4e-5, 34.0,
     "image headers beside a summary: the summary, which covers the fluoroscopy the images do not"),
])
def test_a_vendor_summary_counts_only_when_no_rdsr_does(reports: list[dz.ReportTotals], headers: list[dz.DoseEvent],
                                                        dap: float, fluoro: float | None, reason: str) -> None:
    events = headers + [dz.DoseEvent("e", dz.FLUORO, dap_gym2=2.0e-5, duration_s=30.0)
                        for r in reports if "e" in r.event_uids]
    summary = dz.summarise(events, reports, study_region=None, coefficients=K)
    assert summary.dose_source == "rdsr", reason
    assert summary.dap_total_gym2 == pytest.approx(dap), reason
    assert summary.fluoro_time_s == (pytest.approx(fluoro) if fluoro is not None else None), reason


def test_a_summary_that_states_nothing_leaves_the_image_headers_in_place() -> None:
    headers = [dz.DoseEvent("h1", dz.PROJECTION, source="header", dap_gym2=5.0e-6)]
    summary = dz.summarise(headers, [report("summary:s", set())], study_region=None, coefficients=K)
    assert (summary.dose_source, summary.dap_total_gym2) == ("header", pytest.approx(5.0e-6))


def test_when_events_do_not_add_up_the_estimate_uses_the_total_and_says_so() -> None:
    reports = [report("report:1", {"e"}, dlp_total_mgycm=500.0)]
    summary = dz.summarise([ct("e", 100.0)], reports, study_region="chest", coefficients=K)
    assert summary.effective_dose_msv == pytest.approx(0.0145 * 500.0)
    assert "total DLP" in (summary.effective_dose_method or "")


# --- phantoms ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("region", "phantom", "k", "reason"), [
    ("head", 16, 0.0019, "the head coefficient is defined on the 16 cm phantom"),
    ("head", 32, None, "a head DLP on the 32 cm phantom is about half the 16 cm one: the head k would halve E"),
    ("neck", 32, 0.0051, "the neck coefficient is defined on the 32 cm (body) phantom"),
    ("neck", 16, None, "a neck DLP on the 16 cm phantom would double E"),
    ("chest", 16, None, "a body region on the head phantom"),
    ("chest", None, 0.0145, "an adult whose phantom is not stated: the usual convention, and the method says so"),
])
def test_a_coefficient_is_applied_only_on_its_phantom(region: str, phantom: int | None, k: float | None,
                                                      reason: str) -> None:
    per_event = dz.effective_dose([ct("e", 500.0, region=region, phantom=phantom)], 500.0, None, K, 50)
    # the same event when the events do not account for the total: the study's coefficient, the same phantom rule
    by_total = dz.effective_dose([ct("e", 100.0, region=region, phantom=phantom)], 500.0, region, K, 50)
    if k is None:
        assert per_event.value_msv is None and by_total.value_msv is None, reason
        assert f"{phantom} cm phantom" in per_event.method and f"{phantom} cm phantom" in by_total.method
    else:
        assert per_event.value_msv == pytest.approx(k * 500.0), reason
        assert by_total.value_msv == pytest.approx(k * 500.0), reason


def test_an_adult_of_unknown_age_gets_the_adult_coefficient_with_that_said() -> None:
    estimate = dz.effective_dose([ct("e", 500.0)], 500.0, "chest", K, None)
    assert estimate.value_msv == pytest.approx(0.0145 * 500.0)
    assert "age not stated" in estimate.method


# --- children ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("age", "region", "phantom", "k", "reason"), [
    (5, "head", 16, 0.0040, "AAPM Report 96 table 3: head, 5 years (about twice the adult 0.0019)"),
    (0, "head", 16, 0.011, "newborn head"),
    (2, "head", 16, 0.0067, "nearest reference age 1 year"),
    (10, "chest", 16, 0.013, "chest, 10 years"),
    (1, "chest-abdomen-pelvis", 16, 0.028, "trunk, 1 year"),
    (6, "abdomen-pelvis", 16, 0.020, "abdomen and pelvis, 5 years"),
    (5, "head", 32, None, "the paediatric values are defined on the 16 cm phantom"),
    (5, "chest", 32, None, "a child's body on the 32 cm phantom: no cited conversion, so no estimate"),
    (5, "head", None, None, "a child's phantom not stated"),
    (5, "neck", 16, None, "no verified paediatric neck value is shipped"),
    (14, "head", 16, None, "13 to 15: no published reference age close enough"),
    (16, "head", 16, 0.0019, "16 is an adult (REFERENCE.md)"),
])
def test_children_get_age_specific_coefficients_or_no_estimate(age: int, region: str, phantom: int | None,
                                                                k: float | None, reason: str) -> None:
    estimate = dz.effective_dose([ct("e", 300.0, region=region, phantom=phantom)], 300.0, region, K, age)
    if k is None:
        assert estimate.value_msv is None and estimate.method.startswith("not estimated"), reason
    else:
        assert estimate.value_msv == pytest.approx(k * 300.0), reason
    if k is not None and age < 16:
        assert "AAPM Report 96" in estimate.method and "paediatric" in estimate.method


def test_a_five_year_olds_head_never_gets_the_adult_coefficient() -> None:
    summary = dz.summarise([ct("e", 400.0, region="head", phantom=16)], [report("report:1", {"e"},
                                                                                dlp_total_mgycm=400.0)],
                           study_region="head", coefficients=K, patient_age_years=5)
    assert summary.effective_dose_msv == pytest.approx(0.0040 * 400.0)
    assert summary.effective_dose_msv != pytest.approx(0.0019 * 400.0)
