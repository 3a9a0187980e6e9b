"""HL7 v2 ADT as identity operations: which operation a message asks for, on which source records, and applying it.

Reading (:func:`read_adt`) is pure: it turns a message read by :func:`priorscan.hl7v2.parse_message` into an
:class:`AdtMessage` (which operation, which source records, what demographics; the PIDs as :mod:`mpi.hl7_pid` reads
them) or raises :class:`~mpi.hl7_pid.AdtError` naming the segment and field at fault. Applying (:func:`apply_adt`)
hands that to :class:`~mpi.service.PatientIndex`; it never commits.

**Identifier domains** (HL7 v2.5 chapter 3; IHE PIX): a source may merge, link, unlink or change only identifiers of
its own domain. A trust's PAS (MSH-4 naming the trust) acts on that trust's hospital numbers; a sender that names no
trust acts on its own facility's namespace; a sender's configured domains (``[[trust.hl7_sender]]`` in the trusts
file) replace these, and then also bound what it may create or update. A message that names, as a record to act on,
an identifier of another domain is refused (``hl7.foreign-domain``) before anything is applied; identifiers of other
domains may still be *sent* beside the record's own (PID-3 repetitions), as cross-references.

Message time for out-of-order protection: EVN-2, else MSH-7, read in the sender's local time when it carries no
offset (:func:`priorscan.hl7v2.parse_timestamp`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace

from mpi.hl7_pid import AdtError, PatientSegment, patient_context, read_pid, read_prior_keys, resolve_trust
from mpi.records import RecordKey
from mpi.service import PatientIndex
from priorscan.hl7v2 import ErrorLocation, Message, parse_timestamp
from priorscan.trusts import TrustRegistry

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


# --- one message ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class IdentityChange:
    """A PID and the prior records its MRG names (merge, change of identifier)."""

    patient: PatientSegment
    prior: tuple[RecordKey, ...]
    mrg_sequence: int = 1  # which MRG of the message (for error locations)


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


def sender_domains(trusts: TrustRegistry, sending_facility: str) -> frozenset[str]:
    """The identifier domains a sender acts on by default: its trust's hospital numbers, or, for a sender that names
    no trust, its own facility's namespace."""
    trust = resolve_trust(trusts, sending_facility)
    if trust is not None:
        return frozenset({trust.fhir_system})
    return frozenset({trusts.namespace(sending_facility)}) if sending_facility.strip() else frozenset()


def read_adt(message: Message, trusts: TrustRegistry, *, domains: Collection[str] | None = None) -> AdtMessage:
    """Read an ADT message into the identity operation it asks for.

    Parameters
    ----------
    message
        The message as read (:func:`priorscan.hl7v2.parse_message`).
    trusts
        Resolves ODS codes and HL7 assigning-authority aliases to identifier namespaces.
    domains
        The identifier namespaces the sender may act on, when configured (:class:`priorscan.trusts.HL7Sender`);
        by default :func:`sender_domains`. A merge, link, unlink or change of identifier must name only records of
        these domains; so must a create or update when the sender's domains are configured.

    Raises
    ------
    AdtError
        With code ``hl7.unsupported-event`` (ERR 201), ``hl7.segment`` (100), ``hl7.required`` (101),
        ``hl7.datatype`` (102) or ``hl7.foreign-domain`` and the location of the fault; the message never names
        patient data.
    """
    header = message.header
    trigger = header.trigger_event
    operation = OPERATIONS.get(trigger)
    if operation is None:
        raise AdtError(f"ADT event {trigger or '(none)'} is not supported", code="hl7.unsupported-event",
                       location=ErrorLocation("MSH", 1, 9, component=2))
    evn = message.segment("EVN")
    when = (parse_timestamp(evn.text(2), message.zone) if evn else None) or parse_timestamp(header.time, message.zone)
    ctx = patient_context(trusts, header.sending_facility, when.instant if when else None)
    z_segments = message.z_segments
    pids = message.all("PID")
    if not pids:
        raise AdtError("the message has no PID segment", code="hl7.segment", location=ErrorLocation("PID", 1))
    patients = tuple(read_pid(pid, ctx, z_segments) for pid in pids)
    if operation in (LINK, UNLINK):
        if len(patients) < 2:
            raise AdtError(f"ADT^{trigger} needs two PID segments", code="hl7.segment",
                           location=ErrorLocation("PID", 2))
        adt = AdtMessage(trigger, operation, patients[:2])
    elif operation in (MERGE, CHANGE_ID):
        changes = []
        current: PatientSegment | None = None
        pid_no = 0
        for seg in message.segments:
            if seg.name == "PID":
                current = patients[pid_no]
                pid_no += 1
            elif seg.name == "MRG" and current is not None:
                changes.append(IdentityChange(current, read_prior_keys(seg, ctx), seg.sequence))
                current = None
        if not changes:
            raise AdtError(f"ADT^{trigger} has no MRG segment after its PID", code="hl7.segment",
                           location=ErrorLocation("MRG", 1))
        adt = AdtMessage(trigger, operation, patients, tuple(changes))
    else:
        adt = AdtMessage(trigger, operation, patients[:1])
    enforce_upserts = domains is not None
    _check_domains(adt, frozenset(domains) if domains is not None else sender_domains(trusts, header.sending_facility),
                   enforce_upserts=enforce_upserts)
    return adt


