"""One HL7 v2 message in, one ACK out: idempotency, dispatch by message type, commit, dead letters, audit.

:func:`process_message` is what the MLLP listener, ``POST /hl7``, ``priorscan ingest`` and dead-letter replay call.
The ACK it returns is final: AA only after the work is committed; AE or AR with an ERR segment otherwise, the
message kept in the dead-letter store with its reason. A message seen before (same sending application, sending
facility and MSH-10, and the same content but for MSH-7) that was accepted gets the original ACK and is not applied
again, however many other messages came under its MSH-10 since; the database's unique constraint on
:class:`~priorscan.tables.HL7MessageLog` settles it, so two workers racing on one message apply it once.
A message that was refused may be sent again (after a fix, or by replay) and is processed afresh.

Acknowledgement codes: AR when the message cannot be taken at all (no readable MSH, unsupported type, event or
version, unparsable, a control character, more than one message, an identifier of another domain); AE when it was
understood but cannot be applied (a required segment or field missing, a bad value, an application error). A message
in enhanced acknowledgement mode (MSH-15/16) gets the accept and application acknowledgements it asks for
(:func:`priorscan.hl7v2.acknowledgements`): CA once the message is committed (applied, or kept as a dead letter),
CR when it is refused as a whole, CE when it could not be stored (the store was busy, or a fault of ours). Log lines
and reasons name fields and codes, never patient data.

The message is read once (:func:`priorscan.hl7v2.parse_message`) and the adapters take the read message.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, Select, and_, bindparam, or_, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from mpi import AdtError, PatientIndex, apply_adt, patient_context, read_adt, read_pid, table_of
from priorscan.audit import Agent, audit_row, record
from priorscan.db import utcnow
from priorscan.errors import HL7Error, PriorscanError
from priorscan.hl7v2 import (
    COMMIT_ERROR,
    AckError,
    ErrorLocation,
    Message,
    MessageError,
    MessageHeader,
    acknowledgements,
    content_digest,
    has_control_characters,
    parse_message,
)
from priorscan.logs import correlated, message_id
from priorscan.outcome import ItemOutcome
from priorscan.tables import AuditEvent, DeadLetter, HL7MessageLog
from priorscan.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from api.context import AppContext

log = logging.getLogger(__name__)

#: priorscan error code → (MSA-1, HL7 table 0357 error code for ERR-3). Any other code is AE 207.
ACK_CODES: dict[str, tuple[str, str]] = {
    "hl7.no-msh": ("AR", "100"),
    "hl7.parse": ("AR", "100"),
    "hl7.several-messages": ("AR", "100"),
    "hl7.control-character": ("AR", "102"),
    "hl7.charset": ("AR", "103"),
    "hl7.too-many-repetitions": ("AR", "102"),
    "hl7.too-large": ("AR", "207"),
    "hl7.unsupported-type": ("AR", "200"),
    "hl7.unsupported-event": ("AR", "201"),
    "hl7.unsupported-processing-id": ("AR", "202"),
    "hl7.unsupported-version": ("AR", "203"),
    "hl7.foreign-domain": ("AR", "207"),
    "hl7.sender-not-allowed": ("AR", "207"),
    "hl7.segment": ("AE", "100"),
    "hl7.required": ("AE", "101"),
    "hl7.datatype": ("AE", "102"),
    "hl7.escape": ("AE", "102"),
    "hl7.table": ("AE", "103"),
    "not-found": ("AE", "204"),
    "busy": ("AE", "206"),
}
#: Codes after which nothing was applied or could not be stored for sure: in enhanced mode, CE (send it again).
RETRY_CODES = frozenset({"busy", "internal", "storage"})
_ACK_START = re.compile(r"(?<=\r)(?=MSH)")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: Message types other packages apply: (MSH-9.1, MSH-9.2) → (package front, function), imported when first needed
#: (the fronts of imaging and dedupe bring pydicom and the rule engine: a writer process starts without them).
ADAPTERS: dict[tuple[str, str], tuple[str, str]] = {
    ("ORU", "R01"): ("imaging", "apply_oru"),
    ("ORM", "O01"): ("dedupe", "apply_order"),
    ("OMI", "O23"): ("dedupe", "apply_order"),
}
#: Messages whose studies a bulk load's batch may hold in memory (process_messages' ``studies_in_bulk``).
_BULK_STUDY_KINDS = frozenset({"ORU^R01"})
CREATE_EVENTS = frozenset({"A01", "A04", "A05", "A28"})
ATTEMPTS = 3


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
    item = _prepare(context, raw, channel=channel, agent=agent, source=source)
    if isinstance(item, ItemOutcome):
        return item
    return _process_alone(context, item)


@dataclass
class Incoming:
    """One message waiting for :func:`process_messages`: its text, who sent it and from where."""

    raw: str
    agent: Agent
    source: str | None = None


@dataclass
class _Prepared:
    """A message read and checked, with the function that applies it within a session."""

    raw: str
    header: MessageHeader
    kind: str
    apply: Any
    channel: str
    agent: Agent
    source: str | None

    @cached_property
    def digest(self) -> str:
        """What the message says, for telling a re-send from another message under the same MSH-10."""
        return content_digest(self.raw)


def process_messages(context: AppContext, messages: Sequence[Incoming], *, channel: str,
                     studies_in_bulk: bool = False) -> list[ItemOutcome]:
    """Apply several messages with one commit (group commit) and return their outcomes, in order.

    Each message is applied in its own SAVEPOINT, in the order given (a sender's messages keep their order): one
    that fails is rolled back alone, and is refused (AE/AR, dead letter) after the others are committed. Every
    outcome is final when this returns, and the commit comes first: an AA is never returned for work that is not
    stored. A repeat of a message applied earlier in the same batch is found by the same idempotency look-up as
    any repeat (the batch's own log rows are visible to it) and gets the original ACK.

    A message that meets a race or a lock (a unique constraint, a serialisation failure) is set aside and applied
    on its own afterwards, with the retries of :func:`process_message`; if the commit itself fails, nothing of the
    batch was stored and every message not refused is applied on its own.

    Parameters
    ----------
    messages
        The messages with their agents and sources (as for :func:`process_message`).
    channel
        Where they came from (``mllp``), kept with dead letters.
    studies_in_bulk
        For a bulk load's results (``priorscan backfill``): when every message of the batch is an ORU, the studies
        new to the store are merged in memory and written together before the commit (:class:`imaging.StudyGroup`),
        by the same merge as one at a time. A batch that has to be applied again message by message is applied as
        live messages are.
    """
    outcomes: list[ItemOutcome | None] = [None] * len(messages)
    ready: list[tuple[int, _Prepared]] = []
    for n, message in enumerate(messages):
        item = _prepare(context, message.raw, channel=channel, agent=message.agent, source=message.source)
        if isinstance(item, ItemOutcome):
            outcomes[n] = item
        else:
            ready.append((n, item))
    if len(ready) == 1:
        n, item = ready[0]
        outcomes[n] = _process_alone(context, item)
    elif ready:
        _process_batch(context, ready, outcomes, studies_in_bulk=studies_in_bulk)
    assert all(o is not None for o in outcomes)
    return outcomes  # type: ignore[return-value]


def _process_batch(context: AppContext, ready: list[tuple[int, _Prepared]],
                   outcomes: list[ItemOutcome | None], *, studies_in_bulk: bool = False) -> None:
    """Apply the batch in one transaction: whole first, and again with a savepoint per message if that fails.

    Nearly every batch applies cleanly, and then no message needs a savepoint of its own (each costs two statements
    and, on PostgreSQL, two round trips). When one message fails, the whole attempt is rolled back (nothing of it is
    stored or answered) and the batch is applied again with each message in its own savepoint, so that the bad one
    is refused alone.
    """
    bulk = studies_in_bulk and all(item.kind in _BULK_STUDY_KINDS for _, item in ready)
    if not _apply_batch(context, ready, outcomes, isolate=False, studies_in_bulk=bulk):
        _apply_batch(context, ready, outcomes, isolate=True)


def _apply_batch(context: AppContext, ready: list[tuple[int, _Prepared]], outcomes: list[ItemOutcome | None], *,
                 isolate: bool, studies_in_bulk: bool = False) -> bool:
    """One attempt at a batch; False (nothing stored, no outcome set) when an attempt without ``isolate`` fails.
    ``studies_in_bulk`` (never with ``isolate``: a savepoint cannot roll back what memory holds): the batch's new
    studies in one :class:`imaging.StudyGroup`, written before the commit."""
    accepted: dict[int, ItemOutcome] = {}
    refused: dict[int, tuple[str, str, ErrorLocation | None]] = {}
    alone: list[int] = []
    try:
        with unit_of_work(context.sessions, write=True) as session:
            entries = _log_entries(session, [item.header for _, item in ready])
            writes = _Writes()
            studies = _study_group(session, context) if studies_in_bulk and not isolate else None
            for n, item in ready:
                key = (*_log_key(item.header), item.digest)
                entry = entries.get(key) or entries.get((*key[:3], None))
                if entry is not None and entry.ack_code == "AA":  # a repeat (of one earlier in this batch, too)
                    accepted[n] = _duplicate(item.kind, item.header, entry)
                    continue
                if not isolate:
                    accepted[n] = _apply_one(session, item, entry, writes, studies)
                    entries[key] = _LogEntry(None, "AA", ack_text(accepted[n]), item.digest)
                    continue
                own = _Writes()
                try:
                    with session.begin_nested():
                        accepted[n] = _apply_one(session, item, entry, own)
                except (IntegrityError, OperationalError) as exc:  # a race or a lock: on its own, with retries
                    log.warning("HL7 %s %s from %s@%s: applied on its own after %s", item.kind,
                                item.header.control_id, item.header.sending_application,
                                item.header.sending_facility, type(exc).__name__)
                    alone.append(n)
                    continue
                except Exception as exc:  # noqa: BLE001 - sorted into a refusal like the single path does
                    refused[n] = _failure(item, exc)
                    continue
                writes.extend(own)
                entries[key] = _LogEntry(None, "AA", ack_text(accepted[n]), item.digest)
            if studies is not None:
                studies.write()
            writes.execute(session)
    except Exception as exc:
        if not isolate:  # rolled back whole: the caller applies the batch again, message by message
            log.debug("HL7 batch of %d message(s) applied again with a savepoint each (%s)", len(ready),
                      type(exc).__name__)
            return False
        # nothing of the batch is stored: each message not refused is applied on its own
        log.warning("HL7 batch of %d message(s) not committed (%s): applying them one by one", len(ready),
                    type(exc).__name__)
        alone = [n for n, _ in ready if n not in refused]
        accepted.clear()
    items = dict(ready)
    for n, outcome in accepted.items():
        _log_accepted(items[n], outcome)
        outcomes[n] = outcome
    for n, (reason, code, location) in refused.items():
        item = items[n]
        outcomes[n] = reject_message(context, item.raw, item.header, reason, code=code, channel=item.channel,
                                     agent=item.agent, source=item.source, location=location)
    for n in sorted(alone):
        outcomes[n] = _process_alone(context, items[n])
    return True


def _prepare(context: AppContext, raw: str, *, channel: str, agent: Agent,
             source: str | None) -> _Prepared | ItemOutcome:
    """Read the message and check it (no storage), or refuse it (its refusal then stored and returned)."""

    def refuse(header: MessageHeader | None, reason: str, code: str, location: ErrorLocation | None) -> ItemOutcome:
        return reject_message(context, raw, header, reason, code=code, channel=channel, agent=agent, source=source,
                              location=location)

    try:
        message = parse_message(raw)
    except MessageError as exc:
        return refuse(exc.header, exc.message, exc.code, exc.location)
    header = message.header
    kind = _kind(header)
    if not header.control_id.strip():
        return refuse(header, "MSH-10 (message control id) is empty", "hl7.required", ErrorLocation("MSH", 1, 10))
    if header.version and not header.version.startswith("2."):
        return refuse(header, f"HL7 version {header.version[:10]} is not supported", "hl7.unsupported-version",
                      ErrorLocation("MSH", 1, 12))
    try:
        apply = _adapter(context, message, agent)
    except MessageError as exc:
        return refuse(header, exc.message, exc.code, exc.location)
    except HL7Error as exc:
        location = ErrorLocation("MSH", 1, 9) if exc.code.startswith("hl7.unsupported") else None
        return refuse(header, exc.message, exc.code, location)
    return _Prepared(raw, header, kind, apply, channel, agent, source)


def _failure(item: _Prepared, exc: Exception) -> tuple[str, str, ErrorLocation | None]:
    """Why a message was refused: (reason, priorscan error code, ERR location)."""
    if isinstance(exc, Rejected):
        return (exc.outcome.reason or "rejected by the application", exc.outcome.error_code or "input", None)
    if isinstance(exc, MessageError):
        return (exc.message, exc.code, exc.location)
    if isinstance(exc, PriorscanError):
        return (exc.message, exc.code, None)
    # a fault of ours: name its type only (its text may quote patient data)
    log.error("HL7 %s %s: internal error (%s)", item.kind, item.header.control_id, type(exc).__name__)
    return (f"internal error ({type(exc).__name__})", "internal", None)


def _process_alone(context: AppContext, item: _Prepared) -> ItemOutcome:
    """Apply one message in its own unit of work, run again after a race or a lock (up to :data:`ATTEMPTS`)."""
    try:
        outcome = unit_of_work(context.sessions, write=True, attempts=ATTEMPTS).run(
            lambda session: _process_in(session, item))
    except Exception as exc:  # noqa: BLE001 - sorted into a refusal (a store busy on every attempt: AE 206)
        reason, code, location = _failure(item, exc)
        return reject_message(context, item.raw, item.header, reason, code=code, channel=item.channel,
                              agent=item.agent, source=item.source, location=location)
    if not outcome.detail.get("duplicate"):
        _log_accepted(item, outcome)
    return outcome


def _kind(header: MessageHeader) -> str:
    return header.event if header.trigger_event else (header.message_type or "HL7")


def _adapter(context: AppContext, message: Message, agent: Agent) -> Any:
    """Read the message and return the function that applies it within a session (pure reading done here)."""
    header = message.header
    message_type, trigger = header.message_type, header.trigger_event
    if message_type == "ADT":
        # a configured sender acts only on its own domains, creates and updates included (priorscan.trusts.HL7Sender)
        adt = read_adt(message, context.trusts,
                       domains=context.trusts.sender_domains(header.sending_application, header.sending_facility))
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
        raise MessageError(f"message type {message_type}^{trigger} is not supported", code=code,
                           location=ErrorLocation("MSH", 1, 9, component=2 if code == "hl7.unsupported-event" else 1))
    domains = context.trusts.sender_domains(header.sending_application, header.sending_facility)
    if domains is not None:
        _check_patient_domain(message, context, domains)
    front, function_name = target
    function = getattr(importlib.import_module(front), function_name)

    def apply_other(session: Session, **bulk: Any) -> Applied:  # bulk: the study group of a bulk load's ORU
        outcome: ItemOutcome = function(session, context.trusts, message, agent=agent, **bulk)
        if not outcome.accepted:
            raise Rejected(outcome)
        many = outcome.detail.get("regionalPatientIds")
        ids = list(many) if isinstance(many, list | tuple) else [outcome.detail.get("regionalPatientId")]
        return Applied([str(i) for i in ids if i], "C", "", dict(outcome.detail))

    return apply_other


def _study_group(session: Session, context: AppContext) -> Any:
    from imaging import StudyGroup  # imported when first needed, as the adapters are

    return StudyGroup(session, context.trusts)


def _check_patient_domain(message: Message, context: AppContext, domains: frozenset[str]) -> None:
    """A configured sender's result or order names a patient of its own domains only (its PID's record key); one
    that names none (an NHS number alone) or cannot be read is left to the adapter's own checks."""
    pid = message.segment("PID")
    if pid is None:
        return
    try:
        patient = read_pid(pid, patient_context(context.trusts, message.header.sending_facility), strict=False)
    except AdtError:
        return
    if patient.key.namespace not in domains:
        raise MessageError("PID-3 names a patient of another identifier domain than the sender's: a source sends "
                           "results and orders only for its own domain's patients", code="hl7.foreign-domain",
                           location=ErrorLocation("PID", 1, 3))


def _process_in(session: Session, item: _Prepared) -> ItemOutcome:
    """Apply one message in ``session`` (its unit of work commits). A copy of it committed first by another worker
    makes the commit fail on the log's unique key; the unit is then run again and finds that copy's ACK."""
    entry = _log_entry(session, item.header, item.digest, lock=True)
    if entry is not None and entry.ack_code == "AA":
        return _duplicate(item.kind, item.header, entry)
    writes = _Writes()
    outcome = _apply_one(session, item, entry, writes)
    writes.execute(session)
    return outcome


@dataclass
class _Writes:
    """The idempotency and audit rows of accepted messages, written together just before the commit."""

    new_log: list[dict[str, Any]] = field(default_factory=list)
    changed_log: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)

    def extend(self, other: _Writes) -> None:
        self.new_log += other.new_log
        self.changed_log += other.changed_log
        self.audit += other.audit

    def execute(self, session: Session) -> None:
        # plain cached statements, many rows each (rows as priorscan.audit.record writes them): no ORM unit of work
        if self.new_log:
            session.execute(_INSERT_LOG, self.new_log)
        if self.changed_log:
            session.execute(_UPDATE_LOG, self.changed_log)
        if self.audit:
            session.execute(_INSERT_AUDIT, self.audit)


