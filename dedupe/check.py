"""The duplicate check as a service: who the request is about, what it asks for, which comparable recent priors exist
across the five trusts, and the alert that results. Every entry point (the API, CDS Hooks, HL7 ORM/OMI, FHIR
ServiceRequest) builds a :class:`CheckRequest` and calls :func:`run_check`.

1. The patient is resolved through the MPI from identifiers and/or demographics. A possible-match identity is
   reported as ``probable`` with its candidates, never silently used as certain.
2. The request's code, modality, body site and laterality go through the imaging index's own normaliser, so requests
   and studies are compared in one vocabulary.
3. The patient's studies and outstanding orders from every trust are judged by the rule table
   (:func:`dedupe.comparable.judge`); each prior carries the rule that fired, its age in days, its effective dose,
   a viewer URL (the performing trust's launch template, else the regional IID launch) and its report's conclusion
   when a report is linked (:func:`imaging.prior_details`, one query for all priors).
4. A request with a placer order number is kept as an outstanding order (for a patient the MPI does not know yet,
   with the identifiers it named; the patient's first check once they are known attaches it); a verdict the rule
   file lists under ``alerts.raise_for`` becomes an alert (one per order). The check is audited with the regional
   id.

Nothing here commits: the caller commits before answering.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy.orm import Session

from dedupe.alerts import raise_alert
from dedupe.circumstances import RequestReason, normalise_priority, read_circumstances
from dedupe.comparable import ComparablePrior, Procedure, RequestFacts, judge, local_date, local_moment
from dedupe.orders import OrderFacts, attach_orders, keep_unattached_identifiers, patient_identifiers, record_order
from dedupe.priors import PatientHistory, age_from_studies, patient_exams
from dedupe.rules import RuleSet
from dedupe.vocabulary import (
    NormalisedProcedure,
    ProcedureCode,
    body_structure_region,
    body_structure_side,
    join_regions,
    normalise_laterality,
    normalise_modality,
    normalise_procedure,
)
from imaging import PriorDetail, prior_details
from mpi import Demographics, PatientIndex, Resolution, is_regional_id, resolve_patient_reference
from priorscan import metrics
from priorscan.audit import Agent, record_now
from priorscan.trusts import NHS_NUMBER_SYSTEM, TrustRegistry

REQUEST_NAMESPACE = "urn:priorscan:duplicate-check"
#: A SNOMED CT identifier: digits only, six to eighteen of them
_SCTID = re.compile(r"[1-9][0-9]{5,17}")


@dataclass(frozen=True)
class PatientQuery:
    """Who the request is about, as the requester knows them (any part may be missing)."""

    identifiers: tuple[tuple[str, str], ...] = ()
    regional_id: str | None = None  # when the source already names the regional patient (FHIR Patient/<id>)
    family: str | None = None
    given: tuple[str, ...] = ()
    birth_date: date | None = None
    sex: str | None = None
    postcode: str | None = None

    @property
    def has_demographics(self) -> bool:
        return bool(self.family or self.given or self.birth_date or self.postcode)

    def demographics(self) -> Demographics | None:
        if not self.has_demographics and not self.nhs_number:
            return None
        return Demographics(namespace=REQUEST_NAMESPACE, local_id="request", nhs_number=self.nhs_number,
                            family=self.family, given=" ".join(self.given) or None, birth_date=self.birth_date,
                            sex=self.sex, postcode=self.postcode)

    @property
    def nhs_number(self) -> str | None:
        return next((value for system, value in self.identifiers if system == NHS_NUMBER_SYSTEM), None)


@dataclass(frozen=True)
class ProcedureQuery:
    """What is requested, as the requester sent it; either a code or a modality and body site suffices."""

    codes: tuple[ProcedureCode, ...] = ()  # in order of preference; the first the code table knows wins
    modality: str | None = None
    body_site: str | None = None
    laterality: str | None = None
    description: str | None = None
    priority: str | None = None
    reason: RequestReason = RequestReason()
    requesting_trust: str | None = None  # an ODS code of the consortium
    placer_order_number: str | None = None
    filler_order_number: str | None = None
    requested_at: datetime | None = None
    request_date: date | None = None  # the local calendar date of the request, when the source states it


@dataclass(frozen=True)
class CheckRequest:
    patient: PatientQuery
    procedure: ProcedureQuery
    channel: str  # api | cds-hooks | hl7 | fhir
    record_order: bool = True  # keep a request with a placer order number as an outstanding order
    order_status: str | None = None  # set the order's status (e.g. "active" for a new HL7 order)


@dataclass
class CheckOutcome:
    """The answer of one check, in the words of the contract (DESIGN.md section 6)."""

    regional_id: str | None
    identity: str
    candidates: list[str]
    verdict: str
    priors: list[dict[str, Any]]
    alert_id: str | None
    alert_status: str | None
    rules_version: str
    request: dict[str, Any]
    request_date: date

    def as_json(self) -> dict[str, Any]:
        return {
            "regionalPatientId": self.regional_id,
            "identity": self.identity,
            "verdict": self.verdict,
            "priors": self.priors,
            "alertId": self.alert_id,
            "alertStatus": self.alert_status,
            "identityCandidates": self.candidates,
            "rulesVersion": self.rules_version,
            "requestDate": self.request_date.isoformat(),
            "request": self.request,
        }


def normalise_request(query: ProcedureQuery) -> NormalisedProcedure:
    """The requested procedure in the imaging vocabulary (the same normaliser as for studies). A body site that is a
    SNOMED CT body structure identifier alone ("82169009", as an order-entry system or OBR-15 may send it) is read
    as the region and side it names."""
    body_site = query.body_site
    if body_site and _SCTID.fullmatch(body_site.strip()):
        region = body_structure_region(None, body_site.strip())
        side = body_structure_side(None, body_site.strip())
        body_site = " ".join(filter(None, (side, region.replace("-", " ") if region else body_site)))
    text = " ".join(filter(None, (body_site, query.description))) or None
    return _normalised(query.codes, text, query.modality, query.laterality)


@lru_cache(maxsize=4096)
def _normalised(codes: tuple[ProcedureCode, ...], text: str | None, modality: str | None,
                laterality: str | None) -> NormalisedProcedure:
    """Pure over the packaged code table, and order entry asks for the same few hundred procedures all day."""
    found = normalise_procedure(codes, text, modality_hint=modality)
    if found.modality is None and modality:
        found = replace(found, modality=normalise_modality(modality))
    side = normalise_laterality(laterality) if laterality else None
    if side is not None:  # one side stated for the whole request
        found = replace(found, laterality=side, sides=())
    return found


def _resolve(session: Session, trusts: TrustRegistry, index: PatientIndex, patient: PatientQuery,
             client: str) -> Resolution:
    """Who the request is about: a named Patient (following merges), else identifiers and demographics.

    A named Patient is a regional patient or a source record's Patient (``src-<n>``, or an id its sender gave it),
    resolved as every adapter resolves a reference (:func:`mpi.resolve_patient_reference`): a FHIR client names the
    Patient by the id it was given, and a Bundle's references to its own Patients are rewritten to ``src-<n>``.
    """
    if patient.regional_id:
        regional_id: str | None = patient.regional_id
        if not is_regional_id(patient.regional_id):  # a regional id is followed through merges by the index alone
            regional_id = resolve_patient_reference(session, trusts, f"Patient/{patient.regional_id}", client=client)
        found = index.regional_patient(regional_id or patient.regional_id)
        if found is not None:
            return Resolution(found.id, "confirmed", 1.0, [found.id])
        if not patient.identifiers and not patient.has_demographics:
            return Resolution(None, "unknown")
    return index.resolve(list(patient.identifiers), patient.demographics())


def _age(birth: date | None, on: date) -> int | None:
    if birth is None:
        return None
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def prior_json(prior: ComparablePrior, trusts: TrustRegistry, detail: PriorDetail | None = None) -> dict[str, Any]:
    """One comparable prior in the contract's shape, with where to view its images (the performing trust's viewer,
    else the regional IID launch) and its report's conclusion when one is linked (``detail``)."""
    exam = prior.exam
    trust = trusts.resolve(exam.trust) if exam.trust else None
    viewer = trusts.viewer_url(exam.trust, exam.study_instance_uid, accession_number=exam.accession_number,
                               patient_namespace=detail.patient_namespace if detail else None,
                               patient_local_id=detail.patient_local_id if detail else None)
    status = "scheduled" if exam.outstanding else exam.status
    return {
        "studyInstanceUid": exam.study_instance_uid,
        "accessionNumber": exam.accession_number,
        "trust": exam.trust,
        "studyDate": exam.on_date.isoformat() if exam.on_date else None,
        "daysAgo": prior.days_ago,
        "modality": exam.procedure.modality,
        "bodySite": exam.procedure.body_region,
        "laterality": exam.procedure.laterality,
        "description": exam.description,
        "effectiveDoseMsv": exam.effective_dose_msv,
        "severity": prior.severity,
        "rule": prior.rule,
        "viewerUrl": viewer,
        "status": status,
        "kind": exam.kind,
        "placerOrderNumber": exam.placer_order_number,
        "trustName": trust.name if trust is not None else None,
        "match": prior.match,
        "ruleText": prior.rule_text,
        "circumstances": list(prior.circumstances),
        "reportConclusion": detail.report_conclusion if detail else None,
        "reportStatus": detail.report_status if detail else None,
        "reportIssued": detail.report_issued.isoformat() if detail and detail.report_issued else None,
        # a report from FHIR or from an HL7 ORU: both are served as DiagnosticReport
        "reportReference": f"DiagnosticReport/{detail.report_id}" if detail and detail.report_id else None,
    }


