"""HL7 v2 ADT as identity operations: reading PID/MRG into :class:`~mpi.records.Demographics` and applying them.

Reading (:func:`read_adt`) is pure: it turns the text of one message into an :class:`AdtMessage` (which operation,
which source records, what demographics) or raises :class:`AdtError` naming the segment and field at fault.
Applying (:func:`apply_adt`) hands that to :class:`~mpi.service.PatientIndex`; it never commits.

Fields are read straight from the ER7 text rather than through hl7apy's object tree: building that tree costs about
7 ms per ADT message here, which alone would cap a feed at ~140 messages a second (see BENCHMARKS.md, Feeds); the
segments this module reads are few and their layout has not moved between versions 2.3 and 2.5.1.

Conventions of real PAS feeds handled here (REFERENCE.md):

- PID-3 repeats: the NHS number (CX.5 ``NH``, or CX.4 ``NHS``) and hospital numbers (CX.5 ``MR``) qualified by the
  trust's ODS code or alias in CX.4 (assigning authority) *or* CX.6 (assigning facility); an unqualified number
  belongs to the sending facility (MSH-4). PID-2 (v2.3 "external id") is read the same way.
- NHS number verification status: PID-32 (``NSTS01`` or ``01``), or a Z-segment (see :data:`Z_STATUS_SEGMENTS`).
- ``""`` in a field (or component) deletes the value; an empty field means *not sent* and keeps what is known.
- Escape sequences (``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\``, hex ``\\Xhh\\``) are unescaped after splitting.
- Message time for out-of-order protection: EVN-2, else MSH-7.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from mpi.records import DELETE, Demographics, RecordKey
from mpi.service import PatientIndex
from priorscan.errors import HL7Error
from priorscan.hl7v2 import MessageHeader, normalise_segments, parse_ts
from priorscan.trusts import NHS_NUMBER_SYSTEM, Trust, TrustRegistry

UPSERT, MERGE, LINK, UNLINK, CHANGE_ID = "upsert", "merge", "link", "unlink", "change-identifier"

#: Trigger events and the identity operation each one is. Events that carry a PID but move no identity (admit,
#: transfer, discharge and their cancellations) update demographics: a PAS sends its current view in each of them.
OPERATIONS: dict[str, str] = {
    **{t: UPSERT for t in ("A01", "A02", "A03", "A04", "A05", "A06", "A07", "A08", "A11", "A12", "A13", "A14",
                           "A28", "A31", "A38")},
    **{t: MERGE for t in ("A18", "A34", "A36", "A39", "A40")},
    "A24": LINK,
    "A37": UNLINK,
    **{t: CHANGE_ID for t in ("A46", "A47")},
}

HL7_NULL = '""'
_NHS_AUTHORITIES = {"NHS", "NHSNBR", "NHSNO", "NHS-NUMBER", "2.16.840.1.113883.2.1.4.1", NHS_NUMBER_SYSTEM.upper()}
_NHS_TYPES = {"NH", "NHS", "NHSNBR"}
_LOCAL_TYPES = {"MR", "PI", "PT", "MRN", "HN", "LR", ""}
_NOT_PATIENT_TYPES = {"AN", "VN", "VI", "AM", "ANON"}  # account, visit and anonymous numbers name no person
_STATUS = re.compile(r"^(?:NSTS)?(0[1-8])$")
_NSTS = re.compile(r"^NSTS(0[1-8])$")
#: Z-segments where a bare verification code ("01".."08") is read as the NHS number status; ``NSTSnn`` is read
#: from any Z-segment. Extend when a trust's interface specification names another segment.
Z_STATUS_SEGMENTS = frozenset({"ZPI", "ZPD", "ZU1"})
_SEX = {"M": "male", "F": "female", "U": "unknown", "O": "other", "A": "other", "N": "unknown", "I": "other",
        "MALE": "male", "FEMALE": "female", "UNKNOWN": "unknown", "OTHER": "other", "1": "male", "2": "female",
        "9": "unknown", "0": "unknown"}
_POSTCODE = re.compile(r"^([A-Z]{1,2}\d[A-Z\d]?)\s*(\d[A-Z]{2})$")
_ODS_SITE = re.compile(r"^[A-Z0-9]{3}[A-Z0-9]{2}$")
_ESCAPE_FORMATTING = {".br": " ", ".sp": " ", ".in": " ", ".ti": " ", ".sk": " ", ".ce": " ", ".fi": "", ".nf": "",
                      "H": "", "N": ""}


class AdtError(HL7Error):
    """An ADT message that cannot be applied, with the HL7 error location (ERL, e.g. ``PID^1^7``)."""

    def __init__(self, message: str, *, code: str, location: str = "") -> None:
        super().__init__(message, code=code)
        self.location = location


# --- ER7 text ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Delimiters:
    """The message's delimiters, from MSH-1 and MSH-2."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @classmethod
    def of(cls, header: MessageHeader) -> Delimiters:
        enc = header.encoding_characters
        return cls(header.field_separator, enc[0] if enc else "^", enc[1] if len(enc) > 1 else "~",
                   enc[2] if len(enc) > 2 else "\\", enc[3] if len(enc) > 3 else "&")

    def unescape(self, value: str) -> str:
        """``value`` with HL7 escape sequences replaced by the characters they stand for."""
        esc = self.escape
        if esc not in value:
            return value
        out: list[str] = []
        i = 0
        while i < len(value):
            start = value.find(esc, i)
            end = value.find(esc, start + 1) if start >= 0 else -1
            if start < 0 or end < 0:
                out.append(value[i:])
                break
            out.append(value[i:start])
            out.append(self._sequence(value[start + 1:end]))
            i = end + 1
        return "".join(out)

    def _sequence(self, code: str) -> str:
        simple = {"F": self.field, "S": self.component, "T": self.subcomponent, "R": self.repetition,
                  "E": self.escape}
        if code in simple:
            return simple[code]
        if code in _ESCAPE_FORMATTING or code[:3] in _ESCAPE_FORMATTING:
            return _ESCAPE_FORMATTING.get(code, _ESCAPE_FORMATTING.get(code[:3], ""))
        if code.startswith("X") and re.fullmatch(r"X(?:[0-9A-Fa-f]{2})+", code):
            raw = bytes.fromhex(code[1:])
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                return raw.decode("latin-1")
        return ""  # character-set switches (\Cxxyy\, \Mxxyyzz\) and local escapes carry no text of their own


