"""What realistic FHIR R4 clients send to the edge, over real HTTP: version-aware updates, conditional creates in
Bundles, $match parameters as the OperationDefinition types them, PIXm failures as ITI-83 words them, paging links a
client follows. Each test names the rule it holds the server to."""

from __future__ import annotations

import json
from typing import Any

import httpx
from feeds_factories import RTK, RXC, fhir_patient, nhs_number
from fhir.resources.R4B.bundle import Bundle
from test_feeds_fhir_api import Fhir, _linked_pair, outcome_of

from priorscan.trusts import NHS_NUMBER_SYSTEM

VERIFICATION_URL = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"


# --- version-aware update (FHIR R4 http.html "Managing Resource Contention") -----------------------------------


def test_an_update_with_a_stale_if_match_is_refused_412_and_changes_nothing(live_server) -> None:
    """The CapabilityStatement says ``versioned-update``: a PUT whose ``If-Match`` names a version that is no longer
    current is 412, so a client that read version 1 cannot overwrite what another sender wrote as version 2 (H-ID-56).
    """
    fhir = Fhir(live_server, ["system/Patient.cruds"])
    created = fhir.create(fhir_patient(hospital=(RTK, "AB810001"), family="Marsh", given=["Olive"]))
    path = f"Patient/{created['id']}"
    theirs = {**created, "name": [{"family": "Marsh", "given": ["Olivia"]}]}
    assert fhir.put(path, theirs).json()["meta"]["versionId"] == "2"  # another client's update, without If-Match

    stale = {**created, "name": [{"family": "Marsh", "given": ["Ollie"]}]}
    refused = httpx.put(f"{fhir.base}/{path}", json=stale, headers={**fhir.headers, "If-Match": 'W/"1"'}, timeout=30)
    outcome_of(refused, 412, "conflict")
    assert fhir.get(path).json()["name"][0]["given"] == ["Olivia"]

    current = httpx.put(f"{fhir.base}/{path}", json=stale, headers={**fhir.headers, "If-Match": 'W/"2"'}, timeout=30)
    assert current.status_code == 200, current.text
    assert current.headers["etag"] == 'W/"3"' and current.json()["name"][0]["given"] == ["Ollie"]


def test_an_update_that_would_create_needs_the_create_scope_too(live_server) -> None:
    """``system/Patient.u`` changes Patients that exist; a PUT whose id names none would create one (update as
    create), which takes ``system/Patient.c`` as a POST does: 403 and nothing stored, alone or in a Bundle (H-SEC-20).
    With both scopes the same PUT creates the Patient."""
    updater = Fhir(live_server, ["system/Patient.rus"])
    created = Fhir(live_server, ["system/Patient.cruds"]).create(
        fhir_patient(hospital=(RTK, "AB810021"), family="Quill", given=["Rosa"]))
    path = f"Patient/{created['id']}"
    assert updater.put(path, {**created, "gender": "female"}).status_code == 200  # an update: the scope suffices

    chosen = {**fhir_patient(hospital=(RXC, "CD810021"), family="Quill", given=["Rosa"]), "id": "client-chosen-21"}
    outcome_of(updater.put("Patient/client-chosen-21", chosen), 403, "forbidden")
    assert updater.get("Patient/client-chosen-21").status_code == 404
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": chosen, "request": {"method": "PUT", "url": "Patient/client-chosen-21"}}]}
    outcome_of(updater.post("", bundle), 403, "forbidden")
    batch = {**bundle, "type": "batch"}
    answered = updater.post("", batch)
    assert answered.status_code == 200 and answered.json()["entry"][0]["response"]["status"].startswith("403")
    assert updater.get("Patient/client-chosen-21").status_code == 404

    creator = Fhir(live_server, ["system/Patient.cruds"])
    assert creator.put("Patient/client-chosen-21", chosen).status_code == 201


