"""Taking studies and objects out of the priors: IHE IOCM rejection notes and deletions found in the PACS.

- :func:`apply_rejection` records every instance a rejection note names (:class:`imaging.tables.InstanceRejection`,
  kept even for instances not seen yet, so the rejection holds whichever arrives first), then reassesses each study
  it touches;
- :func:`reassess` takes out the dose contributions of instances rejected for a reason that removes dose (their
  irradiation events and report totals, unless a kept object states them too), recomputes the study's dose summary,
  and withdraws the study from the priors when every object of it the index knows is rejected (or gives it back when
  a new object arrives);
- :func:`mark_deleted` and :func:`restore` withdraw a study that its PACS no longer lists, and give it back if it
  reappears.

A withdrawn study keeps its row (``Study.withdrawn`` says why), so the audit trail and the reason stay readable;
the duplicate check never shows it, and the timeline shows it only when its dose is still the patient's
(:mod:`imaging.iocm`). Nothing here commits.
"""

from __future__ import annotations

from sqlalchemy import delete, select

from imaging.index import StudyIndex
from imaging.iocm import DELETED_FROM_PACS, KEY_OBJECT_SELECTION, REJECTION_REASONS, RejectionNote, most_severe
from imaging.tables import InstanceRejection, IrradiationEvent, Study, StudyInstance
from priorscan.db import utcnow

#: Prefixes of the withdrawals a rejection note makes (so that reassessment clears only its own).
_REJECTION_LABELS = tuple(r.label for r in REJECTION_REASONS.values())


def apply_rejection(index: StudyIndex, note: RejectionNote) -> list[Study]:
    """Record the instances ``note`` rejects and reassess the studies they belong to.

    Returns
    -------
    list of Study
        The studies of the index that the note touches (a study not indexed yet is reassessed when it arrives).
    """
    session = index.session
    sops = [i.sop_instance_uid[:64] for i in note.instances]
    existing = {row.sop_instance_uid: row for row in session.scalars(
        select(InstanceRejection).where(InstanceRejection.sop_instance_uid.in_(sops)))} if sops else {}
    for instance in note.instances:
        sop = instance.sop_instance_uid[:64]
        row = existing.get(sop)
        if row is None:
            row = InstanceRejection(sop_instance_uid=sop)
            session.add(row)
            existing[sop] = row
        row.study_instance_uid = instance.study_instance_uid[:64]
        row.series_instance_uid = (instance.series_instance_uid or "")[:64] or None
        row.code, row.meaning = note.reason.code, note.reason.meaning[:120]
        row.note_uid = (note.note_uid or "")[:64] or None
    session.flush()
    touched = []
    for uid in note.studies:
        study = index.find(uid, lock=True)
        if study is not None:
            reassess(index, study)
            touched.append(study)
    return touched


def reassess(index: StudyIndex, study: Study) -> None:
    """Apply the rejections recorded for ``study``'s instances to its dose and to whether it is shown."""
    session = index.session
    session.flush()
    instances = list(session.scalars(select(StudyInstance).where(StudyInstance.study_id == study.id)))
    codes = dict(session.execute(select(InstanceRejection.sop_instance_uid, InstanceRejection.code).where(
        InstanceRejection.study_instance_uid == study.study_instance_uid)).tuples().all())
    removing = {sop for sop, code in codes.items()
                if code in REJECTION_REASONS and not REJECTION_REASONS[code].keeps_dose}
    _remove_dose(index, study, instances, removing)
    content = [i for i in instances if i.sop_class_uid != KEY_OBJECT_SELECTION and (i.modality or "") != "KO"]
    if content and all(i.sop_instance_uid in codes for i in content):
        reason = most_severe([REJECTION_REASONS[codes[i.sop_instance_uid]] for i in content
                              if codes[i.sop_instance_uid] in REJECTION_REASONS])
        if reason is not None and study.withdrawn != reason.label:
            study.withdrawn, study.withdrawn_at = reason.label, utcnow()
    elif study.withdrawn in _REJECTION_LABELS:
        study.withdrawn, study.withdrawn_at = None, None  # an object not rejected arrived: shown again


