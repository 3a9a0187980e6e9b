"""Demographics as a source sends them, before normalisation: the input of every identity operation.

``None`` means *not sent* (keep what is known); the empty string ``""`` means *sent empty on purpose* (HL7 ``""``),
which deletes the value.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import date, datetime

DELETE = ""

_REGIONAL_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_regional_id() -> str:
    """A new regional patient's id: ``RP`` and ten characters that cannot be misread (no I, O, 0, 1)."""
    return "RP" + "".join(secrets.choice(_REGIONAL_ALPHABET) for _ in range(10))


def new_regional_ids(count: int) -> list[str]:
    """``count`` new regional ids as :func:`new_regional_id` makes them (each character uniform over the 32 of the
    alphabet), drawn at once for a batch relink: five random bits per character, 50 per id."""
    random = secrets.token_bytes(7 * count)
    out = []
    for start in range(0, 7 * count, 7):
        bits = int.from_bytes(random[start:start + 7], "big")
        out.append("RP" + "".join([_REGIONAL_ALPHABET[(bits >> shift) & 31] for shift in range(0, 50, 5)]))
    return out


def pair_key(a: int, b: int) -> tuple[int, int]:
    """Two records' ids in the order a manual decision stores them."""
    return (a, b) if a < b else (b, a)


@dataclass
class Demographics:
    """One patient as one source describes them in one message or resource."""

    namespace: str  # canonical identifier namespace (a trust's FHIR system, or another system)
    local_id: str
    trust_ods: str | None = None
    nhs_number: str | None = None
    nhs_verification: str | None = None  # UK Core verification status code 01..08
    family: str | None = None
    given: str | None = None  # all given names, space separated
    prefix: str | None = None
    birth_date: date | str | None = None  # a date, or "" to delete
    sex: str | None = None  # male | female | other | unknown
    postcode: str | None = None
    address: str | None = None
    phone: str | None = None
    death_date: date | str | None = None
    other_identifiers: list[tuple[str, str]] = field(default_factory=list)  # (system, value)
    event_at: datetime | None = None  # when the source made this version (for out-of-order updates)

    def as_json(self) -> dict[str, object]:
        """The demographics as a JSON-able dict (for version history)."""
        out: dict[str, object] = {}
        for key, value in self.__dict__.items():
            if value is None:
                continue
            if isinstance(value, date | datetime):
                value = value.isoformat()
            out[key] = value
        return out


@dataclass(frozen=True)
class RecordKey:
    """A source record's key: ``(namespace, local_id)``."""

    namespace: str
    local_id: str