@dataclass(frozen=True)
class Segment:
    """One segment as a list of raw fields; ``fields[n]`` is SEG-n (MSH-1 is the field separator)."""

    name: str
    fields: tuple[str, ...]

    def raw(self, n: int) -> str:
        return self.fields[n] if 0 < n < len(self.fields) else ""


def split_segments(text: str, delimiters: Delimiters) -> list[Segment]:
    """The segments of a message (CR, LF or CRLF segment ends; MLLP framing stripped)."""
    out = []
    for line in normalise_segments(text).split("\r"):
        parts = line.split(delimiters.field)
        name = parts[0].strip().upper()
        fields = ([name, delimiters.field, *parts[1:]] if name == "MSH" else [name, *parts[1:]])
        out.append(Segment(name, tuple(fields)))
    return out


def _repetitions(raw: str, d: Delimiters) -> list[str]:
    return [r for r in raw.split(d.repetition)] if raw else []


def _component(raw: str, n: int, d: Delimiters, sub: int = 1) -> str:
    """Component ``n`` (1-based) of one repetition, its sub-component ``sub``, still escaped."""
    parts = raw.split(d.component)
    if n > len(parts):
        return ""
    subs = parts[n - 1].split(d.subcomponent)
    return subs[sub - 1] if sub <= len(subs) else ""


def _text(raw: str, d: Delimiters) -> str | None:
    """A leaf value: None when empty (not sent), ``DELETE`` for ``""``, else unescaped text."""
    value = raw.strip()
    if not value:
        return None
    if value == HL7_NULL:
        return DELETE
    return d.unescape(value).strip() or None


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


