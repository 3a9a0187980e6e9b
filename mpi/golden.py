"""The golden record: a regional patient's best-known demographics, from its active source records (PAS/FHIR
before DICOM headers, a verified NHS number first, then the most recent)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, Date, bindparam, text
from sqlalchemy.orm import Session

from mpi.store_writer import StoreWriter, expire_held_patient
from mpi.tables import RegionalPatient, table_of
from priorscan.db import UTCDateTime, utcnow

_GOLDEN_SQL = text(
    "SELECT family, given, birth_date, sex, postcode, address, nhs_number, nhs_number_valid, nhs_verification, "
    "provisional, last_event_at, updated_at, created_at FROM source_record "
    "WHERE regional_patient_id = :rid AND active").columns(
    birth_date=Date(), last_event_at=UTCDateTime(), updated_at=UTCDateTime(), created_at=UTCDateTime(),
    nhs_number_valid=Boolean(), provisional=Boolean())

_PATIENTS = table_of(RegionalPatient)

_RETIRE_EMPTY = _PATIENTS.update().where(_PATIENTS.c.id == bindparam("rid"),
                                         _PATIENTS.c.merged_into_id.is_not(None)).values(status="retired")


@dataclass
class Member:
    """A record not yet read back from the store, as the golden record needs it."""

    values: dict[str, Any]
    provisional: bool
    last_event_at: datetime
    updated_at: datetime | None = None
    created_at: datetime | None = None

    def __getattr__(self, name: str) -> Any:
        return self.values.get(name)


def golden_values(members: Sequence[Any]) -> dict[str, Any]:
    """Best-known demographics: PAS/FHIR before provisional (DICOM headers), verified NHS number first, then the
    most recent; each field from the best record that has it."""

    def quality(r: Any) -> tuple[int, int, datetime]:
        stamp = r.last_event_at or r.updated_at or r.created_at or utcnow()
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return (0 if r.provisional else 1, 1 if r.nhs_verification == "01" else 0, stamp)

    ranked = sorted(members, key=quality, reverse=True)
    golden = {name: next((getattr(r, name) for r in ranked if getattr(r, name)), None)
              for name in ("family", "given", "birth_date", "sex", "postcode", "address")}
    valid = [r for r in ranked if r.nhs_number and r.nhs_number_valid]
    golden["nhs_number"] = valid[0].nhs_number if valid else None
    return golden


class GoldenRecords:
    """Keeps each regional patient's golden record up to date, through the ORM (:meth:`refresh`, for paths that
    hold the patient) or in plain statements through the store writer (:meth:`refresh_rows`)."""

    def __init__(self, session: Session, writer: StoreWriter) -> None:
        self.session = session
        self.writer = writer

    def members(self, regional_id: str) -> list[Any]:
        """The active records of a patient, as the golden record reads them."""
        return list(self.session.execute(_GOLDEN_SQL, {"rid": regional_id}).all())

    def refresh(self, regional_id: str) -> None:
        """Best-known demographics: verified NHS number first, then recency, PAS/FHIR before DICOM headers."""
        patient = self.session.get(RegionalPatient, regional_id)
        if patient is None:
            return
        members = self.members(regional_id)
        if not members:
            patient.status = "retired" if patient.merged_into_id else patient.status
            return
        self.set_from(patient, members)

    @staticmethod
    def set_from(patient: RegionalPatient, members: Sequence[Any]) -> None:
        """Set the golden record of a patient the session holds from ``members`` (rows or source records)."""
        for name, value in golden_values(members).items():
            setattr(patient, name, value)
        patient.status = "active"
        patient.updated_at = utcnow()

    def refresh_rows(self, regional_id: str) -> None:
        """:meth:`refresh` in plain statements, for the paths that hold no ORM patient."""
        members = self.members(regional_id)
        if members:
            self.writer.update_patient(regional_id, {"status": "active", "updated_at": utcnow(),
                                                     **golden_values(members)})
            return
        self.session.execute(_RETIRE_EMPTY, {"rid": regional_id})
        expire_held_patient(self.session, regional_id)


__all__ = ["GoldenRecords", "Member", "golden_values"]
