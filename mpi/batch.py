"""Batch operations over the store: bulk loading, ``priorscan link`` (train, score, cluster, write back).

The relink reads every active source record's stored ``match_fields`` into one frame, finds blocked pairs from the
same keys real time uses, trains a fresh model (unless told not to), links with :func:`mpi.linkage.link_frame`
(manual decisions respected: manual links forced, manual no-matches kept apart), and writes back only what
changed, each change with a :class:`~mpi.tables.LinkEvent` saying that the batch relink made it and with which
model.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Dialect, bindparam, case, func, select, text, update
from sqlalchemy.orm import Session

from mpi.blocking import KEY_SCHEME, blocked_pairs, blocking_keys, key_table
from mpi.decisions import MATCH, NO_MATCH, POSSIBLE, derive_match_threshold
from mpi.frames import Frame, frame_from_table, table_from_stored
from mpi.identifier_systems import identifier_tokens
from mpi.linkage import link_frame
from mpi.model import Model
from mpi.nhs_number import is_valid_nhs_number, normalise_nhs_number
from mpi.normalise import MatchRecord, as_date, to_match_record
from mpi.record_columns import UNLINKED_COLUMNS, UnlinkedRows
from mpi.records import Demographics, new_regional_ids
from mpi.scoring import explanations, score_frames, with_rule_8
from mpi.spare_core import beside, spare_core
from mpi.tables import (
    BlockingKey,
    BlockingKeyScheme,
    LinkEvent,
    ManualDecision,
    MatchModel,
    RegionalPatient,
    ReviewItem,
    SourceRecord,
    table_of,
)
from mpi.training import TRAINING_SAMPLE, sampled_frame, train_if_supported
from priorscan.bulk_rows import (
    JSON_NULL,
    JsonText,
    Prepared,
    from_copy_text,
    held_keys,
    insert_rows,
    prepare_rows,
    update_rows,
)
from priorscan.db import utcnow

log = logging.getLogger(__name__)

GOLDEN_FIELDS = ("family", "given", "birth_date", "sex", "postcode", "address")


@dataclass
class RelinkResult:
    """What a batch relink did."""

    records: int
    pairs_scored: int
    match_links: int
    patients: int
    records_changed: int
    review_items: int
    components_rebuilt: int
    model_version: str
    trained: bool
    timings: dict[str, float] = field(default_factory=dict)
    model_description: str = ""  # which model linked, for people (shipped prior or trained on how many records)
    table_held: bool = False  # the table came from the bulk load's writer (WrittenUnlinked), not a read of the store
    training_note: str | None = None  # why training did not replace the model in use, when it did not

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --- loading -----------------------------------------------------------------------------------------------------

#: The columns of :func:`load_table`'s read, in order (:func:`table_from_rows`).
TABLE_COLUMNS = ("record_id", "regional_patient_id", "link_state", "link_manual", "match_fields", "provisional",
                 "nhs_raw", "nhs_number_valid", "nhs_verification", "family_raw", "given_raw", "birth_date",
                 "birth_date_text", "sex_raw", "postcode_raw", "address_raw", "phone_raw", "last_event_at",
                 "updated_at")


def load_table(session: Session, *, ids: tuple[int, int] | None = None) -> pd.DataFrame:
    """Every active source record: ids, link, raw golden-record fields and normalised match fields.

    ``ids`` ``(first, last)`` reads only the records whose id lies in that closed range (one slice of the store,
    as a task of the Spark relink reads it).
    """
    query = select(
        SourceRecord.id, SourceRecord.regional_patient_id, SourceRecord.link_state, SourceRecord.link_manual,
        SourceRecord.match_fields, SourceRecord.provisional, SourceRecord.nhs_number, SourceRecord.nhs_number_valid,
        SourceRecord.nhs_verification, SourceRecord.family, SourceRecord.given, SourceRecord.birth_date,
        SourceRecord.birth_date_text, SourceRecord.sex, SourceRecord.postcode, SourceRecord.address,
        SourceRecord.phone, SourceRecord.last_event_at, SourceRecord.updated_at
    ).where(SourceRecord.active.is_(True)).order_by(SourceRecord.id)
    if ids is not None:
        query = query.where(SourceRecord.id.between(*ids))
    return table_from_rows(session.execute(query).all())


def table_from_rows(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """:func:`load_table`'s table from rows of :data:`TABLE_COLUMNS` (in order of record id)."""
    raw = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    stored = raw["match_fields"].tolist()
    unstored = [n for n, fields in enumerate(stored) if fields is None]
    # only the rows without stored match fields are walked (a walk of every row costs more than the read)
    for n, row in zip(unstored, raw.iloc[unstored].itertuples(index=False), strict=True):
        stored[n] = to_match_record(row.record_id, {
            "nhs_number": row.nhs_raw, "nhs_verification": row.nhs_verification, "family": row.family_raw,
            "given": row.given_raw, "birth_date": row.birth_date, "birth_date_text": row.birth_date_text,
            "sex": row.sex_raw, "postcode": row.postcode_raw, "address": row.address_raw,
            "phone": row.phone_raw}).as_stored()
    fields = table_from_stored(raw["record_id"].tolist(), stored).drop(columns=["record_id"])
    fields.index = raw.index
    return pd.concat([raw.drop(columns=["match_fields"]), fields], axis=1)


