"""Indexing a PACS over DICOMweb so that no study is missed: ``priorscan dicomweb poll --url URL [--once]``.

QIDO-RS filters studies by what they say (their date), never by when they arrived, and PACS receive priors with old
study dates every day (imports, back-loaded archives, late scans). Each poll therefore does two things:

1. **Recent dates, every poll**: the studies dated from ``recent_days`` before today onward (open-ended, so studies
   dated in the future are seen too);
2. **Reconciliation of every date**: the whole date line, cut into ranges (:mod:`imaging.reconcile`; yearly at
   first, split in halves whenever a range fills a QIDO page), is re-listed in turn, least recently listed first,
   ``sweep_queries`` QIDO queries per poll.

Every study listed is compared with the index by the fingerprint of its QIDO answer (instances, patient, date,
accession, modalities): a **new** study is indexed; a study that **changed** (it grew: a new series, a new RDSR; or
it was corrected: another patient, another date) is read again, its structured reports (RDSR dose) and key object
notes (IOCM rejections) retrieved over WADO-RS; an **unchanged** one is skipped. A study the index holds from this
PACS that a complete listing of its date range no longer shows, and that a query by its UID confirms is gone, is
**withdrawn** from the priors (deleted in the PACS); it comes back if it reappears. RDSRs deleted from a study that
is still there have their dose taken out.

**The bound.** A study of any date, arrived at any time, is indexed at the latest when the range holding its date is
next listed: within ``sweep_bound_polls`` polls of its arrival (printed by every poll: the number of QIDO queries of
a full sweep divided by ``sweep_queries``), i.e. that many poll intervals; a study dated within ``recent_days`` is
indexed by the next poll. Studies without a study date cannot be asked for by date and are found only by push
(C-STORE, STOW-RS) or by a file. A PACS that does not return NumberOfStudyRelatedInstances hides growth from the
fingerprint: its studies dated within ``recent_days`` are then read again on every poll.

The cursor (``priorscan.tables.PollCursor``, keyed by the URL) keeps the ranges with when each was last listed, so
a restarted poller resumes the sweep. Indexing is idempotent. The network sits behind :class:`DicomwebSource`
(dicomweb-client's ``DICOMwebClient`` fits it), whose errors become :class:`priorscan.errors.InputError`.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from imaging import reconcile as rc
from imaging.adapters import ingest_dicom_json
from imaging.index import StudyIndex
from imaging.iocm import DELETED_FROM_PACS
from imaging.tables import Study, StudyInstance
from imaging.withdrawal import forget_instances, mark_deleted, remember_instances, restore
from priorscan.audit import Agent, record
from priorscan.errors import InputError
from priorscan.tables import PollCursor
from priorscan.trusts import TrustRegistry
from priorscan.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from priorscan.cli import CliContext

log = logging.getLogger(__name__)

#: Attributes requested from QIDO-RS beyond the default study-level ones.
STUDY_FIELDS = ("IssuerOfPatientID", "IssuerOfPatientIDQualifiersSequence", "OtherPatientIDsSequence",
                "InstitutionName", "StudyDescription", "ModalitiesInStudy", "AccessionNumber", "PatientBirthDate",
                "PatientSex", "PatientAge", "ProcedureCodeSequence", "StudyTime", "NumberOfStudyRelatedInstances")
RECENT_DAYS = 7
PAGE_SIZE = 500
SWEEP_QUERIES = 50
#: Withdrawals confirmed per poll at most (each costs a query): a mass deletion is worked through over polls.
CONFIRMATIONS = 200
STUDY_UID, STUDY_DATE, MODALITIES = "0020000D", "00080020", "00080061"
SERIES_UID, SOP_UID, SOP_CLASS, MODALITY = "0020000E", "00080018", "00080016", "00080060"
POLLER = Agent("feed", "dicomweb-poller")
CURSOR_VERSION = 2


class DicomwebSource(Protocol):
    """The part of a DICOMweb client the poller uses (``dicomweb_client.DICOMwebClient`` has it)."""

    def search_for_studies(self, *, limit: int | None = None, offset: int | None = None,
                           fields: Sequence[str] | None = None,
                           search_filters: dict[str, Any] | None = None) -> list[dict[str, dict]]: ...

    def search_for_instances(self, study_instance_uid: str | None = None, *,
                             search_filters: dict[str, Any] | None = None) -> list[dict[str, dict]]: ...

    def retrieve_instance_metadata(self, study_instance_uid: str, series_instance_uid: str,
                                   sop_instance_uid: str) -> dict[str, dict]: ...


@dataclass
class PollResult:
    """What one poll saw and did, with the reason for everything it did not index."""

    studies_seen: int = 0
    new: int = 0
    reread: int = 0  # grown or corrected
    unchanged: int = 0
    rejected: int = 0
    unresolved: int = 0
    dose_reports: int = 0
    rejection_notes: int = 0
    withdrawn: int = 0  # deleted in the PACS
    restored: int = 0
    not_patient: int = 0  # indexed studies that are QA, physics or phantom tests (kept, never priors)
    ranges_listed: int = 0
    ranges_total: int = 0
    queries: int = 0
    sweep_bound_polls: int = 1
    oldest_listing: str | None = None  # every range was listed in full at or after this time
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def studies_indexed(self) -> int:
        return self.new + self.reread

    def render(self) -> str:
        """One line per poll, as ``priorscan dicomweb poll`` prints it."""
        why = "; ".join(f"{n} × {reason}" for reason, n in self.reasons.most_common(5))
        return (f"{self.studies_seen} studies seen, {self.studies_indexed} indexed ({self.new} new, {self.reread} "
                f"re-read as grown or corrected; {self.dose_reports} dose reports, {self.rejection_notes} rejection "
                f"notes, {self.unresolved} without an identified patient, {self.not_patient} QA/physics tests "
                f"that are not patients), {self.unchanged} unchanged, "
                f"{self.rejected} rejected{f' ({why})' if why else ''}, {self.withdrawn} withdrawn as deleted in "
                f"the PACS, {self.restored} restored; {self.ranges_listed} of {self.ranges_total} date ranges "
                f"reconciled in {self.queries} queries, every date re-listed within {self.sweep_bound_polls} "
                f"poll(s), all dates last listed by {self.oldest_listing or 'never (sweep in progress)'}")


def _value(dataset: dict[str, dict], tag: str) -> Any:
    values = (dataset.get(tag) or {}).get("Value") or []
    return values[0] if values else None


def _values(dataset: dict[str, dict], tag: str) -> list[Any]:
    return list((dataset.get(tag) or {}).get("Value") or [])


def read_cursor(session: Session, source: str) -> dict[str, Any]:
    row = session.get(PollCursor, source[:500])
    return dict(row.position) if row is not None else {}


def write_cursor(sessions: sessionmaker[Session], source: str, position: dict[str, Any]) -> None:
    with unit_of_work(sessions, write=True) as session:
        row = session.get(PollCursor, source[:500])
        if row is None:
            session.add(PollCursor(source=source[:500], position=position))
        else:
            row.position = position


class _Poll:
    """One poll's state: the client, the store, the ranges and the result."""

    def __init__(self, sessions: sessionmaker[Session], trusts: TrustRegistry, client: DicomwebSource, *,
                 source: str, source_trust: str | None, agent: Agent, page_size: int) -> None:
        self.sessions, self.trusts, self.client = sessions, trusts, client
        self.source, self.source_trust, self.agent, self.page_size = source, source_trust, agent, page_size
        self.result = PollResult()
        self.seen: set[str] = set()
        self.confirmations = CONFIRMATIONS

    # --- QIDO ---------------------------------------------------------------------------------------------------

    def _query(self, call: Any, what: str) -> Any:
        self.result.queries += 1
        try:
            return call()
        except Exception as exc:  # requests, HTTP and JSON errors of the client library
            raise InputError(f"DICOMweb {what} failed ({type(exc).__name__})", code="dicomweb") from exc

    def page(self, rng: rc.DateRange, offset: int) -> list[dict[str, dict]]:
        return list(self._query(lambda: self.client.search_for_studies(
            limit=self.page_size, offset=offset, fields=list(STUDY_FIELDS),
            search_filters={"StudyDate": rng.qido}), "study query"))

    def list_range(self, rng: rc.DateRange, *,
                   split: bool = True) -> list[dict[str, dict]] | tuple[rc.DateRange, rc.DateRange]:
        """Every study of ``rng`` (paged), or its two halves when its first page is full and it can be split."""
        studies = self.page(rng, 0)
        if split and len(studies) >= self.page_size:
            halves = rng.split()
            if halves is not None:
                return halves
        while len(studies) % self.page_size == 0 and studies:
            more = self.page(rng, len(studies))
            studies += more
            if len(more) < self.page_size:
                break
        return studies

    # --- comparing and indexing -------------------------------------------------------------------------------

    def known(self, uids: list[str]) -> dict[str, tuple[str | None, str | None]]:
        """UID → (fingerprint, withdrawn) of the listed studies the index holds."""
        found: dict[str, tuple[str | None, str | None]] = {}
        with unit_of_work(self.sessions) as session:
            for start in range(0, len(uids), 500):
                rows = session.execute(select(Study.study_instance_uid, Study.remote_fingerprint, Study.withdrawn)
                                       .where(Study.study_instance_uid.in_(uids[start:start + 500]))).all()
                found.update({uid: (fp, withdrawn) for uid, fp, withdrawn in rows})
        return found

    def process(self, studies: list[dict[str, dict]], *, always_reread_uncounted: bool) -> set[str]:
        """Index what is new or changed among ``studies``; the UIDs listed."""
        listed = {str(_value(d, STUDY_UID)).strip() for d in studies if _value(d, STUDY_UID)}
        fresh = [d for d in studies if str(_value(d, STUDY_UID) or "").strip() not in self.seen]
        known = self.known(sorted({str(_value(d, STUDY_UID)).strip() for d in fresh if _value(d, STUDY_UID)}))
        fresh.sort(key=lambda d: (str(_value(d, STUDY_DATE) or ""), str(_value(d, STUDY_UID) or "")))
        for dataset in fresh:
            uid = str(_value(dataset, STUDY_UID) or "").strip()
            if not uid:
                self.result.rejected += 1
                self.result.reasons["no Study Instance UID in the QIDO answer"] += 1
                continue
            if uid in self.seen:
                continue
            self.seen.add(uid)
            self.result.studies_seen += 1
            digest = rc.fingerprint(dataset)
            stored, withdrawn = known.get(uid, (None, None))
            uncounted = rc.instance_count(dataset) is None and always_reread_uncounted
            if stored == digest and not uncounted:
                self.result.unchanged += 1
                if withdrawn is not None and self._restore(uid):
                    self.result.restored += 1
                continue
            self.index(uid, dataset, digest, created=uid not in known, withdrawn=withdrawn)
        return listed

    def index(self, uid: str, dataset: dict[str, dict], digest: str, *, created: bool,
              withdrawn: str | None) -> None:
        modalities = {str(m).upper() for m in _values(dataset, MODALITIES)}
        more = "SR" in modalities or "KO" in modalities or not created  # objects to read over WADO-RS as well
        count = rc.instance_count(dataset)
        outcome = ingest_dicom_json(self.sessions, self.trusts, dataset, agent=self.agent,
                                    source=self.source_trust or self.source,
                                    remote=None if more else (self.source, digest, count))
        if not outcome.accepted:
            self.result.rejected += 1
            self.result.reasons[outcome.reason or "rejected"] += 1
            return
        if created:
            self.result.new += 1
        else:
            self.result.reread += 1
        if outcome.detail.get("patient") == "unresolved":
            self.result.unresolved += 1
        if outcome.detail.get("notPatient"):
            self.result.not_patient += 1
        if not more:  # the one unit of work kept the fingerprint (and gave back a study deleted before)
            self.result.restored += withdrawn == DELETED_FROM_PACS
            return
        complete = True
        if "SR" in modalities or not created:
            complete &= self.read_reports(uid)
        if "KO" in modalities:
            complete &= self.read_key_objects(uid)
        if withdrawn is not None and self._restore(uid):
            self.result.restored += 1
        if complete:  # otherwise the fingerprint stays old: the study is read again next time
            self._remember(uid, digest, count)

    def _instances(self, uid: str, modality: str | None = None) -> list[dict[str, dict]] | None:
        filters = {"Modality": modality} if modality else None
        try:
            self.result.queries += 1
            return list(self.client.search_for_instances(uid, search_filters=filters))
        except Exception as exc:  # the study stays indexed; its objects are read on a later poll
            self.result.reasons[f"instance query failed ({type(exc).__name__})"] += 1
            return None

    def _metadata(self, uid: str, instance: dict[str, dict]) -> dict[str, dict] | None:
        series, sop = _value(instance, SERIES_UID), _value(instance, SOP_UID)
        if not series or not sop:
            return None
        try:
            self.result.queries += 1
            return self.client.retrieve_instance_metadata(uid, series, sop)
        except Exception as exc:
            self.result.reasons[f"instance metadata failed ({type(exc).__name__})"] += 1
            return None

    def _known_objects(self, uid: str) -> dict[str, StudyInstance]:
        with unit_of_work(self.sessions) as session:
            study = session.scalars(select(Study.id).where(Study.study_instance_uid == uid)).first()
            if study is None:
                return {}
            return {row.sop_instance_uid: row for row in session.scalars(
                select(StudyInstance).where(StudyInstance.study_id == study))}

    def read_reports(self, uid: str) -> bool:
        """Index the study's structured reports not read yet (RDSRs carry the dose); take out the dose of RDSRs
        the PACS no longer holds. False when something could not be read."""
        instances = self._instances(uid, "SR")
        if instances is None:
            return False
        complete = True
        objects = self._known_objects(uid)
        present = {str(_value(i, SOP_UID)) for i in instances if _value(i, SOP_UID)}
        for instance in instances:
            if str(_value(instance, SOP_UID)) in objects:
                continue
            metadata = self._metadata(uid, instance)
            if metadata is None:
                complete = False
                continue
            outcome = ingest_dicom_json(self.sessions, self.trusts, metadata, agent=self.agent,
                                        source=self.source_trust or self.source)
            if outcome.accepted and outcome.kind == "RDSR":
                self.result.dose_reports += 1
            elif not outcome.accepted:
                self.result.reasons[outcome.reason or "SR rejected"] += 1
        gone = [sop for sop, row in objects.items() if row.modality == "SR" and row.dose and sop not in present]
        if gone:
            self._forget(uid, gone)
        return complete

    def read_key_objects(self, uid: str) -> bool:
        """Index the study's key object notes (IOCM rejection notes), after recording every object of the study,
        so that a study all of whose images are rejected is withdrawn."""
        everything = self._instances(uid)
        if everything is None:
            return False
        self._remember_objects(uid, everything)
        complete = True
        for instance in everything:  # notes are few, and applying one again changes nothing
            if str(_value(instance, MODALITY) or "").upper() != "KO":
                continue
            metadata = self._metadata(uid, instance)
            if metadata is None:
                complete = False
                continue
            outcome = ingest_dicom_json(self.sessions, self.trusts, metadata, agent=self.agent,
                                        source=self.source_trust or self.source)
            if outcome.accepted and outcome.kind == "IOCM rejection":
                self.result.rejection_notes += 1
        return complete

    # --- writes -------------------------------------------------------------------------------------------------

    def _remember(self, uid: str, digest: str, count: int | None) -> None:
        with unit_of_work(self.sessions, write=True) as session:
            study = session.scalars(select(Study).where(Study.study_instance_uid == uid)).first()
            if study is not None:
                study.remote_fingerprint, study.remote_instances, study.remote_source = digest, count, self.source[:500]

    def _remember_objects(self, uid: str, instances: list[dict[str, dict]]) -> None:
        with unit_of_work(self.sessions, write=True) as session:
            index = StudyIndex(session, self.trusts)
            study = index.find(uid, lock=True)
            if study is not None:
                remember_instances(index, study, [
                    (str(_value(i, SOP_UID)), _value(i, SERIES_UID), _value(i, SOP_CLASS), _value(i, MODALITY))
                    for i in instances if _value(i, SOP_UID)])

    def _forget(self, uid: str, sops: list[str]) -> None:
        with unit_of_work(self.sessions, write=True) as session:
            index = StudyIndex(session, self.trusts)
            study = index.find(uid, lock=True)
            if study is not None:
                forget_instances(index, study, sops)
                record(session, self.agent, action="U", event_type="dicomweb", subtype="objects-deleted",
                       regional_patient_id=index.regional_id_of(study), entity=f"ImagingStudy/{uid}",
                       detail={"objects": len(sops)})

    def _restore(self, uid: str) -> bool:
        with unit_of_work(self.sessions, write=True) as session:
            index = StudyIndex(session, self.trusts)
            study = index.find(uid, lock=True)
            if study is None or not restore(study):
                return False
            record(session, self.agent, action="U", event_type="dicomweb", subtype="study-listed-again",
                   regional_patient_id=index.regional_id_of(study), entity=f"ImagingStudy/{uid}")
            return True

    def withdraw_missing(self, rng: rc.DateRange, listed: set[str]) -> None:
        """Withdraw the studies of this PACS dated in ``rng`` that its complete listing no longer shows, once a
        query by UID confirms each is gone."""
        query = select(Study.study_instance_uid, Study.study_date).where(
            Study.remote_source == self.source[:500], Study.withdrawn.is_(None))
        if rng.start is not None:
            query = query.where(Study.study_date >= rng.start)
        if rng.end is not None:
            query = query.where(Study.study_date <= rng.end)
        if rng.start is None and rng.end is None:
            query = query.where(Study.study_date.is_not(None))
        with unit_of_work(self.sessions) as session:
            missing = [uid for uid, _ in session.execute(query) if uid not in listed]
        for uid in missing:
            if self.confirmations <= 0:
                self.result.reasons["deletions left to confirm on the next poll"] += 1
                continue
            self.confirmations -= 1
            found = self._query(lambda u=uid: self.client.search_for_studies(
                limit=1, search_filters={"StudyInstanceUID": u}), "study query by UID")
            if found:
                continue  # its date changed: it is listed in its new range
            with unit_of_work(self.sessions, write=True) as session:
                index = StudyIndex(session, self.trusts)
                study = index.find(uid, lock=True)
                if study is not None and mark_deleted(study):
                    record(session, self.agent, action="U", event_type="dicomweb", subtype="study-deleted-in-pacs",
                           regional_patient_id=index.regional_id_of(study), entity=f"ImagingStudy/{uid}")
                    self.result.withdrawn += 1


