"""Studies written in bulk: a group of DICOM statements merged in memory, then written many rows per statement.

The bulk load (``priorscan backfill``) reads DICOM headers in worker processes and hands them here in groups, in
file order. :func:`load_studies` applies a group in the caller's transaction with exactly the merge a live object
gets (:meth:`imaging.index.StudyIndex.apply`: fields, procedure, laterality, dose events and summary, the object's
instance row, the patient's record — a provisional one linked on write when the identifier is new), but a study that
is new to the store is built in memory across all its objects in the group and written once: the study, its
irradiation events, its instances and the audit events of its objects, each table in one multi-row INSERT (SQLite)
or COPY (PostgreSQL; the few rows of a pushed group as INSERTs in one pipeline instead:
:func:`priorscan.bulk_rows.insert_tables`). A study the store holds already is merged in the session, as a live
object is; the group's held studies are found and row-locked in one statement, and their recorded rejections and the
group's instance rows read in one statement each, whatever the number of studies (each statement is a round trip to
the server, and a pushed group is a few objects). The merge rules are written once, in
:class:`~imaging.index.StudyIndex`; only where the rows live differs.

What only the per-message path does is left to it: a group holding an IOCM rejection note, an object of a new
study whose instance the store holds already, or a new study with rejections recorded before it arrived makes
:func:`load_studies` return ``None`` without writing, and the caller applies that group by
:func:`imaging.adapters.apply_many`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Table, bindparam, inspect, select, tuple_
from sqlalchemy.orm import Session

from imaging import dose as dz
from imaging.adapters import actor_of, applied_audit, applied_outcome
from imaging.facts import StudyFacts
from imaging.index import StudyIndex, new_study
from imaging.iocm import RejectionNote
from imaging.reports import fill_report, link_report
from imaging.tables import ImagingOrder, InstanceRejection, IrradiationEvent, Study, StudyInstance, StudyReport
from mpi import SourceRecord
from priorscan.audit import Agent, audit_row
from priorscan.bulk_rows import JSON_NULL, insert_tables, is_postgresql, reserve_ids
from priorscan.db import JSONType
from priorscan.outcome import ItemOutcome
from priorscan.tables import AuditEvent
from priorscan.trusts import TrustRegistry
from priorscan.writes import advisory_key, advisory_locks, with_defaults

_LOOKUP_CHUNK = 500
# a group's look-ups, built once (SQLAlchemy memoises their cache keys)
_HOLD = (select(Study, SourceRecord).outerjoin(SourceRecord, SourceRecord.id == Study.source_record_id)
         .where(Study.study_instance_uid.in_(bindparam("uids", expanding=True)))
         .order_by(Study.study_instance_uid).with_for_update(of=Study))
_REJECTIONS = select(InstanceRejection.study_instance_uid, InstanceRejection.sop_instance_uid,
                     InstanceRejection.code).where(
    InstanceRejection.study_instance_uid.in_(bindparam("uids", expanding=True)))
_INSTANCES = select(StudyInstance).where(StudyInstance.sop_instance_uid.in_(bindparam("sops", expanding=True)))


class _GroupIndex(StudyIndex):
    """:class:`StudyIndex` whose new studies, their events and instances live in memory until the group is written;
    source records are looked up once for the whole group.

    A study's dose summary is worked out once, when the group is written (:meth:`summarise_pending`), rather than
    after each of its objects (a CT series of ten images summarised ten times over): the summary is a function of
    the study's events, reports, body region and patient age as they stand after its last object, which nothing
    reads before the group is written but the summary's source (each object's outcome names it), kept current
    object by object (:func:`imaging.dose.dose_source`)."""

    def __init__(self, session: Session, trusts: TrustRegistry) -> None:
        super().__init__(session, trusts)
        self.studies: dict[str, Study] = {}
        self.events: dict[int, dict[str, IrradiationEvent]] = {}
        self.instances: dict[str, StudyInstance] = {}
        self._unsummarised: dict[int, Study] = {}  # studies whose dose changed since they were last summarised
        self._records: dict[tuple[str, str], SourceRecord] = {}
        self._by_id: dict[int, SourceRecord] = {}
        #: keys looked up for the group and not held: still not held unless a record of the group made them, which
        #: is then in ``_records`` (every record the group makes is remembered here, the held studies' too)
        self._absent: set[tuple[str, str]] = set()
        self._ids = _Ids(session.connection(), _table(Study))

    def preload(self, records: dict[tuple[str, str], SourceRecord], looked_up: set[tuple[str, str]]) -> None:
        """Source records looked up once for the group, by key (``looked_up``: every key looked up)."""
        for record in records.values():
            self.remember(record)
        self._absent = looked_up - records.keys()

    def find(self, study_instance_uid: str, *, lock: bool = False) -> Study | None:
        return self.studies.get(study_instance_uid[:64])

    def _new_study(self, facts: StudyFacts) -> Study:
        study = new_study(facts)
        study.id = self._ids.take()
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

    def summarise(self, study: Study, rows: list[IrradiationEvent]) -> None:
        """The summary's source now; the whole summary when the group is written (see the class docstring)."""
        reports = [dz.ReportTotals.from_json(k, v) for k, v in (study.accumulated_dose or {}).items()]
        study.dose_source = dz.dose_source([row.source or "rdsr" for row in rows], reports)  # as to_event reads it
        self._unsummarised[study.id] = study

    def summarise_pending(self) -> None:
        """Summarise each study whose dose changed in the group, once, over its events as they stand now (in the
        order the per-object path summarises them)."""
        for study in self._unsummarised.values():
            super().summarise(study, self._events(study))
        self._unsummarised.clear()

    def _instance(self, sop_instance_uid: str) -> StudyInstance | None:
        return self.instances.get(sop_instance_uid)

    def _record_by_id(self, record_id: int) -> SourceRecord | None:
        return self._by_id.get(record_id) or super()._record_by_id(record_id)

    def _record_by_key(self, namespace: str, local_id: str) -> SourceRecord | None:
        record = self._records.get((namespace, local_id))
        if record is None and (namespace, local_id) not in self._absent:  # a key the group did not look up
            record = super()._record_by_key(namespace, local_id)
            if record is not None:
                self.remember(record)
        return record

    def _provisional_record(self, facts: StudyFacts, actor: str) -> SourceRecord | None:
        """A new patient's provisional record, linked on write as the per-message path links it; when the group
        looked its key up and found none, written without looking it up again, and kept as the columns the index
        reads of it (not read back: two statements of the six a new patient costs, each a round trip)."""
        key = (facts.patient.namespace or "", (facts.patient.local_id or "").strip())
        if key not in self._absent or key in self._records:
            record = super()._provisional_record(facts, actor)
        else:
            outcome = self._link_provisional(facts, actor, absent=True)
            record = SourceRecord(id=outcome.source_record_id, namespace=key[0], local_id=key[1], provisional=True,
                                  active=True, regional_patient_id=outcome.regional_id,
                                  link_state=outcome.link_state, link_score=outcome.score)
        if record is not None:
            self.remember(record)
        return record

    def remember(self, record: SourceRecord) -> None:
        self._records[(record.namespace, record.local_id)] = record
        self._by_id[record.id] = record


