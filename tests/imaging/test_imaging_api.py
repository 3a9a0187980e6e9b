"""The imaging routers (api.http.routers: imaging_study, diagnostic_report, imaging) over a real HTTP server: FHIR
ImagingStudy, the patient timeline, dose analytics, scopes, audit. (Kept with the imaging tests: the routers are the
imaging work's edge.)"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.imagingstudy import ImagingStudy
from sqlalchemy import select

from imaging.tables import Study
from mpi import Demographics, PatientIndex
from priorscan.tables import AuditEvent

RTK = "https://fhir.ashfordstpeters.nhs.uk/Id/hospital-number"


def patient(server: Any, local_id: str = "AB123456") -> str:
    with server.context.sessions() as session:
        outcome = PatientIndex(session, server.context.trusts).upsert(
            Demographics(namespace=RTK, local_id=local_id, family="TESTER", given="JANE", sex="female"),
            event="ADT^A04", actor="test")
        session.commit()
        return outcome.regional_id


def imaging_study(uid: str, subject: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"resourceType": "ImagingStudy", "status": "available", "subject": subject,
            "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{uid}"},
                           {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                                 "code": "ACSN"}]}, "value": "ACC42",
                            "assigner": {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code",
                                                        "value": "RTK"}}}],
            "modality": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"}],
            "started": "2024-03-01T09:30:00Z", "description": "CT HEAD W/O", **extra}


def test_create_read_search_and_timeline(live_server: Any) -> None:
    regional = patient(live_server)
    token = live_server.token(["system/ImagingStudy.cruds"])
    headers = {"Authorization": f"Bearer {token}"}
    base = live_server.base_url
    body = imaging_study("1.2.3.30.1", {"reference": f"Patient/{regional}"})
    created = httpx.post(f"{base}/fhir/ImagingStudy", json=body, headers=headers)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/fhir/ImagingStudy/1.2.3.30.1"
    resource = ImagingStudy.model_validate(created.json())  # a valid R4 ImagingStudy
    assert resource.subject.reference == f"Patient/{regional}"
    assert httpx.post(f"{base}/fhir/ImagingStudy", json=body, headers=headers).status_code == 200  # same UID: update
    read = httpx.get(f"{base}/fhir/ImagingStudy/1.2.3.30.1", headers=headers)
    assert read.status_code == 200 and read.json()["id"] == "1.2.3.30.1"
    for query in ({"patient": regional}, {"patient": f"Patient/{regional}"},
                  {"identifier": "urn:dicom:uid|urn:oid:1.2.3.30.1"}, {"identifier": "ACC42"}):
        bundle = httpx.get(f"{base}/fhir/ImagingStudy", params=query, headers=headers)
        assert bundle.status_code == 200
        assert Bundle.model_validate(bundle.json()).total == 1, query
    timeline = httpx.get(f"{base}/api/v1/patients/{regional}/timeline", headers=headers).json()
    entry = timeline["studies"][0]
    assert (entry["modality"], entry["bodyRegion"], entry["trust"], entry["identity"]) == ("CT", "head", "RTK",
                                                                                         "confirmed")
    assert entry["viewerUrl"].endswith("1.2.3.30.1")
    with live_server.context.sessions() as session:
        subtypes = set(session.scalars(select(AuditEvent.subtype).where(AuditEvent.regional_patient_id == regional)))
    assert {"create", "update", "read", "search-type", "patient-timeline"} <= subtypes


def test_subject_by_identifier_and_errors(live_server_sqlite: Any) -> None:
    server = live_server_sqlite
    headers = {"Authorization": f"Bearer {server.token(['system/ImagingStudy.c'])}"}
    by_identifier = imaging_study("1.2.3.30.2", {"identifier": {"system": RTK, "value": "ZZ999999"}})
    response = httpx.post(f"{server.base_url}/fhir/ImagingStudy", json=by_identifier, headers=headers)
    assert response.status_code == 201 and response.json()["subject"]["reference"].startswith("Patient/RP")
    unknown = imaging_study("1.2.3.30.3", {"reference": "Patient/RPNOSUCHONE"})
    assert httpx.post(f"{server.base_url}/fhir/ImagingStudy", json=unknown, headers=headers).status_code == 422
    invalid = httpx.post(f"{server.base_url}/fhir/ImagingStudy", json={"resourceType": "ImagingStudy",
                                                                       "status": "bogus"}, headers=headers)
    assert invalid.status_code == 400 and invalid.json()["resourceType"] == "OperationOutcome"
    no_uid = imaging_study("1.2.3.30.4", {"reference": "Patient/x"})
    no_uid["identifier"] = no_uid["identifier"][1:]
    assert httpx.post(f"{server.base_url}/fhir/ImagingStudy", json=no_uid, headers=headers).status_code == 400


def test_studies_are_found_by_the_patient_id_the_fhir_server_gave(live_server_sqlite: Any) -> None:
    """A FHIR client names the Patient by the id it was given: ``src-<n>`` from POST, or the id it chose with PUT (as
    the R4 example ImagingStudy names ``Patient/example``). The study is accepted under that reference and a search by
    it finds the study, never an empty result (hazard H-ID-45)."""
    server = live_server_sqlite
    headers = {"Authorization": f"Bearer {server.token(['system/Patient.cruds', 'system/ImagingStudy.cruds'])}"}
    fhir = f"{server.base_url}/fhir"
    posted = httpx.post(f"{fhir}/Patient", json={"resourceType": "Patient", "identifier": [
        {"system": RTK, "value": "AB450001"}], "name": [{"family": "Levin", "given": ["Henry"]}],
        "birthDate": "1932-09-24"}, headers=headers)
    assert posted.status_code == 201 and posted.json()["id"].startswith("src-")
    chosen = httpx.put(f"{fhir}/Patient/example", json={"resourceType": "Patient", "id": "example", "name": [
        {"family": "Chalmers", "given": ["Peter"]}], "birthDate": "1974-12-25"}, headers=headers)
    assert chosen.status_code == 201, chosen.text
    for n, patient_id in enumerate([posted.json()["id"], "example"]):
        body = imaging_study(f"1.2.3.45.{n}", {"reference": f"Patient/{patient_id}"})
        created = httpx.post(f"{fhir}/ImagingStudy", json=body, headers=headers)
        assert created.status_code == 201, created.text
        for query in (f"Patient/{patient_id}", patient_id):
            found = httpx.get(f"{fhir}/ImagingStudy", params={"patient": query}, headers=headers).json()
            assert [e["resource"]["id"] for e in found["entry"]] == [f"1.2.3.45.{n}"], query
    unknown = httpx.get(f"{fhir}/ImagingStudy", params={"patient": "Patient/src-999999"}, headers=headers).json()
    assert unknown["total"] == 0


@pytest.mark.parametrize(("path", "scopes", "status"), [
    ("/api/v1/patients/RPX/timeline", None, 401),  # no token
    ("/api/v1/patients/RPX/timeline", ["priorscan/analytics"], 403),  # another scope
    ("/api/v1/patients/RPNOSUCHONE/timeline", ["system/ImagingStudy.rs"], 404),
    ("/api/v1/analytics/studies", ["system/ImagingStudy.rs"], 403),  # analytics has its own scope
    ("/fhir/ImagingStudy?patient=RPX", ["system/ImagingStudy.r"], 403),  # read is not search
])
def test_scopes(live_server_sqlite: Any, path: str, scopes: list[str] | None, status: int) -> None:
    headers = {"Authorization": f"Bearer {live_server_sqlite.token(scopes)}"} if scopes else {}
    assert httpx.get(live_server_sqlite.base_url + path, headers=headers).status_code == status


def test_analytics_rows_are_pseudonymised(live_server_sqlite: Any) -> None:
    server = live_server_sqlite
    regional = patient(server)
    writer = {"Authorization": f"Bearer {server.token(['system/ImagingStudy.c'])}"}
    for n in range(3):
        httpx.post(f"{server.base_url}/fhir/ImagingStudy", headers=writer,
                   json=imaging_study(f"1.2.3.31.{n}", {"reference": f"Patient/{regional}"}))
    analyst = {"Authorization": f"Bearer {server.token(['priorscan/analytics'])}"}
    first = httpx.get(f"{server.base_url}/api/v1/analytics/studies", params={"limit": 2}, headers=analyst).json()
    rest = httpx.get(f"{server.base_url}/api/v1/analytics/studies", params={"after": first["nextAfter"]},
                     headers=analyst).json()
    rows = first["rows"] + rest["rows"]
    assert len(rows) == 3 and rest["nextAfter"] is None
    assert len({r["patient"] for r in rows}) == 1  # one patient, one stable pseudonym
    text = str(rows)
    assert regional not in text and "1.2.3.31" not in text and "ACC42" not in text  # no identifiers
    assert first["normalisation"] == {"description": 3}


@pytest.mark.parametrize(("uid", "why"), [
    ("1.2.3.31\r\nSet-Cookie: session=forged", "a CR LF: the Location header could not be sent (an empty reply)"),
    ("1.2.3.31<script>", "characters a UID never holds"),
    ("1." + "2" * 63, "longer than DICOM's 64 characters (stored cut short: another study's key)"),
    ("1.2.3.31 ", None),  # trailing space (DICOM pads to even length): the UID, stripped
])
def test_an_imaging_study_uid_that_is_not_a_dicom_uid_is_400_and_not_stored(  # type: ignore[no-untyped-def]
        live_server, uid: str, why: str | None) -> None:
    """Hazard log H-SEC-19: a client's ``urn:oid:1.2.3\\r\\nSet-Cookie: ...`` was stored as a study's key and echoed in
    ``Location``; the server refused to send the header, so the client got an empty reply to a write it had made.
    A value that is not a DICOM UID is now 400 before anything is stored."""
    regional = patient(live_server)
    headers = {"Authorization": f"Bearer {live_server.token(['system/ImagingStudy.cruds'])}"}
    answer = httpx.post(f"{live_server.base_url}/fhir/ImagingStudy", headers=headers,
                        json=imaging_study(uid, {"reference": f"Patient/{regional}"}))
    with live_server.context.sessions() as session:
        stored = session.scalars(select(Study.study_instance_uid)).all()
    if why is None:
        assert (answer.status_code, answer.headers["location"], stored) == (201, "/fhir/ImagingStudy/1.2.3.31",
                                                                            ["1.2.3.31"])
    else:
        assert answer.status_code == 400, why
        assert answer.json()["resourceType"] == "OperationOutcome" and stored == [], why
