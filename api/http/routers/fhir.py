"""FHIR R4 under ``/fhir``, what every resource shares: metadata, SMART configuration, batch and transaction Bundles
at ``POST /fhir``, the FHIR answer and body, and every error under ``/fhir`` as an OperationOutcome.

Each resource has its router module: Patient with PDQm, ``$match`` and PIXm (:mod:`api.http.routers.patient`),
ImagingStudy (:mod:`api.http.routers.imaging_study`), DiagnosticReport (:mod:`api.http.routers.diagnostic_report`),
ServiceRequest (:mod:`api.http.routers.service_request`). :func:`install` makes every error under ``/fhir`` an
OperationOutcome (401 and 403 from authentication, request validation, errors of the services, routes that do not
exist); other paths keep the app's handlers.
"""

from __future__ import annotations

import codecs
import inspect
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.auth.scopes import PRIORSCAN_SCOPES
from api.feeds.fhir_service import bundle_scopes, process_bundle
from api.http.deps import PrincipalDep, get_context, public_base
from api.http.errors import http_status
from mpi import operation_outcome as outcome
from priorscan import json_input
from priorscan.errors import FHIRError, PriorscanError
from priorscan.outcome import ItemOutcome

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

RESOURCE_DOC = {"description": "a FHIR resource", "content": {FHIR_JSON: {}}}
ERROR_DOCS: dict[int | str, dict[str, Any]] = {
    code: {"description": "OperationOutcome", "content": {FHIR_JSON: {}}} for code in (400, 401, 403, 404, 422)}


def fhir_base(request: Request) -> str:
    return public_base(request) + FHIR_PREFIX


async def body_text(request: Request) -> str | bytes:
    """The request body, decoded by the ``charset`` its Content-Type declares (UTF-8 when it declares none).

    FHIR bodies are UTF-8, but a sender that says ``charset=ISO-8859-1`` (older integration engines do) means it:
    read as UTF-8, its ``Ångström`` was refused as JSON that is not valid. A charset Python does not know is 415.
    """
    charset = _media_parameter(request.headers.get("content-type", ""), "charset")
    raw = await request.body()
    if charset is None or charset.replace("-", "").replace("_", "") in ("utf8", "usascii", "ascii"):
        return raw
    try:
        codecs.lookup(charset)
    except LookupError:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                            detail="send UTF-8 (the charset is not known)") from None
    try:
        return raw.decode(charset)
    except UnicodeDecodeError as exc:
        raise FHIRError("the body is not text in the charset it declares", code="fhir.json") from exc


def _media_parameter(header: str, name: str) -> str | None:
    """A parameter of a media type (``charset`` of ``application/fhir+json; charset=utf-8``), lower case."""
    for part in header.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == name:
            return value.strip().strip('"').lower() or None
    return None


