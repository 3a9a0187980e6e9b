"""imaging.dicomweb against a real Orthanc with its DICOMweb plugin: studies and their RDSR dose indexed over
QIDO-RS and WADO-RS, the cursor kept in the store so a restarted poller resumes, late additions picked up."""

from __future__ import annotations

import itertools
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from dicomweb_client.api import DICOMwebClient
from fixed_dates import AS_OF
from imaging_factories import CtEvent, ct_image, ct_rdsr, rejection_note, write
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from imaging.dicomweb import poll_once
from imaging.tables import Study
from priorscan.db import make_engine, session_factory
from priorscan.errors import InputError
from priorscan.tables import AuditEvent, PollCursor
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

    first = poll(sqlite_sessions, trusts, client, orthanc, source_trust="RPC")
    assert (first.studies_seen, first.new, first.dose_reports, first.rejected) == (2, 2, 1, 0)
    indexed = studies(sqlite_sessions)
    ct = indexed[ct_uid]
    assert (ct.dlp_total_mgycm, ct.irradiation_events, ct.dose_source, ct.body_region) == (610.0, 2, "rdsr", "chest")
    assert ct.patient_issuer == "https://fhir.ashfordstpeters.nhs.uk/Id/hospital-number"  # its own issuer (RTK)
    assert indexed[xr_uid].patient_issuer == "https://fhir.qvh.nhs.uk/Id/hospital-number"  # no issuer: the PACS's
    with sqlite_sessions() as session:
        assert session.get(PollCursor, orthanc.dicomweb).position["version"] == 2

    # a restarted poller (a new client, the same store) finds nothing new to index
    again = poll(sqlite_sessions, trusts, DICOMwebClient(url=orthanc.dicomweb), orthanc, source_trust="RPC")
    assert (again.studies_seen, again.studies_indexed, again.unchanged) == (2, 0, 2)

    # a new study, and an RDSR added later to a study already indexed, are both picked up
    new_uid = "1.2.826.0.1.3680043.10.3.3"
    orthanc.upload(write(ct_image(study_uid=new_uid, description="CT ABDOMEN", study_date="20240112"), tmp_path / "4"))
    orthanc.upload(write(ct_rdsr([CtEvent("20.0", "600.0", region=("T-D1100", "SRT", "Head"), phantom=None)],
                                 dlp_total="600.0", study_uid=xr_uid, study_date="20240111", issuer=None,
                                 patient_id="Q123456"), tmp_path / "5"))
    later = poll(sqlite_sessions, trusts, client, orthanc, source_trust="RPC")
    assert (later.new, later.reread, later.dose_reports) == (1, 1, 1)
    indexed = studies(sqlite_sessions)
    assert new_uid in indexed
    assert indexed[xr_uid].dlp_total_mgycm == 600.0
    assert indexed[xr_uid].effective_dose_msv == pytest.approx(0.0019 * 600.0)  # head, phantom assumed 16 cm


def test_a_late_arrival_with_an_old_date_is_found_within_the_stated_bound(orthanc, sessions,  # type: ignore[no-untyped-def]
                                                                        trusts: TrustRegistry,
                                                                        tmp_path: Path) -> None:
    """The defect of the issue: a study imported after the first poll, dated years back, was never indexed."""
    for n, day in enumerate(("20260601", "20260610", "20250301")):
        orthanc.upload(write(ct_image(study_uid=f"1.2.826.0.1.3680043.10.4.{n}", study_date=day,
                                      description="CT CHEST"), tmp_path / f"{n}"))
    client = DICOMwebClient(url=orthanc.dicomweb)
    budget = 6  # QIDO queries per poll for reconciliation: a full sweep of ~38 yearly ranges takes several polls
    results = [poll(sessions, trusts, client, orthanc, sweep_queries=budget)]
    while results[-1].oldest_listing is None:  # until every date range has been listed once
        results.append(poll(sessions, trusts, client, orthanc, sweep_queries=budget))
    assert sum(r.new for r in results) == 3
    bound = results[-1].sweep_bound_polls
    assert bound == len(results) > 1

    late = "1.2.826.0.1.3680043.10.4.9"
    orthanc.upload(write(ct_image(study_uid=late, study_date="20140707", description="CT HEAD"), tmp_path / "late"))
    after = []
    while late not in studies(sessions):
        after.append(poll(sessions, trusts, client, orthanc, sweep_queries=budget))
        assert len(after) <= bound, "the late arrival was not found within the bound the poll states"
    assert sum(r.new for r in after) == 1 and all(r.rejected == 0 for r in after)
    assert "within" in after[-1].render() and "1 new" in after[-1].render()


