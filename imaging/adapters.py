"""The entry points that ``priorscan ingest`` and the DICOMweb poller call: one DICOM file, or one DICOM JSON dataset.

Each call opens a session, applies the object to the index (:class:`imaging.index.StudyIndex`), records the audit
event, commits and returns an :class:`priorscan.outcome.ItemOutcome`. Nothing is raised for bad input: a corrupt
file or a dataset without a Study Instance UID is a rejected outcome with a reason that names no patient. A study
whose patient cannot be identified is *accepted* (the study is kept) and reported in the outcome's detail
(``patient: "unresolved"`` with the reason).

Files are read with ``stop_before_pixels``: the index never needs pixel data. pydicom's value validation warnings
are collected rather than raised (trust feeds are lenient on ingest; what enters the index is validated here).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from imaging.dicom_bytes import READ_ERRORS, read_header_from, why_unreadable
from imaging.dicom_study import facts_from_dataset
from imaging.facts import StudyFacts
from imaging.index import IndexedStudy, StudyIndex
from imaging.iocm import RejectionNote, read_rejection_note
from imaging.rdsr import raw_text
from imaging.tables import Study
from imaging.withdrawal import apply_rejection
from priorscan.audit import Agent, record
from priorscan.errors import PriorscanError
from priorscan.outcome import ItemOutcome
from priorscan.trusts import TrustRegistry
from priorscan.unit_of_work import unit_of_work

log = logging.getLogger(__name__)
ATTEMPTS = 3
#: What reading a file may raise: a corrupt or truncated object (imaging.dicom_bytes.READ_ERRORS), or one too large
_FILE_ERRORS: tuple[type[BaseException], ...] = (*READ_ERRORS, MemoryError)


def actor_of(agent: Agent) -> str:
    return f"{agent.kind}:{agent.name}"


def read_dicom_file(path: Path) -> Dataset:
    """Read a DICOM file's header (no pixel data), with or without a preamble; raises on anything else
    (:func:`imaging.dicom_bytes.read_header_from`: bytes that are no dataset, a deflate bomb)."""
    with open(path, "rb") as stream:
        return read_header_from(stream)


def dataset_from_json(dataset: dict[str, Any]) -> Dataset:
    """A pydicom Dataset from a DICOM JSON object (bulk data references are not fetched)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Dataset.from_json(dataset, bulk_data_uri_handler=lambda *_: b"")


def _facts(ds: Dataset, trusts: TrustRegistry, *, source: str, source_name: str | None) -> StudyFacts | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        facts = facts_from_dataset(ds, trusts, source=source, source_trust=trusts.resolve(source_name))
        if facts is not None:
            facts.series_instance_uid = raw_text(ds, (0x0020, 0x000E))
            facts.sop_class_uid = raw_text(ds, (0x0008, 0x0016))
        return facts


def _apply_in(session: Session, index: StudyIndex, facts: StudyFacts, *, agent: Agent, event_type: str,
              rejection: RejectionNote | None) -> ItemOutcome:
    """Apply one statement in an open unit of work (not committed), audited; the outcome it will have."""
    indexed = index.apply(facts, actor=actor_of(agent))
    record(session, agent, **applied_audit(indexed, facts, event_type=event_type))
    touched = apply_rejection(index, rejection) if rejection is not None else []
    for changed in touched:
        record(session, agent, action="U", event_type=event_type, subtype="IOCM rejection",
               regional_patient_id=index.regional_id_of(changed), entity=f"ImagingStudy/{changed.study_instance_uid}",
               detail={"reason": rejection.reason.code if rejection else None, "withdrawn": changed.withdrawn})
    return applied_outcome(indexed, facts, rejection=rejection, touched=touched)


