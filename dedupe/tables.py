"""Storage of duplicate-check alerts and their lifecycle (the IR(ME)R justification record), and of the patient
identifiers an order named while the MPI did not know its patient.

One alert per request: a request that carries its trust's placer order number (HL7 ORC-2, a FHIR ServiceRequest
identifier, a CDS Hooks draft order) has at most one alert, however often it is checked (``order-select`` then
``order-sign``, an ORM re-sent), which the unique constraint settles in the database for every worker.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from priorscan.db import Base, JSONType, UTCDateTime, utcnow
from priorscan.tables import BigId


class Alert(Base):
    """A request with comparable recent priors: open → acknowledged | overridden | cancelled."""

    __tablename__ = "alert"
    __table_args__ = (
        Index("ix_alert_status_trust", "status", "requesting_trust", "created_at"),
        Index("ix_alert_trust_updated", "requesting_trust", "updated_at"),  # the workspace's live updates
        UniqueConstraint("requesting_trust", "placer_order_number"),
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # uuid4
    regional_patient_id: Mapped[str | None] = mapped_column(String(24), index=True)
    identity: Mapped[str] = mapped_column(String(12))  # confirmed | probable | unknown
    requesting_trust: Mapped[str | None] = mapped_column(String(10))
    placer_order_number: Mapped[str | None] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(30))  # api | cds-hooks | hl7 | fhir
    verdict: Mapped[str] = mapped_column(String(10))  # warning | info
    request: Mapped[dict] = mapped_column(JSONType)  # the normalised request (no names)
    request_date: Mapped[date | None] = mapped_column(Date)  # the date the priors were judged against
    priors: Mapped[list] = mapped_column(JSONType)  # the priors shown, as returned
    shown_prior_uid: Mapped[str | None] = mapped_column(String(64))  # the first prior shown (the one that fired)
    rules_version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="open")
    reason_system: Mapped[str | None] = mapped_column(String(200))
    reason_code: Mapped[str | None] = mapped_column(String(64))
    reason_display: Mapped[str | None] = mapped_column(String(300))
    comment: Mapped[str | None] = mapped_column(Text)
    acted_by: Mapped[str | None] = mapped_column(String(200))
    acted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dose_avoided_msv: Mapped[float | None] = mapped_column(Float)
    dose_avoided_basis: Mapped[str | None] = mapped_column(String(200))  # prior <uid> | typical (<basis>)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AlertEvent(Base):
    """Every step of an alert (created, re-checked, acknowledged, overridden, cancelled, CDS feedback): who, why."""

    __tablename__ = "alert_event"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alert.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(30))  # created | rechecked | acknowledged | overridden | cancelled ...
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict | None] = mapped_column(JSONType)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UnattachedOrderIdentifier(Base):
    """A patient identifier named by an order recorded before the MPI knew its patient (no source record).

    Identifiers are kept as the MPI looks them up: an NHS number as ten digits under the NHS number system, any other
    identifier under its canonical namespace (a trust's FHIR system). Once identity arrives, a check of the patient
    finds the order through ``(system, value)`` and the patient's source records, hangs it on the record that carries
    the identifier, and deletes these rows.
    """

    __tablename__ = "unattached_order_identifier"
    __table_args__ = (Index("ix_unattached_order_identifier_value_system", "value", "system"),)
    order_id: Mapped[int] = mapped_column(ForeignKey("imaging_order.id", ondelete="CASCADE"), primary_key=True)
    system: Mapped[str] = mapped_column(String(300), primary_key=True)
    value: Mapped[str] = mapped_column(String(200), primary_key=True)