def test_a_stale_if_match_in_a_transaction_rolls_it_back(live_server) -> None:
    fhir = Fhir(live_server, ["system/Patient.cruds"])
    created = fhir.create(fhir_patient(hospital=(RTK, "AB810011"), family="Hale"))
    assert fhir.put(f"Patient/{created['id']}", {**created, "gender": "female"}).status_code == 200
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {**created, "gender": "male"},
                "request": {"method": "PUT", "url": f"Patient/{created['id']}", "ifMatch": 'W/"1"'},
            }
        ],
    }
    outcome_of(fhir.post("", bundle), 412, "conflict")
    assert fhir.get(f"Patient/{created['id']}").json()["gender"] == "female"


# --- conditional create (FHIR R4 http.html#ccreate, Bundle.entry.request.ifNoneExist) ------------------------------


def _transaction(nhs: str, mrn: str, uid: str) -> dict[str, Any]:
    patient_url = "urn:uuid:0b5e8d1e-3c1f-4a52-9d1e-000000000001"
    patient = fhir_patient(
        hospital=(RXC, mrn), nhs=nhs, verification="01", family="Brown", given=["Tom"], birth_date="1955-05-05"
    )
    study = _study(uid, patient_url)  # its subject the urn:uuid of the Patient entry
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": patient_url,
                "resource": patient,
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={RXC}|{mrn}"},
            },
            {
                "fullUrl": "urn:uuid:0b5e8d1e-3c1f-4a52-9d1e-000000000002",
                "resource": study,
                "request": {"method": "POST", "url": "ImagingStudy"},
            },
        ],
    }


def test_a_resent_transaction_with_if_none_exist_finds_its_patient_instead_of_failing(live_server) -> None:
    """An interface engine re-sends a transaction (a timeout, a replay) whose Patient entry is a conditional create:
    the second time the Patient exists, so the entry is 200 with that Patient (no second record, no 409 rolling the
    whole transaction back) and the study of the same Bundle goes to that Patient through the urn:uuid."""
    fhir = Fhir(live_server)
    nhs = nhs_number(8201)
    first = fhir.post("", _transaction(nhs, "E820001", "1.2.826.0.1.3680043.10.82.1"))
    assert first.status_code == 200, first.text
    patient_id = first.json()["entry"][0]["resource"]["id"]

    again = fhir.post("", _transaction(nhs, "E820001", "1.2.826.0.1.3680043.10.82.2"))
    assert again.status_code == 200, again.text
    response = Bundle.model_validate(again.json())
    assert response.entry[0].response.status.startswith("200")
    assert response.entry[0].resource.id == patient_id
    assert fhir.get("Patient", identifier=f"{RXC}|E820001").json()["total"] == 1
    studies = fhir.get("ImagingStudy", patient=f"Patient/{patient_id}").json()
    assert sorted(e["resource"]["id"] for e in studies["entry"]) == [
        "1.2.826.0.1.3680043.10.82.1",
        "1.2.826.0.1.3680043.10.82.2",
    ]


def test_if_none_exist_on_a_plain_create(live_server) -> None:
    """``If-None-Exist`` on ``POST Patient``: one match → 200 with it; several → 412; an unserved parameter → 400."""
    fhir = Fhir(live_server)
    created = fhir.create(fhir_patient(hospital=(RTK, "AB820101"), family="Quill", given=["Ada"]))
    fhir.create(fhir_patient(hospital=(RTK, "AB820102"), family="Quill", given=["Ben"]))

    def create(condition: str, mrn: str) -> httpx.Response:
        return httpx.post(
            f"{fhir.base}/Patient",
            json=fhir_patient(hospital=(RTK, mrn), family="Quill"),
            headers={**fhir.headers, "If-None-Exist": condition},
            timeout=30,
        )

    found = create(f"identifier={RTK}|AB820101", "AB820103")
    assert found.status_code == 200, found.text
    assert found.json()["id"] == created["id"]
    assert fhir.get("Patient", identifier=f"{RTK}|AB820103").json()["total"] == 0  # nothing was created
    outcome_of(create("family=Quill", "AB820104"), 412, "multiple-matches")
    outcome_of(create("nickname=Q", "AB820105"), 400, "not-supported")
    fresh = create(f"identifier={RTK}|AB820106", "AB820106")
    assert fresh.status_code == 201 and fresh.headers["location"].endswith("/_history/1")


# --- $match (Patient-match OperationDefinition: resource 1..1, onlyCertainMatches 0..1 boolean, count 0..1) -----


