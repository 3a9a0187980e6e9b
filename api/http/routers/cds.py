"""CDS Hooks 2.0 over HTTP: discovery, the ``order-select`` and ``order-sign`` services, and feedback.

Every route needs a caller (``GET /cds-services`` too: the contract's public paths are three), who is either

- an EHR with the signed JWT CDS Hooks 2.0 requires (``Authorization: Bearer <JWT>``; RS384/ES384; ``iss`` trusted with
  ``priorscan cds trust``; ``jti`` used once; verified by :mod:`priorscan.jwt_assertion`). Its ``aud`` names the
  service called under the configured address of ``/cds-services``: ``settings.cds_audience``, else
  ``settings.public_base_url`` + ``/cds-services``; only in development and test, without either, the address the
  request came in on. An EHR's feedback acts only on the alerts its own hook calls raised; or
- a priorscan principal (bearer token or the web page's session), exactly as on the rest of the API: every CDS route
  (discovery, the hooks and their feedback) takes ``priorscan/duplicate-check``, the scope the contract gives "the
  duplicate check and CDS Hooks" (403 without it; feedback takes ``priorscan/alerts`` too). Feedback acknowledges,
  overrides or cancels alerts, so a principal without ``priorscan/alerts`` acts, like an EHR, only on the alerts its
  own hook calls raised (any other card is treated as unknown); with ``priorscan/alerts`` it acts on any alert, like
  the alerts API. A person who works at a trust acts for that trust only: a draft order naming another requesting
  trust is refused (403), one naming none is theirs, and feedback on another trust's alert is not applied (the card
  is treated as unknown).

The request body is read only after the caller is known, and validated (:class:`HookIn`, :class:`FeedbackIn`):
wrongly typed fields or JSON nested too deeply answer 400/422, never 500.

The patient is ``prefetch.patient``; without it, ``Patient/{context.patientId}`` is fetched from ``fhirServer`` only
if that is a configured FHIR server of a trust (:mod:`api.feeds.cds_fetch`: never anywhere else, so the call's
``access_token`` goes nowhere else). The requesting trust of a draft order that names none is the caller's trust,
else the trust owning the ``fhirServer``.

The routes are ``async`` and do all their blocking work (verifying the JWT and recording its ``jti``, fetching the
patient, the checks, the commit) in one hop to a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from api.auth.scopes import ALERTS, DUPLICATE_CHECK
from api.context import AppContext
from api.feeds.cds_fetch import fetch_patient, server_trust
from api.http.deps import ContextDep, Principal, get_principal
from api.http.routers.duplicate_check import http_error, json_response
from dedupe import (
    CDS_HOOKS,
    PatientQuery,
    active_rules,
    apply_feedback,
    cds_discovery,
    looks_like_jwt,
    patient_from_resource,
    run_hook,
    verify_cds_jwt,
)
from priorscan import json_input
from priorscan.audit import Agent
from priorscan.errors import AuthError, PriorscanError
from priorscan.unit_of_work import unit_of_work

router = APIRouter(tags=["CDS Hooks"])

_UNAUTHORISED: dict[int | str, dict[str, Any]] = {401: {"description": "no valid JWT or token"},
                                                  403: {"description": "without the scope"}}
_INVALID: dict[int | str, dict[str, Any]] = {400: {"description": "not a JSON object"},
                                             422: {"description": "a field of the wrong type"}}


class DiscoveryOut(BaseModel):
    services: list[dict[str, Any]]


class CardsOut(BaseModel):
    cards: list[dict[str, Any]]


class FeedbackOut(BaseModel):
    recorded: int


# --- the request shapes (CDS Hooks 2.0), checked before anything reads them ------------------------------------------

class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Entry(_Loose):
    resource: dict[str, Any] | None = None


class _Bundle(_Loose):
    entry: list[_Entry] = []


class _HookContext(_Loose):
    userId: str | None = None
    patientId: str | None = Field(default=None, max_length=200)
    draftOrders: _Bundle | None = None
    selections: list[str] | None = None


class _Authorization(_Loose):
    access_token: str | None = None


class HookIn(_Loose):
    """A hook request: ``hook``, ``hookInstance``, ``context`` (``draftOrders``, ``selections``, ``patientId``),
    ``prefetch``, ``fhirServer``, ``fhirAuthorization``."""

    hook: str | None = None
    hookInstance: str | None = None
    fhirServer: str | None = Field(default=None, max_length=2000)
    fhirAuthorization: _Authorization | None = None
    context: _HookContext = _HookContext()
    prefetch: dict[str, dict[str, Any] | None] | None = None


class _Coding(_Loose):
    system: str | None = None
    code: str | None = None
    display: str | None = None


class _OverrideReason(_Loose):
    reason: _Coding | None = None
    userComment: str | None = Field(default=None, max_length=4000)


class _Suggestion(_Loose):
    id: str | None = None


class _FeedbackItem(_Loose):
    card: str = Field(min_length=1, max_length=200)
    outcome: str
    outcomeTimestamp: str | None = None
    acceptedSuggestions: list[_Suggestion] | None = None
    overrideReason: _OverrideReason | None = None


class FeedbackIn(_Loose):
    feedback: list[_FeedbackItem]


async def _json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; 400 when it is not one (or is nested too deeply to read)."""
    try:
        value = json_input.loads(await request.body())
    except json_input.JsonInputError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=f"the body is not usable JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="the body must be a JSON object")
    return value


