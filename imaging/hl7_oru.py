"""HL7 v2 ORU^R01 (radiology results and order status) as statements about studies.

Read from each ORC/OBR group (fields straight from the ER7 text, as :mod:`mpi.hl7_adt` does):

- the study: Study Instance UID from IPC-3, a ZDS-1 segment (IHE: ``uid^application^Application^DICOM``) or an OBX
  whose identifier names it (DCM 110180 "Study Instance UID", or text such as ``STUDY_INSTANCE_UID``);
- accession number from IPC-1, OBR-18 (IHE scheduled workflow) or OBR-3 (filler order number);
- procedure from OBR-4 (code, text and coding system), date from OBR-7, modality from IPC-5 or OBR-24;
- status from OBR-25 (F/C/R/P/A completed, X cancelled, I in progress, S/O scheduled) or ORC-5;
- the patient from PID-3 as in ADT: the NHS number (CX.4 ``NHS`` or CX.5 ``NH``) and hospital numbers qualified by
  the trust's ODS code in CX.4 or CX.6, an unqualified number belonging to the sending facility (MSH-4).

A group without a Study Instance UID updates the study already known by its accession number at that trust, or the
status of the order known by its placer order number; otherwise it is rejected. Nothing here commits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from imaging.facts import CANCELLED, COMPLETED, IN_PROGRESS, SCHEDULED, StudyFacts
from imaging.identity import PatientIdentity, is_nhs_issuer, qualify, valid_nhs_number
from imaging.index import StudyIndex
from imaging.procedures import ProcedureCode
from imaging.tables import ImagingOrder, Study
from priorscan.audit import Agent
from priorscan.errors import HL7Error
from priorscan.hl7v2 import MessageHeader, normalise_segments, parse_ts
from priorscan.outcome import ItemOutcome
from priorscan.trusts import TrustRegistry

_UID = re.compile(r"^[0-9]+(?:\.[0-9]+)+$")
_RESULT_STATUS = {"F": COMPLETED, "C": COMPLETED, "R": COMPLETED, "P": COMPLETED, "A": COMPLETED, "X": CANCELLED,
                  "I": IN_PROGRESS, "S": SCHEDULED, "O": SCHEDULED}
_ORDER_STATUS = {"CM": COMPLETED, "CA": CANCELLED, "DC": CANCELLED, "IP": IN_PROGRESS, "SC": SCHEDULED,
                 "HD": SCHEDULED}
#: HL7 table 0074 diagnostic service sections used by radiology, as DICOM modalities.
_SERVICE_SECTION = {"CT": "CT", "RX": "DX", "RAD": None, "NMR": "MR", "MR": "MR", "NMS": "NM", "RUS": "US",
                    "VUS": "US", "OUS": "US", "US": "US", "XRC": "RF", "MG": "MG", "NM": "NM", "PT": "PT",
                    "XA": "XA", "DX": "DX", "CR": "CR", "RF": "RF"}
_STUDY_UID_WORDS = ("STUDY INSTANCE UID", "STUDYINSTANCEUID", "STUDY_INSTANCE_UID", "STUDYUID", "SIUID")
_NOT_PATIENT_TYPES = {"AN", "VN", "VI", "AM", "ANON"}


@dataclass(frozen=True)
class _Delimiters:
    field: str
    component: str
    repetition: str
    escape: str
    subcomponent: str


class _Segment:
    def __init__(self, raw: str, d: _Delimiters) -> None:
        self.fields = raw.split(d.field)
        self.name = self.fields[0]
        self.d = d
        if self.name == "MSH":  # MSH-1 is the separator itself
            self.fields.insert(1, d.field)

    def field(self, n: int) -> str:
        return self.fields[n] if n < len(self.fields) else ""

    def component(self, n: int, c: int = 1, rep: int = 0) -> str:
        reps = self.field(n).split(self.d.repetition)
        if rep >= len(reps):
            return ""
        parts = reps[rep].split(self.d.component)
        return unescape(parts[c - 1], self.d) if c <= len(parts) else ""

    def repetitions(self, n: int) -> list[str]:
        return [r for r in self.field(n).split(self.d.repetition) if r]


def unescape(value: str, d: _Delimiters) -> str:
    """Undo HL7 escapes (``\\F\\ \\S\\ \\R\\ \\T\\ \\E\\``); the value is first cut at subcomponents."""
    value = value.split(d.subcomponent)[0] if d.subcomponent else value
    e = d.escape
    if not e or e not in value:
        return value.strip()
    for code, char in (("F", d.field), ("S", d.component), ("R", d.repetition), ("T", d.subcomponent),
                       ("E", e)):
        value = value.replace(f"{e}{code}{e}", char)
    return value.strip()


def _segments(message: Any, header: MessageHeader) -> list[_Segment]:
    text = message if isinstance(message, str) else message.to_er7()
    enc = header.encoding_characters + "^~\\&"[len(header.encoding_characters):]
    d = _Delimiters(header.field_separator, enc[0], enc[1], enc[2], enc[3])
    return [_Segment(s, d) for s in normalise_segments(text).split("\r") if s.strip()]


def _cx_identity(pid: _Segment, trusts: TrustRegistry, sender: str) -> PatientIdentity:
    """The patient identifier of PID-3 (and PID-2), qualified as in ADT; the NHS number alongside."""
    nhs = None
    qualified: list[tuple[str, list[str]]] = []
    unqualified: str | None = None
    for n in (3, 2):
        for rep in range(len(pid.field(n).split(pid.d.repetition))):
            value = pid.component(n, 1, rep)
            authority, id_type, facility = (pid.component(n, 4, rep), pid.component(n, 5, rep).upper(),
                                            pid.component(n, 6, rep))
            if not value or id_type in _NOT_PATIENT_TYPES:
                continue
            if is_nhs_issuer(authority) or id_type in ("NH", "NHS", "NHSNBR"):
                nhs = nhs or valid_nhs_number(value)
                continue
            issuers = [i for i in (authority, facility) if i]
            if issuers:
                qualified.append((value, issuers))
            elif unqualified is None:
                unqualified = value
    if qualified:  # a trust's hospital number first, then any other qualified identifier
        value, issuers = next((q for q in qualified if any(trusts.resolve(i) for i in q[1])), qualified[0])
        return qualify(trusts, patient_id=value, issuers=issuers, fallback_trusts=[], nhs_number=nhs)
    return qualify(trusts, patient_id=unqualified, issuers=[], fallback_trusts=[trusts.resolve(sender)],
                   nhs_number=nhs)


def _demographics(identity: PatientIdentity, pid: _Segment) -> None:
    identity.family = pid.component(5, 1) or None
    given = " ".join(p for p in (pid.component(5, 2), pid.component(5, 3)) if p)
    identity.given = given or None
    born = parse_ts(pid.component(7, 1))
    identity.birth_date = born.date() if born else None
    identity.sex = {"M": "male", "F": "female", "O": "other", "U": "unknown"}.get(pid.component(8, 1).upper())


@dataclass
class _Group:
    orc: _Segment | None
    obr: _Segment
    others: list[_Segment]


def _groups(segments: list[_Segment]) -> list[_Group]:
    """ORC/OBR groups with the OBX, ZDS and IPC segments that follow each OBR (those before the first go with it)."""
    groups: list[_Group] = []
    orc: _Segment | None = None
    pending: list[_Segment] = []
    for segment in segments:
        if segment.name == "ORC":
            orc = segment
        elif segment.name == "OBR":
            groups.append(_Group(orc, segment, pending))
            orc, pending = None, []
        elif segment.name in ("OBX", "ZDS", "IPC", "NTE"):
            (groups[-1].others if groups else pending).append(segment)
    return groups


def _study_uid(group: _Group) -> str | None:
    for segment in group.others:
        if segment.name == "IPC" and _UID.match(segment.component(3, 1)):
            return segment.component(3, 1)
        if segment.name == "ZDS" and _UID.match(segment.component(1, 1)):
            return segment.component(1, 1)
    for segment in group.others:
        if segment.name != "OBX":
            continue
        code, text = segment.component(3, 1).upper(), segment.component(3, 2).upper()
        names_uid = code in ("110180", "113014") or any(w in code or w in text for w in _STUDY_UID_WORDS)
        value = segment.component(5, 1)
        if names_uid and _UID.match(value):
            return value
    return None


def _facts(group: _Group, identity: PatientIdentity, trust_ods: str | None) -> tuple[StudyFacts | None, dict]:
    obr, orc = group.obr, group.orc
    ipc = next((s for s in group.others if s.name == "IPC"), None)
    accession = (ipc.component(1, 1) if ipc else "") or obr.component(18, 1) or obr.component(3, 1) or (
        orc.component(3, 1) if orc else "")
    placer = obr.component(2, 1) or (orc.component(2, 1) if orc else "")
    status = _RESULT_STATUS.get(obr.component(25, 1).upper()) or (
        _ORDER_STATUS.get(orc.component(5, 1).upper()) if orc else None)
    if orc is not None and orc.component(1, 1).upper() in ("CA", "OC", "CR", "DC"):
        status = CANCELLED
    codes = []
    for offset in (0, 3):  # CE: code^text^system^alternate code^alternate text^alternate system
        code = obr.component(4, 1 + offset)
        if code:
            codes.append(ProcedureCode(obr.component(4, 3 + offset) or None, code,
                                       obr.component(4, 2 + offset) or None))
    description = obr.component(4, 2) or obr.component(4, 5) or None
    modality = (ipc.component(5, 1) if ipc else "") or _SERVICE_SECTION.get(obr.component(24, 1).upper()) or ""
    when = parse_ts(obr.component(7, 1)) or parse_ts(obr.component(36, 1))
    keys = {"accession": accession or None, "placer": placer or None, "status": status}
    uid = _study_uid(group)
    if uid is None:
        return None, keys
    facts = StudyFacts(study_instance_uid=uid, source="oru", patient=identity, performing_trust=trust_ods,
                       accession_number=accession or None, modalities=[modality] if modality else [],
                       description=description, procedure_codes=codes,
                       study_date=when.date() if when else None, study_datetime=when, status=status,
                       status_corrects=obr.component(25, 1).upper() == "C")
    return facts, keys


def apply_oru(session: Session, trusts: TrustRegistry, message: Any, header: MessageHeader, *,
              agent: Agent) -> ItemOutcome:
    """Apply an ORU^R01 to the imaging index (the caller commits and acknowledges).

    Parameters
    ----------
    session : Session
        The unit of work (not committed here).
    trusts : TrustRegistry
        The consortium.
    message : hl7apy Message or str
        The parsed message (its ER7 text is read).
    header : priorscan.hl7v2.MessageHeader
        The message header (delimiters, sender).
    agent : priorscan.audit.Agent
        The feed (the HL7 service audits the message).

    Returns
    -------
    ItemOutcome
        Kind ``ORU^R01``; ``regionalPatientId(s)`` and ``studyInstanceUids`` in the detail when accepted.
    """
    kind = header.event or "ORU^R01"
    try:
        segments = _segments(message, header)
    except (AttributeError, IndexError, ValueError) as exc:
        raise HL7Error(f"ORU message could not be read ({type(exc).__name__})", code="hl7.parse") from exc
    pid = next((s for s in segments if s.name == "PID"), None)
    groups = _groups(segments)
    if pid is None:
        return ItemOutcome.rejected(kind, "PID segment missing", "hl7.segment")
    if not groups:
        return ItemOutcome.rejected(kind, "OBR segment missing", "hl7.segment")
    identity = _cx_identity(pid, trusts, header.sending_facility)
    _demographics(identity, pid)
    sender = trusts.resolve(header.sending_facility)
    trust_ods = sender.ods if sender else identity.trust_ods
    index = StudyIndex(session, trusts)
    actor = f"hl7:{header.sending_application}@{header.sending_facility}"
    regional_ids: list[str] = []
    uids: list[str] = []
    unresolved: str | None = None
    for group in groups:
        facts, keys = _facts(group, identity, trust_ods)
        if facts is None:
            facts = _known_study(session, trust_ods, keys, identity)
        if facts is None:
            if _update_order(session, trust_ods, keys):
                continue
            return ItemOutcome.rejected(kind, "no Study Instance UID (IPC-3, ZDS-1 or OBX) and no known study or "
                                        "order for the group's accession or order number", "hl7.required")
        indexed = index.apply(facts, actor=actor)
        uids.append(indexed.study.study_instance_uid)
        if indexed.regional_id and indexed.regional_id not in regional_ids:
            regional_ids.append(indexed.regional_id)
        unresolved = unresolved or indexed.unresolved_reason
        if keys.get("placer"):
            _update_order(session, trust_ods, keys)
    detail: dict[str, object] = {"regionalPatientId": regional_ids[0] if regional_ids else None,
                                 "regionalPatientIds": regional_ids, "studyInstanceUids": uids}
    if unresolved:
        detail["unresolvedReason"] = unresolved
    return ItemOutcome.ok(kind, **detail)


def _known_study(session: Session, trust_ods: str | None, keys: dict, identity: PatientIdentity) -> StudyFacts | None:
    if not keys.get("accession") or not trust_ods:
        return None
    uid = session.scalars(select(Study.study_instance_uid).where(Study.performing_trust == trust_ods,
                                                                 Study.accession_number == keys["accession"])).first()
    if uid is None:
        return None
    return StudyFacts(study_instance_uid=uid, source="oru", patient=identity, status=keys.get("status"))


def _update_order(session: Session, trust_ods: str | None, keys: dict) -> bool:
    """Carry the result's status to the order it answers (by placer order number at the trust)."""
    if not trust_ods or not keys.get("placer") or not keys.get("status"):
        return False
    order = session.scalars(select(ImagingOrder).where(ImagingOrder.requesting_trust == trust_ods,
                                                       ImagingOrder.placer_order_number == keys["placer"])).first()
    if order is None:
        return False
    status = keys["status"]
    order.status = {COMPLETED: "completed", CANCELLED: "cancelled"}.get(status, order.status)
    if keys.get("accession") and not order.filler_order_number:
        order.filler_order_number = keys["accession"][:64]
    return True