def test_a_range_fuller_than_a_page_is_split_and_nothing_is_lost(orthanc, sqlite_sessions,  # type: ignore[no-untyped-def]
                                                                 trusts: TrustRegistry, tmp_path: Path) -> None:
    days = ["20190103", "20190220", "20190415", "20190606", "20190808", "20191111", "20191231"]
    for n, day in enumerate(days):
        orthanc.upload(write(ct_image(study_uid=f"1.2.826.0.1.3680043.10.5.{n}", study_date=day), tmp_path / f"{n}"))
    client = DICOMwebClient(url=orthanc.dicomweb)
    result = poll(sqlite_sessions, trusts, client, orthanc, page_size=3, sweep_queries=500)
    assert result.new == len(days) and result.oldest_listing is not None
    with sqlite_sessions() as session:
        ranges = session.get(PollCursor, orthanc.dicomweb).position["ranges"]
    in_2019 = [r for r in ranges if r["from"] and r["from"].startswith("2019")]
    assert len(in_2019) > 1 and all(r["studies"] < 3 for r in in_2019)  # 2019 was split until each half fits


def test_a_grown_study_is_read_again_and_a_deleted_rdsr_takes_its_dose_away(orthanc, sessions,  # type: ignore[no-untyped-def]
                                                                            trusts: TrustRegistry,
                                                                            tmp_path: Path) -> None:
    uid = "1.2.826.0.1.3680043.10.6.1"
    orthanc.upload(write(ct_image(study_uid=uid, study_date="20260612", description="CT CHEST"), tmp_path / "a"))
    client = DICOMwebClient(url=orthanc.dicomweb)
    assert poll(sessions, trusts, client, orthanc).new == 1
    assert studies(sessions)[uid].dlp_total_mgycm is None
    report = orthanc.upload(write(ct_rdsr([CtEvent("8.0", "320.0")], dlp_total="320.0", study_uid=uid,
                                          study_date="20260612"), tmp_path / "b"))
    grown = poll(sessions, trusts, client, orthanc)
    assert (grown.reread, grown.dose_reports) == (1, 1)
    assert studies(sessions)[uid].dlp_total_mgycm == 320.0
    httpx.delete(f"{orthanc.url}/instances/{report}", timeout=30).raise_for_status()
    shrunk = poll(sessions, trusts, client, orthanc)
    assert shrunk.reread == 1
    study = studies(sessions)[uid]
    assert (study.dlp_total_mgycm, study.irradiation_events, study.withdrawn) == (None, None, None)


