"""The store writer: every row of identity that link-on-write and the bulk load write, behind one protocol
(:class:`StoreWriter`) with one strategy per database, chosen by the session's dialect (:func:`store_writer`).

==================================  ===========================================  ======================================
write                               SQLite (:class:`SqliteWriter`)               PostgreSQL (:class:`PostgresqlWriter`)
==================================  ===========================================  ======================================
a new record, its first version,    one cached statement each (no round trips    one statement (data-modifying CTEs)
blocking keys, link event and its   to save)
patient (:meth:`~StoreWriter.new_record`)
a known record's blocking keys      read, delete the stale, insert the new       one statement (DELETE … INSERT …)
the person's locks                  none: one writer at a time                   advisory locks, in key order
many rows of one table              multi-row INSERTs                            COPY
(:meth:`~StoreWriter.insert_rows`)
new ids for rows written in bulk    after the table's largest id (under the      the table's sequence
(:meth:`~StoreWriter.reserve_ids`)  write lock)
==================================  ===========================================  ======================================

The single-row writes (an update of a record, a version, a link event, a patient, a review item) are the same Core
statement on both (:mod:`mpi.link_statements`). A writer never commits and never decides anything: where a record
goes is :func:`mpi.placement.place`'s, the writes are the caller's unit of work.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import Table, text
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from mpi.engine import MatchRecord
from mpi.link_statements import (
    _BLOCKING_KEYS_OF_SQL,
    _CLOSE_REVIEWS,
    _DELETE_BLOCKING_KEYS,
    _INSERT_LINK_EVENT,
    _INSERT_PATIENT,
    _INSERT_RECORD,
    _INSERT_REVIEW,
    _INSERT_VERSION,
    _LOCK_PERSON_SQL,
    _REPLACE_BLOCKING_KEYS_PG,
    _UPDATE_PATIENT,
    _UPDATE_RECORD,
    _insert_blocking_keys_sql,
    _new_record_in_one_statement,
)
from mpi.record_columns import JsonText, UnlinkedRecord
from mpi.tables import BlockingKey, RegionalPatient, ReviewItem, SourceIdentifier, SourceRecord, SourceRecordVersion
from mpi.tables import table_of as _table_of
from priorscan.db import JSONType, UTCDateTime


def person_lock_keys(probe: MatchRecord) -> list[int]:
    """The advisory lock keys of a record's person: its valid NHS number and its birth date (day and month as a
    set, as blocking reads them), each as a signed 64-bit hash; sorted. Two records of one person share at least
    one unless both lack an NHS number and their birth dates differ (then they are not linked on write either)."""
    names = []
    if probe.nhs_number and probe.nhs_valid:
        names.append(f"n:{probe.nhs_number}")
    if probe.birth_year and probe.birth_month and probe.birth_day:
        low, high = sorted((probe.birth_month, probe.birth_day))
        names.append(f"b:{probe.birth_year:04d}{low:02d}{high:02d}")
    return sorted(int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
                  for name in names)


#: SQLite's limit on bound parameters of one statement (3.32 and later); a multi-row INSERT stays under it.
SQLITE_PARAMETERS = 32_000


class StoreWriter(Protocol):
    """What link-on-write and the bulk load write through; one strategy per database (:func:`store_writer`)."""

    session: Session

    def lock_person(self, probe: MatchRecord) -> None:
        """Wait for any other transaction placing a record of ``probe``'s person (:func:`person_lock_keys`), before
        its candidates are looked for."""

    def new_record(self, record: Mapping[str, Any], version: Mapping[str, Any], keys: Iterable[str],
                   link_event: Mapping[str, Any], patient: Mapping[str, Any], *, founds_patient: bool) -> int:
        """Write a new record linked on write: its columns, first version, blocking keys, link event, and its
        patient's write (``patient``: the row of the patient it founds when ``founds_patient``, else the golden
        record of the patient it joins, with ``id``). The record's id."""

    def update_record(self, record_id: int, changes: Mapping[str, Any]) -> None:
        """Set ``changes`` on a known record (one UPDATE)."""

    def insert_version(self, row: Mapping[str, Any]) -> None:
        """A version of a record in its history."""

    def insert_blocking_keys(self, record_id: int, keys: Iterable[str]) -> None:
        """Index a new record's blocking keys."""

    def replace_blocking_keys(self, record_id: int, keys: Iterable[str]) -> None:
        """Index a known record's blocking keys as ``keys``: only the changes are written."""

    def insert_patient(self, row: Mapping[str, Any]) -> None:
        """A new regional patient."""

    def update_patient(self, regional_id: str, values: Mapping[str, Any]) -> None:
        """Set ``values`` (golden record, status) on a patient; the session reads it again if it holds it."""

    def insert_link_event(self, row: Mapping[str, Any]) -> None:
        """A change of a record's link, in its history."""

    def insert_review(self, row: Mapping[str, Any]) -> int:
        """Open a review item; its id."""

    def close_reviews(self, record_id: int) -> None:
        """Open review items about the record are superseded (the session reads held ones again)."""

    def reserve_ids(self, table: Table, count: int) -> list[int]:
        """``count`` new ids of ``table`` for rows written by :meth:`insert_rows`."""

    def insert_rows(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert many ``rows`` (all with the same columns), values converted by the columns' own types
        (:class:`~mpi.record_columns.JsonText` sent as it is)."""

    def write_unlinked(self, records: Sequence[UnlinkedRecord]) -> list[int]:
        """Write new records unlinked (a batch relink places them), with their versions, blocking keys and further
        identifiers, many rows per statement; their ids, in order."""


def expire_held_patient(session: Session, regional_id: str) -> None:
    """Have the session read the patient again if it holds it (after a statement that bypassed the ORM)."""
    held = session.identity_map.get(identity_key(RegionalPatient, regional_id))
    if held is not None:
        session.expire(held)


def _expire_held_reviews(session: Session, record_id: int) -> None:
    for held in [o for o in session.identity_map.values() if isinstance(o, ReviewItem)]:
        if held.source_record_id == record_id:
            session.expire(held)


def _write_unlinked(writer: StoreWriter, records: Sequence[UnlinkedRecord]) -> list[int]:
    """:meth:`StoreWriter.write_unlinked` by the writer's own :meth:`~StoreWriter.reserve_ids` and
    :meth:`~StoreWriter.insert_rows` (the same rows on both databases)."""
    ids = writer.reserve_ids(_table_of(SourceRecord), len(records))
    sources: list[dict[str, Any]] = []
    versions: list[dict[str, Any]] = []
    keys: list[dict[str, Any]] = []
    identifiers: list[dict[str, Any]] = []
    for record_id, record in zip(ids, records, strict=True):
        sources.append({"id": record_id, **record.columns})
        versions.append({"source_record_id": record_id, **record.version})
        keys.extend({"source_record_id": record_id, "key": key} for key in record.keys)
        identifiers.extend({"source_record_id": record_id, "system": system, "value": value, "use": None}
                           for system, value in record.identifiers)
    writer.insert_rows(_table_of(SourceRecord), sources)
    writer.insert_rows(_table_of(SourceRecordVersion), versions)
    writer.insert_rows(_table_of(BlockingKey), keys)
    writer.insert_rows(_table_of(SourceIdentifier), identifiers)
    return ids


class SqliteWriter:
    """SQLite: one cached statement per row kind (statements cost no round trip); one writer at a time, so no
    person locks; bulk rows as multi-row INSERTs."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def lock_person(self, probe: MatchRecord) -> None:
        """Nothing to wait for: SQLite has one writer at a time."""

    def new_record(self, record: Mapping[str, Any], version: Mapping[str, Any], keys: Iterable[str],
                   link_event: Mapping[str, Any], patient: Mapping[str, Any], *, founds_patient: bool) -> int:
        if founds_patient:  # the patient first: the record refers to it
            self.insert_patient(patient)
        else:
            self.update_patient(patient["id"], {k: v for k, v in patient.items() if k != "id"})
        record_id = int(self.session.execute(_INSERT_RECORD, dict(record)).scalar_one())
        self.insert_version({"source_record_id": record_id, **version})
        self.insert_blocking_keys(record_id, keys)
        self.insert_link_event({"source_record_id": record_id, **link_event})
        return record_id

    def update_record(self, record_id: int, changes: Mapping[str, Any]) -> None:
        self.session.execute(_UPDATE_RECORD, {"rid": record_id, **changes})

    def insert_version(self, row: Mapping[str, Any]) -> None:
        self.session.execute(_INSERT_VERSION, dict(row))

    def insert_blocking_keys(self, record_id: int, keys: Iterable[str]) -> None:
        ordered = sorted(keys)
        if ordered:  # one multi-row INSERT
            self.session.execute(_insert_blocking_keys_sql(len(ordered)),
                                 {"sid": record_id, **{f"k{i}": key for i, key in enumerate(ordered)}})

    def replace_blocking_keys(self, record_id: int, keys: Iterable[str]) -> None:
        wanted = set(keys)
        current = set(self.session.scalars(_BLOCKING_KEYS_OF_SQL, {"sid": record_id}))
        stale = current - wanted
        if stale:
            self.session.execute(_DELETE_BLOCKING_KEYS, {"sid": record_id, "keys": sorted(stale)})
        self.insert_blocking_keys(record_id, wanted - current)

    def insert_patient(self, row: Mapping[str, Any]) -> None:
        self.session.execute(_INSERT_PATIENT, dict(row))

    def update_patient(self, regional_id: str, values: Mapping[str, Any]) -> None:
        self.session.execute(_UPDATE_PATIENT, {"rid": regional_id, **values})
        expire_held_patient(self.session, regional_id)

    def insert_link_event(self, row: Mapping[str, Any]) -> None:
        self.session.execute(_INSERT_LINK_EVENT, dict(row))

    def insert_review(self, row: Mapping[str, Any]) -> int:
        return int(self.session.execute(_INSERT_REVIEW, dict(row)).scalar_one())

    def close_reviews(self, record_id: int) -> None:
        self.session.execute(_CLOSE_REVIEWS, {"sid": record_id})
        _expire_held_reviews(self.session, record_id)

    def reserve_ids(self, table: Table, count: int) -> list[int]:
        """After the table's largest id: the caller holds SQLite's write lock, so they stay ours to the commit."""
        if count == 0:
            return []
        start = int(self.session.execute(text(f"SELECT coalesce(max(id), 0) FROM {table.name}")).scalar_one()) + 1
        return list(range(start, start + count))

    def insert_rows(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        """Multi-row INSERTs through the driver, each under SQLite's limit of bound parameters: SQLAlchemy's
        compilation of a statement with thousands of rows would cost more than the insert itself."""
        if not rows:
            return
        connection = self.session.connection()
        columns = list(rows[0])
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
                values.extend(value if process is None or value is None or isinstance(value, JsonText)
                              else process(value)
                              for process, value in zip(processors, (row[c] for c in columns), strict=True))
            raw.execute(f'INSERT INTO "{table.name}" ({names}) VALUES ' + ", ".join([one] * len(chunk)), values)

    def write_unlinked(self, records: Sequence[UnlinkedRecord]) -> list[int]:
        return _write_unlinked(self, records)


class PostgresqlWriter:
    """PostgreSQL: the writes that go together sent as one statement (each round trip costs), the person's
    advisory locks, bulk rows by COPY and ids from the tables' sequences."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def lock_person(self, probe: MatchRecord) -> None:
        """Transaction-scoped advisory locks on the person's keys (:func:`person_lock_keys`; DESIGN section 5: such
        races are settled in the database).

        Two registrations of one new person at the same moment (five trusts' feeds, concurrent FHIR creates) would
        each find no candidate, since neither sees the other's uncommitted record, and split the person in two.
        A lock per person key makes the second wait until the first commits; its candidate look-up, a new
        statement under READ COMMITTED, then sees the first record. The locks are taken in one statement in key
        order and held to the end of the transaction; a deadlock between two batches is refused by PostgreSQL and
        retried by the unit of work.
        """
        keys = person_lock_keys(probe)
        if keys:
            self.session.execute(_LOCK_PERSON_SQL, {"keys": keys})

    def new_record(self, record: Mapping[str, Any], version: Mapping[str, Any], keys: Iterable[str],
                   link_event: Mapping[str, Any], patient: Mapping[str, Any], *, founds_patient: bool) -> int:
        """One statement (:func:`mpi.link_statements._new_record_in_one_statement`) where separate ones take
        five round trips."""
        record_id = int(self.session.execute(_new_record_in_one_statement(founds_patient), {
            **{f"record_{k}": v for k, v in record.items()}, **{f"version_{k}": v for k, v in version.items()},
            "keys": sorted(keys),
            **{f"link_event_{k}": v for k, v in link_event.items()},
            **{f"patient_{k}": v for k, v in patient.items()}}).scalar_one())
        if not founds_patient:
            expire_held_patient(self.session, patient["id"])
        return record_id

    def update_record(self, record_id: int, changes: Mapping[str, Any]) -> None:
        self.session.execute(_UPDATE_RECORD, {"rid": record_id, **changes})

    def insert_version(self, row: Mapping[str, Any]) -> None:
        self.session.execute(_INSERT_VERSION, dict(row))

    def insert_blocking_keys(self, record_id: int, keys: Iterable[str]) -> None:
        ordered = sorted(keys)
        if ordered:  # one multi-row INSERT: one round trip, where an executemany costs one per row
            self.session.execute(_insert_blocking_keys_sql(len(ordered)),
                                 {"sid": record_id, **{f"k{i}": key for i, key in enumerate(ordered)}})

    def replace_blocking_keys(self, record_id: int, keys: Iterable[str]) -> None:
        """One statement: the stale keys deleted, the new ones inserted (a key kept is neither)."""
        self.session.execute(_REPLACE_BLOCKING_KEYS_PG, {"sid": record_id, "keys": sorted(keys)})

    def insert_patient(self, row: Mapping[str, Any]) -> None:
        self.session.execute(_INSERT_PATIENT, dict(row))

    def update_patient(self, regional_id: str, values: Mapping[str, Any]) -> None:
        self.session.execute(_UPDATE_PATIENT, {"rid": regional_id, **values})
        expire_held_patient(self.session, regional_id)

    def insert_link_event(self, row: Mapping[str, Any]) -> None:
        self.session.execute(_INSERT_LINK_EVENT, dict(row))

    def insert_review(self, row: Mapping[str, Any]) -> int:
        return int(self.session.execute(_INSERT_REVIEW, dict(row)).scalar_one())

    def close_reviews(self, record_id: int) -> None:
        self.session.execute(_CLOSE_REVIEWS, {"sid": record_id})
        _expire_held_reviews(self.session, record_id)

    def reserve_ids(self, table: Table, count: int) -> list[int]:
        """From the table's sequence: safe beside live writers."""
        if count == 0:
            return []
        rows = self.session.execute(text(f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id')) "
                                         "FROM generate_series(1, :n)"), {"n": count}).scalars().all()
        return sorted(int(r) for r in rows)

    def insert_rows(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        """COPY through the driver, values converted by the columns' types."""
        if not rows:
            return
        columns = list(rows[0])
        utc = UTCDateTime()
        kinds = [("json" if isinstance(table.c[c].type, JSONType) else
                  "utc" if isinstance(table.c[c].type, UTCDateTime) else "") for c in columns]
        raw = self.session.connection().connection.driver_connection
        assert raw is not None
        names = ", ".join(f'"{c}"' for c in columns)
        with raw.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row([
                    None if (value := row[c]) is None else value if isinstance(value, JsonText)
                    else json.dumps(value) if kind == "json"
                    else utc.process_bind_param(value, None) if kind == "utc" else value
                    for c, kind in zip(columns, kinds, strict=True)])

    def write_unlinked(self, records: Sequence[UnlinkedRecord]) -> list[int]:
        return _write_unlinked(self, records)


def store_writer_for(session: Session) -> StoreWriter:
    """The writer for the session's database: :class:`PostgresqlWriter` on PostgreSQL, else :class:`SqliteWriter`."""
    if session.get_bind().dialect.name == "postgresql":
        return PostgresqlWriter(session)
    return SqliteWriter(session)


__all__ = ["SQLITE_PARAMETERS", "PostgresqlWriter", "SqliteWriter", "StoreWriter", "expire_held_patient",
           "person_lock_keys", "store_writer_for"]