def read_identifier(raw: str, d: Delimiters, trusts: TrustRegistry, sender: Trust | None,
                    sending_facility: str) -> PatientIdentifier | None:
    """Classify one CX; None when it holds no usable identifier (empty, ``""``, or an account/visit number)."""
    value = _text(_component(raw, 1, d), d)
    if not value:
        return None
    type_code = (_text(_component(raw, 5, d), d) or "").upper()
    authorities = [a for a in (_text(_component(raw, 4, d, s), d) for s in (1, 2)) if a]
    facilities = [a for a in (_text(_component(raw, 6, d, s), d) for s in (1, 2)) if a]
    named = authorities + facilities
    if type_code in _NHS_TYPES or any(a.upper() in _NHS_AUTHORITIES for a in authorities):
        return PatientIdentifier(value.replace(" ", ""), type_code, None, None, True, True)
    if type_code in _NOT_PATIENT_TYPES:
        return None
    trust = next((t for t in (resolve_trust(trusts, a) for a in named) if t is not None), None)
    if trust is not None:
        return PatientIdentifier(value, type_code, trust.fhir_system, trust, False, True)
    if authorities:  # an authority that is not a trust: its own namespace (an OID when the HD says ISO)
        universal = _text(_component(raw, 4, d, 2), d)
        kind = (_text(_component(raw, 4, d, 3), d) or "").upper()
        namespace = f"urn:oid:{universal}" if universal and kind == "ISO" else trusts.namespace(authorities[0])
        return PatientIdentifier(value, type_code, namespace, None, False, True)
    if facilities:
        return PatientIdentifier(value, type_code, trusts.namespace(facilities[0]), None, False, True)
    if type_code not in _LOCAL_TYPES:
        return PatientIdentifier(value, type_code, None, None, False, False)  # typed but unqualified: unusable
    if sender is not None:  # an unqualified hospital number belongs to the sending trust (MSH-4)
        return PatientIdentifier(value, type_code, sender.fhir_system, sender, False, False)
    return PatientIdentifier(value, type_code, trusts.namespace(sending_facility) if sending_facility else None,
                             None, False, False)


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


# --- one PID ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PatientSegment:
    """One PID read: the source record it keys and the demographics it carries."""

    key: RecordKey
    demographics: Demographics
    carries_demographics: bool  # anything beyond identifiers (a name, birth date, address ...)


@dataclass(frozen=True)
class AdtContext:
    """What every PID of a message is read against."""

    delimiters: Delimiters
    trusts: TrustRegistry
    sender: Trust | None
    sending_facility: str
    event_at: datetime | None


def _identifiers(raws: Sequence[str], ctx: AdtContext) -> list[PatientIdentifier]:
    found = []
    for raw in raws:
        ident = read_identifier(raw, ctx.delimiters, ctx.trusts, ctx.sender, ctx.sending_facility)
        if ident is not None:
            found.append(ident)
    return found


def _name(raw: str, d: Delimiters) -> tuple[str | None, str | None, str | None]:
    """(family, given names, prefix) from the legal name, else the first repetition of PID-5."""
    if raw.strip() == HL7_NULL:
        return DELETE, DELETE, DELETE
    reps = [r for r in _repetitions(raw, d) if r.strip()]
    if not reps:
        return None, None, None
    chosen = next((r for r in reps if _component(r, 7, d).strip().upper() == "L"), reps[0])
    family = _text(_component(chosen, 1, d), d)
    given_parts = [_text(_component(chosen, n, d), d) for n in (2, 3)]
    if given_parts[0] == DELETE:
        given: str | None = DELETE
    else:
        names = [p for p in given_parts if p and p != DELETE]
        given = " ".join(" ".join(names).split()) or None
    return family, given, _text(_component(chosen, 5, d), d)


def _birth_date(raw: str, d: Delimiters, location: str) -> date | str | None:
    value = _text(_component(raw, 1, d), d)
    if value is None or value == DELETE:
        return value
    digits = re.match(r"^(\d{4})(\d{2})(\d{2})", value)
    if digits is None:
        if re.fullmatch(r"\d{4}(\d{2})?", value):
            return None  # an imprecise date (year or month only) says too little to match on
        raise AdtError(f"{_label(location)} is not an HL7 date", code="hl7.datatype", location=location)
    try:
        return date(int(digits[1]), int(digits[2]), int(digits[3]))
    except ValueError as exc:
        raise AdtError(f"{_label(location)} is not a valid date", code="hl7.datatype", location=location) from exc


def _label(location: str) -> str:
    """``PID-7`` for the ERL ``PID^1^7`` (delimiters would be escaped in MSA-3)."""
    parts = location.split("^")
    return f"{parts[0]}-{parts[2]}" if len(parts) > 2 else location


