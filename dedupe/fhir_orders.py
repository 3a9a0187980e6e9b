"""FHIR R4 ServiceRequest (an imaging order) as a duplicate check: ``POST /fhir/ServiceRequest``, ``priorscan
ingest`` and Bundles. The resource is validated with the R4B models of ``fhir.resources``; nothing is committed here.

Read from the resource:

- the patient: ``subject.identifier``; ``subject.reference`` to a ``contained`` Patient (identifiers, name, birth
  date, gender, postcode), to ``Patient?identifier=system|value``, or to ``Patient/<regional id>``;
- the order: the ``identifier`` typed ``PLAC`` (v2-0203; else one whose system names a placer number, else the
  first) and ``FILL``; the requesting trust from ``requester`` (an ODS identifier, or ``Organization/<ODS>``), the
  placer identifier's ``assigner``, or the trust whose FHIR system's host names the identifier's system;
- the procedure: every ``code.coding`` (the first the code table knows wins) and ``code.text``; the modality from a
  DICOM (``DCM``) coding in ``orderDetail``, ``category`` or ``code``; the body site from ``bodySite``; laterality from
  a SNOMED CT laterality code (24028007, 7771000, 51440002) in ``orderDetail`` or ``bodySite``;
- ``priority``, ``reasonCode`` (codes and text), ``note``, and ``authoredOn`` (the order's time, so a resource loaded
  later is judged as of its own date).

``status`` ``revoked`` or ``entered-in-error`` cancels the order and its alert (dose avoided counted); ``completed``
completes the order; any other status is checked.

The outcome goes back with the resource (see :func:`with_outcome`): a ``contained`` OperationOutcome
(id ``duplicate-check``) and an extension :data:`OUTCOME_EXTENSION` with verdict, identity, alert id and rules
version.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import unquote, urlparse

from fhir.resources.R4B.servicerequest import ServiceRequest
from pydantic import ValidationError
from sqlalchemy.orm import Session

from dedupe.alerts import alert_of_order, cancel
from dedupe.check import CheckOutcome, CheckRequest, PatientQuery, ProcedureQuery, run_check
from dedupe.circumstances import RequestReason
from dedupe.comparable import local_date, local_moment
from dedupe.config import active_rules
from dedupe.orders import CANCELLED, COMPLETED, set_order_status
from dedupe.rules import RuleSet
from dedupe.vocabulary import ProcedureCode, body_structure_region, body_structure_side, normalise_laterality
from priorscan.audit import Agent
from priorscan.errors import FHIRError, ForbiddenError
from priorscan.outcome import ItemOutcome
from priorscan.trusts import TrustRegistry

DCM_SYSTEM = "http://dicom.nema.org/resources/ontology/DCM"
SNOMED_SYSTEM = "http://snomed.info/sct"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
OUTCOME_EXTENSION = "https://priorscan.nhs.uk/fhir/StructureDefinition/duplicate-check"
LATERALITY_CODES = frozenset({"24028007", "7771000", "51440002"})
_CANCELLING = frozenset({"revoked", "entered-in-error"})


def validate_service_request(resource: dict[str, Any]) -> None:
    """Refuse what is not a valid FHIR R4 ServiceRequest (``fhir``; the message names fields, not values)."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "ServiceRequest":
        raise FHIRError("expected a ServiceRequest resource", code="fhir.type")
    try:
        ServiceRequest.model_validate({k: v for k, v in resource.items() if k != "resourceType"})
    except ValidationError as exc:
        where = "; ".join(".".join(str(p) for p in e["loc"]) + f": {e['type']}" for e in exc.errors()[:5])
        raise FHIRError(f"the ServiceRequest is not valid FHIR R4 ({where})", code="fhir.invalid") from exc


def _codings(concepts: Any) -> list[dict[str, Any]]:
    if isinstance(concepts, dict):
        concepts = [concepts]
    return [c for concept in concepts or [] if isinstance(concept, dict) for c in concept.get("coding") or []
            if isinstance(c, dict)]


def _text(concept: Any) -> str | None:
    if not isinstance(concept, dict):
        return None
    return concept.get("text") or next((c.get("display") for c in concept.get("coding") or [] if c.get("display")),
                                       None)


