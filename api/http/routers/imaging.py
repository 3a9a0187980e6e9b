"""Imaging: FHIR ImagingStudy create/read/search, a patient's timeline with dose, and pseudonymised dose analytics.

- ``POST /fhir/ImagingStudy`` (``system/ImagingStudy.c``): create, or update the study with the same UID;
- ``GET /fhir/ImagingStudy/{id}`` (``.r``) and ``GET /fhir/ImagingStudy?patient=&identifier=`` (``.s``): ``patient``
  is a regional id or ``Patient/<id>``, ``identifier`` is ``urn:dicom:uid|<uid>`` or an accession number;
- ``POST /fhir/DiagnosticReport`` (``system/DiagnosticReport.c``) links a report to its study (its conclusion is
  shown beside the prior by the duplicate check); ``GET /fhir/DiagnosticReport/{id}`` (``.r``);
- ``GET /api/v1/patients/{regional_id}/timeline`` (``system/ImagingStudy.rs``): every study across the trusts, with
  dose and cumulative effective dose (an estimate);
- ``GET /api/v1/analytics/studies`` (``priorscan/analytics``): pseudonymised dose rows, paged.

Every access is audited. Routes are thin: the work is in :mod:`imaging`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth.scopes import ANALYTICS
from api.context import AppContext
from api.http.deps import ContextDep, Principal, SessionDep, public_base, require
from imaging import (
    Study,
    StudyReport,
    analytics_rows,
    apply_diagnostic_report,
    apply_imaging_study,
    normalisation_counts,
    patient_timeline,
    regional_id_of,
    report_to_fhir,
    search_studies,
    to_fhir,
)
from priorscan import json_input
from priorscan.audit import Agent, record
from priorscan.unit_of_work import unit_of_work

router = APIRouter(tags=["imaging"])
FHIR_JSON = "application/fhir+json"
MAX_COUNT = 500


def _outcome(status_code: int, code: str, text: str) -> Response:
    body = {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": text}]}
    return Response(json.dumps(body), status_code=status_code, media_type=FHIR_JSON)


def _fhir(body: dict[str, Any], status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, default=str), status_code=status_code, media_type=FHIR_JSON, headers=headers)


# --- FHIR ImagingStudy ----------------------------------------------------------------------------------------------

class _Refused(Exception):
    """A write the adapter refused: its unit of work is rolled back and ``response`` is the answer."""

    def __init__(self, response: Response) -> None:
        super().__init__("refused")
        self.response = response


async def _json_body(request: Request) -> Any:
    try:
        return json_input.loads(await request.body())
    except json_input.JsonInputError as exc:
        raise _Refused(_outcome(400, "structure", f"the body is not usable JSON: {exc}")) from None


@router.post("/fhir/ImagingStudy", response_model=None, status_code=status.HTTP_201_CREATED)
async def create_imaging_study(request: Request, ctx: ContextDep,
                               principal: Principal = Depends(require("system/ImagingStudy.c"))) -> Response:
    """Index an ImagingStudy (201 when new, 200 when the study with that UID was updated)."""
    try:
        resource = await _json_body(request)
    except _Refused as refused:
        return refused.response
    return await run_in_threadpool(_create_imaging_study, ctx, resource, principal.agent)


def _create_imaging_study(ctx: AppContext, resource: Any, agent: Agent) -> Response:
    """The write of ``POST /fhir/ImagingStudy`` in its unit of work; answered after the commit (a worker thread's)."""
    try:
        with unit_of_work(ctx.sessions, write=True) as session:
            outcome = apply_imaging_study(session, ctx.trusts, resource, agent=agent)
            if not outcome.accepted:
                code = outcome.error_code or "fhir"
                if code == "not-found":
                    raise _Refused(_outcome(422, "not-found", outcome.reason or "unknown reference"))
                raise _Refused(_outcome(400, "invalid", outcome.reason or "invalid ImagingStudy"))
            uid = str(outcome.detail["studyInstanceUid"])
            created = bool(outcome.detail.get("created"))
            regional_id = outcome.detail.get("regionalPatientId")
            record(session, agent, action="C" if created else "U", event_type="rest",
                   subtype="create" if created else "update",
                   regional_patient_id=str(regional_id) if regional_id else None, entity=f"ImagingStudy/{uid}")
            study = session.query(Study).filter(Study.study_instance_uid == uid).one()
            body = to_fhir(study, regional_id_of(session, study), ctx.trusts)
    except _Refused as refused:
        return refused.response
    return _fhir(body, 201 if created else 200, {"Location": f"/fhir/ImagingStudy/{uid}"})


@router.get("/fhir/ImagingStudy/{study_id}", response_model=None)
def read_imaging_study(study_id: str, ctx: ContextDep, session: SessionDep,
                       principal: Principal = Depends(require("system/ImagingStudy.r"))) -> Response:
    """One study by its id (the Study Instance UID)."""
    study = session.query(Study).filter(Study.study_instance_uid == study_id).first()
    regional_id = regional_id_of(session, study) if study is not None else None
    record(session, principal.agent, action="R", event_type="rest", subtype="read", regional_patient_id=regional_id,
           entity=f"ImagingStudy/{study_id}"[:300], outcome="0" if study is not None else "4")
    session.commit()
    if study is None:
        return _outcome(404, "not-found", "no ImagingStudy with that id")
    return _fhir(to_fhir(study, regional_id, ctx.trusts))


@router.get("/fhir/ImagingStudy", response_model=None)
def search_imaging_studies(request: Request, ctx: ContextDep, session: SessionDep,
                           patient: str | None = Query(None, description="regional id or Patient/<id>"),
                           identifier: str | None = Query(None, description="urn:dicom:uid|<uid> or an accession"),
                           count: int = Query(100, alias="_count", ge=1, le=MAX_COUNT),
                           principal: Principal = Depends(require("system/ImagingStudy.s"))) -> Response:
    """Search by ``patient`` and/or ``identifier``; a searchset Bundle."""
    if not patient and not identifier:
        return _outcome(400, "too-costly", "search ImagingStudy by patient or identifier")
    found = search_studies(session, ctx.trusts, patient=patient, identifier=identifier, limit=count)
    regional_ids: list[str | None] = [*sorted({rid for _, rid in found if rid})] or [None]
    for regional_id in regional_ids:
        record(session, principal.agent, action="E", event_type="rest", subtype="search-type",
               regional_patient_id=regional_id, entity="ImagingStudy",
               detail={"results": len(found), "by": [k for k, v in (("patient", patient),
                                                                       ("identifier", identifier)) if v]})
    session.commit()
    base = public_base(request)
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(found),
              "entry": [{"fullUrl": f"{base}/fhir/ImagingStudy/{study.study_instance_uid}",
                         "resource": to_fhir(study, regional_id, ctx.trusts), "search": {"mode": "match"}}
                        for study, regional_id in found]}
    return _fhir(bundle)