async def fhir_body(request: Request) -> dict[str, Any]:
    """The request body as a FHIR resource (JSON object with ``resourceType``); 415 or 400 otherwise.

    Any JSON media type is read, ``application/json+fhir`` too: the type of FHIR DSTU2 and STU3's drafts, which
    order-entry and integration engines of that age still send with R4 bodies (the body decides what it is)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media and not (media.endswith("/json") or media.endswith("+json") or media == "application/json+fhir"):
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, detail="send application/fhir+json")
    try:
        value = json_input.loads(await body_text(request))
    except json_input.JsonInputError as exc:
        raise FHIRError(f"the body is not usable JSON: {exc}", code="fhir.json") from exc
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        raise FHIRError("the body is not a FHIR resource (no resourceType)", code="fhir.json")
    return value


def search_handling(request: Request) -> str:
    """FHIR search handling asked for with ``Prefer: handling=strict|lenient``; strict when not asked (an unserved
    parameter is refused rather than silently widening the search to everyone)."""
    for header in request.headers.getlist("prefer"):
        for part in header.split(";") + header.split(","):
            key, _, value = part.strip().partition("=")
            if key.strip().lower() == "handling" and value.strip().strip('"').lower() in ("strict", "lenient"):
                return value.strip().strip('"').lower()
    return "strict"


BodyDep = Annotated[dict[str, Any], Depends(fhir_body)]
BODY_DOC = {"requestBody": {"required": True, "content": {FHIR_JSON: {"schema": {"type": "object"}}}}}


def failure(result: ItemOutcome) -> FhirResponse:
    code_status, issue = http_status(result.error_code)
    line = str(result.detail.get("status") or code_status)
    return FhirResponse(outcome("error", issue, result.reason or "rejected"), status_code=int(line.split()[0]))


def written(result: ItemOutcome, base: str) -> FhirResponse:
    if not result.accepted:
        return failure(result)
    resource: dict[str, Any] = result.detail["resource"]  # type: ignore[assignment]
    headers = {"Location": f"{base}/{result.detail['location']}", "ETag": f'W/"{result.detail["version"]}"'}
    updated = resource.get("meta", {}).get("lastUpdated")
    if updated:
        headers["Last-Modified"] = datetime.fromisoformat(updated).astimezone(UTC).strftime(
            "%a, %d %b %Y %H:%M:%S GMT")
    return FhirResponse(resource, status_code=int(str(result.detail["status"]).split()[0]), headers=headers)


# --- answers built by hand (ImagingStudy, DiagnosticReport) ---------------------------------------------------

def issue_answer(status_code: int, code: str, text: str) -> Response:
    body = {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": text}]}
    return Response(json.dumps(body), status_code=status_code, media_type=FHIR_JSON)


def fhir_answer(body: dict[str, Any], status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, default=str), status_code=status_code, media_type=FHIR_JSON, headers=headers)


class Refused(Exception):
    """A write the adapter refused: its unit of work is rolled back and ``response`` is the answer."""

    def __init__(self, response: Response) -> None:
        super().__init__("refused")
        self.response = response


async def json_body(request: Request) -> Any:
    try:
        text = await body_text(request)
    except HTTPException as exc:
        raise Refused(issue_answer(exc.status_code, "not-supported", str(exc.detail))) from None
    except FHIRError as exc:
        raise Refused(issue_answer(400, "structure", exc.message)) from None
    try:
        return json_input.loads(text)
    except json_input.JsonInputError as exc:
        raise Refused(issue_answer(400, "structure", f"the body is not usable JSON: {exc}")) from None


# --- metadata ---------------------------------------------------------------------------------------------------

@router.get("/fhir/metadata", responses={200: RESOURCE_DOC})
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


# --- Bundles ----------------------------------------------------------------------------------------------------

@router.post("/fhir", openapi_extra=BODY_DOC, responses={200: RESOURCE_DOC, **ERROR_DOCS})
async def post_bundle(request: Request, body: BodyDep, principal: PrincipalDep) -> FhirResponse:
    """A batch or transaction Bundle; the caller needs the create (or update) scope of every entry's type."""
    if body.get("resourceType") != "Bundle":
        raise FHIRError("POST /fhir expects a Bundle of type batch or transaction", code="fhir.invalid")
    missing = sorted(scope for scope in bundle_scopes(body) if not principal.allows(scope))
    if missing:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"scope {', '.join(missing)} required")
    result = await run_in_threadpool(process_bundle, get_context(request), body, agent=principal.agent,
                                     channel="fhir", keep_rejected=False, base=fhir_base(request),
                                     may_create=principal.allows("system/Patient.c"))
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
                 "conditionalCreate": True,
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


# --- the format asked for ----------------------------------------------------------------------------------------

#: What ``_format`` or ``Accept`` may ask for and get: FHIR JSON under its R4, DSTU2/STU3 and generic names.
_JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json", "application/json+fhir", "text/json"})
_ANY = frozenset({"*/*", "application/*"})


def refused_format(format_asked: str | None, accept: str | None) -> str | None:
    """Why the answer cannot be in the format the request asks for (``_format`` first, else ``Accept``), or None.

    Only JSON is served. A client that asks for XML (``_format=xml``, ``Accept: application/fhir+xml``) was answered
    with JSON as if it had asked for it; it is told 406 instead (RFC 9110 15.5.7), with an OperationOutcome in JSON.
    A ``+`` sent unencoded in ``_format=application/fhir+json`` arrives as a space and is read as the ``+``.
    """
    if format_asked is not None:
        wanted = format_asked.split(";")[0].strip().lower().replace(" ", "+")
        return None if wanted in _JSON_FORMATS else "only JSON is served (_format=json)"
    if not accept or not accept.strip():
        return None
    for media_range in accept.split(","):
        media, *parameters = (part.strip().lower() for part in media_range.split(";"))
        quality = next((p.partition("=")[2] for p in parameters if p.startswith("q=")), "1")
        try:
            acceptable = float(quality) > 0
        except ValueError:
            acceptable = True
        if acceptable and (media in _JSON_FORMATS or media in _ANY or not media):
            return None
    return "only JSON is served (Accept: application/fhir+json)"


class FormatNegotiation:
    """Refuse (406) a FHIR request whose ``_format`` or ``Accept`` asks only for formats not served (JSON is)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = str(scope.get("path", "")) if scope["type"] == "http" else ""
        if not (path == FHIR_PREFIX or path.startswith(FHIR_PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        formats = [v for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
                   if k == "_format"]
        accept = b", ".join(v for k, v in scope.get("headers", ()) if k == b"accept").decode("latin-1")
        reason = refused_format(formats[0] if formats else None, accept)
        if reason is None:
            await self.app(scope, receive, send)
            return
        answer = _outcome_response(status.HTTP_406_NOT_ACCEPTABLE, reason)
        await answer(scope, receive, send)


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
    app.add_middleware(FormatNegotiation)
