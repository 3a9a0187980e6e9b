"""Studies written in bulk: a group of DICOM statements merged in memory, then written many rows per statement.

The bulk load (``priorscan backfill``) reads DICOM headers in worker processes and hands them here in groups, in
file order. :func:`load_studies` applies a group in the caller's transaction with exactly the merge a live object
gets (:meth:`imaging.index.StudyIndex.apply`: fields, procedure, laterality, dose events and summary, the object's
instance row, the patient's record — a provisional one linked on write when the identifier is new), but a study that
is new to the store is built in memory across all its objects in the group and written once: the study, its
irradiation events, its instances and the audit events of its objects, each table in one multi-row INSERT (SQLite)
or COPY (PostgreSQL; :mod:`priorscan.bulk_rows`). A study the store holds already is merged in the session, as a
live object is. The merge rules are written once, in :class:`~imaging.index.StudyIndex`; only where the rows live
differs.

What only the per-message path does is left to it: a group holding an IOCM rejection note, an object of a new
study whose instance the store holds already, or a new study with rejections recorded before it arrived makes
:func:`load_studies` return ``None`` without writing, and the caller applies that group by
:func:`imaging.adapters.apply_many`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Table, inspect, select, tuple_
from sqlalchemy.orm import Session

from imaging.adapters import actor_of, applied_audit, applied_outcome
from imaging.facts import StudyFacts
from imaging.index import StudyIndex, new_study
from imaging.iocm import RejectionNote
from imaging.tables import InstanceRejection, IrradiationEvent, Study, StudyInstance
from mpi import SourceRecord
from priorscan.audit import Agent, audit_row
from priorscan.bulk_rows import JsonText, insert_rows, reserve_ids
from priorscan.db import JSONType
from priorscan.outcome import ItemOutcome
from priorscan.tables import AuditEvent
from priorscan.trusts import TrustRegistry
from priorscan.writes import with_defaults

_LOOKUP_CHUNK = 500
JSON_NULL = JsonText("null")


class _GroupIndex(StudyIndex):
    """:class:`StudyIndex` whose new studies, their events and instances live in memory until the group is written;
    source records are looked up once for the whole group."""

    def __init__(self, session: Session, trusts: TrustRegistry, records: dict[tuple[str, str], SourceRecord],
                 study_ids: list[int]) -> None:
        super().__init__(session, trusts)
        self.studies: dict[str, Study] = {}
        self.events: dict[int, dict[str, IrradiationEvent]] = {}
        self.instances: dict[str, StudyInstance] = {}
        self._records = records
        self._by_id = {record.id: record for record in records.values()}
        self._ids = iter(study_ids)

    def find(self, study_instance_uid: str, *, lock: bool = False) -> Study | None:
        return self.studies.get(study_instance_uid[:64])

    def _new_study(self, facts: StudyFacts) -> Study:
        study = new_study(facts)
        study.id = next(self._ids)
        self.studies[study.study_instance_uid] = study
        self.events[study.id] = {}
        return study

    def _rejections(self, study: Study) -> dict[str, str]:
        return {}  # none recorded for a new study (load_studies makes sure)

    def _flush(self) -> None:
        pass

    def _add(self, row: IrradiationEvent | StudyInstance) -> None:
        if isinstance(row, IrradiationEvent):
            self.events[row.study_id][row.event_uid] = row
        else:
            self.instances[row.sop_instance_uid] = row

    def _events(self, study: Study) -> list[IrradiationEvent]:
        return list(self.events[study.id].values())

    def _instance(self, sop_instance_uid: str) -> StudyInstance | None:
        return self.instances.get(sop_instance_uid)

    def _record_by_id(self, record_id: int) -> SourceRecord | None:
        return self._by_id.get(record_id) or super()._record_by_id(record_id)

    def _record_by_key(self, namespace: str, local_id: str) -> SourceRecord | None:
        record = self._records.get((namespace, local_id))
        if record is None:  # a record made during this group (by a study the session holds, or a provisional one)
            record = super()._record_by_key(namespace, local_id)
            if record is not None:
                self._remember(record)
        return record

    def _provisional_record(self, facts: StudyFacts, actor: str) -> SourceRecord | None:
        record = super()._provisional_record(facts, actor)
        if record is not None:
            self._remember(record)
        return record

    def _remember(self, record: SourceRecord) -> None:
        self._records[(record.namespace, record.local_id)] = record
        self._by_id[record.id] = record


def _row(table: Table, entity: object) -> dict[str, Any]:
    """The columns of an ORM object that was never added to a session, as its flush would insert them: attributes
    never set take the column's Python default, and a JSON column without a value holds JSON ``null``, as the ORM
    writes it (it sends None for every column without a default, and JSON types store None as ``null``)."""
    state = inspect(entity).dict  # type: ignore[union-attr]
    row = with_defaults(table, {c.key: state[c.key] for c in table.columns if c.key in state})
    for name in _json_columns(table):
        if row.get(name) is None:
            row[name] = JSON_NULL
    return row


@lru_cache(maxsize=8)
def _json_columns(table: Table) -> tuple[str, ...]:
    return tuple(c.key for c in table.columns if isinstance(c.type, JSONType))


def _complete(table: Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every row with every column (a multi-row statement needs one column list)."""
    names = [c.key for c in table.columns]
    return [{name: row.get(name) for name in names} for row in rows]