# --- FHIR DiagnosticReport: a study's report ------------------------------------------------------------------------

@router.post("/fhir/DiagnosticReport", response_model=None, status_code=status.HTTP_201_CREATED)
async def create_diagnostic_report(request: Request, ctx: ContextDep,
                                   principal: Principal = Depends(require("system/DiagnosticReport.c"))) -> Response:
    """Link a report to its study (201 when new, 200 when it replaced the version with the same identifier)."""
    try:
        resource = await _json_body(request)
    except _Refused as refused:
        return refused.response
    return await run_in_threadpool(_create_diagnostic_report, ctx, resource, principal.agent)


def _create_diagnostic_report(ctx: AppContext, resource: Any, agent: Agent) -> Response:
    """The write of ``POST /fhir/DiagnosticReport`` in its unit of work; answered after the commit."""
    try:
        with unit_of_work(ctx.sessions, write=True) as session:
            outcome = apply_diagnostic_report(session, ctx.trusts, resource, agent=agent)
            if not outcome.accepted:
                if outcome.error_code == "not-found":
                    raise _Refused(_outcome(422, "not-found", outcome.reason or "no study to link the report to"))
                raise _Refused(_outcome(400, "invalid", outcome.reason or "invalid DiagnosticReport"))
            report_id = str(outcome.detail["id"])
            created = bool(outcome.detail.get("created"))
            regional_id = outcome.detail.get("regionalPatientId")
            record(session, agent, action="C" if created else "U", event_type="rest",
                   subtype="create" if created else "update",
                   regional_patient_id=str(regional_id) if regional_id else None,
                   entity=f"DiagnosticReport/{report_id}", detail={"study": outcome.detail.get("studyInstanceUid")})
            report = session.get(StudyReport, int(report_id))
            assert report is not None
            study = session.get(Study, report.study_id)
            assert study is not None
            body = report_to_fhir(report, study, regional_id_of(session, study))
    except _Refused as refused:
        return refused.response
    return _fhir(body, 201 if created else 200, {"Location": f"/fhir/DiagnosticReport/{report_id}"})


@router.get("/fhir/DiagnosticReport/{report_id}", response_model=None)
def read_diagnostic_report(report_id: str, session: SessionDep,
                           principal: Principal = Depends(require("system/DiagnosticReport.r"))) -> Response:
    """One report by its id."""
    report = session.get(StudyReport, int(report_id)) if report_id.isdigit() else None
    study = session.get(Study, report.study_id) if report is not None else None
    regional_id = regional_id_of(session, study) if study is not None else None
    record(session, principal.agent, action="R", event_type="rest", subtype="read", regional_patient_id=regional_id,
           entity=f"DiagnosticReport/{report_id}"[:300], outcome="0" if report is not None else "4")
    session.commit()
    if report is None or study is None:
        return _outcome(404, "not-found", "no DiagnosticReport with that id")
    return _fhir(report_to_fhir(report, study, regional_id))


# --- timeline -----------------------------------------------------------------------------------------------------

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
            "withdrawn": e.withdrawn,
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
