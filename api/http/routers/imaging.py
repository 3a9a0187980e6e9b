"""Imaging beyond FHIR: a patient's timeline with dose, and pseudonymised dose analytics.

FHIR ImagingStudy and DiagnosticReport have their own routers (:mod:`api.http.routers.imaging_study`,
:mod:`api.http.routers.diagnostic_report`).

- ``GET /api/v1/patients/{regional_id}/timeline`` (``system/ImagingStudy.rs``): every study across the trusts, with
  dose and cumulative effective dose (an estimate);
- ``GET /api/v1/analytics/studies`` (``priorscan/analytics``): pseudonymised dose rows, paged;
- ``POST /api/v1/studies/{study_instance_uid}/not-patient`` (``system/ImagingStudy.u``: the admin role, or a client
  granted it) ``{"decision": "patient" | "test", "reason"}``: a person's decision that the study is a patient's
  examination or a QA, physics or phantom test; it sticks (:mod:`imaging.not_patient_store`).

Every access is audited. Routes are thin: the work is in :mod:`imaging`.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, Field, StringConstraints

from api.auth.scopes import ANALYTICS
from api.context import AppContext
from api.http.deps import ContextDep, Principal, SessionDep, WriteSessionDep, require
from imaging import (
    analytics_rows,
    decide_not_patient,
    normalisation_counts,
    patient_timeline,
    regional_id_of,
)
from priorscan.audit import record

router = APIRouter(tags=["imaging"])
FHIR_JSON = "application/fhir+json"
MAX_COUNT = 500


# --- timeline -----------------------------------------------------------------------------------------------------

class NotPatientDecisionOut(BaseModel):
    decision: Literal["patient", "test"]
    by: str | None = None
    at: datetime | None = None
    reason: str | None = None


class TimelineStudyOut(BaseModel):
    studyInstanceUid: str
    accessionNumber: str | None = None
    trust: str | None = None
    status: str
    studyDate: date | None = None
    studyDateTime: datetime | None = None
    modality: str | None = None
    bodyRegion: str | None = None
    laterality: str | None = None
    contrast: bool | None = None
    description: str | None = None
    ctdivolMgy: float | None = None
    dlpTotalMgycm: float | None = None
    dapTotalGym2: float | None = None
    agdLeftMgy: float | None = None
    agdRightMgy: float | None = None
    administeredActivityMbq: float | None = None
    effectiveDoseMsv: float | None = Field(None, description="estimate: a population index, not the patient's dose")
    effectiveDoseMethod: str | None = None
    irradiationEvents: int | None = None
    doseSource: str | None = None
    identity: str = Field(description="confirmed | probable | provisional: how sure the study is this patient's")
    cumulativeEffectiveDoseMsv: float
    viewerUrl: str | None = None
    withdrawn: str | None = Field(None, description="why the study is no longer shown as a prior (an IOCM "
                                  "rejection of its images, a deletion in the PACS)")
    notPatient: str | None = Field(None, description="where the study says it is not a patient's examination (a QA, "
                                   "physics or phantom test): never a prior, no part of the cumulative dose")
    notPatientDecision: NotPatientDecisionOut | None = Field(
        None, description="a person's decision that the study is a patient's examination or a test (it sticks)")


class TimelineOut(BaseModel):
    regionalPatientId: str
    studies: list[TimelineStudyOut]
    cumulativeEffectiveDoseMsv: float
    studiesWithoutDoseEstimate: int
    effectiveDoseNote: str = ("Effective dose is estimated from CT DLP with conversion coefficients by region, age and "
                              "CTDI phantom (ICRP 103 for adults; AAPM Report 96 for children): a population index "
                              "for comparing exposures, not the dose this patient received. Where a coefficient would "
                              "not apply, no estimate is given and the method says why.")


@router.get("/api/v1/patients/{regional_id}/timeline", response_model=TimelineOut)
def timeline(regional_id: str, ctx: ContextDep, session: SessionDep,
             principal: Principal = Depends(require("system/ImagingStudy.rs"))) -> dict[str, Any]:
    """Every study of the patient across the five trusts, oldest first, with dose and cumulative effective dose."""
    found = patient_timeline(session, ctx.trusts, regional_id)
    record(session, principal.agent, action="R", event_type="rest", subtype="patient-timeline",
           regional_patient_id=found.regional_id if found else None, entity=f"Patient/{regional_id}"[:300],
           outcome="0" if found else "4", detail={"studies": len(found.entries)} if found else None)
    session.commit()
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such regional patient")
    return {
        "regionalPatientId": found.regional_id,
        "studies": [{
            "studyInstanceUid": e.study_instance_uid, "accessionNumber": e.accession_number, "trust": e.trust,
            "status": e.status, "studyDate": e.study_date, "studyDateTime": e.study_datetime,
            "modality": e.modality, "bodyRegion": e.body_region, "laterality": e.laterality, "contrast": e.contrast,
            "description": e.description, "ctdivolMgy": e.ctdivol_mgy, "dlpTotalMgycm": e.dlp_total_mgycm,
            "dapTotalGym2": e.dap_total_gym2, "agdLeftMgy": e.agd_left_mgy, "agdRightMgy": e.agd_right_mgy,
            "administeredActivityMbq": e.administered_activity_mbq, "effectiveDoseMsv": e.effective_dose_msv,
            "effectiveDoseMethod": e.effective_dose_method, "irradiationEvents": e.irradiation_events,
            "doseSource": e.dose_source, "identity": e.identity,
            "cumulativeEffectiveDoseMsv": e.cumulative_effective_dose_msv, "viewerUrl": e.viewer_url,
            "withdrawn": e.withdrawn, "notPatient": e.not_patient, "notPatientDecision": e.not_patient_decision,
        } for e in found.entries],
        "cumulativeEffectiveDoseMsv": found.cumulative_effective_dose_msv,
        "studiesWithoutDoseEstimate": found.studies_without_estimate,
    }


# --- analytics ----------------------------------------------------------------------------------------------------

class AnalyticsOut(BaseModel):
    rows: list[dict[str, Any]] = Field(description="one pseudonymised dose row per study")
    nextAfter: int | None = Field(None, description="pass as `after` for the next page; null on the last page")
    normalisation: dict[str, int] = Field(description="studies by how their procedure was normalised")
    note: str = ("Patients and studies are named by keyed pseudonyms; effective doses are estimates (a population "
                 "index, not a patient's dose); a DRL ratio compares one adult CT study with the UKHSA national DRL of "
                 "its examination only: a DRL applies to the median dose of a group of typical patients, not to one "
                 "study.")


def analytics_key(ctx: AppContext) -> bytes:
    """The deployment's pseudonymisation key for analytics (derived from its secret)."""
    return hmac.new(ctx.settings.secret_key.encode(), b"priorscan analytics pseudonyms", hashlib.sha256).digest()


