"""A patient as an HL7 v2 message names them: PID (and MRG) as source-record keys and demographics.

Every message that names a patient (ADT, ORU, ORM/OMI) reads its PID here, so that a registration, an order and its
result name one patient alike. Pure: the message comes read (:func:`priorscan.hl7v2.parse_message`), nothing is
stored.

Conventions of real PAS feeds handled here (REFERENCE.md):

- PID-3 repeats: the NHS number (CX.5 ``NH``, or CX.4 ``NHS``: :mod:`priorscan.hl7v2.tables`) and hospital numbers
  (CX.5 ``MR``) qualified by the trust's ODS code or alias in CX.4 (assigning authority) *or* CX.6 (assigning
  facility); an unqualified number belongs to the sending facility (MSH-4). PID-2 (v2.3 "external id") is read the
  same way.
- NHS number verification status: PID-32 (``NSTS01`` or ``01``), or a Z-segment (see :data:`Z_STATUS_SEGMENTS`).
- ``""`` in a field (or component) deletes the value; an empty field means *not sent* and keeps what is known.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from mpi.records import DELETE, Demographics, RecordKey
from priorscan.hl7v2 import (
    CX,
    LOCAL_PATIENT_TYPES,
    NHS_NUMBER_TYPES,
    NOT_PATIENT_TYPES,
    NULL,
    XAD,
    XPN,
    XTN,
    Composite,
    MessageError,
    Segment,
    administrative_sex,
    is_nhs_number_authority,
)
from priorscan.trusts import Trust, TrustRegistry

_STATUS = re.compile(r"^(?:NSTS)?(0[1-8])$")
_NSTS = re.compile(r"^NSTS(0[1-8])$")
#: Z-segments where a bare verification code ("01".."08") is read as the NHS number status; ``NSTSnn`` is read
#: from any Z-segment. Extend when a trust's interface specification names another segment.
Z_STATUS_SEGMENTS = frozenset({"ZPI", "ZPD", "ZU1"})
_POSTCODE = re.compile(r"^([A-Z]{1,2}\d[A-Z\d]?)\s*(\d[A-Z]{2})$")
_ODS_SITE = re.compile(r"^[A-Z0-9]{3}[A-Z0-9]{2}$")


class AdtError(MessageError):
    """A message naming a patient in a way that cannot be applied, with the location of the fault."""


def _leaf(text: str) -> str | None:
    """An unescaped value: None when not sent, ``DELETE`` for the HL7 null, else the text."""
    if not text:
        return None
    return DELETE if text == NULL else text


# --- identifiers ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PatientIdentifier:
    """One CX of PID-3 (or PID-2, MRG-1), classified."""

    value: str
    type_code: str
    namespace: str | None  # canonical namespace; None for the NHS number
    trust: Trust | None
    is_nhs_number: bool
    qualified: bool  # the authority was named in the identifier itself, not taken from MSH-4


def resolve_trust(trusts: TrustRegistry, name: str | None) -> Trust | None:
    """The trust ``name`` denotes: an ODS code or alias, or a five-character ODS *site* code of the trust (``RTK01``:
    site 01 of RTK), which PAS systems often put in MSH-4 or an assigning facility."""
    trust = trusts.resolve(name)
    if trust is None and name and _ODS_SITE.match(name.strip().upper()):
        candidate = trusts.resolve(name.strip()[:3])
        if candidate is not None and candidate.ods == name.strip()[:3].upper():
            return candidate
    return trust


@dataclass(frozen=True)
class PatientContext:
    """What every PID of a message is read against: the consortium, the sender, the message's time."""

    trusts: TrustRegistry
    sender: Trust | None  # the trust MSH-4 names
    sending_facility: str  # MSH-4 as sent
    event_at: datetime | None = None


