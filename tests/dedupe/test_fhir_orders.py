"""FHIR ServiceRequest: ``POST /fhir/ServiceRequest`` over HTTP and the ingest adapter, with the check's outcome
carried back on the resource."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
from dedupe_factories import AGENT, add_patient, add_study, nhs_number
from sqlalchemy import select

from dedupe import apply_service_request
from dedupe.fhir_orders import OUTCOME_EXTENSION
from dedupe.tables import Alert
from imaging.tables import ImagingOrder
from priorscan.trusts import NHS_NUMBER_SYSTEM, ODS_SYSTEM

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def service_request(number: str, *, status: str = "active", placer: str = "SR-1", **extra: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "ServiceRequest",
        "identifier": [{"type": {"coding": [{"system": V2_0203, "code": "PLAC"}]},
                        "system": "https://fhir.uhsussex.nhs.uk/Id/placer-order-number", "value": placer}],
        "status": status, "intent": "order", "priority": "routine",
        "code": {"coding": [{"system": "https://fhir.nhs.uk/CodeSystem/NICIP", "code": "MKNEE", "display": "MR Knee"}],
                 "text": "MRI LEFT KNEE"},
        "orderDetail": [{"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "MR"}]},
                        {"coding": [{"system": "http://snomed.info/sct", "code": "7771000", "display": "Left"}]}],
        "subject": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": number}},
        "authoredOn": f"{date.today().isoformat()}T09:30:00+00:00",
        "requester": {"identifier": {"system": ODS_SYSTEM, "value": "RYR"}},
        "reasonCode": [{"text": "Locking, ?meniscal tear"}],
        "bodySite": [{"coding": [{"system": "http://snomed.info/sct", "code": "72696002", "display": "Knee"}]}],
    }
    resource.update(extra)
    return resource


def seed(context, n: int, laterality: str = "left") -> str:  # type: ignore[no-untyped-def]
    number = nhs_number(n)
    with context.sessions() as session:
        _, record = add_patient(session, context.trusts, local_id=f"AB7{n:05d}", nhs=number)
        add_study(session, record, days_ago=20, on=date.today(), modality="MR", region="knee",
                  laterality=laterality, dose=None)
        session.commit()
    return number


def test_create_answers_201_with_the_outcome_on_the_resource(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    server = live_server_sqlite
    number = seed(server.context, 1)
    headers = {"Authorization": f"Bearer {server.token(['priorscan/duplicate-check'])}",
               "Content-Type": "application/fhir+json"}
    answer = httpx.post(f"{server.base_url}/fhir/ServiceRequest", json=service_request(number), headers=headers)
    assert answer.status_code == 201
    assert answer.headers["content-type"].startswith("application/fhir+json")
    assert answer.headers["X-Priorscan-Verdict"] == "warning"
    stored = answer.json()
    assert stored["id"] and stored["identifier"][0]["value"] == "SR-1"
    outcome = next(c for c in stored["contained"] if c["id"] == "duplicate-check")
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "warning"
    parts = {p["url"]: next(v for k, v in p.items() if k.startswith("value"))
             for p in next(e for e in stored["extension"] if e["url"] == OUTCOME_EXTENSION)["extension"]}
    assert parts["verdict"] == "warning"
    assert parts["alertId"] == answer.headers["X-Priorscan-Alert-Id"]
    with server.context.sessions() as session:
        alert = session.get(Alert, parts["alertId"])
        assert (alert.channel, alert.requesting_trust, alert.request["laterality"]) == ("fhir", "RYR", "left")


def test_a_request_naming_the_patient_by_its_source_id_finds_the_priors(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    """``subject: Patient/src-<n>`` (the id ``POST /fhir/Patient`` answers, and what a Bundle's references to its
    own Patients are rewritten to), shaped like the R4 example ServiceRequest ``di``: the patient is confirmed and
    the prior warned about, never "identity unknown, clear" (hazard H-ID-45)."""
    server = live_server_sqlite
    with server.context.sessions() as session:
        _, record = add_patient(session, server.context.trusts, local_id="AB745001")
        add_study(session, record, days_ago=20, on=date.today(), modality="MR", region="knee", laterality="left",
                  dose=None, trust=None)  # type: ignore[arg-type]  # a study of no known trust (an ImagingStudy's)
        session.commit()
    headers = {"Authorization": f"Bearer {server.token(['priorscan/duplicate-check'])}"}
    request = service_request("", subject={"reference": f"Patient/src-{record}"})
    answer = httpx.post(f"{server.base_url}/fhir/ServiceRequest", json=request, headers=headers)
    assert (answer.status_code, answer.headers["X-Priorscan-Verdict"]) == (201, "warning"), answer.text
    outcome = next(c for c in answer.json()["contained"] if c["id"] == "duplicate-check")
    assert [i["details"]["text"] for i in outcome["issue"][1:]] == ["MR knee at an unknown trust, 20 days ago (mr-any)"]
    unknown = service_request("", subject={"reference": "Patient/src-999999"}, identifier=[])
    answer = httpx.post(f"{server.base_url}/fhir/ServiceRequest", json=unknown, headers=headers)
    assert (answer.status_code, answer.headers["X-Priorscan-Verdict"]) == (201, "clear")


def test_the_other_knee_is_not_a_prior_and_errors_are_operation_outcomes(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    server = live_server_sqlite
    number = seed(server.context, 2, laterality="right")
    headers = {"Authorization": f"Bearer {server.token(['priorscan/duplicate-check'])}"}
    answer = httpx.post(f"{server.base_url}/fhir/ServiceRequest", json=service_request(number), headers=headers)
    assert (answer.status_code, answer.headers["X-Priorscan-Verdict"]) == (201, "clear")
    invalid = httpx.post(f"{server.base_url}/fhir/ServiceRequest", headers=headers,
                         json={"resourceType": "ServiceRequest", "status": "active"})
    assert invalid.status_code in (400, 422)
    assert invalid.json()["resourceType"] == "OperationOutcome"
    unauthorised = httpx.post(f"{server.base_url}/fhir/ServiceRequest", json=service_request(number))
    assert unauthorised.status_code == 401
    assert unauthorised.json()["resourceType"] == "OperationOutcome"


def test_the_ingest_adapter_checks_and_a_revoked_request_cancels(db, trusts) -> None:  # type: ignore[no-untyped-def]
    number = nhs_number(3)
    _, record = add_patient(db, trusts, local_id="AB700003", nhs=number)
    add_study(db, record, days_ago=3, on=date.today(), modality="MR", region="knee", laterality="left", dose=None)
    outcome = apply_service_request(db, trusts, service_request(number, placer="SR-3"), agent=AGENT)
    assert outcome.accepted and outcome.detail["verdict"] == "warning"
    revoked = apply_service_request(db, trusts, service_request(number, placer="SR-3", status="revoked"), agent=AGENT)
    assert revoked.accepted
    alert = db.scalars(select(Alert)).one()
    assert (alert.status, alert.dose_avoided_msv) == ("cancelled", 0.0)  # MR: no ionising dose avoided
    assert db.scalars(select(ImagingOrder.status)).one() == "cancelled"
    rejected = apply_service_request(db, trusts, {"resourceType": "ServiceRequest", "status": "active"}, agent=AGENT)
    assert not rejected.accepted and rejected.error_code == "fhir.invalid"
    assert number not in (rejected.reason or "")


def test_a_contained_patient_and_a_date_only_authored_on(db, trusts) -> None:  # type: ignore[no-untyped-def]
    regional, record = add_patient(db, trusts, local_id="AB700004", nhs=nhs_number(4), family="Lindqvist",
                                   given="Freya", birth_date=date(1966, 2, 2), postcode="BN1 1AA")
    add_study(db, record, days_ago=40, on=date.today(), modality="MR", region="knee", laterality="left", dose=None)
    authored = (date.today() - timedelta(days=35)).isoformat()
    resource = service_request("", placer="SR-4", authoredOn=authored, subject={"reference": "#p"},
                               contained=[{"resourceType": "Patient", "id": "p",
                                           "identifier": [{"system": trusts.by_ods("RTK").fhir_system,
                                                           "value": "AB700004"}]}])
    outcome = apply_service_request(db, trusts, resource, agent=AGENT)
    assert outcome.detail["regionalPatientId"] == regional
    alert = db.get(Alert, outcome.detail["alertId"])
    assert [p["daysAgo"] for p in alert.priors] == [5]  # judged as of the day it was authored


def test_an_authored_on_without_offset_is_london_time(trusts) -> None:  # type: ignore[no-untyped-def]
    """A ServiceRequest's ``authoredOn`` with a time but no offset is the trusts' local time (as a duplicate-check
    request's ``requestedAt``, H-CMP-11): half past midnight in British Summer Time is 23:30 UTC the day before, and
    the request's day is the local day."""
    from datetime import UTC, datetime

    from dedupe.config import active_rules
    from dedupe.fhir_orders import read_service_request

    rules = active_rules()
    for authored, moment in (("2026-07-01T00:30:00", datetime(2026, 6, 30, 23, 30, tzinfo=UTC)),
                             ("2026-01-15T00:30:00", datetime(2026, 1, 15, 0, 30, tzinfo=UTC))):
        _, procedure = read_service_request(service_request(nhs_number(9), authoredOn=authored), trusts, rules)
        assert procedure.requested_at == moment
        assert procedure.request_date == date.fromisoformat(authored[:10])
