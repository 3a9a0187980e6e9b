"""imaging.queries: the timeline's cumulative effective dose, search, pseudonyms and counts."""

from __future__ import annotations

from pathlib import Path

import pytest
from imaging_factories import CtEvent, ct_rdsr, projection_image, write

from imaging.adapters import ingest_dicom_file
from imaging.queries import age_band, normalisation_counts, patient_timeline, pseudonym, search_studies
from priorscan.audit import Agent
from priorscan.db import make_engine, session_factory
from priorscan.trusts import default_trusts


def test_timeline_accumulates_effective_dose_in_date_order(sqlite_url: str, tmp_path: Path) -> None:
    engine = make_engine(sqlite_url)
    sessions, trusts = session_factory(engine), default_trusts()
    agent = Agent("user", "test")
    for uid, day, dlp in (("1.2.3.50.2", "20240301", "500"), ("1.2.3.50.1", "20240101", "200")):
        ingest_dicom_file(sessions, trusts, write(ct_rdsr([CtEvent("10", dlp)], dlp_total=dlp, study_uid=uid,
                                                          study_date=day), tmp_path / uid), agent=agent)
    outcome = ingest_dicom_file(sessions, trusts, write(projection_image(study_uid="1.2.3.50.3", study_date="20240201",
                                                                         description="XR CHEST"), tmp_path / "x"),
                                agent=agent)
    regional = str(outcome.detail["regionalPatientId"])
    with sessions() as session:
        timeline = patient_timeline(session, trusts, regional)
        assert [e.study_instance_uid for e in timeline.entries] == ["1.2.3.50.1", "1.2.3.50.3", "1.2.3.50.2"]
        assert [e.cumulative_effective_dose_msv for e in timeline.entries] == pytest.approx(
            [0.0145 * 200, 0.0145 * 200, 0.0145 * 700])
        assert timeline.studies_without_estimate == 1  # the radiograph has dose (DAP) but no estimate
        assert [s.study_instance_uid for s, _ in search_studies(session, trusts, identifier="ACC0001")] == [
            "1.2.3.50.2", "1.2.3.50.3", "1.2.3.50.1"]  # newest first
        assert search_studies(session, trusts, patient="Patient/RPUNKNOWN") == []
        # the RDSRs carry no description: their events' Target Region (chest) names the region
        assert normalisation_counts(session) == {"anatomy": 2, "description": 1}
        assert patient_timeline(session, trusts, "RPUNKNOWN") is None
    engine.dispose()


def test_pseudonyms_are_keyed_and_stable() -> None:
    assert pseudonym(b"k1", "RP123") == pseudonym(b"k1", "RP123") != pseudonym(b"k2", "RP123")
    assert pseudonym(b"k1", None) is None


@pytest.mark.parametrize(("age", "band"), [(5, "0-15"), (16, "16-19"), (45, "40-49"), (85, "80+"), (None, None)])
def test_age_band(age: int | None, band: str | None) -> None:
    assert age_band(age) == band
