"""The identity items a bulk load writes itself: an HL7 ADT registration or update, an NDJSON FHIR Patient.

Runs in the bulk load's worker processes (:mod:`api.feeds.bulk_load`): each item is read and normalised here exactly
as the per-message path reads it (:func:`mpi.read_adt`, :func:`mpi.read_patient`; :func:`mpi.unlinked_record` gives
the same column values, match fields and blocking keys as link-on-write's new record), and comes back as a
:class:`BulkRecord`, the rows to write without linking (by mpi's store writer:
:func:`api.feeds.bulk_writes.write_records`). Whatever this module does not take (a merge, a link, a Bundle, a
message the reader refuses, a resource that fails validation) comes back as ``None``: the load sets it aside for the
per-message path, which applies or refuses it with the reasons and dead letters of a live feed.
Nothing here touches the store.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Dialect

from mpi import (
    Demographics,
    UnlinkedConverter,
    UnlinkedRecord,
    UnlinkedRows,
    read_adt,
    read_patient,
    table_of,
    unlinked_record,
)
from priorscan.audit import Agent, audit_row
from priorscan.bulk_rows import RowConverter
from priorscan.errors import PriorscanError
from priorscan.hl7v2 import acknowledgements, content_digest, parse_message
from priorscan.tables import AuditEvent, HL7MessageLog
from priorscan.trusts import TrustRegistry

#: HL7 events that create a record (as :data:`api.feeds.hl7_service.CREATE_EVENTS`): audited as C, the others as U.
CREATE_EVENTS = frozenset({"A01", "A04", "A05", "A28"})
UPSERT = "upsert"


@dataclass
class BulkRecord:
    """A new source record's rows (:class:`mpi.UnlinkedRecord`) with the rows the load writes beside it."""

    record: UnlinkedRecord
    audit: dict[str, Any]  # the audit_event row (entity filled in once the record has an id, for FHIR)
    log: dict[str, Any] | None = None  # the HL7 message log row (idempotency of a live re-send)
    log_key: tuple[str, str, str] | None = None
    kind: str = ""  # what the report counts: ADT^A28, Patient ...
    notes: list[str] = field(default_factory=list)


#: The audit_event columns of :attr:`BulkRecord.audit`, in the order of :attr:`BulkRows.audit`; ``entity`` is the
#: one the writer may fill in (:data:`AUDIT_ENTITY`).
AUDIT_COLUMNS = ("action", "event_type", "subtype", "outcome", "agent_kind", "agent_name", "source_address",
                 "regional_patient_id", "entity", "detail", "recorded_at")
AUDIT_ENTITY = AUDIT_COLUMNS.index("entity")
#: The hl7_message_log columns of :attr:`BulkRecord.log`, in the order of :attr:`BulkRows.log`.
LOG_COLUMNS = ("sending_application", "sending_facility", "control_id", "message_type", "ack_code", "ack_text",
               "received_at", "content_digest")


class BulkRows(NamedTuple):
    """A :class:`BulkRecord` with its rows converted for the store's driver (:class:`Converter`): what a worker
    process sends the writer, plain values in column order, compact to pickle and written with their ids only
    added (:func:`api.feeds.bulk_writes.write_records`)."""

    record: UnlinkedRows
    audit: tuple[Any, ...]  # the values of AUDIT_COLUMNS
    log: tuple[Any, ...] | None  # the values of LOG_COLUMNS
    log_key: tuple[str, str, str] | None
    kind: str

    @property
    def namespace(self) -> str:
        return self.record.namespace

    @property
    def local_id(self) -> str:
        return self.record.local_id


