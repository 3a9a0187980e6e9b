"""IHE IOCM rejection notes: read from Key Object Selection documents, applied to the studies and the dose they name,
in whichever order note and objects arrive; a rejected study is never shown as a prior. Both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fixed_dates import AS_OF
from imaging_factories import CtEvent, code, ct_image, ct_rdsr, rejection_note, write
from pydicom.sequence import Sequence as DicomSequence
from sqlalchemy import select

from imaging import ingest_dicom_file, patient_timeline
from imaging.iocm import read_rejection_note
from imaging.tables import Study
from mpi import PatientIndex
from priorscan.audit import Agent

AGENT = Agent("feed", "test")
STUDY_DAY = (AS_OF - timedelta(days=10)).strftime("%Y%m%d")
HEAD = ("T-D1100", "SRT", "Head")


def ingest(sessions, trusts, ds, path: Path):  # type: ignore[no-untyped-def]
    return ingest_dicom_file(sessions, trusts, write(ds, path), agent=AGENT)


def study(sessions, uid: str) -> Study:  # type: ignore[no-untyped-def]
    with sessions() as session:
        found = session.scalars(select(Study).where(Study.study_instance_uid == uid)).one()
        session.expunge(found)
        return found


def ct_head(uid: str) -> tuple[list, object]:  # type: ignore[type-arg]
    images = [ct_image(study_uid=uid, description="CT HEAD", study_date=STUDY_DAY, ctdivol=45.0) for _ in range(2)]
    report = ct_rdsr([CtEvent("45.0", "800.0", region=HEAD)], dlp_total="800.0", study_uid=uid,
                     study_date=STUDY_DAY, description="CT HEAD")
    return images, report


@pytest.mark.parametrize(("value", "scheme", "meaning", "expected"), [
    ("113001", "DCM", "Rejected for Quality Reasons", "113001"),
    ("113037", "DCM", "Rejected for Patient Safety Reasons", "113037"),
    ("113038", "DCM", "Incorrect Modality Worklist Entry", "113038"),
    ("113039", "DCM", "Data Retention Policy Expired", "113039"),
    ("XX1", "99LOCAL", "Incorrect Modality Worklist Entry", "113038"),  # a local code with the standard title
    ("113000", "DCM", "Of Interest", None),  # a key object note, not a rejection
])
def test_a_rejection_note_is_read_by_its_title(value: str, scheme: str, meaning: str, expected: str | None) -> None:
    images, _ = ct_head("1.2.826.0.1.3680043.10.9.1")
    note = read_rejection_note(rejection_note(images, code_value=value, scheme=scheme, meaning=meaning))
    if expected is None:
        assert note is None
        return
    assert note is not None and note.reason.code == expected
    assert [i.sop_instance_uid for i in note.instances] == [i.SOPInstanceUID for i in images]
    assert note.studies == ["1.2.826.0.1.3680043.10.9.1"]


def test_an_image_object_is_never_a_rejection_note() -> None:
    image = ct_image()
    image.ConceptNameCodeSequence = DicomSequence([code("113001", "DCM", "Rejected for Quality Reasons")])
    assert read_rejection_note(image) is None


def test_a_quality_rejection_withdraws_the_prior_and_keeps_the_dose(sessions, trusts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    uid = "1.2.826.0.1.3680043.10.9.2"
    images, report = ct_head(uid)
    for n, ds in enumerate([*images, report]):
        assert ingest(sessions, trusts, ds, tmp_path / f"{n}").accepted
    outcome = ingest(sessions, trusts, rejection_note([*images, report]), tmp_path / "ko")
    assert outcome.accepted and outcome.kind == "IOCM rejection"
    assert outcome.detail["rejection"]["studiesWithdrawn"] == [uid]
    rejected = study(sessions, uid)
    assert rejected.withdrawn == "113001 Rejected for Quality Reasons"
    assert rejected.dlp_total_mgycm == 800.0  # the patient was exposed: the dose stays theirs
    with sessions() as session:
        regional = PatientIndex(session, trusts).resolve(
            [(trusts.by_ods("RTK").fhir_system, "AB123456")], None).regional_id
        entries = patient_timeline(session, trusts, regional).entries  # type: ignore[arg-type, union-attr]
    assert [(e.study_instance_uid, e.withdrawn) for e in entries] == [(uid, "113001 Rejected for Quality Reasons")]


def test_a_wrong_patient_rejection_takes_the_dose_and_the_study_away(sessions, trusts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    uid = "1.2.826.0.1.3680043.10.9.3"
    images, report = ct_head(uid)
    for n, ds in enumerate([*images, report]):
        ingest(sessions, trusts, ds, tmp_path / f"{n}")
    ingest(sessions, trusts, rejection_note([*images, report], code_value="113038",
                                            meaning="Incorrect Modality Worklist Entry"), tmp_path / "ko")
    rejected = study(sessions, uid)
    assert rejected.withdrawn == "113038 Incorrect Modality Worklist Entry"
    assert (rejected.dlp_total_mgycm, rejected.effective_dose_msv, rejected.irradiation_events) == (None, None, None)
    with sessions() as session:
        regional = PatientIndex(session, trusts).resolve(
            [(trusts.by_ods("RTK").fhir_system, "AB123456")], None).regional_id
        assert patient_timeline(session, trusts, regional).entries == []  # type: ignore[arg-type, union-attr]


def test_rejecting_one_rdsr_of_two_removes_only_its_dose(sessions, trusts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    uid = "1.2.826.0.1.3680043.10.9.4"
    image = ct_image(study_uid=uid, description="CT HEAD", study_date=STUDY_DAY, ctdivol=None)
    first = ct_rdsr([CtEvent("45.0", "800.0", region=HEAD)], dlp_total="800.0", study_uid=uid, study_date=STUDY_DAY,
                    scope_uid=None)  # two reports of their own (not one growing report of the study)
    second = ct_rdsr([CtEvent("40.0", "500.0", region=HEAD)], dlp_total="500.0", study_uid=uid, study_date=STUDY_DAY,
                     scope_uid=None)
    for n, ds in enumerate([image, first, second]):
        ingest(sessions, trusts, ds, tmp_path / f"{n}")
    assert study(sessions, uid).dlp_total_mgycm == 1300.0
    ingest(sessions, trusts, rejection_note([second], code_value="113037",
                                            meaning="Rejected for Patient Safety Reasons"), tmp_path / "ko")
    after = study(sessions, uid)
    assert (after.dlp_total_mgycm, after.irradiation_events, after.withdrawn) == (800.0, 1, None)


def test_a_note_before_its_objects_holds_when_they_arrive(sessions, trusts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    uid = "1.2.826.0.1.3680043.10.9.5"
    images, report = ct_head(uid)
    ingest(sessions, trusts, rejection_note([*images, report], code_value="113037",
                                            meaning="Rejected for Patient Safety Reasons"), tmp_path / "ko")
    for n, ds in enumerate([*images, report]):
        ingest(sessions, trusts, ds, tmp_path / f"{n}")
    late = study(sessions, uid)
    assert late.withdrawn == "113037 Rejected for Patient Safety Reasons" and late.dlp_total_mgycm is None
    # a new image of the study that nobody rejected brings it back as a prior (its own dose only)
    ingest(sessions, trusts, ct_image(study_uid=uid, description="CT HEAD", study_date=STUDY_DAY, ctdivol=None),
           tmp_path / "new")
    assert study(sessions, uid).withdrawn is None


def test_the_duplicate_check_never_shows_a_rejected_study(live_server, trusts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    context = live_server.context
    kept, rejected = "1.2.826.0.1.3680043.10.9.6", "1.2.826.0.1.3680043.10.9.7"
    for uid in (kept, rejected):
        images, report = ct_head(uid)
        for n, ds in enumerate([*images, report]):
            ingest(context.sessions, trusts, ds, tmp_path / uid / f"{n}")
        if uid == rejected:
            ingest(context.sessions, trusts, rejection_note([*images, report]), tmp_path / uid / "ko")
    token = live_server.token(["priorscan/duplicate-check"])
    body = {"patient": {"identifiers": [{"system": trusts.by_ods("RTK").fhir_system, "value": "AB123456"}]},
            "request": {"modality": "CT", "bodySite": "head", "requestingTrust": "RXC",
                        "requestedAt": datetime(AS_OF.year, AS_OF.month, AS_OF.day, 9, tzinfo=UTC).isoformat()}}
    answer = httpx.post(live_server.base_url + "/api/v1/duplicate-check", json=body,
                        headers={"Authorization": f"Bearer {token}"}, timeout=30).json()
    assert [p["studyInstanceUid"] for p in answer["priors"]] == [kept]


def test_a_study_re_sent_under_its_corrected_patient_follows_them(sessions, trusts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A PACS corrects the patient of a study and forwards it again: the study moves, and the move is audited."""
    from priorscan.tables import AuditEvent

    uid = "1.2.826.0.1.3680043.10.9.8"
    ingest(sessions, trusts, ct_image(study_uid=uid, patient_id="AB333333", name="WRONG^ONE", study_date=STUDY_DAY),
           tmp_path / "a")
    before = study(sessions, uid)
    ingest(sessions, trusts, ct_image(study_uid=uid, patient_id="AB444444", name="RIGHT^ONE", study_date=STUDY_DAY),
           tmp_path / "b")
    after = study(sessions, uid)
    assert (before.patient_local_id, after.patient_local_id) == ("AB333333", "AB444444")
    with sessions() as session:
        moved = session.scalars(select(AuditEvent).where(AuditEvent.subtype == "patient-corrected")).one()
        assert moved.detail["fromSourceRecord"] == before.source_record_id
        assert "AB333333" not in str(moved.detail) and "WRONG" not in str(moved.detail)
        wrong = PatientIndex(session, trusts).resolve([(trusts.by_ods("RTK").fhir_system, "AB333333")], None)
        assert patient_timeline(session, trusts, wrong.regional_id).entries == []  # type: ignore[arg-type, union-attr]