def _sex(raw: str, d: Delimiters) -> str | None:
    value = _text(_component(raw, 1, d), d)
    if value is None or value == DELETE:
        return value
    return _SEX.get(value.upper(), "unknown")


def normalise_postcode(value: str) -> str:
    """Upper case with one space before the inward code when it looks like a UK postcode."""
    compact = " ".join(value.upper().split())
    m = _POSTCODE.match(compact)
    return f"{m[1]} {m[2]}" if m else compact


def _address(raw: str, d: Delimiters) -> tuple[str | None, str | None]:
    """(address lines joined with ", ", postcode) from the home address, else the first repetition of PID-11."""
    if raw.strip() == HL7_NULL:
        return DELETE, DELETE
    reps = [r for r in _repetitions(raw, d) if r.strip()]
    if not reps:
        return None, None
    chosen = next((r for r in reps if _component(r, 7, d).strip().upper() in ("H", "HOME")), reps[0])
    parts = [_text(_component(chosen, n, d), d) for n in (1, 2, 3, 4)]
    lines = [p for p in parts if p and p != DELETE]
    address = ", ".join(lines) if lines else (DELETE if any(p == DELETE for p in parts) else None)
    postcode = _text(_component(chosen, 5, d), d)
    if postcode and postcode != DELETE:
        postcode = normalise_postcode(postcode)
    return address, postcode


def _phone(raw: str, d: Delimiters) -> str | None:
    if raw.strip() == HL7_NULL:
        return DELETE
    reps = [r for r in _repetitions(raw, d) if r.strip()]
    if not reps:
        return None
    chosen = next((r for r in reps if _component(r, 2, d).strip().upper() == "PRN"), reps[0])
    for value in (_text(_component(chosen, 1, d), d), _text(_component(chosen, 12, d), d)):
        if value:
            return value
    area, local = _text(_component(chosen, 6, d), d), _text(_component(chosen, 7, d), d)
    return " ".join(p for p in (area, local) if p and p != DELETE) or None


def _death_date(pid: Segment, d: Delimiters) -> date | str | None:
    died = _birth_date(pid.raw(29), d, "PID^1^29") if pid.raw(29) else None
    if died is None and (_text(pid.raw(30), d) or "").upper() == "N":
        return DELETE  # "not deceased": a death date sent in error is withdrawn
    return died


def verification_status(pid: Segment, z_segments: Sequence[Segment], d: Delimiters) -> str | None:
    """The NHS number verification status (UK Core 01..08) from PID-32 or a Z-segment."""
    for rep in _repetitions(pid.raw(32), d):
        m = _STATUS.match((_text(_component(rep, 1, d), d) or "").upper())
        if m:
            return m[1]
    for seg in z_segments:
        for raw in seg.fields[1:]:
            for rep in _repetitions(raw, d):
                first = (_text(_component(rep, 1, d), d) or "").upper()
                m = _NSTS.match(first) or (_STATUS.match(first) if seg.name in Z_STATUS_SEGMENTS else None)
                if m:
                    return m[1]
    return None


def read_pid(pid: Segment, ctx: AdtContext, z_segments: Sequence[Segment] = (), *,
             index: int = 1) -> PatientSegment:
    """One PID segment as the source record it keys and its demographics."""
    d = ctx.delimiters
    idents = _identifiers(_repetitions(pid.raw(3), d) + _repetitions(pid.raw(2), d), ctx)
    key = record_key(idents, ctx.sender)
    if key is None or key.namespace is None:
        raise AdtError("PID-3 holds no local patient identifier (hospital number)", code="hl7.required",
                       location=f"PID^{index}^3")
    nhs = next((i.value for i in idents if i.is_nhs_number), None)
    if nhs is None and any(_text(_component(r, 1, d), d) == DELETE and
                           (_component(r, 5, d).upper() in _NHS_TYPES) for r in _repetitions(pid.raw(3), d)):
        nhs = DELETE
    family, given, prefix = _name(pid.raw(5), d)
    address, postcode = _address(pid.raw(11), d)
    others = [(i.namespace, i.value) for i in idents if i is not key and not i.is_nhs_number and i.namespace]
    demographics = Demographics(
        namespace=key.namespace, local_id=key.value, trust_ods=key.trust.ods if key.trust else None,
        nhs_number=nhs, nhs_verification=verification_status(pid, z_segments, d),
        family=family, given=given, prefix=prefix, birth_date=_birth_date(pid.raw(7), d, f"PID^{index}^7"),
        sex=_sex(pid.raw(8), d), postcode=postcode, address=address, phone=_phone(pid.raw(13), d),
        death_date=_death_date(pid, d), other_identifiers=list(dict.fromkeys(others)), event_at=ctx.event_at)
    carries = any(getattr(demographics, name) is not None for name in
                  ("family", "given", "birth_date", "sex", "postcode", "address", "phone", "death_date"))
    return PatientSegment(RecordKey(key.namespace, key.value), demographics, carries)


