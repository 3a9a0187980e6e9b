"""FHIR R4 ImagingStudy: reading one into :class:`imaging.facts.StudyFacts`, and rendering a stored study as one.

Read: the Study Instance UID from ``identifier`` (system ``urn:dicom:uid``, value ``urn:oid:<uid>``), the accession
number from the identifier typed ``ACSN`` (its ``assigner`` naming the trust by ODS code), ``status``, ``started``,
``modality`` (R4 Coding or R5 CodeableConcept), ``procedureCode``, ``description``, and the first series'
``bodySite`` and ``laterality``. The subject is a ``Patient/<regional id>`` reference, a logical reference by
identifier (NHS number or a trust's hospital number), a ``Patient/src-<n>`` reference to one source record, or a
contained Patient with identifiers.

Resources are validated with the R4B models of ``fhir.resources`` first; what fails is rejected with the path.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from imaging.codetables import fhir_code_system
from imaging.dicom_time import LOCAL_ZONE
from imaging.facts import CANCELLED, COMPLETED, IN_PROGRESS, SCHEDULED, StudyFacts
from imaging.identity import PatientIdentity, qualify
from imaging.index import StudyIndex
from imaging.procedures import ProcedureCode
from imaging.regions import normalise_laterality
from imaging.tables import Study
from mpi import PatientIndex, SourceRecord, find_source_record
from priorscan.audit import Agent
from priorscan.errors import FHIRError
from priorscan.outcome import ItemOutcome
from priorscan.trusts import NHS_NUMBER_SYSTEM, ODS_SYSTEM, TrustRegistry

DICOM_UID_SYSTEM = "urn:dicom:uid"
DCM_SYSTEM = "http://dicom.nema.org/resources/ontology/DCM"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
EXTENSION_BASE = "https://fhir.priorscan.nhs.example/StructureDefinition/"
SOURCE_ID_PREFIX = "src-"  # FHIR Patient ids of single source records (regional patients are "RP...")
_STATUS_IN = {"registered": SCHEDULED, "available": COMPLETED, "cancelled": CANCELLED,
              "entered-in-error": CANCELLED, "unknown": None}
_STATUS_OUT = {SCHEDULED: "registered", IN_PROGRESS: "registered", COMPLETED: "available", CANCELLED: "cancelled"}


def validate(resource: dict[str, Any]) -> None:
    """Raise :class:`priorscan.errors.FHIRError` unless ``resource`` is a valid R4 ImagingStudy."""
    from fhir.resources.R4B.imagingstudy import ImagingStudy

    if not isinstance(resource, dict) or resource.get("resourceType") != "ImagingStudy":
        raise FHIRError("expected an ImagingStudy resource", code="fhir.invalid")
    try:
        ImagingStudy.model_validate(resource)
    except ValidationError as exc:
        where = ", ".join(".".join(str(p) for p in err["loc"]) for err in exc.errors()[:3])
        raise FHIRError(f"invalid ImagingStudy at {where or 'resource'}", code="fhir.invalid") from exc


#: A DICOM UID (PS3.5 9.1): numeric components separated by dots, at most 64 characters.
_DICOM_UID = re.compile(r"[0-9]+(?:\.[0-9]+)+")
MAX_UID_LENGTH = 64


def dicom_uid(value: str | None) -> str | None:
    """``value`` (a UID, or ``urn:oid:`` and a UID) as a DICOM UID, or None when it is not one.

    A UID from a FHIR client becomes the study's key, its FHIR id and its ``Location`` header: a value with other
    characters (a CR LF, which no HTTP header may hold) or longer than DICOM allows is refused, never stored
    (hazard log H-SEC-19).
    """
    text = (value or "").strip()
    if text.startswith("urn:oid:"):
        text = text[len("urn:oid:"):]
    return text if len(text) <= MAX_UID_LENGTH and _DICOM_UID.fullmatch(text) else None


def study_uid_of(resource: dict[str, Any]) -> str | None:
    """The Study Instance UID in an ImagingStudy's identifiers (None when absent or not a DICOM UID)."""
    for identifier in resource.get("identifier") or []:
        if identifier.get("system") == DICOM_UID_SYSTEM and identifier.get("value"):
            return dicom_uid(str(identifier["value"]))
    return None