def test_a_study_deleted_in_the_pacs_is_withdrawn_and_comes_back_if_it_returns(orthanc, sessions,  # type: ignore[no-untyped-def]
                                                                               trusts: TrustRegistry,
                                                                               tmp_path: Path) -> None:
    keep, gone = "1.2.826.0.1.3680043.10.6.2", "1.2.826.0.1.3680043.10.6.3"
    orthanc.upload(write(ct_image(study_uid=keep, study_date="20210505"), tmp_path / "a"))
    image = write(ct_image(study_uid=gone, study_date="20210506", description="CT HEAD"), tmp_path / "b")
    orthanc_id = orthanc.upload(image)
    client = DICOMwebClient(url=orthanc.dicomweb)
    assert poll(sessions, trusts, client, orthanc).new == 2
    study_id = httpx.get(f"{orthanc.url}/instances/{orthanc_id}/study", timeout=30).json()["ID"]
    httpx.delete(f"{orthanc.url}/studies/{study_id}", timeout=30).raise_for_status()
    after = poll(sessions, trusts, client, orthanc)
    assert after.withdrawn == 1
    indexed = studies(sessions)
    assert indexed[gone].withdrawn == "deleted from the PACS" and indexed[keep].withdrawn is None
    orthanc.upload(image)
    back = poll(sessions, trusts, client, orthanc)
    assert back.restored == 1 and studies(sessions)[gone].withdrawn is None


def test_a_patient_corrected_in_the_pacs_moves_the_study(orthanc, sessions, trusts: TrustRegistry,  # type: ignore[no-untyped-def]
                                                         tmp_path: Path) -> None:
    uid = "1.2.826.0.1.3680043.10.6.4"
    wrong = orthanc.upload(write(ct_image(study_uid=uid, study_date="20260610", patient_id="AB111111",
                                          name="WRONG^PATIENT"), tmp_path / "a"))
    client = DICOMwebClient(url=orthanc.dicomweb)
    assert poll(sessions, trusts, client, orthanc).new == 1
    before = studies(sessions)[uid]
    assert before.patient_local_id == "AB111111"
    httpx.delete(f"{orthanc.url}/instances/{wrong}", timeout=30).raise_for_status()  # corrected in the PACS:
    orthanc.upload(write(ct_image(study_uid=uid, study_date="20260610", patient_id="AB222222",  # the same study
                                  name="RIGHT^PATIENT"), tmp_path / "b"))                     # under its patient
    corrected = poll(sessions, trusts, client, orthanc)
    assert corrected.reread == 1
    after = studies(sessions)[uid]
    assert after.patient_local_id == "AB222222" and after.source_record_id != before.source_record_id
    with sessions() as session:
        assert session.scalars(select(AuditEvent).where(AuditEvent.subtype == "patient-corrected")).first()


def test_a_rejection_note_in_the_pacs_withdraws_the_study_it_rejects(orthanc, sessions,  # type: ignore[no-untyped-def]
                                                                    trusts: TrustRegistry, tmp_path: Path) -> None:
    uid = "1.2.826.0.1.3680043.10.6.5"
    images = [ct_image(study_uid=uid, study_date="20260611", description="CT CHEST") for _ in range(2)]
    report = ct_rdsr([CtEvent("8.0", "300.0")], dlp_total="300.0", study_uid=uid, study_date="20260611")
    for n, ds in enumerate([*images, report]):
        orthanc.upload(write(ds, tmp_path / f"{n}"))
    client = DICOMwebClient(url=orthanc.dicomweb)
    assert poll(sessions, trusts, client, orthanc).new == 1
    orthanc.upload(write(rejection_note([*images, report], code_value="113038",
                                        meaning="Incorrect Modality Worklist Entry"), tmp_path / "ko"))
    after = poll(sessions, trusts, client, orthanc)
    assert (after.reread, after.rejection_notes) == (1, 1)
    study = studies(sessions)[uid]
    assert study.withdrawn == "113038 Incorrect Modality Worklist Entry"
    assert study.dlp_total_mgycm is None  # another person's exposure: not this patient's dose


def poll(sessions, trusts, client, orthanc, **options):  # type: ignore[no-untyped-def]
    """One poll on the fixed date of the tests."""
    return poll_once(sessions, trusts, client, source=orthanc.dicomweb, today=AS_OF,
                     now=datetime(AS_OF.year, AS_OF.month, AS_OF.day, 12, tzinfo=UTC) + timedelta(
                         seconds=next(_clock)), **options)


_clock = itertools.count()


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