class _HeldIndex(StudyIndex):
    """:class:`StudyIndex` over the studies the store holds, for one group: each study found (and row-locked) once,
    its recorded rejections, irradiation events and instances read once for the group rather than once per object
    (nothing else writes them while the group's transaction holds the study), and the rows its objects add flushed
    together with the group's new studies. A study with rejections recorded is read again each time and its rows
    added in the session (:func:`imaging.withdrawal.reassess` reads them back, and may delete its events)."""

    def __init__(self, session: Session, trusts: TrustRegistry) -> None:
        super().__init__(session, trusts)
        self._studies: dict[str, Study] = {}
        self._rejection_codes: dict[int, dict[str, str]] = {}
        self._event_rows: dict[int, list[IrradiationEvent]] = {}
        self._instances: dict[str, StudyInstance | None] = {}
        #: irradiation events and instances added to held studies without rejections: no statement reads them again
        #: in the group, so they are inserted with the group's rows
        self.new_rows: list[IrradiationEvent | StudyInstance] = []
        #: told of each provisional record this index makes (the group's new studies then know it is held)
        self.made: Callable[[SourceRecord], None] | None = None

    def hold(self, uids: set[str]) -> set[str]:
        """Which of ``uids`` the store holds: those studies found and row-locked (in UID order) with their source
        records, in one statement for the group rather than one per study, and kept as :meth:`find` keeps them."""
        wanted = sorted(uids)
        for start in range(0, len(wanted), _LOOKUP_CHUNK):
            for study, record in self.session.execute(_HOLD, {"uids": wanted[start:start + _LOOKUP_CHUNK]}).tuples():
                self._studies[study.study_instance_uid] = study
                if record is not None:
                    self._loaded_records.append(record)
        return set(self._studies) & uids

    def preload(self, rejections: dict[str, dict[str, str]], instances: dict[str, StudyInstance],
                sop_instance_uids: set[str]) -> None:
        """What the group read once for its held studies: the rejection codes recorded for their objects (by study
        UID, then SOP Instance UID), and the instance rows of these objects (None: not held)."""
        for uid, study in self._studies.items():
            self._rejection_codes[study.id] = rejections.get(uid, {})
        self._instances.update({sop: instances.get(sop) for sop in sop_instance_uids})

    def find(self, study_instance_uid: str, *, lock: bool = False) -> Study | None:
        study = self._studies.get(study_instance_uid)
        if study is None:
            study = super().find(study_instance_uid, lock=lock)
            if study is not None and lock:  # locked until the group's commit
                self._studies[study_instance_uid] = study
        return study

    def _rejections(self, study: Study) -> dict[str, str]:
        codes = self._rejection_codes.get(study.id)
        if codes is None:
            codes = self._rejection_codes[study.id] = super()._rejections(study)
        return codes

    def _flush(self) -> None:
        pass  # a held study has its id; the rows its objects add are flushed together, before the next statement

    def _events(self, study: Study) -> list[IrradiationEvent]:
        if self._rejections(study):
            self._event_rows.pop(study.id, None)
            return super()._events(study)
        rows = self._event_rows.get(study.id)
        if rows is None:
            rows = self._event_rows[study.id] = super()._events(study)
        return list(rows)

    def _add(self, row: IrradiationEvent | StudyInstance) -> None:
        study_id = row.study_id
        if study_id is not None and not self._rejection_codes.get(study_id, {"": ""}):
            self.new_rows.append(row)  # written with the group's new studies (StudyGroup.write)
        else:
            super()._add(row)
        if isinstance(row, IrradiationEvent):
            if row.study_id in self._event_rows:
                self._event_rows[row.study_id].append(row)
        else:
            self._instances[row.sop_instance_uid] = row

    def _instance(self, sop_instance_uid: str) -> StudyInstance | None:
        if sop_instance_uid in self._instances:
            return self._instances[sop_instance_uid]
        return super()._instance(sop_instance_uid)

    def _provisional_record(self, facts: StudyFacts, actor: str) -> SourceRecord | None:
        record = super()._provisional_record(facts, actor)
        if record is not None and self.made is not None:
            self.made(record)
        return record


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