def _check_domains(adt: AdtMessage, domains: frozenset[str], *, enforce_upserts: bool) -> None:
    """Refuse a message that acts on a record outside the sender's identifier domains."""
    if adt.operation == UPSERT and not enforce_upserts:
        return
    verb = {UPSERT: "create or update", MERGE: "merge", LINK: "link", UNLINK: "unlink",
            CHANGE_ID: "change"}[adt.operation]
    for patient in adt.patients:
        if patient.key.namespace not in domains:
            raise AdtError(f"PID-3 names a record of another identifier domain than the sender's (MSH-4): a source "
                           f"may {verb} only its own domain's identifiers", code="hl7.foreign-domain",
                           location=ErrorLocation("PID", patient.sequence, 3))
    for change in adt.changes:
        if any(prior.namespace not in domains for prior in change.prior):
            raise AdtError(f"MRG-1 names a record of another identifier domain than the sender's (MSH-4): a source "
                           f"may {verb} only its own domain's identifiers", code="hl7.foreign-domain",
                           location=ErrorLocation("MRG", change.mrg_sequence, 1))


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


#: What a merged-away record tells of its person, carried to a survivor first known by the merge.
_CARRIED = ("nhs_number", "nhs_verification", "family", "given", "prefix", "birth_date", "sex", "postcode", "address",
            "phone", "death_date", "trust_ods")


def _unknown_survivor_described(index: PatientIndex, survivor: PatientSegment, prior: Sequence[RecordKey],
                                outcome: AdtOutcome) -> PatientSegment:
    """The survivor of a merge as the trust describes them: when the PID names a record the index has never seen
    and carries identifiers only (some PAS send an A40 so), the person's details are the merged-away record's,
    since the trust says the two are one person; the PID's own values are kept where it has them.

    Without this the survivor was written with no name, birth date or sex, the merged-away record (the only one
    with them) was retired, and the regional patient lost its details: found by no demographic search, matched by
    no later record (hazard H-ID-47).
    """
    if survivor.carries_demographics or index.get_record(survivor.key) is not None:
        return survivor
    for key in prior:
        record = index.get_record(key) if key != survivor.key else None
        if record is None or not (record.family or record.given or record.birth_date):
            continue
        own = survivor.demographics
        carried = {name: getattr(own, name) if getattr(own, name) is not None else getattr(record, name)
                   for name in _CARRIED}
        outcome.notes.append("the survivor was unknown and its PID carried identifiers only: its details were "
                             "taken from the merged-away record")
        return replace(survivor, demographics=replace(own, **carried), carries_demographics=True)
    return survivor


def _apply_change(index: PatientIndex, message: AdtMessage, change: IdentityChange, *, actor: str,
                  outcome: AdtOutcome) -> None:
    survivor = change.patient
    event = message.event
    if message.operation == MERGE:
        survivor = _unknown_survivor_described(index, survivor, change.prior, outcome)
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
    "IdentityChange", "apply_adt", "read_adt", "sender_domains",
]