def read_identifier(c: Composite, ctx: PatientContext) -> PatientIdentifier | None:
    """Classify one CX; None when it holds no usable identifier (empty, ``""``, or an account/visit number)."""
    cx = CX.of(c)
    value = _leaf(cx.id)
    if not value:
        return None
    type_code = cx.identifier_type if cx.identifier_type != NULL else ""
    authorities = cx.assigning_authority.names
    facilities = cx.assigning_facility.names
    if type_code in NHS_NUMBER_TYPES or any(is_nhs_number_authority(a) for a in authorities):
        return PatientIdentifier(value.replace(" ", ""), type_code, None, None, True, True)
    if type_code in NOT_PATIENT_TYPES:
        return None
    trusts = ctx.trusts
    trust = next((t for t in (resolve_trust(trusts, a) for a in authorities + facilities) if t is not None), None)
    if trust is not None:
        return PatientIdentifier(value, type_code, trust.fhir_system, trust, False, True)
    if authorities:  # an authority that is not a trust: its own namespace (an OID when the HD says ISO)
        universal = _leaf(cx.assigning_authority.universal_id)
        kind = cx.assigning_authority.universal_id_type.upper()
        namespace = f"urn:oid:{universal}" if universal and kind == "ISO" else trusts.namespace(authorities[0])
        return PatientIdentifier(value, type_code, namespace, None, False, True)
    if facilities:
        return PatientIdentifier(value, type_code, trusts.namespace(facilities[0]), None, False, True)
    if type_code not in LOCAL_PATIENT_TYPES:
        return PatientIdentifier(value, type_code, None, None, False, False)  # typed but unqualified: unusable
    if ctx.sender is not None:  # an unqualified hospital number belongs to the sending trust (MSH-4)
        return PatientIdentifier(value, type_code, ctx.sender.fhir_system, ctx.sender, False, False)
    facility = ctx.sending_facility
    return PatientIdentifier(value, type_code, trusts.namespace(facility) if facility else None, None, False, False)


def read_identifiers(reps: Sequence[Composite], ctx: PatientContext) -> list[PatientIdentifier]:
    """The usable identifiers among the repetitions of a CX field."""
    return [i for i in (read_identifier(c, ctx) for c in reps) if i is not None]


def record_key(identifiers: Sequence[PatientIdentifier], sender: Trust | None) -> PatientIdentifier | None:
    """The identifier that keys the source record: the sending trust's hospital number first."""
    local = [i for i in identifiers if not i.is_nhs_number and i.namespace]
    if not local:
        return None

    def rank(i: PatientIdentifier) -> tuple[int, int, int, int]:
        return (int(sender is not None and i.trust == sender), int(i.trust is not None),
                int(i.type_code in ("MR", "MRN")), int(i.qualified))

    best = max(rank(i) for i in local)
    return next(i for i in local if rank(i) == best)


# --- demographics -----------------------------------------------------------------------------------------------

def _chosen(reps: list[Composite], component: int, wanted: tuple[str, ...],
            former: tuple[str, ...] = ()) -> Composite | None:
    """The first repetition of a ``wanted`` type, else the first not of a ``former`` type (a name or an address the
    person no longer goes by), else the first sent."""
    sent = [r for r in reps if not r.is_empty]
    if not sent:
        return None
    types = [r.text(component).upper() for r in sent]
    return next((r for r, t in zip(sent, types, strict=True) if t in wanted),
                next((r for r, t in zip(sent, types, strict=True) if t not in former), sent[0]))


#: HL7 table 0200 name types that are not the person's own current name: maiden, at birth, bad, partner's or spouse's,
#: a coded pseudonym
_FORMER_NAMES = ("M", "B", "BAD", "P", "S")
#: HL7 table 0190 address types that are not where the person lives now: bad, birth delivery location, residence at
#: birth, birth (nee), country of origin
_FORMER_ADDRESSES = ("BA", "BDL", "BR", "N", "F")