def _complete(table: Table, rows: list[dict[str, Any]], *, numbered: bool = False) -> list[dict[str, Any]]:
    """Every row with every column (a multi-row statement needs one column list); with ``numbered``, without the id,
    which the store gives each row as it is inserted (its sequence on PostgreSQL, the rowid on SQLite)."""
    names = [c.key for c in table.columns if not (numbered and c.key == "id")]
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


def _rejections_of(session: Session, uids: set[str]) -> dict[str, dict[str, str]]:
    """The rejection codes recorded for objects of these studies, by study UID, then SOP Instance UID."""
    wanted = sorted(uids)
    found: dict[str, dict[str, str]] = {}
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        for uid, sop, code in session.execute(_REJECTIONS, {"uids": wanted[start:start + _LOOKUP_CHUNK]}).tuples():
            found.setdefault(uid, {})[sop] = code
    return found


def _instances_of(session: Session, sop_instance_uids: set[str]) -> dict[str, StudyInstance]:
    """The instance rows the store holds of these objects, by SOP Instance UID."""
    wanted = sorted(sop_instance_uids)
    found: dict[str, StudyInstance] = {}
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        for row in session.scalars(_INSTANCES, {"sops": wanted[start:start + _LOOKUP_CHUNK]}):
            found[row.sop_instance_uid] = row
    return found