def applied_audit(indexed: IndexedStudy, facts: StudyFacts, *, event_type: str) -> dict[str, Any]:
    """The audit event of one applied statement (:func:`priorscan.audit.record`'s arguments but the agent)."""
    return {"action": "C" if indexed.created else "U", "event_type": event_type, "subtype": facts.kind,
            "regional_patient_id": indexed.regional_id, "entity": f"ImagingStudy/{indexed.study.study_instance_uid}",
            "detail": {"patient": indexed.patient, "source": facts.source,
                       **({"notPatient": True} if indexed.study.not_patient else {})}}


def applied_outcome(indexed: IndexedStudy, facts: StudyFacts, *, rejection: RejectionNote | None = None,
                    touched: Sequence[Study] = ()) -> ItemOutcome:
    """The outcome of one applied statement, from the study as it stands after it."""
    study = indexed.study
    detail: dict[str, object] = {
        "studyInstanceUid": study.study_instance_uid, "regionalPatientId": indexed.regional_id,
        "patient": indexed.patient, "created": indexed.created, "normalisation": study.normalisation,
        "doseSource": study.dose_source}
    if indexed.unresolved_reason:
        detail["unresolvedReason"] = indexed.unresolved_reason
    if facts.notes:
        detail["notes"] = sorted(set(facts.notes))[:10]
    if rejection is not None:
        detail["rejection"] = {"reason": rejection.reason.label, "instances": len(rejection.instances),
                               "studiesWithdrawn": [s.study_instance_uid for s in touched if s.withdrawn]}
    if study.withdrawn:
        detail["withdrawn"] = study.withdrawn
    if study.not_patient:
        detail["notPatient"] = study.not_patient
    return ItemOutcome.ok("IOCM rejection" if rejection is not None else facts.kind, **detail)


def apply_facts(sessions: sessionmaker[Session], trusts: TrustRegistry, facts: StudyFacts, *, agent: Agent,
                event_type: str, rejection: RejectionNote | None = None) -> ItemOutcome:
    """Apply one statement about a study in its own unit of work (retried on a race), audited, committed.

    ``rejection``: the object is an IOCM rejection note; the instances it names are rejected in the same unit of
    work (:func:`imaging.withdrawal.apply_rejection`).
    """
    try:
        return unit_of_work(sessions, write=True, attempts=ATTEMPTS, pause_s=0.05).run(
            lambda session: _apply_in(session, StudyIndex(session, trusts), facts, agent=agent,
                                      event_type=event_type, rejection=rejection))
    except PriorscanError as exc:  # refused by the index, or a store busy on every attempt (``busy``)
        return ItemOutcome.rejected(facts.kind, exc.message, exc.code)


def apply_many(sessions: sessionmaker[Session], trusts: TrustRegistry,
               items: list[tuple[StudyFacts, RejectionNote | None]], *, agent: Agent,
               event_type: str) -> list[ItemOutcome]:
    """Apply several statements in one unit of work (group commit: one transaction, one commit, the studies they
    share read once). When that unit fails (a race, an object the index refuses), each is applied alone, so one
    object's failure never fails another's.
    """
    if len(items) == 1:
        facts, rejection = items[0]
        return [apply_facts(sessions, trusts, facts, agent=agent, event_type=event_type, rejection=rejection)]
    try:
        with unit_of_work(sessions, write=True) as session:
            index = StudyIndex(session, trusts)
            outcomes = [_apply_in(session, index, facts, agent=agent, event_type=event_type, rejection=rejection)
                        for facts, rejection in items]
        return outcomes
    except (IntegrityError, OperationalError, PriorscanError) as exc:
        log.info("imaging: a group of %d objects is applied one by one after %s", len(items), type(exc).__name__)
    return [apply_facts(sessions, trusts, facts, agent=agent, event_type=event_type, rejection=rejection)
            for facts, rejection in items]


