"""FHIR Patient under ``/fhir/Patient``: create, read, vread, update, PDQm search (GET and ``_search``), ``$match``
and PIXm ``$ihe-pix``.

Routes parse, check scopes, call :mod:`api.feeds.fhir_service` (writes) or mpi's read side (reads, searches,
``$match``, PIXm: :mod:`mpi.fhir_queries` through mpi's front) and shape the answer as ``application/fhir+json``;
errors become OperationOutcomes through :func:`api.http.routers.fhir.install`. ``$ihe-pix`` and ``$match`` are
declared before ``{resource_id}`` so that they are not read as ids.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, HTTPException, Request, status
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.feeds.fhir_service import CONDITIONAL_CREATE_SCOPE, run_unit, write_patient
from api.http.deps import Principal, get_context, require
from api.http.routers.fhir import (
    BODY_DOC,
    ERROR_DOCS,
    RESOURCE_DOC,
    BodyDep,
    FhirResponse,
    fhir_base,
    search_handling,
    written,
)
from mpi import match_patients, pix_query, read_patient_resource, search_patients
from mpi import operation_outcome as outcome
from priorscan.errors import FHIRError
from priorscan.unit_of_work import unit_of_work

router = APIRouter(tags=["fhir"], default_response_class=FhirResponse)


# --- Patient ----------------------------------------------------------------------------------------------------
# Routes are async and do their database work in one worker thread (one hop instead of one per dependency).

async def _reading(request: Request, work: Callable[[Session], dict[str, Any]]) -> dict[str, Any]:
    """Run ``work`` (a read, a search, $match, $ihe-pix) in a worker thread; commit the audit rows it added.

    On PostgreSQL that commit does not wait for the WAL flush (``synchronous_commit = off`` for this transaction
    only): a crash may lose the audit rows of the last fraction of a second of reads, never a change to patient
    data, and a read no longer pays a disk flush (about 7 ms here; see BENCHMARKS.md, Feeds).
    """
    reading = unit_of_work(get_context(request).sessions, durable=False)
    return await run_in_threadpool(reading.run, work)


@router.post("/fhir/Patient", status_code=201, openapi_extra=BODY_DOC, responses={201: RESOURCE_DOC, **ERROR_DOCS})
async def create_patient(request: Request, body: BodyDep,
                         principal: Annotated[Principal, Depends(require("system/Patient.c"))]) -> FhirResponse:
    """Create the source record a Patient describes; 409 (``duplicate``) when its identifier names a record that
    exists already: a create never changes a record (that is an update, PUT, with ``system/Patient.u``). With
    ``If-None-Exist`` (conditional create) a Patient that meets the query is answered (200) instead."""
    if body.get("resourceType") != "Patient":
        raise FHIRError("POST /fhir/Patient expects a Patient", code="fhir.invalid")
    ctx = get_context(request)
    condition = request.headers.get("if-none-exist")
    if condition is not None and not principal.allows(CONDITIONAL_CREATE_SCOPE):
        # the answer to a conditional create is the Patient its query found (or that several exist): a search and a
        # read, which a create-only client may not do (H-SEC-15)
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail=f"scope {CONDITIONAL_CREATE_SCOPE} required for If-None-Exist")
    result = await run_in_threadpool(run_unit, ctx, "Patient", lambda s: write_patient(
        s, ctx.trusts, body, agent=principal.agent, mode="create", if_none_exist=condition))
    return written(result, fhir_base(request))


@router.get("/fhir/Patient/$ihe-pix", responses={200: RESOURCE_DOC, **ERROR_DOCS})
async def ihe_pix(request: Request,
                  principal: Annotated[Principal, Depends(require("system/Patient.rs"))]) -> FhirResponse:
    """PIXm (ITI-83): ``sourceIdentifier=system|value`` and optional ``targetSystem`` (repeated or comma separated)."""
    sources = request.query_params.getlist("sourceIdentifier")
    if len(sources) != 1:
        raise FHIRError("exactly one sourceIdentifier=system|value is required", code="fhir.invalid")
    targets = [t for value in request.query_params.getlist("targetSystem") for t in value.split(",") if t.strip()]
    trusts, base = get_context(request).trusts, fhir_base(request)
    return FhirResponse(await _reading(request, lambda s: pix_query(s, trusts, sources[0], targets,
                                                                    agent=principal.agent, base=base)))


@router.post("/fhir/Patient/$match", openapi_extra=BODY_DOC, responses={200: RESOURCE_DOC, **ERROR_DOCS})
async def match(request: Request, body: BodyDep,
                principal: Annotated[Principal, Depends(require("system/Patient.rs"))]) -> FhirResponse:
    """``$match``: a Parameters with ``resource`` (a Patient), ``onlyCertainMatches`` and ``count``."""
    trusts, base = get_context(request).trusts, fhir_base(request)
    return FhirResponse(await _reading(request, lambda s: match_patients(s, trusts, body, agent=principal.agent,
                                                                         base=base)))


@router.get("/fhir/Patient", responses={200: RESOURCE_DOC, **ERROR_DOCS})
async def search(request: Request,
                 principal: Annotated[Principal, Depends(require("system/Patient.s"))]) -> FhirResponse:
    """PDQm (ITI-78) search: _id, active, identifier, family, given, name, birthdate, gender, telecom, address,
    address-city, address-state, address-postalcode, _count, _offset; others refused (400) unless ``Prefer:
    handling=lenient``."""
    return await _search(request, principal, list(request.query_params.multi_items()))


@router.post("/fhir/Patient/_search", responses={200: RESOURCE_DOC, **ERROR_DOCS},
             openapi_extra={"requestBody": {"content": {"application/x-www-form-urlencoded": {}}}})
async def search_by_post(request: Request,
                         principal: Annotated[Principal, Depends(require("system/Patient.s"))]) -> FhirResponse:
    """PDQm search with the parameters in a form body (so that identifiers stay out of URLs and logs)."""
    params = list(request.query_params.multi_items())
    params += parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=False)
    return await _search(request, principal, params)


async def _search(request: Request, principal: Principal, params: list[tuple[str, str]]) -> FhirResponse:
    trusts, base = get_context(request).trusts, fhir_base(request)
    lenient = search_handling(request) == "lenient"
    return FhirResponse(await _reading(request, lambda s: search_patients(s, trusts, params, agent=principal.agent,
                                                                          base=base, lenient=lenient)))


@router.get("/fhir/Patient/{resource_id}", responses={200: RESOURCE_DOC, **ERROR_DOCS})
async def read(resource_id: str, request: Request,
               principal: Annotated[Principal, Depends(require("system/Patient.r"))]) -> FhirResponse:
    """A regional Patient (``RP…``: every linked identifier) or a source record."""
    trusts = get_context(request).trusts
    resource = await _reading(request, lambda s: read_patient_resource(s, trusts, resource_id, agent=principal.agent))
    version = resource.get("meta", {}).get("versionId")
    return FhirResponse(resource, headers={"ETag": f'W/"{version}"'} if version else None)


@router.get("/fhir/Patient/{resource_id}/_history/{version_id}", responses={200: RESOURCE_DOC, **ERROR_DOCS})
async def vread(resource_id: str, version_id: str, request: Request,
                principal: Annotated[Principal, Depends(require("system/Patient.r"))]) -> FhirResponse:
    """The current version of a source record Patient (earlier versions are kept as history, not served)."""
    trusts = get_context(request).trusts
    resource = await _reading(request, lambda s: read_patient_resource(s, trusts, resource_id, agent=principal.agent))
    current = resource.get("meta", {}).get("versionId")
    if current != version_id:
        return FhirResponse(outcome("error", "not-found", "only the current version can be read"), status_code=404)
    return FhirResponse(resource, headers={"ETag": f'W/"{current}"'})


@router.put("/fhir/Patient/{resource_id}", openapi_extra=BODY_DOC,
            responses={200: RESOURCE_DOC, 201: RESOURCE_DOC, **ERROR_DOCS})
async def update_patient(resource_id: str, request: Request, body: BodyDep,
                         principal: Annotated[Principal, Depends(require("system/Patient.u"))]) -> FhirResponse:
    """Replace a source record's demographics (an unknown id creates it: update as create, which needs
    ``system/Patient.c`` too, 403 otherwise); with ``If-Match`` only when it names the current version (412
    otherwise)."""
    if body.get("resourceType") != "Patient":
        raise FHIRError("PUT /fhir/Patient/{id} expects a Patient", code="fhir.invalid")
    ctx = get_context(request)
    if_match = request.headers.get("if-match")
    result = await run_in_threadpool(run_unit, ctx, "Patient", lambda s: write_patient(
        s, ctx.trusts, body, agent=principal.agent, mode="update", resource_id=resource_id, if_match=if_match,
        may_create=principal.allows("system/Patient.c")))
    return written(result, fhir_base(request))
