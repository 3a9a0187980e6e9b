"""FHIR R4 DiagnosticReport: a study's report linked to it (``POST /fhir/DiagnosticReport``), and rendered back.

Read:

- the study: ``imagingStudy`` references (``ImagingStudy/<Study Instance UID>``, or a logical reference by identifier
  ``urn:dicom:uid``), else an identifier typed ``ACSN`` (accession number, its ``assigner`` naming the trust) of a
  study already indexed. A report naming a Study Instance UID the index does not hold yet creates the study from what
  the report says (its subject, as an ImagingStudy's), so that the images arriving later join it; a report naming
  neither is refused;
- the report's key: the resource's identifier (``system|value``) when it has one, so that a report sent again (or
  amended) replaces its earlier version; else a new one. Its FHIR id is the stored row's number;
- ``status``, ``issued``, ``conclusion``; the text from ``presentedForm`` (``text/plain`` attachments, base64) or
  the narrative (``text.div`` without its markup).

Nothing here commits.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import uuid
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from imaging.facts import COMPLETED, StudyFacts
from imaging.fhir_imaging import DICOM_UID_SYSTEM, V2_0203, _accession, dicom_uid, subject_identity
from imaging.index import StudyIndex
from imaging.reports import link_report
from imaging.tables import Study, StudyReport
from priorscan.audit import Agent
from priorscan.errors import FHIRError
from priorscan.outcome import ItemOutcome
from priorscan.trusts import TrustRegistry

KIND = "DiagnosticReport"


def validate(resource: dict[str, Any]) -> None:
    """Raise :class:`priorscan.errors.FHIRError` unless ``resource`` is a valid R4 DiagnosticReport."""
    from fhir.resources.R4B.diagnosticreport import DiagnosticReport

    if not isinstance(resource, dict) or resource.get("resourceType") != KIND:
        raise FHIRError("expected a DiagnosticReport resource", code="fhir.invalid")
    try:
        DiagnosticReport.model_validate(resource)
    except ValidationError as exc:
        where = ", ".join(".".join(str(p) for p in err["loc"]) for err in exc.errors()[:3])
        raise FHIRError(f"invalid DiagnosticReport at {where or 'resource'}", code="fhir.invalid") from exc


def study_uids(resource: dict[str, Any]) -> list[str]:
    """The Study Instance UIDs a report names in ``imagingStudy``."""
    found = []
    for ref in resource.get("imagingStudy") or []:
        reference = str(ref.get("reference") or "")
        if reference.startswith("ImagingStudy/"):
            uid = dicom_uid(reference.split("/", 1)[1])
        else:
            identifier = ref.get("identifier") or {}
            uid = dicom_uid(identifier.get("value")) if identifier.get("system") == DICOM_UID_SYSTEM else None
        if uid:
            found.append(uid)
    return list(dict.fromkeys(found))


def report_text(resource: dict[str, Any]) -> str | None:
    """The report's text: its plain-text attachments, else its narrative without markup."""
    texts = []
    for attachment in resource.get("presentedForm") or []:
        kind = str(attachment.get("contentType") or "").split(";")[0].strip().lower()
        if kind != "text/plain" or not attachment.get("data"):
            continue
        try:
            texts.append(base64.b64decode(attachment["data"], validate=True).decode("utf-8", errors="replace"))
        except (binascii.Error, ValueError):
            continue
    if texts:
        return "\n\n".join(t.strip() for t in texts if t.strip()) or None
    div = (resource.get("text") or {}).get("div")
    if div:
        plain = html.unescape(re.sub(r"<br\s*/?>|</p>", "\n", str(div)))
        return re.sub(r"<[^>]+>", "", plain).strip() or None
    return None


def _report_id(resource: dict[str, Any]) -> str:
    for identifier in resource.get("identifier") or []:
        if identifier.get("system") and identifier.get("value"):
            return f"{identifier['system']}|{identifier['value']}"[:200]
    return str(uuid.uuid4())