def ingest_dicom_file(sessions: sessionmaker[Session], trusts: TrustRegistry, path: Path, *, agent: Agent,
                      source_trust: str | None = None) -> ItemOutcome:
    """Index one DICOM file (image, RDSR or other object, with or without ``.dcm``).

    Parameters
    ----------
    sessions : sessionmaker
        Opens the unit of work (committed here).
    trusts : TrustRegistry
        The consortium.
    path : pathlib.Path
        The file.
    agent : priorscan.audit.Agent
        Who is loading it (audited).
    source_trust : str, optional
        The trust that sent the file (ODS code or alias), qualifying a patient ID sent without issuer.

    Returns
    -------
    ItemOutcome
        Accepted with ``studyInstanceUid``, ``regionalPatientId``, ``patient`` (linked | provisional | unresolved),
        ``normalisation`` and ``doseSource`` in its detail; rejected with a reason for an unreadable file.
    """
    try:
        ds = read_dicom_file(Path(path))
    except _FILE_ERRORS as exc:
        return ItemOutcome.rejected("DICOM", f"not a readable DICOM file ({why_unreadable(exc)})", "dicom")
    return _ingest_dataset(sessions, trusts, ds, agent=agent, source="dicom", source_name=source_trust,
                           kind="DICOM")


def ingest_dicom_dataset(sessions: sessionmaker[Session], trusts: TrustRegistry, ds: Dataset, *, agent: Agent,
                         source_trust: str | None = None) -> ItemOutcome:
    """Index one DICOM object already read (without pixel data): a pushed object (C-STORE, STOW-RS).

    As :func:`ingest_dicom_file`, whose parameters it shares; ``ds`` replaces the file.
    """
    return _ingest_dataset(sessions, trusts, ds, agent=agent, source="dicom", source_name=source_trust,
                           kind="DICOM")


def ingest_dicom_datasets(sessions: sessionmaker[Session], trusts: TrustRegistry,
                          datasets: list[tuple[Dataset, str | None]], *, agent: Agent) -> list[ItemOutcome]:
    """Index several objects already read (each with its sending trust, or None) in one unit of work
    (:func:`apply_group`); an object that cannot be read is rejected alone. Outcomes in the order given."""
    outcomes: list[ItemOutcome | None] = [None] * len(datasets)
    ready: list[tuple[int, tuple[StudyFacts, RejectionNote | None]]] = []
    for position, (ds, source_trust) in enumerate(datasets):
        prepared = _prepare(ds, trusts, source="dicom", source_name=source_trust, kind="DICOM")
        if isinstance(prepared, ItemOutcome):
            outcomes[position] = prepared
        else:
            ready.append((position, prepared))
    if ready:
        applied = apply_group(sessions, trusts, [item for _, item in ready], agent=agent, event_type="dicom")
        for (position, _), outcome in zip(ready, applied, strict=True):
            outcomes[position] = outcome
    return [o for o in outcomes if o is not None]


def apply_group(sessions: sessionmaker[Session], trusts: TrustRegistry,
                items: list[tuple[StudyFacts, RejectionNote | None]], *, agent: Agent,
                event_type: str) -> list[ItemOutcome]:
    """Apply objects that arrived together (pushed, one group commit) in one unit of work, new studies written many
    rows per statement (:func:`imaging.bulk.load_studies`: the same merge, the same audit event per object); a group
    that only the per-message path applies (a rejection note ...), or that fails (a race with another writer, an
    object the index refuses), goes through :func:`apply_many`, each object alone if need be."""
    from imaging.bulk import load_studies  # builds on this module

    try:
        with unit_of_work(sessions, write=True) as session:
            outcomes = load_studies(session, trusts, items, agent=agent, event_type=event_type)
            if outcomes is None:
                session.rollback()
        if outcomes is not None:
            return outcomes
    except (IntegrityError, OperationalError, PriorscanError) as exc:
        log.info("imaging: a group of %d objects goes through the per-message path after %s", len(items),
                 type(exc).__name__)
    return apply_many(sessions, trusts, items, agent=agent, event_type=event_type)