class Converter:
    """:class:`BulkRecord` to :class:`BulkRows` for the driver of ``dialect`` (the store's): the same values
    :func:`priorscan.bulk_rows.insert_rows` would send for the record's dicts."""

    def __init__(self, dialect: Dialect) -> None:
        self._record = UnlinkedConverter(dialect)
        self._audit = RowConverter(dialect, table_of(AuditEvent), AUDIT_COLUMNS)
        self._log = RowConverter(dialect, table_of(HL7MessageLog), LOG_COLUMNS)

    def __call__(self, found: BulkRecord) -> BulkRows:
        return BulkRows(self._record(found.record), self._audit(found.audit),
                        None if found.log is None else self._log(found.log), found.log_key, found.kind)


def _record(demographics: Demographics, *, event: str, source_kind: str, production: bool, now: datetime,
            identifiers: list[tuple[str, str]], trusts: TrustRegistry, audit: dict[str, Any],
            kind: str) -> BulkRecord | None:
    further = [(trusts.namespace(system), value) for system, value in identifiers]  # as link-on-write names them
    record = unlinked_record(demographics, event=event, source_kind=source_kind, production=production, now=now,
                             identifiers=further)
    return None if record is None else BulkRecord(record, audit, kind=kind)


def read_hl7(raw: str, trusts: TrustRegistry, *, agent: Agent, production: bool, now: datetime) -> BulkRecord | None:
    """An ADT message that creates or updates one record, or None when it is for the per-message path."""
    try:
        message = parse_message(raw)
        header = message.header
        if (header.message_type != "ADT" or not header.control_id.strip()
                or (header.version and not header.version.startswith("2."))):
            return None
        adt = read_adt(message, trusts)
    except PriorscanError:
        return None
    if adt.operation != UPSERT or len(adt.patients) != 1:
        return None
    patient = adt.patients[0]
    kind = header.event if header.trigger_event else (header.message_type or "HL7")
    entity = f"HL7 {header.sending_application}@{header.sending_facility} MSH-10 {header.control_id}"[:300]
    audit = {**audit_row(agent, action="C" if adt.trigger in CREATE_EVENTS else "U", event_type="hl7", subtype=kind,
                         entity=entity, detail={"operation": UPSERT, "applied": True, "bulk": True}),
             "recorded_at": now}
    found = _record(patient.demographics, event=adt.event, source_kind="hl7", production=production, now=now,
                    identifiers=list(patient.demographics.other_identifiers), trusts=trusts, audit=audit, kind=kind)
    if found is None:
        return None
    found.log_key = (header.sending_application[:200], header.sending_facility[:200], header.control_id[:200])
    found.log = {"sending_application": found.log_key[0], "sending_facility": found.log_key[1],
                 "control_id": found.log_key[2], "message_type": kind[:40], "ack_code": "AA",
                 "ack_text": "".join(acknowledgements(header, "AA")), "received_at": now,
                 "content_digest": content_digest(raw)}
    return found


def read_fhir(resource: dict[str, Any], trusts: TrustRegistry, *, agent: Agent, production: bool,
              now: datetime) -> BulkRecord | None:
    """A FHIR Patient (one NDJSON line) as ``priorscan ingest`` keys it, or None for the per-message path."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
        return None
    own_id = resource.get("id") if isinstance(resource.get("id"), str) else None
    try:
        parsed = read_patient(resource, trusts, client=agent.name, resource_id=own_id)
    except (PriorscanError, ValueError):
        return None
    demographics = parsed.demographics
    if not demographics.local_id:  # as api.feeds.fhir_service.write_patient: the server names a record nothing keys
        demographics.local_id = uuid.uuid4().hex
    audit = {**audit_row(agent, action="C", event_type="rest", subtype="Patient ingest", detail={"bulk": True}),
             "recorded_at": now}
    return _record(demographics, event="fhir-ingest", source_kind="fhir", production=production, now=now,
                   identifiers=list(demographics.other_identifiers), trusts=trusts, audit=audit, kind="Patient")


__all__ = ["AUDIT_COLUMNS", "AUDIT_ENTITY", "LOG_COLUMNS", "BulkRecord", "BulkRows", "Converter", "read_fhir",
           "read_hl7"]