def _issued(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def apply_diagnostic_report(session: Session, trusts: TrustRegistry, resource: dict[str, Any], *,
                            agent: Agent) -> ItemOutcome:
    """Link a DiagnosticReport to its study (the caller commits and audits).

    Returns
    -------
    ItemOutcome
        Kind ``DiagnosticReport``; ``id`` (the report's id), ``studyInstanceUid``, ``regionalPatientId`` and
        ``created`` in the detail. Rejected when invalid or naming no study it can be linked to.
    """
    try:
        validate(resource)
    except FHIRError as exc:
        return ItemOutcome.rejected(KIND, exc.message, exc.code)
    index = StudyIndex(session, trusts)
    uids = study_uids(resource)
    study = next((s for s in (index.find(u, lock=True) for u in uids) if s is not None), None)
    if study is None and not uids:
        accession, trust = _accession(resource, trusts)
        if accession:
            query = select(Study).where(Study.accession_number == accession)
            if trust:
                query = query.where(Study.performing_trust == trust)
            candidates = list(session.scalars(query.limit(2)))
            study = candidates[0] if len(candidates) == 1 else None
    if study is None and not uids:
        return ItemOutcome.rejected(KIND, "the report names no ImagingStudy (imagingStudy, or an ACSN identifier of "
                                          "an indexed study)", "not-found")
    created_study = False
    if study is None:
        identity = subject_identity(session, trusts, resource, None, agent.name)
        if identity.unresolved and "Patient" in identity.unresolved:
            return ItemOutcome.rejected(KIND, identity.unresolved, "not-found")
        accession, trust = _accession(resource, trusts)
        indexed = index.apply(StudyFacts(study_instance_uid=uids[0], source="fhir", patient=identity,
                                         performing_trust=trust or identity.trust_ods, accession_number=accession,
                                         status=COMPLETED), actor=f"{agent.kind}:{agent.name}")
        study, created_study = indexed.study, True
    report_id = _report_id(resource)
    existed = session.scalars(select(StudyReport.id).where(StudyReport.source == "fhir",
                                                           StudyReport.report_id == report_id)).first() is not None
    row = link_report(session, study, source="fhir", report_id=report_id, status=resource.get("status"),
                      conclusion=resource.get("conclusion"), text=report_text(resource),
                      issued_at=_issued(resource.get("issued")))
    return ItemOutcome.ok(KIND, id=str(row.id), studyInstanceUid=study.study_instance_uid,
                          regionalPatientId=index.regional_id_of(study), created=not existed,
                          studyCreated=created_study)


def to_fhir(report: StudyReport, study: Study, regional_id: str | None) -> dict[str, Any]:
    """A stored report as an R4 DiagnosticReport."""
    resource: dict[str, Any] = {
        "resourceType": KIND, "id": str(report.id),
        "status": report.status or "unknown",
        "code": {"coding": [{"system": "http://loinc.org", "code": "18748-4", "display": "Diagnostic imaging study"}]},
        "subject": ({"reference": f"Patient/{regional_id}"} if regional_id
                    else {"display": "patient not yet identified"}),
        "imagingStudy": [{"reference": f"ImagingStudy/{study.study_instance_uid}"}],
    }
    if "|" in report.report_id:
        system, value = report.report_id.split("|", 1)
        resource["identifier"] = [{"system": system, "value": value}]
    if report.issued_at:
        resource["issued"] = report.issued_at.isoformat()
    if report.conclusion:
        resource["conclusion"] = report.conclusion
    if report.text:
        resource["presentedForm"] = [{"contentType": "text/plain",
                                      "data": base64.b64encode(report.text.encode()).decode("ascii")}]
    if study.accession_number:
        resource["identifier"] = [*resource.get("identifier", []), {
            "type": {"coding": [{"system": V2_0203, "code": "ACSN"}]}, "value": study.accession_number}]
    return {k: v for k, v in resource.items() if v is not None}