class WrittenUnlinked:
    """The records a bulk load wrote unlinked into a store that held no source record, as :func:`load_table` would
    read them back: the relink takes its table from here instead of reading the store (:meth:`table`) when, under
    its lock, the store holds exactly these records as they were written; otherwise it reads the store (H-ID-40).

    Holds at most ``at_most`` records (then nothing: the relink reads the store), bounding the load's memory."""

    def __init__(self, at_most: int = 500_000) -> None:
        self.rows: list[tuple[Any, ...]] | None = []
        self.at_most = at_most
        self._ids = 0

    def add(self, ids: Sequence[int], records: Sequence[UnlinkedRows], dialect: Dialect) -> None:
        """Records just written (committed): their ids and rows as sent to ``dialect``'s driver
        (:class:`mpi.store_writer.UnlinkedConverter`), read back as the store gives them (the columns' result
        processors: a date, a timestamp or a flag from SQLite's text and integers), each distinct value once."""
        if self.rows is None:
            return
        if len(self.rows) + len(ids) > self.at_most:
            self.rows = None
            return
        at = {name: n for n, name in enumerate(UNLINKED_COLUMNS)}
        read = {name: _read_back(dialect, name) for name in ("provisional", "nhs_number_valid", "birth_date",
                                                             "last_event_at", "updated_at")}
        for record_id, record in zip(ids, records, strict=True):
            c = record.source
            match = c[at["match_fields"]]
            self.rows.append((record_id, None, None, False, json.loads(match) if isinstance(match, str) else match,
                              read["provisional"](c[at["provisional"]]), c[at["nhs_number"]],
                              read["nhs_number_valid"](c[at["nhs_number_valid"]]), c[at["nhs_verification"]],
                              c[at["family"]], c[at["given"]], read["birth_date"](c[at["birth_date"]]),
                              c[at["birth_date_text"]], c[at["sex"]], c[at["postcode"]], c[at["address"]],
                              c[at["phone"]], _utc(read["last_event_at"](c[at["last_event_at"]])),
                              _utc(read["updated_at"](c[at["updated_at"]]))))
            self._ids += record_id

    def table(self, session: Session) -> pd.DataFrame | None:
        """:func:`load_table`'s table from the records held, or None when the store holds anything else or any of
        them changed since it was written (call under :func:`hold_live_writes`): the store's records must be exactly
        the ones held (count, smallest, largest and sum of ids), each still active, at its first version, unlinked
        and not manually placed. Every live write of a record adds a record, bumps its version, links it or
        deactivates it."""
        if not self.rows:
            return None
        ids = [row[0] for row in self.rows]
        count = len(ids)
        record = table_of(SourceRecord).c
        found = tuple(session.execute(select(
            func.count(), func.min(record.id), func.max(record.id), func.sum(record.id), func.sum(record.version),
            func.count(record.regional_patient_id), func.count(record.link_state),
            func.sum(case((record.active.is_(True), 0), else_=1)),
            func.sum(case((record.link_manual.is_(True), 1), else_=0)))).one())
        expected = (count, min(ids), max(ids), self._ids, count, 0, 0, 0, 0)
        if tuple(int(v or 0) for v in found) != expected:
            log.info("relink: the store changed since the bulk load wrote its records; it is read again")
            return None
        return table_from_rows(sorted(self.rows, key=lambda row: row[0]))


def _read_back(dialect: Dialect, name: str) -> Callable[[Any], Any]:
    """A source_record column's value as the driver takes it, as the store gives it back: its type's result
    processor (none for what the driver gives as it was sent), each distinct value read once."""
    kind = table_of(SourceRecord).c[name].type
    process = kind._cached_result_processor(dialect, None)  # noqa: SLF001
    # PostgreSQL: dates and timestamps come as the text COPY sends (priorscan.bulk_rows.copy_text), which the
    # driver would have read back as the value
    parse = from_copy_text(kind) if dialect.name == "postgresql" else None
    if process is None and parse is None:
        return lambda value: value
    done: dict[Any, Any] = {}

    def read(value: Any) -> Any:
        if value is None:
            return None
        if value not in done:
            given = parse(value) if parse is not None and isinstance(value, str) else value
            done[value] = process(given) if process is not None else given
        return done[value]

    return read