def _apply_one(session: Session, item: _Prepared, entry: _LogEntry | Row[Any] | None,
               writes: _Writes, studies: Any = None) -> ItemOutcome:
    """Apply a message within ``session`` (not committed), its log and audit rows added to ``writes``: the
    outcome to return once they are written and committed. ``studies``: the batch's :class:`imaging.StudyGroup`."""
    header = item.header
    with correlated(message_id=message_id(header.sending_facility, header.control_id)):
        return _apply_correlated(session, item, entry, writes, studies)


def _apply_correlated(session: Session, item: _Prepared, entry: _LogEntry | Row[Any] | None,
                      writes: _Writes, studies: Any = None) -> ItemOutcome:
    header, kind = item.header, item.kind
    applied: Applied = item.apply(session) if studies is None else item.apply(session, studies=studies)
    acks = acknowledgements(header, "AA", text=applied.note)
    ack = "".join(acks)
    now = utcnow()
    if entry is None or entry.id is None:  # a new message (under a used MSH-10 too: a counter started again)
        writes.new_log.append({
            "sending_application": header.sending_application[:200], "sending_facility": header.sending_facility[:200],
            "control_id": header.control_id[:200], "message_type": kind[:40], "ack_code": "AA", "ack_text": ack,
            "received_at": now, "content_digest": item.digest})
    else:  # refused before: this copy is applied, and its ACK replaces the refusal
        writes.changed_log.append({"log_id": entry.id, "message_type": kind[:40], "ack_code": "AA", "ack_text": ack,
                                   "content_digest": item.digest})
    detail = {k: v for k, v in applied.detail.items() if k in ("operation", "applied")} or None
    touched: list[str | None] = list(applied.regional_ids) or [None]
    writes.audit.extend({**audit_row(item.agent, action=applied.action, event_type="hl7", subtype=kind,
                                     regional_patient_id=regional_id, entity=_entity(header), detail=detail),
                         "recorded_at": now} for regional_id in touched)
    primary = applied.regional_ids[0] if applied.regional_ids else None
    return ItemOutcome.ok(kind, **_acks(acks), controlId=header.control_id, regionalPatientId=primary,
                          regionalPatientIds=list(applied.regional_ids), duplicate=False,
                          **{k: v for k, v in applied.detail.items() if k in ("operation", "applied")})