def _records_of(session: Session, keys: set[tuple[str, str]]) -> dict[tuple[str, str], SourceRecord]:
    wanted = sorted(keys)
    found: dict[tuple[str, str], SourceRecord] = {}
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        chunk = wanted[start:start + _LOOKUP_CHUNK]
        for record in session.scalars(select(SourceRecord).where(
                tuple_(SourceRecord.namespace, SourceRecord.local_id).in_(chunk))):
            found[(record.namespace, record.local_id)] = record
    return found


def _present(session: Session, column: Any, values: set[str]) -> set[str]:
    wanted = sorted(values)
    found: set[str] = set()
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        found.update(session.scalars(select(column).where(column.in_(wanted[start:start + _LOOKUP_CHUNK]))))
    return found


def load_studies(session: Session, trusts: TrustRegistry, items: Sequence[tuple[StudyFacts, RejectionNote | None]],
                 *, agent: Agent, event_type: str = "dicom") -> list[ItemOutcome] | None:
    """Apply a group of DICOM statements in the caller's transaction (not committed), new studies written in bulk.

    Parameters
    ----------
    session : Session
        An open writing unit of work (on SQLite it holds the write lock: ``unit_of_work(..., write=True)``).
    trusts : TrustRegistry
        The consortium.
    items : sequence of (StudyFacts, RejectionNote or None)
        The statements, in the order a live feed would apply them (:func:`imaging.adapters.read_dicom_header`).
    agent : priorscan.audit.Agent
        Who is loading them (audited, one event per object as a live object gets).
    event_type : str
        The audit events' type.

    Returns
    -------
    list of ItemOutcome or None
        The outcome of each statement, in order, as :func:`imaging.adapters.apply_many` gives it; ``None`` (nothing
        written) when the group holds what only the per-message path applies (see the module docstring).
    """
    if any(rejection is not None for _, rejection in items):
        return None
    uids = {facts.study_instance_uid[:64] for facts, _ in items}
    stored = _present(session, Study.study_instance_uid, uids)
    new = uids - stored
    sops = {facts.sop_instance_uid[:64] for facts, _ in items
            if facts.sop_instance_uid and facts.study_instance_uid[:64] in new}
    if _present(session, InstanceRejection.study_instance_uid, new) or _present(
            session, StudyInstance.sop_instance_uid, sops):
        return None
    connection = session.connection()
    keys = {(facts.patient.namespace or "", (facts.patient.local_id or "").strip()) for facts, _ in items
            if facts.patient.resolved}
    memory = _GroupIndex(session, trusts, _records_of(session, keys),
                         reserve_ids(connection, _table(Study), len(new)))
    in_session = StudyIndex(session, trusts)
    actor = actor_of(agent)
    outcomes: list[ItemOutcome] = []
    audits: list[dict[str, Any]] = []
    for facts, _ in items:
        index = in_session if facts.study_instance_uid[:64] in stored else memory
        indexed = index.apply(facts, actor=actor)
        audits.append(audit_row(agent, **applied_audit(indexed, facts, event_type=event_type)))
        outcomes.append(applied_outcome(indexed, facts))
    session.flush()  # what the session holds first: provisional records, studies it merged, their rows
    _write(session, memory, audits)
    return outcomes


def _write(session: Session, memory: _GroupIndex, audits: list[dict[str, Any]]) -> None:
    connection = session.connection()
    study_table, event_table = _table(Study), _table(IrradiationEvent)
    instance_table, audit_table = _table(StudyInstance), _table(AuditEvent)
    studies = [_row(study_table, study) for study in memory.studies.values()]
    events = [_row(event_table, row) for rows in memory.events.values() for row in rows.values()]
    instances = [_row(instance_table, row) for row in memory.instances.values()]
    audits = [with_defaults(audit_table, row) for row in audits]
    for rows, table in ((events, event_table), (instances, instance_table), (audits, audit_table)):
        for row, row_id in zip(rows, reserve_ids(connection, table, len(rows)), strict=True):
            row["id"] = row_id
    for rows, table in ((studies, study_table), (events, event_table), (instances, instance_table),
                        (audits, audit_table)):
        insert_rows(connection, table, _complete(table, rows))


def _table(model: type) -> Table:
    return model.__table__  # type: ignore[attr-defined, no-any-return]


__all__ = ["load_studies"]
