"""A QA, physics or phantom test filed under a patient is never offered as that patient's comparable prior (the
duplicate-check API, CDS Hooks cards and the radiographer's page all read priors here), while a patient whose name
merely holds the letters of an indicator keeps their priors (hazard H-DICOM-03)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from dedupe_factories import TODAY, add_patient, check, nhs_number
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy.orm import Session

from imaging import Study, StudyIndex
from imaging.dicom_study import facts_from_dataset
from priorscan.trusts import TrustRegistry


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
