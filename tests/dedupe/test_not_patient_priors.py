"""A QA, physics or phantom test filed under a patient is never offered as that patient's comparable prior (the
duplicate-check API, CDS Hooks cards and the radiographer's page all read priors here), while a patient whose name
merely holds the letters of an indicator keeps their priors; a study stored before the flag existed is flagged by the
recheck, and a person's decision stands over indexing and the recheck (hazard H-DICOM-03)."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import pytest
from dedupe_factories import TODAY, add_patient, add_study, check, nhs_number
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import select
from sqlalchemy.orm import Session

from imaging import Study, StudyIndex, decide_not_patient, recheck_not_patient
from imaging.dicom_study import facts_from_dataset
from imaging.tables import IrradiationEvent
from priorscan.audit import Agent
from priorscan.db import session_factory
from priorscan.tables import AuditEvent
from priorscan.trusts import DEFAULT_NOT_PATIENT_NAME_WORDS, NotPatientIndicators, TrustRegistry


def _ct_head(session: Session, trusts: TrustRegistry, *, local_id: str, name: str, days_ago: int,
             when: date = TODAY, **header: str) -> str:
    """A CT head image of the patient ``local_id`` at RTK, indexed through the imaging index as a feed would."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.StudyDescription, ds.CTDIvol = "CT", "CT HEAD", 40.0
    ds.StudyDate, ds.StudyTime = (when - timedelta(days=days_ago)).strftime("%Y%m%d"), "001500"
    ds.PatientID, ds.IssuerOfPatientID, ds.PatientName = local_id, "RTK", name
    for keyword, value in header.items():
        setattr(ds, keyword, value)
    facts = facts_from_dataset(ds, trusts)
    assert facts is not None
    StudyIndex(session, trusts).apply(facts, actor="feed:tests")
    session.flush()
    return str(ds.StudyInstanceUID)


@pytest.mark.parametrize(("name", "header"), [
    ("OKAFOR^ADAEZE", {"SeriesDescription": "Daily QA head phantom"}),  # a QA exposure filed under the patient
    ("OKAFOR^ADAEZE", {"QualityControlSubject": "YES"}),  # the standard's own flag
    ("PHYSICS^TABLE AEC", {}),  # registered under a physics name with the patient's number by mistake
])
def test_a_test_study_is_never_offered_as_a_prior(db: Session, trusts: TrustRegistry, name: str,
                                                  header: dict[str, str]) -> None:
    regional, _ = add_patient(db, trusts, trust="RTK", local_id="AB100001")
    _ct_head(db, trusts, local_id="AB100001", name=name, days_ago=5, **header)
    outcome = check(db, trusts, identifiers=((trusts.by_ods("RTK").fhir_system, "AB100001"),), trust="RTK")
    assert outcome.regional_id == regional
    assert (outcome.verdict, outcome.priors) == ("clear", [])


def test_a_patient_named_like_an_indicator_keeps_their_priors(db: Session, trusts: TrustRegistry) -> None:
    regional, _ = add_patient(db, trusts, trust="RTK", local_id="AB100002", family="Khan", given="Qaiser")
    uid = _ct_head(db, trusts, local_id="AB100002", name="KHAN^QAISER", days_ago=5,
                   SeriesDescription="CT QUALITATIVE PERFUSION")
    outcome = check(db, trusts, identifiers=((trusts.by_ods("RTK").fhir_system, "AB100002"),), trust="RTK")
    assert outcome.regional_id == regional
    assert outcome.verdict == "warning" and [p["studyInstanceUid"] for p in outcome.priors] == [uid]


