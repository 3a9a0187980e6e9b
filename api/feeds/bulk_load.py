"""``priorscan backfill PATH...``: load a large extract (a PAS/RIS history, a trust joining the region) in batches.

The bulk mode of :func:`api.feeds.ingest.load_paths`, the one path of ``ingest`` and ``backfill`` (same command-line
wrapper, same classification of files and the same report, extended by :class:`BackfillReport`).

The same files as ``priorscan ingest`` (formats told by content, :mod:`api.feeds.ingest_formats`), the same phases
(identity, then imaging, then orders) and the same report, loaded in stages that each resume where a crash left them:

1. **identity**: HL7 ADT registrations and updates and NDJSON FHIR Patients are read and normalised in worker
   processes (:mod:`api.feeds.bulk_identity`) and written unlinked in batches, many rows per statement (multi-row INSERT
   on SQLite, COPY on PostgreSQL; :mod:`api.feeds.bulk_writes`), each batch with its cursor in one transaction. Only the
   first appearance of a record that the store does not hold is written so; every other identity item (a later
   update of the same record, a merge, link or change of identifier, a FHIR Bundle, a message the reader refuses)
   is set aside in input order. On a store that holds no source record yet, the non-unique indexes of the tables
   this stage and the relink write (and, on PostgreSQL, their foreign keys) are set aside until the relink is done and
   then built in one go, the foreign keys validated (:mod:`priorscan.bulk_indexes`); unique constraints stay
   throughout. On PostgreSQL the indexes of the tables the relink does not write are built, and their foreign keys
   (added ``NOT VALID`` before it) validated, on a second connection while it runs (:class:`_BesideRelink`).
2. **relink**: one batch relink of every source record (:func:`mpi.relink`: the scorer, decisions and
   cluster integrity that link-on-write uses), with a freshly trained model unless ``--no-train``.
3. **deferred**: the set-aside items, in input order, through the per-message path (link-on-write, the HL7 log's
   idempotency, refusals with dead letters), committed in groups with the cursor after each group.
4. **imaging** and **orders**: DICOM headers are read in the worker processes and applied in groups of
   :data:`GROUP`: each group's new studies are built in memory by the live merge and written many rows per
   statement with the stage's cursor, in one transaction (:func:`imaging.load_studies`); a group that only the
   per-message path applies (a rejection note, an object the store holds, a concurrent writer) goes through the
   adapters' group commit (:func:`imaging.apply_many`), idempotent by study and instance UID. HL7 ORU and orders go
   through the HL7 service's group commit; FHIR ImagingStudy, ServiceRequest and DICOM JSON through their handlers,
   file by file. These writes are idempotent (a study by its UID, an HL7 message by its sender and control id), so
   the group a crash interrupted is applied again without doubling anything.

The files are walked and classified once, before the first stage, into a spool read back by each stage
(:class:`api.feeds.bulk_listing.Listing`): the load holds no object per file, however many files it lists.

Then the planner's statistics are refreshed. Everything rejected is counted with its reason in the report and kept
as a dead letter by the handler that refused it; the exit status is 0 only when nothing was rejected.
"""

from __future__ import annotations

import gc
import itertools
import json
import logging
import multiprocessing
import os
import resource
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.pool import Pool
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Dialect, select
from sqlalchemy.exc import IntegrityError, OperationalError

from api.feeds.bulk_identity import BulkRows, Converter, read_fhir, read_hl7
from api.feeds.bulk_listing import Listing
from api.feeds.bulk_writes import (
    STATISTICS_TABLES,
    advance,
    analyse,
    cursor,
    defer,
    deferred_after,
    existing_keys,
    forget,
    logged_messages,
    refresh_statistics,
    write_records,
)
from api.feeds.ingest import (
    DEFAULT_HANDLERS,
    INGEST_AGENT,
    INGEST_CHANNEL,
    BulkOptions,
    IngestReport,
    _apply_file,
    _dead_letter,
    _display,
    load_paths,
)
from api.feeds.ingest_formats import (
    FORMAT_PHASES,
    Detected,
    FileFormat,
    Phase,
    fhir_json_items,
    hl7_messages,
    ndjson_items,
)
from mpi import SourceRecord, WrittenUnlinked, keys_refreshed, linkage_tables, relink_tables, table_of
from priorscan.bulk_indexes import add_unchecked, restore, restore_foreign_keys, set_aside, validate_foreign_keys
from priorscan.bulk_rows import is_postgresql
from priorscan.db import utcnow
from priorscan.errors import PriorscanError
from priorscan.hl7v2 import CHARSET_ERROR
from priorscan.outcome import ItemOutcome
from priorscan.tables import AuditEvent
from priorscan.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from api.context import AppContext
    from priorscan.trusts import TrustRegistry

log = logging.getLogger(__name__)

#: Fault injection for the resume tests: ``stage:N`` (``identity``, ``relink``, ``deferred``, ``imaging-dicom``, or
#: ``imaging`` for the HL7 results) kills this process with SIGKILL right after the N-th commit of that stage, as a
#: crash at the worst moment would. Never set in a real run; read once per load.
FAULT_ENV = "PRIORSCAN_FAULT_KILL_AFTER"