def _codings(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return value.get("coding") or ([value] if value.get("code") else [])
    if isinstance(value, list):
        return [c for v in value for c in _codings(v)]
    return []


def _accession(resource: dict[str, Any], trusts: TrustRegistry) -> tuple[str | None, str | None]:
    for identifier in resource.get("identifier") or []:
        codes = {c.get("code") for c in _codings(identifier.get("type"))}
        if "ACSN" in codes and identifier.get("value"):
            assigner = identifier.get("assigner") or {}
            names = [(assigner.get("identifier") or {}).get("value"), assigner.get("display"),
                     identifier.get("system")]
            trust = next((t for t in (trusts.resolve(n) for n in names if n) if t is not None), None)
            return str(identifier["value"]), trust.ods if trust else None
    return None, None


def _identity_from_identifiers(identifiers: list[dict[str, Any]], trusts: TrustRegistry) -> PatientIdentity:
    nhs = next((i.get("value") for i in identifiers if i.get("system") == NHS_NUMBER_SYSTEM), None)
    local = [i for i in identifiers if i.get("system") and i.get("value") and i.get("system") != NHS_NUMBER_SYSTEM]
    chosen = next((i for i in local if trusts.resolve(i["system"])), local[0] if local else None)
    if chosen is not None:
        return qualify(trusts, patient_id=str(chosen["value"]), issuers=[chosen["system"]], fallback_trusts=[],
                       nhs_number=nhs)
    return qualify(trusts, patient_id=None, issuers=[], fallback_trusts=[], nhs_number=nhs)


def subject_identity(session: Session, trusts: TrustRegistry, resource: dict[str, Any],
                     performing_trust: str | None, client: str = "") -> PatientIdentity:
    """Who an ImagingStudy is about, as the source record identifier the study will follow.

    A ``Patient/<id>`` reference names a regional patient, a source record (``src-<n>``), or a Patient by the id its
    sender gave it (with PUT, or in a file ``priorscan ingest`` read for ``client``): :func:`mpi.find_source_record`.
    """
    subject = resource.get("subject") or {}
    reference = str(subject.get("reference") or "")
    if reference.startswith("#"):
        contained = next((c for c in resource.get("contained") or []
                          if c.get("resourceType") == "Patient" and c.get("id") == reference[1:]), None)
        return _identity_from_identifiers((contained or {}).get("identifier") or [], trusts)
    if reference:
        resource_id = reference.rstrip("/").rsplit("/", 1)[-1] if "Patient/" in reference else ""
        if resource_id.startswith(SOURCE_ID_PREFIX) and resource_id[len(SOURCE_ID_PREFIX):].isdigit():
            record = session.get(SourceRecord, int(resource_id[len(SOURCE_ID_PREFIX):]))
            if record is None:
                return PatientIdentity(unresolved="the subject Patient is not known")
            return PatientIdentity(record.namespace, record.local_id, record.trust_ods, qualified_by="reference")
        index = PatientIndex(session, trusts)
        patient = index.regional_patient(resource_id) if resource_id else None
        if patient is None:
            # the id a client chose for its Patient with PUT (GET Patient/<id> reads it; so must a reference)
            record = find_source_record(session, resource_id, client) if resource_id else None
            if record is None:
                return PatientIdentity(unresolved="the subject Patient is not known")
            return PatientIdentity(record.namespace, record.local_id, record.trust_ods, qualified_by="reference")
        records = index.records_of(patient.id, include_inactive=False)
        if not records:
            return PatientIdentity(unresolved="the subject Patient has no source record")
        records.sort(key=lambda r: (r.provisional, r.trust_ods != performing_trust, r.id))
        return PatientIdentity(records[0].namespace, records[0].local_id, records[0].trust_ods,
                               qualified_by="reference")
    identifier = subject.get("identifier")
    if isinstance(identifier, dict):
        return _identity_from_identifiers([identifier], trusts)
    return PatientIdentity(unresolved="no subject")


def _started(value: Any) -> tuple[date | None, datetime | None]:
    if not isinstance(value, str) or not value:
        return None, None
    try:
        if len(value) <= 10:  # YYYY, YYYY-MM or YYYY-MM-DD
            parts = [int(p) for p in value.split("-")]
            return date(parts[0], *(parts[1:] + [1, 1])[:2]), None
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None, None
    if when.tzinfo is None:  # FHIR requires an offset with a time; a sender that omits it means its local time
        when = when.replace(tzinfo=LOCAL_ZONE)
    return when.astimezone(LOCAL_ZONE).date(), when  # the study date is a London calendar date


def facts_from_resource(session: Session, trusts: TrustRegistry, resource: dict[str, Any],
                        client: str = "") -> StudyFacts:
    """Read a validated ImagingStudy into study facts; raises FHIRError without a Study Instance UID."""
    uid = study_uid_of(resource)
    if not uid:
        raise FHIRError("ImagingStudy needs an identifier with system urn:dicom:uid whose value is a DICOM UID "
                        "(digits and dots, at most 64 characters)", code="fhir.invalid")
    accession, trust = _accession(resource, trusts)
    identity = subject_identity(session, trusts, resource, trust, client)
    modalities = [str(c["code"]) for c in _codings(resource.get("modality")) if c.get("code")]
    series = resource.get("series") or []
    for item in series:
        modalities += [str(c["code"]) for c in _codings(item.get("modality")) if c.get("code")]
    codes = [ProcedureCode(c.get("system"), str(c.get("code")), c.get("display"))
             for concept in resource.get("procedureCode") or [] for c in _codings(concept) if c.get("code")]
    texts = [concept.get("text") for concept in resource.get("procedureCode") or [] if concept.get("text")]
    body_site = next((c for item in series for c in _codings(item.get("bodySite"))), None)
    laterality = next((c for item in series for c in _codings(item.get("laterality"))), None)
    study_date, started = _started(resource.get("started"))
    return StudyFacts(
        study_instance_uid=uid, source="fhir", patient=identity, performing_trust=trust or identity.trust_ods,
        accession_number=accession, modalities=modalities,
        description=resource.get("description") or (texts[0] if texts else None), procedure_codes=codes,
        body_part=(body_site.get("display") or body_site.get("code")) if body_site else None,
        laterality=(normalise_laterality(laterality.get("code")) or normalise_laterality(laterality.get("display"))
                    if laterality else None),
        study_date=study_date, study_datetime=started, status=_STATUS_IN.get(resource.get("status") or ""),
        status_corrects=resource.get("status") == "entered-in-error")


def apply_imaging_study(session: Session, trusts: TrustRegistry, resource: dict, *, agent: Agent) -> ItemOutcome:
    """Create or update a study from an ImagingStudy resource (the caller commits and audits).

    Returns
    -------
    ItemOutcome
        Kind ``ImagingStudy``; ``studyInstanceUid``, ``regionalPatientId``, ``created`` and ``patient`` in the
        detail. A resource that is invalid, has no Study Instance UID or names an unknown Patient is rejected.
    """
    try:
        validate(resource)
        facts = facts_from_resource(session, trusts, resource, agent.name)
    except FHIRError as exc:
        return ItemOutcome.rejected("ImagingStudy", exc.message, exc.code)
    if facts.patient.unresolved and "Patient" in facts.patient.unresolved:
        return ItemOutcome.rejected("ImagingStudy", facts.patient.unresolved, "not-found")
    indexed = StudyIndex(session, trusts).apply(facts, actor=f"{agent.kind}:{agent.name}")
    detail: dict[str, object] = {"studyInstanceUid": indexed.study.study_instance_uid,
                                 "regionalPatientId": indexed.regional_id, "created": indexed.created,
                                 "patient": indexed.patient, "id": indexed.study.study_instance_uid}
    if indexed.unresolved_reason:
        detail["unresolvedReason"] = indexed.unresolved_reason
    return ItemOutcome.ok("ImagingStudy", **detail)


def to_fhir(study: Study, regional_id: str | None, trusts: TrustRegistry) -> dict[str, Any]:
    """A stored study as an R4 ImagingStudy (with priorscan's normalised procedure and dose as extensions)."""
    identifiers: list[dict[str, Any]] = [{"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{study.study_instance_uid}"}]
    trust = trusts.resolve(study.performing_trust) if study.performing_trust else None
    if study.accession_number:
        accession: dict[str, Any] = {"type": {"coding": [{"system": V2_0203, "code": "ACSN"}]},
                                     "value": study.accession_number}
        if trust is not None:
            accession["assigner"] = {"identifier": {"system": ODS_SYSTEM, "value": trust.ods}, "display": trust.name}
        identifiers.append(accession)
    resource: dict[str, Any] = {
        "resourceType": "ImagingStudy", "id": study.study_instance_uid,
        "meta": {"lastUpdated": study.updated_at.isoformat()} if study.updated_at else {},
        "identifier": identifiers, "status": _STATUS_OUT.get(study.status, "unknown"),
        "subject": ({"reference": f"Patient/{regional_id}"} if regional_id
                    else {"display": "patient not yet identified"}),
    }
    modalities = [m for m in (study.modalities_in_study or "").split("\\") if m]
    if modalities:
        resource["modality"] = [{"system": DCM_SYSTEM, "code": m} for m in modalities]
    if study.study_datetime:
        resource["started"] = study.study_datetime.isoformat()
    elif study.study_date:
        resource["started"] = study.study_date.isoformat()
    if study.procedure_code or study.description:
        concept: dict[str, Any] = {"text": study.description} if study.description else {}
        if study.procedure_code:
            concept["coding"] = [{"system": fhir_code_system(study.procedure_system), "code": study.procedure_code}]
        resource["procedureCode"] = [concept]
    if study.description:
        resource["description"] = study.description
    extensions = [{"url": EXTENSION_BASE + name, value_type: value} for name, value_type, value in (
        ("body-region", "valueCode", study.body_region), ("laterality", "valueCode", study.laterality),
        ("normalisation", "valueCode", study.normalisation),
        ("effective-dose-msv", "valueDecimal", study.effective_dose_msv),
        ("effective-dose-method", "valueString", study.effective_dose_method),
        ("dlp-total-mgycm", "valueDecimal", study.dlp_total_mgycm),
        ("dap-total-gym2", "valueDecimal", study.dap_total_gym2),
        ("viewer-url", "valueUrl", trusts.viewer_url(
            study.performing_trust, study.study_instance_uid, accession_number=study.accession_number,
            patient_namespace=study.patient_issuer, patient_local_id=study.patient_local_id)),
        ("withdrawn", "valueString", study.withdrawn),
        ("not-patient", "valueString", study.not_patient)) if value is not None]
    if extensions:
        resource["extension"] = extensions
    if not resource["meta"]:
        del resource["meta"]
    return resource