def read_prior_keys(mrg: Segment, ctx: AdtContext, *, index: int = 1) -> tuple[RecordKey, ...]:
    """The source records an MRG segment names (MRG-1 prior identifier list, else MRG-4 prior patient id)."""
    d = ctx.delimiters
    for n in (1, 4):
        idents = [i for i in _identifiers(_repetitions(mrg.raw(n), d), ctx) if not i.is_nhs_number and i.namespace]
        keys = tuple(dict.fromkeys(RecordKey(i.namespace, i.value) for i in idents if i.namespace))
        if keys:
            return keys
    raise AdtError("MRG-1 holds no prior local patient identifier", code="hl7.required", location=f"MRG^{index}^1")


# --- one message ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class IdentityChange:
    """A PID and the prior records its MRG names (merge, change of identifier)."""

    patient: PatientSegment
    prior: tuple[RecordKey, ...]


@dataclass(frozen=True)
class AdtMessage:
    """What an ADT message asks of the index."""

    trigger: str
    operation: str  # upsert | merge | link | unlink | change-identifier
    patients: tuple[PatientSegment, ...]
    changes: tuple[IdentityChange, ...] = ()

    @property
    def event(self) -> str:
        return f"ADT^{self.trigger}"


def read_adt(text: str, header: MessageHeader, trusts: TrustRegistry) -> AdtMessage:
    """Read an ADT message (its header already read) into the identity operation it asks for.

    Parameters
    ----------
    text
        The message, CR- or LF-separated, MLLP framing allowed.
    header
        Its MSH fields (:func:`priorscan.hl7v2.read_header`).
    trusts
        Resolves ODS codes and HL7 assigning-authority aliases to identifier namespaces.

    Raises
    ------
    AdtError
        With code ``hl7.unsupported-event`` (ERR 201), ``hl7.segment`` (100), ``hl7.required`` (101) or
        ``hl7.datatype`` (102) and the location of the fault; the message never names patient data.
    """
    trigger = header.trigger_event.upper()
    operation = OPERATIONS.get(trigger)
    if operation is None:
        raise AdtError(f"ADT event {trigger or '(none)'} is not supported", code="hl7.unsupported-event",
                       location="MSH^1^9^2")
    d = Delimiters.of(header)
    segments = split_segments(text, d)
    evn = next((s for s in segments if s.name == "EVN"), None)
    event_at = (parse_ts(d.unescape(_component(evn.raw(2), 1, d))) if evn else None) or header.timestamp
    ctx = AdtContext(d, trusts, resolve_trust(trusts, header.sending_facility), header.sending_facility, event_at)
    z_segments = [s for s in segments if s.name.startswith("Z")]
    pids = [s for s in segments if s.name == "PID"]
    if not pids:
        raise AdtError("the message has no PID segment", code="hl7.segment", location="PID")
    patients = tuple(read_pid(pid, ctx, z_segments, index=n) for n, pid in enumerate(pids, 1))
    if operation in (LINK, UNLINK):
        if len(patients) < 2:
            raise AdtError(f"ADT^{trigger} needs two PID segments", code="hl7.segment", location="PID^2")
        return AdtMessage(trigger, operation, patients[:2])
    if operation in (MERGE, CHANGE_ID):
        changes = []
        current: PatientSegment | None = None
        pid_no = mrg_no = 0
        for seg in segments:
            if seg.name == "PID":
                current = patients[pid_no]
                pid_no += 1
            elif seg.name == "MRG" and current is not None:
                mrg_no += 1
                changes.append(IdentityChange(current, read_prior_keys(seg, ctx, index=mrg_no)))
                current = None
        if not changes:
            raise AdtError(f"ADT^{trigger} has no MRG segment after its PID", code="hl7.segment", location="MRG")
        return AdtMessage(trigger, operation, patients, tuple(changes))
    return AdtMessage(trigger, operation, patients[:1])