class _Crash:
    """Counts a stage's commits and kills the process at the one :data:`FAULT_ENV` names."""

    def __init__(self, spec: str) -> None:
        stage, _, count = spec.partition(":")
        self.stage, self.after, self.seen = stage, int(count or 1), 0

    def committed(self, stage: str) -> None:
        if stage == self.stage:
            self.seen += 1
            if self.seen >= self.after:
                os.kill(os.getpid(), signal.SIGKILL)


BATCH = BulkOptions.batch  # identity items per transaction
GROUP = 200  # HL7 messages or DICOM objects per transaction in the later stages
#: Identity batches handed to the workers beyond the one being written: with one, the workers waited while this
#: process read the next batch's input after writing; with two, one is always queued.
BATCHES_AHEAD = 2
#: The tables whose non-unique indexes a load into an empty store builds after its relink instead of row by row.
INDEXES_BUILT_AFTER = (*linkage_tables(), table_of(AuditEvent))
#: Of those, the tables the relink does not write (the identity stage's blocking keys, versions, identifiers and
#: audit rows): on PostgreSQL their indexes are built, and their statistics refreshed, on a second connection while
#: the relink runs (:class:`_BesideRelink`).
BUILT_BESIDE_RELINK = tuple(table for table in INDEXES_BUILT_AFTER if table not in relink_tables())
#: The tables whose statistics are refreshed there (of :data:`api.feeds.bulk_writes.STATISTICS_TABLES`).
ANALYSED_BESIDE_RELINK = tuple(name for name in STATISTICS_TABLES if name in {t.name for t in BUILT_BESIDE_RELINK})
_FILE_SHIFT = 32  # seq of a set-aside item: file number << 32 | position in the file
# Garbage collection: every object alive when a stage starts (the modules imported, what the stages before it hold,
# such as the records written for the relink) is set aside from the cyclic garbage collector's passes until the load
# ends (gc.freeze), and so is every worker's copy of them (forked after). Its full passes walked them all again and
# again while a stage made its many short-lived rows: three quarters of the time to unpickle the records the workers
# read, a quarter of a worker's reading of an HL7 message (2026-12-07). Nothing else changes: memory is freed by
# reference counting as before, and any cycle among the objects set aside is collected once they are given back to
# the collector at the end of the load (gc.unfreeze).


# --- the worker processes -------------------------------------------------------------------------------------------

_worker: dict[str, Any] = {}


def _init_worker(trusts: TrustRegistry, production: bool, dialect: Dialect) -> None:
    _worker.update(trusts=trusts, production=production, converter=Converter(dialect))


def _read_identity(item: tuple[str, Any, datetime]) -> BulkRows | None:
    """An identity item read as :mod:`api.feeds.bulk_identity` reads it, its rows converted for the store's driver
    here (:class:`api.feeds.bulk_identity.Converter`: the writer only unpickles tuples and sends them); ``now``, the
    batch's time, is the time of receipt and creation it records (one value per batch, written in one
    transaction)."""
    content_type, value, now = item
    trusts, production = _worker["trusts"], _worker["production"]
    if content_type == "hl7v2":
        found = read_hl7(value, trusts, agent=INGEST_AGENT, production=production, now=now)
    else:
        found = read_fhir(value, trusts, agent=INGEST_AGENT, production=production, now=now)
    return None if found is None else _worker["converter"](found)


def _read_dicom(path: str) -> Any:
    """A DICOM file's facts (and rejection note), or the outcome refusing it, as the per-message path reads it."""
    from imaging import read_dicom_header

    return read_dicom_header(Path(path), _worker["trusts"])


