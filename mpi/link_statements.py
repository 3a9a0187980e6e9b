"""The statements of the write path (:mod:`mpi.store_writer`, :mod:`mpi.link_on_write`), built once per process:
building a statement costs more than running it, and a registration runs a dozen.

On PostgreSQL a new record is written with its first version, blocking keys, link event and its patient's write in
one statement (:func:`_new_record_in_one_statement`); on SQLite each is a cached statement of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import ARRAY, Select, String, Table, TextClause, bindparam, cast, exists, func, or_, select, text

from mpi.index_store import _RECORDS, DEMOGRAPHIC_FIELDS
from mpi.tables import (
    BlockingKey,
    LinkEvent,
    ManualDecision,
    RegionalPatient,
    ReviewItem,
    SourceIdentifier,
    SourceRecordVersion,
    table_of,
)

_MANUAL = table_of(ManualDecision)

_REVIEWS = table_of(ReviewItem)

_IDENTIFIERS = table_of(SourceIdentifier)

#: A known record's columns as the update path needs them (no ORM entity: nothing to load into the identity map),
#: whether any manual decision names it and whether a review about it is open (most records have neither: the
#: look-up of decisions and the closing of reviews are then skipped).
_RECORD_ROW_COLUMNS = (
    exists().where(or_(_MANUAL.c.record_a_id == _RECORDS.c.id,
                       _MANUAL.c.record_b_id == _RECORDS.c.id)).label("has_manual"),
    exists().where(_REVIEWS.c.source_record_id == _RECORDS.c.id,
                   _REVIEWS.c.status == "open").label("has_open_review"),
    _RECORDS.c.id, _RECORDS.c.provisional, _RECORDS.c.version, _RECORDS.c.last_event_at,
    _RECORDS.c.regional_patient_id, _RECORDS.c.link_state, _RECORDS.c.link_manual, _RECORDS.c.link_score,
    _RECORDS.c.nhs_number_valid, _RECORDS.c.birth_date_text, *(_RECORDS.c[name] for name in DEMOGRAPHIC_FIELDS))

_RECORD_ROW_SQL = select(*_RECORD_ROW_COLUMNS).where(_RECORDS.c.namespace == bindparam("ns"),
                                                     _RECORDS.c.local_id == bindparam("local"))

#: The same by id, with the stored match fields: a record placed again without new demographics.
_RECORD_ROW_BY_ID_SQL = select(*_RECORD_ROW_COLUMNS, _RECORDS.c.match_fields).where(
    _RECORDS.c.id == bindparam("sid"))

#: One statement for every column a write changes; the SET clause follows the parameters given.
_INSERT_RECORD = _RECORDS.insert().returning(_RECORDS.c.id)

_UPDATE_RECORD = _RECORDS.update().where(_RECORDS.c.id == bindparam("rid"))

_OTHER_MEMBER_SQL = select(_RECORDS.c.id).where(
    _RECORDS.c.regional_patient_id == bindparam("rid"), _RECORDS.c.active.is_(True),
    _RECORDS.c.id != bindparam("sid")).limit(1)

_INSERT_VERSION = table_of(SourceRecordVersion).insert()

_INSERT_LINK_EVENT = table_of(LinkEvent).insert()

_INSERT_PATIENT = table_of(RegionalPatient).insert()

#: A patient's golden record (and status, updated_at): the SET clause follows the parameters given.
_UPDATE_PATIENT = table_of(RegionalPatient).update().where(table_of(RegionalPatient).c.id == bindparam("rid"))

#: The columns a new record is written with (by :meth:`mpi.link_on_write.LinkOnWrite.create`), and those of its
#: first version and link event.
_NEW_RECORD_COLUMNS = (*DEMOGRAPHIC_FIELDS, "nhs_number_valid", "birth_date_text", "namespace", "local_id",
                       "trust_ods", "source_kind", "provisional", "active", "version", "match_fields",
                       "regional_patient_id", "link_state", "link_manual", "link_score", "link_weights",
                       "link_model_version", "linked_by", "linked_at", "last_event_at", "created_at", "updated_at")
_VERSION_COLUMNS = ("version", "event", "event_at", "received_at", "applied", "demographics")
_NEW_PATIENT_COLUMNS = ("id", "status", "created_at", "updated_at", "family", "given", "birth_date", "sex",
                        "postcode", "address", "nhs_number")
_LINK_EVENT_COLUMNS = ("from_regional_id", "to_regional_id", "link_state", "manual", "score", "weights",
                       "model_version", "actor", "reason", "at")


def _typed_params(table: Table, names: Sequence[str], prefix: str) -> list[Any]:
    """``CAST(:<prefix><name> AS <column type>)`` for each column: a parameter in a SELECT list has no column to
    take its type from (a NULL would otherwise be text, which a jsonb or timestamptz column refuses). Strings are
    cast to unbounded ``VARCHAR``, so that a value too long for its column is refused by the insert, as a plain
    insert refuses it, rather than cut short by the cast."""
    def target(name: str) -> Any:
        kind = table.c[name].type
        return String() if isinstance(kind, String) else kind

    return [cast(bindparam(prefix + name, type_=table.c[name].type), target(name)) for name in names]


@lru_cache(maxsize=2)
def _new_record_in_one_statement(founds_patient: bool) -> Select[Any]:
    """PostgreSQL: a new record, its first version, its blocking keys and its link event in one statement
    (data-modifying CTEs over the record's ``RETURNING id``), with the regional patient's write: the insert of the
    patient the record founds (``founds_patient``), else the golden record of the patient it joins. One round trip
    where separate statements take five. The foreign keys hold: PostgreSQL checks them once the whole statement
    has run. SQLite has no data-modifying CTEs; there they are separate cached statements, which cost no round
    trips."""
    versions, keys, events = table_of(SourceRecordVersion), table_of(BlockingKey), table_of(LinkEvent)
    # every parameter is prefixed: SQLAlchemy would add a column to an INSERT's or UPDATE's own column list for any
    # parameter that bears the column's name (the record's created_at would reset the joined patient's)
    record = _RECORDS.insert().values({name: bindparam(f"record_{name}", type_=_RECORDS.c[name].type)
                                       for name in _NEW_RECORD_COLUMNS}).returning(_RECORDS.c.id).cte("new_record")
    version = versions.insert().from_select(
        ["source_record_id", *_VERSION_COLUMNS],
        select(record.c.id, *_typed_params(versions, _VERSION_COLUMNS, "version_"))).cte("new_version")
    key_rows = keys.insert().from_select(
        ["source_record_id", "key"],
        select(record.c.id, func.unnest(cast(bindparam("keys"), ARRAY(String))))).cte("new_keys")
    event = events.insert().from_select(
        ["source_record_id", *_LINK_EVENT_COLUMNS],
        select(record.c.id, *_typed_params(events, _LINK_EVENT_COLUMNS, "link_event_"))).cte("new_link_event")
    patients = table_of(RegionalPatient)
    written = {name: bindparam(f"patient_{name}", type_=patients.c[name].type) for name in _NEW_PATIENT_COLUMNS}
    if founds_patient:
        patient = patients.insert().values(written).cte("new_patient")
    else:
        patient = patients.update().where(patients.c.id == written.pop("id")).values(
            {k: v for k, v in written.items() if k != "created_at"}).cte("golden_patient")
    return select(record.c.id).add_cte(version, key_rows, event, patient)


@lru_cache(maxsize=32)
def _insert_blocking_keys_sql(count: int) -> TextClause:
    """One multi-row INSERT of ``count`` keys of one record (one statement and, on PostgreSQL, one round trip,
    where an executemany costs a statement per row); cached per count."""
    rows = ", ".join(f"(:sid, :k{i})" for i in range(count))
    return text(f"INSERT INTO blocking_key (source_record_id, key) VALUES {rows}")


_BLOCKING_KEYS_OF_SQL = select(table_of(BlockingKey).c.key).where(
    table_of(BlockingKey).c.source_record_id == bindparam("sid"))

_DELETE_BLOCKING_KEYS = table_of(BlockingKey).delete().where(
    table_of(BlockingKey).c.source_record_id == bindparam("sid"),
    table_of(BlockingKey).c.key.in_(bindparam("keys", expanding=True)))

#: PostgreSQL: a known record's blocking keys replaced in one statement (the stale ones deleted, the new ones
#: inserted; both parts see the rows as they were, and a key kept is neither deleted nor inserted again), where
#: reading the current keys first takes three round trips.
_REPLACE_BLOCKING_KEYS_PG = text(
    "WITH stale AS (DELETE FROM blocking_key WHERE source_record_id = :sid AND NOT (key = ANY(:keys))) "
    "INSERT INTO blocking_key (source_record_id, key) SELECT :sid, k FROM unnest(CAST(:keys AS VARCHAR[])) AS k "
    "ON CONFLICT DO NOTHING")

_INSERT_REVIEW = _REVIEWS.insert().returning(_REVIEWS.c.id)

_CLOSE_REVIEWS = _REVIEWS.update().where(_REVIEWS.c.source_record_id == bindparam("sid"),
                                         _REVIEWS.c.status == "open").values(status="superseded")

_UPDATE_REVIEW = _REVIEWS.update().where(_REVIEWS.c.id == bindparam("item"))

#: A record's further identifiers (every use), to add only those it lacks.
_IDENTIFIERS_OF_SQL = select(_IDENTIFIERS.c.system, _IDENTIFIERS.c.value).where(
    _IDENTIFIERS.c.source_record_id == bindparam("sid"))

_INSERT_IDENTIFIER = _IDENTIFIERS.insert()

#: One identifier of a record (by system and value): its use set, or the row deleted.
_ONE_IDENTIFIER = (_IDENTIFIERS.c.source_record_id == bindparam("sid"), _IDENTIFIERS.c.system == bindparam("sys"),
                   _IDENTIFIERS.c.value == bindparam("val"))
_SET_IDENTIFIER_USE = _IDENTIFIERS.update().where(*_ONE_IDENTIFIER).values(use=bindparam("new_use"))
_DELETE_IDENTIFIER = _IDENTIFIERS.delete().where(*_ONE_IDENTIFIER)

#: The manual decision about a pair of records (the smaller id first), to replace or add.
_DECISION_OF_PAIR_SQL = select(_MANUAL.c.id).where(_MANUAL.c.record_a_id == bindparam("a"),
                                                   _MANUAL.c.record_b_id == bindparam("b"))
_INSERT_DECISION = _MANUAL.insert()
_UPDATE_DECISION = _MANUAL.update().where(_MANUAL.c.id == bindparam("did"))

#: An emptied patient that a merge retired into another stays retired (its golden record has no member left).
_RETIRE_EMPTY = table_of(RegionalPatient).update().where(
    table_of(RegionalPatient).c.id == bindparam("rid"),
    table_of(RegionalPatient).c.merged_into_id.is_not(None)).values(status="retired")
