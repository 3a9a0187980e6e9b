"""The worklist: the requests of one trust on one local day, each with its verdict, identity and nearest prior.

A request is an imaging order (HL7 ORM/OMI, FHIR ServiceRequest, a signed CDS Hooks order, a duplicate check with a
placer order number) with the alert its check raised, if any; or an alert whose request was kept as no order (a
duplicate check without an order number, a CDS ``order-select`` draft). An order's day is the local date of its
order time, else of when priorscan first saw it; an alert's is its request date.

Each item carries:

- ``verdict``: the alert's (warning | info) or ``clear`` when the order's check raised none;
- ``identity``: the check's (confirmed | probable | unknown), or for an order without alert how its patient's record
  is linked (``match`` confirmed, ``possible-match`` or provisional probable, none unknown) — a clear verdict for an
  unknown patient means no priors could be checked, and the page says so;
- ``nearestPriorDays``: the smallest ``daysAgo`` among the priors shown (None without priors);
- ``status``: the alert's (open | acknowledged | overridden | cancelled), else the order's (active | completed |
  cancelled).

Items come warnings first, then info, then clear; within a verdict, those awaiting review first, then those whose
identity is in doubt (a clear verdict for a patient the index does not know is no reassurance), then by time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import and_, exists, select
from sqlalchemy.orm import Session

from api.workspace.banner import display_name, format_nhs_number
from api.workspace.clock import day_bounds, local_date_of
from dedupe import Alert
from imaging import ImagingOrder
from mpi import RegionalPatient, SourceRecord

VERDICTS = ("warning", "info", "clear")
STATUSES = ("open", "acknowledged", "overridden", "cancelled", "active", "completed")
_VERDICT_RANK = {v: i for i, v in enumerate(VERDICTS)}
_STATUS_RANK = {"open": 0, "active": 1, "acknowledged": 2, "overridden": 3, "completed": 4, "cancelled": 5}


@dataclass(frozen=True)
class WorklistQuery:
    """Whose requests, which day, and the optional filters."""

    trust: str | None
    day: date
    modality: str | None = None
    status: str | None = None
    verdict: str | None = None


@dataclass
class WorklistItem:
    """One request of the day."""

    id: str  # order-<id> | alert-<uuid>
    requesting_trust: str | None
    placer_order_number: str | None
    requested_at: datetime | None
    request_date: date | None
    description: str | None
    modality: str | None
    body_site: str | None
    laterality: str | None
    priority: str | None
    channel: str | None
    verdict: str
    identity: str
    status: str
    order_status: str | None
    alert_id: str | None
    nearest_prior_days: int | None
    prior_count: int
    regional_id: str | None
    patient_name: str | None = None
    nhs_number: str | None = None
    birth_date: date | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "requestingTrust": self.requesting_trust, "placerOrderNumber": self.placer_order_number,
            "requestedAt": self.requested_at.isoformat() if self.requested_at else None,
            "requestDate": self.request_date.isoformat() if self.request_date else None,
            "description": self.description, "modality": self.modality, "bodySite": self.body_site,
            "laterality": self.laterality, "priority": self.priority, "channel": self.channel,
            "verdict": self.verdict, "identity": self.identity, "status": self.status,
            "orderStatus": self.order_status, "alertId": self.alert_id,
            "nearestPriorDays": self.nearest_prior_days, "priorCount": self.prior_count,
            "regionalPatientId": self.regional_id, "patientName": self.patient_name,
            "nhsNumber": self.nhs_number, "birthDate": self.birth_date.isoformat() if self.birth_date else None,
        }


def identity_of_record(link_state: str | None, provisional: bool | None) -> str:
    """How sure we are of an order's patient from how its source record is linked (no check verdict to go by)."""
    if link_state is None:
        return "unknown"
    if provisional or link_state == "possible-match":
        return "probable"
    return "confirmed" if link_state == "match" else "unknown"


def nearest_prior_days(priors: Iterable[dict[str, Any]] | None) -> int | None:
    """The age in days of the most recent prior shown (the smallest ``daysAgo``); None without any."""
    ages = [int(p["daysAgo"]) for p in priors or () if isinstance(p, dict) and p.get("daysAgo") is not None]
    return min(ages) if ages else None


def sort_items(items: list[WorklistItem]) -> list[WorklistItem]:
    """Warnings first, then info, then clear; within each, awaiting review first, then identity in doubt, then the
    earliest request."""
    far = datetime.max.replace(tzinfo=None)

    def key(item: WorklistItem) -> tuple[int, int, int, datetime, str]:
        when = item.requested_at.astimezone(UTC).replace(tzinfo=None) if item.requested_at else far
        return (_VERDICT_RANK.get(item.verdict, 9), _STATUS_RANK.get(item.status, 9),
                0 if item.identity != "confirmed" else 1, when, item.id)

    return sorted(items, key=key)


def keep(item: WorklistItem, query: WorklistQuery) -> bool:
    """Whether ``item`` passes the query's filters (modality ``other`` is anything outside the common list)."""
    if query.modality:
        wanted = query.modality.upper()
        modality = (item.modality or "").upper()
        if wanted == "OTHER":
            if modality in {"CT", "MR", "XR", "US", "NM", "PT", "MG"}:
                return False
        elif modality != wanted:
            return False
    if query.status and item.status != query.status:
        return False
    return not (query.verdict and item.verdict != query.verdict)