def test_neither_the_duplicate_check_api_nor_a_cds_card_offers_a_test(live_server) -> None:  # type: ignore[no-untyped-def]
    import uuid

    import httpx

    from priorscan.trusts import NHS_NUMBER_SYSTEM

    number = nhs_number(31)
    with live_server.context.sessions() as session:
        trusts = live_server.context.trusts
        add_patient(session, trusts, trust="RTK", local_id="AB931001", nhs=number)
        qa = _ct_head(session, trusts, local_id="AB931001", name="OKAFOR^ADAEZE", days_ago=0,
                      when=date.today(), SeriesDescription="Daily QA head phantom")
        session.commit()
    token = live_server.token(["priorscan/duplicate-check"])
    headers = {"Authorization": f"Bearer {token}"}
    answer = httpx.post(f"{live_server.base_url}/api/v1/duplicate-check", headers=headers, json={
        "patient": {"identifiers": [{"system": NHS_NUMBER_SYSTEM, "value": number}]},
        "request": {"modality": "CT", "bodySite": "head", "requestingTrust": "RXC"}}).json()
    assert (answer["identity"], answer["verdict"], answer["priors"]) == ("confirmed", "clear", [])
    draft = {"resourceType": "ServiceRequest", "id": "d1", "status": "draft", "intent": "order",
             "code": {"coding": [{"system": "https://fhir.nhs.uk/CodeSystem/NICIP", "code": "CHEAD",
                                  "display": "CT Head"}]}, "subject": {"reference": "Patient/ehr-1"}}
    hook = {"hookInstance": str(uuid.uuid4()), "hook": "order-sign",
            "context": {"userId": "Practitioner/7", "patientId": "ehr-1",
                        "draftOrders": {"resourceType": "Bundle", "type": "collection",
                                        "entry": [{"resource": draft}]}},
            "prefetch": {"patient": {"resourceType": "Patient", "id": "ehr-1",
                                     "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": number}]}}}
    cards = httpx.post(f"{live_server.base_url}/cds-services/order-sign", json=hook, headers=headers)
    assert cards.status_code == 200 and cards.json()["cards"] == []
    with live_server.context.sessions() as session:  # the test study is indexed all the same
        assert session.query(Study).filter(Study.study_instance_uid == qa).one().not_patient == \
            "SeriesDescription: Daily QA head phantom"


def _prior_uids(session: Session, trusts: TrustRegistry, local_id: str) -> list[str]:
    outcome = check(session, trusts, identifiers=((trusts.by_ods("RTK").fhir_system, local_id),), trust="RTK")
    session.commit()
    return [p["studyInstanceUid"] for p in outcome.priors]


@pytest.mark.parametrize(("description", "protocol", "evidence"), [
    ("CT HEAD QA PHANTOM", None, "description: CT HEAD QA PHANTOM"),  # the stored description says so
    ("CT HEAD", "QC Monthly CTDI", "SR Acquisition Protocol: QC Monthly CTDI"),  # only the dose report's protocol
])
def test_a_test_stored_before_the_flag_existed_is_flagged_by_the_recheck_and_leaves_the_priors(
        db: Session, trusts: TrustRegistry, description: str, protocol: str | None, evidence: str) -> None:
    _, record_id = add_patient(db, trusts, trust="RTK", local_id="AB140001")
    uid = add_study(db, record_id, days_ago=5, description=description)  # as stored before migration 0015
    if protocol:
        study_id = db.scalar(select(Study.id).where(Study.study_instance_uid == uid))
        db.add(IrradiationEvent(study_id=study_id, event_uid="2.25.1401", kind="ct", dlp_mgycm=900.0,
                                detail={"protocol": protocol, "localizer": False}))
    db.commit()
    assert _prior_uids(db, trusts, "AB140001") == [uid]  # what the store offered before the recheck
    sessions = session_factory(db.get_bind())
    report = recheck_not_patient(sessions, trusts, agent=Agent("user", "tests"), batch=1)
    assert [(c.study_instance_uid, c.change, c.after) for c in report.changes] == [(uid, "flagged", evidence)]
    db.expire_all()
    assert _prior_uids(db, trusts, "AB140001") == []
    again = recheck_not_patient(sessions, trusts, agent=Agent("user", "tests"))
    assert (again.studies, again.changes) == (report.studies, [])  # idempotent
    events = db.scalars(select(AuditEvent).where(AuditEvent.subtype == "not-patient-recheck")).all()
    assert [(e.entity, e.detail["change"]) for e in events] == [(f"ImagingStudy/{uid}", "flagged")]


