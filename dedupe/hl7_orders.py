"""HL7 v2 imaging orders (ORM^O01, OMI^O23) as duplicate checks, order updates and cancellations.

Called by the HL7 service (``api.feeds.hl7_service``) inside its unit of work, which commits before the ACK. One message
may carry several orders (ORC with its OBR); each is handled on its own. Fields read, v2.3 to v2.5.1:

=================  ============================================================================================
ORC-1              order control: ``NW`` / ``XO`` / ``RO`` new or changed order → check it; ``CA`` / ``OC`` /
                   ``DC`` / ``CR`` / ``OD`` cancel it (its alert is cancelled, dose avoided counted); ``SC``
                   status change by ORC-5 (``CM`` completed, ``CA`` cancelled, else still active)
ORC-2 / OBR-2      placer order number; ORC-3 / OBR-3 filler order number
OBR-4              universal service id ``code^text^system`` (and its alternate code, components 4-6)
OBR-15 / OBR-46    body site (SPS component 4) and site modifier (component 5, laterality); placer supplemental
                   service information (laterality or body site words and codes)
IPC-5 / OBR-24     modality (DICOM), else the diagnostic service section as a hint (:mod:`priorscan.hl7v2.tables`)
TQ1-9 / OBR-27.6   priority (``S`` = STAT); ORC-7.6 in v2.3-2.4
OBR-31 / OBR-13    reason for study, relevant clinical information (read for circumstances such as trauma)
PID                as in ADT (:func:`mpi.read_pid`): NHS number, hospital numbers qualified by ODS code
MSH-4              the requesting trust (else ORC-21 / ORC-17 / ORC-2.2)
ORC-9 / OBR-6      the order's time (else MSH-7): a historic order replayed late is judged as of its own date.
                   A time without offset is the sender's local time (Europe/London).
=================  ============================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from dedupe.alerts import alert_of_order, cancel
from dedupe.check import CheckRequest, PatientQuery, ProcedureQuery, run_check
from dedupe.circumstances import RequestReason
from dedupe.config import active_rules
from dedupe.orders import CANCELLED, COMPLETED, set_order_status
from dedupe.rules import RuleSet
from dedupe.vocabulary import ProcedureCode
from mpi import AdtError, patient_context, read_identifiers, read_pid
from priorscan.audit import Agent
from priorscan.errors import HL7Error
from priorscan.hl7v2 import Message, MessageHeader, Segment, parse_timestamp, service_section_modality
from priorscan.outcome import ItemOutcome
from priorscan.trusts import NHS_NUMBER_SYSTEM, TrustRegistry

NEW = frozenset({"NW", "XO", "RO", "RP", "XX", "CH"})
CANCEL = frozenset({"CA", "OC", "DC", "CR", "OD", "DR"})
STATUS = frozenset({"SC", "SN", "OK", "NA", "UA", "UC", "XR", "CN", "RE", "HD", "HR", "OH", "RL"})


@dataclass(frozen=True)
class _Fields:
    """Field access over one segment that may be absent (1-based field, component, sub-component; unescaped;
    None when not sent or sent as the HL7 null)."""

    segment: Segment | None

    def get(self, field: int, component: int = 1, repetition: int = 0, sub: int = 1) -> str | None:
        if self.segment is None:
            return None
        return self.segment.value(field, component, sub, repetition + 1)

    def repetitions(self, field: int) -> int:
        return len(self.segment.repetitions(field)) if self.segment is not None else 0


@dataclass(frozen=True)
class _Order:
    orc: _Fields
    obr: _Fields
    tq1: _Fields
    ipc: _Fields


def local_time(value: str | None, message: Message, timezone: str) -> tuple[datetime | None, date | None]:
    """An HL7 TS as an instant and its calendar date in ``timezone`` (the rule table's); without an offset the time
    is the sender's local time (:func:`priorscan.hl7v2.parse_timestamp`)."""
    stamp = parse_timestamp(value, message.zone)
    if stamp is None or stamp.digits < 8:
        return None, None
    if not stamp.has_time:
        return stamp.instant, stamp.local_date
    return stamp.instant, stamp.instant.astimezone(ZoneInfo(timezone)).date()


def _orders(segments: tuple[Segment, ...]) -> list[_Order]:
    """Each OBR with its ORC (a second OBR under one ORC is a second order), TQ1 and IPC."""
    groups: list[dict[str, Segment]] = []
    current: dict[str, Segment] | None = None
    last_orc: Segment | None = None
    for seg in segments:
        if seg.name == "ORC":
            last_orc = seg
            current = {"ORC": seg}
            groups.append(current)
        elif seg.name == "OBR":
            if current is None or "OBR" in current:
                current = {"ORC": last_orc} if last_orc is not None else {}
                groups.append(current)
            current["OBR"] = seg
        elif seg.name in ("TQ1", "IPC") and current is not None:
            current.setdefault(seg.name, seg)
    return [_Order(_Fields(g.get("ORC")), _Fields(g.get("OBR")), _Fields(g.get("TQ1")), _Fields(g.get("IPC")))
            for g in groups]


def _patient(message: Message, trusts: TrustRegistry) -> PatientQuery:
    pid = message.segment("PID")
    if pid is None:
        raise HL7Error("the order has no PID segment", code="hl7.segment")
    ctx = patient_context(trusts, message.header.sending_facility)
    try:
        patient = read_pid(pid, ctx, message.z_segments, strict=False)
    except AdtError:  # no hospital number: an NHS number alone still identifies the patient
        idents = read_identifiers(pid.repetitions(3), ctx)
        found = tuple((NHS_NUMBER_SYSTEM, i.value) if i.is_nhs_number else (i.namespace, i.value)
                      for i in idents if i.is_nhs_number or i.namespace)
        if not found:
            raise HL7Error("PID-3 holds no usable patient identifier", code="hl7.required") from None
        return PatientQuery(identifiers=found)  # type: ignore[arg-type]
    demo = patient.demographics
    identifiers = [(patient.key.namespace, patient.key.local_id)]
    if demo.nhs_number:
        identifiers.insert(0, (NHS_NUMBER_SYSTEM, demo.nhs_number))
    identifiers += [(s, v) for s, v in demo.other_identifiers]
    birth = demo.birth_date if isinstance(demo.birth_date, date) else None
    return PatientQuery(identifiers=tuple(identifiers), family=demo.family or None,
                        given=tuple((demo.given or "").split()), birth_date=birth, sex=demo.sex or None,
                        postcode=demo.postcode or None)


def _trust(order: _Order, header: MessageHeader, trusts: TrustRegistry) -> str | None:
    for candidate in (header.sending_facility, order.orc.get(21, 10), order.orc.get(21, 1), order.orc.get(17, 1),
                      order.orc.get(2, 2), order.obr.get(2, 2)):
        trust = trusts.resolve(candidate)
        if trust is not None:
            return trust.ods
    return None


def _procedure(order: _Order, message: Message, trusts: TrustRegistry, rules: RuleSet) -> ProcedureQuery:
    obr, orc = order.obr, order.orc
    codes = tuple(ProcedureCode(obr.get(4, n + 2), code, obr.get(4, n + 1))
                  for n, code in ((1, obr.get(4, 1)), (4, obr.get(4, 4))) if code)
    description = obr.get(4, 2) or obr.get(4, 5)
    body_site = obr.get(15, 4, sub=2) or obr.get(15, 4)  # SPS-4 CE: text, else identifier
    laterality = obr.get(15, 5, sub=2) or obr.get(15, 5) or obr.get(46, 1)
    modality = order.ipc.get(5, 1) or service_section_modality(obr.get(24))
    priority = order.tq1.get(9, 1) or obr.get(27, 6) or orc.get(7, 6) or obr.get(5)
    reasons = [obr.get(31, 2, repetition=i) or obr.get(31, 1, repetition=i) for i in range(obr.repetitions(31))]
    reason_codes = []
    for i in range(obr.repetitions(31)):
        reason_code, system = obr.get(31, 1, repetition=i), obr.get(31, 3, repetition=i)
        if reason_code:
            reason_codes.append(f"{system}|{reason_code}" if system else reason_code)
    text = "; ".join(filter(None, [*reasons, obr.get(13), orc.get(16, 2)])) or None
    requested_at, request_date = local_time(orc.get(9) or obr.get(6) or obr.get(7) or message.header.time, message,
                                            rules.timezone)
    return ProcedureQuery(
        codes=codes, modality=modality, body_site=body_site, laterality=laterality, description=description,
        priority=priority, reason=RequestReason(text, tuple(reason_codes)),
        requesting_trust=_trust(order, message.header, trusts),
        placer_order_number=orc.get(2, 1) or obr.get(2, 1), filler_order_number=orc.get(3, 1) or obr.get(3, 1),
        requested_at=requested_at, request_date=request_date)


def apply_order(session: Session, trusts: TrustRegistry, message: Message, *, agent: Agent,
                rules: RuleSet | None = None) -> ItemOutcome:
    """Apply an ORM^O01 or OMI^O23: check new orders, cancel cancelled ones (with their alerts), update status.

    Parameters
    ----------
    session
        The HL7 service's unit of work (committed by the caller before the ACK).
    trusts
        The consortium.
    message
        The message as read (:func:`priorscan.hl7v2.parse_message`).
    agent
        The feed, for the audit trail.
    rules
        The rule set (default: the one in force, :func:`dedupe.active_rules`).

    Returns
    -------
    ItemOutcome
        Accepted with ``regionalPatientId``, ``verdicts``, ``alertIds`` and ``orders``; rejected (``hl7.required``,
        ``hl7.segment``, ``hl7.table``) naming the field at fault.
    """
    kind = message.header.event
    rules = rules or active_rules(_rules_file())
    orders = _orders(message.segments)
    if not orders:
        return ItemOutcome.rejected(kind, "the message has no ORC or OBR segment", "hl7.segment")
    try:
        patient = _patient(message, trusts)
    except HL7Error as exc:
        return ItemOutcome.rejected(kind, exc.message, exc.code)
    regional_ids: list[str] = []
    verdicts: list[str] = []
    alert_ids: list[str] = []
    for number, order in enumerate(orders, 1):
        control = (order.orc.get(1) or "NW").upper()
        procedure = _procedure(order, message, trusts, rules)
        if control in CANCEL or (control == "SC" and (order.orc.get(5) or "").upper() in ("CA", "DC")):
            _cancel(session, rules, procedure, agent=agent, control=control)
            continue
        if control in STATUS:
            status = (order.orc.get(5) or "").upper()
            if procedure.requesting_trust and procedure.placer_order_number and status == "CM":
                set_order_status(session, procedure.requesting_trust, procedure.placer_order_number, COMPLETED)
            continue
        if control not in NEW:
            return ItemOutcome.rejected(kind, f"ORC-1 order control {control[:4]} is not supported (order {number})",
                                        "hl7.table")
        if not procedure.placer_order_number:
            return ItemOutcome.rejected(kind, f"ORC-2 / OBR-2 placer order number is empty (order {number})",
                                        "hl7.required")
        if not procedure.codes and not procedure.description and not (procedure.modality and procedure.body_site):
            return ItemOutcome.rejected(kind, f"OBR-4 universal service id is empty (order {number})",
                                        "hl7.required")
        outcome = run_check(session, trusts, rules, CheckRequest(patient, procedure, channel="hl7",
                                                                order_status="active"), agent=agent)
        if outcome.regional_id:
            regional_ids.append(outcome.regional_id)
        verdicts.append(outcome.verdict)
        if outcome.alert_id:
            alert_ids.append(outcome.alert_id)
    return ItemOutcome.ok(kind, regionalPatientId=regional_ids[0] if regional_ids else None,
                          regionalPatientIds=list(dict.fromkeys(regional_ids)), verdicts=verdicts, alertIds=alert_ids,
                          orders=len(orders))


def _cancel(session: Session, rules: RuleSet, procedure: ProcedureQuery, *, agent: Agent, control: str) -> None:
    trust, placer = procedure.requesting_trust, procedure.placer_order_number
    if not trust or not placer:
        return
    set_order_status(session, trust, placer, CANCELLED)
    alert = alert_of_order(session, trust, placer)
    if alert is not None:
        cancel(session, alert, rules, user=None, comment=None, agent=agent, why=f"HL7 ORC-1 {control}")


def _rules_file():  # type: ignore[no-untyped-def]
    from priorscan.settings import get_settings

    return get_settings().rules_file
