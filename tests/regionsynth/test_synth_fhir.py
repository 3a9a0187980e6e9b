"""FHIR feeds: every resource validates as R4 (fhir.resources R4B) and follows UK Core identifier conventions."""

from __future__ import annotations

import json
from pathlib import Path

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.imagingstudy import ImagingStudy
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.servicerequest import ServiceRequest
from synth_feeds import fhir_files, fhir_resources

from priorscan.trusts import NHS_NUMBER_SYSTEM, TrustRegistry
from regionsynth.fhir_feeds import VERIFICATION_EXTENSION, VERIFICATION_SYSTEM

MODELS = {"Patient": Patient, "ImagingStudy": ImagingStudy, "ServiceRequest": ServiceRequest}


def test_every_bundle_and_resource_validates(small_region: Path) -> None:
    files = fhir_files(small_region)
    assert any(p.suffix == ".json" for p in files) and any(p.suffix == ".ndjson" for p in files)
    count = 0
    for path in files:
        if path.suffix == ".json":
            bundle = Bundle.model_validate_json(path.read_text(encoding="utf-8"))
            assert bundle.type in ("transaction", "batch")
            assert all(e.request is not None for e in bundle.entry)
        for resource in fhir_resources(path):
            MODELS[resource["resourceType"]].model_validate(resource)
            count += 1
    assert count > 50


def test_bundles_are_transactions_and_batches(large_region: Path) -> None:
    kinds = {json.loads(p.read_text())["type"] for p in (large_region / "fhir").rglob("*.json")}
    assert kinds == {"transaction", "batch"}


def test_a_transaction_touches_each_patient_once(large_region: Path) -> None:
    for path in (large_region / "fhir").rglob("patients-*.json"):
        urls = [e["request"]["url"] for e in json.loads(path.read_text())["entry"]]
        assert len(urls) == len(set(urls)), path


def test_patients_carry_nhs_number_with_verification_status_and_trust_hospital_number(
        small_region: Path, trusts: TrustRegistry) -> None:
    statuses = set()
    for path in fhir_files(small_region):
        trust = trusts.by_ods(path.parent.name)
        for resource in fhir_resources(path):
            if resource["resourceType"] != "Patient":
                continue
            systems = {i["system"] for i in resource["identifier"]}
            assert trust.fhir_system in systems and systems <= {trust.fhir_system, NHS_NUMBER_SYSTEM}
            for identifier in resource["identifier"]:
                if identifier["system"] == NHS_NUMBER_SYSTEM:
                    (extension,) = identifier["extension"]
                    assert extension["url"] == VERIFICATION_EXTENSION
                    coding = extension["valueCodeableConcept"]["coding"][0]
                    assert coding["system"] == VERIFICATION_SYSTEM
                    statuses.add(coding["code"])
    assert "01" in statuses and statuses - {"01"}


def test_imaging_studies_name_uid_subject_modality_and_procedure(small_region: Path, trusts: TrustRegistry) -> None:
    seen = 0
    for path in (small_region / "fhir").rglob("imagingstudies.ndjson"):
        trust = trusts.by_ods(path.parent.name)
        for resource in fhir_resources(path):
            uid = next(i for i in resource["identifier"] if i["system"] == "urn:dicom:uid")
            assert uid["value"].startswith("urn:oid:1.2.826.0.1.3680043.8.498.")
            assert resource["subject"]["identifier"]["system"] == trust.fhir_system
            assert resource["modality"][0]["system"] == "http://dicom.nema.org/resources/ontology/DCM"
            assert resource["procedureCode"][0]["coding"][0]["code"]
            assert resource["started"][:4].isdigit()
            seen += 1
    assert seen


def test_service_requests_carry_placer_number_code_priority_and_reason(large_region: Path) -> None:
    requests = [r for p in (large_region / "fhir").rglob("servicerequests-*.json") for r in fhir_resources(p)]
    assert requests
    for resource in requests:
        assert resource["identifier"][0]["type"]["coding"][0]["code"] == "PLAC"
        assert resource["priority"] in ("routine", "urgent", "stat")
        assert resource["reasonCode"][0]["text"]
        assert resource["code"]["coding"][0]["code"]