def test_a_changed_indicator_applies_to_stored_studies_at_the_recheck(db: Session, trusts: TrustRegistry) -> None:
    _, record_id = add_patient(db, trusts, trust="RTK", local_id="PHY0042", family="Table", given="Aec")
    uid = add_study(db, record_id, days_ago=5, description="CT HEAD")
    db.commit()
    sessions, agent = session_factory(db.get_bind()), Agent("user", "tests")
    assert recheck_not_patient(sessions, trusts, agent=agent).changes == []
    physics = dataclasses.replace(trusts, not_patient=NotPatientIndicators(
        name_words=DEFAULT_NOT_PATIENT_NAME_WORDS, patient_id_prefixes=("PHY",)))
    flagged = recheck_not_patient(sessions, physics, agent=agent)
    assert [(c.change, c.after) for c in flagged.changes] == [("flagged", "PatientID: prefix PHY")]
    db.expire_all()
    assert _prior_uids(db, trusts, "PHY0042") == []
    unflagged = recheck_not_patient(sessions, trusts, agent=agent)  # the prefix taken out of the configuration
    assert [(c.study_instance_uid, c.change) for c in unflagged.changes] == [(uid, "unflagged")]
    db.expire_all()
    assert _prior_uids(db, trusts, "PHY0042") == [uid]


def test_a_persons_decision_stands_over_reindexing_and_the_recheck(db: Session, trusts: TrustRegistry) -> None:
    add_patient(db, trusts, trust="RTK", local_id="AB150001")
    uid = _ct_head(db, trusts, local_id="AB150001", name="OKAFOR^ADAEZE", days_ago=5,
                   SeriesDescription="Daily QA head phantom")
    db.commit()
    assert _prior_uids(db, trusts, "AB150001") == []
    found = decide_not_patient(db, uid, "patient", reason="a clinical series misnamed at the console",
                               actor="user:steward")
    assert found is not None and found[1] == "SeriesDescription: Daily QA head phantom"
    db.commit()
    assert _prior_uids(db, trusts, "AB150001") == [uid]  # a prior again at once
    _ct_head(db, trusts, local_id="AB150001", name="OKAFOR^ADAEZE", days_ago=5, StudyInstanceUID=uid,
             SeriesDescription="Daily QA head phantom")  # the study's objects arrive again
    db.commit()
    report = recheck_not_patient(session_factory(db.get_bind()), trusts, agent=Agent("user", "tests"))
    assert (report.decided, report.changes) == (1, [])
    db.expire_all()
    study = db.scalars(select(Study).where(Study.study_instance_uid == uid)).one()
    assert (study.not_patient, study.not_patient_decision, study.not_patient_decided_by) == (
        None, "patient", "user:steward")
    assert _prior_uids(db, trusts, "AB150001") == [uid]
    decide_not_patient(db, uid, "test", reason="the physicist's phantom after all", actor="user:steward")
    db.commit()
    assert _prior_uids(db, trusts, "AB150001") == []


