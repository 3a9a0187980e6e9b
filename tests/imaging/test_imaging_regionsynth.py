"""The imaging index against the synthetic region (``priorscan synth``): every DICOM study of the region indexed
once, with the dose values the generator wrote (its ground truth), however often files were re-sent.

The generator is a consumer of the same standards, not the reference: the parser's expectations come from the
DICOM standard and real vendor files (test_imaging_rdsr.py); this test checks the whole path end to end.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from imaging.adapters import ingest_dicom_file
from imaging.queries import export_rows
from priorscan.audit import Agent
from priorscan.db import make_engine, session_factory
from priorscan.trusts import default_trusts
from tests.fixed_dates import AS_OF

DOSE_COLUMNS = ("ctdivol_mgy", "dlp_total_mgycm", "dap_total_gym2", "agd_left_mgy", "agd_right_mgy")


def test_synthetic_region_dicom_dose_matches_its_truth(sqlite_url: str, tmp_path: Path) -> None:
    out = tmp_path / "region"
    result = subprocess.run([str(Path(sys.executable).parent / "priorscan"), "synth", "--people", "40", "--out",
                             str(out), "--seed", "3", "--as-of", AS_OF.isoformat()],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    engine = make_engine(sqlite_url)
    sessions, trusts, agent = session_factory(engine), default_trusts(), Agent("feed", "synth")
    files = [p for p in sorted((out / "dicom").rglob("*")) if p.is_file()]
    outcomes = [ingest_dicom_file(sessions, trusts, path, agent=agent) for path in files]
    assert files and all(o.accepted for o in outcomes), [o.reason for o in outcomes if not o.accepted][:3]
    with sessions() as session:
        ours = {row["study_instance_uid"]: row for row in export_rows(session)}
    engine.dispose()
    with (out / "truth" / "studies.csv").open(newline="") as handle:
        truth = [row for row in csv.DictReader(handle) if row["feed"] == "dicom"]
    assert truth and {row["study_instance_uid"] for row in truth} == set(ours)  # one row per study
    for row in truth:
        mine = ours[row["study_instance_uid"]]
        for column in DOSE_COLUMNS:
            expected = row[column]
            if expected:
                assert float(mine[column]) == pytest.approx(float(expected), rel=1e-6), (column, row["description"])
            else:
                assert mine[column] == "", (column, row["description"])
        if row["dose_source"] == "rdsr":
            assert mine["irradiation_events"] == row["irradiation_events"]
        assert mine["modality"] == row["modality"], row["description"]
    known = sum(1 for row in ours.values() if row["normalisation"] != "unknown")
    assert known >= 0.9 * len(ours)  # the region's descriptions are normalised, not guessed