def test_match_refuses_parameters_it_would_otherwise_read_as_absent(live_server) -> None:
    """A mistyped ``onlyCertainMatches`` (a string), a misspelt one, or two ``resource`` parameters used to be
    skipped: a client that asked for certain matches only got the probable ones too (H-ID-57). Each is 400."""
    fhir = Fhir(live_server)
    fhir.create(
        fhir_patient(
            hospital=(RTK, "AB830001"), family="Fenwick", given=["Iris"], birth_date="1961-02-03", gender="female"
        )
    )
    probe = fhir_patient(hospital=None, family="Fenwick", given=["Iris"], birth_date="1961-02-03", gender="female")

    def match(*extra: dict[str, Any]) -> httpx.Response:
        return fhir.post(
            "Patient/$match",
            {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": probe}, *extra]},
        )

    certain_only = match({"name": "onlyCertainMatches", "valueBoolean": True})
    assert certain_only.status_code == 200 and certain_only.json()["total"] == 0  # demographics alone: not certain
    for extra in (
        {"name": "onlyCertainMatches", "valueString": "true"},
        {"name": "onlyCertainMatch", "valueBoolean": True},
        {"name": "resource", "resource": probe},
        {"name": "count", "valueString": "1"},
    ):
        outcome_of(match(extra), 400, "invalid")
    assert match({"name": "count", "valueInteger": 1}).status_code == 200


# --- PIXm (ITI-83) ----------------------------------------------------------------------------------------------


def test_pixm_unknown_source_domain_is_400_and_unknown_identifier_404(live_server_sqlite) -> None:
    """ITI-83 2:3.83.4.2.2.3: a source Assigning Authority the manager does not recognise is 400 ``code-invalid``;
    2:3.83.4.2.2.2: a known domain with an unknown identifier is 404 ``not-found``."""
    fhir = Fhir(live_server_sqlite)
    fhir.create(fhir_patient(hospital=(RTK, "AB840001")))
    diagnostics = outcome_of(
        fhir.get("Patient/$ihe-pix", sourceIdentifier="urn:oid:1.3.6.1.4.1.21367.13.20.1000|X"), 400, "code-invalid"
    )
    assert diagnostics == "sourceIdentifier Assigning Authority not found"
    outcome_of(
        fhir.get("Patient/$ihe-pix", sourceIdentifier=f"{NHS_NUMBER_SYSTEM}|{nhs_number(8401)}"), 404, "not-found"
    )


# --- PDQm paging links ------------------------------------------------------------------------------------------


def test_paging_links_keep_the_search_a_client_sent(live_server_sqlite) -> None:
    """A ``next`` link is followed as it stands (FHIR R4 search.html: the server's links are opaque to the client):
    a ``+`` or ``&`` in a value must come back percent-encoded, or page 2 is another search."""
    fhir = Fhir(live_server_sqlite)
    for mrn, family, given, born in (
        ("AB850001", "Ashby", "Kit", "1971-04-05"),
        ("AB850002", "Okonjo", "Ngozi", "1990-11-12"),
    ):  # two people, one flat
        fhir.create(
            fhir_patient(
                hospital=(RTK, mrn),
                family=family,
                given=[given],
                birth_date=born,
                telecom=[{"system": "phone", "value": "+44 1483 555000"}],
                address=[{"line": ["Flat 2, A&B Court"], "postalCode": "GU1 1AA"}],
            )
        )
    first = fhir.get("Patient", telecom="+441483555000", address="Flat 2", _count=1)
    assert first.status_code == 200 and first.json()["total"] == 2, first.text
    links = {link["relation"]: link["url"] for link in first.json()["link"]}
    following = httpx.get(links["next"], headers=fhir.headers, timeout=30)
    assert following.status_code == 200, following.text
    assert following.json()["total"] == 2 and len(following.json()["entry"]) == 1
    by_address = fhir.get("Patient", address="Flat 2, A&B", _count=1).json()
    assert by_address["total"] == 2
    self_link = next(link["url"] for link in by_address["link"] if link["relation"] == "self")
    assert httpx.get(self_link, headers=fhir.headers, timeout=30).json()["total"] == 2


# --- content negotiation and charset (FHIR R4 http.html, RFC 9110) ---------------------------------------------------


def test_a_client_asking_only_for_xml_is_told_406_not_sent_json(live_server_sqlite) -> None:
    """Only JSON is served: ``_format=xml`` or ``Accept: application/fhir+xml`` used to get a 200 in JSON that an XML
    client cannot parse; it is 406 with an OperationOutcome. The JSON names (``_format=json``, the DSTU2/STU3
    ``application/json+fhir``, ``*/*``, an unencoded ``+`` arriving as a space) are served."""
    fhir = Fhir(live_server_sqlite)
    created = fhir.create(fhir_patient(hospital=(RTK, "AB860001")))
    url = f"{fhir.base}/Patient/{created['id']}"
    for params, accept in (
        ({"_format": "xml"}, None),
        ({}, "application/fhir+xml"),
        ({}, "application/xml"),
        ({"_format": "application/fhir+xml"}, "application/fhir+json"),
    ):
        headers = {**fhir.headers, **({"Accept": accept} if accept else {})}
        outcome_of(httpx.get(url, params=params, headers=headers, timeout=30), 406, "not-supported")
    outcome_of(fhir.get("Patient", family="Smith", _format="xml"), 406, "not-supported")
    for params, accept in (
        ({"_format": "json"}, "application/fhir+xml"),
        ({}, "application/json+fhir"),
        ({}, "application/fhir+xml;q=0.9, */*;q=0.1"),
        ({"_format": "application/fhir json"}, None),
    ):
        headers = {**fhir.headers, **({"Accept": accept} if accept else {})}
        answer = httpx.get(url, params=params, headers=headers, timeout=30)
        assert answer.status_code == 200, (params, accept, answer.text)
        assert answer.headers["content-type"].startswith("application/fhir+json")


def test_a_body_in_the_charset_it_declares_is_read_in_it(live_server) -> None:
    """A Patient sent as ``charset=ISO-8859-1`` (older integration engines) was read as UTF-8 and refused as invalid
    JSON; its names are read as the sender wrote them. An unknown charset is 415."""
    fhir = Fhir(live_server)
    patient = fhir_patient(hospital=(RTK, "AB870001"), family="Ångström", given=["Zoë"])
    body = json.dumps(patient, ensure_ascii=False).encode("iso-8859-1")
    headers = {**fhir.headers, "Content-Type": "application/fhir+json; charset=ISO-8859-1"}
    created = httpx.post(f"{fhir.base}/Patient", content=body, headers=headers, timeout=30)
    assert created.status_code == 201, created.text
    assert created.json()["name"][0] == {"use": "official", "family": "Ångström", "given": ["Zoë"]}
    unknown = {**fhir.headers, "Content-Type": "application/fhir+json; charset=x-no-such-charset"}
    outcome_of(httpx.post(f"{fhir.base}/Patient", content=body, headers=unknown, timeout=30), 415, "not-supported")


# --- ImagingStudy --------------------------------------------------------------------------------------------------


def _study(uid: str, subject: str) -> dict[str, Any]:
    return {
        "resourceType": "ImagingStudy",
        "status": "available",
        "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{uid}"}],
        "subject": {"reference": subject},
        "started": "2026-11-03T10:00:00+00:00",
        "modality": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "MR"}],
        "description": "MR KNEE LEFT",
    }


