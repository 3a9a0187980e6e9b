"""The bulk load's writes: many rows per statement (multi-row INSERT on SQLite, COPY on PostgreSQL), its cursors and
the items it sets aside, each in the caller's transaction.

A batch of new source records, their versions, blocking keys, further identifiers, HL7 log and audit rows is written
with the cursor that says how far the input is done, in one transaction: after a crash the load resumes at the cursor,
and an item is either wholly written with its cursor or not at all (never lost, never written twice).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Table, delete, select, text, tuple_, update
from sqlalchemy.orm import Session

from api.feeds.bulk_identity import BulkRecord, JsonText
from mpi.tables import BlockingKey, SourceIdentifier, SourceRecord, SourceRecordVersion, table_of
from priorscan.db import utcnow
from priorscan.tables import AuditEvent, BulkCursor, BulkDeferred, HL7MessageLog

#: SQLite's limit on bound parameters of one statement (3.32 and later); a multi-row INSERT stays under it.
SQLITE_PARAMETERS = 32_000
_LOOKUP_CHUNK = 500


def is_postgresql(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql"


def begin_bulk_write(session: Session) -> None:
    """Take SQLite's write lock at once, so the ids chosen below stay ours until the commit (no-op on PostgreSQL,
    whose sequence hands out the ids)."""
    if session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")


def reserve_ids(connection: Connection, table: Table, count: int) -> list[int]:
    """``count`` new ids of ``table``: from its sequence on PostgreSQL (safe beside live writers), after its largest
    id on SQLite (under the write lock)."""
    if count == 0:
        return []
    name = table.name
    if is_postgresql(connection):
        rows = connection.execute(text(f"SELECT nextval(pg_get_serial_sequence('{name}', 'id')) "
                                       "FROM generate_series(1, :n)"), {"n": count}).scalars().all()
        return sorted(int(r) for r in rows)
    start = int(connection.execute(text(f"SELECT coalesce(max(id), 0) FROM {name}")).scalar_one()) + 1
    return list(range(start, start + count))


def insert_rows(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (all with the same columns): COPY on PostgreSQL, multi-row INSERTs on SQLite.

    Values are converted by the columns' own types (JSON, UTC timestamps), then sent through the driver as they are:
    SQLAlchemy's compilation of a statement with thousands of rows would cost more than the insert itself.
    """
    if not rows:
        return
    columns = list(rows[0])
    if is_postgresql(connection):
        _copy(connection, table, columns, rows)
        return
    processors = [table.c[c].type._cached_bind_processor(connection.dialect) for c in columns]  # noqa: SLF001
    names = ", ".join(f'"{c}"' for c in columns)
    one = "(" + ", ".join("?" for _ in columns) + ")"
    per_statement = max(1, SQLITE_PARAMETERS // len(columns))
    raw = connection.connection.driver_connection
    assert raw is not None
    for start in range(0, len(rows), per_statement):
        chunk = rows[start:start + per_statement]
        values: list[Any] = []
        for row in chunk:
            values.extend(value if process is None or value is None or isinstance(value, JsonText) else process(value)
                          for process, value in zip(processors, (row[c] for c in columns), strict=True))
        raw.execute(f'INSERT INTO "{table.name}" ({names}) VALUES ' + ", ".join([one] * len(chunk)), values)


def _copy(connection: Connection, table: Table, columns: list[str], rows: Sequence[dict[str, Any]]) -> None:
    from priorscan.db import JSONType, UTCDateTime

    utc = UTCDateTime()
    kinds = [("json" if isinstance(table.c[c].type, JSONType) else
              "utc" if isinstance(table.c[c].type, UTCDateTime) else "") for c in columns]
    raw = connection.connection.driver_connection
    assert raw is not None
    names = ", ".join(f'"{c}"' for c in columns)
    with raw.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([
                None if (value := row[c]) is None else value if isinstance(value, JsonText)
                else json.dumps(value) if kind == "json"
                else utc.process_bind_param(value, None) if kind == "utc" else value
                for c, kind in zip(columns, kinds, strict=True)])


def existing_keys(session: Session, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of the ``(namespace, local_id)`` keys name a source record already."""
    wanted = list(dict.fromkeys(keys))
    found: set[tuple[str, str]] = set()
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        chunk = wanted[start:start + _LOOKUP_CHUNK]
        found.update((ns, local) for ns, local in session.execute(
            select(SourceRecord.namespace, SourceRecord.local_id).where(
                tuple_(SourceRecord.namespace, SourceRecord.local_id).in_(chunk))))
    return found


def logged_messages(session: Session, keys: Iterable[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    """Which HL7 messages (sending application, facility, control id) the log holds already."""
    wanted = list(dict.fromkeys(keys))
    found: set[tuple[str, str, str]] = set()
    log = HL7MessageLog
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        chunk = wanted[start:start + _LOOKUP_CHUNK]
        found.update((a, f, c) for a, f, c in session.execute(
            select(log.sending_application, log.sending_facility, log.control_id).where(
                tuple_(log.sending_application, log.sending_facility, log.control_id).in_(chunk))))
    return found


def write_records(session: Session, records: Sequence[BulkRecord]) -> list[int]:
    """Write new source records unlinked, with everything link-on-write writes beside a new record but its link:
    version, blocking keys, further identifiers, the HL7 log row and the audit row. Their ids, in order."""
    connection = session.connection()
    ids = reserve_ids(connection, table_of(SourceRecord), len(records))
    sources: list[dict[str, Any]] = []
    versions: list[dict[str, Any]] = []
    keys: list[dict[str, Any]] = []
    identifiers: list[dict[str, Any]] = []
    logs: list[dict[str, Any]] = []
    audits: list[dict[str, Any]] = []
    for record_id, record in zip(ids, records, strict=True):
        sources.append({"id": record_id, **record.columns})
        versions.append({"source_record_id": record_id, **record.version})
        keys.extend({"source_record_id": record_id, "key": key} for key in record.keys)
        identifiers.extend({"source_record_id": record_id, "system": system, "value": value, "use": None}
                           for system, value in record.identifiers)
        if record.log is not None:
            logs.append(record.log)
        audits.append({**record.audit, "entity": record.audit.get("entity") or f"Patient/src-{record_id}"})
    insert_rows(connection, table_of(SourceRecord), sources)
    insert_rows(connection, table_of(SourceRecordVersion), versions)
    insert_rows(connection, table_of(BlockingKey), keys)
    insert_rows(connection, table_of(SourceIdentifier), identifiers)
    insert_rows(connection, table_of(HL7MessageLog), logs)
    insert_rows(connection, table_of(AuditEvent), audits)
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


def refresh_statistics(session: Session) -> None:
    """The planner's statistics for the tables a load filled (ANALYZE), so the first queries after it plan well."""
    tables = ("source_record", "blocking_key", "source_identifier", "regional_patient", "study", "irradiation_event")
    connection = session.connection()
    if is_postgresql(connection):
        for table in tables:
            connection.execute(text(f"ANALYZE {table}"))
    else:
        connection.execute(text("ANALYZE"))


__all__ = ["advance", "begin_bulk_write", "cursor", "defer", "deferred_after", "existing_keys", "forget",
           "insert_rows", "logged_messages", "refresh_statistics", "reserve_ids", "write_records"]