def _log_accepted(item: _Prepared, outcome: ItemOutcome) -> None:
    if not outcome.detail.get("duplicate"):
        with correlated(message_id=message_id(item.header.sending_facility, item.header.control_id)):
            log.info("HL7 %s %s from %s@%s accepted", item.kind, item.header.control_id,
                     item.header.sending_application, item.header.sending_facility)


# statements built once: building costs more than running them
_LOG = table_of(HL7MessageLog)
_LOG_ENTRY = select(_LOG.c.id, _LOG.c.ack_code, _LOG.c.ack_text, _LOG.c.content_digest).where(
    _LOG.c.sending_application == bindparam("application"), _LOG.c.sending_facility == bindparam("facility"),
    _LOG.c.control_id == bindparam("control_id"))
_LOG_ENTRY_LOCKED = _LOG_ENTRY.with_for_update()
_INSERT_LOG = _LOG.insert()
_UPDATE_LOG = _LOG.update().where(_LOG.c.id == bindparam("log_id"))
_INSERT_AUDIT = table_of(AuditEvent).insert()




@lru_cache(maxsize=64)
def _log_entries_locked(count: int) -> Select[Any]:
    """The idempotency rows of ``count`` keys, locked: one OR of key equalities, which both backends answer with
    index searches (a row-value ``IN`` list made SQLite scan the whole log)."""
    return select(_LOG.c.id, _LOG.c.ack_code, _LOG.c.ack_text, _LOG.c.content_digest, _LOG.c.sending_application,
                  _LOG.c.sending_facility, _LOG.c.control_id).where(or_(*(
                      and_(_LOG.c.sending_application == bindparam(f"a{n}"),
                           _LOG.c.sending_facility == bindparam(f"f{n}"), _LOG.c.control_id == bindparam(f"c{n}"))
                      for n in range(count)))).with_for_update()


