"""imaging.rdsr: real vendor RDSRs (pyskindose's fluoroscopy reports) and reports built by the standard's templates.

Expected values for the vendor files were read independently, once, by walking each file's content tree by hand
with pydicom (ConceptNameCodeSequence → MeasuredValueSequence[0].NumericValue and its unit code) and writing down
what the file states; they are not outputs of the parser under test.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from imaging_factories import (
    HEAD,
    HEAD_PHANTOM,
    CtEvent,
    ct_rdsr,
    mammography_rdsr,
    radiopharmaceutical_rdsr,
    siemens_radiation_summary,
    write,
)

from imaging import dose as dz
from imaging.rdsr import is_dose_report, parse_dose_report

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"

# file stem: (events, DAP total Gy·m², Dose (RP) total Gy, total fluoro time s, scope, planes, first event DAP Gy·m²)
VENDOR = {
    # Siemens AXIOM-Artis: units written "Gym2"; one Single Plane accumulation; scope of accumulation = study
    "siemens_axiom_artis": (21, 9.37e-06, 0.00136, 18.0, "study", ["single"], 7.4e-07),
    # Siemens AXIOM example procedure: numbers written "8.664e-005" style
    "siemens_axiom_example_procedure": (24, 0.00027902, 0.01406, 74.0, "study", ["single"], 5.42e-06),
    # Philips Allura Clarity biplane: Plane A and Plane B accumulations (B all zero), units "Gy.m2", scope = PPS
    "philips_allura_clarity_u104": (25, 7.8391324289e-06, 0.00070936639118, 37.0, "performed procedure step",
                                    ["a", "b"], 1.424178184e-07),
    "philips_allura_clarity_u601": (29, 1.0925838852e-05, 0.00552845528455, 55.0, "performed procedure step",
                                    ["single"], 1.322909954e-07),
}


@pytest.mark.parametrize("name", sorted(VENDOR))
def test_vendor_fluoroscopy_reports(vendor_rdsr: dict[str, Path], name: str) -> None:
    events, dap, rp, fluoro, scope, planes, first_dap = VENDOR[name]
    ds = pydicom.dcmread(vendor_rdsr[name])
    assert is_dose_report(ds)
    report = parse_dose_report(ds)
    assert (report.template, report.modality, len(report.events)) == ("projection", "XA", events)  # intent: combined
    # diagnostic and therapeutic (interventional)
    assert report.scope is not None and report.scope.startswith(scope + ":")
    assert report.report_key == f"report:{ds.SOPInstanceUID}"  # a report is known by its own UID, not its scope
    assert [p.plane for p in report.planes] == planes
    totals = report.totals()
    assert totals.dap_total_gym2 == pytest.approx(dap, rel=1e-9)
    assert totals.dose_rp_total_gy == pytest.approx(rp, rel=1e-9)
    assert totals.fluoro_time_s == pytest.approx(fluoro)
    assert report.events[0].dap_gym2 == pytest.approx(first_dap, rel=1e-9)
    assert report.events[0].kind == dz.FLUORO
    assert len({e.event_uid for e in report.events}) == events  # every event has its own UID
    assert not report.notes  # every unit was understood


def test_a_plain_sr_is_not_a_dose_report() -> None:
    assert not is_dose_report(pydicom.dcmread(PYDICOM_FILES / "test-SR.dcm"))


@pytest.mark.parametrize(("nested", "dlp_unit", "reason"), [
    (True, "mGy.cm", "the standard's layout: CT Dose container inside each CT Acquisition"),
    (False, "mGycm", "values directly in CT Acquisition, and the dot-less unit some vendors write"),
])
def test_ct_report(tmp_path: Path, nested: bool, dlp_unit: str, reason: str) -> None:
    ds = ct_rdsr([CtEvent("0.1", "1.6e-005", region=HEAD, phantom=None, acquisition=("113805", "DCM",
                                                                                      "Constant Angle Acquisition")),
                  CtEvent("45.0", "810.5", region=HEAD, phantom=HEAD_PHANTOM)],
                 dlp_total="810.5", dlp_unit=dlp_unit, nested=nested)
    report = parse_dose_report(pydicom.dcmread(write(ds, tmp_path / "ct.dcm")))
    assert report.template == "ct" and report.modality == "CT", reason
    localizer, helical = report.events
    assert localizer.dlp_mgycm == pytest.approx(1.6e-5) and localizer.phantom_cm is None
    assert (helical.ctdivol_mgy, helical.dlp_mgycm, helical.target_region, helical.phantom_cm) == (45.0, 810.5,
                                                                                                  "head", 16)
    assert report.totals().dlp_total_mgycm == pytest.approx(810.5)
    assert report.report_key == f"report:{ds.SOPInstanceUID}" and report.scope == f"study:{ds.StudyInstanceUID}"
    assert report.anatomy == ["head"] and localizer.localizer and not helical.localizer


def test_ct_report_without_event_uids_keys_events_by_content(tmp_path: Path) -> None:
    events = [CtEvent("10", "400", uid=None), CtEvent("12", "420", uid=None)]
    first = parse_dose_report(pydicom.dcmread(write(ct_rdsr(events, dlp_total="820"), tmp_path / "a.dcm")))
    again = parse_dose_report(pydicom.dcmread(write(ct_rdsr(events, dlp_total="820"), tmp_path / "b.dcm")))
    assert [e.event_uid for e in first.events] == [e.event_uid for e in again.events]
    assert len({e.event_uid for e in first.events}) == 2
    assert "irradiation event without a UID" in first.notes


def test_ct_report_with_an_unreadable_unit_says_so(tmp_path: Path) -> None:
    ds = ct_rdsr([CtEvent("10", "400")], dlp_total="400", dlp_unit="furlongs")
    report = parse_dose_report(pydicom.dcmread(write(ds, tmp_path / "ct.dcm")))
    assert report.events[0].dlp_mgycm is None and report.totals().dlp_total_mgycm is None
    assert any("furlongs" in note for note in report.notes)


def test_mammography_report_agd_per_breast(tmp_path: Path) -> None:
    ds = mammography_rdsr([("left", "1.21"), ("left", "1.30"), ("right", "1.05")],
                          accumulated={"left": "2.51", "right": "1.05"})
    report = parse_dose_report(pydicom.dcmread(write(ds, tmp_path / "mg.dcm")))
    assert report.template == "mammography" and report.modality == "MG"
    assert [(e.kind, e.laterality, e.agd_mgy) for e in report.events] == [
        ("mammo", "left", 1.21), ("mammo", "left", 1.30), ("mammo", "right", 1.05)]
    totals = report.totals()
    assert (totals.agd_left_mgy, totals.agd_right_mgy) == (2.51, 1.05)


def test_radiopharmaceutical_report(tmp_path: Path) -> None:
    ds = radiopharmaceutical_rdsr([("350", "MBq"), ("10", "mCi")])
    report = parse_dose_report(pydicom.dcmread(write(ds, tmp_path / "nm.dcm")))
    assert report.template == "radiopharmaceutical"
    assert [e.activity_mbq for e in report.events] == [350.0, pytest.approx(370.0)]


def test_a_report_is_known_by_its_uid_or_else_by_its_content() -> None:
    first, second = CtEvent("10", "700"), CtEvent("11", "710")
    continued = [ct_rdsr([first], dlp_total="700", study_uid="1.2.3.77"), ct_rdsr([second], dlp_total="710",
                                                                                study_uid="1.2.3.77")]
    keys = [parse_dose_report(ds).report_key for ds in continued]
    assert keys[0] != keys[1] and all(k.startswith("report:") for k in keys)  # one scope (the study), two reports
    for ds in continued:
        del ds.SOPInstanceUID  # DICOM JSON without the UID: the report's content identifies it
    again = ct_rdsr([first], dlp_total="700", study_uid="1.2.3.77")
    del again.SOPInstanceUID
    by_content = [parse_dose_report(ds).report_key for ds in (*continued, again)]
    assert by_content[0] != by_content[1] and by_content[0] == by_content[2]
    assert all(k.startswith("content:") for k in by_content)


def test_a_siemens_radiation_summary_is_read_as_a_summary(tmp_path: Path) -> None:
    # as OpenREM's RF-ESR-Siemens-Varic.dcm (an ARCADIS): 0.2359 Gy·cm² = 2.359e-05 Gy·m², 34.427 s of fluoroscopy
    ds = pydicom.dcmread(write(siemens_radiation_summary(), tmp_path / "summary.dcm"))
    assert is_dose_report(ds)
    report = parse_dose_report(ds)
    assert (report.template, report.modality, report.events) == ("projection", "RF", [])
    assert report.report_key == f"{dz.SUMMARY_KEY}{ds.SOPInstanceUID}"  # a summary: an RDSR's totals outrank it
    totals = report.totals()
    assert totals.dap_total_gym2 == pytest.approx(2.359e-05, rel=1e-9)
    assert totals.fluoro_time_s == pytest.approx(34.427)
    assert not report.notes


def test_the_summary_codes_mean_nothing_in_another_scheme(tmp_path: Path) -> None:
    # C-10 and C-204 are Siemens' private codes: the same values in another scheme are not a dose summary
    ds = pydicom.dcmread(write(siemens_radiation_summary(scheme="99OTHER"), tmp_path / "other.dcm"))
    assert not is_dose_report(ds)


@pytest.mark.parametrize(("system", "code", "display", "region"), [
    ("http://snomed.info/sct", "51185008", None, "chest"),  # thoracic structure, sent without display
    ("SCT", "416775004", None, "chest-abdomen-pelvis"),
    ("http://snomed.info/sct", "72696002", None, "knee"),
    ("http://snomed.info/sct", "999999999", "Structure of left knee region", "knee"),  # not in the table: display
    ("http://snomed.info/sct", "7771000", None, None),  # a laterality, not a body structure
    ("urn:trust:local", "51185008", None, None),  # the same digits in another code system mean nothing here
])
def test_body_structure_codes(system: str, code: str, display: str | None, region: str | None) -> None:
    from imaging import body_structure_region

    assert body_structure_region(system, code, display) == region


@pytest.mark.parametrize(("system", "code", "region", "side"), [
    ("http://snomed.info/sct", "82169009", "knee", "left"),  # structure of left knee region (was no region)
    ("http://snomed.info/sct", "6757004", "knee", "right"),
    ("http://snomed.info/sct", "287579007", "hip", "right"),
    ("http://snomed.info/sct", "22335008", "foot", "left"),
    ("http://snomed.info/sct", "62175007", "lower-limb", "right"),
    ("http://snomed.info/sct", "80248007", "breast", "left"),
    ("http://snomed.info/sct", "72696002", "knee", None),  # knee region: no side of its own
    ("urn:trust:local", "82169009", None, None),  # the same digits in another code system mean nothing here
])
def test_sided_body_structure_codes(system: str, code: str, region: str | None, side: str | None) -> None:
    from imaging import body_structure_region, body_structure_side

    assert (body_structure_region(system, code), body_structure_side(system, code)) == (region, side)
