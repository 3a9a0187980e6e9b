"""One HL7 v2 message in, one ACK out: idempotency, dispatch by message type, commit, dead letters, audit.

:func:`process_message` is what the MLLP listener, ``POST /hl7``, ``priorscan ingest`` and dead-letter replay call.
The ACK it returns is final: AA only after the work is committed; AE or AR with an ERR segment otherwise, the
message kept in the dead-letter store with its reason. A message seen before (same sending application, sending
facility and MSH-10) that was accepted gets the original ACK and is not applied again; the database's unique
constraint on :class:`~priorscan.tables.HL7MessageLog` settles it, so two workers racing on one message apply it once.
A message that was refused may be sent again (after a fix, or by replay) and is processed afresh.

Acknowledgement codes: AR when the message cannot be taken at all (no readable MSH, unsupported type, event or
version, unparsable); AE when it was understood but cannot be applied (a required segment or field missing, a bad
value, an application error). Log lines and reasons name fields and codes, never patient data.
"""

from __future__ import annotations

import importlib
import logging
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from mpi.hl7_adt import AdtError, apply_adt, read_adt
from mpi.service import PatientIndex
from priorscan.audit import Agent, record
from priorscan.errors import HL7Error, PriorscanError
from priorscan.hl7v2 import MessageHeader, build_ack, normalise_segments, parse, read_header
from priorscan.outcome import ItemOutcome
from priorscan.tables import DeadLetter, HL7MessageLog

if TYPE_CHECKING:
    from api.context import AppContext

log = logging.getLogger(__name__)

#: priorscan error code → (MSA-1, HL7 table 0357 error code for ERR-3).
ACK_CODES: dict[str, tuple[str, str]] = {
    "hl7.no-msh": ("AR", "100"),
    "hl7.parse": ("AR", "100"),
    "hl7.too-large": ("AR", "207"),
    "hl7.unsupported-type": ("AR", "200"),
    "hl7.unsupported-event": ("AR", "201"),
    "hl7.unsupported-version": ("AR", "203"),
    "hl7.segment": ("AE", "100"),
    "hl7.required": ("AE", "101"),
    "hl7.datatype": ("AE", "102"),
    "hl7.table": ("AE", "103"),
    "not-found": ("AE", "204"),
    "busy": ("AE", "206"),
}
#: Message types other packages apply: (MSH-9.1, MSH-9.2) → (module, function); imported when first needed.
ADAPTERS: dict[tuple[str, str], tuple[str, str]] = {
    ("ORU", "R01"): ("imaging.hl7_oru", "apply_oru"),
    ("ORM", "O01"): ("dedupe.hl7_orders", "apply_order"),
    ("OMI", "O23"): ("dedupe.hl7_orders", "apply_order"),
}
CREATE_EVENTS = frozenset({"A01", "A04", "A05", "A28"})
ATTEMPTS = 3
_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


@contextmanager
def write_session(context: AppContext) -> Iterator[Session]:
    """A session for a unit of work that writes, holding the write lock from its first statement on SQLite.

    SQLite allows one writer: ``BEGIN IMMEDIATE`` takes its lock at once, so a unit that reads and then writes
    never finds its snapshot stale. Writers of this process also queue on a lock of their own first, so a waiting
    writer starts the moment the previous one commits instead of polling SQLite's busy handler (other processes
    still wait on SQLite's busy timeout). On PostgreSQL this is a plain session: concurrency is settled by its
    constraints and row locks.
    """
    engine = context.engine
    if engine.dialect.name != "sqlite":
        with context.sessions() as session:
            yield session
        return
    with _LOCKS_GUARD:
        lock = _WRITE_LOCKS.setdefault(engine, threading.Lock())
    with lock, context.sessions() as session:
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")
        yield session


@dataclass
class Applied:
    """What an adapter did with an accepted message."""

    regional_ids: list[str] = field(default_factory=list)
    action: str = "U"  # C or U (FHIR AuditEvent.action)
    note: str = ""  # MSA-3 text, e.g. an out-of-order update kept in history
    detail: dict[str, Any] = field(default_factory=dict)


class Rejected(Exception):
    """An adapter refused the message (its :class:`ItemOutcome` says why)."""

    def __init__(self, outcome: ItemOutcome) -> None:
        super().__init__(outcome.reason or "rejected")
        self.outcome = outcome


