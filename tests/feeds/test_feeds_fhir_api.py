"""FHIR R4 over HTTP (live server, httpx) on SQLite and PostgreSQL; every answer validated with fhir.resources R4B."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import httpx
import pytest
from feeds_factories import RA2, RTK, RXC, fhir_patient, nhs_number
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.parameters import Parameters
from fhir.resources.R4B.patient import Patient
from sqlalchemy import select

from mpi.fhir_patient import MATCH_GRADE_URL, REGIONAL_ID_SYSTEM
from mpi.records import Demographics, RecordKey
from mpi.service import PatientIndex
from priorscan.tables import AuditEvent
from priorscan.trusts import NHS_NUMBER_SYSTEM

FHIR_JSON = "application/fhir+json"


class Fhir:
    """A FHIR client of the live server with one bearer token."""

    def __init__(self, server: Any, scopes: list[str] | None = None) -> None:
        self.server = server
        self.base = server.base_url + "/fhir"
        self.headers = {"Authorization": f"Bearer {server.token(scopes)}", "Content-Type": FHIR_JSON,
                        "Accept": FHIR_JSON}

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.base}/{path}", params=params, headers=self.headers, timeout=30)

    def post(self, path: str, body: Any) -> httpx.Response:
        return httpx.post(f"{self.base}/{path}".rstrip("/"), json=body, headers=self.headers, timeout=30)

    def put(self, path: str, body: Any) -> httpx.Response:
        return httpx.put(f"{self.base}/{path}", json=body, headers=self.headers, timeout=30)

    def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        response = self.post("Patient", resource)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]


def outcome_of(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    result = OperationOutcome.model_validate(response.json())
    assert result.issue[0].code == code
    return str(result.issue[0].diagnostics)


def regional_id_of(resource: dict[str, Any]) -> str:
    return str(resource["link"][0]["other"]["reference"].split("/")[1])


# --- no authentication ------------------------------------------------------------------------------------------

def test_metadata_and_smart_configuration_need_no_token(live_server_sqlite) -> None:
    metadata = httpx.get(f"{live_server_sqlite.base_url}/fhir/metadata")
    assert metadata.status_code == 200 and metadata.headers["content-type"].startswith(FHIR_JSON)
    statement = CapabilityStatement.model_validate(metadata.json())
    resources = {r.type: r for r in statement.rest[0].resource}
    assert {"Patient", "ImagingStudy", "ServiceRequest"} <= set(resources)
    assert {o.name for o in resources["Patient"].operation} == {"match", "ihe-pix"}
    smart = httpx.get(f"{live_server_sqlite.base_url}/.well-known/smart-configuration")
    assert smart.status_code == 200
    assert "client_credentials" in smart.json()["grant_types_supported"]
    assert "system/Patient.rs" in smart.json()["scopes_supported"]


AUTH_CASES: list[tuple[str, list[str] | None, str, str, int, str]] = [
    ("no token", None, "GET", "Patient/src-1", 401, "login"),
    ("create does not grant read", ["system/Patient.c"], "GET", "Patient/src-1", 403, "forbidden"),
    ("read does not grant create", ["system/Patient.rs"], "POST", "Patient", 403, "forbidden"),
    ("the duplicate check scope is not FHIR", ["priorscan/duplicate-check"], "POST", "Patient/$match", 403,
     "forbidden"),
    ("a Bundle of Patients needs system/Patient.c", ["system/Patient.rs"], "POST", "", 403, "forbidden"),
]


def test_authentication_and_scopes_answer_with_an_operation_outcome(live_server_sqlite) -> None:
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [{"resource": fhir_patient(), "request": {
        "method": "POST", "url": "Patient"}}]}
    for reason, scopes, method, path, status, code in AUTH_CASES:
        headers = {"Content-Type": FHIR_JSON}
        if scopes:
            headers["Authorization"] = f"Bearer {live_server_sqlite.token(scopes)}"
        response = httpx.request(method, f"{live_server_sqlite.base_url}/fhir/{path}".rstrip("/"), headers=headers,
                                 json=(batch if path == "" else fhir_patient()) if method == "POST" else None)
        assert response.status_code == status, reason
        outcome_of(response, status, code)
        if status == 401:
            assert response.headers["www-authenticate"].startswith("Bearer")


# --- create, read, update ---------------------------------------------------------------------------------------

def test_create_read_and_update_a_patient(live_server) -> None:
    fhir = Fhir(live_server)
    nhs = nhs_number(101)
    response = fhir.post("Patient", fhir_patient(nhs=nhs, verification="01", hospital=(RTK, "AB000101")))
    assert response.status_code == 201 and response.headers["content-type"].startswith(FHIR_JSON)
    created = Patient.model_validate(response.json())
    assert response.headers["location"] == f"{fhir.base}/Patient/{created.id}/_history/1"
    assert response.headers["etag"] == 'W/"1"'
    read = fhir.get(f"Patient/{created.id}")
    assert read.status_code == 200
    shown = Patient.model_validate(read.json())
    assert {(i.system, i.value) for i in shown.identifier} == {(NHS_NUMBER_SYSTEM, nhs), (RTK, "AB000101")}
    nhs_ident = next(i for i in shown.identifier if i.system == NHS_NUMBER_SYSTEM)
    assert nhs_ident.extension[0].valueCodeableConcept.coding[0].code == "01"
    assert (shown.name[0].family, shown.gender, str(shown.birthDate)) == ("Smith", "male", "1980-01-02")
    assert shown.link[0].type == "refer" and shown.link[0].other.reference.startswith("Patient/RP")

    changed = fhir_patient(nhs=nhs, hospital=(RTK, "AB000101"), family="Smith-Jones", postcode=None)
    updated = fhir.put(f"Patient/{created.id}", {**changed, "id": created.id})
    assert updated.status_code == 200, updated.text
    again = Patient.model_validate(fhir.get(f"Patient/{created.id}").json())
    assert again.name[0].family == "Smith-Jones"
    assert again.address is None  # a resource is complete: what it leaves out is removed
    assert again.meta.versionId == "2"
    with live_server.context.sessions() as session:
        subtypes = [a.subtype for a in session.scalars(select(AuditEvent).where(AuditEvent.event_type == "rest"))]
    assert subtypes == ["Patient create", "Patient read", "Patient update", "Patient read"]


def test_update_as_create_with_a_client_id_and_patients_known_only_by_id(live_server) -> None:
    fhir = Fhir(live_server)
    bare = {"resourceType": "Patient", "name": [{"family": "Nobody", "given": ["Ann"]}], "birthDate": "1950-05-05"}
    created = fhir.put("Patient/client-7", {**bare, "id": "client-7"})
    assert created.status_code == 201
    assert created.json()["id"] == "client-7"
    assert fhir.put("Patient/client-7", {**bare, "id": "client-7", "gender": "female"}).status_code == 200
    read = Patient.model_validate(fhir.get("Patient/client-7").json())
    assert (read.id, read.gender) == ("client-7", "female")
    other = fhir.put("Patient/client-8", {**bare, "id": "client-8"})
    assert other.status_code == 201  # another id is another source record
    with live_server.context.sessions() as session:
        from mpi.tables import SourceRecord

        assert len(session.scalars(select(SourceRecord)).all()) == 2
    server_id = fhir.create(bare)["id"]  # a create without identifiers gets an id from the server
    assert server_id.startswith("src-")


ERROR_CASES: list[tuple[str, dict[str, Any], int, str]] = [
    ("not JSON", {"method": "POST", "path": "Patient", "content": "{not json"}, 400, "structure"),
    ("bad date", {"method": "POST", "path": "Patient", "json": fhir_patient(birthDate="1980-13-40")}, 400, "invalid"),
    ("bad gender", {"method": "POST", "path": "Patient", "json": fhir_patient(gender="yes")}, 400, "invalid"),
    ("not a Patient", {"method": "POST", "path": "Patient", "json": {"resourceType": "Observation"}}, 400,
     "invalid"),
    ("NHS number not ten digits (UK Core)", {"method": "POST", "path": "Patient", "json": fhir_patient(nhs="12345")},
     422, "business-rule"),
    ("unknown source record", {"method": "GET", "path": "Patient/src-999999"}, 404, "not-found"),
    ("unknown regional patient", {"method": "GET", "path": "Patient/RPNOTAPATIENT"}, 404, "not-found"),
    ("a route that does not exist", {"method": "GET", "path": "Condition/1"}, 404, "not-found"),
    ("no delete", {"method": "DELETE", "path": "Patient/src-1"}, 405, "not-supported"),
    ("the regional Patient is derived", {"method": "PUT", "path": "Patient/RPABCDEFGHJK",
                                         "json": {"resourceType": "Patient"}}, 405, "not-supported"),
    ("body id differs from URL id", {"method": "PUT", "path": "Patient/abc",
                                     "json": {"resourceType": "Patient", "id": "xyz"}}, 400, "invalid"),
    ("XML is not served", {"method": "POST", "path": "Patient", "content": "<Patient/>",
                           "type": "application/fhir+xml"}, 415, "not-supported"),
]


def test_a_resource_sent_as_the_older_fhir_json_media_type_is_read(live_server) -> None:
    """``application/json+fhir`` (DSTU2's media type, still sent by older integration engines) is JSON: read, not
    refused with 415; XML stays refused (above)."""
    fhir = Fhir(live_server)
    headers = {**fhir.headers, "Content-Type": "application/json+fhir; charset=utf-8"}
    response = httpx.post(f"{fhir.base}/Patient", headers=headers,
                          content=json.dumps(fhir_patient(hospital=(RTK, "AB000777"), family="Older")))
    assert response.status_code == 201, response.text


def test_errors_are_operation_outcomes(live_server) -> None:
    fhir = Fhir(live_server)
    for reason, request_args, status, code in ERROR_CASES:
        headers = {**fhir.headers, "Content-Type": request_args.get("type", FHIR_JSON)}
        response = httpx.request(request_args["method"], f"{fhir.base}/{request_args['path']}", headers=headers,
                                 json=request_args.get("json"), content=request_args.get("content"))
        assert response.status_code == status, reason
        diagnostics = outcome_of(response, status, code)
        assert "1980-13-40" not in diagnostics and "12345" not in diagnostics, reason


# --- search (PDQm) ----------------------------------------------------------------------------------------------

def test_pdqm_search_parameters(live_server) -> None:
    fhir = Fhir(live_server)
    nhs = nhs_number(201)
    smith = fhir.create(fhir_patient(hospital=(RTK, "AB000201"), nhs=nhs, family="Smith", given=["John"]))
    fhir.create(fhir_patient(hospital=(RXC, "A0000202"), family="Smithson", given=["Jane", "Ann"],
                             birth_date="1990-05-06", gender="female", postcode="RH1 2BB"))
    fhir.create(fhir_patient(hospital=(RA2, "00000203"), family="Jones", given=["Paul"], postcode="BN1 1AA"))
    smith_regional = regional_id_of(smith)
    cases: list[tuple[dict[str, str], int]] = [
        ({"family": "smith"}, 2),  # string search: case-insensitive prefix
        ({"family:exact": "Smith"}, 1),
        ({"given": "ann"}, 1),  # any of the given names
        ({"name": "paul"}, 1),  # family or given
        ({"birthdate": "1980-01-02"}, 2),
        ({"birthdate": "1980"}, 2),  # a partial date is a range
        ({"birthdate": "ge1985-01-01"}, 1),
        ({"gender": "female"}, 1),
        ({"address-postalcode": "gu1"}, 1),
        ({"identifier": f"{RTK}|AB000201"}, 1),
        ({"identifier": f"{NHS_NUMBER_SYSTEM}|{nhs}"}, 1),
        ({"identifier": "A0000202"}, 1),  # a value in any system
        ({"family": "smith", "gender": "male"}, 1),  # parameters combine with AND
        ({"family": "jones,smithson"}, 2),  # comma-separated values are alternatives
        ({"_id": smith_regional}, 1),
        ({"family": "nobody"}, 0),
    ]
    for params, total in cases:
        response = fhir.get("Patient", **params)
        assert response.status_code == 200, (params, response.text)
        bundle = Bundle.model_validate(response.json())
        assert (params, bundle.total) == (params, total)
        assert all(e.resource.id.startswith("RP") for e in bundle.entry or [])  # regional Patients
    found = Bundle.model_validate(fhir.get("Patient", identifier=f"{RTK}|AB000201").json())
    identifiers = {(i.system, i.value) for i in found.entry[0].resource.identifier}
    assert {(RTK, "AB000201"), (NHS_NUMBER_SYSTEM, nhs), (REGIONAL_ID_SYSTEM, smith_regional)} <= identifiers
    paged = fhir.get("Patient", family="smith", _count="1").json()
    assert len(paged["entry"]) == 1 and any(link["relation"] == "next" for link in paged["link"])
    posted = httpx.post(f"{fhir.base}/Patient/_search", data={"family": "jones"},
                        headers={"Authorization": fhir.headers["Authorization"]})
    assert posted.status_code == 200 and posted.json()["total"] == 1


@pytest.mark.parametrize("query", [
    "&".join(f"family=a{n}" for n in range(1000)),  # a thousand ANDed clauses: SQLite's depth passed, a 503
    "family=" + ",".join(f"a{n}" for n in range(1000)),  # a thousand alternatives
], ids=["repeated", "alternatives"])
def test_a_search_of_a_thousand_terms_is_400_not_5xx(live_server, query: str) -> None:  # type: ignore[no-untyped-def]
    fhir = Fhir(live_server)
    for answer in (httpx.get(f"{fhir.base}/Patient?{query}", headers=fhir.headers, timeout=30),
                   httpx.post(f"{fhir.base}/Patient/_search", content=query, timeout=30, headers={
                       "Authorization": fhir.headers["Authorization"],
                       "Content-Type": "application/x-www-form-urlencoded"})):
        assert "at most 100" in outcome_of(answer, 400, "invalid")


# --- the regional Patient and PIXm ------------------------------------------------------------------------------

def _linked_pair(live_server: Any, fhir: Fhir) -> tuple[str, str]:
    nhs = nhs_number(301)
    first = fhir.create(fhir_patient(hospital=(RTK, "AB000301"), nhs=nhs, family="Taylor", given=["Ruth"],
                                     birth_date="1945-02-03", gender="female"))
    second = fhir.create(fhir_patient(hospital=(RXC, "A0000302"), family="Taylor", given=["Ruth"],
                                      birth_date="1945-02-03", gender="female", postcode="TN1 1AA"))
    with live_server.context.sessions() as session:  # a person's decision (as A24 would), not the matcher's
        PatientIndex(session, live_server.context.trusts).link(RecordKey(RTK, "AB000301"),
                                                               RecordKey(RXC, "A0000302"), actor="test")
        session.commit()
    assert first["id"] != second["id"]
    return nhs, regional_id_of(fhir.get(f"Patient/{first['id']}").json())


def test_regional_patient_exposes_every_linked_identifier(live_server) -> None:
    fhir = Fhir(live_server)
    nhs, regional = _linked_pair(live_server, fhir)
    golden = Patient.model_validate(fhir.get(f"Patient/{regional}").json())
    assert golden.id == regional
    assert {(i.system, i.value) for i in golden.identifier} == {
        (REGIONAL_ID_SYSTEM, regional), (NHS_NUMBER_SYSTEM, nhs), (RTK, "AB000301"), (RXC, "A0000302")}
    assert sorted(link.type for link in golden.link) == ["seealso", "seealso"]
    with live_server.context.sessions() as session:
        reads = session.scalars(select(AuditEvent).where(AuditEvent.subtype == "Patient read")).all()
    assert [a.regional_patient_id for a in reads][-1] == regional


def test_a_number_failing_the_check_is_no_nhs_number_of_the_regional_patient(live_server_sqlite) -> None:
    """Shaped like a public NHS Wales A40 example (``7000000001^^^NHS^NH``, which fails Modulus 11): the record keeps
    what was sent, but the regional Patient does not show it under the NHS number system (hazard H-ID-46)."""
    fhir = Fhir(live_server_sqlite)
    with live_server_sqlite.context.sessions() as session:
        outcome = PatientIndex(session, live_server_sqlite.context.trusts).upsert(Demographics(
            namespace=RTK, local_id="AB460001", trust_ods="RTK", nhs_number="7000000001", family="TEST",
            given="PATIENT", birth_date=date(2000, 1, 1)), event="ADT^A28", actor="test")
        session.commit()
    golden = Patient.model_validate(fhir.get(f"Patient/{outcome.regional_id}").json())
    assert {(i.system, i.value) for i in golden.identifier} == {(REGIONAL_ID_SYSTEM, outcome.regional_id),
                                                                 (RTK, "AB460001")}


def test_pixm_cross_references_identifiers(live_server) -> None:
    fhir = Fhir(live_server, ["system/Patient.rs", "system/Patient.c"])
    nhs, regional = _linked_pair(live_server, fhir)
    every = fhir.get("Patient/$ihe-pix", sourceIdentifier=f"{RTK}|AB000301")
    assert every.status_code == 200
    result = Parameters.model_validate(every.json())
    identifiers = {(p.valueIdentifier.system, p.valueIdentifier.value) for p in result.parameter
                   if p.name == "targetIdentifier"}
    assert identifiers == {(NHS_NUMBER_SYSTEM, nhs), (RXC, "A0000302"), (REGIONAL_ID_SYSTEM, regional)}
    assert [p.valueReference.reference for p in result.parameter if p.name == "targetId"] == [f"Patient/{regional}"]

    only = Parameters.model_validate(fhir.get("Patient/$ihe-pix", sourceIdentifier=f"{NHS_NUMBER_SYSTEM}|{nhs}",
                                              targetSystem=RXC).json())
    assert [(p.valueIdentifier.system, p.valueIdentifier.value) for p in only.parameter
            if p.name == "targetIdentifier"] == [(RXC, "A0000302")]

    # ITI-83 2:3.83.4.2.2.3: a source domain the manager does not recognise is 400 (404 is for an unknown identifier)
    outcome_of(fhir.get("Patient/$ihe-pix", sourceIdentifier="urn:oid:1.2.3.4|X"), 400, "code-invalid")
    outcome_of(fhir.get("Patient/$ihe-pix", sourceIdentifier=f"{RTK}|NOPE"), 404, "not-found")
    outcome_of(fhir.get("Patient/$ihe-pix", sourceIdentifier=f"{RTK}|AB000301", targetSystem="urn:oid:9.9"), 403,
               "code-invalid")
    outcome_of(fhir.get("Patient/$ihe-pix", sourceIdentifier="AB000301"), 400, "invalid")


# --- $match -----------------------------------------------------------------------------------------------------

def _match(fhir: Fhir, resource: dict[str, Any], **parameters: Any) -> Bundle:
    body: dict[str, Any] = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": resource}]}
    if "only_certain" in parameters:
        body["parameter"].append({"name": "onlyCertainMatches", "valueBoolean": parameters["only_certain"]})
    if "count" in parameters:
        body["parameter"].append({"name": "count", "valueInteger": parameters["count"]})
    response = fhir.post("Patient/$match", body)
    assert response.status_code == 200, response.text
    return Bundle.model_validate(response.json())


def _grades(bundle: Bundle) -> list[tuple[str, str, float]]:
    out = []
    for entry in bundle.entry or []:
        if entry.search.mode != "match":
            continue
        grade = next(e.valueCode for e in entry.search.extension if e.url == MATCH_GRADE_URL)
        out.append((entry.resource.id, grade, float(entry.search.score)))
    return out


def test_match_scores_and_grades(live_server) -> None:
    fhir = Fhir(live_server)
    nhs = nhs_number(401)
    wanted = regional_id_of(fhir.create(fhir_patient(hospital=(RTK, "AB000401"), nhs=nhs, verification="01",
                                                     family="Whitaker", given=["Eleanor"], birth_date="1962-07-19",
                                                     gender="female", postcode="GU2 7XH")))
    other = regional_id_of(fhir.create(fhir_patient(hospital=(RXC, "A0000402"), family="Okafor", given=["Chidi"],
                                                    birth_date="1988-11-30", postcode="TN34 1AA")))
    probe = fhir_patient(hospital=None, nhs=nhs, family="Whitaker", given=["Eleanor"], birth_date="1962-07-19",
                         gender="female", postcode="GU2 7XH")
    results = _grades(_match(fhir, probe))
    assert results and results[0][:2] == (wanted, "certain")
    assert all(0.0 <= score <= 1.0 for _, _, score in results)
    assert [score for _, _, score in results] == sorted((score for _, _, score in results), reverse=True)
    assert other not in [rid for rid, _, _ in results]
    assert {grade for _, grade, _ in results} <= {"certain", "probable", "possible"}

    assert [r[:2] for r in _grades(_match(fhir, probe, only_certain=True))] == [(wanted, "certain")]
    assert len(_grades(_match(fhir, {**probe, "name": [{"family": "Whitaker"}]}, count=1))) <= 1

    by_number = _match(fhir, {"resourceType": "Patient", "identifier": [{"system": RXC, "value": "A0000402"}]})
    assert [r[:2] for r in _grades(by_number)] == [(other, "certain")]  # a known hospital number is certain

    two = {"resourceType": "Patient", "identifier": [{"system": RXC, "value": "A0000402"},
                                                     {"system": RTK, "value": "AB000401"}]}
    ambiguous = _match(fhir, two, only_certain=True)
    assert _grades(ambiguous) == []  # two certain candidates: none is certain enough
    assert ambiguous.entry[0].search.mode == "outcome"


def test_match_needs_a_patient(live_server_sqlite) -> None:
    fhir = Fhir(live_server_sqlite)
    outcome_of(fhir.post("Patient/$match", {"resourceType": "Parameters", "parameter": []}), 400, "invalid")
    outcome_of(fhir.post("Patient/$match", {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": fhir_patient()}, {"name": "count", "valueInteger": 0}]}), 400, "invalid")


# --- Bundles ----------------------------------------------------------------------------------------------------

def _bundle(kind: str, *resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": [
        {"fullUrl": f"urn:uuid:00000000-0000-0000-0000-00000000000{n}", "resource": r,
         "request": {"method": "POST", "url": "Patient"}} for n, r in enumerate(resources)]}


def test_a_transaction_is_all_or_nothing(live_server) -> None:
    fhir = Fhir(live_server)
    good = fhir_patient(hospital=(RTK, "AB000501"))
    bad = fhir_patient(hospital=(RTK, "AB000502"), birthDate="not-a-date")
    refused = fhir.post("", _bundle("transaction", good, bad))
    assert "entry 1" in outcome_of(refused, 400, "invalid")
    assert fhir.get("Patient", identifier=f"{RTK}|AB000501").json()["total"] == 0  # rolled back

    accepted = fhir.post("", _bundle("transaction", good, fhir_patient(hospital=(RTK, "AB000503"))))
    assert accepted.status_code == 200
    response = Bundle.model_validate(accepted.json())
    assert response.type == "transaction-response"
    assert [e.response.status for e in response.entry] == ["201 Created", "201 Created"]
    assert fhir.get("Patient", identifier=f"{RTK}|AB000501").json()["total"] == 1


def test_a_batch_applies_each_entry_on_its_own(live_server) -> None:
    fhir = Fhir(live_server)
    bundle = _bundle("batch", fhir_patient(hospital=(RTK, "AB000601")),
                     fhir_patient(hospital=(RTK, "AB000602"), gender="yes"),
                     {"resourceType": "Observation", "status": "final"})
    response = fhir.post("", bundle)
    assert response.status_code == 200
    result = Bundle.model_validate(response.json())
    assert result.type == "batch-response"
    assert [e.response.status for e in result.entry] == ["201 Created", "400 Bad Request", "400 Bad Request"]
    assert result.entry[1].response.outcome is not None
    assert fhir.get("Patient", identifier=f"{RTK}|AB000601").json()["total"] == 1
    assert fhir.get("Patient", identifier=f"{RTK}|AB000602").json()["total"] == 0


def test_entries_without_a_resource_are_refused_one_by_one_not_as_an_invalid_bundle(live_server_sqlite) -> None:
    """R4 batch and transaction Bundles may hold GET and DELETE entries, which carry no resource (bundle-7): shaped
    like the R4 examples ``bundle-request-simplesummary`` and ``bundle-transaction``. A batch answers each entry on
    its own (the DELETE and GET as not supported, the POST applied); a transaction is refused whole as not supported,
    never as an invalid Bundle."""
    fhir = Fhir(live_server_sqlite)
    batch = _bundle("batch", fhir_patient(hospital=(RTK, "AB000701")))
    batch["entry"] += [{"request": {"method": "GET", "url": "/Patient/example"}},
                       {"request": {"method": "DELETE", "url": "Patient/234"}}]
    response = fhir.post("", batch)
    assert response.status_code == 200, response.text
    result = Bundle.model_validate(response.json())
    assert [e.response.status for e in result.entry] == ["201 Created", "400 Bad Request", "400 Bad Request"]
    assert [i.code for e in result.entry[1:] for i in e.response.outcome.issue] == ["not-supported"] * 2
    assert fhir.get("Patient", identifier=f"{RTK}|AB000701").json()["total"] == 1

    transaction = _bundle("transaction", fhir_patient(hospital=(RTK, "AB000702")))
    transaction["entry"].append({"request": {"method": "DELETE", "url": "Patient?identifier=123456"}})
    assert "DELETE" in outcome_of(fhir.post("", transaction), 400, "not-supported")
    assert fhir.get("Patient", identifier=f"{RTK}|AB000702").json()["total"] == 0