def _coded_site(concept: dict[str, Any]) -> str | None:
    """A body site sent as a SNOMED CT body structure code alone (no text, no display), in words the normaliser
    reads: ``51185008`` is the chest; ``82169009`` (structure of left knee region) the left knee."""
    for coding in _codings(concept):
        region = body_structure_region(coding.get("system"), coding.get("code"))
        if region:
            side = body_structure_side(coding.get("system"), coding.get("code"))
            return " ".join(filter(None, (side, region.replace("-", " "))))
    return None


def _coded_side(sites: list[dict[str, Any]]) -> str | None:
    """The one side the body sites' SNOMED CT structure codes carry themselves (left knee and left ankle: left); None
    when they carry none, or differ (then each is read with its region's words, :func:`_coded_site`)."""
    sides = {body_structure_side(c.get("system"), c.get("code")) for c in _codings(sites)} - {None}
    return sides.pop() if len(sides) == 1 else None


def _patient(resource: dict[str, Any]) -> PatientQuery:
    subject = resource.get("subject") or {}
    identifier = subject.get("identifier") or {}
    if identifier.get("system") and identifier.get("value"):
        return PatientQuery(identifiers=((identifier["system"], identifier["value"]),))
    reference = str(subject.get("reference") or "")
    if reference.startswith("#"):
        contained = next((c for c in resource.get("contained") or []
                          if c.get("resourceType") == "Patient" and c.get("id") == reference[1:]), None)
        if contained is not None:
            return patient_query(contained)
    if reference.startswith("Patient?"):
        query = unquote(reference.split("identifier=", 1)[-1].split("&", 1)[0])
        system, _, value = query.rpartition("|")
        if system and value:
            return PatientQuery(identifiers=((system, value),))
    if "Patient/" in reference:
        logical_id = urlparse(reference).path.rstrip("/").split("Patient/", 1)[-1].split("/", 1)[0]
        if logical_id:
            return PatientQuery(regional_id=logical_id)
    raise FHIRError("ServiceRequest.subject names no patient (identifier or reference)", code="fhir.subject")


def patient_query(patient: dict[str, Any]) -> PatientQuery:
    """The patient a FHIR Patient resource describes: identifiers, first name, birth date, gender, postcode."""
    identifiers = tuple((i["system"], i["value"]) for i in patient.get("identifier") or []
                        if isinstance(i, dict) and i.get("system") and i.get("value"))
    name: dict[str, Any] = next(iter(patient.get("name") or []), {}) or {}
    postcode = next((a.get("postalCode") for a in patient.get("address") or [] if a.get("postalCode")), None)
    try:
        birth = date.fromisoformat(patient["birthDate"]) if len(patient.get("birthDate") or "") == 10 else None
    except ValueError:
        birth = None
    return PatientQuery(identifiers=identifiers, family=name.get("family"), given=tuple(name.get("given") or ()),
                        birth_date=birth, sex=patient.get("gender"), postcode=postcode)


