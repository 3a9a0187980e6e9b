"""FHIR DiagnosticReport: ``POST /fhir/DiagnosticReport`` (``system/DiagnosticReport.c``) links a report to its study
(its conclusion is shown beside the prior by the duplicate check); ``GET /fhir/DiagnosticReport/{id}`` (``.r``).

Every access is audited. Routes are thin: the work is in :mod:`imaging`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response, status
from starlette.concurrency import run_in_threadpool

from api.context import AppContext
from api.http.deps import ContextDep, Principal, SessionDep, require
from api.http.routers.fhir import Refused, fhir_answer, issue_answer, json_body
from imaging import Study, StudyReport, apply_diagnostic_report, regional_id_of, report_to_fhir
from priorscan.audit import Agent, record
from priorscan.unit_of_work import unit_of_work

router = APIRouter(tags=["imaging"])


@router.post("/fhir/DiagnosticReport", response_model=None, status_code=status.HTTP_201_CREATED)
async def create_diagnostic_report(request: Request, ctx: ContextDep,
                                   principal: Principal = Depends(require("system/DiagnosticReport.c"))) -> Response:
    """Link a report to its study (201 when new, 200 when it replaced the version with the same identifier)."""
    try:
        resource = await json_body(request)
    except Refused as refused:
        return refused.response
    return await run_in_threadpool(_create_diagnostic_report, ctx, resource, principal.agent)


def _create_diagnostic_report(ctx: AppContext, resource: Any, agent: Agent) -> Response:
    """The write of ``POST /fhir/DiagnosticReport`` in its unit of work; answered after the commit."""
    try:
        with unit_of_work(ctx.sessions, write=True) as session:
            outcome = apply_diagnostic_report(session, ctx.trusts, resource, agent=agent)
            if not outcome.accepted:
                if outcome.error_code == "not-found":
                    raise Refused(issue_answer(422, "not-found", outcome.reason or "no study to link the report to"))
                raise Refused(issue_answer(400, "invalid", outcome.reason or "invalid DiagnosticReport"))
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
    except Refused as refused:
        return refused.response
    return fhir_answer(body, 201 if created else 200, {"Location": f"/fhir/DiagnosticReport/{report_id}"})


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
        return issue_answer(404, "not-found", "no DiagnosticReport with that id")
    return fhir_answer(report_to_fhir(report, study, regional_id))