def order_item(order: ImagingOrder, alert: Alert | None, regional_id: str | None, link_state: str | None,
                provisional: bool | None, timezone: str) -> WorklistItem:
    at = order.ordered_at or order.created_at
    request = (alert.request or {}) if alert is not None else {}
    return WorklistItem(
        id=f"order-{order.id}", requesting_trust=order.requesting_trust,
        placer_order_number=order.placer_order_number, requested_at=at,
        request_date=alert.request_date if alert is not None and alert.request_date else local_date_of(at, timezone),
        description=order.description or request.get("description"), modality=order.modality,
        body_site=order.body_region, laterality=order.laterality, priority=order.priority,
        channel=alert.channel if alert is not None else None,
        verdict=alert.verdict if alert is not None else "clear",
        identity=alert.identity if alert is not None else identity_of_record(link_state, provisional),
        status=alert.status if alert is not None else order.status, order_status=order.status,
        alert_id=alert.id if alert is not None else None,
        nearest_prior_days=nearest_prior_days(alert.priors) if alert is not None else None,
        prior_count=len(alert.priors or []) if alert is not None else 0,
        regional_id=(alert.regional_patient_id if alert is not None and alert.regional_patient_id else regional_id))


def alert_item(alert: Alert) -> WorklistItem:
    """An alert whose request was kept as no order."""
    request = alert.request or {}
    code = request.get("code") or {}
    return WorklistItem(
        id=f"alert-{alert.id}", requesting_trust=alert.requesting_trust,
        placer_order_number=alert.placer_order_number, requested_at=alert.created_at,
        request_date=alert.request_date, description=request.get("description") or code.get("display"),
        modality=request.get("modality"), body_site=request.get("bodySite"), laterality=request.get("laterality"),
        priority=request.get("priority"), channel=alert.channel, verdict=alert.verdict, identity=alert.identity,
        status=alert.status, order_status=None, alert_id=alert.id,
        nearest_prior_days=nearest_prior_days(alert.priors), prior_count=len(alert.priors or []),
        regional_id=alert.regional_patient_id)


def _same_order() -> Any:
    return and_(Alert.requesting_trust == ImagingOrder.requesting_trust,
                Alert.placer_order_number == ImagingOrder.placer_order_number)


def read_worklist(session: Session, query: WorklistQuery, *, timezone: str, limit: int = 1000) -> list[WorklistItem]:
    """The requests of ``query.trust`` (every trust when None) on ``query.day``, filtered and in worklist order.

    Orders are found by index (``requesting_trust, ordered_at``; those without an order time by
    ``requesting_trust, updated_at`` and their creation time), alerts without an order by
    ``requesting_trust, updated_at`` and their request date.
    """
    start, end = day_bounds(query.day, timezone)
    base = (select(ImagingOrder, Alert, SourceRecord.regional_patient_id, SourceRecord.link_state,
                   SourceRecord.provisional)
            .outerjoin(SourceRecord, SourceRecord.id == ImagingOrder.source_record_id)
            .outerjoin(Alert, _same_order()))
    if query.trust:
        base = base.where(ImagingOrder.requesting_trust == query.trust)
    timed = base.where(ImagingOrder.ordered_at >= start, ImagingOrder.ordered_at < end)
    untimed = base.where(ImagingOrder.ordered_at.is_(None), ImagingOrder.updated_at >= start,
                         ImagingOrder.created_at >= start, ImagingOrder.created_at < end)
    items: list[WorklistItem] = []
    for statement in (timed, untimed):
        for order, alert, regional_id, link_state, provisional in session.execute(statement.limit(limit)).tuples():
            items.append(order_item(order, alert, regional_id, link_state, provisional, timezone))
    lone = select(Alert).where(Alert.updated_at >= start, Alert.request_date == query.day,
                               ~exists().where(_same_order()))
    if query.trust:
        lone = lone.where(Alert.requesting_trust == query.trust)
    items.extend(alert_item(alert) for alert in session.scalars(lone.limit(limit)))
    items = [item for item in items if keep(item, query)]
    _add_patients(session, items)
    return sort_items(items)[:limit]


def _add_patients(session: Session, items: list[WorklistItem]) -> None:
    """Name, NHS number and birth date of each item's regional patient (one query)."""
    ids = sorted({item.regional_id for item in items if item.regional_id})
    if not ids:
        return
    rows = session.execute(select(RegionalPatient.id, RegionalPatient.family, RegionalPatient.given,
                                  RegionalPatient.nhs_number, RegionalPatient.birth_date)
                           .where(RegionalPatient.id.in_(ids))).all()
    found = {row.id: row for row in rows}
    for item in items:
        row = found.get(item.regional_id or "")
        if row is not None:
            item.patient_name = display_name(row.family, row.given)
            item.nhs_number = format_nhs_number(row.nhs_number)
            item.birth_date = row.birth_date


def open_alert_count(session: Session, trust: str | None) -> int:
    """Alerts awaiting review at ``trust`` (every trust when None), whatever their day: the count the page shows."""
    from sqlalchemy import func

    statement = select(func.count()).select_from(Alert).where(Alert.status == "open")
    if trust:
        statement = statement.where(Alert.requesting_trust == trust)
    return int(session.scalar(statement) or 0)