# --- applying ---------------------------------------------------------------------------------------------------

@dataclass
class AdtOutcome:
    """What applying an ADT message did."""

    operation: str
    regional_ids: list[str] = field(default_factory=list)
    applied: bool = True  # false when an out-of-order update was kept in history only
    notes: list[str] = field(default_factory=list)  # e.g. "the retired record was unknown until now"

    def touch(self, regional_id: str | None) -> None:
        if regional_id and regional_id not in self.regional_ids:
            self.regional_ids.append(regional_id)


def apply_adt(index: PatientIndex, message: AdtMessage, *, actor: str) -> AdtOutcome:
    """Apply ``message`` to the index (the caller commits).

    Parameters
    ----------
    index
        The patient index over the caller's session.
    message
        From :func:`read_adt`.
    actor
        Who acts, recorded on links and history (e.g. ``"hl7:PAS@RTK"``).

    Returns
    -------
    AdtOutcome
        The regional patients touched (the surviving one first for a merge).
    """
    outcome = AdtOutcome(message.operation)
    event = message.event
    if message.operation == UPSERT:
        result = index.upsert(message.patients[0].demographics, event=event, actor=actor, source_kind="hl7")
        outcome.applied = result.applied
        if not result.applied:
            outcome.notes.append("older than the newest update applied: kept in history only")
        outcome.touch(result.regional_id)
        return outcome
    if message.operation in (LINK, UNLINK):
        first, second = message.patients
        for patient in (first, second):
            _refresh(index, patient, event=event, actor=actor, outcome=outcome)
        operate = index.link if message.operation == LINK else index.unlink
        result = operate(first.key, second.key, actor=actor, event=event)
        outcome.touch(index.get_record(first.key).regional_patient_id)  # type: ignore[union-attr]
        outcome.touch(result.regional_id)
        return outcome
    for change in message.changes:
        _apply_change(index, message, change, actor=actor, outcome=outcome)
    return outcome


def _refresh(index: PatientIndex, patient: PatientSegment, *, event: str, actor: str, outcome: AdtOutcome) -> None:
    """Create the record, or bring it up to date when the segment carries demographics."""
    if patient.carries_demographics or index.get_record(patient.key) is None:
        result = index.upsert(patient.demographics, event=event, actor=actor, source_kind="hl7")
        if not result.applied:
            outcome.notes.append("a PID older than the newest update applied was kept in history only")


def _apply_change(index: PatientIndex, message: AdtMessage, change: IdentityChange, *, actor: str,
                  outcome: AdtOutcome) -> None:
    survivor = change.patient
    event = message.event
    if message.operation == MERGE:
        _refresh(index, survivor, event=event, actor=actor, outcome=outcome)
        for prior in change.prior:
            if prior == survivor.key:
                continue
            if index.get_record(prior) is None:
                outcome.notes.append("a merged-away record was unknown until now: kept, pointing at the survivor")
            outcome.touch(index.merge(survivor.key, prior, actor=actor, event=event).regional_id)
        outcome.touch(index.get_record(survivor.key).regional_patient_id)  # type: ignore[union-attr]
        return
    # change of identifier: the record known by the prior identifier is known by the PID's from now on
    for prior in change.prior:
        if prior != survivor.key:
            if index.get_record(prior) is None:
                outcome.notes.append("the prior identifier was unknown: the record is created under the new one")
            index.change_identifier(prior, survivor.key, actor=actor, event=event)
    result = index.upsert(survivor.demographics, event=event, actor=actor, source_kind="hl7")
    outcome.touch(result.regional_id)


__all__ = [
    "CHANGE_ID", "LINK", "MERGE", "OPERATIONS", "UNLINK", "UPSERT", "AdtError", "AdtMessage", "AdtOutcome",
    "Delimiters", "IdentityChange", "PatientIdentifier", "PatientSegment", "apply_adt", "normalise_postcode",
    "read_adt", "read_identifier", "read_pid", "record_key", "resolve_trust", "split_segments",
    "verification_status",
]
