"""FHIR R4 under ``/fhir``: metadata, SMART configuration, Patient (create, read, update, search), PDQm, ``$match``,
PIXm ``$ihe-pix``, and batch and transaction Bundles at ``POST /fhir``.

Routes parse, check scopes, call :mod:`api.feeds.fhir_service` or mpi's read side and shape the answer as
``application/fhir+json``. :func:`install` makes every error under ``/fhir`` an OperationOutcome (401 and 403 from
authentication, request validation, errors of the services, routes that do not exist); other paths keep the app's
handlers. ImagingStudy and ServiceRequest routes live with the imaging and dedupe routers.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.auth.scopes import PRIORSCAN_SCOPES
from api.feeds.fhir_service import bundle_scopes, process_bundle, run_unit, write_patient
from api.http.deps import Principal, PrincipalDep, get_context, public_base, require
from api.http.errors import http_status
from mpi import match_patients, pix_query, read_patient_resource, search_patients
from mpi import operation_outcome as outcome
from priorscan import json_input
from priorscan.errors import FHIRError, PriorscanError
from priorscan.outcome import ItemOutcome
from priorscan.unit_of_work import unit_of_work

FHIR_JSON = "application/fhir+json"
FHIR_PREFIX = "/fhir"
#: Where SMART Backend Services clients get tokens (served by :mod:`api.http.routers.oauth`).
TOKEN_PATH = "/oauth2/token"
_ISSUE_BY_STATUS = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
                    406: "not-supported", 409: "conflict", 412: "conflict", 413: "too-costly", 415: "not-supported",
                    422: "processing", 429: "throttled", 503: "transient"}


class FhirResponse(JSONResponse):
    media_type = FHIR_JSON


router = APIRouter(tags=["fhir"], default_response_class=FhirResponse)

_RESOURCE = {"description": "a FHIR resource", "content": {FHIR_JSON: {}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": "OperationOutcome", "content": {FHIR_JSON: {}}} for code in (400, 401, 403, 404, 422)}


def fhir_base(request: Request) -> str:
    return public_base(request) + FHIR_PREFIX


async def fhir_body(request: Request) -> dict[str, Any]:
    """The request body as a FHIR resource (JSON object with ``resourceType``); 415 or 400 otherwise."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media and not (media.endswith("/json") or media.endswith("+json")):
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, detail="send application/fhir+json")
    try:
        value = json_input.loads(await request.body())
    except json_input.JsonInputError as exc:
        raise FHIRError(f"the body is not usable JSON: {exc}", code="fhir.json") from exc
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        raise FHIRError("the body is not a FHIR resource (no resourceType)", code="fhir.json")
    return value


BodyDep = Annotated[dict[str, Any], Depends(fhir_body)]
_BODY = {"requestBody": {"required": True, "content": {FHIR_JSON: {"schema": {"type": "object"}}}}}


def _failure(result: ItemOutcome) -> FhirResponse:
    code_status, issue = http_status(result.error_code)
    line = str(result.detail.get("status") or code_status)
    return FhirResponse(outcome("error", issue, result.reason or "rejected"), status_code=int(line.split()[0]))


def _written(result: ItemOutcome, base: str) -> FhirResponse:
    if not result.accepted:
        return _failure(result)
    resource: dict[str, Any] = result.detail["resource"]  # type: ignore[assignment]
    headers = {"Location": f"{base}/{result.detail['location']}", "ETag": f'W/"{result.detail["version"]}"'}
    updated = resource.get("meta", {}).get("lastUpdated")
    if updated:
        headers["Last-Modified"] = datetime.fromisoformat(updated).astimezone(UTC).strftime(
            "%a, %d %b %Y %H:%M:%S GMT")
    return FhirResponse(resource, status_code=int(str(result.detail["status"]).split()[0]), headers=headers)


# --- metadata ---------------------------------------------------------------------------------------------------

@router.get("/fhir/metadata", responses={200: _RESOURCE})
def metadata(request: Request) -> FhirResponse:
    """The CapabilityStatement (no authentication)."""
    return FhirResponse(capability_statement(fhir_base(request)))


