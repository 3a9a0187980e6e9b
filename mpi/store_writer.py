"""The store writer: every row of identity, written by Core statements (link-on-write's records, versions, further
identifiers, blocking keys, link events, review items and regional patients, the identity operations' moves, manual
decisions and changes of identifier, the golden records, a bulk load's new records) and the person locks, behind one
protocol (:class:`StoreWriter`) with one strategy per database, chosen by the session's dialect
(:func:`store_writer_for`). Nothing of identity is written through ORM entities; a row the session holds as an entity
is expired when a statement writes it (deleted: expunged), so the session reads it again rather than keeping a copy
synchronised by hand. Where the two strategies differ:

- a new record with its first version, blocking keys, link event and its patient's write
  (:meth:`~StoreWriter.new_record`): one statement on PostgreSQL (data-modifying CTEs: one round trip where separate
  statements take five); one cached statement each on SQLite, where statements cost no round trip;
- a known record's blocking keys (:meth:`~StoreWriter.replace_blocking_keys`): one statement on PostgreSQL (DELETE
  the stale, INSERT the new); read, delete, insert on SQLite;
- the person's locks (:meth:`~StoreWriter.lock_person`): advisory locks in key order on PostgreSQL; none on SQLite,
  which has one writer at a time;
- new records written unlinked by a bulk load (:meth:`~StoreWriter.write_unlinked`): COPY and ids from the tables'
  sequences on PostgreSQL; multi-row INSERTs and ids after the largest, under the write lock, on SQLite.

The single-row writes (an update of a record, a version, an identifier, a link event, a manual decision, a patient,
a review item) are the same Core statement on both (:mod:`mpi.link_statements`); the many-row writes go through
:mod:`priorscan.bulk_rows` (its multi-row INSERT or COPY), which imaging's bulk studies share. A writer never
commits and never decides anything: where a record goes is :func:`mpi.placement.place`'s, the writes are the
caller's unit of work.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from mpi.engine import MatchRecord
from mpi.link_statements import (
    _BLOCKING_KEYS_OF_SQL,
    _CLOSE_REVIEWS,
    _DECISION_OF_PAIR_SQL,
    _DELETE_BLOCKING_KEYS,
    _DELETE_IDENTIFIER,
    _IDENTIFIERS_OF_SQL,
    _INSERT_DECISION,
    _INSERT_IDENTIFIER,
    _INSERT_LINK_EVENT,
    _INSERT_PATIENT,
    _INSERT_RECORD,
    _INSERT_REVIEW,
    _INSERT_VERSION,
    _REPLACE_BLOCKING_KEYS_PG,
    _RETIRE_EMPTY,
    _SET_IDENTIFIER_USE,
    _UPDATE_DECISION,
    _UPDATE_PATIENT,
    _UPDATE_RECORD,
    _UPDATE_REVIEW,
    _insert_blocking_keys_sql,
    _new_record_in_one_statement,
)
from mpi.record_columns import UNLINKED_COLUMNS, UNLINKED_VERSION_COLUMNS, UnlinkedRecord, UnlinkedRows
from mpi.tables import (
    BlockingKey,
    ManualDecision,
    RegionalPatient,
    ReviewItem,
    SourceIdentifier,
    SourceRecord,
    SourceRecordVersion,
)
from mpi.tables import table_of as _table_of
from priorscan.bulk_rows import Prepared, RowConverter, insert_rows, reserve_ids
from priorscan.writes import advisory_key, advisory_locks


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
    return sorted(advisory_key(name) for name in names)



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
        """Set ``changes`` on a known record (one UPDATE); the session reads it again if it holds it."""

    def insert_version(self, row: Mapping[str, Any]) -> None:
        """A version of a record in its history."""

    def add_identifiers(self, record_id: int, identifiers: Iterable[tuple[str, str]]) -> None:
        """Further identifiers (canonical namespace, value) of a record: those it does not hold yet are added."""

    def keep_identifier(self, record_id: int, system: str, value: str, *, use: str) -> None:
        """An identifier of a record kept with ``use`` (``old``: replaced by an A47), added if the record lacks it."""

    def drop_identifier(self, record_id: int, system: str, value: str) -> None:
        """An identifier removed from a record's further identifiers."""

    def insert_blocking_keys(self, record_id: int, keys: Iterable[str]) -> None:
        """Index a new record's blocking keys."""

    def replace_blocking_keys(self, record_id: int, keys: Iterable[str]) -> None:
        """Index a known record's blocking keys as ``keys``: only the changes are written."""

    def insert_patient(self, row: Mapping[str, Any]) -> None:
        """A new regional patient."""

    def update_patient(self, regional_id: str, values: Mapping[str, Any]) -> None:
        """Set ``values`` (golden record, status, merge) on a patient; the session reads it again if it holds it."""

    def retire_emptied_patient(self, regional_id: str) -> None:
        """A patient left without active records stays retired if a merge retired it (its golden record is kept)."""

    def insert_link_event(self, row: Mapping[str, Any]) -> None:
        """A change of a record's link, in its history."""

    def record_decision(self, record_a_id: int, record_b_id: int, values: Mapping[str, Any]) -> None:
        """A person's decision about a pair of records (``record_a_id`` the smaller), replacing any earlier one."""

    def insert_review(self, row: Mapping[str, Any]) -> int:
        """Open a review item; its id."""

    def close_reviews(self, record_id: int) -> None:
        """Open review items about the record are superseded (the session reads held ones again)."""

    def settle_review(self, item_id: int, values: Mapping[str, Any]) -> None:
        """Set ``values`` (status, resolution, who, when) on a review item; the session reads it again if held."""

    def write_unlinked(self, records: Sequence[UnlinkedRows]) -> list[int]:
        """Write new records unlinked (a batch relink places them), with their versions, blocking keys and further
        identifiers, many rows per statement, their rows converted for this store's driver already
        (:class:`UnlinkedConverter`); their ids, in order."""


