"""The storage side of the check: a regional patient's studies and outstanding orders from every trust, as
:class:`~dedupe.comparable.Exam` values for the pure judgement.

Studies and orders are reached through their source record, whose regional patient is the person's, so they follow
merges, links and unmerges without being rewritten. One round trip per check, a ``UNION ALL`` of indexed queries:
studies by ``source_record.regional_patient_id`` then ``study (source_record_id, study_date)``, active orders by
``imaging_order.source_record_id``, and the patient's source records (where a new order is kept). Completed studies
older than the longest window are not read; scheduled studies and active orders are read at any age.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Date, Float, String, bindparam, cast, func, literal, null, or_, select, union_all
from sqlalchemy.orm import Session

from dedupe.comparable import Exam, Procedure, local_date
from imaging.tables import ImagingOrder, Study
from mpi.tables import SourceRecord
from priorscan.db import UTCDateTime

_STUDIES = (
    select(literal("study").label("kind"), Study.status, Study.modality, Study.body_region, Study.laterality,
           Study.procedure_system, Study.procedure_code, Study.description, Study.study_date.label("day"),
           Study.study_datetime.label("at"), Study.performing_trust.label("trust"),
           Study.study_instance_uid.label("uid"), Study.accession_number.label("accession"),
           cast(null(), String).label("placer"), Study.effective_dose_msv.label("dose"))
    .join(SourceRecord, SourceRecord.id == Study.source_record_id)
    .where(SourceRecord.regional_patient_id == bindparam("regional_id"), Study.status != "cancelled",
           or_(Study.study_date >= bindparam("since"), Study.status == "scheduled"))
)
_ORDERS = (
    select(literal("order").label("kind"), ImagingOrder.status, ImagingOrder.modality, ImagingOrder.body_region,
           ImagingOrder.laterality, ImagingOrder.procedure_system, ImagingOrder.procedure_code,
           ImagingOrder.description, cast(null(), Date).label("day"),
           func.coalesce(ImagingOrder.ordered_at, ImagingOrder.created_at).label("at"),
           ImagingOrder.requesting_trust.label("trust"), cast(null(), String).label("uid"),
           ImagingOrder.filler_order_number.label("accession"), ImagingOrder.placer_order_number.label("placer"),
           cast(null(), Float).label("dose"))
    .join(SourceRecord, SourceRecord.id == ImagingOrder.source_record_id)
    .where(SourceRecord.regional_patient_id == bindparam("regional_id"), ImagingOrder.status == "active")
)
_RECORDS = (
    select(literal("record").label("kind"), *(cast(null(), String).label(n) for n in (
               "status", "modality", "body_region", "laterality", "procedure_system", "procedure_code",
               "description")),
           cast(null(), Date).label("day"), cast(null(), UTCDateTime).label("at"),
           SourceRecord.trust_ods.label("trust"), cast(SourceRecord.id, String).label("uid"),
           cast(null(), String).label("accession"), cast(null(), String).label("placer"),
           cast(null(), Float).label("dose"))
    .where(SourceRecord.regional_patient_id == bindparam("regional_id"), SourceRecord.active.is_(True))
)
#: Studies, active orders and the patient's source records in one round trip.
_EXAMS = union_all(_STUDIES, _ORDERS, _RECORDS)


@dataclass(frozen=True)
class PatientHistory:
    """What the check reads about a patient: their exams, and their active source records ``(id, trust)``."""

    exams: list[Exam]
    source_records: list[tuple[int, str | None]]

    def record_at(self, trust: str | None) -> int | None:
        """The source record to hang an order on: the trust's own, else the patient's first."""
        ordered = sorted(self.source_records)
        return next((rid for rid, ods in ordered if trust and ods == trust), ordered[0][0] if ordered else None)


def patient_exams(session: Session, regional_id: str, *, since: date, timezone: str,
                  own_order: tuple[str, set[str]] | None = None) -> PatientHistory:
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
    rows = session.connection().execute(_EXAMS, {"regional_id": regional_id, "since": since}).all()
    own_trust, own_numbers = own_order if own_order else (None, set())
    exams: list[Exam] = []
    records: list[tuple[int, str | None]] = []
    for row in rows:
        if row.kind == "record":
            records.append((int(row.uid), row.trust))
            continue
        if own_trust and row.trust == own_trust and (row.accession if row.kind == "study" else row.placer) \
                in own_numbers:
            continue
        at = row.at  # typed by the first SELECT of the union: an aware UTC timestamp on both backends
        day = row.day if row.kind == "study" else (local_date(at, timezone) if at else None)
        exams.append(Exam(
            kind=row.kind, status=row.status or "completed",
            procedure=Procedure(row.modality, row.body_region, row.laterality, row.procedure_system,
                                row.procedure_code),
            on_date=day, trust=row.trust, at=at, study_instance_uid=row.uid, accession_number=row.accession,
            placer_order_number=row.placer, description=row.description, effective_dose_msv=row.dose))
    return PatientHistory(exams, records)
