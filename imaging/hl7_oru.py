"""HL7 v2 ORU^R01 (radiology results and order status) as statements about studies.

Read from each ORC/OBR group of a message read by :func:`priorscan.hl7v2.parse_message`:

- the study: Study Instance UID from IPC-3, a ZDS-1 segment (IHE: ``uid^application^Application^DICOM``) or an OBX
  whose identifier names it (DCM 110180 "Study Instance UID", or text such as ``STUDY_INSTANCE_UID``);
- accession number from IPC-1, OBR-18 (IHE scheduled workflow) or OBR-3 (filler order number);
- procedure from OBR-4 (code, text and coding system); date from OBR-7 (the sender's local time without an offset:
  the study date is the local calendar date); modality from IPC-5, OBR-24 (:mod:`priorscan.hl7v2.tables`) or, when
  neither names one, the normalised procedure, so that a study known only from its result has a modality;
- status from OBR-25 (F/C/R/P/A completed, X cancelled, I in progress, S/O scheduled) or ORC-5;
- the report: the text OBX lines of the group (OBX-2 TX, FT or ST), its conclusion from the OBX whose OBX-3 names an
  impression or conclusion (:func:`read_report`), linked to the study as a FHIR DiagnosticReport is
  (:func:`imaging.link_report`), so that the duplicate check shows it beside the prior;
- the patient from PID as in ADT (:func:`mpi.read_pid`): the NHS number and the hospital number that keys the
  record (the sending trust's first), an unqualified number belonging to the sending trust (MSH-4); an NHS number
  alone when no hospital number is sent.

A group without a Study Instance UID updates the study already known by its accession number at that trust, or the
status of the order known by its placer order number; otherwise it is rejected. Nothing here commits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from imaging.facts import CANCELLED, COMPLETED, IN_PROGRESS, SCHEDULED, StudyFacts
from imaging.identity import PatientIdentity, valid_nhs_number
from imaging.index import StudyIndex
from imaging.procedures import ProcedureCode, normalise_procedure
from imaging.reports import link_report
from imaging.tables import ImagingOrder, Study
from mpi import DELETE, AdtError, patient_context, read_identifiers, read_pid
from priorscan.audit import Agent
from priorscan.hl7v2 import Message, Segment, parse_timestamp, service_section_modality
from priorscan.outcome import ItemOutcome
from priorscan.trusts import NHS_NUMBER_SYSTEM, TrustRegistry

if TYPE_CHECKING:
    from imaging.bulk import StudyGroup

_UID = re.compile(r"^[0-9]+(?:\.[0-9]+)+$")
_RESULT_STATUS = {"F": COMPLETED, "C": COMPLETED, "R": COMPLETED, "P": COMPLETED, "A": COMPLETED, "X": CANCELLED,
                  "I": IN_PROGRESS, "S": SCHEDULED, "O": SCHEDULED}
_ORDER_STATUS = {"CM": COMPLETED, "CA": CANCELLED, "DC": CANCELLED, "IP": IN_PROGRESS, "SC": SCHEDULED,
                 "HD": SCHEDULED}
_STUDY_UID_WORDS = ("STUDY INSTANCE UID", "STUDYINSTANCEUID", "STUDY_INSTANCE_UID", "STUDYUID", "SIUID")
#: The DICOM modality of an examination whose OBR-24 names none, from its normalised procedure
#: (:data:`imaging.procedures.MODALITIES`; a plain radiograph is filed as DX, digital radiography).
_DICOM_MODALITY = {"CT": "CT", "MR": "MR", "US": "US", "XR": "DX", "MG": "MG", "NM": "NM", "PT": "PT", "RF": "RF",
                   "XA": "XA", "BMD": "BMD"}


def _identity(message: Message, pid: Segment, trusts: TrustRegistry) -> PatientIdentity:
    """The patient of PID-3 (and PID-2), read as an ADT's PID is (:func:`mpi.read_pid`); the NHS number alone when
    no hospital number is sent. A number qualified by neither its CX nor a trust that sent it stays unresolved."""
    ctx = patient_context(trusts, message.header.sending_facility)
    try:
        patient = read_pid(pid, ctx, message.z_segments, strict=False)
    except AdtError as exc:
        if exc.code != "hl7.required":
            raise
        idents = read_identifiers(pid.repetitions(3) + pid.repetitions(2), ctx)
        nhs = valid_nhs_number(next((i.value for i in idents if i.is_nhs_number), None))
        if nhs:
            return PatientIdentity(NHS_NUMBER_SYSTEM, nhs, nhs_number=nhs, qualified_by="nhs-number")
        return PatientIdentity(unresolved="no patient identifier")
    demo, key = patient.demographics, patient.identifier
    nhs = valid_nhs_number(demo.nhs_number if demo.nhs_number != DELETE else None)
    if key is not None and not key.qualified and key.trust is None:
        if nhs:
            return PatientIdentity(NHS_NUMBER_SYSTEM, nhs, nhs_number=nhs, qualified_by="nhs-number")
        return PatientIdentity(unresolved="patient ID without an issuer, and no trust known for the sender")
    identity = PatientIdentity(patient.key.namespace, patient.key.local_id, demo.trust_ods, nhs_number=nhs,
                               qualified_by="issuer" if key is None or key.qualified else "sender",
                               other_identifiers=list(demo.other_identifiers))
    identity.family = demo.family or None
    identity.given = demo.given or None
    identity.birth_date = demo.birth_date or None
    identity.sex = demo.sex or None
    return identity


@dataclass
class _Group:
    orc: Segment | None
    obr: Segment
    others: list[Segment]


def _groups(segments: tuple[Segment, ...]) -> list[_Group]:
    """ORC/OBR groups with the OBX, ZDS and IPC segments that follow each OBR (those before the first go with it)."""
    groups: list[_Group] = []
    orc: Segment | None = None
    pending: list[Segment] = []
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
        if segment.name == "IPC" and _UID.match(segment.text(3)):
            return segment.text(3)
        if segment.name == "ZDS" and _UID.match(segment.text(1)):
            return segment.text(1)
    for segment in group.others:
        if segment.name != "OBX":
            continue
        code, text = segment.text(3, 1).upper(), segment.text(3, 2).upper()
        names_uid = code in ("110180", "113014") or any(w in code or w in text for w in _STUDY_UID_WORDS)
        value = segment.text(5)
        if names_uid and _UID.match(value):
            return value
    return None


def _modality(ipc: Segment | None, obr: Segment, codes: list[ProcedureCode], description: str | None) -> str | None:
    """The study's DICOM modality: IPC-5, else the diagnostic service section (OBR-24), else the procedure's."""
    sent = (ipc.value(5) if ipc else None) or service_section_modality(obr.value(24))
    if sent:
        return sent.upper()
    if not codes and not description:
        return None
    return _DICOM_MODALITY.get(normalise_procedure(codes, description).modality or "")


def _facts(message: Message, group: _Group, identity: PatientIdentity,
           trust_ods: str | None) -> tuple[StudyFacts | None, dict]:
    obr, orc = group.obr, group.orc
    ipc = next((s for s in group.others if s.name == "IPC"), None)
    accession = (ipc.value(1) if ipc else None) or obr.value(18) or obr.value(3) or (orc.value(3) if orc else None)
    placer = obr.value(2) or (orc.value(2) if orc else None)
    status = _RESULT_STATUS.get(obr.text(25).upper()) or (_ORDER_STATUS.get(orc.text(5).upper()) if orc else None)
    if orc is not None and orc.text(1).upper() in ("CA", "OC", "CR", "DC"):
        status = CANCELLED
    codes = []
    for offset in (0, 3):  # CE: code^text^system^alternate code^alternate text^alternate system
        code = obr.value(4, 1 + offset)
        if code:
            codes.append(ProcedureCode(obr.value(4, 3 + offset), code, obr.value(4, 2 + offset)))
    description = obr.value(4, 2) or obr.value(4, 5)
    modality = _modality(ipc, obr, codes, description)
    when = parse_timestamp(obr.text(7), message.zone) or parse_timestamp(obr.text(36), message.zone)
    keys = {"accession": accession, "placer": placer, "status": status}
    uid = _study_uid(group)
    if uid is None:
        return None, keys
    facts = StudyFacts(study_instance_uid=uid, source="oru", patient=identity, performing_trust=trust_ods,
                       accession_number=accession, modalities=[modality] if modality else [],
                       description=description, procedure_codes=codes,
                       study_date=when.local_date if when else None, study_datetime=when.instant if when else None,
                       status=status, status_corrects=obr.text(25).upper() == "C")
    return facts, keys


def apply_oru(session: Session, trusts: TrustRegistry, message: Message, *, agent: Agent,
              studies: StudyGroup | None = None) -> ItemOutcome:
    """Apply an ORU^R01 to the imaging index (the caller commits and acknowledges).

    Parameters
    ----------
    session : Session
        The unit of work (not committed here).
    trusts : TrustRegistry
        The consortium.
    message : priorscan.hl7v2.Message
        The message as read (:func:`priorscan.hl7v2.parse_message`).
    agent : priorscan.audit.Agent
        The feed (the HL7 service audits the message).
    studies : imaging.bulk.StudyGroup, optional
        The studies of a bulk load's group commit: new ones are merged in memory and written with the group
        (:mod:`imaging.bulk`); by default every study is merged in the session.

    Returns
    -------
    ItemOutcome
        Kind ``ORU^R01``; ``regionalPatientId(s)`` and ``studyInstanceUids`` in the detail when accepted.

    Raises
    ------
    mpi.AdtError
        When the PID cannot be read (a date that is not one), with its location.
    """
    header = message.header
    kind = header.event or "ORU^R01"
    pid = message.segment("PID")
    groups = _groups(message.segments)
    if pid is None:
        return ItemOutcome.rejected(kind, "PID segment missing", "hl7.segment")
    if not groups:
        return ItemOutcome.rejected(kind, "OBR segment missing", "hl7.segment")
    identity = _identity(message, pid, trusts)
    sender = trusts.resolve(header.sending_facility)
    trust_ods = sender.ods if sender else identity.trust_ods
    index = StudyIndex(session, trusts) if studies is None else None
    actor = f"hl7:{header.sending_application}@{header.sending_facility}"
    regional_ids: list[str] = []
    uids: list[str] = []
    unresolved: str | None = None
    for group in groups:
        facts, keys = _facts(message, group, identity, trust_ods)
        if facts is None:
            facts = _known_study(session, trust_ods, keys, identity, studies)
        if facts is None:
            if _update_order(session, trust_ods, keys, studies):
                continue
            return ItemOutcome.rejected(kind, "no Study Instance UID (IPC-3, ZDS-1 or OBX) and no known study or "
                                        "order for the group's accession or order number", "hl7.required")
        indexed = (index or studies.index_for(facts.study_instance_uid)).apply(  # type: ignore[union-attr]
            facts, actor=actor)
        report = read_report(message, group)
        if report is not None:
            link = partial(link_report, session) if studies is None else studies.link_report
            link(indexed.study, source="hl7",
                 # one report per sender and study: a corrected report replaces it (no "|": the id is ours, not an
                 # identifier system|value)
                 report_id=f"{header.sending_facility}:{indexed.study.study_instance_uid}",
                 status=report.status, conclusion=report.conclusion, text=report.text, issued_at=report.issued_at)
        uids.append(indexed.study.study_instance_uid)
        if indexed.regional_id and indexed.regional_id not in regional_ids:
            regional_ids.append(indexed.regional_id)
        unresolved = unresolved or indexed.unresolved_reason
        if keys.get("placer"):
            _update_order(session, trust_ods, keys, studies)
    detail: dict[str, object] = {"regionalPatientId": regional_ids[0] if regional_ids else None,
                                 "regionalPatientIds": regional_ids, "studyInstanceUids": uids}
    if unresolved:
        detail["unresolvedReason"] = unresolved
    return ItemOutcome.ok(kind, **detail)


@dataclass(frozen=True)
class OruReport:
    """The report an ORU carries for one study: its text (the text OBX lines in order), the conclusion when an OBX
    names one (impression, conclusion, opinion), its status as a FHIR DiagnosticReport status and when it was
    issued."""

    text: str | None
    conclusion: str | None
    status: str | None
    issued_at: datetime | None


#: OBR-25 result status (HL7 table 0123) as a FHIR DiagnosticReport status.
_REPORT_STATUS = {"F": "final", "C": "corrected", "A": "partial", "P": "preliminary", "R": "preliminary",
                  "X": "cancelled", "I": "registered", "S": "registered", "O": "registered"}
_TEXT_TYPES = frozenset({"TX", "FT", "ST"})
#: OBX-3 codes and words that name the conclusion of an imaging report (LOINC 19005-8 impression, 59776-5 findings
#: are not a conclusion).
_CONCLUSION_CODES = frozenset({"19005-8", "IMP", "IMPRESSION", "CONCLUSION", "OPINION", "GDT"})
_CONCLUSION_WORDS = ("IMPRESSION", "CONCLUSION", "OPINION")


def read_report(message: Message, group: _Group) -> OruReport | None:
    """The report text of one OBR group (pure), or None when its OBX segments carry no text (a UID, a number).

    Each text OBX (OBX-2 TX, FT or ST) is a line of the report (its OBX-5 repetitions are lines too); those whose
    OBX-3 names an impression or conclusion also make the conclusion.
    """
    lines: list[str] = []
    conclusion: list[str] = []
    for segment in group.others:
        if segment.name != "OBX" or segment.text(2).upper() not in _TEXT_TYPES:
            continue
        code, name = segment.text(3, 1).upper(), segment.text(3, 2).upper()
        if code in ("110180", "113014") or any(w in code or w in name for w in _STUDY_UID_WORDS):
            continue  # the study's UID, not its report
        values = [rep.value(1) or "" for rep in segment.repetitions(5)]
        text = "\n".join(v for v in values if v.strip())
        if not text:
            continue
        lines.append(text)
        if code in _CONCLUSION_CODES or any(w in name for w in _CONCLUSION_WORDS):
            conclusion.append(text)
    if not lines:
        return None
    obr = group.obr
    first_obx = next((s for s in group.others if s.name == "OBX"), None)
    issued = (parse_timestamp(obr.text(22), message.zone) or
              (parse_timestamp(first_obx.text(14), message.zone) if first_obx else None) or
              parse_timestamp(message.header.time, message.zone))
    return OruReport("\n".join(lines), " ".join(conclusion) or None, _REPORT_STATUS.get(obr.text(25).upper()),
                     issued.instant if issued else None)


def _known_study(session: Session, trust_ods: str | None, keys: dict, identity: PatientIdentity,
                 studies: StudyGroup | None = None) -> StudyFacts | None:
    if not keys.get("accession") or not trust_ods:
        return None
    uid = session.scalars(select(Study.study_instance_uid).where(Study.performing_trust == trust_ods,
                                                                 Study.accession_number == keys["accession"])).first()
    if uid is None and studies is not None:  # a study made earlier in the group, not in the store yet
        uid = studies.uid_by_accession(trust_ods, keys["accession"])
    if uid is None:
        return None
    return StudyFacts(study_instance_uid=uid, source="oru", patient=identity, status=keys.get("status"))


def _update_order(session: Session, trust_ods: str | None, keys: dict, studies: StudyGroup | None = None) -> bool:
    """Carry the result's status to the order it answers (by placer order number at the trust)."""
    if not trust_ods or not keys.get("placer") or not keys.get("status"):
        return False
    if studies is not None and not studies.orders_held():
        return False  # a bulk load's results before any order: nothing to look up
    order = session.scalars(select(ImagingOrder).where(ImagingOrder.requesting_trust == trust_ods,
                                                       ImagingOrder.placer_order_number == keys["placer"])).first()
    if order is None:
        return False
    status = keys["status"]
    order.status = {COMPLETED: "completed", CANCELLED: "cancelled"}.get(status, order.status)
    if keys.get("accession") and not order.filler_order_number:
        order.filler_order_number = keys["accession"][:64]
    return True
