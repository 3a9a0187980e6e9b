"""CDS Hooks 2.0 over HTTP: discovery, the ``order-select`` and ``order-sign`` services, and feedback.

- ``GET /cds-services`` answers without authentication (the discovery document names no patient).
- ``POST /cds-services/{id}`` and ``POST /cds-services/{id}/feedback`` accept either
  * the EHR's signed JWT as CDS Hooks 2.0 requires (``Authorization: Bearer <JWT>``; RS384/ES384; ``iss`` trusted
    with ``priorscan cds trust``; ``aud`` the service's URL — ``settings.cds_audience`` (the public base URL of
    ``/cds-services``) when set, else as this server sees it; ``exp`` at most 5 minutes ahead; ``jti`` used once), or
  * a priorscan bearer token with scope ``priorscan/duplicate-check``, for order-entry systems that use tokens.
  A bearer with two dots is read as a JWT, anything else as a priorscan token.

The patient is ``prefetch.patient``; without it, ``Patient/{context.patientId}`` is fetched from ``fhirServer`` with
``fhirAuthorization.access_token`` (3 s timeout). The requesting trust of a draft order that names none is the trust
whose FHIR system shares the ``fhirServer``'s host.

The hook and feedback routes are ``async`` and do all their blocking work (verifying the JWT and recording its
``jti``, fetching the patient, the checks, the commit) in one hop to a worker thread.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import httpx
from fastapi import APIRouter, Body, HTTPException, Request, Response, status
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.context import AppContext
from api.deps import ContextDep, get_principal
from api.routers.duplicate_check import http_error, json_response
from api.scopes import DUPLICATE_CHECK
from dedupe import (
    CDS_HOOKS,
    PatientQuery,
    active_rules,
    apply_feedback,
    cds_discovery,
    looks_like_jwt,
    one_writer,
    patient_from_resource,
    run_hook,
    verify_cds_jwt,
)
from priorscan.audit import Agent
from priorscan.errors import AuthError, PriorscanError

router = APIRouter(tags=["CDS Hooks"])

FETCH_TIMEOUT_S = 3.0


class DiscoveryOut(BaseModel):
    services: list[dict[str, Any]]


class CardsOut(BaseModel):
    cards: list[dict[str, Any]]


def _audiences(request: Request, ctx: AppContext, service_id: str) -> list[str]:
    base = (ctx.settings.cds_audience or f"{str(request.base_url).rstrip('/')}/cds-services").rstrip("/")
    seen = str(request.url).split("?", 1)[0]
    return list(dict.fromkeys([f"{base}/{service_id}", f"{base}/{service_id}/feedback", seen]))


def cds_agent(request: Request, ctx: AppContext, service_id: str) -> Agent:
    """Who calls: a trusted EHR (signed JWT) or a priorscan client with the duplicate-check scope."""
    kind, _, token = request.headers.get("authorization", "").partition(" ")
    address = request.client.host if request.client else None
    if kind.lower() == "bearer" and looks_like_jwt(token.strip()):
        try:
            client = verify_cds_jwt(token.strip(), ctx.sessions, audiences=_audiences(request, ctx, service_id))
        except AuthError as exc:
            raise http_error(exc) from exc
        return Agent("client", f"cds:{client.issuer}"[:200], address)
    principal = get_principal(request, ctx)
    if not principal.allows(DUPLICATE_CHECK):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"scope {DUPLICATE_CHECK} required")
    return principal.agent


def _patient(body: dict[str, Any]) -> PatientQuery:
    prefetched = (body.get("prefetch") or {}).get("patient")
    if isinstance(prefetched, dict) and prefetched.get("resourceType") == "Patient":
        return patient_from_resource(prefetched)
    server, patient_id = body.get("fhirServer"), (body.get("context") or {}).get("patientId")
    if not server or not patient_id:
        return PatientQuery()
    token = (body.get("fhirAuthorization") or {}).get("access_token")
    try:
        answer = httpx.get(f"{str(server).rstrip('/')}/Patient/{patient_id}", timeout=FETCH_TIMEOUT_S,
                           headers={"Accept": "application/fhir+json",
                                    **({"Authorization": f"Bearer {token}"} if token else {})})
        answer.raise_for_status()
        return patient_from_resource(answer.json())
    except (httpx.HTTPError, ValueError):
        return PatientQuery()  # the patient stays unknown: no cards rather than a failed order entry


def _trust_of_server(ctx: AppContext, server: str | None) -> str | None:
    host = urlparse(server or "").hostname
    if not host:
        return None
    return next((t.ods for t in ctx.trusts.trusts if urlparse(t.fhir_system).hostname == host), None)


@router.get("/cds-services", response_model=DiscoveryOut)
def services() -> dict[str, Any]:
    """The CDS services priorscan offers (no authentication: it names no patient)."""
    return cds_discovery()


def _hook_cards(request: Request, ctx: AppContext, service_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Authenticate, check every draft order, commit (blocking: a worker thread's)."""
    agent = cds_agent(request, ctx, service_id)
    if service_id not in CDS_HOOKS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such CDS service")
    if body.get("hook") not in (None, service_id):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="the hook does not match the service")
    patient = _patient(body)
    try:
        with ctx.sessions() as session, one_writer(session):
            result = run_hook(session, ctx.trusts, active_rules(ctx.settings.rules_file), service_id, body, patient,
                              agent=agent, default_trust=_trust_of_server(ctx, body.get("fhirServer")))
            session.commit()
    except PriorscanError as exc:
        raise http_error(exc) from exc
    return {"cards": result.cards}


@router.post("/cds-services/{service_id}", response_model=CardsOut)
async def call_service(service_id: str, request: Request, ctx: ContextDep,
                       body: dict[str, Any] = Body(...)) -> Response:
    """Run one hook: cards for the draft orders that have comparable recent priors."""
    return json_response(await run_in_threadpool(_hook_cards, request, ctx, service_id, body))


def _record_feedback(request: Request, ctx: AppContext, service_id: str, body: dict[str, Any]) -> dict[str, Any]:
    agent = cds_agent(request, ctx, service_id)
    if service_id not in CDS_HOOKS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such CDS service")
    try:
        with ctx.sessions() as session, one_writer(session):
            recorded = apply_feedback(session, active_rules(ctx.settings.rules_file), body, agent=agent)
            session.commit()
    except PriorscanError as exc:
        raise http_error(exc) from exc
    return {"recorded": recorded}


@router.post("/cds-services/{service_id}/feedback")
async def feedback(service_id: str, request: Request, ctx: ContextDep, body: dict[str, Any] = Body(...)) -> Response:
    """Record what the user did with the cards (accepted or overridden, with the reason)."""
    return json_response(await run_in_threadpool(_record_feedback, request, ctx, service_id, body))
