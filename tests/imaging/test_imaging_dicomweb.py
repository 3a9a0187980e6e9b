"""imaging.dicomweb against a real Orthanc with its DICOMweb plugin: studies and their RDSR dose indexed over
QIDO-RS and WADO-RS, the cursor kept in the store so a restarted poller resumes, late additions picked up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from dicomweb_client.api import DICOMwebClient
from imaging_factories import CtEvent, ct_image, ct_rdsr, write
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from imaging.dicomweb import poll_once
from imaging.tables import Study
from priorscan.db import make_engine, session_factory
from priorscan.errors import InputError
from priorscan.tables import PollCursor
from priorscan.trusts import TrustRegistry

pytestmark = pytest.mark.orthanc


@pytest.fixture
def sqlite_sessions(sqlite_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(sqlite_url)
    yield session_factory(engine)
    engine.dispose()


def studies(sessions: sessionmaker[Session]) -> dict[str, Study]:
    with sessions() as session:
        return {s.study_instance_uid: s for s in session.scalars(select(Study))}


def test_poll_indexes_resumes_and_picks_up_new_studies(orthanc, sqlite_sessions, trusts: TrustRegistry,  # type: ignore[no-untyped-def]
                                                       tmp_path: Path) -> None:
    ct_uid, xr_uid = "1.2.826.0.1.3680043.10.3.1", "1.2.826.0.1.3680043.10.3.2"
    orthanc.upload(write(ct_image(study_uid=ct_uid, description="CT CHEST", study_date="20240110"), tmp_path / "1"))
    orthanc.upload(write(ct_rdsr([CtEvent("8.0", "300.0"), CtEvent("9.0", "310.0")], dlp_total="610.0",
                                 study_uid=ct_uid, study_date="20240110", description="CT CHEST"), tmp_path / "2"))
    orthanc.upload(write(ct_image(study_uid=xr_uid, patient_id="Q123456", issuer=None, description="CT HEAD",
                                  study_date="20240111"), tmp_path / "3"))
    client = DICOMwebClient(url=orthanc.dicomweb)

    first = poll_once(sqlite_sessions, trusts, client, source=orthanc.dicomweb, source_trust="RPC")
    assert (first.studies_seen, first.studies_indexed, first.dose_reports, first.rejected) == (2, 2, 1, 0)
    indexed = studies(sqlite_sessions)
    ct = indexed[ct_uid]
    assert (ct.dlp_total_mgycm, ct.irradiation_events, ct.dose_source, ct.body_region) == (610.0, 2, "rdsr", "chest")
    assert ct.patient_issuer == "https://fhir.ashfordstpeters.nhs.uk/Id/hospital-number"  # its own issuer (RTK)
    assert indexed[xr_uid].patient_issuer == "https://fhir.qvh.nhs.uk/Id/hospital-number"  # no issuer: the PACS's
    with sqlite_sessions() as session:
        assert session.get(PollCursor, orthanc.dicomweb).position["study_date"] == "20240111"

    # a restarted poller (a new client, the same store) finds nothing new to index
    again = poll_once(sqlite_sessions, trusts, DICOMwebClient(url=orthanc.dicomweb), source=orthanc.dicomweb,
                      source_trust="RPC")
    assert (again.studies_seen, again.studies_indexed) == (2, 0)

    # a new study, and an RDSR added later to a study already indexed, are both picked up
    new_uid = "1.2.826.0.1.3680043.10.3.3"
    orthanc.upload(write(ct_image(study_uid=new_uid, description="CT ABDOMEN", study_date="20240112"), tmp_path / "4"))
    orthanc.upload(write(ct_rdsr([CtEvent("20.0", "600.0", region=("T-D1100", "SRT", "Head"), phantom=None)],
                                 dlp_total="600.0", study_uid=xr_uid, study_date="20240111", issuer=None,
                                 patient_id="Q123456"), tmp_path / "5"))
    later = poll_once(sqlite_sessions, trusts, client, source=orthanc.dicomweb, source_trust="RPC")
    assert (later.studies_indexed, later.dose_reports) == (2, 1)
    indexed = studies(sqlite_sessions)
    assert new_uid in indexed
    assert indexed[xr_uid].dlp_total_mgycm == 600.0
    assert indexed[xr_uid].effective_dose_msv == pytest.approx(0.0019 * 600.0)  # head, phantom assumed 16 cm


class UnreachableServer:
    """A DICOMweb source whose network fails (dicomweb-client itself retries for ~30 s before failing)."""

    def search_for_studies(self, **_: object) -> list[dict]:
        raise ConnectionError("connection refused")


def test_an_unreachable_server_is_an_input_error_and_keeps_the_cursor(sqlite_sessions, trusts) -> None:  # type: ignore[no-untyped-def]
    client = UnreachableServer()
    with pytest.raises(InputError):
        poll_once(sqlite_sessions, trusts, client, source="http://127.0.0.1:9/dicom-web")  # type: ignore[arg-type]
    with sqlite_sessions() as session:
        assert session.get(PollCursor, "http://127.0.0.1:9/dicom-web") is None


def test_the_command_polls_once(orthanc, sqlite_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    orthanc.upload(write(ct_image(study_uid="1.2.826.0.1.3680043.10.3.9", description="CT HEAD"), tmp_path / "1"))
    command = [str(Path(sys.executable).parent / "priorscan"), "--db", sqlite_url, "dicomweb", "poll", "--url",
               orthanc.dicomweb, "--once"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "1 studies seen, 1 indexed" in result.stdout
    again = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert "1 studies seen, 0 indexed" in again.stdout  # the cursor and the index remember it