def test_an_imaging_study_search_refuses_what_it_would_ignore(live_server_sqlite) -> None:
    """``ImagingStudy?patient=…&modality=CT`` answered every study of the patient, MR included, as if filtered; an
    unserved parameter is 400 (strict, the FHIR default this server declares for Patient too) unless ``Prefer:
    handling=lenient``."""
    fhir = Fhir(live_server_sqlite)
    patient = fhir.create(fhir_patient(hospital=(RTK, "AB880001")))
    assert (
        fhir.post("ImagingStudy", _study("1.2.826.0.1.3680043.10.88.1", f"Patient/{patient['id']}")).status_code == 201
    )
    outcome_of(fhir.get("ImagingStudy", patient=f"Patient/{patient['id']}", modality="CT"), 400, "not-supported")
    lenient = httpx.get(
        f"{fhir.base}/ImagingStudy",
        params={"patient": f"Patient/{patient['id']}", "modality": "CT"},
        headers={**fhir.headers, "Prefer": "handling=lenient"},
        timeout=30,
    )
    assert lenient.status_code == 200 and lenient.json()["total"] == 1
    assert fhir.get("ImagingStudy", patient=f"Patient/{patient['id']}", _count=5).json()["total"] == 1


def test_every_created_entry_of_a_transaction_response_has_its_location(live_server) -> None:
    """Bundle.entry.response.location is how a client learns what its urn:uuid became; an ImagingStudy entry had
    none, and a study re-sent with its UID (an update) was reported as created."""
    fhir = Fhir(live_server)
    patient = fhir.create(fhir_patient(hospital=(RTK, "AB890001")))
    uid = "1.2.826.0.1.3680043.10.89.1"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:0b5e8d1e-3c1f-4a52-9d1e-000000000089",
                "resource": _study(uid, f"Patient/{patient['id']}"),
                "request": {"method": "POST", "url": "ImagingStudy"},
            }
        ],
    }
    first = Bundle.model_validate(fhir.post("", bundle).json())
    assert (first.entry[0].response.status, first.entry[0].response.location) == ("201 Created", f"ImagingStudy/{uid}")
    again = Bundle.model_validate(fhir.post("", bundle).json())
    assert (again.entry[0].response.status, again.entry[0].response.location) == ("200 OK", f"ImagingStudy/{uid}")


