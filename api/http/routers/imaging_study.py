"""FHIR ImagingStudy: ``POST /fhir/ImagingStudy`` (``system/ImagingStudy.c``) creates, or updates the study with the
same UID; ``GET /fhir/ImagingStudy/{id}`` (``.r``) and ``GET /fhir/ImagingStudy?patient=&identifier=`` (``.s``):
``patient`` is a regional id or ``Patient/<id>``, ``identifier`` is ``urn:dicom:uid|<uid>`` or an accession number.

Every access is audited. Routes are thin: the work is in :mod:`imaging`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from api.context import AppContext
from api.http.deps import ContextDep, Principal, SessionDep, public_base, require
from api.http.routers.fhir import Refused, fhir_answer, issue_answer, json_body, search_handling
from imaging import Study, apply_imaging_study, regional_id_of, search_studies, to_fhir
from priorscan.audit import Agent, record
from priorscan.unit_of_work import unit_of_work

router = APIRouter(tags=["imaging"])
MAX_COUNT = 500
#: ImagingStudy search parameters served (``_format`` and ``_pretty`` change nothing in a JSON answer).
_SEARCH_PARAMETERS = frozenset({"patient", "identifier", "_count", "_format", "_pretty"})


@router.post("/fhir/ImagingStudy", response_model=None, status_code=status.HTTP_201_CREATED)
async def create_imaging_study(request: Request, ctx: ContextDep,
                               principal: Principal = Depends(require("system/ImagingStudy.c"))) -> Response:
    """Index an ImagingStudy (201 when new, 200 when the study with that UID was updated)."""
    try:
        resource = await json_body(request)
    except Refused as refused:
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
                    raise Refused(issue_answer(422, "not-found", outcome.reason or "unknown reference"))
                raise Refused(issue_answer(400, "invalid", outcome.reason or "invalid ImagingStudy"))
            uid = str(outcome.detail["studyInstanceUid"])
            created = bool(outcome.detail.get("created"))
            regional_id = outcome.detail.get("regionalPatientId")
            record(session, agent, action="C" if created else "U", event_type="rest",
                   subtype="create" if created else "update",
                   regional_patient_id=str(regional_id) if regional_id else None, entity=f"ImagingStudy/{uid}")
            study = session.query(Study).filter(Study.study_instance_uid == uid).one()
            body = to_fhir(study, regional_id_of(session, study), ctx.trusts)
    except Refused as refused:
        return refused.response
    return fhir_answer(body, 201 if created else 200, {"Location": f"/fhir/ImagingStudy/{uid}"})


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
        return issue_answer(404, "not-found", "no ImagingStudy with that id")
    return fhir_answer(to_fhir(study, regional_id, ctx.trusts))


@router.get("/fhir/ImagingStudy", response_model=None)
def search_imaging_studies(request: Request, ctx: ContextDep, session: SessionDep,
                           patient: str | None = Query(None, description="regional id or Patient/<id>"),
                           identifier: str | None = Query(None, description="urn:dicom:uid|<uid> or an accession"),
                           count: int = Query(100, alias="_count", ge=1, le=MAX_COUNT),
                           principal: Principal = Depends(require("system/ImagingStudy.s"))) -> Response:
    """Search by ``patient`` and/or ``identifier``; a searchset Bundle.

    Any other parameter (``modality``, ``started``, ``subject``, a modifier) is refused (400) unless the client sent
    ``Prefer: handling=lenient``, as for Patient: dropped silently it widened the search (every modality, every date)
    and the client took the answer for what it asked."""
    unserved = sorted({name for name in request.query_params if name not in _SEARCH_PARAMETERS})
    if unserved and search_handling(request) != "lenient":
        return issue_answer(400, "not-supported", f"search parameter(s) not supported: {', '.join(unserved)[:200]} "
                            "(send Prefer: handling=lenient to have them ignored)")
    if not patient and not identifier:
        return issue_answer(400, "too-costly", "search ImagingStudy by patient or identifier")
    found = search_studies(session, ctx.trusts, patient=patient, identifier=identifier, limit=count,
                           client=principal.name)
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
    return fhir_answer(bundle)