def _placer(resource: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    identifiers = [i for i in resource.get("identifier") or [] if isinstance(i, dict) and i.get("value")]

    def typed(code: str) -> dict[str, Any] | None:
        return next((i for i in identifiers if any(c.get("code") == code for c in _codings(i.get("type")))), None)

    placer = typed("PLAC") or next((i for i in identifiers if "placer" in str(i.get("system", "")).lower()),
                                   None) or (identifiers[0] if identifiers else None)
    filler = typed("FILL")
    return placer, filler.get("value") if filler else None


def _requesting_trust(resource: dict[str, Any], placer: dict[str, Any] | None, trusts: TrustRegistry) -> str | None:
    requester = resource.get("requester") or {}
    candidates = [(requester.get("identifier") or {}).get("value"),
                  str(requester.get("reference") or "").rsplit("Organization/", 1)[-1]
                  if "Organization/" in str(requester.get("reference") or "") else None,
                  ((placer or {}).get("assigner") or {}).get("identifier", {}).get("value")]
    for candidate in candidates:
        trust = trusts.resolve(candidate)
        if trust is not None:
            return trust.ods
    host = urlparse(str((placer or {}).get("system") or "")).hostname
    if host:
        for trust in trusts.trusts:
            if urlparse(trust.fhir_system).hostname == host:
                return trust.ods
    return None


def _requested_at(value: str | None, timezone: str) -> tuple[datetime | None, date | None]:
    if not value:
        return None, None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return None, day
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None, None
    if moment.tzinfo is None:  # the trusts' local time as the order-entry system wrote it (H-CMP-11), not UTC
        return local_moment(moment, timezone), moment.date()
    return moment, local_date(moment, timezone)


def read_service_request(resource: dict[str, Any], trusts: TrustRegistry,
                         rules: RuleSet) -> tuple[PatientQuery, ProcedureQuery]:
    """The patient and the procedure a (valid) ServiceRequest asks about."""
    placer, filler = _placer(resource)
    code = resource.get("code") or {}
    codes = tuple(ProcedureCode(c.get("system"), c["code"], c.get("display"))
                  for c in _codings(code) if c.get("code") and c.get("system") != DCM_SYSTEM)
    details = _codings(resource.get("orderDetail")) + _codings(resource.get("category")) + _codings(code)
    modality = next((c.get("code") for c in details if c.get("system") == DCM_SYSTEM and c.get("code")), None)
    sides = [c for c in _codings(resource.get("orderDetail")) + _codings(resource.get("bodySite"))
             if c.get("code") in LATERALITY_CODES]
    laterality = normalise_laterality(sides[0]["code"]) if sides else None
    sites = [s for s in resource.get("bodySite") or [] if isinstance(s, dict)]
    laterality = laterality or _coded_side(sites)  # "structure of left knee region" with the text "Knee"
    body_site = " ".join(filter(None, (_text(s) or _coded_site(s) for s in sites))) or None
    reasons = [r for r in resource.get("reasonCode") or [] if isinstance(r, dict)]
    reason_codes = tuple(f"{c['system']}|{c['code']}" if c.get("system") else c["code"]
                         for c in _codings(reasons) if c.get("code"))
    text = "; ".join(filter(None, [*(_text(r) for r in reasons),
                                   *(n.get("text") for n in resource.get("note") or [] if isinstance(n, dict))]))
    requested_at, request_date = _requested_at(resource.get("authoredOn"), rules.timezone)
    procedure = ProcedureQuery(
        codes=codes, modality=modality, body_site=body_site, laterality=laterality, description=code.get("text"),
        priority=resource.get("priority"), reason=RequestReason(text or None, reason_codes),
        requesting_trust=_requesting_trust(resource, placer, trusts),
        placer_order_number=placer.get("value") if placer else None, filler_order_number=filler,
        requested_at=requested_at, request_date=request_date)
    return _patient(resource), procedure


def with_outcome(resource: dict[str, Any], outcome: CheckOutcome | None, *, note: str | None = None) -> dict[str, Any]:
    """The resource as stored and returned: an id, and the check's outcome as contained OperationOutcome and extension.
    """
    stored = copy.deepcopy(resource)
    stored.setdefault("id", str(uuid.uuid4()))
    stored["meta"] = {**(stored.get("meta") or {}), "lastUpdated": datetime.now(UTC).isoformat()}
    stored["contained"] = [c for c in stored.get("contained") or [] if c.get("id") != "duplicate-check"]
    issues: list[dict[str, Any]] = []
    if outcome is None:
        issues.append({"severity": "information", "code": "informational", "diagnostics": note or "not checked"})
    else:
        summary = f"duplicate check: {outcome.verdict}; identity {outcome.identity}; {len(outcome.priors)} prior(s)"
        issues.append({"severity": "warning" if outcome.verdict == "warning" else "information",
                       "code": "business-rule" if outcome.verdict == "warning" else "informational",
                       "diagnostics": summary + (f"; alert {outcome.alert_id}" if outcome.alert_id else "")})
        for prior in outcome.priors:
            issues.append({"severity": prior["severity"] if prior["severity"] == "warning" else "information",
                           "code": "informational",
                           "details": {"text": f"{prior['modality'] or ''} {prior['bodySite'] or ''} at "
                                               f"{prior['trust'] or 'an unknown trust'}, "
                                               f"{prior['daysAgo']} days ago ({prior['rule']})"},
                           "diagnostics": prior.get("viewerUrl") or prior.get("studyInstanceUid") or ""})
        extension = [ext for ext in stored.get("extension") or [] if ext.get("url") != OUTCOME_EXTENSION]
        parts = [{"url": "verdict", "valueCode": outcome.verdict}, {"url": "identity", "valueCode": outcome.identity},
                 {"url": "rulesVersion", "valueString": outcome.rules_version}]
        if outcome.alert_id:
            parts.append({"url": "alertId", "valueString": outcome.alert_id})
        if outcome.regional_id:
            parts.append({"url": "regionalPatientId", "valueString": outcome.regional_id})
        stored["extension"] = [*extension, {"url": OUTCOME_EXTENSION, "extension": parts}]
    stored["contained"].append({"resourceType": "OperationOutcome", "id": "duplicate-check", "issue": issues})
    # a contained resource is referenced from its container (FHIR dom-3): the outcome supports the request
    stored["supportingInfo"] = [*(ref for ref in stored.get("supportingInfo") or []
                                  if ref.get("reference") != "#duplicate-check"),
                                {"reference": "#duplicate-check", "display": "priorscan duplicate check"}]
    return stored


def apply_service_request_resource(session: Session, trusts: TrustRegistry, rules: RuleSet, resource: dict[str, Any],
                                   *, agent: Agent, acting_trust: str | None = None,
                                   ) -> tuple[dict[str, Any], CheckOutcome | None]:
    """Validate, check (or cancel / complete) one ServiceRequest; the stored resource and the check's outcome.

    ``acting_trust``, for a caller who works at one trust, is the only requesting trust the request may name
    (:class:`ForbiddenError` otherwise) and the one it gets when it names none.
    """
    validate_service_request(resource)
    patient, procedure = read_service_request(resource, trusts, rules)
    if acting_trust is not None:
        if procedure.requesting_trust not in (None, acting_trust):
            raise ForbiddenError("the ServiceRequest names another requesting trust than the caller's")
        procedure = replace(procedure, requesting_trust=acting_trust)
    status = resource.get("status")
    trust, placer = procedure.requesting_trust, procedure.placer_order_number
    if status in _CANCELLING or status == "completed":
        if trust and placer:
            set_order_status(session, trust, placer, CANCELLED if status in _CANCELLING else COMPLETED)
            alert = alert_of_order(session, trust, placer)
            if alert is not None and status in _CANCELLING:
                cancel(session, alert, rules, user=None, comment=None, agent=agent, why=f"ServiceRequest {status}")
        return with_outcome(resource, None, note=f"status {status}: order updated, not checked"), None
    if not procedure.codes and not procedure.body_site and not procedure.description:
        raise FHIRError("ServiceRequest.code names no procedure", code="fhir.code")
    outcome = run_check(session, trusts, rules, CheckRequest(patient, procedure, channel="fhir",
                                                            order_status="active"), agent=agent)
    return with_outcome(resource, outcome), outcome


def apply_service_request(session: Session, trusts: TrustRegistry, resource: dict[str, Any], *, agent: Agent,
                          rules: RuleSet | None = None) -> ItemOutcome:
    """The ingest adapter: one ServiceRequest as an :class:`ItemOutcome` (the caller commits)."""
    from priorscan.settings import get_settings

    try:
        _, outcome = apply_service_request_resource(session, trusts, rules or active_rules(get_settings().rules_file),
                                                    resource, agent=agent)
    except FHIRError as exc:
        return ItemOutcome.rejected("ServiceRequest", exc.message, exc.code)
    if outcome is None:
        return ItemOutcome.ok("ServiceRequest", checked=False)
    return ItemOutcome.ok("ServiceRequest", regionalPatientId=outcome.regional_id, verdict=outcome.verdict,
                          alertId=outcome.alert_id, identity=outcome.identity)