def _expire_held(session: Session, entity: type[Any], key: Any) -> None:
    """Have the session read a row again if it holds it as an entity (the statements bypass the ORM: the identity
    map is kept honest by expiring what they wrote, never by setting attributes by hand)."""
    held = session.identity_map.get(identity_key(entity, key))
    if held is not None:
        session.expire(held)


def expire_held_patient(session: Session, regional_id: str) -> None:
    """Have the session read the patient again if it holds it (after a statement that bypassed the ORM)."""
    _expire_held(session, RegionalPatient, regional_id)


def _held_of_record(session: Session, entity: type[Any], record_id: int) -> list[Any]:
    """The entities of ``entity`` about ``record_id`` that the session holds (a rare scan: identity operations)."""
    return [o for o in session.identity_map.values()
            if isinstance(o, entity) and o.__dict__.get("source_record_id") == record_id]


def _expire_held_reviews(session: Session, record_id: int) -> None:
    for held in _held_of_record(session, ReviewItem, record_id):
        session.expire(held)


class UnlinkedConverter:
    """A new record's rows (:class:`mpi.record_columns.UnlinkedRecord`) converted for a store's driver
    (``dialect``'s), as :func:`priorscan.bulk_rows.insert_rows` would convert them: done where the record is read
    (a bulk load's worker process), so that the writer only adds ids (:meth:`StoreWriter.write_unlinked`)."""

    def __init__(self, dialect: Dialect) -> None:
        self._source = RowConverter(dialect, _table_of(SourceRecord), UNLINKED_COLUMNS)
        self._version = RowConverter(dialect, _table_of(SourceRecordVersion), UNLINKED_VERSION_COLUMNS)

    def __call__(self, record: UnlinkedRecord) -> UnlinkedRows:
        return UnlinkedRows(record.namespace, record.local_id, self._source(record.columns),
                            self._version(record.version), record.keys, record.identifiers)


def _write_unlinked(session: Session, records: Sequence[UnlinkedRows]) -> list[int]:
    """:meth:`StoreWriter.write_unlinked`: ids reserved, then each table's rows in one go (:mod:`priorscan.bulk_rows`:
    multi-row INSERTs on SQLite, under the write lock the caller holds; COPY and the sequences on PostgreSQL). The
    rows come converted (:class:`UnlinkedConverter`); ids, keys and identifiers need no conversion (integers, text)."""
    connection = session.connection()
    ids = reserve_ids(connection, _table_of(SourceRecord), len(records))
    sources: list[tuple[Any, ...]] = []
    versions: list[tuple[Any, ...]] = []
    keys: list[tuple[Any, ...]] = []
    identifiers: list[tuple[Any, ...]] = []
    for record_id, record in zip(ids, records, strict=True):
        sources.append((record_id, *record.source))
        versions.append((record_id, *record.version))
        keys.extend([(record_id, key) for key in record.keys])
        identifiers.extend([(record_id, system, value, None) for system, value in record.identifiers])
    insert_rows(connection, _table_of(SourceRecord), Prepared(["id", *UNLINKED_COLUMNS], sources))
    insert_rows(connection, _table_of(SourceRecordVersion),
                Prepared(["source_record_id", *UNLINKED_VERSION_COLUMNS], versions))
    insert_rows(connection, _table_of(BlockingKey), Prepared(["source_record_id", "key"], keys))
    insert_rows(connection, _table_of(SourceIdentifier),
                Prepared(["source_record_id", "system", "value", "use"], identifiers))
    return ids


