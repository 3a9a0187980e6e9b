"""The patient banner and the regional identity: who the patient is, for positive identification before exposure.

The banner follows the NHS pattern for clinical systems: family name in capitals, given name, date of birth, NHS
number written 3 3 4 digits, sex. It shows the regional patient whose priors are on the screen, so that a
radiographer who checks it against the patient in front of them checks the priors' owner too. Which trusts know the
patient, with their hospital numbers and how each record was linked, is the regional identity; a record linked as a
possible match, a provisional record, or a check that found the patient only as a possible match is an identity
doubt, stated in words (:func:`identity_doubt`).

Pure formatting here; :func:`read_patient` reads the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from mpi import RegionalPatient, SourceRecord
from priorscan.trusts import TrustRegistry

_SEX = {"female": "Female", "male": "Male", "other": "Other", "unknown": "Unknown"}


def format_nhs_number(value: str | None) -> str | None:
    """An NHS number as people read it, ``943 476 5919`` (None when there is none; anything not ten digits as sent)."""
    if not value:
        return None
    digits = "".join(ch for ch in value if ch.isdigit())
    if len(digits) != 10:
        return value
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


def display_name(family: str | None, given: str | None) -> str:
    """``FAMILY, Given`` as NHS banners write it; ``Name not known`` when neither part is known."""
    parts = [(family or "").strip().upper(), (given or "").strip()]
    if not any(parts):
        return "Name not known"
    if not parts[0]:
        return parts[1]
    return f"{parts[0]}, {parts[1]}" if parts[1] else parts[0]


def display_sex(sex: str | None) -> str:
    return _SEX.get((sex or "").lower(), "Not known")


def age_on(birth: date | None, on: date) -> int | None:
    if birth is None:
        return None
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


@dataclass(frozen=True)
class TrustRecord:
    """The patient as one trust (or other source) knows them."""

    trust: str | None
    trust_name: str | None
    local_id: str
    link_state: str | None  # match | possible-match | no-match
    provisional: bool
    nhs_number: str | None
    nhs_verified: bool
    family: str | None
    given: str | None
    birth_date: date | None

    def as_json(self) -> dict[str, object]:
        return {"trust": self.trust, "trustName": self.trust_name, "hospitalNumber": self.local_id,
                "linkState": self.link_state, "provisional": self.provisional,
                "nhsNumber": format_nhs_number(self.nhs_number), "nhsNumberVerified": self.nhs_verified,
                "name": display_name(self.family, self.given),
                "birthDate": self.birth_date.isoformat() if self.birth_date else None}


@dataclass(frozen=True)
class PatientBanner:
    """What the banner shows, and the regional identity beneath it."""

    regional_id: str
    family: str | None
    given: str | None
    birth_date: date | None
    sex: str | None
    nhs_number: str | None
    nhs_verified: bool
    records: tuple[TrustRecord, ...] = field(default_factory=tuple)

    def hospital_number_at(self, trust: str | None) -> str | None:
        return next((r.local_id for r in self.records if trust and r.trust == trust), None)

    def as_json(self, *, today: date, at_trust: str | None, check_identity: str | None = None) -> dict[str, object]:
        return {
            "regionalPatientId": self.regional_id,
            "name": display_name(self.family, self.given),
            "familyName": self.family, "givenName": self.given,
            "birthDate": self.birth_date.isoformat() if self.birth_date else None,
            "age": age_on(self.birth_date, today),
            "sex": display_sex(self.sex),
            "nhsNumber": format_nhs_number(self.nhs_number),
            "nhsNumberVerified": self.nhs_verified,
            "hospitalNumber": self.hospital_number_at(at_trust),
            "hospitalNumberTrust": at_trust,
            "trusts": sorted({r.trust for r in self.records if r.trust}),
            "records": [r.as_json() for r in self.records],
            "identityDoubt": identity_doubt(check_identity, self.records),
        }


def identity_doubt(check_identity: str | None, records: tuple[TrustRecord, ...] | list[TrustRecord]) -> str | None:
    """A plain statement of why the identity may be wrong, or None when nothing casts doubt on it.

    Parameters
    ----------
    check_identity
        What the duplicate check said about the request's patient (confirmed | probable | unknown), if it ran.
    records
        The patient's records at the trusts.
    """
    reasons: list[str] = []
    if check_identity == "probable":
        reasons.append("The request matched this patient only as a possible match: the priors shown may belong to "
                       "someone else.")
    elif check_identity == "unknown":
        reasons.append("The request's patient was not found in the regional index: no priors could be checked.")
    possible = [r for r in records if r.link_state == "possible-match"]
    if possible:
        where = ", ".join(sorted({r.trust_name or r.trust or "another source" for r in possible}))
        reasons.append(f"The record at {where} is linked to this patient only as a possible match, awaiting review.")
    if any(r.provisional for r in records):
        reasons.append("Some imaging arrived before its patient was registered (a provisional record).")
    numbers = {r.nhs_number for r in records if r.nhs_number}
    if len(numbers) > 1:
        reasons.append("The trusts' records carry different NHS numbers.")
    return " ".join(reasons) or None


def read_patient(session: Session, trusts: TrustRegistry, regional_id: str) -> PatientBanner | None:
    """The banner of a regional patient (following merges) and their records at every trust; None if unknown."""
    current: str | None = regional_id
    patient: RegionalPatient | None = None
    for _ in range(20):  # a chain of merges is short; the bound guards against a cycle
        patient = session.get(RegionalPatient, current)
        if patient is None or patient.status != "retired" or not patient.merged_into_id:
            break
        current = patient.merged_into_id
    if patient is None:
        return None
    rows = session.execute(
        select(SourceRecord.trust_ods, SourceRecord.namespace, SourceRecord.local_id, SourceRecord.link_state,
               SourceRecord.provisional, SourceRecord.nhs_number, SourceRecord.nhs_verification,
               SourceRecord.family, SourceRecord.given, SourceRecord.birth_date)
        .where(SourceRecord.regional_patient_id == patient.id, SourceRecord.active.is_(True))
        .order_by(SourceRecord.trust_ods, SourceRecord.local_id)).all()
    records = []
    for ods, namespace, local_id, link_state, provisional, nhs, verification, family, given, birth in rows:
        trust = trusts.resolve(ods) if ods else trusts.resolve(namespace)
        records.append(TrustRecord(trust.ods if trust else ods, trust.name if trust else None, local_id, link_state,
                                   bool(provisional), nhs, verification == "01", family, given, birth))
    verified = bool(patient.nhs_number) and any(r.nhs_verified and r.nhs_number == patient.nhs_number
                                                for r in records)
    return PatientBanner(patient.id, patient.family, patient.given, patient.birth_date, patient.sex,
                         patient.nhs_number, verified, tuple(records))
