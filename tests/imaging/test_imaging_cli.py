"""imaging.cli: ``priorscan export studies`` as a client runs it (the installed command, a real store)."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

from imaging_factories import CtEvent, ct_rdsr, mammography_rdsr, projection_image, write

from imaging.adapters import ingest_dicom_file
from priorscan.audit import Agent
from priorscan.db import make_engine, session_factory
from priorscan.trusts import default_trusts

CONTRACT = ["study_instance_uid", "regional_id", "trust", "modality", "body_region", "laterality", "study_date",
            "ctdivol_mgy", "dlp_total_mgycm", "dap_total_gym2", "agd_left_mgy", "agd_right_mgy",
            "effective_dose_msv", "irradiation_events"]


def _export_studies(sqlite_url: str) -> subprocess.CompletedProcess[str]:
    """``priorscan export studies`` run as a client runs it (the installed command)."""
    result = subprocess.run([str(Path(sys.executable).parent / "priorscan"), "--db", sqlite_url, "export", "studies"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def test_export_studies(sqlite_url: str, tmp_path: Path) -> None:
    engine = make_engine(sqlite_url)
    sessions, trusts, agent = session_factory(engine), default_trusts(), Agent("user", "test")
    events = [CtEvent("8.0", "300.0"), CtEvent("9.5", "310.0")]
    for n in range(3):  # the same growing report, re-sent
        ingest_dicom_file(sessions, trusts, write(ct_rdsr(events[: 1 + min(n, 1)], dlp_total=str(300 + 310 * min(n, 1)),
                                                          study_uid="1.2.3.40.1", description="CT CHEST"),
                                                  tmp_path / f"ct{n}"), agent=agent)
    ingest_dicom_file(sessions, trusts, write(projection_image(study_uid="1.2.3.40.2", dap_dgycm2="12.0",
                                                               description="XR L WRIST 2V", issuer=None),
                                              tmp_path / "xr"), agent=agent)
    ingest_dicom_file(sessions, trusts, write(mammography_rdsr([("left", "1.2"), ("right", "1.1")],
                                                               accumulated={"left": "1.2", "right": "1.1"},
                                                               study_uid="1.2.3.40.3",
                                                               description="Mammogram bilateral"),
                                              tmp_path / "mg"), agent=agent)
    engine.dispose()
    result = _export_studies(sqlite_url)
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0])[: len(CONTRACT)] == CONTRACT
    by_uid = {r["study_instance_uid"]: r for r in rows}
    assert len(rows) == 3  # one row per study however often it was re-sent
    ct, xr, mg = by_uid["1.2.3.40.1"], by_uid["1.2.3.40.2"], by_uid["1.2.3.40.3"]
    assert (ct["modality"], ct["body_region"], ct["trust"], ct["ctdivol_mgy"], ct["dlp_total_mgycm"],
            ct["irradiation_events"]) == ("CT", "chest", "RTK", "9.5", "610.0", "2")
    assert float(ct["effective_dose_msv"]) == 0.0145 * 610  # chest k (ICRP 103) × DLP
    assert ct["regional_id"].startswith("RP") and ct["dap_total_gym2"] == ""  # empty where unknown
    assert (xr["laterality"], float(xr["dap_total_gym2"]), xr["regional_id"]) == ("left", 12.0e-5, "")
    assert (mg["agd_left_mgy"], mg["agd_right_mgy"], mg["laterality"]) == ("1.2", "1.1", "both")
    assert "exported 3 studies (0 with a procedure that could not be normalised, 1 without" in result.stderr


def test_export_studies_writes_no_cell_a_spreadsheet_would_run(sqlite_url: str, tmp_path: Path) -> None:
    """Hazard log H-SEC-17: an accession number sent as ``=2+5+cmd|...`` (any trust's feed may) was a formula in
    the analyst's spreadsheet; it is written with a quote before it, and the dose figures stay exact."""
    engine = make_engine(sqlite_url)
    sessions, trusts, agent = session_factory(engine), default_trusts(), Agent("user", "test")
    ingest_dicom_file(sessions, trusts, write(ct_rdsr([CtEvent("8.0", "300.0")], dlp_total="300.0",
                                                      study_uid="1.2.3.41.1", description="CT CHEST",
                                                      accession="=2+5+cmd|'!A0"),
                                              tmp_path / "ct"), agent=agent)
    engine.dispose()
    result = _export_studies(sqlite_url)
    (row,) = csv.DictReader(io.StringIO(result.stdout))
    assert row["accession_number"] == "'=2+5+cmd|'!A0"
    assert (row["ctdivol_mgy"], row["dlp_total_mgycm"], row["study_instance_uid"]) == ("8.0", "300.0", "1.2.3.41.1")