def _name(pid: Segment) -> tuple[str | None, str | None, str | None]:
    """(family, given names, prefix) from the legal name, else the first repetition of PID-5 that is not a former
    name (maiden, at birth, a partner's)."""
    if pid.raw(5).strip() == NULL:
        return DELETE, DELETE, DELETE
    chosen = _chosen(pid.repetitions(5), 7, ("L",), _FORMER_NAMES)
    if chosen is None:
        return None, None, None
    name = XPN.of(chosen)
    first = _leaf(name.given)
    if first == DELETE:
        given: str | None = DELETE
    else:
        names = [p for p in (first, _leaf(name.further_given)) if p]
        given = " ".join(" ".join(names).split()) or None
    return _leaf(name.family), given, _leaf(name.prefix)


def _date(pid: Segment, n: int, strict: bool = True) -> date | str | None:
    """PID-``n`` as a date: None when not sent or imprecise (a year or a month), ``DELETE`` for the HL7 null; a value
    that is no date is refused when ``strict``, else read as not sent."""
    value = _leaf(pid.text(n))
    if value is None or value == DELETE:
        return value
    where = pid.location(n)
    digits = re.match(r"^(\d{4})(\d{2})(\d{2})", value)
    if digits is None:
        if re.fullmatch(r"\d{4}(\d{2})?", value) or not strict:
            return None  # an imprecise date (year or month only) says too little to match on
        raise AdtError(f"{where.label} is not an HL7 date", code="hl7.datatype", location=where)
    try:
        return date(int(digits[1]), int(digits[2]), int(digits[3]))
    except ValueError as exc:
        if not strict:
            return None
        raise AdtError(f"{where.label} is not a valid date", code="hl7.datatype", location=where) from exc


def normalise_postcode(value: str) -> str:
    """Upper case with one space before the inward code when it looks like a UK postcode."""
    compact = " ".join(value.upper().split())
    m = _POSTCODE.match(compact)
    return f"{m[1]} {m[2]}" if m else compact


def _address(pid: Segment) -> tuple[str | None, str | None]:
    """(address lines joined with ", ", postcode) from the home address, else the first repetition of PID-11 that is
    not a former or bad address."""
    if pid.raw(11).strip() == NULL:
        return DELETE, DELETE
    chosen = _chosen(pid.repetitions(11), 7, ("H", "HOME"), _FORMER_ADDRESSES)
    if chosen is None:
        return None, None
    address = XAD.of(chosen)
    parts = [_leaf(p) for p in address.lines]
    lines = [p for p in parts if p]
    joined = ", ".join(lines) if lines else (DELETE if any(p == DELETE for p in parts) else None)
    postcode = _leaf(address.postcode)
    if postcode:
        postcode = normalise_postcode(postcode)
    return joined, postcode


def _phone(pid: Segment) -> str | None:
    if pid.raw(13).strip() == NULL:
        return DELETE
    chosen = _chosen(pid.repetitions(13), 2, ("PRN",))
    if chosen is None:
        return None
    phone = XTN.of(chosen)
    for value in (_leaf(phone.number), _leaf(phone.unformatted)):
        if value:
            return value
    return " ".join(p for p in (_leaf(phone.area), _leaf(phone.local)) if p) or None


def _sex(pid: Segment) -> str | None:
    code = _leaf(pid.text(8))
    return code if code is None or code == DELETE else administrative_sex(code)


def _death_date(pid: Segment, strict: bool) -> date | str | None:
    died = _date(pid, 29, strict) if pid.raw(29) else None
    if died is None and (_leaf(pid.text(30)) or "").upper() == "N":
        return DELETE  # "not deceased": a death date sent in error is withdrawn
    return died


def verification_status(pid: Segment, z_segments: Sequence[Segment]) -> str | None:
    """The NHS number verification status (UK Core 01..08) from PID-32 or a Z-segment."""
    for rep in pid.repetitions(32):
        m = _STATUS.match((_leaf(rep.text(1)) or "").upper())
        if m:
            return m[1]
    for seg in z_segments:
        for n in range(1, len(seg.fields)):
            for rep in seg.repetitions(n):
                first = (_leaf(rep.text(1)) or "").upper()
                m = _NSTS.match(first) or (_STATUS.match(first) if seg.name in Z_STATUS_SEGMENTS else None)
                if m:
                    return m[1]
    return None


