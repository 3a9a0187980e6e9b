"""Storage of the master patient index: source records and their history, regional patients, links, reviews.

A *source record* is one patient as one source knows it, keyed by ``(namespace, local_id)``. Its current link to a
*regional patient* lives on the record itself (``regional_patient_id``, ``link_state`` ...); every change of that
link is also appended to ``link_event``, so history is complete.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from priorscan.db import Base, JSONType, UTCDateTime, utcnow
from priorscan.tables import BigId


class RegionalPatient(Base):
    """One person in the region; the golden record holds the best-known demographics."""

    __tablename__ = "regional_patient"
    id: Mapped[str] = mapped_column(String(24), primary_key=True)  # public regional id, random, e.g. "RP7KX2M9Q4TA"
    status: Mapped[str] = mapped_column(String(12), default="active")  # active | retired (emptied by a merge)
    merged_into_id: Mapped[str | None] = mapped_column(String(24))
    nhs_number: Mapped[str | None] = mapped_column(String(10), index=True)
    family: Mapped[str | None] = mapped_column(String(200))
    given: Mapped[str | None] = mapped_column(String(200))
    birth_date: Mapped[date | None] = mapped_column(Date)
    sex: Mapped[str | None] = mapped_column(String(10))
    postcode: Mapped[str | None] = mapped_column(String(12))
    address: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SourceRecord(Base):
    """A patient as one source knows them; keeps its latest demographics (history in ``source_record_version``)."""

    __tablename__ = "source_record"
    __table_args__ = (
        UniqueConstraint("namespace", "local_id"),
        Index("ix_source_record_birth_date", "birth_date"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    namespace: Mapped[str] = mapped_column(String(300))
    local_id: Mapped[str] = mapped_column(String(200))
    trust_ods: Mapped[str | None] = mapped_column(String(10))
    source_kind: Mapped[str] = mapped_column(String(20), default="hl7")  # hl7 | fhir | dicom (provisional) | api
    provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)  # false once merged away (A40)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("source_record.id"))

    nhs_number: Mapped[str | None] = mapped_column(String(10), index=True)
    nhs_number_valid: Mapped[bool] = mapped_column(Boolean, default=False)
    nhs_verification: Mapped[str | None] = mapped_column(String(2))  # UK Core code 01..08
    family: Mapped[str | None] = mapped_column(String(200))
    given: Mapped[str | None] = mapped_column(String(200))  # all given names, space separated
    prefix: Mapped[str | None] = mapped_column(String(40))
    birth_date: Mapped[date | None] = mapped_column(Date)
    birth_date_text: Mapped[str | None] = mapped_column(String(10))  # a partial or invalid date, as sent
    sex: Mapped[str | None] = mapped_column(String(10))  # male | female | other | unknown
    postcode: Mapped[str | None] = mapped_column(String(12))
    address: Mapped[str | None] = mapped_column(String(500))
    phone: Mapped[str | None] = mapped_column(String(40))
    death_date: Mapped[date | None] = mapped_column(Date)
    # normalised once on write (mpi.normalise.MatchRecord.as_stored), so scoring never normalises a candidate again
    match_fields: Mapped[dict | None] = mapped_column(JSONType)

    regional_patient_id: Mapped[str | None] = mapped_column(ForeignKey("regional_patient.id"), index=True)
    link_state: Mapped[str | None] = mapped_column(String(20))  # match | possible-match | no-match
    link_manual: Mapped[bool] = mapped_column(Boolean, default=False)
    link_score: Mapped[float | None] = mapped_column(Float)
    link_weights: Mapped[dict | None] = mapped_column(JSONType)
    link_model_version: Mapped[str | None] = mapped_column(String(64))
    linked_by: Mapped[str | None] = mapped_column(String(200))
    linked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    version: Mapped[int] = mapped_column(Integer, default=1)
    last_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # message time of the newest applied update
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SourceIdentifier(Base):
    """Further identifiers a source sent for a record (PID-3 repeats, FHIR identifiers), for PIXm and look-up."""

    __tablename__ = "source_identifier"
    __table_args__ = (UniqueConstraint("system", "value", "source_record_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source_record_id: Mapped[int] = mapped_column(ForeignKey("source_record.id", ondelete="CASCADE"), index=True)
    system: Mapped[str] = mapped_column(String(300))
    value: Mapped[str] = mapped_column(String(200))
    #: FHIR identifier use: None while current; ``old`` once replaced (ADT A47): kept for history and shown, never
    #: matched or resolved again.
    use: Mapped[str | None] = mapped_column(String(10), default=None)


class SourceRecordVersion(Base):
    """Every version of a source record as it was sent."""

    __tablename__ = "source_record_version"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source_record_id: Mapped[int] = mapped_column(ForeignKey("source_record.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(String(40))  # ADT^A08, fhir-update, dicom ...
    event_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    applied: Mapped[bool] = mapped_column(Boolean, default=True)  # false when older than what was already applied
    demographics: Mapped[dict] = mapped_column(JSONType)


class BlockingKey(Base):
    """Indexed blocking keys of a source record, so one incoming record meets a small candidate set."""

    __tablename__ = "blocking_key"
    # the key with its record: a candidate look-up reads the index alone (an index-only scan on PostgreSQL once the
    # table is vacuumed), not a heap page per candidate
    __table_args__ = (Index("ix_blocking_key_key_record", "key", "source_record_id"),)
    source_record_id: Mapped[int] = mapped_column(ForeignKey("source_record.id", ondelete="CASCADE"),
                                                  primary_key=True)
    key: Mapped[str] = mapped_column(String(80), primary_key=True)


class BlockingKeyScheme(Base):
    """Which keys the stored ``blocking_key`` rows are: the :data:`mpi.blocking.KEY_SCHEME` of the last relink that
    brought every record's keys to its code (one row). A relink refreshes the keys only when it differs or is
    absent (H-ID-27)."""

    __tablename__ = "blocking_key_scheme"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    scheme: Mapped[str] = mapped_column(String(100))
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LinkEvent(Base):
    """One change of a source record's link: who or what made it, why, with the score and model version."""

    __tablename__ = "link_event"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source_record_id: Mapped[int] = mapped_column(ForeignKey("source_record.id", ondelete="CASCADE"), index=True)
    from_regional_id: Mapped[str | None] = mapped_column(String(24))
    to_regional_id: Mapped[str | None] = mapped_column(String(24), index=True)
    link_state: Mapped[str] = mapped_column(String(20))
    manual: Mapped[bool] = mapped_column(Boolean, default=False)
    score: Mapped[float | None] = mapped_column(Float)
    weights: Mapped[dict | None] = mapped_column(JSONType)
    model_version: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(200))  # link-on-write, batch-relink, ADT^A40 merge, manual ...
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReviewItem(Base):
    """A possible match awaiting a person's decision, with its explanation."""

    __tablename__ = "review_item"
    __table_args__ = (Index("ix_review_item_status", "status", "created_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source_record_id: Mapped[int] = mapped_column(ForeignKey("source_record.id", ondelete="CASCADE"), index=True)
    candidate_record_id: Mapped[int] = mapped_column(ForeignKey("source_record.id", ondelete="CASCADE"))
    candidate_regional_id: Mapped[str | None] = mapped_column(String(24))
    score: Mapped[float] = mapped_column(Float)
    weights: Mapped[dict] = mapped_column(JSONType)
    model_version: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(12), default="open")  # open | resolved | superseded
    resolution: Mapped[str | None] = mapped_column(String(20))  # match | no-match
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ManualDecision(Base):
    """A person's decision about a pair of source records; it sticks through every relink."""

    __tablename__ = "manual_decision"
    __table_args__ = (UniqueConstraint("record_a_id", "record_b_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    record_a_id: Mapped[int] = mapped_column(ForeignKey("source_record.id", ondelete="CASCADE"))  # the smaller id
    record_b_id: Mapped[int] = mapped_column(ForeignKey("source_record.id", ondelete="CASCADE"))
    decision: Mapped[str] = mapped_column(String(12))  # match | no-match
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MatchModel(Base):
    """A trained matching model, serialised, so every link can say exactly which model made it."""

    __tablename__ = "match_model"
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    record_count: Mapped[int] = mapped_column(Integer, default=0)
    parameters: Mapped[dict] = mapped_column(JSONType)


def table_of(model: type[DeclarativeBase] | type[Base]) -> Table:
    """The Core table of a mapped class (for executemany statements on hot paths)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def linkage_tables() -> tuple[Table, ...]:
    """The tables that loading source records and linking them (a bulk load's identity stage and its relink) write."""
    return tuple(table_of(model) for model in (RegionalPatient, SourceRecord, SourceIdentifier, SourceRecordVersion,
                                               BlockingKey, LinkEvent, ReviewItem))


def relink_tables() -> tuple[Table, ...]:
    """The tables of :func:`linkage_tables` that a relink writes: the records' links, the patients, the link events
    and the review queue (and the blocking keys, only when it refreshes them: :func:`mpi.batch.keys_are_current`).
    A relink reads the others at most."""
    return tuple(table_of(model) for model in (RegionalPatient, SourceRecord, LinkEvent, ReviewItem))