@router.get("/.well-known/smart-configuration", response_class=JSONResponse)
@router.get("/fhir/.well-known/smart-configuration", response_class=JSONResponse)
def smart_configuration(request: Request) -> JSONResponse:
    """SMART Backend Services metadata (no authentication)."""
    root = public_base(request)
    scopes = [f"system/{t}.{p}" for t in ("Patient", "ImagingStudy", "ServiceRequest", "DiagnosticReport")
              for p in ("rs", "cruds")]
    return JSONResponse({
        "token_endpoint": root + TOKEN_PATH,
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": [*scopes, *PRIORSCAN_SCOPES],
        "capabilities": ["client-confidential-asymmetric", "permission-v2"],
    })


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


@router.post("/fhir/Patient", status_code=201, openapi_extra=_BODY, responses={201: _RESOURCE, **_ERRORS})
async def create_patient(request: Request, body: BodyDep,
                         principal: Annotated[Principal, Depends(require("system/Patient.c"))]) -> FhirResponse:
    """Create the source record a Patient describes; 409 (``duplicate``) when its identifier names a record that
    exists already: a create never changes a record (that is an update, PUT, with ``system/Patient.u``)."""
    if body.get("resourceType") != "Patient":
        raise FHIRError("POST /fhir/Patient expects a Patient", code="fhir.invalid")
    ctx = get_context(request)
    result = await run_in_threadpool(run_unit, ctx, "Patient", lambda s: write_patient(
        s, ctx.trusts, body, agent=principal.agent, mode="create"))
    return _written(result, fhir_base(request))


@router.get("/fhir/Patient/$ihe-pix", responses={200: _RESOURCE, **_ERRORS})
async def ihe_pix(request: Request,
                  principal: Annotated[Principal, Depends(require("system/Patient.rs"))]) -> FhirResponse:
    """PIXm (ITI-83): ``sourceIdentifier=system|value`` and optional ``targetSystem`` (repeated or comma separated)."""
    sources = request.query_params.getlist("sourceIdentifier")
    if len(sources) != 1:
        raise FHIRError("exactly one sourceIdentifier=system|value is required", code="fhir.invalid")
    targets = [t for value in request.query_params.getlist("targetSystem") for t in value.split(",") if t.strip()]
    trusts = get_context(request).trusts
    return FhirResponse(await _reading(request, lambda s: pix_query(s, trusts, sources[0], targets,
                                                                    agent=principal.agent)))


@router.post("/fhir/Patient/$match", openapi_extra=_BODY, responses={200: _RESOURCE, **_ERRORS})
async def match(request: Request, body: BodyDep,
                principal: Annotated[Principal, Depends(require("system/Patient.rs"))]) -> FhirResponse:
    """``$match``: a Parameters with ``resource`` (a Patient), ``onlyCertainMatches`` and ``count``."""
    trusts, base = get_context(request).trusts, fhir_base(request)
    return FhirResponse(await _reading(request, lambda s: match_patients(s, trusts, body, agent=principal.agent,
                                                                         base=base)))


@router.get("/fhir/Patient", responses={200: _RESOURCE, **_ERRORS})
async def search(request: Request,
                 principal: Annotated[Principal, Depends(require("system/Patient.s"))]) -> FhirResponse:
    """PDQm (ITI-78) search: _id, active, identifier, family, given, name, birthdate, gender, telecom, address,
    address-city, address-state, address-postalcode, _count, _offset; others refused (400) unless ``Prefer:
    handling=lenient``."""
    return await _search(request, principal, list(request.query_params.multi_items()))


@router.post("/fhir/Patient/_search", responses={200: _RESOURCE, **_ERRORS},
             openapi_extra={"requestBody": {"content": {"application/x-www-form-urlencoded": {}}}})
async def search_by_post(request: Request,
                         principal: Annotated[Principal, Depends(require("system/Patient.s"))]) -> FhirResponse:
    """PDQm search with the parameters in a form body (so that identifiers stay out of URLs and logs)."""
    params = list(request.query_params.multi_items())
    params += parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=False)
    return await _search(request, principal, params)


def search_handling(request: Request) -> str:
    """FHIR search handling asked for with ``Prefer: handling=strict|lenient``; strict when not asked (an unserved
    parameter is refused rather than silently widening the search to everyone)."""
    for header in request.headers.getlist("prefer"):
        for part in header.split(";") + header.split(","):
            key, _, value = part.strip().partition("=")
            if key.strip().lower() == "handling" and value.strip().strip('"').lower() in ("strict", "lenient"):
                return value.strip().strip('"').lower()
    return "strict"