@dataclass(frozen=True)
class _LogEntry:
    """An idempotency row as the batch sees it (``id`` None for one written by this batch)."""

    id: int | None
    ack_code: str
    ack_text: str
    content_digest: str | None = None


def _log_key(header: MessageHeader) -> tuple[str, str, str]:
    return (header.sending_application[:200], header.sending_facility[:200], header.control_id[:200])


def _log_entries(session: Session,
                 headers: Sequence[MessageHeader]) -> dict[tuple[str, str, str, str | None], _LogEntry]:
    """The idempotency rows of several messages' senders and MSH-10s, each keyed by its sender, MSH-10 and digest
    (None for a row logged before digests were kept), with one statement (locked, as :func:`_log_entry`)."""
    keys = sorted({_log_key(h) for h in headers})
    return {(row.sending_application, row.sending_facility, row.control_id, row.content_digest):
            _LogEntry(row.id, row.ack_code, row.ack_text, row.content_digest)
            for row in session.execute(_log_entries_locked(len(keys)), {
                f"{part}{n}": value for n, key in enumerate(keys) for part, value in zip("afc", key, strict=True)})}


def _log_entry(session: Session, header: MessageHeader, digest: str, *, lock: bool) -> Row[Any] | None:
    """The idempotency row of this message (id, ack_code, ack_text), when there is one: the row of its sender,
    MSH-10 and content (:func:`priorscan.hl7v2.content_digest`), else one of its sender and MSH-10 logged before
    contents were kept (taken for it, as then). Every message sent under one MSH-10 has its own row, so a re-send
    of any of them, however late, is found; another content under a used MSH-10 (a sender whose counter started
    again) is another message, applied, not answered with the first one's ACK and dropped."""
    rows = session.execute(_LOG_ENTRY_LOCKED if lock else _LOG_ENTRY, {
        "application": header.sending_application[:200], "facility": header.sending_facility[:200],
        "control_id": header.control_id[:200]}).all()
    own = next((row for row in rows if row.content_digest == digest), None)
    if own is None and rows and all(row.content_digest is not None for row in rows):
        log.warning("HL7 %s from %s@%s: MSH-10 used before for another message; taken as a new message",
                    header.control_id, header.sending_application, header.sending_facility)
    return own or next((row for row in rows if row.content_digest is None), None)