def _validated(model: type[BaseModel], body: dict[str, Any]) -> dict[str, Any]:
    """``body`` checked against ``model`` and given back as plain JSON (422 naming the fields, not their values)."""
    try:
        return model.model_validate(body).model_dump(mode="json", exclude_unset=True)
    except (ValidationError, RecursionError) as exc:
        where = ("; ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()[:5])
                 if isinstance(exc, ValidationError) else "nested too deeply")
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"invalid CDS Hooks request: {where}") \
            from exc


# --- who calls --------------------------------------------------------------------------------------------------------

def cds_base(request: Request, ctx: AppContext) -> str:
    """The address of ``/cds-services`` that JWT audiences name: configured, or (development and test only) the
    request's own."""
    settings = ctx.settings
    if settings.cds_audience:
        return settings.cds_audience.rstrip("/")
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/") + "/cds-services"
    return str(request.base_url).rstrip("/") + "/cds-services"


@dataclass(frozen=True)
class CdsCaller:
    """Who calls a CDS route: a trusted EHR (``issuer``) or a priorscan principal."""

    agent: Agent
    principal: Principal | None = None
    issuer: str | None = None

    @property
    def trust(self) -> str | None:
        """The trust the caller acts for, when it works at one."""
        return self.principal.trust_ods if self.principal is not None else None


def cds_caller(request: Request, ctx: AppContext, audiences: list[str], scope: str,
               *other_scopes: str) -> CdsCaller:
    """The EHR of a valid JWT naming one of ``audiences``, or a principal holding ``scope`` (or one of
    ``other_scopes``) (blocking)."""
    kind, _, token = request.headers.get("authorization", "").partition(" ")
    address = request.client.host if request.client else None
    if kind.lower() == "bearer" and looks_like_jwt(token.strip()):
        try:
            client = verify_cds_jwt(token.strip(), ctx.sessions, audiences=audiences)
        except AuthError as exc:
            raise http_error(exc) from exc
        return CdsCaller(Agent("client", f"cds:{client.issuer}"[:200], address), issuer=client.issuer)
    principal = get_principal(request, ctx)
    if not any(principal.allows(one) for one in (scope, *other_scopes)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"scope {' or '.join((scope, *other_scopes))} required")
    return CdsCaller(principal.agent, principal=principal)


def _service_audiences(request: Request, ctx: AppContext, service_id: str) -> list[str]:
    base = cds_base(request, ctx)
    return [f"{base}/{service_id}", f"{base}/{service_id}/feedback"]


# --- routes -----------------------------------------------------------------------------------------------------------

