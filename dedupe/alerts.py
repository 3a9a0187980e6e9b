"""Alerts: raising one per request, the lifecycle, listing, and the justification record kept for audit.

::

    open ──► acknowledged ──► overridden (coded reason, comment)
      │           │      └──► cancelled (the request was cancelled: dose avoided)
      ├───────────┴─────────► overridden
      └─────────────────────► cancelled

An override needs a reason code from the rule file's override reasons (and a comment where that reason asks for one).
Cancelling after an override records the cancellation but counts no dose avoided (the alert did not stop the exam).
Every step is an :class:`~dedupe.tables.AlertEvent` and an audit event; who, when and why stay on the alert too.
Nothing here commits: the caller commits the unit of work before answering.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from dedupe.dose import dose_avoided
from dedupe.orders import CANCELLED as ORDER_CANCELLED
from dedupe.orders import set_order_status
from dedupe.rules import RuleSet
from dedupe.tables import Alert, AlertEvent
from priorscan.audit import Agent, record
from priorscan.db import utcnow
from priorscan.errors import InputError, NotFoundError
from priorscan.writes import insert_row, insert_unless_exists

OPEN = "open"
ACKNOWLEDGED = "acknowledged"
OVERRIDDEN = "overridden"
CANCELLED = "cancelled"
STATUSES = (OPEN, ACKNOWLEDGED, OVERRIDDEN, CANCELLED)
_NEXT = {OPEN: {ACKNOWLEDGED, OVERRIDDEN, CANCELLED}, ACKNOWLEDGED: {OVERRIDDEN, CANCELLED},
         OVERRIDDEN: {CANCELLED}, CANCELLED: set()}


class AlertStateError(InputError):
    """The alert cannot take that step from where it is (e.g. overriding a cancelled request)."""

    code = "alert.state"


@dataclass(frozen=True)
class Coding:
    system: str | None
    code: str | None
    display: str | None = None


@dataclass(frozen=True)
class RaisedAlert:
    """What a check needs to say about its alert."""

    id: str
    status: str
    created: bool


_ALERT_OF_ORDER = select(Alert.id, Alert.status).where(Alert.requesting_trust == bindparam("trust"),
                                                      Alert.placer_order_number == bindparam("placer"))


def raise_alert(session: Session, *, regional_id: str | None, identity: str, requesting_trust: str | None,
                placer_order_number: str | None, channel: str, verdict: str, request: Mapping[str, Any],
                request_date: date | None, priors: list[dict[str, Any]], rules_version: str,
                agent: Agent) -> RaisedAlert:
    """Raise the alert of a request, or refresh the one its order already has (one alert per order).

    An open alert takes the newest priors and verdict; one already acted on is left as it is (its justification
    record stands) and returned. Written with Core statements: this is on the request path of every check.
    """
    checked = dict(regional_patient_id=regional_id, identity=identity, verdict=verdict, request=dict(request),
                   request_date=request_date, priors=priors, shown_prior_uid=_first_uid(priors),
                   rules_version=rules_version)
    alert_id = str(uuid.uuid4())
    created = insert_unless_exists(session, Alert, {
        "id": alert_id, "requesting_trust": requesting_trust, "placer_order_number": placer_order_number,
        "channel": channel, "status": OPEN, "created_by": agent.name, **checked,
    }, ("requesting_trust", "placer_order_number"))
    if not created:  # the order has its alert already (checked before, or by another worker a moment ago)
        existing = session.execute(_ALERT_OF_ORDER, {"trust": requesting_trust,
                                                     "placer": placer_order_number}).one()
        return _recheck(session, existing.id, existing.status, checked, agent)
    insert_row(session, AlertEvent, {"alert_id": alert_id, "action": "created", "from_status": None,
                                     "to_status": OPEN, "actor": agent.name,
                                     "detail": {"verdict": verdict, "rulesVersion": rules_version, "channel": channel,
                                                "priors": len(priors)}})
    return RaisedAlert(alert_id, OPEN, True)


def _first_uid(priors: list[dict[str, Any]]) -> str | None:
    return next((p.get("studyInstanceUid") for p in priors if p.get("studyInstanceUid")), None)


def _recheck(session: Session, alert_id: str, status: str, checked: dict[str, Any], agent: Agent) -> RaisedAlert:
    if status == OPEN:
        session.execute(update(Alert).where(Alert.id == alert_id, Alert.status == OPEN)
                        .values(**checked, updated_at=utcnow()))
        insert_row(session, AlertEvent, {"alert_id": alert_id, "action": "rechecked", "from_status": OPEN,
                                         "to_status": OPEN, "actor": agent.name,
                                         "detail": {"verdict": checked["verdict"],
                                                    "rulesVersion": checked["rules_version"],
                                                    "priors": len(checked["priors"])}})
    return RaisedAlert(alert_id, status, False)


def get_alert(session: Session, alert_id: str, *, trust: str | None = None) -> Alert:
    """The alert with ``alert_id`` (only among ``trust``'s when given); ``not-found`` otherwise."""
    alert = session.get(Alert, alert_id)
    if alert is None or (trust is not None and alert.requesting_trust != trust):
        raise NotFoundError("no such alert")
    return alert


def alert_of_order(session: Session, trust: str, placer_order_number: str) -> Alert | None:
    """The alert raised for the order ``placer_order_number`` of ``trust``, if any."""
    return session.scalars(select(Alert).where(Alert.requesting_trust == trust,
                                               Alert.placer_order_number == placer_order_number)).first()


def _step(session: Session, alert: Alert, to_status: str, *, action: str, user: str | None, agent: Agent,
          detail: dict[str, Any]) -> Alert:
    from_status = alert.status
    if to_status not in _NEXT[from_status]:
        raise AlertStateError(f"an alert that is {from_status} cannot be {to_status}")
    alert.status = to_status
    alert.acted_by = user or agent.name
    alert.acted_at = utcnow()
    session.add(AlertEvent(alert_id=alert.id, action=action, from_status=from_status, to_status=to_status,
                           actor=agent.name, detail={"user": user, **detail}))
    record(session, agent, action="U", event_type="alert", subtype=action,
           regional_patient_id=alert.regional_patient_id, entity=f"alert/{alert.id}",
           detail={"from": from_status, "to": to_status, **{k: v for k, v in detail.items() if k != "comment"}})
    return alert


def acknowledge(session: Session, alert: Alert, *, user: str | None, comment: str | None, agent: Agent) -> Alert:
    """The prior was seen; acknowledging twice is harmless."""
    if alert.status == ACKNOWLEDGED:
        return alert
    if comment:
        alert.comment = comment
    return _step(session, alert, ACKNOWLEDGED, action="acknowledged", user=user, agent=agent,
                 detail={"comment": comment})


def override(session: Session, alert: Alert, rules: RuleSet, *, reason: Coding, comment: str | None,
             user: str | None, agent: Agent) -> Alert:
    """Go ahead despite the priors, with a coded reason from the rule file (the IR(ME)R justification).

    Raises
    ------
    InputError
        ``alert.reason`` when the reason is not one of the configured override reasons, or its comment is missing.
    AlertStateError
        When the alert was cancelled (or already overridden with another reason).
    """
    configured = rules.override_reason(reason.system, reason.code)
    if configured is None:
        known = ", ".join(r.code for r in rules.override_reasons)
        raise InputError(f"the override reason must be one of the configured codes: {known}", code="alert.reason")
    if configured.comment_required and not (comment and comment.strip()):
        raise InputError(f"the override reason {configured.code} needs a comment", code="alert.reason")
    if alert.status == OVERRIDDEN and alert.reason_code == configured.code:
        return alert
    alert.reason_system, alert.reason_code = configured.system, configured.code
    alert.reason_display = configured.display
    alert.comment = comment
    return _step(session, alert, OVERRIDDEN, action="overridden", user=user, agent=agent,
                 detail={"reason": {"system": configured.system, "code": configured.code,
                                    "display": configured.display},
                         "comment": comment, "shownPrior": alert.shown_prior_uid, "rulesVersion": alert.rules_version})


def cancel(session: Session, alert: Alert, rules: RuleSet, *, user: str | None, comment: str | None,
           agent: Agent, why: str = "request cancelled") -> Alert:
    """The request was cancelled: record it (its order too) and, unless the alert had been overridden, the dose
    avoided."""
    if alert.status == CANCELLED:
        return alert
    counted = alert.status != OVERRIDDEN
    if counted:
        avoided = dose_avoided(rules, alert.request or {}, alert.priors or [])
        alert.dose_avoided_msv, alert.dose_avoided_basis = avoided.effective_dose_msv, avoided.basis
    if comment:
        alert.comment = comment
    if alert.requesting_trust and alert.placer_order_number:
        set_order_status(session, alert.requesting_trust, alert.placer_order_number, ORDER_CANCELLED)
    return _step(session, alert, CANCELLED, action="cancelled", user=user, agent=agent,
                 detail={"why": why, "comment": comment, "doseAvoidedMsv": alert.dose_avoided_msv if counted else None,
                         "doseAvoidedBasis": alert.dose_avoided_basis if counted else "not counted: overridden before"})


def note(session: Session, alert: Alert, *, action: str, agent: Agent, detail: dict[str, Any]) -> None:
    """Record something said about an alert that does not move it (e.g. CDS feedback without a usable reason)."""
    session.add(AlertEvent(alert_id=alert.id, action=action, from_status=alert.status, to_status=alert.status,
                           actor=agent.name, detail=detail))
    record(session, agent, action="U", event_type="alert", subtype=action,
           regional_patient_id=alert.regional_patient_id, entity=f"alert/{alert.id}",
           detail={k: v for k, v in detail.items() if k != "comment"})


def list_alerts(session: Session, *, status: str | None = None, trust: str | None = None,
                limit: int = 200) -> list[Alert]:
    """Alerts, newest first, by status and requesting trust."""
    if status is not None and status not in STATUSES:
        raise InputError(f"status must be one of {', '.join(STATUSES)}", code="input.status")
    query = select(Alert)
    if status is not None:
        query = query.where(Alert.status == status)
    if trust is not None:
        query = query.where(Alert.requesting_trust == trust)
    return list(session.scalars(query.order_by(Alert.created_at.desc(), Alert.id).limit(limit)))


def history(session: Session, alert_id: str) -> list[AlertEvent]:
    return list(session.scalars(select(AlertEvent).where(AlertEvent.alert_id == alert_id).order_by(AlertEvent.id)))


def alert_json(alert: Alert) -> dict[str, Any]:
    """An alert as the radiographer page and ``GET /api/v1/alerts`` show it (DESIGN.md section 6)."""
    return {
        "id": alert.id,
        "status": alert.status,
        "verdict": alert.verdict,
        "identity": alert.identity,
        "regionalPatientId": alert.regional_patient_id,
        "requestingTrust": alert.requesting_trust,
        "placerOrderNumber": alert.placer_order_number,
        "createdAt": alert.created_at.isoformat() if alert.created_at else None,
        "request": alert.request,
        "priors": alert.priors,
        "channel": alert.channel,
        "requestDate": alert.request_date.isoformat() if alert.request_date else None,
        "rulesVersion": alert.rules_version,
        "reason": ({"system": alert.reason_system, "code": alert.reason_code, "display": alert.reason_display}
                   if alert.reason_code else None),
        "comment": alert.comment,
        "actedBy": alert.acted_by,
        "actedAt": alert.acted_at.isoformat() if alert.acted_at else None,
        "doseAvoidedMsv": alert.dose_avoided_msv,
        "doseAvoidedBasis": alert.dose_avoided_basis,
    }