def _duplicate(kind: str, header: MessageHeader, entry: Row[Any] | _LogEntry) -> ItemOutcome:
    log.info("HL7 %s %s from %s@%s is a repeat: original ACK returned", kind, header.control_id,
             header.sending_application, header.sending_facility)
    return ItemOutcome.ok(kind, **_acks(split_acks(entry.ack_text)), controlId=header.control_id, duplicate=True)


def split_acks(text: str) -> list[str]:
    """The ACK messages of a stored acknowledgement text (none, one, or an accept and an application ACK)."""
    return [a for a in _ACK_START.split(text) if a]


def _acks(acks: list[str]) -> dict[str, Any]:
    """An outcome's ``ack`` (the last acknowledgement, "" when none was asked for) and ``acks`` (all, in order)."""
    return {"ack": acks[-1] if acks else "", "acks": list(acks)}


def ack_text(outcome: ItemOutcome) -> str:
    """Every acknowledgement of ``outcome``, as one text (what the idempotency log keeps)."""
    acks = outcome.detail.get("acks")
    return "".join(acks) if isinstance(acks, list) else str(outcome.detail.get("ack", ""))


def _entity(header: MessageHeader) -> str:
    return f"HL7 {header.sending_application}@{header.sending_facility} MSH-10 {header.control_id}"[:300]