@dataclass(frozen=True)
class PatientSegment:
    """One PID read: the source record it keys and the demographics it carries."""

    key: RecordKey
    demographics: Demographics
    carries_demographics: bool  # anything beyond identifiers (a name, birth date, address ...)
    sequence: int = 1  # which PID of the message (for error locations)
    identifier: PatientIdentifier | None = None  # the identifier that keys the record, as classified


def read_pid(pid: Segment, ctx: PatientContext, z_segments: Sequence[Segment] = (), *,
             strict: bool = True) -> PatientSegment:
    """One PID segment as the source record it keys and its demographics.

    ``strict`` (registrations) refuses a birth or death date that is not a date; results and orders, which must not
    be lost for it, read it as not sent.

    Raises
    ------
    AdtError
        ``hl7.required`` when PID-3 (and PID-2) hold no local identifier; ``hl7.datatype`` for a date that is not
        one.
    """
    idents = read_identifiers(pid.repetitions(3) + pid.repetitions(2), ctx)
    key = record_key(idents, ctx.sender)
    if key is None or key.namespace is None:
        raise AdtError("PID-3 holds no local patient identifier (hospital number)", code="hl7.required",
                       location=pid.location(3))
    nhs = next((i.value for i in idents if i.is_nhs_number), None)
    if nhs is None and any(r.text(1) == NULL and r.text(5).upper() in NHS_NUMBER_TYPES
                           for r in pid.repetitions(3)):
        nhs = DELETE
    family, given, prefix = _name(pid)
    address, postcode = _address(pid)
    others = [(i.namespace, i.value) for i in idents if i is not key and not i.is_nhs_number and i.namespace]
    demographics = Demographics(
        namespace=key.namespace, local_id=key.value, trust_ods=key.trust.ods if key.trust else None,
        nhs_number=nhs, nhs_verification=verification_status(pid, z_segments),
        family=family, given=given, prefix=prefix, birth_date=_date(pid, 7, strict),
        sex=_sex(pid),
        postcode=postcode, address=address, phone=_phone(pid), death_date=_death_date(pid, strict),
        other_identifiers=list(dict.fromkeys(others)), event_at=ctx.event_at)
    carries = any(getattr(demographics, name) is not None for name in
                  ("family", "given", "birth_date", "sex", "postcode", "address", "phone", "death_date"))
    return PatientSegment(RecordKey(key.namespace, key.value), demographics, carries, pid.sequence, key)


def read_prior_keys(mrg: Segment, ctx: PatientContext) -> tuple[RecordKey, ...]:
    """The source records an MRG segment names (MRG-1 prior identifier list, else MRG-4 prior patient id)."""
    for n in (1, 4):
        idents = [i for i in read_identifiers(mrg.repetitions(n), ctx) if not i.is_nhs_number and i.namespace]
        keys = tuple(dict.fromkeys(RecordKey(i.namespace, i.value) for i in idents if i.namespace))
        if keys:
            return keys
    raise AdtError("MRG-1 holds no prior local patient identifier", code="hl7.required", location=mrg.location(1))


def patient_context(trusts: TrustRegistry, sending_facility: str, event_at: datetime | None = None) -> PatientContext:
    """The context of a message sent by ``sending_facility`` (MSH-4)."""
    return PatientContext(trusts, resolve_trust(trusts, sending_facility), sending_facility, event_at)


__all__ = ["Z_STATUS_SEGMENTS", "AdtError", "PatientContext", "PatientIdentifier", "PatientSegment",
           "normalise_postcode", "patient_context", "read_identifier", "read_identifiers", "read_pid",
           "read_prior_keys", "record_key", "resolve_trust", "verification_status"]
