"""Outstanding orders: the imaging requests the duplicate check has seen, kept so that a second request for a
comparable procedure is flagged while the first is still outstanding (at any age).

An order is keyed by its requesting trust and placer order number (HL7 ORC-2 / OBR-2, a FHIR ServiceRequest
identifier, a CDS Hooks draft order id, the duplicate-check API's ``placerOrderNumber``). It points at a source
record of its patient (preferably the requesting trust's), so it follows the patient through merges.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from dedupe.storage import upsert
from imaging.tables import ImagingOrder
from priorscan.db import utcnow

ACTIVE = "active"
COMPLETED = "completed"
CANCELLED = "cancelled"


@dataclass(frozen=True)
class OrderFacts:
    """What is stored about one order (normalised procedure included)."""

    requesting_trust: str
    placer_order_number: str
    filler_order_number: str | None
    priority: str | None
    procedure_system: str | None
    procedure_code: str | None
    description: str | None
    modality: str | None
    body_region: str | None
    laterality: str | None
    reason: str | None
    ordered_at: datetime | None


def record_order(session: Session, facts: OrderFacts, *, source_record_id: int | None,
                 status: str | None = None) -> None:
    """Create the order, or update the one with the same trust and placer number.

    Values not known now (None) keep what is stored; ``status`` is set only when given (a new order is active).
    """
    values: dict[str, object] = {name: getattr(facts, name) for name in OrderFacts.__dataclass_fields__}
    values.update(source_record_id=source_record_id, updated_at=utcnow())
    overwrite = ["updated_at"]
    if status is not None:
        values["status"] = status
        overwrite.append("status")
    upsert(session, ImagingOrder, values, ("requesting_trust", "placer_order_number"), overwrite=overwrite)


def find_order(session: Session, trust: str, placer_order_number: str) -> ImagingOrder | None:
    return session.scalars(select(ImagingOrder).where(ImagingOrder.requesting_trust == trust,
                                                      ImagingOrder.placer_order_number == placer_order_number)).first()


def set_order_status(session: Session, trust: str, placer_order_number: str, status: str) -> ImagingOrder | None:
    """Mark a known order completed or cancelled (None when the order was never seen)."""
    order = find_order(session, trust, placer_order_number)
    if order is not None:
        order.status = status
    return order
