"""The storage side of the check: a regional patient's studies and outstanding orders from every trust, as
:class:`~dedupe.comparable.Exam` values for the pure judgement.

Studies and orders are reached through their source record, whose regional patient is the person's, so they follow
merges, links and unmerges without being rewritten. Two indexed queries per check: studies by
``source_record.regional_patient_id`` then ``study (source_record_id, study_date)``, and active orders by
``imaging_order.source_record_id``. Completed studies older than the longest window are not read; scheduled studies
and active orders are read at any age.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from dedupe.comparable import Exam, Procedure, local_date
from imaging.tables import ImagingOrder, Study
from mpi.tables import SourceRecord

_STUDIES = (
    select(Study.study_instance_uid, Study.accession_number, Study.performing_trust, Study.status, Study.modality,
           Study.body_region, Study.laterality, Study.procedure_system, Study.procedure_code, Study.description,
           Study.study_date, Study.study_datetime, Study.effective_dose_msv)
    .join(SourceRecord, SourceRecord.id == Study.source_record_id)
    .where(SourceRecord.regional_patient_id == bindparam("regional_id"), Study.status != "cancelled",
           or_(Study.study_date >= bindparam("since"), Study.status == "scheduled"))
)
_ORDERS = (
    select(ImagingOrder.requesting_trust, ImagingOrder.placer_order_number, ImagingOrder.filler_order_number,
           ImagingOrder.status, ImagingOrder.modality, ImagingOrder.body_region, ImagingOrder.laterality,
           ImagingOrder.procedure_system, ImagingOrder.procedure_code, ImagingOrder.description,
           ImagingOrder.ordered_at, ImagingOrder.created_at)
    .join(SourceRecord, SourceRecord.id == ImagingOrder.source_record_id)
    .where(SourceRecord.regional_patient_id == bindparam("regional_id"), ImagingOrder.status == "active")
)


def patient_exams(session: Session, regional_id: str, *, since: date, timezone: str,
                  own_order: tuple[str, set[str]] | None = None) -> list[Exam]:
    """The patient's exams that may be comparable priors of a request judged on or after ``since``'s window.

    Parameters
    ----------
    session
        An open session.
    regional_id
        The regional patient.
    since
        Completed studies performed before this date are left out (too old for any rule).
    timezone
        The consortium's time zone, in which an order's time is a calendar date.
    own_order
        ``(trust, {placer and filler numbers})`` of the request being checked: its own order, and a study of that
        trust with one of those numbers as accession number, are not priors of itself.
    """
    connection = session.connection()  # Core: no ORM entities are needed to judge
    studies = connection.execute(_STUDIES, {"regional_id": regional_id, "since": since}).all()
    orders = connection.execute(_ORDERS, {"regional_id": regional_id}).all()
    own_trust, own_numbers = own_order if own_order else (None, set())
    exams: list[Exam] = []
    for s in studies:
        if own_trust and s.performing_trust == own_trust and s.accession_number in own_numbers:
            continue
        exams.append(Exam(
            kind="study", status=s.status or "completed",
            procedure=Procedure(s.modality, s.body_region, s.laterality, s.procedure_system, s.procedure_code),
            on_date=s.study_date, trust=s.performing_trust, at=s.study_datetime,
            study_instance_uid=s.study_instance_uid, accession_number=s.accession_number, description=s.description,
            effective_dose_msv=s.effective_dose_msv))
    for o in orders:
        if own_trust and o.requesting_trust == own_trust and o.placer_order_number in own_numbers:
            continue
        ordered = o.ordered_at or o.created_at
        exams.append(Exam(
            kind="order", status=o.status,
            procedure=Procedure(o.modality, o.body_region, o.laterality, o.procedure_system, o.procedure_code),
            on_date=local_date(ordered, timezone) if ordered else None, trust=o.requesting_trust, at=ordered,
            accession_number=o.filler_order_number, placer_order_number=o.placer_order_number,
            description=o.description))
    return exams