def test_a_create_only_client_cannot_read_patients_through_a_conditional_create(live_server_sqlite) -> None:
    """The answer to a conditional create is the Patient its query found (200 with the resource) or that several
    exist (412): a search and a read. A client with ``system/Patient.c`` alone is refused (403) before the query is
    run, so that ``If-None-Exist: identifier=<NHS number>`` cannot read anyone's record (H-SEC-15)."""
    reader = Fhir(live_server_sqlite, ["system/Patient.crs"])
    nhs = nhs_number(8901)
    reader.create(fhir_patient(hospital=(RTK, "AB890101"), nhs=nhs, family="Penrose"))
    create_only = Fhir(live_server_sqlite, ["system/Patient.c"])
    condition = {"If-None-Exist": f"identifier={NHS_NUMBER_SYSTEM}|{nhs}"}
    probe = fhir_patient(hospital=(RTK, "AB890102"), family="Anyone")
    refused = httpx.post(f"{create_only.base}/Patient", json=probe, headers={**create_only.headers, **condition})
    assert "Penrose" not in outcome_of(refused, 403, "forbidden") and "Penrose" not in refused.text
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": probe,
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": condition["If-None-Exist"]},
            }
        ],
    }
    in_bundle = create_only.post("", bundle)
    assert "Penrose" not in outcome_of(in_bundle, 403, "forbidden") and "Penrose" not in in_bundle.text
    found = httpx.post(f"{reader.base}/Patient", json=probe, headers={**reader.headers, **condition})
    assert found.status_code == 200 and found.json()["name"][0]["family"] == "Penrose"


def test_identifier_tokens_in_their_four_forms(live_server) -> None:
    """FHIR R4 search 3.1.1.4.10: ``value`` matches in any system, ``system|value`` in that system, ``system|`` anyone
    with an identifier in that system (was refused as 400), ``|value`` an identifier without a system (was read as any
    system: the patient whose NHS number it is came back for a value the client said has no system)."""
    fhir = Fhir(live_server)
    nhs = nhs_number(8911)
    with_number = fhir.create(fhir_patient(hospital=(RTK, "AB891101"), nhs=nhs, family="Lyle", birth_date="1944-01-01"))
    local_only = fhir.create(fhir_patient(hospital=(RXC, "A0891102"), family="Rowan", birth_date="1999-09-09"))

    def regional(**params: str) -> set[str]:
        answer = fhir.get("Patient", **params)
        assert answer.status_code == 200, answer.text
        return {e["resource"]["id"] for e in answer.json()["entry"]}

    lyle, rowan = (p["link"][0]["other"]["reference"].split("/")[1] for p in (with_number, local_only))
    assert regional(identifier=nhs) == regional(identifier=f"{NHS_NUMBER_SYSTEM}|{nhs}") == {lyle}
    assert regional(identifier=f"|{nhs}") == set()
    assert regional(identifier=f"{NHS_NUMBER_SYSTEM}|") == {lyle}
    assert regional(identifier=f"{RXC}|") == {rowan}
    outcome_of(fhir.get("Patient", identifier="|"), 400, "invalid")


