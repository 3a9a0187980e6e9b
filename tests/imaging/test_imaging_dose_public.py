"""Dose and time through the public interfaces (issue 14): ``priorscan ingest`` then ``priorscan export studies``, the
HTTP duplicate check's ``effectiveDoseMsv``, dose analytics over HTTP, and DICOMweb from a real Orthanc.

The commands run through ``priorscan.cli.main`` in the test's process (the installed command's own entry point,
without a Python start-up per call; ``tests/imaging/test_imaging_cli.py`` runs the installed command itself).

Synthetic reports are built by the standard's templates (``imaging_factories``); vendor reports are OpenREM's and
pyskindose's test files. Expected values are REFERENCE.md's coefficients times DLPs read from the files by hand.
"""

from __future__ import annotations

import contextlib
import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from imaging_factories import BODY_PHANTOM, HEAD, HEAD_PHANTOM, CtEvent, ct_image, ct_rdsr, write
from pydicom.dataset import Dataset

from imaging.adapters import ingest_dicom_file
from priorscan.audit import Agent
from priorscan.cli import main

NECK = ("T-D1600", "SRT", "Neck")
AGENT = Agent("user", "test")
K_CHEST, K_HEAD, K_NECK, K_HEAD_5Y = 0.0145, 0.0019, 0.0051, 0.0040


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run(*args: str) -> Result:
    """``priorscan ARGS...`` as the installed command runs it, its output captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return Result(code, out.getvalue(), err.getvalue())


def ingest(db: str, *paths: Path) -> Result:
    result = run("--db", db, "ingest", "--no-progress", *(str(p) for p in paths))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def export(db: str) -> dict[str, dict[str, str]]:
    result = run("--db", db, "export", "studies")
    assert result.returncode == 0, result.stderr[-3000:]
    return {row["study_instance_uid"]: row for row in csv.DictReader(io.StringIO(result.stdout))}


def with_age(ds: Dataset, age: str | None = None) -> Dataset:
    if age is not None:
        ds.PatientAge = age
    return ds


def continued_examination(tmp_path: Path, study_uid: str, **header: Any) -> list[Path]:
    """The two reports of a continued CT examination (DLP 700 and 710), the first re-sent, as files."""
    first = ct_rdsr([CtEvent("10.0", "700.0")], dlp_total="700.0", study_uid=study_uid, sop_uid=f"{study_uid}.91",
                     description="CT CHEST", **header)
    second = ct_rdsr([CtEvent("10.5", "710.0")], dlp_total="710.0", study_uid=study_uid, sop_uid=f"{study_uid}.92",
                     description="CT CHEST", **header)
    return [write(first, tmp_path / "a.dcm"), write(second, tmp_path / "b.dcm"), write(first, tmp_path / "c.dcm")]


def test_two_reports_of_a_continued_examination_add_up_in_the_export(sqlite_url: str, tmp_path: Path) -> None:
    files = continued_examination(tmp_path / "in", "1.2.826.0.1.3680043.10.14.1")
    ingest(sqlite_url, *files)
    ingest(sqlite_url, *files)  # the whole examination sent again
    row = export(sqlite_url)["1.2.826.0.1.3680043.10.14.1"]
    assert (row["dlp_total_mgycm"], row["irradiation_events"], row["ctdivol_mgy"]) == ("1410.0", "2", "10.5")
    assert float(row["effective_dose_msv"]) == pytest.approx(K_CHEST * 1410.0)  # the same DLP as the total


def test_vendor_continued_and_growing_reports(sqlite_url: str, openrem_files: dict[str, Path]) -> None:
    # Siemens: a continued examination in two reports (scope: the study; events 2 + 2; DLP totals 60.17 and 56.44),
    # and an examination reported three times as it grew (1, 2, 3 events; DLP totals 7.46, 77.27, 236.09)
    continued = [openrem_files[f"CT-RDSR-Siemens-Continued-{n}.dcm"] for n in (1, 2)]
    grown = [openrem_files[f"CT-RDSR-Siemens-Multi-{n}.dcm"] for n in (3, 1, 2)]  # arriving out of order
    ingest(sqlite_url, *continued, *grown)
    ingest(sqlite_url, *continued)  # re-sent
    rows = {row["dlp_total_mgycm"]: row for row in export(sqlite_url).values() if row["modality"] == "CT"}
    assert set(rows) == {"116.61", "236.09"}
    assert (rows["116.61"]["irradiation_events"], rows["236.09"]["irradiation_events"]) == ("4", "3")
    assert float(rows["116.61"]["effective_dose_msv"]) == pytest.approx(K_CHEST * 116.61)  # target region chest, 32 cm
    assert float(rows["236.09"]["effective_dose_msv"]) == pytest.approx(K_CHEST * 236.09)


@pytest.mark.parametrize(("events", "age", "expected", "reason"), [
    ([CtEvent("50.0", "800.0", region=HEAD, phantom=BODY_PHANTOM)], "045Y", None,
     "a head reported on the 32 cm phantom: the head k (16 cm) does not apply"),
    ([CtEvent("9.0", "300.0", region=NECK, phantom=HEAD_PHANTOM)], "045Y", None,
     "a neck reported on the 16 cm phantom: the neck k (32 cm) does not apply"),
    ([CtEvent("9.0", "300.0", region=NECK, phantom=BODY_PHANTOM)], "045Y", K_NECK * 300.0, "neck on its phantom"),
    ([CtEvent("30.0", "400.0", region=HEAD, phantom=HEAD_PHANTOM)], "005Y", K_HEAD_5Y * 400.0,
     "a 5-year-old's head: AAPM Report 96's 5-year coefficient, not the adult one"),
    ([CtEvent("30.0", "400.0", region=HEAD, phantom=HEAD_PHANTOM)], "045Y", K_HEAD * 400.0, "an adult's head"),
    ([CtEvent("5.0", "150.0", phantom=BODY_PHANTOM)], "005Y", None,
     "a 5-year-old's chest on the 32 cm phantom: the paediatric values are for the 16 cm phantom"),
    ([CtEvent("30.0", "400.0", region=HEAD, phantom=HEAD_PHANTOM)], "014Y", None, "13-15: no published value"),
])
def test_effective_dose_in_the_export(sqlite_url: str, tmp_path: Path, events: list[CtEvent], age: str,
                                      expected: float | None, reason: str) -> None:
    total = str(sum(float(e.dlp) for e in events))
    uid = "1.2.826.0.1.3680043.10.14.2"
    ingest(sqlite_url, write(with_age(ct_rdsr(events, dlp_total=total, study_uid=uid), age), tmp_path / "r.dcm"))
    row = export(sqlite_url)[uid]
    assert row["dlp_total_mgycm"] == total
    if expected is None:
        assert row["effective_dose_msv"] == "", reason
    else:
        assert float(row["effective_dose_msv"]) == pytest.approx(expected), reason


def test_an_age_that_arrives_after_the_report_changes_the_estimate(sqlite_url: str, tmp_path: Path) -> None:
    uid = "1.2.826.0.1.3680043.10.14.3"
    report = ct_rdsr([CtEvent("30.0", "400.0", region=HEAD, phantom=HEAD_PHANTOM)], dlp_total="400.0",
                     study_uid=uid, birth_date="")
    ingest(sqlite_url, write(report, tmp_path / "r.dcm"))
    assert float(export(sqlite_url)[uid]["effective_dose_msv"]) == pytest.approx(K_HEAD * 400.0)  # adult assumed
    ingest(sqlite_url, write(with_age(ct_image(study_uid=uid, birth_date=""), "005Y"), tmp_path / "i.dcm"))
    assert float(export(sqlite_url)[uid]["effective_dose_msv"]) == pytest.approx(K_HEAD_5Y * 400.0)


@pytest.mark.parametrize(("unit", "expected", "note"), [
    ("MGY.CM", "700.0", None),  # UCUM's case-insensitive form: milligray centimetres
    ("mGy-cm", "700.0", None),
    ("MGy.cm", "", "megagray"),  # mega-gray: refused, and the ingest report says so
])
def test_units_in_ingest(sqlite_url: str, tmp_path: Path, unit: str, expected: str, note: str | None) -> None:
    uid = "1.2.826.0.1.3680043.10.14.4"
    result = ingest(sqlite_url, write(ct_rdsr([CtEvent("10.0", "700.0")], dlp_total="700.0", dlp_unit=unit,
                                               study_uid=uid), tmp_path / "r.dcm"))
    assert export(sqlite_url)[uid]["dlp_total_mgycm"] == expected
    if note:
        assert "with notes" in result.stdout and note in result.stdout


@pytest.mark.parametrize(("da", "tm", "offset", "day"), [
    ("20260801", "003000", None, "2026-08-01"),  # half past midnight in BST, no offset: 1 August, not 31 July
    ("20260731", "233000", "+0000", "2026-08-01"),  # stated in UTC: 00:30 BST on 1 August
    ("20260731", "233000", None, "2026-07-31"),
])
def test_study_dates_are_london_dates(sqlite_url: str, tmp_path: Path, da: str, tm: str, offset: str | None,
                                      day: str) -> None:
    ds = ct_image(study_uid="1.2.826.0.1.3680043.10.14.5", study_date=da, description="CT HEAD")
    ds.StudyTime = tm
    if offset is not None:
        ds.TimezoneOffsetFromUTC = offset
    ingest(sqlite_url, write(ds, tmp_path / "i.dcm"))
    assert export(sqlite_url)["1.2.826.0.1.3680043.10.14.5"]["study_date"] == day


def test_duplicate_check_shows_the_summed_estimate(live_server: Any, tmp_path: Path) -> None:
    uid = "1.2.826.0.1.3680043.10.14.6"
    sessions, trusts = live_server.context.sessions, live_server.context.trusts
    for path in continued_examination(tmp_path, uid, study_date="20260801"):
        assert ingest_dicom_file(sessions, trusts, path, agent=AGENT).accepted
    token = live_server.token(["priorscan/duplicate-check"])
    answer = httpx.post(f"{live_server.base_url}/api/v1/duplicate-check", headers={"Authorization": f"Bearer {token}"},
                        json={"patient": {"identifiers": [{"system": trusts.by_ods("RTK").fhir_system,
                                                           "value": "AB123456"}]},
                              "request": {"modality": "CT", "bodySite": "chest", "requestingTrust": "RXC",
                                          "requestedAt": "2026-08-05T12:00:00+01:00"}})
    assert answer.status_code == 200, answer.text
    prior = next(p for p in answer.json()["priors"] if p["studyInstanceUid"] == uid)
    assert prior["effectiveDoseMsv"] == pytest.approx(K_CHEST * 1410.0)
    assert prior["studyDate"] == "2026-08-01"


def test_analytics_compare_with_the_matching_drl_only(live_server_sqlite: Any, tmp_path: Path) -> None:
    server = live_server_sqlite
    cases = {"CT Urogram": "ct-urogram", "CT KUB": "ct-kub", "CT colonography": "ct-colonography",
             "HRCT chest": "ct-hrct", "CT CHEST": "ct-chest"}
    for n, description in enumerate(cases):
        ds = with_age(ct_rdsr([CtEvent("8.0", "400.0", region=("T-D4000", "SRT", "Abdomen"))], dlp_total="400.0",
                               study_uid=f"1.2.826.0.1.3680043.10.14.7.{n}", description=description), "050Y")
        assert ingest_dicom_file(server.context.sessions, server.context.trusts, write(ds, tmp_path / f"{n}.dcm"),
                                 agent=AGENT).accepted
    answer = httpx.get(f"{server.base_url}/api/v1/analytics/studies",
                       headers={"Authorization": f"Bearer {server.token(['priorscan/analytics'])}"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert sorted(row["drl_category"] for row in body["rows"]) == sorted(cases.values())
    urogram = next(row for row in body["rows"] if row["drl_category"] == "ct-urogram")
    assert urogram["drl_dlp_mgycm"] == 890.0 and urogram["dlp_drl_ratio"] == pytest.approx(400.0 / 890.0)
    assert "median" in urogram["drl_note"] and "median" in body["note"]


@pytest.mark.orthanc
def test_dicomweb_poll_of_a_continued_examination(orthanc: Any, sqlite_url: str,
                                                  openrem_files: dict[str, Path]) -> None:
    for n in (1, 2):
        orthanc.upload(openrem_files[f"CT-RDSR-Siemens-Continued-{n}.dcm"])
    result = run("--db", sqlite_url, "dicomweb", "poll", "--url", orthanc.dicomweb, "--once")
    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = export(sqlite_url).values()
    assert (row["dlp_total_mgycm"], row["irradiation_events"]) == ("116.61", "4")
    assert float(row["effective_dose_msv"]) == pytest.approx(K_CHEST * 116.61)