def _discovery(request: Request, ctx: AppContext) -> dict[str, Any]:
    base = cds_base(request, ctx)
    cds_caller(request, ctx, [base, base + "/"], DUPLICATE_CHECK)
    return cds_discovery()


@router.get("/cds-services", response_model=DiscoveryOut, responses=_UNAUTHORISED)
async def services(request: Request, ctx: ContextDep) -> Response:
    """The CDS services priorscan offers (to an EHR with a valid JWT, or a client with the duplicate-check scope)."""
    return json_response(await run_in_threadpool(_discovery, request, ctx))


def _patient(ctx: AppContext, body: dict[str, Any]) -> PatientQuery:
    prefetched = (body.get("prefetch") or {}).get("patient")
    if isinstance(prefetched, dict) and prefetched.get("resourceType") == "Patient":
        return patient_from_resource(prefetched)
    fetched = fetch_patient(ctx.trusts, body.get("fhirServer"), (body.get("context") or {}).get("patientId"),
                            (body.get("fhirAuthorization") or {}).get("access_token"))
    return patient_from_resource(fetched) if fetched is not None else PatientQuery()


def _hook_cards(request: Request, ctx: AppContext, service_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Check every draft order, commit (blocking: a worker thread's)."""
    caller = cds_caller(request, ctx, _service_audiences(request, ctx, service_id), DUPLICATE_CHECK)
    if service_id not in CDS_HOOKS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such CDS service")
    body = _validated(HookIn, body)
    if body.get("hook") not in (None, service_id):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="the hook does not match the service")
    owner = server_trust(ctx.trusts, body.get("fhirServer"))
    try:
        patient = _patient(ctx, body)
        # the duplicate check's unit: this process's writer turn only (its reads need no SQLite lock)
        with unit_of_work(ctx.sessions, write=True, immediate=False) as session:
            result = run_hook(session, ctx.trusts, active_rules(ctx.settings.rules_file), service_id, body, patient,
                              agent=caller.agent, default_trust=caller.trust or (owner[0].ods if owner else None),
                              acting_trust=caller.trust)
    except PriorscanError as exc:
        raise http_error(exc) from exc
    return {"cards": result.cards}


@router.post("/cds-services/{service_id}", response_model=CardsOut,
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": {"type": "object"}}}}}, responses={**_UNAUTHORISED, **_INVALID})
async def call_service(service_id: str, request: Request, ctx: ContextDep) -> Response:
    """Run one hook: cards for the draft orders that have comparable recent priors."""
    body = await _json_object(request)
    return json_response(await run_in_threadpool(_hook_cards, request, ctx, service_id, body))


def _record_feedback(request: Request, ctx: AppContext, service_id: str, body: dict[str, Any]) -> dict[str, Any]:
    caller = cds_caller(request, ctx, _service_audiences(request, ctx, service_id), DUPLICATE_CHECK, ALERTS)
    if service_id not in CDS_HOOKS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such CDS service")
    body = _validated(FeedbackIn, body)
    # an EHR, or a principal that may not act on alerts at large: only the alerts its own hook calls raised
    own_alerts_only = caller.principal is None or not caller.principal.allows(ALERTS)
    try:
        with unit_of_work(ctx.sessions, write=True, immediate=False) as session:  # as the alert actions
            recorded = apply_feedback(session, active_rules(ctx.settings.rules_file), body, agent=caller.agent,
                                      trust=caller.trust, raised_by=caller.agent.name if own_alerts_only else None)
    except PriorscanError as exc:
        raise http_error(exc) from exc
    return {"recorded": recorded}


@router.post("/cds-services/{service_id}/feedback", response_model=FeedbackOut,
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": {"type": "object"}}}}}, responses={**_UNAUTHORISED, **_INVALID})
async def feedback(service_id: str, request: Request, ctx: ContextDep) -> Response:
    """Record what the user did with the cards (accepted or overridden, with the reason)."""
    body = await _json_object(request)
    return json_response(await run_in_threadpool(_record_feedback, request, ctx, service_id, body))