def test_pdqm_returns_only_the_identifier_domains_asked_for(live_server) -> None:
    """ITI-78 2:3.78.4.1.2.3 and Case 2: ``identifier=<domain>|`` (alternatives by comma) asks for the patients with
    an identifier in those domains, and the supplier eliminates the other identifiers from what it returns; every
    identifier of the person used to come back."""
    fhir = Fhir(live_server, ["system/Patient.rs", "system/Patient.c"])
    nhs, regional = _linked_pair(live_server, fhir)

    def identifiers(**params: str) -> set[tuple[str, str]]:
        answer = fhir.get("Patient", **params)
        assert answer.status_code == 200, answer.text
        assert [e["resource"]["id"] for e in answer.json()["entry"]] == [regional]
        return {(i["system"], i["value"]) for i in answer.json()["entry"][0]["resource"]["identifier"]}

    assert identifiers(family="Taylor", identifier=f"{RXC}|") == {(RXC, "A0000302")}
    assert identifiers(family="Taylor", identifier=f"{RXC}|,{NHS_NUMBER_SYSTEM}|") == {
        (RXC, "A0000302"),
        (NHS_NUMBER_SYSTEM, nhs),
    }
    assert (RTK, "AB000301") in identifiers(family="Taylor", identifier=f"{RXC}|A0000302")  # a value: no filter


def test_pixm_takes_the_logical_id_of_a_patient_as_its_source_identifier(live_server_sqlite) -> None:
    """ITI-83 2:3.83.4.1.2.1: ``sourceIdentifier=<FHIR base>|Patient/<id>`` names a FHIR Patient by its logical id,
    and a ``targetSystem`` of the base asks for the Patient references; both were refused as unknown domains."""
    fhir = Fhir(live_server_sqlite)
    created = fhir.create(fhir_patient(hospital=(RTK, "AB892001"), family="Quayle"))
    regional = created["link"][0]["other"]["reference"]
    answer = fhir.get("Patient/$ihe-pix", sourceIdentifier=f"{fhir.base}|Patient/{created['id']}")
    assert answer.status_code == 200, answer.text
    parameters = answer.json()["parameter"]
    assert (RTK, "AB892001") in {
        (p["valueIdentifier"]["system"], p["valueIdentifier"]["value"])
        for p in parameters
        if p["name"] == "targetIdentifier"
    }
    assert [p["valueReference"]["reference"] for p in parameters if p["name"] == "targetId"] == [regional]
    only_ids = fhir.get("Patient/$ihe-pix", sourceIdentifier=f"{RTK}|AB892001", targetSystem=fhir.base).json()
    assert only_ids["parameter"] == [{"name": "targetId", "valueReference": {"reference": regional}}]
    outcome_of(fhir.get("Patient/$ihe-pix", sourceIdentifier=f"{fhir.base}|Patient/src-999"), 404, "not-found")


def test_an_update_without_the_id_of_its_url_is_400(live_server_sqlite) -> None:
    """FHIR R4 http.html#update: the body of a PUT carries the id of its URL; with none the server answers 400 (it
    was applied, so a body meant for another Patient, its id dropped by a mapping, updated this one)."""
    fhir = Fhir(live_server_sqlite, ["system/Patient.cruds"])
    created = fhir.create(fhir_patient(hospital=(RTK, "AB893001"), family="Vane"))
    without_id = {key: value for key, value in created.items() if key != "id"}
    outcome_of(fhir.put(f"Patient/{created['id']}", {**without_id, "gender": "female"}), 400, "invalid")
    assert fhir.get(f"Patient/{created['id']}").json()["gender"] == "male"
    assert fhir.put(f"Patient/{created['id']}", {**created, "gender": "female"}).status_code == 200