def process_message(context: AppContext, raw: str, *, channel: str, agent: Agent,
                    source: str | None = None) -> ItemOutcome:
    """Apply one HL7 v2 message and return its outcome, whose ``detail["ack"]`` is the ACK to send back.

    Parameters
    ----------
    context
        The opened store, settings and trusts.
    raw
        One message (CR, LF or CRLF segment ends; MLLP framing allowed).
    channel
        Where it came from (``mllp``, ``http-hl7``, ``ingest``, ``replay``), kept with a dead letter.
    agent
        Who sent it, for the audit trail.
    source
        The peer or file it came from (never patient data), kept with a dead letter.

    Returns
    -------
    ItemOutcome
        ``kind`` is the event (``ADT^A04``); ``detail`` holds ``ack`` and, when accepted, ``regionalPatientId`` and
        ``regionalPatientIds``; ``duplicate`` is true when the original ACK was returned for a repeat.
    """
    text = normalise_segments(raw)
    try:
        header = read_header(text)
    except HL7Error as exc:
        return reject_message(context, raw, None, exc.message, code=exc.code, channel=channel, agent=agent,
                              source=source, location="MSH")
    kind = _kind(header)
    if not header.control_id.strip():
        return reject_message(context, raw, header, "MSH-10 (message control id) is empty", code="hl7.required",
                              channel=channel, agent=agent, source=source, location="MSH^1^10")
    if header.version and not header.version.startswith("2."):
        return reject_message(context, raw, header, f"HL7 version {header.version[:10]} is not supported",
                              code="hl7.unsupported-version", channel=channel, agent=agent, source=source,
                              location="MSH^1^12")
    try:
        apply = _adapter(context, header, text, agent)
    except HL7Error as exc:
        location = getattr(exc, "location", "") or ("MSH^1^9" if exc.code.startswith("hl7.unsupported") else "")
        return reject_message(context, raw, header, exc.message, code=exc.code, channel=channel, agent=agent,
                              source=source, location=location)
    failure: tuple[str, str, str] = ("internal error", "internal", "")
    for _ in range(ATTEMPTS):
        try:
            return _process_once(context, header, kind, apply, agent)
        except Rejected as exc:
            outcome = exc.outcome
            failure = (outcome.reason or "rejected by the application", outcome.error_code or "input", "")
            break
        except AdtError as exc:
            failure = (exc.message, exc.code, exc.location)
            break
        except PriorscanError as exc:
            failure = (exc.message, exc.code, "")
            break
        except (IntegrityError, OperationalError) as exc:  # a race or a lock: the whole unit of work is tried again
            log.warning("HL7 %s %s from %s@%s: retrying after %s", kind, header.control_id,
                        header.sending_application, header.sending_facility, type(exc).__name__)
            failure = (f"the store was busy ({type(exc).__name__})", "busy", "")
        except Exception as exc:  # a fault of ours: name its type only (its text may quote patient data)
            log.error("HL7 %s %s: internal error (%s)", kind, header.control_id, type(exc).__name__)
            log.debug("internal error applying an HL7 message", exc_info=exc)
            failure = (f"internal error ({type(exc).__name__})", "internal", "")
            break
    reason, code, location = failure
    return reject_message(context, raw, header, reason, code=code, channel=channel, agent=agent, source=source,
                          location=location)


def _kind(header: MessageHeader) -> str:
    return header.event if header.trigger_event else (header.message_type or "HL7")


def _adapter(context: AppContext, header: MessageHeader, text: str, agent: Agent) -> Any:
    """Read the message and return the function that applies it within a session (pure reading done here)."""
    message_type, trigger = header.message_type.upper(), header.trigger_event.upper()
    if message_type == "ADT":
        adt = read_adt(text, header, context.trusts)
        actor = f"hl7:{header.sending_application}@{header.sending_facility}"

        def apply_identity(session: Session) -> Applied:
            result = apply_adt(PatientIndex(session, context.trusts), adt, actor=actor)
            note = "; ".join(dict.fromkeys(result.notes))
            return Applied(result.regional_ids, "C" if trigger in CREATE_EVENTS else "U", note,
                           {"operation": result.operation, "applied": result.applied})

        return apply_identity
    target = ADAPTERS.get((message_type, trigger))
    if target is None:
        code = "hl7.unsupported-event" if any(t == message_type for t, _ in ADAPTERS) else "hl7.unsupported-type"
        raise HL7Error(f"message type {message_type}^{trigger} is not supported", code=code)
    module_name, function_name = target
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise HL7Error(f"message type {message_type}^{trigger} is not supported (yet)",
                           code="hl7.unsupported-type") from exc
        raise
    except AttributeError as exc:
        raise HL7Error(f"message type {message_type}^{trigger} is not supported (yet)",
                       code="hl7.unsupported-type") from exc
    message = parse(text)

    def apply_other(session: Session) -> Applied:
        outcome: ItemOutcome = function(session, context.trusts, message, header, agent=agent)
        if not outcome.accepted:
            raise Rejected(outcome)
        many = outcome.detail.get("regionalPatientIds")
        ids = list(many) if isinstance(many, list | tuple) else [outcome.detail.get("regionalPatientId")]
        return Applied([str(i) for i in ids if i], "C", "", dict(outcome.detail))

    return apply_other


