"""The workspace's JSON and its live channel (scope ``priorscan/alerts``; the patient view also needs
``system/Patient.r`` and ``system/ImagingStudy.rs``).

- ``GET /api/v1/workspace/worklist?date=YYYY-MM-DD&modality=&status=&verdict=`` → the requests of the person's trust
  on that local day (today in Europe/London by default), warnings first;
- ``GET /api/v1/workspace/requests/{id}`` → one request (``order-<n>`` or ``alert-<uuid>``) with its patient banner,
  regional identity, priors and alert;
- ``GET /api/v1/workspace/patients/{regional_id}?asOf=YYYY-MM-DD`` → imaging across the five trusts with dose over
  rolling windows, alerts and requests;
- ``GET /api/v1/workspace/events`` → server-sent events: ``hello`` on connect and ``change`` when requests or alerts of
  the trust change (read from the database: :mod:`api.workspace.live`).

A person who works at a trust sees that trust's worklist and requests only (another trust's request is 404); a
patient's history across the trusts is shown to any clinical role, because that is the point of the product. Every
answer that names a patient is audited once per patient, with the trust of the person who looked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import date as Date
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from api.auth.scopes import ALERTS
from api.http.deps import ContextDep, Principal, PrincipalDep, SessionDep, require
from api.http.routers.duplicate_check import http_error
from api.workspace import (
    POLL_SECONDS,
    RECONNECT_MS,
    STATUSES,
    STREAM_SECONDS,
    VERDICTS,
    Change,
    ChangeFeed,
    WorklistQuery,
    local_today,
    open_alert_count,
    parse_cursor,
    read_patient_view,
    read_request,
    read_worklist,
    source_scopes,
    sse,
)
from dedupe import active_rules
from priorscan.audit import Agent, record, record_patients_shown
from priorscan.db import utcnow
from priorscan.errors import PriorscanError
from priorscan.unit_of_work import unit_of_work

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/workspace", tags=["workspace"])
PATIENT_SCOPES = ("system/Patient.r", "system/ImagingStudy.rs")


class WorklistOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    trust: str | None
    date: Date
    today: Date
    openAlerts: int  # noqa: N815 (JSON field name)
    items: list[dict[str, Any]]


class RequestOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    verdict: str
    identity: str
    status: str
    request: dict[str, Any]
    priors: list[dict[str, Any]]
    patient: dict[str, Any] | None
    alert: dict[str, Any] | None


class PatientOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    patient: dict[str, Any]
    studies: list[dict[str, Any]]
    doseWindows: list[dict[str, Any]]  # noqa: N815 (JSON field name)
    alerts: list[dict[str, Any]]
    orders: list[dict[str, Any]]
    asOf: Date  # noqa: N815 (JSON field name)


def _timezone(ctx: Any) -> str:
    return str(active_rules(ctx.settings.rules_file).timezone)


def _trust_scope(principal: Principal, asked: str | None, ctx: Any) -> str | None:
    """Whose requests ``principal`` may see: their own trust's when they work at one, else the trust asked for."""
    if principal.trust_ods is not None:
        if asked and asked.upper() != principal.trust_ods:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="you may see your own trust's requests only")
        return principal.trust_ods
    if asked:
        trust = ctx.trusts.resolve(asked)
        if trust is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="unknown trust")
        return str(trust.ods)
    return None


def _audit_patients(session: Any, agent: Agent, subtype: str, patients: list[str | None], *, entity: str | None,
                    detail: dict[str, Any]) -> None:
    """One audit event per patient shown (one without a patient when none was)."""
    record_patients_shown(session, agent, event_type="workspace", subtype=subtype, patients=patients, entity=entity,
                          detail=detail)


def _require_all(*needed: str) -> Any:
    async def check(request: Request) -> Principal:
        principal = await require(needed[0])(request)
        for scope in needed[1:]:
            if not principal.allows(scope):
                raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"scope {scope} required")
        return principal

    return check


@router.get("/worklist", response_model=WorklistOut)
def worklist(ctx: ContextDep, session: SessionDep, principal: Principal = Depends(require(ALERTS)),
             day: Date | None = Query(default=None, alias="date", description="local day, YYYY-MM-DD"),
             modality: str | None = Query(default=None, max_length=10),
             status_: str | None = Query(default=None, alias="status", description=" | ".join(STATUSES)),
             verdict: str | None = Query(default=None, description=" | ".join(VERDICTS)),
             trust: str | None = Query(default=None, description="ODS code (people at a trust see their own)"),
             ) -> dict[str, Any]:
    """The requests of the person's trust on one local day, warnings first."""
    if status_ is not None and status_ not in STATUSES:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"status is one of {', '.join(STATUSES)}")
    if verdict is not None and verdict not in VERDICTS:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"verdict is one of {', '.join(VERDICTS)}")
    zone = _timezone(ctx)
    today = local_today(zone)
    scope = _trust_scope(principal, trust, ctx)
    query = WorklistQuery(scope, day or today, modality or None, status_, verdict)
    items = read_worklist(session, query, timezone=zone)
    _audit_patients(session, principal.agent, "worklist", [i.regional_id for i in items], entity=None,
                    detail={"trust": scope, "date": query.day.isoformat(), "count": len(items)})
    count = open_alert_count(session, scope)
    session.commit()
    return {"trust": scope, "date": query.day, "today": today, "openAlerts": count,
            "items": [item.as_json() for item in items]}


