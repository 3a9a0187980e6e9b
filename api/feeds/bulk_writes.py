"""The bulk load's writes: many rows per statement (multi-row INSERT on SQLite, COPY on PostgreSQL), the identity rows
through mpi's store writer (:func:`mpi.store_writer_for`), its cursors and the items it sets aside, each in the
caller's transaction.

A batch of new source records, their versions, blocking keys, further identifiers, HL7 log and audit rows is written
with the cursor that says how far the input is done, in one transaction: after a crash the load resumes at the cursor,
and an item is either wholly written with its cursor or not at all (never lost, never written twice).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import JSON, Connection, delete, select, text, update
from sqlalchemy.orm import Session

from api.feeds.bulk_identity import AUDIT_COLUMNS, AUDIT_ENTITY, LOG_COLUMNS, BulkRows
from mpi import SourceRecord, store_writer_for, table_of
from priorscan.bulk_rows import Prepared, held_keys, insert_rows, is_postgresql
from priorscan.db import JSONType, load_table_modules, utcnow
from priorscan.tables import AuditEvent, BulkCursor, BulkDeferred, HL7MessageLog


def existing_keys(session: Session, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of the ``(namespace, local_id)`` keys name a source record already."""
    session.flush()  # rows the session holds unwritten count too, as the ORM query counted them
    return held_keys(session.connection(), table_of(SourceRecord), ("namespace", "local_id"),  # type: ignore[return-value]
                     list(keys))


def logged_messages(session: Session, keys: Iterable[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    """Which HL7 messages (sending application, facility, control id) the log holds already."""
    session.flush()
    return held_keys(session.connection(), table_of(HL7MessageLog),  # type: ignore[return-value]
                     ("sending_application", "sending_facility", "control_id"), list(keys))


def write_records(session: Session, records: Sequence[BulkRows]) -> list[int]:
    """Write new source records unlinked, with everything link-on-write writes beside a new record but its link
    (version, blocking keys, further identifiers: :meth:`mpi.StoreWriter.write_unlinked`), and the HL7 log row
    and the audit row, their values converted for the driver already (:class:`api.feeds.bulk_identity.Converter`).
    Their ids, in order."""
    ids = store_writer_for(session).write_unlinked([record.record for record in records])
    logs: list[tuple[Any, ...]] = []
    audits: list[tuple[Any, ...]] = []
    for record_id, record in zip(ids, records, strict=True):
        if record.log is not None:
            logs.append(record.log)
        audit = record.audit
        if not audit[AUDIT_ENTITY]:  # a FHIR Patient's audit names the record by its id
            audit = (*audit[:AUDIT_ENTITY], f"Patient/src-{record_id}", *audit[AUDIT_ENTITY + 1:])
        audits.append(audit)
    connection = session.connection()
    insert_rows(connection, table_of(HL7MessageLog), Prepared(list(LOG_COLUMNS), logs))
    insert_rows(connection, table_of(AuditEvent), Prepared(list(AUDIT_COLUMNS), audits))
    return ids


def defer(session: Session, load_key: str, items: Sequence[tuple[int, str, str, str]]) -> None:
    """Set items aside for the per-message path: ``(seq, content_type, source, raw)``."""
    insert_rows(session.connection(), table_of(BulkDeferred),
                [{"load_key": load_key, "seq": seq, "content_type": content_type, "source": source[:500],
                  "raw": raw} for seq, content_type, source, raw in items])


def deferred_after(session: Session, load_key: str, after_seq: int, limit: int) -> list[BulkDeferred]:
    return list(session.scalars(select(BulkDeferred).where(BulkDeferred.load_key == load_key,
                                                           BulkDeferred.seq > after_seq)
                                .order_by(BulkDeferred.seq).limit(limit)))


def cursor(session: Session, load_key: str, stage: str, item_file: str = "") -> BulkCursor | None:
    return session.get(BulkCursor, (load_key, stage, item_file))


def advance(session: Session, load_key: str, stage: str, position: int, *, item_file: str = "",
            finished: bool = False) -> None:
    """Move a cursor (created at its first move), in the caller's transaction."""
    now = utcnow()
    done = session.execute(update(BulkCursor).where(
        BulkCursor.load_key == load_key, BulkCursor.stage == stage, BulkCursor.item_file == item_file).values(
        position=position, finished=finished, updated_at=now)).rowcount  # type: ignore[attr-defined]
    if not done:
        session.add(BulkCursor(load_key=load_key, stage=stage, item_file=item_file, position=position,
                               finished=finished, updated_at=now))
        session.flush()


def forget(session: Session, load_key: str) -> None:
    """Remove a load's cursors and set-aside items (``--restart``)."""
    session.execute(delete(BulkCursor).where(BulkCursor.load_key == load_key))
    session.execute(delete(BulkDeferred).where(BulkDeferred.load_key == load_key))


#: The tables a load fills, whose planner statistics it refreshes.
STATISTICS_TABLES = ("source_record", "blocking_key", "source_identifier", "regional_patient", "study",
                     "irradiation_event")


def refresh_statistics(session: Session, tables: Sequence[str] = STATISTICS_TABLES) -> None:
    """The planner's statistics for the ``tables`` a load filled (ANALYZE), so the first queries after it plan well
    (SQLite: every table, one ``ANALYZE``)."""
    connection = session.connection()
    if is_postgresql(connection):
        analyse(connection, tables)
    else:
        connection.execute(text("ANALYZE"))


def analyse(connection: Connection, tables: Sequence[str]) -> None:
    """``ANALYZE`` each of ``tables`` on PostgreSQL, its JSON columns left out.

    No query of the program selects by a JSON column's content, so their statistics plan nothing, and they were
    most of the cost: ANALYZE sorts a sample of every column's values with the type's comparison, and a record's
    match fields and link explanation (~700 bytes of ``jsonb`` together) took three quarters of the ANALYZE of
    ``source_record`` (1.8 s against 0.4 s at 30 k records, 2026-12-07, BENCHMARKS.md). The row count and every
    other column's statistics are refreshed as a whole ANALYZE refreshes them."""
    metadata = load_table_modules()
    for name in tables:
        table = metadata.tables[name]
        columns = [c.name for c in table.columns if not isinstance(c.type, JSONType | JSON)]
        quote = connection.dialect.identifier_preparer.quote
        connection.execute(text(f"ANALYZE {quote(name)} ({', '.join(quote(c) for c in columns)})"))


__all__ = ["STATISTICS_TABLES", "advance", "analyse", "cursor", "defer", "deferred_after", "existing_keys", "forget",
           "logged_messages", "refresh_statistics", "write_records"]