def ingest_dicom_json(sessions: sessionmaker[Session], trusts: TrustRegistry, dataset: dict[str, Any], *,
                      agent: Agent, source: str | None = None,
                      remote: tuple[str, str, int | None] | None = None) -> ItemOutcome:
    """Index one DICOM JSON dataset (a QIDO-RS result, or WADO-RS metadata of an instance such as an RDSR).

    Parameters
    ----------
    sessions : sessionmaker
        Opens the unit of work (committed here).
    trusts : TrustRegistry
        The consortium.
    dataset : dict
        One DICOM JSON object (tags as keys, ``{"vr": ..., "Value": [...]}`` as values).
    agent : priorscan.audit.Agent
        Who is loading it (audited).
    source : str, optional
        Where it came from: a trust's ODS code or alias qualifies patient IDs sent without issuer; anything else
        (a file name, a URL) is only named in the audit trail.
    remote : tuple, optional
        What the DICOMweb source lists of the study (:attr:`imaging.facts.StudyFacts.remote`), kept with it.

    Returns
    -------
    ItemOutcome
        As :func:`ingest_dicom_file`, of kind ``DICOM JSON`` (``RDSR`` for a dose report).
    """
    if not isinstance(dataset, dict):
        return ItemOutcome.rejected("DICOM JSON", "a DICOM JSON dataset must be an object", "dicom")
    try:
        ds = dataset_from_json(dataset)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        return ItemOutcome.rejected("DICOM JSON", f"not a valid DICOM JSON dataset ({type(exc).__name__})", "dicom")
    return _ingest_dataset(sessions, trusts, ds, agent=agent, source="qido", source_name=source, kind="DICOM JSON",
                           remote=remote)


def read_dicom_header(path: Path, trusts: TrustRegistry) -> tuple[StudyFacts, RejectionNote | None] | ItemOutcome:
    """A DICOM file's facts (and rejection note, when it is one) as a live object's are read, or the outcome refusing
    it: for readers that apply the facts later, elsewhere (the bulk load's worker processes). No storage."""
    try:
        ds = read_dicom_file(Path(path))
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds on a corrupt file, as ingest says
        return ItemOutcome.rejected("DICOM", f"not a readable DICOM file ({why_unreadable(exc)})", "dicom")
    return _prepare(ds, trusts, source="dicom", source_name=None, kind="DICOM")


def _prepare(ds: Dataset, trusts: TrustRegistry, *, source: str, source_name: str | None,
             kind: str) -> tuple[StudyFacts, RejectionNote | None] | ItemOutcome:
    """An object's facts (and rejection note, if it is one), or the outcome rejecting it.

    pydicom reads sequences and values when they are first used, so a truncated or corrupt object (a dose report cut
    short in transfer) may read as a header and fail here, in its content tree: it is rejected alone
    (:data:`imaging.dicom_bytes.READ_ERRORS`), never failing the other objects pushed with it."""
    try:
        facts = _facts(ds, trusts, source=source, source_name=source_name)
    except READ_ERRORS as exc:
        return ItemOutcome.rejected(kind, f"DICOM header could not be read ({type(exc).__name__})", "dicom")
    if facts is None:
        return ItemOutcome.rejected(kind, "no Study Instance UID (0020,000D)", "dicom")
    try:
        note = read_rejection_note(ds)
    except READ_ERRORS as exc:
        return ItemOutcome.rejected(kind, f"rejection note could not be read ({type(exc).__name__})", "dicom")
    return facts, note


def _ingest_dataset(sessions: sessionmaker[Session], trusts: TrustRegistry, ds: Dataset, *, agent: Agent,
                    source: str, source_name: str | None, kind: str,
                    remote: tuple[str, str, int | None] | None = None) -> ItemOutcome:
    prepared = _prepare(ds, trusts, source=source, source_name=source_name, kind=kind)
    if isinstance(prepared, ItemOutcome):
        return prepared
    facts, note = prepared
    facts.remote = remote
    return apply_facts(sessions, trusts, facts, agent=agent, event_type="dicom", rejection=note)