def _utc(value: Any) -> Any:
    """A timestamp as the store gives it back (:class:`priorscan.db.UTCDateTime`): aware, in UTC."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    return value


def bulk_load(session: Session, records: Iterable[Demographics], *, source_kind: str = "bulk",
              batch: int = 20_000, regional_ids: Sequence[str] | None = None) -> int:
    """Insert new source records with their match fields and blocking keys, unlinked (a relink links them).

    For loading a store quickly (benchmarks, a first migration from a legacy index); records arrive afterwards
    through :meth:`mpi.service.PatientIndex.upsert`. ``regional_ids`` (one per record) places the records in
    those regional patients as they are (an existing index migrated as it stands).
    """
    count = 0
    next_id = (session.scalar(select(SourceRecord.id).order_by(SourceRecord.id.desc()).limit(1)) or 0) + 1
    buffer: list[dict[str, Any]] = []
    keys: list[dict[str, Any]] = []

    connection = session.connection()
    now = utcnow()

    patients: set[str] = set()
    new_patients: list[dict[str, Any]] = []

    def flush() -> None:
        if new_patients:
            connection.execute(table_of(RegionalPatient).insert(), new_patients)
            new_patients.clear()
        if buffer:  # Core executemany: the ORM's per-row bookkeeping costs more than the insert itself
            connection.execute(table_of(SourceRecord).insert(), buffer)
            connection.execute(table_of(BlockingKey).insert(), keys)
            buffer.clear()
            keys.clear()

    for demographics in records:
        nhs = normalise_nhs_number(demographics.nhs_number)
        birth = as_date(demographics.birth_date) if demographics.birth_date else None
        partial = None if birth or not demographics.birth_date else str(demographics.birth_date)[:10]
        fields = {"nhs_number": nhs, "nhs_verification": demographics.nhs_verification,
                  "family": demographics.family, "given": demographics.given, "prefix": demographics.prefix,
                  "birth_date": birth, "sex": demographics.sex, "postcode": demographics.postcode,
                  "address": demographics.address, "phone": demographics.phone,
                  "birth_date_text": partial}
        match = to_match_record(next_id, {**fields, "identifiers": identifier_tokens(
            (demographics.namespace, demographics.local_id), demographics.other_identifiers)})
        regional = regional_ids[count] if regional_ids is not None else None
        if regional is not None and regional not in patients:
            patients.add(regional)
            new_patients.append({"id": regional, "status": "active", "created_at": now, "updated_at": now,
                                 "family": demographics.family, "given": demographics.given, "birth_date": birth,
                                 "sex": demographics.sex, "postcode": demographics.postcode, "nhs_number": nhs})
        buffer.append({"id": next_id, "namespace": demographics.namespace, "local_id": demographics.local_id,
                       "regional_patient_id": regional, "link_state": "match" if regional else None,
                       "trust_ods": demographics.trust_ods, "source_kind": source_kind, "provisional": False,
                       "active": True, "nhs_number_valid": bool(nhs and is_valid_nhs_number(nhs)), "version": 1,
                       "link_manual": False, "match_fields": match.as_stored(), "created_at": now,
                       "updated_at": now, **fields})
        keys.extend({"source_record_id": next_id, "key": key} for key in _keys(match))
        next_id += 1
        count += 1
        if len(buffer) >= batch:
            flush()
    flush()
    if connection.dialect.name == "postgresql" and count:  # ids were given here: move the sequence past them
        connection.execute(text("SELECT setval(pg_get_serial_sequence('source_record', 'id'), "
                                "(SELECT max(id) FROM source_record))"))
        for table in ("source_record", "blocking_key", "regional_patient"):  # plans for the new sizes now
            connection.execute(text(f"ANALYZE {table}"))
    return count


def _keys(match: MatchRecord) -> set[str]:
    return blocking_keys(match)


#: Records whose stored blocking keys are compared with their keys at once (bounds the relink's memory).
KEY_REFRESH_SLICE = 50_000


def refresh_blocking_keys(session: Session, table: pd.DataFrame) -> int:
    """Bring the stored blocking keys of the records of ``table`` (:func:`load_table`) to :func:`blocking_keys` of
    their match fields: the keys a record no longer has are deleted, the ones it lacks inserted. Returns how many
    rows changed.

    Keys are stored when a record is written, so a change to what the keys are made of (a new kind of key) reaches
    the records written before it only here: the first relink (either engine) after :data:`mpi.blocking.KEY_SCHEME`
    changes calls it (:func:`keys_are_current`), and link-on-write finds the new keys of older records from then
    on. Works in slices of :data:`KEY_REFRESH_SLICE` records (the stored keys of one slice in memory at a time).
    """
    connection = session.connection()
    changed = 0
    for start in range(0, len(table), KEY_REFRESH_SLICE):
        changes = key_changes(connection, table.iloc[start:start + KEY_REFRESH_SLICE])
        write_key_changes(connection, changes)
        changed += len(changes)
    if changed:
        log.info("blocking keys refreshed: %d rows changed", changed)
    return changed


def key_changes(connection: Connection, part: pd.DataFrame) -> pd.DataFrame:
    """What the stored keys of the records of ``part`` (``record_id`` and the match columns) lack and what they have
    too many: ``(source_record_id, key, stale)`` rows, ``stale`` true for a key to delete, false for one to insert.
    Reads the stored keys of those records only (by their id range)."""
    keys_table = table_of(BlockingKey)
    part = part.reset_index(drop=True)
    record_ids = part["record_id"].to_numpy(dtype=np.int64)
    if not len(record_ids):
        return pd.DataFrame({"source_record_id": np.zeros(0, np.int64), "key": [], "stale": np.zeros(0, bool)})
    built = key_table(part)
    wanted = pd.DataFrame({"source_record_id": record_ids[built["row"].to_numpy()],
                           "key": built["key"].to_numpy(dtype=object)})
    stored = pd.DataFrame(connection.execute(
        select(keys_table.c.source_record_id, keys_table.c.key).where(
            keys_table.c.source_record_id.between(int(record_ids.min()), int(record_ids.max())))).all(),
        columns=["source_record_id", "key"])
    stored = stored[stored["source_record_id"].isin(record_ids)]
    both = wanted.merge(stored, how="outer", on=["source_record_id", "key"], indicator=True)
    both = both[both["_merge"] != "both"]
    return pd.DataFrame({"source_record_id": both["source_record_id"].to_numpy(dtype=np.int64),
                         "key": both["key"].to_numpy(dtype=object),
                         "stale": (both["_merge"] == "right_only").to_numpy(dtype=bool)})


def write_key_changes(connection: Connection, changes: pd.DataFrame) -> None:
    """Apply :func:`key_changes`: delete the stale keys, insert the missing ones."""
    keys_table = table_of(BlockingKey)
    stale = changes[changes["stale"]]
    fresh = changes[~changes["stale"]]
    if len(stale):
        connection.execute(keys_table.delete().where(
            keys_table.c.source_record_id == bindparam("sid"), keys_table.c.key == bindparam("k")),
            [{"sid": int(sid), "k": key} for sid, key in zip(stale["source_record_id"], stale["key"], strict=True)])
    insert_rows(connection, keys_table, [{"source_record_id": int(sid), "key": key}
                                         for sid, key in zip(fresh["source_record_id"], fresh["key"], strict=True)])


def keys_are_current(session: Session) -> bool:
    """Whether the stored blocking keys are the keys of the code running: the last relink that refreshed them
    stored :data:`mpi.blocking.KEY_SCHEME` (:class:`~mpi.tables.BlockingKeyScheme`) and it has not changed since.
    Records written in between got their keys from the same code (link-on-write, the bulk load)."""
    stored = session.get(BlockingKeyScheme, 1)
    return stored is not None and stored.scheme == KEY_SCHEME


def keys_refreshed(session: Session) -> None:
    """Record that every record's stored keys are now those of :data:`mpi.blocking.KEY_SCHEME` (in the caller's
    transaction, with the refresh)."""
    stored = session.get(BlockingKeyScheme, 1)
    if stored is None:
        session.add(BlockingKeyScheme(id=1, scheme=KEY_SCHEME, refreshed_at=utcnow()))
    else:
        stored.scheme, stored.refreshed_at = KEY_SCHEME, utcnow()
    session.flush()


def save_model(session: Session, model: Model, *, records: int) -> None:
    """Store ``model`` as the active one (previous models kept, inactive)."""
    session.execute(update(MatchModel).values(active=False))
    existing = session.get(MatchModel, model.version)
    if existing is None:
        session.add(MatchModel(version=model.version, active=True, record_count=records,
                               parameters=model.to_dict()))
    else:
        existing.active = True
    session.flush()
    from mpi.service import forget_active_model

    forget_active_model()


# --- relink --------------------------------------------------------------------------------------------------------

def hold_live_writes(session: Session) -> None:
    """Make live identity writes wait until ``session``'s transaction ends (a relink's whole read-score-write).

    A relink reads every record, scores for a while and then writes its clusters: a link-on-write, merge or update
    committed in between would be overwritten from the stale read (H-ID-31). On PostgreSQL the records and patients
    are locked against writes (reads go on); on SQLite the one write lock is taken at once. Live feeds wait (and
    answer with a negative ACK or 503 if they time out); nothing is overwritten.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text(f"LOCK TABLE {SourceRecord.__tablename__}, {RegionalPatient.__tablename__} "
                             "IN SHARE ROW EXCLUSIVE MODE"))
    elif dialect == "sqlite":
        session.execute(text(f"UPDATE {SourceRecord.__tablename__} SET id = id WHERE 0"))  # begins the write