def poll_once(sessions: sessionmaker[Session], trusts: TrustRegistry, client: DicomwebSource, *, source: str,
              source_trust: str | None = None, agent: Agent = POLLER, page_size: int = PAGE_SIZE,
              recent_days: int = RECENT_DAYS, sweep_queries: int = SWEEP_QUERIES, today: date | None = None,
              now: datetime | None = None) -> PollResult:
    """Poll ``client`` once: the recent dates, then the date ranges due for reconciliation (module docstring).

    Parameters
    ----------
    sessions : sessionmaker
        The store (each study is its own unit of work).
    trusts : TrustRegistry
        The consortium.
    client : DicomwebSource
        The DICOMweb server.
    source : str
        The cursor's key and the studies' ``remote_source`` (the server's URL).
    source_trust : str, optional
        The trust whose PACS this is (ODS code), qualifying patient IDs sent without issuer.
    agent : priorscan.audit.Agent
        Who indexes (audited).
    page_size, recent_days, sweep_queries : int
        QIDO page size; the dates listed on every poll; the QIDO queries each poll spends on reconciliation.
    today, now
        The local date that "recent" counts from, and the time stamped on listings (default: the clock).

    Returns
    -------
    PollResult

    Raises
    ------
    priorscan.errors.InputError
        When the server cannot be reached or answers a study query with an error (what was done is kept).
    """
    now = now or datetime.now(UTC)
    today = today or now.date()
    poll = _Poll(sessions, trusts, client, source=source, source_trust=source_trust, agent=agent,
                 page_size=page_size)
    with unit_of_work(sessions) as session:
        cursor = read_cursor(session, source)
    if cursor.get("version") == CURSOR_VERSION:
        ranges = rc.extend_to([rc.DateRange.from_json(r) for r in cursor["ranges"]], today)
    else:
        ranges = rc.initial_ranges(today)
    stamp = now.isoformat(timespec="seconds")

    recent = poll.list_range(rc.DateRange(today - timedelta(days=recent_days), None), split=False)
    poll.process(recent if isinstance(recent, list) else [], always_reread_uncounted=True)

    spent_before = poll.result.queries
    queue = [ranges[i] for i in rc.due_ranges(ranges, sweep_queries, page_size)]
    while queue and poll.result.queries - spent_before < sweep_queries:
        rng = queue.pop(0)
        at = ranges.index(rng)
        listed = poll.list_range(rng)
        if isinstance(listed, tuple):  # split: the halves take its place and are listed next, budget allowing
            ranges[at:at + 1] = list(listed)
            queue[0:0] = list(listed)
            continue
        uids = poll.process(listed, always_reread_uncounted=False)
        poll.withdraw_missing(rng, uids)
        ranges[at] = rng.listed(stamp, len(listed))
        poll.result.ranges_listed += 1
        write_cursor(sessions, source, _position(ranges, poll.result))
    poll.result.ranges_total = len(ranges)
    poll.result.sweep_bound_polls = rc.sweep_bound_polls(ranges, sweep_queries, page_size)
    stamps = [r.listed_at for r in ranges]
    poll.result.oldest_listing = None if None in stamps else min(s for s in stamps if s)
    write_cursor(sessions, source, _position(ranges, poll.result))
    return poll.result


