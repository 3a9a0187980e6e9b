"""Alerts over HTTP (scope ``priorscan/alerts``): the list the radiographer page shows, and the lifecycle.

- ``GET /api/v1/alerts?status=open&trust=RXC`` → ``{"alerts": [...]}``, newest first. A signed-in person who works
  at a trust sees that trust's alerts only (asking for another trust's is 403); API clients may filter by any trust.
  The read is audited once per patient shown.
- ``GET /api/v1/alerts/{id}`` → one alert with its history (the justification record).
- ``POST /api/v1/alerts/{id}/acknowledge`` ``{"comment", "user"}``
- ``POST /api/v1/alerts/{id}/override`` ``{"reason": {"system", "code", "display"}, "comment", "user"}``: the reason
  must be one of the rule file's override reasons (422 otherwise).
- ``POST /api/v1/alerts/{id}/cancel`` ``{"comment", "user"}``: the request was cancelled; the dose avoided is the
  effective dose of the comparable prior shown first, else the rule file's typical dose for the procedure.

A step the alert cannot take from where it is answers 409; an alert of another trust 404. Every step is audited.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from api.auth.scopes import ALERTS
from api.http.deps import ContextDep, Principal, SessionDep, require
from api.http.routers.duplicate_check import PriorOut, http_error
from dedupe import (
    STATUSES,
    Coding,
    acknowledge,
    active_rules,
    alert_json,
    cancel,
    get_alert,
    history,
    list_alerts,
    override,
)
from priorscan.audit import record, record_patients_shown
from priorscan.errors import PriorscanError
from priorscan.unit_of_work import unit_of_work

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    system: str | None = None
    code: str = Field(min_length=1, max_length=64)
    display: str | None = None


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    comment: str | None = Field(default=None, max_length=4000)
    user: str | None = Field(default=None, max_length=200,
                             description="the person acting, as an API client knows them (a signed-in person is "
                                         "always recorded as themselves)")


class OverrideIn(ActionIn):
    reason: ReasonIn


class AlertOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    status: str
    verdict: str
    identity: str
    regionalPatientId: str | None
    requestingTrust: str | None
    placerOrderNumber: str | None
    createdAt: str | None
    request: dict[str, Any]
    priors: list[PriorOut]


class AlertListOut(BaseModel):
    alerts: list[AlertOut]


class AlertEventOut(BaseModel):
    action: str
    fromStatus: str | None
    toStatus: str
    actor: str
    at: str
    detail: dict[str, Any] | None


class AlertDetailOut(AlertOut):
    history: list[AlertEventOut]


def _trust_of(principal: Principal, asked: str | None) -> str | None:
    """The trust whose alerts ``principal`` may see: their own when they work at one."""
    if principal.trust_ods is None:
        return asked.upper() if asked else None
    if asked and asked.upper() != principal.trust_ods:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="you may see your own trust's alerts only")
    return principal.trust_ods


@router.get("", response_model=AlertListOut)
def get_alerts(ctx: ContextDep, session: SessionDep, principal: Principal = Depends(require(ALERTS)),
               status_: str | None = Query(default=None, alias="status", description=" | ".join(STATUSES)),
               trust: str | None = Query(default=None, description="requesting trust (ODS code)"),
               limit: int = Query(default=200, ge=1, le=1000)) -> dict[str, Any]:
    """Alerts by status and requesting trust, newest first."""
    if trust and ctx.trusts.resolve(trust) is not None:
        trust = ctx.trusts.resolve(trust).ods  # type: ignore[union-attr]
    try:
        alerts = list_alerts(session, status=status_, trust=_trust_of(principal, trust), limit=limit)
    except PriorscanError as exc:
        raise http_error(exc) from exc
    # one event per patient shown: "who looked at my record" finds this list too
    record_patients_shown(session, principal.agent, event_type="alert", subtype="search",
                          patients=[a.regional_patient_id for a in alerts],
                          detail={"status": status_, "trust": trust, "count": len(alerts)})
    session.commit()
    return {"alerts": [alert_json(a) for a in alerts]}


@router.get("/{alert_id}", response_model=AlertDetailOut)
def get_one(alert_id: str, session: SessionDep, principal: Principal = Depends(require(ALERTS))) -> dict[str, Any]:
    """One alert with every step of its history."""
    try:
        alert = get_alert(session, alert_id, trust=principal.trust_ods)
    except PriorscanError as exc:
        raise http_error(exc) from exc
    record(session, principal.agent, action="R", event_type="alert", subtype="read",
           regional_patient_id=alert.regional_patient_id, entity=f"alert/{alert.id}")
    session.commit()
    events = [{"action": e.action, "fromStatus": e.from_status, "toStatus": e.to_status, "actor": e.actor,
               "at": e.at.isoformat(), "detail": e.detail} for e in history(session, alert.id)]
    return {**alert_json(alert), "history": events}


def _acting_person(principal: Principal, named: str | None) -> str | None:
    """Who the justification record names: a signed-in person is themselves, whatever the body says (hazard log
    H-SEC-18); an API client (an integration engine) names the person it acts for."""
    return principal.name if principal.kind == "user" else named


@router.post("/{alert_id}/acknowledge", response_model=AlertOut)
def acknowledge_alert(alert_id: str, body: ActionIn, ctx: ContextDep,
                      principal: Principal = Depends(require(ALERTS))) -> dict[str, Any]:
    """The prior was seen."""
    try:
        with unit_of_work(ctx.sessions, write=True, immediate=False) as session:
            alert = acknowledge(session, get_alert(session, alert_id, trust=principal.trust_ods),
                                user=_acting_person(principal, body.user),
                                comment=body.comment, agent=principal.agent)
    except PriorscanError as exc:
        raise http_error(exc) from exc
    return alert_json(alert)  # the row as committed (sessions keep loaded values after commit)


@router.post("/{alert_id}/override", response_model=AlertOut)
def override_alert(alert_id: str, body: OverrideIn, ctx: ContextDep,
                   principal: Principal = Depends(require(ALERTS))) -> dict[str, Any]:
    """Go ahead despite the priors, with a coded reason (the IR(ME)R justification record)."""
    try:
        with unit_of_work(ctx.sessions, write=True, immediate=False) as session:
            alert = override(session, get_alert(session, alert_id, trust=principal.trust_ods),
                             active_rules(ctx.settings.rules_file),
                             reason=Coding(body.reason.system, body.reason.code, body.reason.display),
                             comment=body.comment, user=_acting_person(principal, body.user), agent=principal.agent)
    except PriorscanError as exc:
        raise http_error(exc) from exc
    return alert_json(alert)  # the row as committed (sessions keep loaded values after commit)


@router.post("/{alert_id}/cancel", response_model=AlertOut)
def cancel_alert(alert_id: str, body: ActionIn, ctx: ContextDep,
                 principal: Principal = Depends(require(ALERTS))) -> dict[str, Any]:
    """The request was cancelled after the alert: the dose avoided is counted."""
    try:
        with unit_of_work(ctx.sessions, write=True, immediate=False) as session:
            alert = cancel(session, get_alert(session, alert_id, trust=principal.trust_ods),
                           active_rules(ctx.settings.rules_file), user=_acting_person(principal, body.user),
                           comment=body.comment,
                           agent=principal.agent)
    except PriorscanError as exc:
        raise http_error(exc) from exc
    return alert_json(alert)  # the row as committed (sessions keep loaded values after commit)
