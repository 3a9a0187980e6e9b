"""Stored studies read again for what says they are not a patient's examination, and a person's decision on it.

:mod:`imaging.not_patient` reads a study's objects as they arrive. Two things it cannot do alone:

- **Recheck** (:func:`recheck_not_patient`, ``priorscan imaging recheck-not-patient``): a study indexed before
  migration 0015, or before a change to the configured indicators, is read again from what the index holds of it,
  with the current configuration: its description, the acquisition protocols of its dose report's irradiation
  events, the patient name and ID of the source record it arrived with (the ID as the study carries it, when it
  does). Evidence already stored is kept while it still holds: a patient-name word or a patient-ID prefix no longer
  configured for the study's trusts no longer holds, a text is read again by the current word rules, and what the
  index does not keep (the Quality Control flags, series descriptions, protocol names, Body Part Examined, a dose
  report's procedure and comments) is kept as the file said it. A study whose stored evidence no longer holds is
  read from what is stored, which may find none: then it is a patient's examination again. A study of which the
  index holds nothing to read is counted and said, never guessed. Idempotent: a second run with the same
  configuration changes nothing. Each change is audited.
- **A person's decision** (:func:`decide_not_patient`, ``POST /api/v1/studies/{uid}/not-patient``): ``patient``
  or ``test`` with a reason, who and when; it sets ``study.not_patient`` at once (the priors read it on the next
  check) and sticks: neither indexing (:class:`imaging.index.StudyIndex`) nor the recheck overturns it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from imaging import not_patient
from imaging.study_batches import study_batches
from imaging.tables import IrradiationEvent, Study
from mpi import SourceRecord
from priorscan.audit import Agent, record
from priorscan.db import utcnow
from priorscan.trusts import TrustRegistry
from priorscan.unit_of_work import unit_of_work

Decision = Literal["patient", "test"]
DECISIONS: tuple[Decision, ...] = ("patient", "test")
#: The evidence a person's "test" decision adds to ``study.not_patient``.
DECIDED_TEST = "decided by a person: a test"
#: What the index does not keep of a study's files, so the recheck cannot read it (said in its output).
NOT_STORED = ("the Quality Control flags, series and performed/requested procedure descriptions, protocol names, "
              "Body Part Examined, a dose report's procedure and comments")
_FILE_ONLY = ("QualityControlSubject", "QualityControlImage")


@dataclass(frozen=True)
class RecheckChange:
    """One study whose ``not_patient`` the recheck changed (or would change, on a dry run)."""

    study_instance_uid: str
    change: str  # flagged | unflagged | evidence
    before: str | None
    after: str | None
    why: str


@dataclass
class RecheckReport:
    """What :func:`recheck` read and changed."""

    studies: int = 0
    changes: list[RecheckChange] = field(default_factory=list)
    decided: int = 0  # left as a person decided
    nothing_stored: int = 0  # not flagged, and the index holds nothing of what the file said to read
    dry_run: bool = False

    def count(self, change: str) -> int:
        return sum(1 for c in self.changes if c.change == change)

    def render(self) -> str:
        verb = "would be" if self.dry_run else ""
        lines = [f"{c.change:9} {c.study_instance_uid}: {c.why}" for c in self.changes]
        lines.append(
            f"{self.studies} studies read again from the index: {self.count('flagged')} {verb} flagged as a QA, "
            f"physics or phantom test, {self.count('unflagged')} {verb} unflagged (a patient's examination again), "
            f"{self.count('evidence')} with their evidence {verb} changed; {self.decided} left as a person decided; "
            f"{self.nothing_stored} not flagged with nothing stored to read (no description, dose report protocol, "
            "patient name or ID): undecided, not guessed".replace("  ", " "))
        lines.append(f"not read (the index does not keep them): {NOT_STORED}; a test that says so only there is "
                     "recognised when its objects arrive again")
        return "\n".join(lines)


def _still_holds(item: str, words: tuple[str, ...], prefixes: tuple[str, ...]) -> bool:
    """Whether one stored evidence item (``field: what it said``) still holds with the current configuration."""
    name, _, said = item.partition(": ")
    if name == "PatientName":
        return said.removeprefix("indicator ").strip().upper() in {w.upper() for w in words}
    if name == "PatientID":
        return said.removeprefix("prefix ").strip().upper() in {p.strip().upper() for p in prefixes}
    if name in _FILE_ONLY or not said or item == DECIDED_TEST:
        return True  # what the file said and the index does not keep: it stands as read
    return not_patient.named_test_word(said) is not None


def _issuer(study: Study, record_: SourceRecord | None) -> str | None:
    """The trust that issued the study's patient ID: its source record's, else the issuer the study names."""
    return record_.trust_ods if record_ is not None and record_.trust_ods else study.patient_issuer


def _stored_reading(study: Study, record_: SourceRecord | None, protocols: list[str],
                    trusts: TrustRegistry) -> tuple[list[str], bool]:
    """The evidence in what the index holds of ``study``, and whether it holds anything to read at all."""
    words, prefixes = trusts.not_patient_indicators(study.performing_trust, _issuer(study, record_))
    name = "^".join(p for p in (record_.family, record_.given) if p) if record_ is not None else ""
    texts: list[tuple[str, str | None]] = [("description", study.description),
                                           *(("SR Acquisition Protocol", p) for p in protocols)]
    local_id = study.patient_local_id or (record_.local_id if record_ is not None else None)
    anything = bool(study.description or protocols or name or local_id)
    return not_patient.evidence(texts, patient_name=name or None, patient_id=local_id,
                                name_words=words, id_prefixes=prefixes), anything


def reread(study: Study, record_: SourceRecord | None, protocols: list[str],
           trusts: TrustRegistry) -> tuple[str | None, bool]:
    """``study.not_patient`` as the current configuration reads what the index holds, and whether anything was read.

    Stored evidence that still holds is kept (:func:`_still_holds`); when none does, the stored fields decide.
    """
    words, prefixes = trusts.not_patient_indicators(study.performing_trust, _issuer(study, record_))
    kept = [item for item in (study.not_patient or "").split("; ") if item and _still_holds(item, words, prefixes)]
    if kept:
        return not_patient.merge_evidence(None, kept), True
    found, anything = _stored_reading(study, record_, protocols, trusts)
    return (not_patient.merge_evidence(None, found) if found else None), anything


def _protocols(session: Session, study_ids: list[int]) -> dict[int, list[str]]:
    named: dict[int, list[str]] = defaultdict(list)
    rows = session.execute(select(IrradiationEvent.study_id, IrradiationEvent.detail)
                           .where(IrradiationEvent.study_id.in_(study_ids), IrradiationEvent.detail.is_not(None)))
    for study_id, detail in rows:
        protocol = (detail or {}).get("protocol") if isinstance(detail, dict) else None
        if protocol and protocol not in named[study_id]:
            named[study_id].append(str(protocol))
    return named


def recheck_not_patient(sessions: sessionmaker[Session], trusts: TrustRegistry, *, agent: Agent, batch: int = 1000,
            dry_run: bool = False) -> RecheckReport:
    """Read every stored study again for what says it is not a patient's examination (see the module's notes).

    Parameters
    ----------
    sessions
        The store; each batch of ``batch`` studies (by id) is one unit of work, committed before the next.
    trusts
        The current configuration (its ``[not_patient]`` indicators).
    agent
        Who runs it (the audit events' agent).
    dry_run
        Say what would change and change nothing.
    """
    report = RecheckReport(dry_run=dry_run)
    for session, ids in study_batches(sessions, batch, dry_run):
        protocols = _protocols(session, ids)
        # the batch's studies locked (PostgreSQL) so that a statement indexed meanwhile is not overwritten
        rows = session.execute(select(Study, SourceRecord)
                               .outerjoin(SourceRecord, SourceRecord.id == Study.source_record_id)
                               .where(Study.id.in_(ids)).order_by(Study.id).with_for_update(of=Study)).tuples()
        for study, record_ in rows:
            report.studies += 1
            if study.not_patient_decision is not None:
                report.decided += 1
                continue
            after, anything = reread(study, record_, protocols.get(study.id, []), trusts)
            before = study.not_patient
            if after == before:
                if before is None and not anything:
                    report.nothing_stored += 1
                continue
            change = "flagged" if before is None else "unflagged" if after is None else "evidence"
            why = (str(after) if before is None else f"no longer holds: {before}" if after is None
                   else f"{before} -> {after}")
            report.changes.append(RecheckChange(study.study_instance_uid, change, before, after, why))
            if dry_run:
                continue
            study.not_patient = after
            record(session, agent, action="U", event_type="imaging", subtype="not-patient-recheck",
                   regional_patient_id=record_.regional_patient_id if record_ is not None else None,
                   entity=f"ImagingStudy/{study.study_instance_uid}",
                   detail={"change": change, "before": before, "notPatient": after})
    if not dry_run:
        with unit_of_work(sessions, write=True) as session:
            record(session, agent, action="U", event_type="imaging", subtype="not-patient-recheck-run",
                   detail={"studies": report.studies, "flagged": report.count("flagged"),
                           "unflagged": report.count("unflagged"), "evidence": report.count("evidence"),
                           "decided": report.decided, "nothingStored": report.nothing_stored})
    return report


def decide_not_patient(session: Session, study_instance_uid: str, decision: Decision, *, reason: str,
           actor: str) -> tuple[Study, str | None] | None:
    """Record a person's decision that the study is a patient's examination (``patient``) or a test (``test``).

    Returns the study and its ``not_patient`` before the decision, or None when no such study is indexed. The caller
    audits and commits. ``patient`` clears ``not_patient`` (the study is a prior again at once); ``test`` adds
    :data:`DECIDED_TEST` to its evidence. The decision sticks until a person decides again.
    """
    if decision not in DECISIONS:
        raise ValueError(f"unknown decision {decision!r}")
    study = session.scalar(select(Study).where(Study.study_instance_uid == study_instance_uid).with_for_update())
    if study is None:
        return None
    before = study.not_patient
    study.not_patient_decision = decision
    study.not_patient_decided_by = actor[:200]
    study.not_patient_decided_at = utcnow()
    study.not_patient_reason = reason.strip()[:500]
    study.not_patient = None if decision == "patient" else not_patient.merge_evidence(before, [DECIDED_TEST])
    return study, before
