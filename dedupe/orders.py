"""Outstanding orders: the imaging requests the duplicate check has seen, kept so that a second request for a
comparable procedure is flagged while the first is still outstanding (at any age).

An order is keyed by its requesting trust and placer order number (HL7 ORC-2 / OBR-2, a FHIR ServiceRequest
identifier, a CDS Hooks draft order id, the duplicate-check API's ``placerOrderNumber``). It points at a source
record of its patient (preferably the requesting trust's), so it follows the patient through merges.

An order for a patient the MPI does not know yet has no source record. It keeps the patient identifiers it named
(:class:`~dedupe.tables.UnattachedOrderIdentifier`), so that once identity arrives (an ADT registration, a FHIR
Patient) the next check of that patient finds it through those identifiers, by index, and attaches it
(:func:`attach_orders`): a second request for the same procedure then sees the first as outstanding.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.orm import Session

from dedupe.tables import UnattachedOrderIdentifier
from imaging import ImagingOrder
from mpi import normalise_nhs_number
from priorscan.db import utcnow
from priorscan.trusts import NHS_NUMBER_SYSTEM, TrustRegistry
from priorscan.writes import insert_unless_exists, upsert

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
    body_regions: str | None = None  # every region named, space-separated (when more than one)


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


def patient_identifiers(identifiers: Iterable[tuple[str, str]], trusts: TrustRegistry) -> list[tuple[str, str]]:
    """``(system, value)`` pairs as the MPI keys them: NHS numbers as ten digits (others dropped), other identifiers
    under their canonical namespace (a trust's alias becomes its FHIR system)."""
    found: dict[tuple[str, str], None] = {}
    for system, value in identifiers:
        if system == NHS_NUMBER_SYSTEM:
            digits = normalise_nhs_number(value)
            if digits:
                found[(NHS_NUMBER_SYSTEM, digits)] = None
        elif system and value and value.strip():
            found[(trusts.namespace(system), value.strip())] = None
    return list(found)


_ORDER_ID = select(ImagingOrder.id, ImagingOrder.source_record_id).where(
    ImagingOrder.requesting_trust == bindparam("trust"), ImagingOrder.placer_order_number == bindparam("placer"))


def keep_unattached_identifiers(session: Session, trust: str, placer_order_number: str,
                                identifiers: Sequence[tuple[str, str]]) -> None:
    """Keep the (normalised) patient identifiers of an order that has no source record, to attach it later."""
    if not identifiers:
        return
    order = session.connection().execute(_ORDER_ID, {"trust": trust, "placer": placer_order_number}).first()
    if order is None or order.source_record_id is not None:  # attached already (an earlier check knew the patient)
        return
    for system, value in identifiers:
        insert_unless_exists(session, UnattachedOrderIdentifier, {"order_id": order.id, "system": system,
                                                                  "value": value}, ("order_id", "system", "value"))


_ORDERS: Table = ImagingOrder.__table__  # type: ignore[assignment]
_UNATTACHED: Table = UnattachedOrderIdentifier.__table__  # type: ignore[assignment]
_ATTACH = (update(_ORDERS)  # Core statements: several rows in one executemany
           .where(_ORDERS.c.id == bindparam("order_id"), _ORDERS.c.source_record_id.is_(None))
           .values(source_record_id=bindparam("record_id"), updated_at=bindparam("now")))
_FORGET = delete(_UNATTACHED).where(_UNATTACHED.c.order_id == bindparam("order_id"))


def attach_orders(session: Session, attachments: Mapping[int, int]) -> None:
    """Hang unattached orders on source records (order id → record id) and forget the identifiers they kept.

    An order another worker attached a moment ago keeps that attachment (the update only touches unattached rows).
    """
    if not attachments:
        return
    now = utcnow()
    rows = [{"order_id": order_id, "record_id": record_id, "now": now} for order_id, record_id in attachments.items()]
    connection = session.connection()
    connection.execute(_ATTACH, rows)
    connection.execute(_FORGET, [{"order_id": order_id} for order_id in attachments])
