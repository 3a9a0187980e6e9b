"""Stored studies read again for which examination they are, with the procedure normaliser of the code running.

The index reads a study's procedure (modality, body region, laterality, contrast) as its statements arrive and keeps
that reading (:mod:`imaging.index`). When the normaliser learns wording (:mod:`imaging.procedures`: "US TV", "CT chest
?PE", "NM renogram"), a study indexed before keeps its old reading until a statement about it arrives again, and the
duplicate check compares priors by the stored reading: a prior once read as ``unknown`` stays hidden.

:func:`reread_procedures` (``priorscan imaging reread-procedures``) reads every stored study again from what the index
keeps of it: its first procedure code, its description and its modality. It is run once after an upgrade (see
docs/operations.md), not at each check: the stored reading is also what the export, the dose estimate (the effective
dose coefficient is chosen by region), the worklist and analytics read, so that a reading at check time would leave
them in the old words, and the duplicate check stays one indexed query with no normalising per prior.

What the index does not keep is never overridden by a guess:

- a re-read that finds no region leaves the stored reading (it may have come from Body Part Examined, an anatomic
  region code or another procedure text of the study's objects, which are not stored);
- a reading from a procedure code stands unless the re-read is from a code too;
- the stored modality (DICOM's) stands; the re-read fills it only when none is stored;
- a paired region (limbs, breast) keeps the side the images stated when the re-read names none, and both combine;
- a study whose region changes has its dose summary worked out again (the effective dose depends on the region).

Idempotent: a second run with the same code changes nothing. Each change is audited; each batch of studies is one
unit of work.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from imaging import regions as rg
from imaging.codetables import CodeTable, default_code_table
from imaging.facts import NORMALISATION_RANK, combine_laterality
from imaging.procedures import CODE, UNKNOWN, ProcedureCode, normalise_procedure
from imaging.study_batches import study_batches
from imaging.tables import IrradiationEvent, Study
from mpi import SourceRecord
from priorscan.audit import Agent, record
from priorscan.trusts import TrustRegistry
from priorscan.unit_of_work import unit_of_work

#: The stored fields the re-read may change, in the order they are reported.
READING = ("modality", "body_region", "body_regions", "laterality", "contrast", "normalisation")


@dataclass(frozen=True)
class ReadingChange:
    """One study whose stored reading the re-read changed (or would change, on a dry run)."""

    study_instance_uid: str
    before: dict[str, object]
    after: dict[str, object]

    def describe(self) -> str:
        return ", ".join(f"{name} {self.before[name]!s} -> {self.after[name]!s}" for name in READING
                         if self.before[name] != self.after[name])


@dataclass
class RereadReport:
    """What :func:`reread_procedures` read and changed."""

    studies: int = 0
    changes: list[ReadingChange] = field(default_factory=list)
    kept: int = 0  # the re-read found no region (or a weaker source than the stored one): the stored reading stands
    dry_run: bool = False

    def render(self) -> str:
        verb = "would be" if self.dry_run else "were"
        lines = [f"{c.study_instance_uid}: {c.describe()}" for c in self.changes]
        lines.append(f"{self.studies} studies read again from their stored code, description and modality: "
                     f"{len(self.changes)} {verb} read differently; {self.kept} kept their stored reading (no region "
                     "in what is stored, or a code's reading against a description's)")
        return "\n".join(lines)


def _reading(study: Study) -> dict[str, object]:
    return {name: getattr(study, name) for name in READING}


def reread(study: Study, table: CodeTable | None = None) -> dict[str, object] | None:
    """The stored reading of ``study`` as the current normaliser reads its stored code, description and modality;
    None when the stored reading stands (see the module's rules)."""
    codes = [ProcedureCode(study.procedure_system, study.procedure_code)] if study.procedure_code else []
    result = normalise_procedure(codes, study.description, modality_hint=study.modality, table=table)
    if result.normalisation == UNKNOWN or result.body_region is None:
        return None
    if study.normalisation == CODE and result.normalisation != CODE:
        return None
    if NORMALISATION_RANK.get(result.normalisation, 0) < NORMALISATION_RANK.get(study.normalisation or UNKNOWN, 0):
        return None
    laterality = result.laterality
    if rg.is_paired(result.body_region) and rg.is_paired(study.body_region) \
            and rg.region_group(result.body_region) == rg.region_group(study.body_region):
        laterality = combine_laterality(result.laterality, study.laterality)  # a side the images stated stands
    return {"modality": study.modality or result.modality, "body_region": result.body_region,
            "body_regions": rg.join_regions(result.regions) if len(result.regions) > 1 else None,
            "laterality": laterality if laterality is not None else study.laterality,
            "contrast": result.contrast, "normalisation": result.normalisation}


def reread_procedures(sessions: sessionmaker[Session], trusts: TrustRegistry, *, agent: Agent, batch: int = 1000,
                      dry_run: bool = False, table: CodeTable | None = None) -> RereadReport:
    """Read every stored study's procedure again with the current normaliser (see the module's notes).

    Parameters
    ----------
    sessions
        The store; each batch of ``batch`` studies (by id) is one unit of work, committed before the next.
    trusts
        The consortium (the dose summary of a study whose region changes is worked out again by the index).
    agent
        Who runs it (the audit events' agent).
    dry_run
        Say what would change and change nothing.
    table
        The code table; :func:`imaging.codetables.default_code_table` when omitted.
    """
    from imaging.index import StudyIndex  # the index builds on the normaliser, not the other way round

    table = table or default_code_table()
    report = RereadReport(dry_run=dry_run)
    for session, ids in study_batches(sessions, batch, dry_run):
        # the batch's studies locked (PostgreSQL) so that a statement indexed meanwhile is not overwritten
        rows = session.execute(select(Study, SourceRecord.regional_patient_id)
                               .outerjoin(SourceRecord, SourceRecord.id == Study.source_record_id)
                               .where(Study.id.in_(ids)).order_by(Study.id).with_for_update(of=Study)).tuples()
        index = StudyIndex(session, trusts, code_table=table)
        for study, regional_id in rows:
            report.studies += 1
            after = reread(study, table)
            before = _reading(study)
            if after is None:
                report.kept += 1
                continue
            if after == before:
                continue
            report.changes.append(ReadingChange(study.study_instance_uid, before, after))
            if dry_run:
                continue
            for name, value in after.items():
                setattr(study, name, value)
            if after["body_region"] != before["body_region"] and study.dose_source:
                events = list(session.scalars(select(IrradiationEvent).where(IrradiationEvent.study_id == study.id)))
                index.summarise(study, events)
            record(session, agent, action="U", event_type="imaging", subtype="procedure-reread",
                   regional_patient_id=regional_id, entity=f"ImagingStudy/{study.study_instance_uid}",
                   detail={"before": {k: v for k, v in before.items() if v != after[k]},
                           "after": {k: v for k, v in after.items() if v != before[k]}})
    if not dry_run:
        with unit_of_work(sessions, write=True) as session:
            record(session, agent, action="U", event_type="imaging", subtype="procedure-reread-run",
                   detail={"studies": report.studies, "changed": len(report.changes), "kept": report.kept})
    return report
