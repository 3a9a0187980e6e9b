"""The patient view: imaging across the five trusts, cumulative effective dose over rolling windows, DRL flags, and
the alerts and overrides in their place.

Effective dose is an estimate (a population index from the dose report, not the patient's own dose): every total
says how many ionising studies it could not include. A study is flagged against the national DRL of its category
(adult CT only; :func:`imaging.drl_category` and :func:`imaging.compare_with_drl`), which is a prompt to look, not a
finding: a DRL applies to the median of a group of typical patients.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.workspace.banner import PatientBanner, age_on, read_patient
from api.workspace.clock import local_date_of
from dedupe import Alert
from imaging import ImagingOrder, compare_with_drl, drl_category, national_drls, patient_timeline
from mpi import SourceRecord
from priorscan.trusts import TrustRegistry

#: The rolling windows of cumulative effective dose, in days before the "as of" date (inclusive of that day).
DOSE_WINDOWS: tuple[tuple[int, str], ...] = ((30, "Last 30 days"), (365, "Last 12 months"),
                                             (5 * 365, "Last 5 years"))
#: Modalities whose studies expose the patient to ionising radiation.
IONISING = frozenset({"CT", "XR", "CR", "DX", "MG", "NM", "PT", "RF", "XA", "DR"})


@dataclass(frozen=True)
class DoseWindow:
    """Cumulative effective dose (an estimate) of the studies within one window."""

    days: int | None  # None: every study on record
    label: str
    total_msv: float
    studies: int  # ionising studies in the window
    without_estimate: int  # of those, how many have no effective dose estimate

    def as_json(self) -> dict[str, Any]:
        return {"days": self.days, "label": self.label, "totalMsv": round(self.total_msv, 3),
                "ionisingStudies": self.studies, "studiesWithoutEstimate": self.without_estimate}


def dose_windows(studies: Iterable[tuple[date | None, str | None, str | None, float | None]], as_of: date,
                 windows: Sequence[tuple[int, str]] = DOSE_WINDOWS) -> list[DoseWindow]:
    """Cumulative effective dose over rolling windows ending on ``as_of``, and over every study on record.

    Parameters
    ----------
    studies
        ``(study date, status, modality, effective dose mSv)`` of each study. Cancelled studies, studies after
        ``as_of`` and non-ionising modalities count nowhere; a study without a date counts only in the total on
        record; an ionising study without an estimate is counted in ``without_estimate``.
    as_of
        The last day of every window: a window of ``n`` days runs from ``as_of - (n - 1)`` to ``as_of``.
    """
    rows = [(day, (modality or "").upper(), dose) for day, status, modality, dose in studies
            if status != "cancelled" and (modality or "").upper() in IONISING and (day is None or day <= as_of)]
    result = []
    for days, label in [*windows, (None, "All on record")]:
        first = as_of - timedelta(days=days - 1) if days else None
        inside = [(d, dose) for d, _, dose in rows if first is None or (d is not None and d >= first)]
        result.append(DoseWindow(days, label, sum(dose for _, dose in inside if dose is not None), len(inside),
                                 sum(1 for _, dose in inside if dose is None)))
    return result


@dataclass
class PatientView:
    patient: PatientBanner
    studies: list[dict[str, Any]]
    windows: list[DoseWindow]
    alerts: list[dict[str, Any]]
    orders: list[dict[str, Any]]

    def as_json(self, *, today: date, at_trust: str | None) -> dict[str, Any]:
        return {"patient": self.patient.as_json(today=today, at_trust=at_trust),
                "studies": self.studies, "doseWindows": [w.as_json() for w in self.windows],
                "alerts": self.alerts, "orders": self.orders,
                "doseNote": "Effective dose is an estimate from dose reports (a population index), not the "
                            "patient's own dose. DRL flags compare one study with a national reference level set for "
                            "the median of typical patients: a prompt to look, not a finding."}


def read_patient_view(session: Session, trusts: TrustRegistry, regional_id: str, *, as_of: date,
                      timezone: str) -> PatientView | None:
    """Everything the patient view shows about ``regional_id`` (following merges); None when unknown."""
    patient = read_patient(session, trusts, regional_id)
    if patient is None:
        return None
    timeline = patient_timeline(session, trusts, patient.regional_id)
    drls = national_drls()
    studies = []
    for entry in timeline.entries if timeline else []:
        age = age_on(patient.birth_date, entry.study_date) if entry.study_date else None
        # a QA, physics or phantom test is compared with no DRL: its dose is no patient's
        comparison = None if entry.not_patient else compare_with_drl(
            drl_category(entry.modality, entry.body_region, entry.description, age), entry.ctdivol_mgy,
            entry.dlp_total_mgycm, drls)
        trust = trusts.resolve(entry.trust) if entry.trust else None
        studies.append({
            "studyInstanceUid": entry.study_instance_uid, "accessionNumber": entry.accession_number,
            "trust": entry.trust, "trustName": trust.name if trust else None, "status": entry.status,
            "studyDate": entry.study_date.isoformat() if entry.study_date else None,
            "studyDateTime": entry.study_datetime.isoformat() if entry.study_datetime else None,
            "modality": entry.modality, "bodySite": entry.body_region, "laterality": entry.laterality,
            "description": entry.description, "ctdivolMgy": entry.ctdivol_mgy, "dlpMgycm": entry.dlp_total_mgycm,
            "dapGym2": entry.dap_total_gym2, "effectiveDoseMsv": entry.effective_dose_msv,
            "effectiveDoseMethod": entry.effective_dose_method, "identity": entry.identity,
            "viewerUrl": entry.viewer_url,
            "drl": None if comparison is None else {
                "category": comparison.category, "label": comparison.label, "above": comparison.above_drl,
                "ctdivolRatio": comparison.ctdivol_ratio, "dlpRatio": comparison.dlp_ratio,
                "drlCtdivolMgy": comparison.drl_ctdivol_mgy, "drlDlpMgycm": comparison.drl_dlp_mgycm},
            **{k: v for k, v in _report_fields(entry).items() if v is not None},
        })
    windows = dose_windows(((s.study_date, s.status, s.modality, s.effective_dose_msv)
                            for s in (timeline.entries if timeline else []) if s.not_patient is None), as_of)
    alerts = [{
        "id": a.id, "requestId": f"alert-{a.id}", "requestingTrust": a.requesting_trust,
        "placerOrderNumber": a.placer_order_number, "verdict": a.verdict, "status": a.status,
        "identity": a.identity, "requestDate": a.request_date.isoformat() if a.request_date else None,
        "createdAt": a.created_at.isoformat() if a.created_at else None,
        "request": {k: (a.request or {}).get(k) for k in ("description", "modality", "bodySite", "laterality",
                                                         "priority")},
        "reason": a.reason_display, "reasonCode": a.reason_code, "comment": a.comment, "actedBy": a.acted_by,
        "actedAt": a.acted_at.isoformat() if a.acted_at else None, "priorCount": len(a.priors or []),
    } for a in session.scalars(select(Alert).where(Alert.regional_patient_id == patient.regional_id)
                                .order_by(Alert.created_at))]
    alerted = {(a["requestingTrust"], a["placerOrderNumber"]) for a in alerts if a["placerOrderNumber"]}
    orders = [{
        "id": f"order-{o.id}", "requestingTrust": o.requesting_trust, "placerOrderNumber": o.placer_order_number,
        "status": o.status, "description": o.description, "modality": o.modality, "bodySite": o.body_region,
        "laterality": o.laterality, "priority": o.priority,
        "orderedAt": (o.ordered_at or o.created_at).isoformat() if (o.ordered_at or o.created_at) else None,
        "orderDate": (local_date_of(o.ordered_at or o.created_at, timezone) or as_of).isoformat(),
    } for o in session.scalars(select(ImagingOrder).join(SourceRecord, SourceRecord.id == ImagingOrder.source_record_id)
                                .where(SourceRecord.regional_patient_id == patient.regional_id)
                                .order_by(ImagingOrder.created_at))
        if (o.requesting_trust, o.placer_order_number) not in alerted]  # an alerted request is shown by its alert
    return PatientView(patient, studies, windows, alerts, orders)


def _report_fields(entry: Any) -> dict[str, Any]:
    """A study's report conclusion and link, and why it was withdrawn (an IOCM rejection), as far as the imaging
    index keeps them (absent attributes give nothing)."""
    return {"reportConclusion": getattr(entry, "report_conclusion", None),
            "reportUrl": getattr(entry, "report_url", None), "withdrawn": getattr(entry, "withdrawn", None),
            "notPatient": getattr(entry, "not_patient", None)}