def test_the_decision_is_audited_shown_with_the_study_and_refused_without_the_scope(  # type: ignore[no-untyped-def]
        live_server) -> None:
    import httpx

    from priorscan.trusts import NHS_NUMBER_SYSTEM

    number = nhs_number(41)
    with live_server.context.sessions() as session:
        trusts = live_server.context.trusts
        regional, _ = add_patient(session, trusts, trust="RTK", local_id="AB941001", nhs=number)
        uid = _ct_head(session, trusts, local_id="AB941001", name="OKAFOR^ADAEZE", days_ago=0, when=date.today(),
                       SeriesDescription="QA head phantom")
        session.commit()
    url = f"{live_server.base_url}/api/v1/studies/{uid}/not-patient"
    body = {"decision": "patient", "reason": "a clinical series misnamed at the console"}
    reader = {"Authorization": f"Bearer {live_server.token(['system/ImagingStudy.rs', 'priorscan/alerts'])}"}
    assert httpx.post(url, json=body, headers=reader).status_code == 403
    assert httpx.post(url, json=body).status_code == 401
    steward = {"Authorization": f"Bearer {live_server.token(['system/ImagingStudy.u'], client='pacs-admin')}"}
    assert httpx.post(f"{live_server.base_url}/api/v1/studies/2.25.404/not-patient", json=body,
                      headers=steward).status_code == 404
    for blank in ("   ", " a  ", "\t\n "):  # spaces are no reason
        assert httpx.post(url, json={**body, "reason": blank}, headers=steward).status_code == 422
    answer = httpx.post(url, json=body, headers=steward)
    assert answer.status_code == 200, answer.text
    decision = answer.json()["notPatientDecision"]
    assert (answer.json()["notPatient"], decision["decision"], decision["by"], decision["reason"]) == (
        None, "patient", "client:pacs-admin", body["reason"])
    checker = {"Authorization": f"Bearer {live_server.token(['priorscan/duplicate-check'])}"}
    found = httpx.post(f"{live_server.base_url}/api/v1/duplicate-check", headers=checker, json={
        "patient": {"identifiers": [{"system": NHS_NUMBER_SYSTEM, "value": number}]},
        "request": {"modality": "CT", "bodySite": "head", "requestingTrust": "RXC"}}).json()
    assert [p["studyInstanceUid"] for p in found["priors"]] == [uid]  # a prior again at once
    timeline = httpx.get(f"{live_server.base_url}/api/v1/patients/{regional}/timeline", headers=reader).json()
    shown = [s["notPatientDecision"] for s in timeline["studies"] if s["studyInstanceUid"] == uid]
    assert [(d["decision"], d["by"], d["reason"]) for d in shown] == [
        ("patient", "client:pacs-admin", body["reason"])]
    with live_server.context.sessions() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.subtype == "study-not-patient-decision")
                                 .order_by(AuditEvent.id)).all()
        assert [(e.agent_name, e.outcome, e.regional_patient_id, (e.detail or {}).get("decision")) for e in events] \
            == [("pacs-admin", "4", None, None), ("pacs-admin", "0", regional, "patient")]


def test_the_recheck_command_prints_what_it_flagged_and_why(db: Session, trusts: TrustRegistry,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from priorscan.cli import main

    _, record_id = add_patient(db, trusts, trust="RTK", local_id="AB160001")
    qa = add_study(db, record_id, days_ago=5, description="CT HEAD QA PHANTOM")
    add_study(db, record_id, days_ago=9, description="CT HEAD")
    blank = add_study(db, record_id, days_ago=12)
    db.execute(Study.__table__.update().where(Study.study_instance_uid == blank).values(description=None))
    db.commit()
    url = db.get_bind().url.render_as_string(hide_password=False)
    assert main(["--db", url, "imaging", "recheck-not-patient", "--dry-run"]) == 0
    assert f"flagged   {qa}: description: CT HEAD QA PHANTOM" in capsys.readouterr().out
    assert db.scalar(select(Study.not_patient).where(Study.study_instance_uid == qa)) is None  # a dry run
    assert main(["--db", url, "imaging", "recheck-not-patient", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert f"flagged   {qa}: description: CT HEAD QA PHANTOM" in out
    assert "3 studies read again from the index: 1 flagged" in out
    assert main(["--db", url, "imaging", "recheck-not-patient"]) == 0
    assert "3 studies read again from the index: 0 flagged" in capsys.readouterr().out