def remember_instances(index: StudyIndex, study: Study,
                       instances: list[tuple[str, str | None, str | None, str | None]]) -> None:
    """Record the objects a PACS lists for ``study`` (SOP Instance, Series, SOP Class UIDs and modality) that the
    index has not received, so that a rejection note can be weighed against the whole study."""
    session = index.session
    sops = [sop[:64] for sop, *_ in instances]
    known = set(session.scalars(select(StudyInstance.sop_instance_uid).where(
        StudyInstance.sop_instance_uid.in_(sops)))) if sops else set()
    for sop, series, sop_class, modality in instances:
        if sop[:64] in known:
            continue
        known.add(sop[:64])
        session.add(StudyInstance(study_id=study.id, sop_instance_uid=sop[:64], series_instance_uid=(series or "")[:64]
                                  or None, sop_class_uid=(sop_class or "")[:64] or None,
                                  modality=(modality or "")[:16] or None))
    session.flush()
    reassess(index, study)


def forget_instances(index: StudyIndex, study: Study, sops: list[str]) -> None:
    """Objects deleted in the PACS: take out what they alone added to the dose, and forget them."""
    instances = list(index.session.scalars(select(StudyInstance).where(StudyInstance.study_id == study.id)))
    _remove_dose(index, study, instances, set(sops))
    index.session.execute(delete(StudyInstance).where(StudyInstance.study_id == study.id,
                                                      StudyInstance.sop_instance_uid.in_(sops)))
    reassess(index, study)


def _remove_dose(index: StudyIndex, study: Study, instances: list[StudyInstance], removing: set[str]) -> None:
    """Take out what the instances in ``removing`` alone contributed to the study's dose."""
    if not removing:
        return
    kept_events: set[str] = set()
    kept_reports: set[str] = set()
    gone_events: set[str] = set()
    gone_reports: set[str] = set()
    for instance in instances:
        dose = instance.dose or {}
        events, report = set(dose.get("events") or []), dose.get("report")
        if instance.sop_instance_uid in removing:
            gone_events |= events
            gone_reports |= {report} if report else set()
        else:
            kept_events |= events
            kept_reports |= {report} if report else set()
    gone_events -= kept_events
    gone_reports -= kept_reports
    reports = dict(study.accumulated_dose or {})
    stale = [key for key in reports if key in gone_reports]
    if not gone_events and not stale:
        return
    if gone_events:
        index.session.execute(delete(IrradiationEvent).where(IrradiationEvent.study_id == study.id,
                                                             IrradiationEvent.event_uid.in_(sorted(gone_events))))
    for key in stale:
        del reports[key]
    study.accumulated_dose = reports or None
    rows = list(index.session.scalars(select(IrradiationEvent).where(IrradiationEvent.study_id == study.id)))
    if rows or reports:
        index.summarise(study, rows)
    else:
        _clear_dose(study)


def _clear_dose(study: Study) -> None:
    for name in ("ctdivol_mgy", "dlp_total_mgycm", "dap_total_gym2", "dose_rp_total_gy", "fluoro_time_s",
                 "agd_left_mgy", "agd_right_mgy", "administered_activity_mbq", "effective_dose_msv",
                 "effective_dose_method", "irradiation_events"):
        setattr(study, name, None)
    study.dose_source = None


def mark_deleted(study: Study) -> bool:
    """Withdraw a study its PACS no longer holds; True when that changed it (a rejection already withdrawing it
    stands)."""
    if study.withdrawn is not None:
        return False
    study.withdrawn, study.withdrawn_at = DELETED_FROM_PACS, utcnow()
    return True


def restore(study: Study) -> bool:
    """Give back a study withdrawn as deleted that its PACS lists again; True when that changed it."""
    if study.withdrawn != DELETED_FROM_PACS:
        return False
    study.withdrawn, study.withdrawn_at = None, None
    return True


def dose_is_patients(withdrawn: str | None) -> bool:
    """Whether a study withdrawn for ``withdrawn`` still belongs in its patient's dose record and timeline."""
    if withdrawn is None or withdrawn == DELETED_FROM_PACS:
        return True
    code = withdrawn.split(" ", 1)[0]
    reason = REJECTION_REASONS.get(code)
    return reason.keeps_dose if reason is not None else True