def _request_json(query: ProcedureQuery, procedure: Procedure, normalised: NormalisedProcedure,
                  code: ProcedureCode | None, circumstances: frozenset[str], request_date: date) -> dict[str, Any]:
    """The request as the alert keeps it: normalised, with what was asked and why (no patient details)."""
    return {
        "code": {"system": code.system, "code": code.code, "display": code.display} if code else None,
        "modality": procedure.modality,
        "bodySite": procedure.body_region,
        "bodySites": list(procedure.named_regions),
        "laterality": procedure.laterality,
        "contrast": normalised.contrast,
        "normalisation": normalised.normalisation,
        "description": query.description or query.body_site,
        "priority": normalise_priority(query.priority),
        "reason": query.reason.text,
        "circumstances": sorted(circumstances),
        "requestingTrust": query.requesting_trust,
        "placerOrderNumber": query.placer_order_number,
        "requestDate": request_date.isoformat(),
    }


def _keep_order(session: Session, trusts: TrustRegistry, request: CheckRequest, procedure: Procedure,
                code: ProcedureCode | None, source_record_id: int | None) -> None:
    """Keep the request as an outstanding order, hung on a source record of its patient when known, else with the
    identifiers it named (so that it is attached once the MPI knows them)."""
    query = request.procedure
    assert query.requesting_trust and query.placer_order_number
    record_order(session, OrderFacts(
        requesting_trust=query.requesting_trust, placer_order_number=query.placer_order_number,
        filler_order_number=query.filler_order_number, priority=normalise_priority(query.priority),
        procedure_system=procedure.code_system, procedure_code=procedure.code,
        description=query.description or (code.display if code else None) or query.body_site,
        modality=procedure.modality, body_region=procedure.body_region, laterality=procedure.laterality,
        reason=query.reason.text, ordered_at=query.requested_at,
        body_regions=join_regions(procedure.named_regions) if len(procedure.named_regions) > 1 else None),
        source_record_id=source_record_id,
        status=request.order_status)
    if source_record_id is None:
        keep_unattached_identifiers(session, query.requesting_trust, query.placer_order_number,
                                    patient_identifiers(request.patient.identifiers, trusts))