def _position(ranges: list[rc.DateRange], result: PollResult) -> dict[str, Any]:
    return {"version": CURSOR_VERSION, "ranges": [r.as_json() for r in ranges],
            "last_poll": {"seen": result.studies_seen, "new": result.new, "reread": result.reread,
                          "unchanged": result.unchanged, "rejected": result.rejected, "withdrawn": result.withdrawn,
                          "notPatient": result.not_patient}}


def run_poll(args: argparse.Namespace, ctx: CliContext) -> int:
    """``priorscan dicomweb poll``: poll once (``--once``) or every ``--interval`` seconds until interrupted."""
    from dicomweb_client.api import DICOMwebClient

    from priorscan.db import session_factory

    sessions = session_factory(ctx.engine)
    client = DICOMwebClient(url=args.url.rstrip("/"))
    source_trust = getattr(args, "trust", None)
    while True:
        try:
            result = poll_once(sessions, ctx.trusts, client, source=args.url.rstrip("/"), source_trust=source_trust,
                               recent_days=getattr(args, "recent_days", RECENT_DAYS),
                               sweep_queries=getattr(args, "sweep_queries", SWEEP_QUERIES))
        except InputError as exc:
            print(f"dicomweb poll: {exc.message}", flush=True)
            if args.once:
                return 1
        else:
            print(f"dicomweb poll: {result.render()}", flush=True)
            if args.once:
                return 1 if result.rejected else 0
        try:
            time.sleep(max(1.0, float(args.interval)))
        except KeyboardInterrupt:
            return 0