def _present(session: Session, column: Any, values: set[str]) -> set[str]:
    wanted = sorted(values)
    found: set[str] = set()
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        found.update(session.scalars(select(column).where(column.in_(wanted[start:start + _LOOKUP_CHUNK]))))
    return found


class _Ids:
    """New ids of one table, reserved as they are needed (:func:`priorscan.bulk_rows.reserve_ids`): from its
    sequence on PostgreSQL, a few at a time; on SQLite, counted on from its largest id (the transaction holds the write
    lock, and nothing else inserts into the table until the group is written)."""

    CHUNK = 64

    def __init__(self, connection: Any, table: Table) -> None:
        self.connection, self.table = connection, table
        self.pending: list[int] = []
        self.next: int | None = None

    def take(self) -> int:
        if is_postgresql(self.connection):
            if not self.pending:
                self.pending = reserve_ids(self.connection, self.table, self.CHUNK)
            return self.pending.pop(0)
        if self.next is None:
            self.next = reserve_ids(self.connection, self.table, 1)[0]
        taken, self.next = self.next, self.next + 1
        return taken


class StudyGroup:
    """The studies one transaction applies statements to: new ones held in memory and written together by
    :meth:`write`, the ones the store holds merged in the session (see the module docstring).

    Parameters
    ----------
    session : Session
        An open writing unit of work (on SQLite it holds the write lock: ``unit_of_work(..., write=True)``).
    trusts : TrustRegistry
        The consortium.
    """

    def __init__(self, session: Session, trusts: TrustRegistry) -> None:
        self.session = session
        self.memory = _GroupIndex(session, trusts)
        held = _HeldIndex(session, trusts)
        held.made = self.memory.remember
        self.stored: StudyIndex = held
        self.reports: dict[tuple[str, str], StudyReport] = {}
        self._held: dict[str, bool] = {}  # study UID -> the store holds it
        self._orders: bool | None = None

    def index_for(self, study_instance_uid: str) -> StudyIndex:
        """The index that applies a statement about this study: the session's for a study the store holds."""
        uid = study_instance_uid[:64]
        if uid in self.memory.studies:
            return self.memory
        held = self._held.get(uid)
        if held is None:
            held = self._held[uid] = self.stored.find(uid) is not None
        return self.stored if held else self.memory

    def hold(self, uids: set[str]) -> set[str]:
        """Which of ``uids`` the store holds, those studies found and row-locked at once (:meth:`_HeldIndex.hold`);
        remembered."""
        if isinstance(self.stored, _HeldIndex):
            found = self.stored.hold(uids)
        else:
            found = _present(self.session, Study.study_instance_uid, uids)
        self._held.update({uid: uid in found for uid in uids})
        return found

    def orders_held(self) -> bool:
        """Whether the store holds any order (looked up once: a bulk load's results come before its orders, and a
        group of results creates none)."""
        if self._orders is None:
            self._orders = self.session.scalars(select(ImagingOrder.id).limit(1)).first() is not None
        return self._orders

    def uid_by_accession(self, trust_ods: str, accession: str) -> str | None:
        """A new study of this group performed at ``trust_ods`` with that accession number (the first made)."""
        return next((uid for uid, study in self.memory.studies.items()
                     if study.performing_trust == trust_ods and study.accession_number == accession), None)

    def link_report(self, study: Study, *, source: str, report_id: str, status: str | None, conclusion: str | None,
                    text: str | None, issued_at: datetime | None) -> None:
        """:func:`imaging.reports.link_report`, the report of a new study kept with it in memory (a study new to the
        store has no report in it: reports go with their study)."""
        if self.memory.studies.get(study.study_instance_uid) is not study:
            link_report(self.session, study, source=source, report_id=report_id, status=status,
                        conclusion=conclusion, text=text, issued_at=issued_at)
            return
        key = (source[:10], report_id[:200])
        row = self.reports.get(key)
        if row is None:
            row = self.reports[key] = StudyReport(source=key[0], report_id=key[1], study_id=study.id)
        fill_report(row, study, status=status, conclusion=conclusion, text=text, issued_at=issued_at)

    def write(self, audits: Sequence[dict[str, Any]] = ()) -> None:
        """Write the new studies with their irradiation events, instances and reports, and ``audits`` (audit event
        rows), many rows per statement, in the session's transaction (after what the session holds)."""
        self.memory.summarise_pending()
        self.session.flush()  # provisional records, the studies the session merged, their rows
        connection = self.session.connection()
        tables: dict[type, Table] = {model: _table(model) for model in (Study, IrradiationEvent, StudyInstance,
                                                                      StudyReport, AuditEvent)}
        held = self.stored.new_rows if isinstance(self.stored, _HeldIndex) else []
        rows: dict[type, list[dict[str, Any]]] = {
            Study: [_row(tables[Study], study) for study in self.memory.studies.values()],
            IrradiationEvent: [_row(tables[IrradiationEvent], row) for rows in self.memory.events.values()
                               for row in rows.values()]
            + [_row(tables[IrradiationEvent], row) for row in held if isinstance(row, IrradiationEvent)],
            StudyInstance: [_row(tables[StudyInstance], row) for row in self.memory.instances.values()]
            + [_row(tables[StudyInstance], row) for row in held if isinstance(row, StudyInstance)],
            StudyReport: [_row(tables[StudyReport], row) for row in self.reports.values()],
            AuditEvent: [with_defaults(tables[AuditEvent], row) for row in audits],
        }
        # studies first (their ids reserved): the others name them; no row names an event, instance, report or audit
        # event: the store numbers them as they are inserted
        insert_tables(connection, [(table, _complete(table, rows[model], numbered=model is not Study))
                                   for model, table in tables.items()])


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
    _lock_studies(session, uids)
    group = StudyGroup(session, trusts)
    stored = group.hold(uids)
    new = uids - stored
    # what the group's objects need read, one statement each for the whole group (held studies and new alike)
    rejections = _rejections_of(session, uids)
    sops = {facts.sop_instance_uid[:64]: facts.study_instance_uid[:64] for facts, _ in items
            if facts.sop_instance_uid}
    instances = _instances_of(session, set(sops))
    if new & rejections.keys() or any(sops[sop] in new for sop in instances):
        return None
    keys = {(facts.patient.namespace or "", (facts.patient.local_id or "").strip()) for facts, _ in items
            if facts.patient.resolved and facts.study_instance_uid[:64] in new}
    group.memory.preload(_records_of(session, keys), keys)
    if isinstance(group.stored, _HeldIndex):
        group.stored.preload(rejections, instances, {sop for sop, uid in sops.items() if uid in stored})
    actor = actor_of(agent)
    outcomes: list[ItemOutcome] = []
    audits: list[dict[str, Any]] = []
    for facts, _ in items:
        indexed = group.index_for(facts.study_instance_uid).apply(facts, actor=actor)
        audits.append(audit_row(agent, **applied_audit(indexed, facts, event_type=event_type)))
        outcomes.append(applied_outcome(indexed, facts))
    group.write(audits)
    return outcomes


def _lock_studies(session: Session, uids: set[str]) -> None:
    """On PostgreSQL, advisory locks on the group's study UIDs (:func:`priorscan.writes.advisory_locks`), before
    anything is read: a group that shares a new study with another transaction's waits for its commit and then finds
    the study held, where both would insert it and one would fail (DESIGN section 5: races settled by the database's
    locks). SQLite's write lock, which the unit of work holds, does this already."""
    advisory_locks(session, (advisory_key(f"study:{uid}") for uid in uids))


def _table(model: type) -> Table:
    return model.__table__  # type: ignore[attr-defined, no-any-return]


__all__ = ["StudyGroup", "load_studies"]
