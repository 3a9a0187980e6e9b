"""Storage of the imaging index: studies (keyed by StudyInstanceUID), their irradiation events, and orders.

A study points at the source record of the identifier it arrived with (issuer + patient ID); its regional patient is
that record's, so studies follow their patient through merge, unmerge, link and unlink without being rewritten.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from priorscan.db import Base, JSONType, UTCDateTime, utcnow
from priorscan.tables import BigId


class Study(Base):
    """One imaging study and its dose summary; one row however often it is re-sent."""

    __tablename__ = "study"
    __table_args__ = (
        Index("ix_study_source_record_date", "source_record_id", "study_date"),
        Index("ix_study_trust_accession", "performing_trust", "accession_number"),
        Index("ix_study_unresolved", "patient_unresolved"),
        Index("ix_study_remote_source_date", "remote_source", "study_date"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    source_record_id: Mapped[int | None] = mapped_column(ForeignKey("source_record.id"))
    patient_issuer: Mapped[str | None] = mapped_column(String(300))  # namespace as resolved from the source
    patient_local_id: Mapped[str | None] = mapped_column(String(200))
    patient_unresolved: Mapped[str | None] = mapped_column(String(200))  # why no source record (no issuer ...)
    performing_trust: Mapped[str | None] = mapped_column(String(10))
    accession_number: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="completed")  # scheduled | completed | cancelled
    modality: Mapped[str | None] = mapped_column(String(16))
    modalities_in_study: Mapped[str | None] = mapped_column(String(64))
    procedure_system: Mapped[str | None] = mapped_column(String(200))
    procedure_code: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(String(300))
    body_region: Mapped[str | None] = mapped_column(String(40))  # normalised region group
    body_regions: Mapped[str | None] = mapped_column(String(200))  # every region named, space-separated, first first
    laterality: Mapped[str | None] = mapped_column(String(10))  # left | right | both | none
    contrast: Mapped[bool | None] = mapped_column()
    normalisation: Mapped[str | None] = mapped_column(String(20))  # code | description | unknown
    study_date: Mapped[date | None] = mapped_column(Date)
    study_datetime: Mapped[datetime | None] = mapped_column(UTCDateTime)
    patient_age_years: Mapped[int | None] = mapped_column(Integer)

    ctdivol_mgy: Mapped[float | None] = mapped_column(Float)
    dlp_total_mgycm: Mapped[float | None] = mapped_column(Float)
    dap_total_gym2: Mapped[float | None] = mapped_column(Float)
    dose_rp_total_gy: Mapped[float | None] = mapped_column(Float)
    fluoro_time_s: Mapped[float | None] = mapped_column(Float)
    agd_left_mgy: Mapped[float | None] = mapped_column(Float)
    agd_right_mgy: Mapped[float | None] = mapped_column(Float)
    administered_activity_mbq: Mapped[float | None] = mapped_column(Float)
    effective_dose_msv: Mapped[float | None] = mapped_column(Float)  # an estimate (population index)
    effective_dose_method: Mapped[str | None] = mapped_column(String(300))
    irradiation_events: Mapped[int | None] = mapped_column(Integer)
    dose_source: Mapped[str | None] = mapped_column(String(20))  # rdsr | header | hl7 | none
    accumulated_dose: Mapped[dict | None] = mapped_column(JSONType)  # report key -> totals (imaging.dose)

    manufacturer: Mapped[str | None] = mapped_column(String(64))  # the device (for dose audits per scanner)
    model_name: Mapped[str | None] = mapped_column(String(64))
    station_name: Mapped[str | None] = mapped_column(String(64))
    sources: Mapped[list | None] = mapped_column(JSONType)  # which feeds told us about it (dicom, qido, oru, fhir)
    patient_source: Mapped[str | None] = mapped_column(String(10))  # the feed whose identifier the study follows
    remote_instances: Mapped[int | None] = mapped_column(Integer)  # instances a DICOMweb source last reported
    remote_source: Mapped[str | None] = mapped_column(String(500))  # the DICOMweb source that lists it
    remote_fingerprint: Mapped[str | None] = mapped_column(String(64))  # its QIDO answer when last read
    #: Why the study is no longer shown as a prior (an IOCM rejection note, a deletion in the PACS); None: shown.
    withdrawn: Mapped[str | None] = mapped_column(String(200))
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Where the study says it is not a patient's examination (a QA, physics or phantom test: never a prior, not in
    #: dose audits), ``field: what it said; ...`` (:mod:`imaging.not_patient`); None: a patient's examination.
    not_patient: Mapped[str | None] = mapped_column(String(300))
    #: A person's decision (migration 0016): ``patient`` or ``test``; it sticks (indexing and the recheck never
    #: overturn it) and sets ``not_patient`` (:mod:`imaging.not_patient_store`); None: nobody has decided.
    not_patient_decision: Mapped[str | None] = mapped_column(String(10))
    not_patient_decided_by: Mapped[str | None] = mapped_column(String(200))
    not_patient_decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    not_patient_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class IrradiationEvent(Base):
    """One irradiation event from an RDSR; keyed by its UID so a re-sent report is never counted twice."""

    __tablename__ = "irradiation_event"
    __table_args__ = (UniqueConstraint("study_id", "event_uid"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"), index=True)
    event_uid: Mapped[str] = mapped_column(String(100))  # Irradiation Event UID (header: the exposure's key)
    kind: Mapped[str] = mapped_column(String(20))  # ct | projection | fluoro | mammo | nm
    source: Mapped[str] = mapped_column(String(10), default="rdsr")  # rdsr | header
    target_region: Mapped[str | None] = mapped_column(String(64))
    phantom: Mapped[str | None] = mapped_column(String(40))
    laterality: Mapped[str | None] = mapped_column(String(10))
    ctdivol_mgy: Mapped[float | None] = mapped_column(Float)
    dlp_mgycm: Mapped[float | None] = mapped_column(Float)
    dap_gym2: Mapped[float | None] = mapped_column(Float)
    agd_mgy: Mapped[float | None] = mapped_column(Float)
    dose_rp_gy: Mapped[float | None] = mapped_column(Float)
    activity_mbq: Mapped[float | None] = mapped_column(Float)
    duration_s: Mapped[float | None] = mapped_column(Float)
    effective_dose_msv: Mapped[float | None] = mapped_column(Float)  # estimate, as for the study
    detail: Mapped[dict | None] = mapped_column(JSONType)


class ImagingOrder(Base):
    """An imaging request (HL7 ORM/OMI, FHIR ServiceRequest, or a duplicate check with an order number)."""

    __tablename__ = "imaging_order"
    __table_args__ = (
        UniqueConstraint("requesting_trust", "placer_order_number"),
        # the workspace: a trust's requests of one day, and what changed since a moment (api.workspace)
        Index("ix_imaging_order_trust_ordered", "requesting_trust", "ordered_at"),
        Index("ix_imaging_order_trust_updated", "requesting_trust", "updated_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    requesting_trust: Mapped[str] = mapped_column(String(10))
    placer_order_number: Mapped[str] = mapped_column(String(64))
    filler_order_number: Mapped[str | None] = mapped_column(String(64))
    source_record_id: Mapped[int | None] = mapped_column(ForeignKey("source_record.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | completed | cancelled
    priority: Mapped[str | None] = mapped_column(String(20))
    procedure_system: Mapped[str | None] = mapped_column(String(200))
    procedure_code: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(String(300))
    modality: Mapped[str | None] = mapped_column(String(16))
    body_region: Mapped[str | None] = mapped_column(String(40))
    body_regions: Mapped[str | None] = mapped_column(String(200))  # every region named, space-separated, first first
    laterality: Mapped[str | None] = mapped_column(String(10))
    reason: Mapped[str | None] = mapped_column(Text)
    ordered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class StudyInstance(Base):
    """One DICOM object of a study that reached the index as an object (pushed, filed, or read over WADO-RS).

    Kept so that a rejection note or a deletion can say what it removes: ``dose`` lists what the object contributed
    to its study's dose (irradiation event UIDs and the dose report's key), so that contribution can be taken out.
    """

    __tablename__ = "study_instance"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"), index=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    series_instance_uid: Mapped[str | None] = mapped_column(String(64))
    sop_class_uid: Mapped[str | None] = mapped_column(String(64))
    modality: Mapped[str | None] = mapped_column(String(16))
    dose: Mapped[dict | None] = mapped_column(JSONType)  # {"events": [...], "report": key}
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InstanceRejection(Base):
    """An instance named by an IHE IOCM rejection note (a Key Object Selection document), kept by its SOP Instance
    UID so that the rejection holds whichever arrives first, the note or the instance."""

    __tablename__ = "instance_rejection"
    sop_instance_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    series_instance_uid: Mapped[str | None] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(16))  # DCM 113001, 113037, 113038, 113039 ...
    meaning: Mapped[str] = mapped_column(String(120))
    note_uid: Mapped[str | None] = mapped_column(String(64))  # the rejection note's own SOP Instance UID
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StudyReport(Base):
    """The report of a study (HL7 ORU OBX text, FHIR DiagnosticReport), one row per report and source id."""

    __tablename__ = "study_report"
    __table_args__ = (UniqueConstraint("source", "report_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(10))  # oru | fhir
    report_id: Mapped[str] = mapped_column(String(200))  # DiagnosticReport id, or sender + filler order number
    status: Mapped[str | None] = mapped_column(String(20))  # preliminary | final | amended | corrected | cancelled
    conclusion: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
