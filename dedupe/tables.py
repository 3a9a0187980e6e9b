"""Storage of duplicate-check alerts and their lifecycle (the IR(ME)R justification record)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from priorscan.db import Base, JSONType, UTCDateTime, utcnow
from priorscan.tables import BigId


class Alert(Base):
    """A warning raised for a request: open → acknowledged | overridden | cancelled."""

    __tablename__ = "alert"
    __table_args__ = (Index("ix_alert_status_trust", "status", "requesting_trust", "created_at"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # uuid4
    regional_patient_id: Mapped[str | None] = mapped_column(String(24), index=True)
    identity: Mapped[str] = mapped_column(String(12))  # confirmed | probable | unknown
    requesting_trust: Mapped[str | None] = mapped_column(String(10))
    placer_order_number: Mapped[str | None] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(30))  # api | cds-hooks | hl7 | fhir
    verdict: Mapped[str] = mapped_column(String(10))  # warning | info
    request: Mapped[dict] = mapped_column(JSONType)  # the normalised request (no names)
    priors: Mapped[list] = mapped_column(JSONType)  # the priors shown, as returned
    rules_version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="open")
    reason_system: Mapped[str | None] = mapped_column(String(200))
    reason_code: Mapped[str | None] = mapped_column(String(64))
    reason_display: Mapped[str | None] = mapped_column(String(300))
    comment: Mapped[str | None] = mapped_column(Text)
    acted_by: Mapped[str | None] = mapped_column(String(200))
    acted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dose_avoided_msv: Mapped[float | None] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlertEvent(Base):
    """Every transition of an alert, who made it and why."""

    __tablename__ = "alert_event"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alert.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict | None] = mapped_column(JSONType)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
