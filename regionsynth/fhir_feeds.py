"""FHIR R4 resources as the FHIR-speaking trusts send them: Patient (UK Core), ImagingStudy and ServiceRequest.

- Patient: the NHS number under ``https://fhir.nhs.uk/Id/nhs-number`` with the UK Core NHS number verification status
  extension, the hospital number under the trust's ``fhir_system``, name, gender, birth date, address and the trust
  as managing organisation (ODS code). A merged-away duplicate is sent inactive with a ``replaced-by`` link to the
  surviving record, which is sent with a ``replaces`` link.
- ImagingStudy: ``urn:dicom:uid`` identifier, accession number, the subject by hospital number (a logical reference),
  DICOM modality codes, the procedure code, start time and per-series body site and laterality.
- ServiceRequest: placer order number, procedure code, priority, reason, body site; modality (DCM) and laterality
  (SNOMED CT) as ``orderDetail``.

Patient entries are updates by id (``PUT Patient/rpc-q123456``, update as create: the id is derived from the trust and
the hospital number), so that a Bundle can be replayed.
Resources are plain dicts serialised compactly; the tests validate them with ``fhir.resources`` (R4B).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from priorscan.trusts import NHS_NUMBER_SYSTEM, ODS_SYSTEM, Trust
from regionsynth.corruption import Recorded
from regionsynth.hl7_feeds import NHS_STATUS_DISPLAY
from regionsynth.procedures import DCM_SYSTEM, LATERALITY_SCT, NICIP_SYSTEM, SNOMED_SYSTEM, Procedure, dicom_modality

VERIFICATION_EXTENSION = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
VERIFICATION_SYSTEM = "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
UK_CORE_PATIENT = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
_PRIORITY = {"stat": "stat", "urgent": "urgent", "routine": "routine"}

try:
    _LONDON: ZoneInfo | None = ZoneInfo("Europe/London")
except ZoneInfoNotFoundError:  # no time zone database: write UTC offsets of zero
    _LONDON = None


def instant(moment: datetime) -> str:
    """A FHIR dateTime with the UK offset of the (local) moment."""
    if _LONDON is None:
        return moment.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    return moment.replace(tzinfo=_LONDON).isoformat()


def dumps(resource: dict) -> str:
    """Compact, deterministic JSON on one line."""
    return json.dumps(resource, separators=(",", ":"), ensure_ascii=False)


def trust_system(trust: Trust, kind: str) -> str:
    """A trust-specific identifier system next to its hospital-number system (``.../Id/accession-number``)."""
    return trust.fhir_system.rsplit("/", 1)[0] + f"/{kind}"


def patient(trust: Trust, number: str, state: Recorded, *, active: bool = True,
            link: tuple[str, str] | None = None) -> dict:
    """A UK Core Patient for one source record; ``link`` is ``(type, other hospital number)``."""
    identifiers: list[dict] = [{"use": "usual", "system": trust.fhir_system, "value": number}]
    if state.nhs_number:
        identifiers.insert(0, {
            "extension": [{"url": VERIFICATION_EXTENSION, "valueCodeableConcept": {"coding": [{
                "system": VERIFICATION_SYSTEM, "code": state.nhs_status,
                "display": NHS_STATUS_DISPLAY[state.nhs_status]}]}}],
            "system": NHS_NUMBER_SYSTEM, "value": state.nhs_number})
    given = [state.given] + ([state.middle] if state.middle else [])
    a = state.address
    resource: dict = {
        "resourceType": "Patient",
        "id": f"{trust.ods.lower()}-{number.lower()}",
        "meta": {"profile": [UK_CORE_PATIENT]},
        "identifier": identifiers,
        "active": active,
        "name": [{"use": "official", "family": state.family, "given": given}],
        "gender": "female" if state.sex == "F" else "male",
        "birthDate": state.birth_date.isoformat(),
        "address": [{"use": "home", "line": [x for x in (a.line1, a.line2) if x], "city": a.town,
                     "district": a.county, "postalCode": a.postcode, "country": "GB"}],
        "managingOrganization": {"identifier": {"system": ODS_SYSTEM, "value": trust.ods}},
    }
    if link is not None:
        resource["link"] = [{"other": {"identifier": {"system": trust.fhir_system, "value": link[1]}},
                             "type": link[0]}]
    return resource


def entry(resource: dict, full_url: uuid.UUID, method: str, url: str) -> str:
    """A Bundle entry (JSON) with its request."""
    return dumps({"fullUrl": f"urn:uuid:{full_url}", "resource": resource, "request": {"method": method, "url": url}})


def patient_entry(resource: dict, full_url: uuid.UUID) -> str:
    """An update (update-as-create) of the patient by its id, which the trust derives from the hospital number."""
    return entry(resource, full_url, "PUT", f"Patient/{resource['id']}")


def _coding(system: str, code: str, display: str) -> dict:
    return {"system": system, "code": code, "display": display}


def _laterality(procedure: Procedure, side: str | None = None) -> dict | None:
    side = side or procedure.laterality
    if side not in LATERALITY_SCT:
        return None
    code, display = LATERALITY_SCT[side]
    return _coding(SNOMED_SYSTEM, code, display)


def imaging_study(trust: Trust, *, uid: str, accession: str, patient_id: str, patient_name: str,
                  procedure: Procedure, description: str, performed: datetime,
                  series: list[tuple[str, int, str, str]]) -> dict:
    """An ImagingStudy; ``series`` holds ``(uid, number, description, laterality)`` per series."""
    modality = _coding(DCM_SYSTEM, dicom_modality(procedure), dicom_modality(procedure))
    site = _coding(SNOMED_SYSTEM, procedure.site_sct, procedure.site_display)
    out_series = []
    for series_uid, number, series_description, side in series:
        item: dict = {"uid": series_uid, "number": number, "modality": modality, "description": series_description,
                      "numberOfInstances": 1, "bodySite": site}
        lat = _laterality(procedure, side or None)
        if lat is not None:
            item["laterality"] = lat
        out_series.append(item)
    return {
        "resourceType": "ImagingStudy",
        "id": f"{trust.ods.lower()}-{accession.lower()}",
        "identifier": [
            {"system": "urn:dicom:uid", "value": f"urn:oid:{uid}"},
            {"type": {"coding": [{"system": V2_0203, "code": "ACSN"}]}, "system": trust_system(trust,
                                                                                              "accession-number"),
             "value": accession},
        ],
        "status": "available",
        "modality": [modality],
        "subject": {"identifier": {"system": trust.fhir_system, "value": patient_id}, "display": patient_name},
        "started": instant(performed),
        "numberOfSeries": len(out_series),
        "numberOfInstances": len(out_series),
        "procedureCode": [{"coding": [_coding(NICIP_SYSTEM, procedure.code, procedure.short)], "text": description}],
        "description": description,
        "series": out_series,
    }


def service_request(trust: Trust, *, placer: str, patient_id: str, patient_name: str, procedure: Procedure,
                    description: str, ordered: datetime, priority: str, reason: str) -> dict:
    """A ServiceRequest (an imaging order) as order communications send it."""
    details = [{"coding": [_coding(DCM_SYSTEM, dicom_modality(procedure), dicom_modality(procedure))]}]
    lat = _laterality(procedure)
    if lat is not None:
        details.append({"coding": [lat]})
    return {
        "resourceType": "ServiceRequest",
        "identifier": [{"type": {"coding": [{"system": V2_0203, "code": "PLAC"}]},
                        "system": trust_system(trust, "placer-order-number"), "value": placer}],
        "status": "active",
        "intent": "order",
        "category": [{"coding": [_coding(SNOMED_SYSTEM, "363679005", "Imaging")]}],
        "priority": _PRIORITY[priority],
        "code": {"coding": [_coding(NICIP_SYSTEM, procedure.code, procedure.short)], "text": description},
        "orderDetail": details,
        "subject": {"identifier": {"system": trust.fhir_system, "value": patient_id}, "display": patient_name},
        "authoredOn": instant(ordered),
        "requester": {"identifier": {"system": ODS_SYSTEM, "value": trust.ods}},
        "reasonCode": [{"text": reason}],
        "bodySite": [{"coding": [_coding(SNOMED_SYSTEM, procedure.site_sct, procedure.site_display)]}],
    }