def reject_message(context: AppContext, raw: str, header: MessageHeader | None, reason: str, *, code: str,
                   channel: str, agent: Agent, source: str | None = None,
                   location: ErrorLocation | None = None, idempotency: bool = True) -> ItemOutcome:
    """Refuse a message: build its AE/AR acknowledgements, log it, keep it as a dead letter and audit the refusal.

    Parameters
    ----------
    raw
        The text to keep for replay (for an oversized message, its beginning).
    header
        Its MSH, when it could be read (the ACK then echoes MSH-10 and follows its version and encoding).
    reason
        Why, naming fields not values; becomes MSA-3, ERR-8 and the dead letter's reason.
    code
        The priorscan error code; :data:`ACK_CODES` maps it to AE/AR and the HL7 error code.
    location
        Where the fault is, when known (ERR-2, or ERR-1 before v2.5).
    idempotency
        False for a sender that may not send at all: its refusal neither reads nor writes the idempotency log, so
        a stranger replaying a trust's MSH-10 learns nothing of it and cannot turn its AA into a refusal (which
        would let the trust's own resend apply twice).
    """
    ack_code, hl7_error = ACK_CODES.get(code, ("AE", "207"))
    error = AckError(hl7_error, location, application_code=code)
    kind = _kind(header) if header else "HL7"
    escape = header.delimiters.escape if header is not None else "\\"
    logged = header is not None and bool(header.control_id.strip()) and idempotency
    digest = content_digest(raw) if logged else None
    stored = False
    acks: list[str] = []
    entry = None
    try:
        with unit_of_work(context.sessions, write=True) as session:
            if logged:
                assert header is not None
                entry = _log_entry(session, header, digest or "", lock=True)
                if entry is not None and entry.ack_code == "AA":  # a concurrent copy was accepted meanwhile
                    return _duplicate(kind, header, entry)
            acks = acknowledgements(header, ack_code, text=reason, error=error,
                                    accept=COMMIT_ERROR if code in RETRY_CODES else None)
            if logged:
                assert header is not None
                if entry is None:
                    session.add(HL7MessageLog(sending_application=header.sending_application[:200],
                                              sending_facility=header.sending_facility[:200],
                                              control_id=header.control_id[:200], message_type=kind[:40],
                                              ack_code=ack_code, ack_text="".join(acks), content_digest=digest))
                else:
                    session.execute(_UPDATE_LOG, {"log_id": entry.id, "ack_code": ack_code, "ack_text": "".join(acks),
                                                  "content_digest": digest})
            session.add(DeadLetter(channel=channel[:40], content_type="hl7v2", source=(source or "")[:500] or None,
                                   error_code=code[:60], reason=reason, raw=storable(raw.strip("\x0b\x1c"), escape)))
            record(session, agent, action="C", event_type="hl7", subtype=kind, outcome="4",
                   entity=_entity(header) if header else None, detail={"error": code})
        stored = True
    except Exception as exc:  # the ACK still goes out: AE/AR (CE) tells the sender to keep the message
        log.error("HL7 %s: could not keep the refused message (%s)", kind, type(exc).__name__)
    if not stored:
        acks = acknowledgements(header, ack_code, text=reason, error=error, accept=COMMIT_ERROR)
    log.warning("HL7 %s %s from %s@%s refused %s: %s [%s]", kind, header.control_id if header else "-",
                header.sending_application if header else "-", header.sending_facility if header else "-",
                ack_code, reason, code)
    return ItemOutcome.rejected(kind, reason, code, **_acks(acks), controlId=header.control_id if header else None)


def storable(text: str, escape: str = "\\") -> str:
    """``text`` with control characters written as HL7 hex escapes (``\\X00\\``, with the message's escape
    character), so that any store keeps it (PostgreSQL refuses NUL in text) and a replay refuses it again for the
    same reason."""
    if not has_control_characters(text):
        return text
    return _CONTROL.sub(lambda m: f"{escape}X{ord(m[0]):02X}{escape}", text)


__all__ = ["ACK_CODES", "ADAPTERS", "Incoming", "ack_text", "process_message", "process_messages", "reject_message",
           "split_acks", "storable"]