@router.get("/requests/{request_id}", response_model=RequestOut)
def request_view(request_id: str, ctx: ContextDep, session: SessionDep,
                 principal: Principal = Depends(require(ALERTS))) -> dict[str, Any]:
    """One request with its patient banner, regional identity, priors and alert (each view audited)."""
    zone = _timezone(ctx)
    try:
        view = read_request(session, ctx.trusts, request_id[:60], trust=principal.trust_ods, timezone=zone)
    except PriorscanError as exc:
        record(session, principal.agent, action="R", event_type="workspace", subtype="request-view", outcome="4",
               entity=f"request/{request_id[:60]}")
        session.commit()
        raise http_error(exc) from exc
    _audit_patients(session, principal.agent, "request-view", [view.item.regional_id],
                    entity=f"request/{view.item.id}", detail={"trust": principal.trust_ods,
                                                              "alert": view.item.alert_id})
    session.commit()
    return view.as_json(today=local_today(zone))


@router.get("/patients/{regional_id}", response_model=PatientOut)
def patient_view(regional_id: str, ctx: ContextDep, session: SessionDep,
                 principal: Principal = Depends(_require_all(*PATIENT_SCOPES)),
                 as_of: Date | None = Query(default=None, alias="asOf",
                                            description="last day of the dose windows (today by default)"),
                 ) -> dict[str, Any]:
    """A patient's imaging across the five trusts, with dose over rolling windows (each view audited)."""
    zone = _timezone(ctx)
    day = as_of or local_today(zone)
    view = read_patient_view(session, ctx.trusts, regional_id[:40], as_of=day, timezone=zone)
    record(session, principal.agent, action="R", event_type="workspace", subtype="patient-view",
           regional_patient_id=view.patient.regional_id if view else None, outcome="0" if view else "4",
           entity=f"Patient/{regional_id[:40]}",
           detail={"trust": principal.trust_ods, "studies": len(view.studies) if view else 0})
    session.commit()
    if view is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such patient")
    return {**view.as_json(today=local_today(zone), at_trust=principal.trust_ods), "asOf": day}


def _change_json(change: Change) -> dict[str, Any]:
    return {"event": change.event, "key": change.key, "updatedAt": change.updated_at.isoformat(), **change.data}


@router.get("/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}})
async def events(request: Request, ctx: ContextDep, principal: PrincipalDep) -> Any:
    """Server-sent events: ``hello`` with the open-alert count, then ``change`` whenever the trust's requests or
    alerts change (any worker's), or whatever else a page's source sends to the person's role
    (:func:`api.workspace.register_source`). The stream closes after a few seconds; the browser reconnects."""
    if not any(principal.allows(scope) for scope in source_scopes()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="your role has no live updates")
    trust = principal.trust_ods if principal.trust_ods is not None else None
    counts = principal.allows(ALERTS)
    now = utcnow()
    resumed = parse_cursor(request.headers.get("last-event-id"), now=now)
    feed = ChangeFeed(resumed or now, allows=principal.allows)

    def read(first: bool) -> tuple[list[Change], int]:
        with unit_of_work(ctx.sessions) as session:
            if first and resumed is None:
                feed.prime(session, trust)
                return [], open_alert_count(session, trust) if counts else -1
            changes = feed.read(session, trust)
            return changes, (open_alert_count(session, trust) if counts and (changes or first) else -1)

    async def stream() -> Any:
        try:
            changes, count = await run_in_threadpool(read, True)
        except SQLAlchemyError:
            log.warning("live stream: the store could not be read; the page will reconnect")
            return
        yield sse("hello", json.dumps({"openAlerts": count, "trust": trust}), event_id=feed.cursor.isoformat(),
                  retry_ms=RECONNECT_MS)
        if changes:
            yield sse("change", json.dumps({"openAlerts": count, "changes": [_change_json(c) for c in changes]}),
                      event_id=feed.cursor.isoformat())
        deadline = time.monotonic() + STREAM_SECONDS
        while time.monotonic() < deadline:
            await asyncio.sleep(POLL_SECONDS)
            try:
                changes, count = await run_in_threadpool(read, False)
            except SQLAlchemyError:
                log.warning("live stream: the store could not be read; the page will reconnect")
                return
            if changes:
                yield sse("change", json.dumps({"openAlerts": count,
                                                "changes": [_change_json(c) for c in changes]}),
                          event_id=feed.cursor.isoformat())
        yield ": reconnect\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no"})
