"""The storage side of the check: a regional patient's studies and outstanding orders from every trust, as
:class:`~dedupe.comparable.Exam` values for the pure judgement.

Studies and orders are reached through their source record, whose regional patient is the person's, so they follow
merges, links and unmerges without being rewritten. One round trip per check, a ``UNION ALL`` of indexed queries
(the regional patient's birth date by its key, for the paediatric exception, among them):
studies by ``source_record.regional_patient_id`` then ``study (source_record_id, study_date)``, active orders by
``imaging_order.source_record_id``, the patient's source records (where a new order is kept), and active orders
recorded before the MPI knew the patient that named one of the patient's identifiers (from the patient's records to
``unattached_order_identifier (value, system)``, never from the kept identifiers; :mod:`dedupe.orders`). Completed
studies older than the longest window are not read; scheduled studies and active orders are read at any age. A study
or order stored before every region it names was kept (``body_regions``, migration 0010) has them read again from its
description, when that reads as the same examination. A study
withdrawn from the priors (its images rejected by an IOCM note, or deleted in the PACS) is never read, nor is a
study that is not a patient's examination (a QA, physics or phantom test: ``study.not_patient``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Date,
    Float,
    Select,
    String,
    and_,
    bindparam,
    cast,
    func,
    literal_column,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from dedupe.comparable import Exam, Procedure, local_date
from dedupe.tables import UnattachedOrderIdentifier
from dedupe.vocabulary import normalise_description, split_regions
from imaging import ImagingOrder, Study
from mpi import RegionalPatient, SourceIdentifier, SourceRecord
from priorscan.db import UTCDateTime
from priorscan.trusts import NHS_NUMBER_SYSTEM


def _const(value: str) -> ColumnElement[str]:
    """A string constant written into the SQL, not bound: the statement's only parameters are the patient and the
    date, so that each execution processes two parameters rather than a score of constants."""
    assert "'" not in value
    return literal_column(f"'{value}'", String)


_NO_ID = cast(null(), BigInteger)
_STUDIES = (
    select(_const("study").label("kind"), Study.status, Study.modality, Study.body_region, Study.laterality,
           Study.procedure_system, Study.procedure_code, Study.description, Study.body_regions.label("regions"),
           Study.study_date.label("day"),
           Study.study_datetime.label("at"), Study.performing_trust.label("trust"),
           Study.study_instance_uid.label("uid"), Study.accession_number.label("accession"),
           cast(null(), String).label("placer"), Study.effective_dose_msv.label("dose"),
           _NO_ID.label("order_id"), _NO_ID.label("record_id"))
    .join(SourceRecord, SourceRecord.id == Study.source_record_id)
    .where(SourceRecord.regional_patient_id == bindparam("regional_id"), Study.status != _const("cancelled"),
           Study.withdrawn.is_(None),  # images rejected (IOCM) or deleted in the PACS: no prior to show
           Study.not_patient.is_(None),  # a QA, physics or phantom test is nobody's prior
           or_(Study.study_date >= bindparam("since"), Study.status == _const("scheduled")))
)


def _order_columns(kind: str) -> tuple[Any, ...]:
    return (_const(kind).label("kind"), ImagingOrder.status, ImagingOrder.modality, ImagingOrder.body_region,
            ImagingOrder.laterality, ImagingOrder.procedure_system, ImagingOrder.procedure_code,
            ImagingOrder.description, ImagingOrder.body_regions.label("regions"), cast(null(), Date).label("day"),
            func.coalesce(ImagingOrder.ordered_at, ImagingOrder.created_at).label("at"),
            ImagingOrder.requesting_trust.label("trust"), cast(null(), String).label("uid"),
            ImagingOrder.filler_order_number.label("accession"), ImagingOrder.placer_order_number.label("placer"),
            cast(null(), Float).label("dose"))


_ORDERS = (
    select(*_order_columns("order"), _NO_ID.label("order_id"), _NO_ID.label("record_id"))
    .join(SourceRecord, SourceRecord.id == ImagingOrder.source_record_id)
    .where(SourceRecord.regional_patient_id == bindparam("regional_id"), ImagingOrder.status == _const("active"))
)
_RECORDS = (
    select(_const("record").label("kind"), *(cast(null(), String).label(n) for n in (
               "status", "modality", "body_region", "laterality", "procedure_system", "procedure_code",
               "description", "regions")),
           cast(null(), Date).label("day"), cast(null(), UTCDateTime).label("at"),
           SourceRecord.trust_ods.label("trust"), *(cast(null(), String).label(n) for n in ("uid", "accession",
                                                                                            "placer")),
           cast(null(), Float).label("dose"), _NO_ID.label("order_id"), SourceRecord.id.label("record_id"))
    .where(SourceRecord.regional_patient_id == bindparam("regional_id"), SourceRecord.active.is_(True))
)


_PATIENT = (
    select(_const("patient").label("kind"), *(cast(null(), String).label(n) for n in (
               "status", "modality", "body_region", "laterality", "procedure_system", "procedure_code",
               "description", "regions")),
           RegionalPatient.birth_date.label("day"), cast(null(), UTCDateTime).label("at"),
           *(cast(null(), String).label(n) for n in ("trust", "uid", "accession", "placer")),
           cast(null(), Float).label("dose"), _NO_ID.label("order_id"), _NO_ID.label("record_id"))
    .where(RegionalPatient.id == bindparam("regional_id"))
)


def _unattached(named: Any, *, through_other_identifiers: bool = False) -> Select[Any]:
    """Active orders without a source record that named an identifier of one of the patient's records."""
    query = select(*_order_columns("unattached"), ImagingOrder.id.label("order_id"),
                   SourceRecord.id.label("record_id")).select_from(SourceRecord)
    if through_other_identifiers:
        query = query.join(SourceIdentifier, SourceIdentifier.source_record_id == SourceRecord.id)
    return (query.join(UnattachedOrderIdentifier, named)
            .join(ImagingOrder, ImagingOrder.id == UnattachedOrderIdentifier.order_id)
            .where(SourceRecord.regional_patient_id == bindparam("regional_id"),
                   # "still unattached" written so that no index serves it: the plan must start from the
                   # patient's records, not walk every unattached order (all of them sit under one NULL key)
                   func.coalesce(ImagingOrder.source_record_id, literal_column("0")) == literal_column("0"),
                   ImagingOrder.status == _const("active")))