def relink(session: Session, *, train: bool = True, actor: str = "batch-relink", model: Model | None = None,
           seed: int = 0, training_sample: int = TRAINING_SAMPLE,
           written: WrittenUnlinked | None = None) -> RelinkResult:
    """Relink every active source record (``priorscan link``); the caller commits. Live identity writes wait
    until then (:func:`hold_live_writes`).

    A store of more than ``training_sample`` records trains on about that many, the ones the Spark relink trains
    on (:func:`mpi.training.in_training_sample`). ``written``: the records a bulk load wrote into an empty store,
    the table when the store holds exactly them (:meth:`WrittenUnlinked.table`), else the store is read.
    """
    from mpi.service import active_model

    timings: dict[str, float] = {}
    started = time.perf_counter()
    hold_live_writes(session)
    held = written.table(session) if written is not None else None
    table = held if held is not None else load_table(session)
    timings["load_s"] = time.perf_counter() - started
    if table.empty:
        current = model or active_model(session)
        return RelinkResult(0, 0, 0, 0, 0, 0, 0, current.version, False, timings)
    mark = time.perf_counter()
    if not keys_are_current(session):  # the keys changed since the last refresh (or none was recorded)
        refresh_blocking_keys(session, table)
        keys_refreshed(session)
    timings["keys_s"] = time.perf_counter() - mark
    frame = frame_from_table(table)
    with spare_core():  # the pairs' comparison levels split over a second process (training and scoring)
        return _relink_frame(session, table, frame, held is not None, timings, started, train=train, actor=actor,
                             model=model, seed=seed, training_sample=training_sample)


