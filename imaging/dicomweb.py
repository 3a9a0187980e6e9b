"""Indexing a PACS over DICOMweb: poll QIDO-RS for studies, index them, remember where the poll stopped.

``priorscan dicomweb poll --url URL [--once] [--interval S]``. Each poll:

1. reads the cursor of this source (``priorscan.tables.PollCursor``, keyed by the URL): the latest Study Date seen;
2. asks QIDO-RS for the studies dated from a look-back window before that date (studies arrive late: a prior imported
   from elsewhere, a scan sent after reporting), page by page, with the attributes the index needs;
3. indexes each study that is new or has gained instances since it was last seen (the study's
   ``remote_instances``), through :func:`imaging.adapters.ingest_dicom_json`; for a study with structured reports it
   also retrieves each SR's metadata (WADO-RS) so that RDSR dose reaches the index;
4. moves the cursor forward after every study, in the same store, so a restarted poller resumes where it stopped.

Indexing is idempotent, so a study seen twice is harmless; the cursor only saves work. The network sits behind
:class:`DicomwebSource` (dicomweb-client's ``DICOMwebClient`` fits it), whose errors become
:class:`priorscan.errors.InputError` here.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from imaging.adapters import begin_write, ingest_dicom_json
from imaging.dicom_study import parse_da
from imaging.tables import Study
from priorscan.audit import Agent
from priorscan.errors import InputError
from priorscan.tables import PollCursor
from priorscan.trusts import TrustRegistry

if TYPE_CHECKING:
    from priorscan.cli import CliContext

log = logging.getLogger(__name__)

#: Attributes requested from QIDO-RS beyond the default study-level ones.
STUDY_FIELDS = ("IssuerOfPatientID", "IssuerOfPatientIDQualifiersSequence", "OtherPatientIDsSequence",
                "InstitutionName", "StudyDescription", "ModalitiesInStudy", "AccessionNumber", "PatientBirthDate",
                "PatientSex", "PatientAge", "ProcedureCodeSequence", "StudyTime", "NumberOfStudyRelatedInstances")
LOOKBACK_DAYS = 7
PAGE_SIZE = 100
STUDY_UID, STUDY_DATE, MODALITIES, INSTANCES = "0020000D", "00080020", "00080061", "00201208"
SERIES_UID, SOP_UID = "0020000E", "00080018"
POLLER = Agent("feed", "dicomweb-poller")


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
    """What one poll did."""

    studies_seen: int = 0
    studies_indexed: int = 0
    dose_reports: int = 0
    rejected: int = 0
    unresolved: int = 0
    cursor_date: str | None = None
    reasons: list[str] = field(default_factory=list)


def _value(dataset: dict[str, dict], tag: str) -> Any:
    values = (dataset.get(tag) or {}).get("Value") or []
    return values[0] if values else None


def _values(dataset: dict[str, dict], tag: str) -> list[Any]:
    return list((dataset.get(tag) or {}).get("Value") or [])


def read_cursor(session: Session, source: str) -> dict[str, Any]:
    row = session.get(PollCursor, source[:500])
    return dict(row.position) if row is not None else {}


def write_cursor(sessions: sessionmaker[Session], source: str, position: dict[str, Any]) -> None:
    with sessions() as session:
        begin_write(session)
        row = session.get(PollCursor, source[:500])
        if row is None:
            session.add(PollCursor(source=source[:500], position=position))
        else:
            row.position = position
        session.commit()


def _known_instances(sessions: sessionmaker[Session], uids: list[str]) -> dict[str, int | None]:
    with sessions() as session:
        rows = session.execute(select(Study.study_instance_uid, Study.remote_instances)
                               .where(Study.study_instance_uid.in_(uids))).all()
    return {uid: count for uid, count in rows}


def _remember_instances(sessions: sessionmaker[Session], uid: str, count: int | None) -> None:
    with sessions() as session:
        begin_write(session)
        study = session.scalars(select(Study).where(Study.study_instance_uid == uid)).first()
        if study is not None:
            study.remote_instances = count
            session.commit()


def _fetch_studies(client: DicomwebSource, since: date | None, page_size: int) -> list[dict[str, dict]]:
    filters = {"StudyDate": f"{since:%Y%m%d}-"} if since else None
    studies: list[dict[str, dict]] = []
    offset = 0
    while True:
        page = client.search_for_studies(limit=page_size, offset=offset, fields=list(STUDY_FIELDS),
                                         search_filters=filters)
        studies += page
        if len(page) < page_size:
            return studies
        offset += len(page)


def poll_once(sessions: sessionmaker[Session], trusts: TrustRegistry, client: DicomwebSource, *, source: str,
              source_trust: str | None = None, agent: Agent = POLLER, page_size: int = PAGE_SIZE,
              lookback_days: int = LOOKBACK_DAYS) -> PollResult:
    """Poll ``client`` once and index what is new since the cursor of ``source``.

    Parameters
    ----------
    sessions : sessionmaker
        The store (each study is its own unit of work).
    trusts : TrustRegistry
        The consortium.
    client : DicomwebSource
        The DICOMweb server.
    source : str
        The cursor's key (the server's URL).
    source_trust : str, optional
        The trust whose PACS this is (ODS code), qualifying patient IDs sent without issuer.
    agent : priorscan.audit.Agent
        Who indexes (audited).
    page_size, lookback_days : int
        QIDO page size; how far before the cursor's date to look again for late arrivals.

    Returns
    -------
    PollResult

    Raises
    ------
    priorscan.errors.InputError
        When the server cannot be reached or answers with an error (the cursor keeps its last position).
    """
    with sessions() as session:
        cursor = read_cursor(session, source)
    cursor_date = parse_da(cursor.get("study_date"))
    since = cursor_date - timedelta(days=lookback_days) if cursor_date else None
    try:
        studies = _fetch_studies(client, since, page_size)
    except Exception as exc:  # requests, HTTP and JSON errors of the client library
        raise InputError(f"DICOMweb query failed ({type(exc).__name__})", code="dicomweb") from exc
    studies.sort(key=lambda d: (str(_value(d, STUDY_DATE) or ""), str(_value(d, STUDY_UID) or "")))
    known = _known_instances(sessions, [str(_value(d, STUDY_UID)) for d in studies if _value(d, STUDY_UID)])
    result = PollResult(studies_seen=len(studies), cursor_date=cursor.get("study_date"))
    for dataset in studies:
        uid = _value(dataset, STUDY_UID)
        if not uid:
            result.rejected += 1
            continue
        count = _value(dataset, INSTANCES)
        count = int(count) if isinstance(count, int | float | str) and str(count).isdigit() else None
        if uid in known and known[uid] is not None and known[uid] == count:
            _advance(result, dataset)
            continue
        outcome = ingest_dicom_json(sessions, trusts, dataset, agent=agent, source=source_trust or source)
        if not outcome.accepted:
            result.rejected += 1
            result.reasons.append(outcome.reason or "rejected")
            continue
        result.studies_indexed += 1
        if outcome.detail.get("patient") == "unresolved":
            result.unresolved += 1
        if "SR" in [str(m).upper() for m in _values(dataset, MODALITIES)]:
            result.dose_reports += _index_reports(sessions, trusts, client, uid, agent=agent,
                                                  source=source_trust or source, result=result)
        _remember_instances(sessions, uid, count)
        if _advance(result, dataset):
            write_cursor(sessions, source, {"study_date": result.cursor_date})
    write_cursor(sessions, source, {"study_date": result.cursor_date, "last_poll_studies": result.studies_seen})
    return result


def _advance(result: PollResult, dataset: dict[str, dict]) -> bool:
    day = str(_value(dataset, STUDY_DATE) or "")
    if parse_da(day) and (result.cursor_date is None or day > result.cursor_date):
        result.cursor_date = day
        return True
    return False


def _index_reports(sessions: sessionmaker[Session], trusts: TrustRegistry, client: DicomwebSource, uid: str, *,
                   agent: Agent, source: str, result: PollResult) -> int:
    """Index the structured reports of one study (RDSRs carry the dose), from their WADO-RS metadata."""
    try:
        instances = client.search_for_instances(uid, search_filters={"Modality": "SR"})
    except Exception as exc:  # the study stays indexed; its dose comes on a later poll or by file
        result.reasons.append(f"SR search failed ({type(exc).__name__})")
        return 0
    indexed = 0
    for instance in instances:
        series, sop = _value(instance, SERIES_UID), _value(instance, SOP_UID)
        if not series or not sop:
            continue
        try:
            metadata = client.retrieve_instance_metadata(uid, series, sop)
        except Exception as exc:
            result.reasons.append(f"SR metadata failed ({type(exc).__name__})")
            continue
        outcome = ingest_dicom_json(sessions, trusts, metadata, agent=agent, source=source)
        if outcome.accepted and outcome.kind == "RDSR":
            indexed += 1
    return indexed


def run_poll(args: argparse.Namespace, ctx: CliContext) -> int:
    """``priorscan dicomweb poll``: poll once (``--once``) or every ``--interval`` seconds until interrupted."""
    from dicomweb_client.api import DICOMwebClient

    from priorscan.db import session_factory

    sessions = session_factory(ctx.engine)
    client = DICOMwebClient(url=args.url.rstrip("/"))
    source_trust = getattr(args, "trust", None)
    while True:
        try:
            result = poll_once(sessions, ctx.trusts, client, source=args.url.rstrip("/"), source_trust=source_trust)
        except InputError as exc:
            print(f"dicomweb poll: {exc.message}", flush=True)
            if args.once:
                return 1
        else:
            print(f"dicomweb poll: {result.studies_seen} studies seen, {result.studies_indexed} indexed "
                  f"({result.dose_reports} dose reports, {result.unresolved} without an identified patient), "
                  f"{result.rejected} rejected; up to study date {result.cursor_date or '-'}", flush=True)
            if args.once:
                return 1 if result.rejected else 0
        try:
            time.sleep(max(1.0, float(args.interval)))
        except KeyboardInterrupt:
            return 0
