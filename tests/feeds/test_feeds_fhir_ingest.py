"""process_resource, as ``priorscan ingest`` and dead-letter replay call it, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import sys
import types
from typing import Any

import pytest
from feeds_factories import RTK, fhir_patient
from sqlalchemy import select

from api.feeds.fhir_service import ADAPTERS, process_resource
from mpi import resolve_patient_reference
from mpi.fhir_patient import client_namespace
from mpi.tables import SourceRecord
from priorscan.audit import Agent
from priorscan.outcome import ItemOutcome
from priorscan.tables import DeadLetter

AGENT = Agent("feed", "priorscan-ingest")


def _records(context: Any) -> list[SourceRecord]:
    with context.sessions() as session:
        return list(session.scalars(select(SourceRecord).order_by(SourceRecord.id)))


def test_patients_known_only_by_id_are_one_source_record_per_id(context) -> None:  # type: ignore[no-untyped-def]
    bare = {"resourceType": "Patient", "name": [{"family": "Lee", "given": ["Sam"]}], "birthDate": "2001-01-01"}
    collection = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {**bare, "id": "p1"}}, {"resource": {**bare, "id": "p2", "gender": "female"}}]}
    outcomes = process_resource(context, collection, agent=AGENT, source="bundle.json")
    assert [o.accepted for o in outcomes] == [True, True]
    again = process_resource(context, {**bare, "id": "p1", "gender": "male"}, agent=AGENT, source="p1.json")
    assert again[0].accepted and again[0].detail["status"] == "200 OK"  # the same record, updated
    records = _records(context)
    assert [(r.namespace, r.local_id, r.sex) for r in records] == [
        (client_namespace("priorscan-ingest"), "p1", "male"), (client_namespace("priorscan-ingest"), "p2", "female")]


def test_refused_resources_are_dead_lettered_with_their_reason(context) -> None:  # type: ignore[no-untyped-def]
    refused = process_resource(context, fhir_patient(birthDate="31/12/1999"), agent=AGENT, source="bad.json")
    other = process_resource(context, {"resourceType": "Observation", "status": "final"}, agent=AGENT,
                             source="obs.json")
    assert [(o.accepted, o.error_code) for o in refused + other] == [(False, "fhir.invalid"),
                                                                     (False, "fhir.unsupported")]
    assert "Observation is not supported" in str(other[0].reason)
    with context.sessions() as session:
        letters = session.scalars(select(DeadLetter).order_by(DeadLetter.id)).all()
    assert [(d.channel, d.content_type, d.source, d.error_code) for d in letters] == [
        ("ingest", "fhir-json", "bad.json", "fhir.invalid"), ("ingest", "fhir-json", "obs.json", "fhir.unsupported")]
    assert json.loads(letters[0].raw)["birthDate"] == "31/12/1999"  # kept whole, for replay
    assert "31/12/1999" not in letters[0].reason


@pytest.fixture
def fake_imaging(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """Stands in for the imaging adapter (another package's): records the regional patient a study names."""
    seen: list[str | None] = []

    def apply_imaging_study(session, trusts, resource, *, agent):  # type: ignore[no-untyped-def]
        regional = resolve_patient_reference(session, trusts, resource["subject"]["reference"])
        seen.append(regional)
        if regional is None:
            return ItemOutcome.rejected("ImagingStudy", "the study's patient is unknown", "imaging.patient")
        return ItemOutcome.ok("ImagingStudy", regionalPatientId=regional)

    module = types.ModuleType("feeds_fake_imaging")
    module.apply_imaging_study = apply_imaging_study  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "feeds_fake_imaging", module)
    monkeypatch.setitem(ADAPTERS, "ImagingStudy", ("feeds_fake_imaging", "apply_imaging_study"))
    return seen


def _study(reference: str) -> dict[str, Any]:
    return {"resourceType": "ImagingStudy", "status": "available", "subject": {"reference": reference}}


def test_references_to_patients_of_the_same_bundle_are_rewritten(context, fake_imaging) -> None:  # type: ignore[no-untyped-def]
    transaction = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:5b6c", "resource": _study("urn:uuid:1f2e"),  # the study comes first in the Bundle
         "request": {"method": "POST", "url": "ImagingStudy"}},
        {"fullUrl": "urn:uuid:1f2e", "resource": fhir_patient(hospital=(RTK, "AB000701")),
         "request": {"method": "POST", "url": "Patient"}}]}
    outcomes = process_resource(context, transaction, agent=AGENT)
    assert [(o.kind, o.accepted) for o in outcomes] == [("ImagingStudy", True), ("Patient", True)]
    assert fake_imaging == [outcomes[1].detail["regionalPatientId"]]


def test_a_failed_transaction_leaves_nothing_and_is_kept_whole(context, fake_imaging) -> None:  # type: ignore[no-untyped-def]
    transaction = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": fhir_patient(hospital=(RTK, "AB000801")), "request": {"method": "POST", "url": "Patient"}},
        {"resource": _study("Patient/nobody"), "request": {"method": "POST", "url": "ImagingStudy"}}]}
    outcomes = process_resource(context, transaction, agent=AGENT, source="tx.json")
    assert [o.accepted for o in outcomes] == [False, False]
    assert "the study's patient is unknown" in str(outcomes[0].reason)
    assert _records(context) == []
    with context.sessions() as session:
        letters = session.scalars(select(DeadLetter)).all()
    assert [json.loads(d.raw)["type"] for d in letters] == ["transaction"]


def test_a_study_names_an_ingested_patient_by_the_patients_own_id(context) -> None:  # type: ignore[no-untyped-def]
    """Shaped like the R4 examples Patient ``dicom`` (keyed by an identifier, with its own id) and ImagingStudy
    ``example`` (subject ``Patient/dicom``), read from two files: the study is the patient's, not refused as naming
    an unknown Patient (hazard H-ID-45)."""
    patient = {"resourceType": "Patient", "id": "dicom", "identifier": [
        {"system": "http://nema.org/examples/patients", "value": "MINT1234"}], "name": [{"family": "MINT_TEST"}],
        "gender": "male"}
    study = {"resourceType": "ImagingStudy", "status": "available", "subject": {"reference": "Patient/dicom"},
             "identifier": [{"system": "urn:dicom:uid", "value": "urn:oid:2.16.124.113543.6003.45.1"}],
             "started": "2011-01-01T11:01:20+03:00"}
    [registered] = process_resource(context, patient, agent=AGENT, source="Patient-dicom.json")
    [indexed] = process_resource(context, study, agent=AGENT, source="ImagingStudy-example.json")
    assert indexed.accepted, indexed.reason
    assert indexed.detail["regionalPatientId"] == registered.detail["regionalPatientId"]
    other_client = process_resource(context, {**study, "identifier": [
        {"system": "urn:dicom:uid", "value": "urn:oid:2.16.124.113543.6003.45.2"}]},
        agent=Agent("client", "another-client"), source="other.json", keep_rejected=False)
    assert not other_client[0].accepted  # another sender's "dicom" is not this one