async def _search(request: Request, principal: Principal, params: list[tuple[str, str]]) -> FhirResponse:
    trusts, base = get_context(request).trusts, fhir_base(request)
    lenient = search_handling(request) == "lenient"
    return FhirResponse(await _reading(request, lambda s: search_patients(s, trusts, params, agent=principal.agent,
                                                                          base=base, lenient=lenient)))


@router.get("/fhir/Patient/{resource_id}", responses={200: _RESOURCE, **_ERRORS})
async def read(resource_id: str, request: Request,
               principal: Annotated[Principal, Depends(require("system/Patient.r"))]) -> FhirResponse:
    """A regional Patient (``RP…``: every linked identifier) or a source record."""
    trusts = get_context(request).trusts
    resource = await _reading(request, lambda s: read_patient_resource(s, trusts, resource_id, agent=principal.agent))
    version = resource.get("meta", {}).get("versionId")
    return FhirResponse(resource, headers={"ETag": f'W/"{version}"'} if version else None)


@router.get("/fhir/Patient/{resource_id}/_history/{version_id}", responses={200: _RESOURCE, **_ERRORS})
async def vread(resource_id: str, version_id: str, request: Request,
                principal: Annotated[Principal, Depends(require("system/Patient.r"))]) -> FhirResponse:
    """The current version of a source record Patient (earlier versions are kept as history, not served)."""
    trusts = get_context(request).trusts
    resource = await _reading(request, lambda s: read_patient_resource(s, trusts, resource_id, agent=principal.agent))
    current = resource.get("meta", {}).get("versionId")
    if current != version_id:
        return FhirResponse(outcome("error", "not-found", "only the current version can be read"), status_code=404)
    return FhirResponse(resource, headers={"ETag": f'W/"{current}"'})


@router.put("/fhir/Patient/{resource_id}", openapi_extra=_BODY, responses={200: _RESOURCE, 201: _RESOURCE, **_ERRORS})
async def update_patient(resource_id: str, request: Request, body: BodyDep,
                         principal: Annotated[Principal, Depends(require("system/Patient.u"))]) -> FhirResponse:
    """Replace a source record's demographics (an unknown id creates it: update as create)."""
    if body.get("resourceType") != "Patient":
        raise FHIRError("PUT /fhir/Patient/{id} expects a Patient", code="fhir.invalid")
    ctx = get_context(request)
    result = await run_in_threadpool(run_unit, ctx, "Patient", lambda s: write_patient(
        s, ctx.trusts, body, agent=principal.agent, mode="update", resource_id=resource_id))
    return _written(result, fhir_base(request))


# --- Bundles ----------------------------------------------------------------------------------------------------

@router.post("/fhir", openapi_extra=_BODY, responses={200: _RESOURCE, **_ERRORS})
async def post_bundle(request: Request, body: BodyDep, principal: PrincipalDep) -> FhirResponse:
    """A batch or transaction Bundle; the caller needs the create (or update) scope of every entry's type."""
    if body.get("resourceType") != "Bundle":
        raise FHIRError("POST /fhir expects a Bundle of type batch or transaction", code="fhir.invalid")
    missing = sorted(scope for scope in bundle_scopes(body) if not principal.allows(scope))
    if missing:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"scope {', '.join(missing)} required")
    result = await run_in_threadpool(process_bundle, get_context(request), body, agent=principal.agent,
                                     channel="fhir", keep_rejected=False, base=fhir_base(request))
    return FhirResponse(result.response, status_code=result.status)


# --- the CapabilityStatement ------------------------------------------------------------------------------------