def run_check(session: Session, trusts: TrustRegistry, rules: RuleSet, request: CheckRequest, *, agent: Agent,
              now: datetime | None = None) -> CheckOutcome:
    """Check one imaging request for comparable recent priors, keep its order, raise its alert, audit it.

    Parameters
    ----------
    session
        The unit of work (not committed here).
    trusts
        The consortium (viewer URL templates).
    rules
        The rule set in force (its version goes on the alert).
    request
        The patient and the procedure, as the entry point read them.
    agent
        Who asks (the audit names them).
    now
        The current time, for requests that state no time of their own.
    """
    query = request.procedure
    if query.requested_at is not None and query.requested_at.tzinfo is None:
        # a time without offset is the trusts' local time; the studies' times it is compared with are aware, and the
        # order kept states the same moment
        query = replace(query, requested_at=local_moment(query.requested_at, rules.timezone))
        request = replace(request, procedure=query)
    index = PatientIndex(session, trusts)  # the active model: one cache, mpi.active_model
    resolution = _resolve(session, trusts, index, request.patient, agent.name)
    regional_id = resolution.regional_id
    normalised = normalise_request(query)
    code = normalised.code or (query.codes[0] if query.codes else None)
    procedure = Procedure(normalised.modality, normalised.body_region, normalised.laterality,
                          code.system if code else None, code.code if code else None, normalised.regions,
                          normalised.sides)
    requested_at = query.requested_at or now or datetime.now(UTC)
    request_date = query.request_date or local_date(requested_at, rules.timezone)
    circumstances = read_circumstances(rules, priority=query.priority, reason=query.reason)

    history = PatientHistory([], [])
    if regional_id is not None:
        own = {n for n in (query.placer_order_number, query.filler_order_number) if n}
        history = patient_exams(session, regional_id, since=request_date - timedelta(days=rules.longest_window_days),
                                timezone=rules.timezone,
                                own_order=(query.requesting_trust, own) if query.requesting_trust and own else None)
    birth = request.patient.birth_date or history.birth_date  # the request's, else the regional patient's
    age = _age(birth, request_date)
    if age is None and regional_id:  # no record gives a birth date: the age the patient's studies recorded
        age = age_from_studies(session, regional_id, request_date)
    facts = RequestFacts(procedure, request_date, query.requesting_trust, circumstances, age,
                         requested_at=query.requested_at)
    judgement = judge(rules, facts, history.exams)
    details = prior_details(session, [p.exam.study_instance_uid for p in judgement.priors
                                      if p.exam.study_instance_uid]) if judgement.priors else {}
    priors = [prior_json(p, trusts, details.get(p.exam.study_instance_uid or "")) for p in judgement.priors]
    request_json = _request_json(query, procedure, normalised, code, circumstances, request_date)
    request_json["paediatric"] = facts.patient_age_years is not None \
        and facts.patient_age_years < rules.exceptions.paediatric.age_under_years  # no typical adult dose for a child
    attach_orders(session, history.unattached_orders)
    if request.record_order and query.requesting_trust and query.placer_order_number:
        _keep_order(session, trusts, request, procedure, code, history.record_at(query.requesting_trust))

    alert_id = alert_status = None
    if judgement.verdict in rules.alerts.raise_for:
        raised = raise_alert(session, regional_id=regional_id, identity=resolution.identity,
                             requesting_trust=query.requesting_trust, placer_order_number=query.placer_order_number,
                             channel=request.channel, verdict=judgement.verdict, request=request_json,
                             request_date=request_date, priors=priors, rules_version=rules.version, agent=agent)
        alert_id, alert_status = raised.id, raised.status
    record_now(session, agent, action="E", event_type="duplicate-check", subtype=request.channel,
               regional_patient_id=regional_id, entity=f"alert/{alert_id}" if alert_id else None,
               detail={"verdict": judgement.verdict, "identity": resolution.identity, "priors": len(priors),
                       "rulesVersion": rules.version, "requestingTrust": query.requesting_trust,
                       "normalisation": normalised.normalisation})
    metrics.verdict(request.channel, judgement.verdict)
    candidates = list(resolution.candidates) if resolution.identity == "probable" else []
    return CheckOutcome(regional_id, resolution.identity, candidates, judgement.verdict, priors, alert_id,
                        alert_status, rules.version, request_json, request_date)