class _Statements:
    """The writes both strategies make alike: one cached Core statement per row kind (:mod:`mpi.link_statements`)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def update_record(self, record_id: int, changes: Mapping[str, Any]) -> None:
        self.session.execute(_UPDATE_RECORD, {"rid": record_id, **changes})
        _expire_held(self.session, SourceRecord, record_id)

    def insert_version(self, row: Mapping[str, Any]) -> None:
        self.session.execute(_INSERT_VERSION, dict(row))

    def add_identifiers(self, record_id: int, identifiers: Iterable[tuple[str, str]]) -> None:
        wanted = list(dict.fromkeys(identifiers))
        if not wanted:
            return
        held = set(self.session.execute(_IDENTIFIERS_OF_SQL, {"sid": record_id}).tuples())
        rows = [{"source_record_id": record_id, "system": system, "value": value, "use": None}
                for system, value in wanted if (system, value) not in held]
        if rows:
            self.session.execute(_INSERT_IDENTIFIER, rows)

    def keep_identifier(self, record_id: int, system: str, value: str, *, use: str) -> None:
        where = {"sid": record_id, "sys": system, "val": value}
        if self.session.execute(_SET_IDENTIFIER_USE, {**where, "new_use": use}).rowcount == 0:  # type: ignore[attr-defined]
            self.session.execute(_INSERT_IDENTIFIER, {"source_record_id": record_id, "system": system,
                                                      "value": value, "use": use})
        for held in _held_of_record(self.session, SourceIdentifier, record_id):
            self.session.expire(held)

    def drop_identifier(self, record_id: int, system: str, value: str) -> None:
        self.session.execute(_DELETE_IDENTIFIER, {"sid": record_id, "sys": system, "val": value})
        for held in _held_of_record(self.session, SourceIdentifier, record_id):
            if (held.system, held.value) == (system, value):  # the row is gone: the session forgets it
                self.session.expunge(held)

    def insert_blocking_keys(self, record_id: int, keys: Iterable[str]) -> None:
        ordered = sorted(keys)
        if ordered:  # one multi-row INSERT: one round trip on PostgreSQL, where an executemany costs one per row
            self.session.execute(_insert_blocking_keys_sql(len(ordered)),
                                 {"sid": record_id, **{f"k{i}": key for i, key in enumerate(ordered)}})

    def insert_patient(self, row: Mapping[str, Any]) -> None:
        self.session.execute(_INSERT_PATIENT, dict(row))

    def update_patient(self, regional_id: str, values: Mapping[str, Any]) -> None:
        self.session.execute(_UPDATE_PATIENT, {"rid": regional_id, **values})
        expire_held_patient(self.session, regional_id)

    def retire_emptied_patient(self, regional_id: str) -> None:
        self.session.execute(_RETIRE_EMPTY, {"rid": regional_id})
        expire_held_patient(self.session, regional_id)

    def insert_link_event(self, row: Mapping[str, Any]) -> None:
        self.session.execute(_INSERT_LINK_EVENT, dict(row))

    def record_decision(self, record_a_id: int, record_b_id: int, values: Mapping[str, Any]) -> None:
        decision_id = self.session.execute(_DECISION_OF_PAIR_SQL, {"a": record_a_id, "b": record_b_id}).scalar()
        if decision_id is None:
            self.session.execute(_INSERT_DECISION, {"record_a_id": record_a_id, "record_b_id": record_b_id,
                                                    **values})
            return
        self.session.execute(_UPDATE_DECISION, {"did": decision_id, **values})
        _expire_held(self.session, ManualDecision, decision_id)

    def insert_review(self, row: Mapping[str, Any]) -> int:
        return int(self.session.execute(_INSERT_REVIEW, dict(row)).scalar_one())

    def close_reviews(self, record_id: int) -> None:
        self.session.execute(_CLOSE_REVIEWS, {"sid": record_id})
        _expire_held_reviews(self.session, record_id)

    def settle_review(self, item_id: int, values: Mapping[str, Any]) -> None:
        self.session.execute(_UPDATE_REVIEW, {"item": item_id, **values})
        _expire_held(self.session, ReviewItem, item_id)

    def write_unlinked(self, records: Sequence[UnlinkedRows]) -> list[int]:
        return _write_unlinked(self.session, records)


class SqliteWriter(_Statements):
    """SQLite: one cached statement per row kind (statements cost no round trip); one writer at a time, so no
    person locks."""

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

    def replace_blocking_keys(self, record_id: int, keys: Iterable[str]) -> None:
        wanted = set(keys)
        current = set(self.session.scalars(_BLOCKING_KEYS_OF_SQL, {"sid": record_id}))
        stale = current - wanted
        if stale:
            self.session.execute(_DELETE_BLOCKING_KEYS, {"sid": record_id, "keys": sorted(stale)})
        self.insert_blocking_keys(record_id, wanted - current)


class PostgresqlWriter(_Statements):
    """PostgreSQL: the writes that go together sent as one statement (each round trip costs), and the person's
    advisory locks."""

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
        advisory_locks(self.session, person_lock_keys(probe))

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

    def replace_blocking_keys(self, record_id: int, keys: Iterable[str]) -> None:
        """One statement: the stale keys deleted, the new ones inserted (a key kept is neither)."""
        self.session.execute(_REPLACE_BLOCKING_KEYS_PG, {"sid": record_id, "keys": sorted(keys)})


def store_writer_for(session: Session) -> StoreWriter:
    """The writer for the session's database: :class:`PostgresqlWriter` on PostgreSQL, else :class:`SqliteWriter`."""
    if session.get_bind().dialect.name == "postgresql":
        return PostgresqlWriter(session)
    return SqliteWriter(session)


__all__ = ["PostgresqlWriter", "SqliteWriter", "StoreWriter", "UnlinkedConverter", "expire_held_patient",
           "person_lock_keys", "store_writer_for"]