def capability_statement(base: str) -> dict[str, Any]:
    """What this server does, for ``GET /fhir/metadata``."""
    patient_params = [("_id", "token"), ("active", "token"), ("identifier", "token"), ("family", "string"),
                      ("given", "string"), ("name", "string"), ("birthdate", "date"), ("gender", "token"),
                      ("telecom", "token"), ("address", "string"), ("address-city", "string"),
                      ("address-state", "string"), ("address-postalcode", "string")]
    return {
        "resourceType": "CapabilityStatement", "status": "active", "date": "2024-01-01", "kind": "instance",
        "publisher": "priorscan",
        "instantiates": ["https://profiles.ihe.net/ITI/PIXm/CapabilityStatement/IHE.PIXm.Manager",
                         "https://profiles.ihe.net/ITI/PDQm/CapabilityStatement/IHE.PDQm.Supplier"],
        "software": {"name": "priorscan", "version": "0.1.0"},
        "implementation": {"description": "Regional imaging index and duplicate-scan detector", "url": base},
        "fhirVersion": "4.0.1", "format": [FHIR_JSON, "json"],
        "rest": [{
            "mode": "server",
            "security": {"service": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                "code": "SMART-on-FHIR"}]}],
                "description": "Bearer tokens with SMART system scopes; see /.well-known/smart-configuration"},
            "resource": [
                {"type": "Patient", "versioning": "versioned-update", "updateCreate": True,
                 "conditionalCreate": False,
                 "interaction": [{"code": c} for c in ("read", "vread", "update", "create", "search-type")],
                 "searchParam": [{"name": n, "type": t} for n, t in patient_params],
                 "operation": [
                     {"name": "match", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-match"},
                     {"name": "ihe-pix",
                      "definition": "https://profiles.ihe.net/ITI/PIXm/OperationDefinition/IHE.PIXm.pix"}]},
                {"type": "ImagingStudy", "interaction": [{"code": c} for c in ("read", "create", "search-type")],
                 "searchParam": [{"name": "patient", "type": "reference"}, {"name": "identifier", "type": "token"},
                                 {"name": "_count", "type": "number"}]},
                {"type": "ServiceRequest", "interaction": [{"code": "create"}]},
                {"type": "DiagnosticReport", "interaction": [{"code": "create"}, {"code": "read"}]},
            ],
            "interaction": [{"code": "transaction"}, {"code": "batch"}],
        }],
    }


# --- every error under /fhir as an OperationOutcome -------------------------------------------------------------

Handler = Callable[[Request, Any], Awaitable[Response] | Response]


async def _delegate(handler: Handler, request: Request, exc: Exception) -> Response:
    result = handler(request, exc)
    return await result if inspect.isawaitable(result) else result


def _is_fhir(request: Request) -> bool:
    path = request.url.path
    return path == FHIR_PREFIX or path.startswith(FHIR_PREFIX + "/") or path.startswith("/.well-known/smart")


def _outcome_response(status_code: int, diagnostics: str, headers: dict[str, str] | None = None) -> FhirResponse:
    issue = _ISSUE_BY_STATUS.get(status_code, "exception" if status_code >= 500 else "processing")
    return FhirResponse(outcome("error" if status_code < 500 else "fatal", issue, diagnostics),
                        status_code=status_code, headers=headers)


def install(app: FastAPI) -> None:
    """Register exception handlers answering with an OperationOutcome under ``/fhir`` (others keep theirs)."""
    previous: dict[Any, Handler | None] = {kind: app.exception_handlers.get(kind) for kind in (
        StarletteHTTPException, RequestValidationError, PriorscanError, Exception)}

    async def on_http(request: Request, exc: StarletteHTTPException) -> Response:
        if _is_fhir(request):
            detail = exc.detail if isinstance(exc.detail, str) else "request refused"
            return _outcome_response(exc.status_code, detail, dict(exc.headers or {}))
        return await _delegate(previous[StarletteHTTPException] or http_exception_handler, request, exc)

    async def on_validation(request: Request, exc: RequestValidationError) -> Response:
        if _is_fhir(request):
            where = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
                              for e in exc.errors()[:5])
            return _outcome_response(400, f"invalid request: {where}")
        return await _delegate(previous[RequestValidationError] or request_validation_exception_handler,
                               request, exc)

    async def on_priorscan(request: Request, exc: PriorscanError) -> Response:
        if _is_fhir(request):
            code_status, issue = http_status(exc.code)
            return FhirResponse(outcome("error", issue, exc.message), status_code=code_status)
        handler = previous[PriorscanError]
        if handler is None:
            raise exc
        return await _delegate(handler, request, exc)

    async def on_error(request: Request, exc: Exception) -> Response:
        if _is_fhir(request):
            return _outcome_response(500, f"internal error ({type(exc).__name__})")
        handler = previous[Exception]
        if handler is None:
            return PlainTextResponse("Internal Server Error", status_code=500)
        return await _delegate(handler, request, exc)

    app.add_exception_handler(StarletteHTTPException, on_http)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(PriorscanError, on_priorscan)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, on_error)