_UNATTACHED = (
    _unattached(and_(UnattachedOrderIdentifier.system == SourceRecord.namespace,
                     UnattachedOrderIdentifier.value == SourceRecord.local_id)),
    _unattached(and_(UnattachedOrderIdentifier.system == _const(NHS_NUMBER_SYSTEM),
                     UnattachedOrderIdentifier.value == SourceRecord.nhs_number)),
    _unattached(and_(UnattachedOrderIdentifier.system == SourceIdentifier.system,
                     UnattachedOrderIdentifier.value == SourceIdentifier.value), through_other_identifiers=True),
)
#: Studies, active orders (attached, and unattached ones that named the patient), the patient's source records and
#: birth date in one round trip.
_EXAMS = union_all(_STUDIES, _ORDERS, _RECORDS, _PATIENT, *_UNATTACHED)


@dataclass(frozen=True)
class PatientHistory:
    """What the check reads about a patient: their exams, their active source records ``(id, trust)``, the
    unattached orders that named them (order id → the source record whose identifier the order named), and their
    birth date (the golden record's)."""

    exams: list[Exam]
    source_records: list[tuple[int, str | None]]
    unattached_orders: dict[int, int] = field(default_factory=dict)
    birth_date: date | None = None

    def record_at(self, trust: str | None) -> int | None:
        """The source record to hang an order on: the trust's own, else the patient's first."""
        ordered = sorted(self.source_records)
        return next((rid for rid, ods in ordered if trust and ods == trust), ordered[0][0] if ordered else None)


def _described_regions(body_region: str | None, description: str | None, modality: str | None) -> tuple[str, ...]:
    """Every region the description of an exam stored before ``body_regions`` was kept names, when it reads as the
    same examination (its stored region among them); else none beyond the stored region."""
    if not body_region or not description:
        return ()
    named = normalise_description(description, modality).regions
    if body_region not in named or len(named) < 2:
        return ()
    return (body_region, *(r for r in named if r != body_region))


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
    unattached: dict[int, int] = {}
    birth_date: date | None = None
    for (kind, status, modality, body_region, laterality, procedure_system, procedure_code, description, regions, day,
         at, trust, uid, accession, placer, dose, order_id, record_id) in rows:  # the columns of _EXAMS, in order
        if kind == "patient":
            birth_date = day
            continue
        if kind == "record":
            records.append((int(record_id), trust))
            continue
        if kind == "unattached":
            if order_id in unattached:  # named the patient by more than one identifier
                continue
            unattached[order_id] = int(record_id)
        study = kind == "study"
        if own_trust and trust == own_trust and (accession if study else placer) in own_numbers:
            continue
        # ``at`` is typed by the first SELECT of the union: an aware UTC timestamp on both backends
        if not study:
            day = local_date(at, timezone) if at else None
        exams.append(Exam(
            kind="study" if study else "order", status=status or "completed",
            procedure=Procedure(modality, body_region, laterality, procedure_system, procedure_code,
                                split_regions(regions) or _described_regions(body_region, description, modality)),
            on_date=day, trust=trust, at=at, study_instance_uid=uid, accession_number=accession,
            placer_order_number=placer, description=description, effective_dose_msv=dose))
    return PatientHistory(exams, records, unattached, birth_date)


_RECORDED_AGE = (
    select(Study.study_date, Study.patient_age_years)
    .join(SourceRecord, SourceRecord.id == Study.source_record_id)
    .where(SourceRecord.regional_patient_id == bindparam("regional_id"), Study.patient_age_years.is_not(None),
           Study.not_patient.is_(None),  # a phantom's "age" is nobody's
           Study.study_date.is_not(None), Study.study_date <= bindparam("on"))
    .order_by(Study.study_date.desc()).limit(1)
)


def age_from_studies(session: Session, regional_id: str, on: date) -> int | None:
    """The youngest age the patient can be on ``on`` by their latest study that recorded an age (DICOM Patient's
    Age, or the age the index worked out when it read the study), for a patient no record gives a birth date.

    An age in whole years at the study plus the whole years since: at least that old, at most a year older. The
    lower bound is used, so a child is never taken for an adult by it (a 16-year-old may be taken for 15).
    """
    row = session.connection().execute(_RECORDED_AGE, {"regional_id": regional_id, "on": on}).first()
    if row is None:
        return None
    studied, age = row
    return int(age) + on.year - studied.year - ((on.month, on.day) < (studied.month, studied.day))