class Readers:
    """Reads items in worker processes (``workers`` > 0) or in this one (0: tests, tiny loads)."""

    def __init__(self, trusts: TrustRegistry, production: bool, workers: int, dialect: Dialect) -> None:
        self.pool: Pool | None = None
        if workers > 0:  # forked: the workers inherit the trusts and the store's dialect and never touch the store
            self.pool = multiprocessing.get_context("fork").Pool(workers, _init_worker, (trusts, production, dialect))
        else:
            _init_worker(trusts, production, dialect)

    def map(self, function: Any, items: Sequence[Any]) -> list[Any]:
        return self.start(function, items)()

    def start(self, function: Any, items: Sequence[Any]) -> Callable[[], list[Any]]:
        """Start reading ``items`` (in the workers, while this process writes what they read before); the
        function that waits for them and returns what they read, in order."""
        if self.pool is None:
            return lambda: [function(item) for item in items]
        return self.pool.map_async(function, items, chunksize=max(1, min(256, len(items) // 8 or 1))).get

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()


# --- the report -----------------------------------------------------------------------------------------------------

@dataclass
class BackfillReport(IngestReport):
    """:class:`api.feeds.ingest.IngestReport` with what the bulk stages did."""

    written: int = 0  # new source records written in bulk (this run)
    set_aside: int = 0  # identity items given to the per-message path
    objects_in_bulk: int = 0  # DICOM objects whose group was written in bulk (this run)
    objects_per_message: int = 0  # DICOM objects whose group went through the per-message path
    resumed: list[str] = field(default_factory=list)  # stages found done or begun by an earlier run
    relink: dict[str, Any] = field(default_factory=dict)
    indexes_built: int = 0  # indexes set aside for the identity stage and the relink, then built in one go
    foreign_keys_added: int = 0  # foreign keys set aside likewise (PostgreSQL), then added and validated
    stage_seconds: dict[str, float] = field(default_factory=dict)
    stage_cpu_seconds: dict[str, float] = field(default_factory=dict)  # this process and its workers

    def render(self) -> str:
        lines = [super().render(), "bulk load:"]
        lines.append(f"  {self.written} new source record(s) written in bulk, linked by one batch relink; "
                     f"{self.set_aside} identity item(s) through the per-message path after it")
        if self.objects_in_bulk or self.objects_per_message:
            lines.append(f"  {self.objects_in_bulk} DICOM object(s) in groups written in bulk, "
                         f"{self.objects_per_message} in groups through the per-message path")
        if self.indexes_built or self.foreign_keys_added:
            lines.append(f"  {self.indexes_built} index(es) of the linkage tables built after the relink"
                         + (f", {self.foreign_keys_added} foreign key(s) added and validated"
                            if self.foreign_keys_added else ""))
        if self.relink:
            lines.append("  relink: " + ", ".join(f"{k} {v}" for k, v in self.relink.items()))
        if self.resumed:
            lines.append("  resumed: " + "; ".join(self.resumed))
        if self.stage_seconds:
            lines.append("  stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.stage_seconds.items()))
            lines.append("  CPU: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.stage_cpu_seconds.items()))
        return "\n".join(lines)


# --- the stages -----------------------------------------------------------------------------------------------------

def _identity_items(found: Detected, phases: set[Phase] | None = None) -> Iterator[tuple[str, Any, str]]:
    """The identity items of a file: (content type, value for the reader, source); ``unreadable`` with (kind,
    reason, error code) for a FHIR JSON file or element that is not a resource, or an HL7 message whose bytes are not
    text in its character set. ``phases`` (HL7 v2 and NDJSON files) gathers the phases
    of every item of the file, read to its end, so that the later stages need not read it again for nothing."""
    display = _display(found.path)
    seen = set() if phases is None else phases
    if found.format is FileFormat.HL7V2:
        for message in hl7_messages(found.path):
            seen.add(message.phase)
            source = f"{display}#{message.position}"
            if message.phase == Phase.IDENTITY and message.problem is not None:
                yield "unreadable", ("HL7", message.problem, CHARSET_ERROR, message.text), source
            elif message.phase == Phase.IDENTITY:
                yield "hl7v2", message.text, source
    elif found.format is FileFormat.FHIR_NDJSON:
        for item in ndjson_items(found.path):
            seen.add(item.phase)
            if item.phase == Phase.IDENTITY and item.value is not None:
                yield "fhir-ndjson", item.value, f"{display}:{item.position}"
    elif found.format is FileFormat.FHIR_JSON and Phase.IDENTITY in found.phases:
        for item in fhir_json_items(found.path):  # read within the bounds ingest reads them
            source = display + (f"[{item.position}]" if item.position else "")
            if item.value is None:
                yield "unreadable", ("FHIR", item.problem or "unreadable", "fhir.json", None), source
            else:
                yield "fhir-json", item.value, source


class _BesideRelink:
    """The indexes of :data:`BUILT_BESIDE_RELINK` built and those tables analysed on a connection of their own, in a
    thread, while the relink runs in this one (PostgreSQL).

    The relink's client is one process on one core and its write-back waits on the server; the index builds are the
    server's work on the other core: done beside the relink, they no longer wait for it (the blocking-key index is
    the largest of the load: ~9 keys a record). The relink writes none of these tables and this thread locks none of
    the relink's (``CREATE INDEX`` takes a share lock on its own table, ``ANALYZE`` a lighter one), so neither waits
    for the other; a relink that refreshes the blocking keys (a key scheme changed between a crash and its resume)
    waits for that table's build, which waits for nothing.

    Their foreign keys too (to the records; at 100 000 people the blocking keys' check alone is a join of 1.3 M
    rows): added ``NOT VALID`` here, before the relink takes its lock (:func:`priorscan.bulk_indexes.add_unchecked`:
    no scan, but a lock the relink's would conflict with, so committed first), then validated in the thread after the
    builds (``VALIDATE CONSTRAINT`` needs no lock the relink holds). From the commit of the first step every row
    written to those tables is checked as it is written; the second checks the rows the identity stage wrote.

    Nothing here is data: built and committed, an index is kept (the indexes stage builds only what is missing); a
    crash before the commit leaves it unbuilt, and the indexes stage (or the resumed load's) builds it. A key added
    ``NOT VALID`` and not validated (a crash, a row naming no record) counts as missing: the indexes stage validates
    it and fails on such a row, as it fails adding a key (H-ID-44); a resumed load sets it aside again with the
    others. A failure is logged and left to the indexes stage, which does the same work again and raises what it
    meets."""

    def __init__(self, context: AppContext) -> None:
        self.context = context
        self.built: list[str] = []
        self.validated: list[str] = []
        self.analysed = False
        self.done = False
        try:
            with unit_of_work(self.context.sessions, write=True) as session:
                add_unchecked(session.connection(), BUILT_BESIDE_RELINK)
        except Exception:  # noqa: BLE001 - the indexes stage adds them, validated, and raises what it meets
            log.warning("backfill: adding foreign keys before the relink failed; the indexes stage adds them",
                        exc_info=True)
        self._thread = threading.Thread(target=self._run, name="indexes-beside-relink", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with unit_of_work(self.context.sessions, write=True) as session:
                built = restore(session.connection(), BUILT_BESIDE_RELINK)
                analyse(session.connection(), ANALYSED_BESIDE_RELINK)
            self.built, self.analysed = built, True
            with unit_of_work(self.context.sessions, write=True) as session:
                self.validated = validate_foreign_keys(session.connection(), BUILT_BESIDE_RELINK)
            self.done = True
        except Exception:  # noqa: BLE001 - the indexes stage builds and validates them and raises what it meets
            log.warning("backfill: building indexes or validating foreign keys beside the relink failed; the indexes "
                        "stage does it", exc_info=True)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread (at most ``timeout`` seconds); whether it built and analysed everything it had to."""
        self._thread.join(timeout)
        return self.done


class Backfill:
    """One run of a bulk load over the ``listing``'s files (see the module's description)."""

    def __init__(self, context: AppContext, listing: Listing, report: BackfillReport, *, workers: int,
                 batch: int, progress: bool, train: bool) -> None:
        self.context, self.listing, self.report = context, listing, report
        self.key = listing.key
        self.batch, self.progress, self.train = batch, progress, train
        self.group = max(1, min(GROUP, batch))  # HL7 messages or DICOM objects per transaction after identity
        self.workers, self.production = workers, context.settings.env == "production"
        self._readers: Readers | None = None
        self._phases_read: dict[str, set[Phase]] = {}  # file → phases of its items, when this run read it whole
        spec = os.environ.get(FAULT_ENV)
        self._crash = _Crash(spec) if spec else None
        self._analysed_at: int | None = None  # _applied() when the indexes stage refreshed the statistics
        self._written: WrittenUnlinked | None = None  # what this run wrote, when it began on an empty store
        self._beside: _BesideRelink | None = None  # indexes built while the relink runs (PostgreSQL)

    @property
    def readers(self) -> Readers:
        """The worker processes of the current stage (started when a stage first needs them, joined at its end, so
        that their CPU time is counted with the stage's)."""
        if self._readers is None:
            self._readers = Readers(self.context.trusts, self.production, self.workers, self.context.engine.dialect)
        return self._readers

    def _end_stage(self) -> None:
        if self._readers is not None:
            self._readers.close()
            self._readers = None

    def bar(self, label: str, total: int | None = None) -> Any:
        if not self.progress:
            return _NoBar()  # tqdm is not imported for nothing (a tenth of a CPU-second of the command's start)
        from tqdm import tqdm

        return tqdm(desc=label, total=total, unit="item", file=sys.stderr, dynamic_ncols=True, leave=True)

    def run(self) -> None:
        try:
            for name, stage in (("identity", self.identity), ("relink", self.relink), ("indexes", self.indexes),
                                ("deferred", self.deferred), ("imaging", self.imaging), ("orders", self.orders)):
                started, cpu = time.monotonic(), _cpu_seconds()
                gc.freeze()  # see "Garbage collection" above
                stage()
                self._end_stage()
                self.report.stage_seconds[name] = time.monotonic() - started
                self.report.stage_cpu_seconds[name] = _cpu_seconds() - cpu
            if self._analysed_at != self._applied():  # not refreshed since the last stage that wrote
                with unit_of_work(self.context.sessions, write=True) as session:
                    refresh_statistics(session)
        finally:
            self._end_stage()
            if self._beside is not None:  # a stage failed before the indexes stage: its transaction ends first
                self._beside.join()
            gc.unfreeze()

    # 1. identity ----------------------------------------------------------------------------------------------------

    def identity(self) -> None:
        """Batches read in the worker processes while this process writes the ones before (up to
        :data:`BATCHES_AHEAD` batches handed to the workers before the oldest is written, so that they still have
        one queued while this process reads the input and writes), each written with its file's cursor in input
        order."""
        self._indexes_aside()
        bar = self.bar("1/5 identity (bulk)")
        ahead: deque[tuple[tuple[int, str, list[tuple[int, str, Any, str]], bool], Callable[[], list[Any]]]] = deque()
        for batch in self._identity_batches():
            now = utcnow()
            ahead.append((batch, self.readers.start(_read_identity, [(t, v, now) for _, t, v, _ in batch[2]
                                                                     if t in ("hl7v2", "fhir-ndjson")])))
            if len(ahead) > BATCHES_AHEAD:
                oldest, reading = ahead.popleft()
                self._identity_batch(*oldest, reading())
                bar.update(len(oldest[2]))
        while ahead:
            oldest, reading = ahead.popleft()
            self._identity_batch(*oldest, reading())
            bar.update(len(oldest[2]))
        bar.close()

    def _identity_batches(self) -> Iterator[tuple[int, str, list[tuple[int, str, Any, str]], bool]]:
        """The identity items still to load, file by file from each file's cursor, in batches: (file number, file,
        items as (position, content type, value, source), whether the batch ends its file)."""
        for number, found in self.listing.others():  # DICOM holds no identity items
            if Phase.IDENTITY not in found.phases:
                continue
            name = str(found.path.resolve())
            with unit_of_work(self.context.sessions) as session:
                mark = cursor(session, self.key, "identity", name)
            if mark is not None and mark.finished:
                self.report.resumed.append(f"identity of {_display(found.path)} done before")
                continue
            start = mark.position if mark is not None else 0
            if start:
                self.report.resumed.append(f"identity of {_display(found.path)} from item {start + 1}")
            pending: list[tuple[int, str, Any, str]] = []
            position = 0
            phases: set[Phase] = set()
            for content_type, value, source in _identity_items(found, phases):
                position += 1
                if position <= start:
                    continue
                pending.append((position, content_type, value, source))
                if len(pending) >= self.batch:
                    yield number, name, pending, False
                    pending = []
            if found.format in (FileFormat.HL7V2, FileFormat.FHIR_NDJSON):
                self._phases_read[name] = phases
            yield number, name, pending, True

    def _identity_batch(self, number: int, name: str, pending: list[tuple[int, str, Any, str]], finished: bool,
                        results: list[BulkRows | None]) -> None:
        """Write one batch (``results``: what the readers made of its readable items, in order) with its cursor."""
        readable = iter(results)
        read: list[BulkRows | None] = [next(readable) if t in ("hl7v2", "fhir-ndjson") else None
                                         for _, t, _, _ in pending]
        with unit_of_work(self.context.sessions, write=True) as session:  # SQLite: BEGIN IMMEDIATE, the ids stay ours
            held = existing_keys(session, [(r.namespace, r.local_id) for r in read if r is not None])
            logged = logged_messages(session, [r.log_key for r in read if r is not None and r.log_key is not None])
            seen: set[tuple[str, str]] = set()
            taken: list[BulkRows] = []
            aside: list[tuple[int, str, str, str]] = []
            for (position, content_type, value, source), record in zip(pending, read, strict=True):
                if content_type == "unreadable":
                    kind, reason, code, raw_text = value
                    self.report.reject(kind, reason, source, code)
                    if raw_text is not None:  # an HL7 message kept byte for byte, as the per-message path keeps it
                        _dead_letter(self.context, "hl7v2", source, code, reason, raw_text)
                    continue
                key = (record.namespace, record.local_id) if record is not None else None
                if (record is None or key in held or key in seen
                        or (record.log_key is not None and record.log_key in logged)):
                    raw = json.dumps(value) if isinstance(value, dict) else str(value)
                    aside.append(((number << _FILE_SHIFT) | position, "hl7v2" if content_type == "hl7v2"
                                  else "fhir-json", source, raw))
                    continue
                assert key is not None
                seen.add(key)
                if record.log_key is not None:
                    logged.add(record.log_key)
                taken.append(record)
            ids = write_records(session, taken)
            defer(session, self.key, aside)
            last = pending[-1][0] if pending else (cursor(session, self.key, "identity", name) or _Nothing).position
            advance(session, self.key, "identity", last, item_file=name, finished=finished)
            written = cursor(session, self.key, "written")
            advance(session, self.key, "written", (written.position if written else 0) + len(taken))
        if self._written is not None:  # committed: the relink may take its table from these
            self._written.add(ids, [record.record for record in taken], self.context.engine.dialect)
        if self._crash:
            self._crash.committed("identity")
        self.report.written += len(taken)
        self.report.set_aside += len(aside)
        for record in taken:
            self.report.accepted[record.kind] += 1

    # 2. relink ------------------------------------------------------------------------------------------------------

    def relink(self) -> None:
        from mpi import relink

        with unit_of_work(self.context.sessions, write=True) as session:
            mark = cursor(session, self.key, "relink")
            written = cursor(session, self.key, "written")
            if mark is not None and mark.finished:
                self.report.resumed.append("relink done before")
                return
            if written is None or written.position == 0:
                return  # nothing new in bulk: the per-message path links what there is
            indexes = cursor(session, self.key, "indexes")
            if indexes is not None and not indexes.finished and is_postgresql(session.connection()):
                self._beside = _BesideRelink(self.context)  # the identity stage is committed: its tables are whole
            bar = self.bar("2/5 relink", total=1)
            result = relink(session, train=self.train, actor="bulk-load", written=self._written)
            self._written = None
            advance(session, self.key, "relink", result.records, finished=True)
            bar.update(1)
            bar.close()
        if self._crash:  # committed; on PostgreSQL the indexes beside it may still be building
            self._crash.committed("relink")
        self.report.relink = {"records": result.records, "patients": result.patients,
                              "to review": result.review_items, "model": result.model_description or
                              result.model_version, "seconds": round(result.timings.get("total_s", 0.0), 1),
                              "table": "as written" if result.table_held else "read from the store"}

    def _indexes_aside(self) -> None:
        """On a store that holds no source record yet, the linkage tables' non-unique indexes (and, on PostgreSQL,
        their foreign keys) are set aside until the relink has written back (:mod:`priorscan.bulk_indexes`); a
        resumed load that set them aside keeps them aside. A store that holds records keeps its indexes: live feeds
        may be looking them up. A load with no identity item (DICOM alone, results, orders) writes no source record
        in bulk and keeps them too: it would drop and build them (and refresh the statistics once more) for nothing,
        a fixed cost of the load.

        An empty store also records that its blocking keys are those of the running code
        (:func:`mpi.batch.keys_refreshed`, with the cursor that says the load began on an empty store): every key
        this load writes is made by that code, so the relink need not read and rebuild them all."""
        with unit_of_work(self.context.sessions, write=True) as session:
            mark = cursor(session, self.key, "indexes")
            if mark is None and (not self._identity_files()
                                 or session.execute(select(SourceRecord.id).limit(1)).first() is not None):
                return
            if mark is not None and mark.finished:
                return
            set_aside(session.connection(), INDEXES_BUILT_AFTER)
            if mark is None:
                keys_refreshed(session)  # no record, so no stored key of another scheme
                advance(session, self.key, "indexes", 0)
                self._written = WrittenUnlinked()  # every record of the store will be one this run writes

    def _identity_files(self) -> bool:
        """Whether any file of the load may hold identity items (the listing's phases, told without reading it)."""
        return any(Phase.IDENTITY in found.phases for _, found in self.listing.others())

    def indexes(self) -> None:
        """Every non-unique index of the linkage tables built again (the ones the identity stage set aside, or any
        an interrupted load left out) before the per-message path looks rows up by them."""
        beside: list[str] = []
        validated: list[str] = []
        analysed: tuple[str, ...] = ()
        if self._beside is not None:
            self._beside.join()  # what it committed counts, whether or not it did all
            beside, validated = self._beside.built, self._beside.validated
            analysed = ANALYSED_BESIDE_RELINK if self._beside.analysed else ()
            self._beside = None
        with unit_of_work(self.context.sessions, write=True) as session:
            built = beside + restore(session.connection(), INDEXES_BUILT_AFTER)
            # validated (and any left NOT VALID validated now): fails on a dangling row
            keys = validated + restore_foreign_keys(session.connection(), INDEXES_BUILT_AFTER)
            mark = cursor(session, self.key, "indexes")
            if mark is not None and not mark.finished:
                advance(session, self.key, "indexes", len(built), finished=True)
            if built or keys:
                refresh_statistics(session, [name for name in STATISTICS_TABLES if name not in analysed])
        if built or keys:
            self._analysed_at = self._applied()
        self.report.indexes_built += len(built)
        self.report.foreign_keys_added += len(keys)

    def _applied(self) -> int:
        """Items applied so far (what the later stages add to the store): whether the statistics the indexes stage
        refreshed still describe it at the end, so that a load that wrote nothing after it does not ANALYZE again."""
        return sum(self.report.accepted.values()) + self.report.objects_in_bulk + self.report.objects_per_message

    # 3. deferred ----------------------------------------------------------------------------------------------------

    def deferred(self) -> None:
        from api.feeds.hl7_service import Incoming, process_messages

        with unit_of_work(self.context.sessions) as session:
            mark = cursor(session, self.key, "deferred")
        if mark is not None and mark.finished:
            self.report.resumed.append("set-aside items done before")
            return
        after = mark.position if mark is not None else -1
        if mark is not None:
            self.report.resumed.append("set-aside items resumed")
        bar = self.bar("3/5 identity (per message)")
        while True:
            with unit_of_work(self.context.sessions) as session:
                items = [(d.seq, d.content_type, d.source, d.raw) for d in deferred_after(session, self.key, after,
                                                                                          self.group)]
            if not items:
                break
            for start in range(0, len(items), self.group):
                group = items[start:start + self.group]
                # consecutive runs keep input order: HL7 in one group commit, FHIR one resource at a time
                runs: list[list[tuple[int, str, str, str]]] = []
                for item in group:
                    if runs and runs[-1][0][1] == item[1] == "hl7v2":
                        runs[-1].append(item)
                    else:
                        runs.append([item])
                for run in runs:
                    if run[0][1] == "hl7v2":
                        outcomes = process_messages(self.context, [Incoming(raw, INGEST_AGENT, source)
                                                                   for _, _, source, raw in run],
                                                    channel=INGEST_CHANNEL)
                        for (_, _, source, _), outcome in zip(run, outcomes, strict=True):
                            self.report.add(outcome, source)
                    else:
                        for _, _, source, raw in run:
                            self._fhir(raw, source)
                    with unit_of_work(self.context.sessions, write=True) as session:
                        advance(session, self.key, "deferred", run[-1][0])
                    if self._crash:
                        self._crash.committed("deferred")
                    bar.update(len(run))
                after = group[-1][0]
        with unit_of_work(self.context.sessions, write=True) as session:
            advance(session, self.key, "deferred", after, finished=True)
        bar.close()

    def _fhir(self, raw: str, source: str) -> None:
        try:
            value = json.loads(raw)
        except ValueError:
            self.report.reject("FHIR", "file is not valid JSON", source, "fhir.json")
            return
        values = value if isinstance(value, list) else [value]
        for fhir_resource in values:
            if not isinstance(fhir_resource, dict) or "resourceType" not in fhir_resource:
                self.report.reject("FHIR", "not a FHIR resource (no resourceType)", source, "fhir.json")
                continue
            kind = str(fhir_resource.get("resourceType"))
            try:
                outcomes = DEFAULT_HANDLERS.fhir_resource(self.context, fhir_resource, source=source)
            except Exception as exc:  # noqa: BLE001 - counted, as ingest counts it
                outcomes = [ItemOutcome.rejected(kind, f"internal error while applying ({type(exc).__name__})",
                                                 "internal")]
            for outcome in outcomes or [ItemOutcome.rejected(kind,
                                                             "nothing to apply (no resources)", "fhir.empty")]:
                self.report.add(outcome, source)

    # 4. imaging and 5. orders ---------------------------------------------------------------------------------------

    def imaging(self) -> None:
        self._later_phase(Phase.IMAGING, "4/5 imaging")

    def orders(self) -> None:
        self._later_phase(Phase.ORDERS, "5/5 orders")

    def _later_phase(self, phase: Phase, label: str) -> None:
        bar = self.bar(label)
        stage = phase.label
        if self.listing.dicom_count and phase in FORMAT_PHASES[FileFormat.DICOM]:
            self._dicom(self.listing.dicom(), stage, bar)
        for _, found in self.listing.others():
            if phase not in found.phases:
                continue
            if found.format is FileFormat.FHIR_JSON and found.phases == (Phase.IDENTITY,):
                continue  # applied whole with the identity items
            name = str(found.path.resolve())
            if phase not in self._phases_read.get(name, (phase,)):
                continue  # read whole in the identity stage: nothing of this phase in it
            with unit_of_work(self.context.sessions) as session:
                mark = cursor(session, self.key, stage, name)
            if mark is not None and mark.finished:
                continue
            if found.format is FileFormat.HL7V2:
                self._hl7_file(found, phase, name, mark.position if mark is not None else 0, bar)
            else:  # FHIR NDJSON and JSON, DICOM JSON: their handlers, the file at once (idempotent by UID)
                _apply_file(self.context, DEFAULT_HANDLERS, found, phase, self.report)
                bar.update(1)
            with unit_of_work(self.context.sessions, write=True) as session:
                advance(session, self.key, stage, 0, item_file=name, finished=True)
        bar.close()

    def _hl7_file(self, found: Detected, phase: Phase, name: str, start: int, bar: Any) -> None:
        from api.feeds.hl7_service import Incoming, process_messages

        display = _display(found.path)
        group: list[tuple[int, Any]] = []
        position = 0

        def flush() -> None:
            ready = [(n, m) for n, m in group if m.text.startswith("MSH") and m.problem is None]
            for _, m in group:
                if not m.text.startswith("MSH"):
                    self.report.reject("HL7", "text outside any HL7 message (before the first MSH segment)",
                                       f"{display}#{m.position}", "hl7.no-msh")
                elif m.problem is not None:
                    self.report.reject(m.event or "HL7", m.problem, f"{display}#{m.position}", CHARSET_ERROR)
                    _dead_letter(self.context, "hl7v2", f"{display}#{m.position}", CHARSET_ERROR, m.problem, m.text)
            outcomes = process_messages(self.context, [Incoming(m.text, INGEST_AGENT, f"{display}#{m.position}")
                                                       for _, m in ready], channel=INGEST_CHANNEL,
                                        studies_in_bulk=phase is Phase.IMAGING) if ready else []
            for (_, m), outcome in zip(ready, outcomes, strict=True):
                self.report.add(outcome, f"{display}#{m.position}")
            with unit_of_work(self.context.sessions, write=True) as session:
                advance(session, self.key, phase.label, group[-1][0], item_file=name)
            if self._crash:
                self._crash.committed(phase.label)
            bar.update(len(group))
            group.clear()

        for message in hl7_messages(found.path):
            if message.phase != phase:
                continue
            position += 1
            if position <= start:
                continue
            group.append((position, message))
            if len(group) >= self.group:
                flush()
        if group:
            flush()

    def _dicom(self, files: Iterator[Detected], stage: str, bar: Any) -> None:
        """The DICOM files in groups, in the listing's order: each group read in the workers while the one before is
        written; the stage's cursor counts the files done, so a resumed load skips them without reading them."""
        from imaging import apply_many

        name = f"{stage}-dicom"
        with unit_of_work(self.context.sessions) as session:
            mark = cursor(session, self.key, name)
        if mark is not None and mark.finished:
            return
        start = mark.position if mark is not None else 0
        groups = _groups(itertools.islice(files, start, None), self.group)

        def read(chunk: list[Detected]) -> Callable[[], list[Any]]:
            return self.readers.start(_read_dicom, [str(found.path) for found in chunk])

        chunk = next(groups, None)
        reading = read(chunk) if chunk else None
        while chunk is not None:
            following = next(groups, None)
            end, finished = start + len(chunk), following is None
            assert reading is not None
            prepared = reading()
            reading = read(following) if following else None  # the next group is read while this one is written
            ready = [(n, p) for n, p in enumerate(prepared) if not isinstance(p, ItemOutcome)]
            outcomes: list[ItemOutcome | None] = [p if isinstance(p, ItemOutcome) else None for p in prepared]
            applied = self._studies_in_bulk([p for _, p in ready], name, end, finished) if ready else None
            if applied is not None:
                self.report.objects_in_bulk += len(ready)
            else:  # the per-message path: a group commit, each object alone if the group fails
                self.report.objects_per_message += len(ready)
                if ready:
                    applied = apply_many(self.context.sessions, self.context.trusts, [p for _, p in ready],
                                         agent=INGEST_AGENT, event_type="dicom")
                with unit_of_work(self.context.sessions, write=True) as session:
                    advance(session, self.key, name, end, finished=finished)
            for (n, _), outcome in zip(ready, applied or [], strict=True):
                outcomes[n] = outcome
            for found, maybe in zip(chunk, outcomes, strict=True):
                assert maybe is not None  # the file's name (a path resolved) is shown for rejections only
                self.report.add(maybe, "" if maybe.accepted else _display(found.path))
            if self._crash:
                self._crash.committed(name)
            bar.update(len(chunk))
            chunk, start = following, end

    def _studies_in_bulk(self, items: list[Any], stage: str, end: int, finished: bool) -> list[ItemOutcome] | None:
        """A group of DICOM objects written in bulk with the stage's cursor, in one transaction
        (:func:`imaging.load_studies`); None, with nothing written, when the group is for the per-message path (a
        rejection note, an object the store holds) or met a concurrent writer."""
        from imaging import load_studies

        try:
            with unit_of_work(self.context.sessions, write=True) as session:
                outcomes = load_studies(session, self.context.trusts, items, agent=INGEST_AGENT, event_type="dicom")
                if outcomes is None:
                    session.rollback()
                    return None
                advance(session, self.key, stage, end, finished=finished)
            return outcomes
        except (IntegrityError, OperationalError, PriorscanError) as exc:
            log.info("backfill: a group of %d DICOM objects goes through the per-message path after %s", len(items),
                     type(exc).__name__)
            return None


def _groups(files: Iterator[Detected], size: int) -> Iterator[list[Detected]]:
    """``files`` in lists of ``size`` (the last shorter)."""
    while chunk := list(itertools.islice(files, size)):
        yield chunk


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its worker processes that have ended."""
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


class _Nothing:
    position = 0


class _NoBar:
    """The progress bar of a load run ``--no-progress``."""

    def update(self, count: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def load_in_bulk(context: AppContext, paths: Sequence[Path | str], report: BackfillReport, options: BulkOptions, *,
                 progress: bool) -> None:
    """The bulk mode of :func:`api.feeds.ingest.load_paths`: the stages over the files under ``paths``, listed once
    (:class:`api.feeds.bulk_listing.Listing`), resuming a load of the same files that stopped (``options.restart``:
    forget where it stopped; its written records stay, and are then held records, whose items go through the
    per-message path)."""
    with Listing(paths, report) as listing:
        if options.restart:
            with unit_of_work(context.sessions, write=True) as session:
                forget(session, listing.key)
        workers = (os.cpu_count() or 1) if options.workers is None else options.workers
        Backfill(context, listing, report, workers=workers, batch=options.batch, progress=progress,
                 train=options.train).run()


def backfill_paths(context: AppContext, paths: Sequence[Path | str], *, workers: int | None = None,
                   batch: int = BATCH, progress: bool = False, train: bool = True,
                   restart: bool = False) -> BackfillReport:
    """:func:`api.feeds.ingest.load_paths` in bulk (``priorscan backfill``); the parameters are :class:`BulkOptions`'s.

    Returns
    -------
    BackfillReport
        Accepted and rejected counts with reasons, and what the bulk stages did.
    """
    report = load_paths(context, paths, bulk=BulkOptions(workers=workers, batch=batch, train=train, restart=restart),
                        progress=progress)
    assert isinstance(report, BackfillReport)
    return report


__all__ = ["BackfillReport", "backfill_paths", "load_in_bulk"]
