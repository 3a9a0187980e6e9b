"""The golden record: a regional patient's best-known demographics, from its active source records (PAS/FHIR
before DICOM headers, a verified NHS number first, then the most recent)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, Date, text
from sqlalchemy.orm import Session

from mpi.store_writer import StoreWriter
from priorscan.db import UTCDateTime, utcnow

_GOLDEN_SQL = text(
    "SELECT family, given, birth_date, sex, postcode, address, nhs_number, nhs_number_valid, nhs_verification, "
    "provisional, last_event_at, updated_at, created_at FROM source_record "
    "WHERE regional_patient_id = :rid AND active").columns(
    birth_date=Date(), last_event_at=UTCDateTime(), updated_at=UTCDateTime(), created_at=UTCDateTime(),
    nhs_number_valid=Boolean(), provisional=Boolean())


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
    """Keeps each regional patient's golden record up to date, in statements through the store writer (the patient
    row is never written through the ORM; a patient the session holds is read again)."""

    def __init__(self, session: Session, writer: StoreWriter) -> None:
        self.session = session
        self.writer = writer

    def members(self, regional_id: str) -> list[Any]:
        """The active records of a patient, as the golden record reads them."""
        return list(self.session.execute(_GOLDEN_SQL, {"rid": regional_id}).all())

    def refresh(self, regional_id: str) -> None:
        """The patient's golden record from its active records (:func:`golden_values`), and its status active; a
        patient left without active records keeps its golden record (retired, if a merge retired it)."""
        members = self.members(regional_id)
        if members:
            self.writer.update_patient(regional_id, {"status": "active", "updated_at": utcnow(),
                                                     **golden_values(members)})
        else:
            self.writer.retire_emptied_patient(regional_id)


__all__ = ["GoldenRecords", "Member", "golden_values"]