def _process_once(context: AppContext, header: MessageHeader, kind: str, apply: Any, agent: Agent) -> ItemOutcome:
    with write_session(context) as session:
        entry = _log_entry(session, header, lock=True)
        if entry is not None and entry.ack_code == "AA":
            return _duplicate(kind, header, entry)
        applied: Applied = apply(session)
        ack = build_ack(header, "AA", text=applied.note)
        if entry is None:
            session.add(HL7MessageLog(sending_application=header.sending_application[:200],
                                      sending_facility=header.sending_facility[:200],
                                      control_id=header.control_id[:200], message_type=kind[:40], ack_code="AA",
                                      ack_text=ack))
        else:  # refused before: this copy is applied, and its ACK replaces the refusal
            entry.message_type, entry.ack_code, entry.ack_text = kind[:40], "AA", ack
        touched: list[str | None] = list(applied.regional_ids) or [None]
        for regional_id in touched:
            record(session, agent, action=applied.action, event_type="hl7", subtype=kind,
                   regional_patient_id=regional_id, entity=_entity(header),
                   detail={k: v for k, v in applied.detail.items() if k in ("operation", "applied")} or None)
        try:
            session.commit()
        except IntegrityError:  # a copy of this message committed first (PostgreSQL): its ACK stands, ours is void
            session.rollback()
            stored = _log_entry(session, header, lock=False)
            if stored is not None and stored.ack_code == "AA":
                return _duplicate(kind, header, stored)
            raise
    log.info("HL7 %s %s from %s@%s accepted", kind, header.control_id, header.sending_application,
             header.sending_facility)
    primary = applied.regional_ids[0] if applied.regional_ids else None
    return ItemOutcome.ok(kind, ack=ack, controlId=header.control_id, regionalPatientId=primary,
                          regionalPatientIds=list(applied.regional_ids), duplicate=False,
                          **{k: v for k, v in applied.detail.items() if k in ("operation", "applied")})


_LOG_ENTRY = select(HL7MessageLog).where(HL7MessageLog.sending_application == bindparam("application"),
                                         HL7MessageLog.sending_facility == bindparam("facility"),
                                         HL7MessageLog.control_id == bindparam("control_id"))
_LOG_ENTRY_LOCKED = _LOG_ENTRY.with_for_update()  # statements built once: building costs more than running them


def _log_entry(session: Session, header: MessageHeader, *, lock: bool) -> HL7MessageLog | None:
    return session.scalars(_LOG_ENTRY_LOCKED if lock else _LOG_ENTRY, {
        "application": header.sending_application[:200], "facility": header.sending_facility[:200],
        "control_id": header.control_id[:200]}).first()


def _duplicate(kind: str, header: MessageHeader, entry: HL7MessageLog) -> ItemOutcome:
    log.info("HL7 %s %s from %s@%s is a repeat: original ACK returned", kind, header.control_id,
             header.sending_application, header.sending_facility)
    return ItemOutcome.ok(kind, ack=entry.ack_text, controlId=header.control_id, duplicate=True)


def _entity(header: MessageHeader) -> str:
    return f"HL7 {header.sending_application}@{header.sending_facility} MSH-10 {header.control_id}"[:300]


def reject_message(context: AppContext, raw: str, header: MessageHeader | None, reason: str, *, code: str,
                   channel: str, agent: Agent, source: str | None = None, location: str = "") -> ItemOutcome:
    """Refuse a message: build its AE/AR ACK, log it, keep it as a dead letter and audit the refusal.

    Parameters
    ----------
    raw
        The text to keep for replay (for an oversized message, its beginning).
    header
        Its MSH, when it could be read (the ACK then echoes MSH-10).
    reason
        Why, naming fields not values; becomes MSA-3, ERR-8 and the dead letter's reason.
    code
        The priorscan error code; :data:`ACK_CODES` maps it to AE/AR and the HL7 error code.
    location
        The ERR location (``PID^1^7``), when known.
    """
    ack_code, hl7_error = ACK_CODES.get(code, ("AE", "207"))
    ack = build_ack(header, ack_code, text=reason, error_code=hl7_error, error_location=location)
    kind = _kind(header) if header else "HL7"
    try:
        with write_session(context) as session:
            if header is not None and header.control_id.strip():
                entry = _log_entry(session, header, lock=True)
                if entry is not None and entry.ack_code == "AA":  # a concurrent copy was accepted meanwhile
                    return _duplicate(kind, header, entry)
                if entry is None:
                    session.add(HL7MessageLog(sending_application=header.sending_application[:200],
                                              sending_facility=header.sending_facility[:200],
                                              control_id=header.control_id[:200], message_type=kind[:40],
                                              ack_code=ack_code, ack_text=ack))
                else:
                    entry.ack_code, entry.ack_text = ack_code, ack
            session.add(DeadLetter(channel=channel[:40], content_type="hl7v2", source=(source or "")[:500] or None,
                                   error_code=code[:60], reason=reason, raw=raw.strip("\x0b\x1c")))
            record(session, agent, action="C", event_type="hl7", subtype=kind, outcome="4",
                   entity=_entity(header) if header else None, detail={"error": code})
            session.commit()
    except Exception as exc:  # the ACK still goes out: AE/AR tells the sender to keep the message
        log.error("HL7 %s: could not keep the refused message (%s)", kind, type(exc).__name__)
    log.warning("HL7 %s %s from %s@%s refused %s: %s [%s]", kind, header.control_id if header else "-",
                header.sending_application if header else "-", header.sending_facility if header else "-",
                ack_code, reason, code)
    return ItemOutcome.rejected(kind, reason, code, ack=ack, controlId=header.control_id if header else None)


__all__ = ["ACK_CODES", "ADAPTERS", "process_message", "reject_message", "write_session"]