def _relink_frame(session: Session, table: pd.DataFrame, frame: Frame, table_held: bool, timings: dict[str, float],
                  started: float, *, train: bool, actor: str, model: Model | None, seed: int,
                  training_sample: int) -> RelinkResult:
    """:func:`relink`'s blocking, training, linking and write-back of the records of ``table``."""
    from mpi.service import active_model

    mark = time.perf_counter()
    trained = False
    note: str | None = None
    if model is None and train:
        # the blocked pairs found on the spare core while this process trains (training only counts them)
        with beside(lambda: blocked_pairs(frame)) as blocking:
            model, note = _train_if_supported(session, table, frame, lambda: len(blocking.result()[0]),
                                              sample=training_sample, seed=seed)
            trained = note is None
            timings["train_s"] = time.perf_counter() - mark
            mark = time.perf_counter()
            left, right = blocking.result()
        timings["block_s"] = time.perf_counter() - mark  # what was left of it once trained
    else:
        left, right = blocked_pairs(frame)
        timings["block_s"] = time.perf_counter() - mark
        mark = time.perf_counter()
        model = model or active_model(session)
        timings["train_s"] = time.perf_counter() - mark
    manual_match, manual_no_match = _manual_pairs(session, table)
    linkage = link_frame(frame, model, left, right, manual_match=manual_match, manual_no_match=manual_no_match,
                         derive_threshold=trained)
    model = linkage.model
    if trained:
        save_model(session, model, records=len(table))
    timings.update({f"link_{k}": v for k, v in linkage.timings.items()})
    mark = time.perf_counter()
    with collector_paused():
        changed, patients, reviews = _write(session, table, frame, linkage, model, actor)
    timings["write_s"] = time.perf_counter() - mark
    timings["total_s"] = time.perf_counter() - started
    log.info("relinked %d records: %d pairs, %d patients, %d changed, %d to review (%d more set apart by their "
             "patients' birth dates or given names)", len(table), len(left), patients, changed, reviews,
             linkage.reviews_apart)
    return RelinkResult(records=len(table), pairs_scored=linkage.pairs_scored, match_links=linkage.match_links,
                        patients=patients, records_changed=changed, review_items=reviews,
                        components_rebuilt=linkage.components_rebuilt, model_version=model.version, trained=trained,
                        timings=timings, model_description=model.describe(), training_note=note,
                        table_held=table_held)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused for the block (as it was after it), for a relink's write-back.

    The write builds rows for every changed record (the changes, the records' new values, their link events, the
    driver's tuples: dicts and tuples of plain values, with no reference cycle among them) and holds them all until
    they are written. Each full pass of the collector walks every such row built so far, and the passes come as
    they grow: at 100 000 people the passes cost about 3 CPU-s of the write, at 20 000 under 0.2 (issue 18). Nothing
    else changes: memory is freed by reference counting as before; a cycle made meanwhile is collected by a later
    pass once the block ends.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _train_if_supported(session: Session, table: pd.DataFrame, frame: Frame, blocked: Callable[[], int], *,
                        sample: int, seed: int) -> tuple[Model, str | None]:
    """:func:`mpi.training.train_if_supported` for the records of ``table`` (``frame`` is their frame): trained on
    the records :func:`mpi.training.in_training_sample` chooses, the ones the Spark relink trains on (``blocked``
    counts the blocked pairs)."""
    from mpi.service import active_model

    return train_if_supported(len(table), lambda: sampled_frame(table, frame, sample=sample, seed=seed),
                              base=active_model(session), blocked_pairs=blocked, seed=seed)


def with_derived_threshold(model: Model, frame: Frame, left: np.ndarray, right: np.ndarray, *, seed: int = 0,
                           sample: int = 500_000) -> Model:
    """``model`` with its match threshold derived from its own posteriors over (a sample of) the blocked pairs."""
    if len(left) > sample:
        pick = np.random.default_rng(seed + 2).choice(len(left), sample, replace=False)
        left, right = left[pick], right[pick]
    scored = score_frames(model, frame.take(left), frame.take(right))
    threshold = derive_match_threshold(scored.probability)
    return model.evolve(match_threshold=threshold,
                        training={**model.training, "match_threshold_derived_from_pairs": int(len(left))})


def _manual_pairs(session: Session, table: pd.DataFrame) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    row_of = pd.Series(np.arange(len(table)), index=table["record_id"].to_numpy())
    decisions = session.execute(select(ManualDecision.record_a_id, ManualDecision.record_b_id,
                                       ManualDecision.decision)).all()
    out: dict[str, tuple[list[int], list[int]]] = {MATCH: ([], []), NO_MATCH: ([], [])}
    for a, b, decision in decisions:
        if a in row_of.index and b in row_of.index and decision in out:
            out[decision][0].append(int(row_of[a]))
            out[decision][1].append(int(row_of[b]))
    return tuple((np.asarray(out[d][0], dtype=np.int64), np.asarray(out[d][1], dtype=np.int64))  # type: ignore
                 for d in (MATCH, NO_MATCH))


def _assign_ids(table: pd.DataFrame, labels: np.ndarray) -> dict[int, str]:
    """A regional id per cluster label: the id most of its records already hold, else a new one."""
    current = pd.DataFrame({"label": labels, "rid": table["regional_patient_id"].to_numpy()}).dropna()
    counts = current.groupby(["label", "rid"]).size().reset_index(name="n")
    assigned = assign_held_ids(counts)
    left = [label for label in np.unique(labels).tolist() if label not in assigned]
    assigned.update(zip(left, new_regional_ids(len(left)), strict=True))
    return assigned


def assign_held_ids(counts: pd.DataFrame) -> dict[Any, str]:
    """From ``(label, rid, n)`` (``n`` records of cluster ``label`` hold regional id ``rid``): the id each cluster
    keeps, the most held first (ties: the smaller id, then the smaller label), each id kept by one cluster at most.

    Clusters left without one get a new id from the caller. Rows of a label holding one id that no other label
    holds decide nothing for anyone else: the Spark relink settles those where they are and passes only the rest.
    """
    counts = counts.sort_values(["n", "rid", "label"], ascending=[False, True, True], kind="stable")
    assigned: dict[Any, str] = {}
    taken: set[str] = set()
    for label, rid in zip(counts["label"].tolist(), counts["rid"].tolist(), strict=True):
        if label not in assigned and rid not in taken:
            assigned[label] = rid
            taken.add(rid)
    return assigned


def _write(session: Session, table: pd.DataFrame, frame: Frame, linkage: Any, model: Model,
           actor: str) -> tuple[int, int, int]:
    labels = linkage.labels
    ids = _assign_ids(table, labels)
    new_rid = np.asarray([ids[label] for label in labels.tolist()], dtype=object)
    sizes = np.bincount(labels, minlength=len(labels))[labels]
    reviewed = np.zeros(len(labels), dtype=bool)
    reviewed[linkage.review_left] = True
    state = np.where(reviewed & (sizes == 1), POSSIBLE, MATCH)
    old_rid = table["regional_patient_id"].to_numpy(dtype=object)
    old_state = table["link_state"].to_numpy(dtype=object)
    manual = table["link_manual"].to_numpy(dtype=bool)
    state = np.where(manual, old_state, state)
    changed = (new_rid != old_rid) | (state != old_state)
    now = utcnow()
    record_ids = table["record_id"].to_numpy()
    rows = np.flatnonzero(changed)
    # every automatic link stores the explanation of the pair that made it (the record's strongest link): explained,
    # with the review items, on the spare core while this process writes the patients
    explained = rows[(linkage.partner[rows] >= 0) & ~manual[rows]]
    with beside(lambda: _explained(model, frame, linkage, explained)) as pending:
        patients = _write_patients(session, table, new_rid, old_rid, changed, now)
        link_weights, review_explained = pending.result()
    weights_of = dict(zip(explained.tolist(), map(JsonText, link_weights), strict=True))
    probability = linkage.probability
    write_links(session, [
        {"id": int(record_ids[i]), "from_regional_id": old_rid[i], "regional_patient_id": new_rid[i],
         "link_state": str(state[i]), "manual": bool(manual[i]),
         "link_score": None if np.isnan(probability[i]) else float(probability[i]),
         "link_weights": weights_of.get(i)} for i in rows.tolist()], model=model, actor=actor, now=now)
    _follow_survivors(session, dict(zip(record_ids.tolist(), new_rid.tolist(), strict=True)))

    # review queue: open automatic items replaced by this run's possible matches
    supersede_reviews(session)
    review_weights = [with_rule_8(explained_pair, bool(ambiguous)) for explained_pair, ambiguous in zip(
        review_explained, linkage.review_ambiguous.tolist(), strict=True)]
    reviews = [{"source_record_id": int(record_ids[a]), "candidate_record_id": int(record_ids[b]),
                "candidate_regional_id": new_rid[b], "score": float(p), "weights": explained_pair}
               for a, b, p, explained_pair in zip(linkage.review_left.tolist(), linkage.review_right.tolist(),
                                                  linkage.review_probability.tolist(), review_weights, strict=True)]
    write_reviews(session, reviews, model=model, now=now)
    session.flush()
    return int(changed.sum()), patients, len(reviews)


def _explained(model: Model, frame: Frame, linkage: Any, explained: np.ndarray) -> tuple[list[str], list[Any]]:
    """The explanations :func:`_write` stores: of each record of ``explained``'s link (serialised as the ORM stores
    JSON), and of each review item's pair. Pure: computed by another process (:func:`mpi.spare_core.beside`)."""
    links = [json.dumps(explained_link) for explained_link in explanations(
        model, frame.take(explained), frame.take(linkage.partner[explained]))]
    return links, explanations(model, frame.take(linkage.review_left), frame.take(linkage.review_right))


def _write_patients(session: Session, table: pd.DataFrame, new_rid: np.ndarray, old_rid: np.ndarray,
                    changed: np.ndarray, now: Any) -> int:
    """:func:`_write`'s regional patients: new ones created, emptied ones retired into where most of their records
    went; how many patients the records are in."""
    existing = _held_patients(session, set(new_rid.tolist())) if len(new_rid) < 30_000 else set(
        session.scalars(select(RegionalPatient.id)).all())
    golden = _golden(table, new_rid)
    columns = golden.columns.tolist()  # the rows built from the columns' lists: to_dict boxes value by value
    golden_rows = {rid: dict(zip(columns, values, strict=True)) for rid, *values in zip(
        golden.index.tolist(), *(golden[column].tolist() for column in columns), strict=True)}
    fresh = [rid for rid in golden_rows if rid not in existing]
    touched = sorted(set(new_rid[changed].tolist()) - set(fresh))
    gone = {rid for rid in old_rid[changed].tolist() if rid} - set(new_rid.tolist())
    destination: dict[str, Counter[str]] = {}
    for old, new in zip(old_rid[changed].tolist(), new_rid[changed].tolist(), strict=True):
        if old in gone:
            destination.setdefault(old, Counter())[new] += 1
    write_patients(session, fresh=[{"id": rid, **golden_rows[rid]} for rid in fresh],
                   touched=[{"id": rid, **golden_rows[rid]} for rid in touched],
                   retired={rid: destination[rid].most_common(1)[0][0] for rid in sorted(gone)}, now=now)
    return len(golden)


def _held_patients(session: Session, ids: Iterable[str]) -> set[str]:
    """Which of ``ids`` name a regional patient the store holds (rows the session holds unwritten count too).

    Looked up as one array joined to the table's primary key on PostgreSQL and in chunks of row values on SQLite
    (:func:`priorscan.bulk_rows.held_keys`), not as ``IN`` with a bound value per id: the 20 000 ids of a bulk
    load's relink cost 0.22 CPU-s to bind and ~0.7 s of the server's planning that way on PostgreSQL (0.04 and
    ~0.1 s as an array; 0.05 → 0.01 CPU-s on SQLite; 2026-12-07, BENCHMARKS.md)."""
    session.flush()
    return {rid for (rid,) in held_keys(session.connection(), table_of(RegionalPatient), ("id",),
                                         [(rid,) for rid in ids])}


# --- writing a relink's result (the local relink in one batch, the Spark relink streamed in many) -------------------

def write_patients(session: Session, *, fresh: Sequence[dict[str, Any]], touched: Sequence[dict[str, Any]],
                   retired: dict[str, str], now: Any) -> None:
    """Create the ``fresh`` regional patients and update the ``touched`` ones (each with its golden-record fields),
    and retire the emptied ones into the patient most of their records went to (``retired``: id → that id)."""
    connection, patients = session.connection(), table_of(RegionalPatient)
    insert_rows(connection, patients, [{"status": "active", "created_at": now, "updated_at": now, **row}
                                       for row in fresh])
    update_rows(connection, patients, [{"status": "active", "merged_into_id": None, "updated_at": now, **row}
                                       for row in touched])
    update_rows(connection, patients, [{"id": rid, "status": "retired", "merged_into_id": into, "updated_at": now}
                                       for rid, into in sorted(retired.items())])
    _forget_held(session, RegionalPatient)


def write_links(session: Session, changes: Sequence[dict[str, Any]], *, model: Model, actor: str,
                now: Any) -> None:
    """Store each changed record's link (``id``, ``regional_patient_id``, ``link_state``, ``link_score``,
    ``link_weights``, ``manual``, ``from_regional_id``) with a :class:`~mpi.tables.LinkEvent` saying that the
    batch relink made it and with which model."""
    if not changes:
        return
    connection = session.connection()
    weights = [_json(c["link_weights"]) for c in changes]  # serialised once for the record and its event

    def events() -> Prepared:  # built while the server rewrites the records (PostgreSQL)
        return prepare_rows(connection, table_of(LinkEvent), [
            {"source_record_id": c["id"], "from_regional_id": c["from_regional_id"],
             "to_regional_id": c["regional_patient_id"], "link_state": c["link_state"], "manual": c["manual"],
             "score": c["link_score"], "weights": explained, "model_version": model.version, "actor": actor,
             "reason": "batch-relink", "at": now} for c, explained in zip(changes, weights, strict=True)])

    prepared = update_rows(connection, table_of(SourceRecord), [
        {"id": c["id"], "regional_patient_id": c["regional_patient_id"], "link_state": c["link_state"],
         "link_score": c["link_score"], "link_weights": explained,
         "link_model_version": None if c["manual"] else model.version, "linked_by": actor, "linked_at": now,
         "updated_at": now} for c, explained in zip(changes, weights, strict=True)], meanwhile=events)
    _forget_held(session, SourceRecord)
    assert prepared is not None
    insert_rows(connection, table_of(LinkEvent), prepared)


def supersede_reviews(session: Session) -> None:
    """Open automatic review items are replaced by the relink's possible matches."""
    session.execute(update(ReviewItem).where(ReviewItem.status == "open").values(status="superseded"))


def write_reviews(session: Session, reviews: Sequence[dict[str, Any]], *, model: Model, now: Any) -> None:
    """Open the relink's review items (``source_record_id``, ``candidate_record_id``, ``candidate_regional_id``,
    ``score``, ``weights``: the explanation)."""
    insert_rows(session.connection(), table_of(ReviewItem), [
        {"model_version": model.version, "status": "open", "created_at": now, **row} for row in reviews])


def _json(value: Any) -> JsonText:
    """A JSON column's value serialised as the ORM stores it (None as JSON ``null``; one serialised already as it
    is)."""
    return JSON_NULL if value is None else value if isinstance(value, JsonText) else JsonText(json.dumps(value))


def _forget_held(session: Session, kind: type) -> None:
    """Expire the session's loaded objects of ``kind``, whose rows were just written around the ORM (as the ORM's own
    bulk statements would have synchronised them)."""
    for held in [o for o in session.identity_map.values() if isinstance(o, kind)]:
        session.expire(held)


def merged_records(session: Session) -> list[tuple[int, int, str | None]]:
    """Records merged away (inactive): ``(id, merged into, regional id)``."""
    return [tuple(row) for row in session.execute(  # type: ignore[misc]
        select(SourceRecord.id, SourceRecord.merged_into_id, SourceRecord.regional_patient_id)
        .where(SourceRecord.active.is_(False), SourceRecord.merged_into_id.is_not(None))).all()]


def survivor_of(merged: Sequence[tuple[int, int, str | None]]) -> dict[int, int]:
    """The record each merged-away record ends at, following merges of merges."""
    into = {rid: target for rid, target, _ in merged}
    out: dict[int, int] = {}
    for rid, _target, _current in merged:
        hop, seen = rid, set()
        while hop in into and hop not in seen:
            seen.add(hop)
            hop = into[hop]
        out[rid] = hop
    return out


def _follow_survivors(session: Session, regional_of: dict[int, str],
                      merged: Sequence[tuple[int, int, str | None]] | None = None) -> None:
    """Records merged away (inactive) follow the record they were merged into."""
    merged = merged_records(session) if merged is None else merged
    if not merged:
        return
    survivors = survivor_of(merged)
    updates = []
    for rid, _target, current in merged:
        target_regional = regional_of.get(survivors[rid])
        if target_regional and target_regional != current:
            updates.append({"id": rid, "regional_patient_id": target_regional})
    if updates:
        session.execute(update(SourceRecord), updates)


def _golden(table: pd.DataFrame, new_rid: np.ndarray) -> pd.DataFrame:
    """Best-known demographics per regional patient: PAS/FHIR before provisional, verified NHS number first, then
    the most recent; each field from the best record that has it (as the service's golden record)."""
    stamp = table["last_event_at"].where(table["last_event_at"].notna(), table["updated_at"])
    frame = pd.DataFrame({
        "rid": new_rid,
        "q_provisional": ~table["provisional"].fillna(False).astype(bool),
        "q_verified": table["nhs_verification"].eq("01"),
        "q_stamp": pd.to_datetime(stamp, utc=True),
        "family": table["family_raw"], "given": table["given_raw"], "birth_date": table["birth_date"],
        "sex": table["sex_raw"], "postcode": table["postcode_raw"], "address": table["address_raw"],
        "nhs_number": table["nhs_raw"].where(table["nhs_number_valid"].fillna(False).astype(bool)),
    })
    frame = frame.sort_values(["q_provisional", "q_verified", "q_stamp"], ascending=False, kind="stable")
    golden = frame.groupby("rid", sort=False)[[*GOLDEN_FIELDS, "nhs_number"]].first()
    return golden.astype(object).where(golden.notna(), None)