@router.get("/api/v1/analytics/studies", response_model=AnalyticsOut)
def analytics_studies(ctx: ContextDep, session: SessionDep, after: int = Query(0, ge=0, le=2**63 - 1),
                      limit: int = Query(1000, ge=1, le=10_000),
                      principal: Principal = Depends(require(ANALYTICS))) -> dict[str, Any]:
    """Pseudonymised dose rows (no identifiers), with DRL comparisons, paged by ``after``."""
    rows = analytics_rows(session, analytics_key(ctx), after_id=after, limit=limit)
    counts = normalisation_counts(session) if after == 0 else {}
    record(session, principal.agent, action="E", event_type="rest", subtype="analytics-studies",
           entity="analytics/studies", detail={"rows": len(rows), "after": after})
    session.commit()
    next_after = rows[-1]["row_id"] if len(rows) == limit else None
    return {"rows": rows, "nextAfter": next_after, "normalisation": counts}


# --- a person's decision: a patient's examination, or a test -------------------------------------------------------

class NotPatientDecisionIn(BaseModel):
    decision: Literal["patient", "test"] = Field(description="patient: a patient's examination (a prior again); test: "
                                                 "a QA, physics or phantom test (never a prior)")
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)] = Field(
        description="why, in at least three characters besides spaces (kept with the study and in the audit trail)")


class NotPatientDecisionResultOut(BaseModel):
    studyInstanceUid: str
    notPatient: str | None = None
    notPatientDecision: NotPatientDecisionOut


@router.post("/api/v1/studies/{study_instance_uid}/not-patient", response_model=NotPatientDecisionResultOut)
def decide_study_not_patient(study_instance_uid: str, body: NotPatientDecisionIn, session: WriteSessionDep,
                             principal: Principal = Depends(require("system/ImagingStudy.u"))) -> dict[str, Any]:
    """Decide that a study is a patient's examination or a test; effective at once, never overturned by indexing
    or the recheck."""
    found = decide_not_patient(session, study_instance_uid[:64], body.decision, reason=body.reason,
                               actor=f"{principal.kind}:{principal.name}")
    if found is None:
        record(session, principal.agent, action="U", event_type="rest", subtype="study-not-patient-decision",
               entity=f"ImagingStudy/{study_instance_uid}"[:300], outcome="4")
        session.commit()
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such study")
    study, before = found
    record(session, principal.agent, action="U", event_type="rest", subtype="study-not-patient-decision",
           regional_patient_id=regional_id_of(session, study), entity=f"ImagingStudy/{study.study_instance_uid}",
           detail={"decision": body.decision, "reason": study.not_patient_reason, "before": before,
                   "notPatient": study.not_patient})
    session.commit()
    return {"studyInstanceUid": study.study_instance_uid, "notPatient": study.not_patient,
            "notPatientDecision": {"decision": study.not_patient_decision, "by": study.not_patient_decided_by,
                                   "at": study.not_patient_decided_at, "reason": study.not_patient_reason}}
