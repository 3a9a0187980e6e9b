"""Tables of the core and the edges: clients and users, the audit trail, HL7 idempotency, dead letters, cursors."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from priorscan.db import Base, JSONType, UTCDateTime, utcnow

BigId = BigInteger().with_variant(Integer(), "sqlite")


class ApiClient(Base):
    """A system that calls the API with a bearer token (only the token's hash is kept).

    Tokens from ``priorscan token create`` never expire (``expires_at`` empty); access tokens issued at
    ``/oauth2/token`` to a SMART backend client expire a few minutes after issue.
    """

    __tablename__ = "api_client"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class SmartBackendClient(Base):
    """A SMART Backend Services client: authenticates at ``/oauth2/token`` with a JWT signed by a key of its JWKS.

    The JWKS is stored either as given (``jwks``) or as the URL the client publishes it at (``jwks_url``).
    """

    __tablename__ = "smart_backend_client"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(200), unique=True)
    jwks: Mapped[dict | None] = mapped_column(JSONType)
    jwks_url: Mapped[str | None] = mapped_column(String(1000))
    scopes: Mapped[list[str]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SmartSeenJti(Base):
    """Client assertion ids already accepted at ``/oauth2/token``, so a replayed assertion is refused."""

    __tablename__ = "smart_seen_jti"
    client_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    jti: Mapped[str] = mapped_column(String(200), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class UserAccount(Base):
    """A person who signs in to the radiographer page."""

    __tablename__ = "user_account"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(200), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(40))
    trust_ods: Mapped[str | None] = mapped_column(String(10))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebSessionEnded(Base):
    """A web-page session ended by signing out: its cookie is refused from then on, though still signed and unexpired.

    Kept until the cookie would have expired anyway (``expires_at``)."""

    __tablename__ = "web_session_ended"
    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigId)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class SignInCounter(Base):
    """Sign-in attempts per username (``user:<name>``) or address (``address:<ip>``) within the current window.

    Each attempt takes its number here in one atomic statement *before* its password is checked, so parallel
    guesses cannot all slip under the lock-out (:mod:`api.auth.web_session`)."""

    __tablename__ = "sign_in_counter"
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class CdsTrustedIssuer(Base):
    """A CDS client (EHR) whose JWTs are signed by keys in ``jwks``."""

    __tablename__ = "cds_trusted_issuer"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    issuer: Mapped[str] = mapped_column(String(500), unique=True)
    jwks: Mapped[dict] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CdsSeenJti(Base):
    """JWT ids already accepted, so a replayed CDS JWT is refused."""

    __tablename__ = "cds_seen_jti"
    issuer: Mapped[str] = mapped_column(String(500), primary_key=True)
    jti: Mapped[str] = mapped_column(String(200), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditEvent(Base):
    """One access to or change of patient data (IHE Basic Audit Log Patterns); never holds names."""

    __tablename__ = "audit_event"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    action: Mapped[str] = mapped_column(String(1))  # C R U D E (FHIR AuditEvent.action)
    event_type: Mapped[str] = mapped_column(String(60))  # e.g. rest, hl7, duplicate-check, login
    subtype: Mapped[str] = mapped_column(String(120))  # e.g. read, search, ADT^A08, $match
    outcome: Mapped[str] = mapped_column(String(2), default="0")  # 0 success, 4 minor, 8 serious, 12 major
    agent_kind: Mapped[str] = mapped_column(String(20))  # client, user, system, feed
    agent_name: Mapped[str] = mapped_column(String(200))
    source_address: Mapped[str | None] = mapped_column(String(100))
    regional_patient_id: Mapped[str | None] = mapped_column(String(40), index=True)
    entity: Mapped[str | None] = mapped_column(String(300))  # what was touched, e.g. "Patient/…", "alert/…"
    detail: Mapped[dict | None] = mapped_column(JSONType)


class HL7MessageLog(Base):
    """Every HL7 message accepted or refused, keyed for idempotency by sender, control id and content: each message
    sent under one MSH-10 has its own row, so a re-send of any of them is recognised (migration 0018)."""

    __tablename__ = "hl7_message_log"
    __table_args__ = (UniqueConstraint("sending_application", "sending_facility", "control_id", "content_digest"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sending_application: Mapped[str] = mapped_column(String(200))
    sending_facility: Mapped[str] = mapped_column(String(200))
    control_id: Mapped[str] = mapped_column(String(200))
    message_type: Mapped[str] = mapped_column(String(40))
    ack_code: Mapped[str] = mapped_column(String(2))
    ack_text: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # the message's content without MSH-7 (:func:`priorscan.hl7v2.content_digest`): another message under a used
    # MSH-10 is applied, a re-send of any is not; None for rows logged before it was kept (taken for re-sends)
    content_digest: Mapped[str | None] = mapped_column(String(64))


class DeadLetter(Base):
    """A rejected input kept with its reason and raw text, for listing and replay."""

    __tablename__ = "dead_letter"
    __table_args__ = (Index("ix_dead_letter_status_received", "status", "received_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    channel: Mapped[str] = mapped_column(String(40))  # mllp, http-hl7, ingest, fhir, dicom
    content_type: Mapped[str] = mapped_column(String(40))  # hl7v2, fhir-json, dicom, dicom-json
    source: Mapped[str | None] = mapped_column(String(500))  # file name or peer, never patient data
    error_code: Mapped[str] = mapped_column(String(60))
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="new")  # new, replayed, discarded
    replayed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PollCursor(Base):
    """Where a poller (e.g. DICOMweb QIDO-RS) stopped, so it resumes after a restart."""

    __tablename__ = "poll_cursor"
    source: Mapped[str] = mapped_column(String(500), primary_key=True)
    position: Mapped[dict] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class FeedActivity(Base):
    """HL7 messages per feed and minute, rolled up from :class:`HL7MessageLog` (see :mod:`priorscan.feed_health`)."""

    __tablename__ = "feed_activity"
    __table_args__ = (Index("ix_feed_activity_minute", "minute"),)
    feed: Mapped[str] = mapped_column(String(500), primary_key=True)  # hl7|MSH-4|MSH-3|family
    minute: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    received: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BulkCursor(Base):
    """How far a bulk load (``priorscan backfill``) got in one file and stage, committed with that stage's writes."""

    __tablename__ = "bulk_cursor"
    load_key: Mapped[str] = mapped_column(String(64), primary_key=True)  # a hash of the load's input paths
    stage: Mapped[str] = mapped_column(String(40), primary_key=True)  # identity | relink | deferred | imaging ...
    item_file: Mapped[str] = mapped_column(String(1000), primary_key=True)  # "" for a stage of the whole load
    position: Mapped[int] = mapped_column(BigInteger, default=0)  # items done in a file; a stage's last seq
    finished: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class BulkDeferred(Base):
    """An item a bulk load set aside for the per-message path (an update, a merge, a Bundle, anything unclear),
    applied in input order after the load's batch relink."""

    __tablename__ = "bulk_deferred"
    __table_args__ = (UniqueConstraint("load_key", "seq"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    load_key: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)  # input order within the load
    content_type: Mapped[str] = mapped_column(String(40))  # hl7v2 | fhir-json
    source: Mapped[str] = mapped_column(String(500))  # file and position, never patient data
    raw: Mapped[str] = mapped_column(Text)
