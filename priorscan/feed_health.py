"""Feed health: which trusts' feeds are flowing, which have gone quiet, and what is failing.

A **feed** is one sender's stream of one kind of HL7 message: sending facility (MSH-4, resolved to the trust's ODS
code), sending application (MSH-3) and message family (ADT, ORM/OMI, ORU ...). The HL7 message log holds every
message accepted or refused; it is rolled up here, incrementally, into messages per feed and minute
(:class:`~priorscan.tables.FeedActivity`), so that a status costs a few hundred rows whatever the traffic:

- **last message** and **rate over the last hour** (messages, refusals, error rate);
- the feed's **usual gap**: the 95th percentile of the gaps between the minutes in which it sent anything, over the
  last :data:`HISTORY_DAYS` days (a feed with fewer than :data:`MIN_GAPS` gaps has no usual gap yet);
- **quiet**: nothing for longer than :data:`QUIET_FACTOR` times the usual gap, and at least :data:`QUIET_FLOOR`
  (a feed whose usual gap is one minute is not quiet after three). A feed that never had a usual gap is never
  flagged quiet: it is new;
- **dead letters waiting** per sender (refused messages not yet replayed or discarded).

The roll-up reads the log past a cursor (``poll_cursor`` row ``feed-activity/hl7``) and adds to the minute rows in
the same transaction as it moves the cursor (:func:`roll_up_batch`, one unit of work per batch in :func:`roll_up`);
the transaction's first statement writes the cursor row, so two
workers rolling up at once are serialised by the database (a row lock on PostgreSQL, the write lock on SQLite) and
no message is counted twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from priorscan.db import utcnow
from priorscan.tables import DeadLetter, FeedActivity, HL7MessageLog, PollCursor
from priorscan.trusts import TrustRegistry
from priorscan.unit_of_work import unit_of_work
from priorscan.writes import insert_unless_exists

CURSOR = "feed-activity/hl7"
#: Log rows rolled up per transaction.
BATCH = 20_000
HISTORY_DAYS = 7
MIN_GAPS = 5
QUIET_FACTOR = 3.0
QUIET_FLOOR = timedelta(minutes=15)
#: Minute rows kept (older ones are deleted by :func:`prune`).
KEEP_DAYS = 35
REFUSED = ("AE", "AR", "CE", "CR")


def feed_key(facility: str, application: str, message_type: str) -> str:
    """``hl7|<MSH-4>|<MSH-3>|<family>``: the family is the message type's first component (ADT, ORU, ...)."""
    family = (message_type or "?").split("^", 1)[0].upper() or "?"
    return f"hl7|{facility}|{application}|{family}"


def _minute(at: datetime) -> datetime:
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return at.astimezone(UTC).replace(second=0, microsecond=0)


def roll_up_batch(session: Session, *, batch: int = BATCH) -> int:
    """Add up to ``batch`` of the HL7 message log's new rows to the minute roll-up and move the cursor past them;
    how many were rolled up. Commits nothing: the caller's unit of work commits the minutes with the cursor."""
    now = utcnow()
    insert_unless_exists(session, PollCursor, {"source": CURSOR, "position": {"after_id": 0}, "updated_at": now},
                         ["source"])
    # the first write of the transaction: whoever gets it rolls up; another worker waits for its commit
    session.execute(update(PollCursor).where(PollCursor.source == CURSOR).values(updated_at=now))
    position = session.scalar(select(PollCursor.position).where(PollCursor.source == CURSOR)) or {}
    after = int(position.get("after_id", 0))
    rows = session.execute(
        select(HL7MessageLog.id, HL7MessageLog.sending_facility, HL7MessageLog.sending_application,
               HL7MessageLog.message_type, HL7MessageLog.ack_code, HL7MessageLog.received_at)
        .where(HL7MessageLog.id > after).order_by(HL7MessageLog.id).limit(batch)).all()
    if not rows:
        return 0
    counts: dict[tuple[str, datetime], list[Any]] = defaultdict(lambda: [0, 0, None])
    for _id, facility, application, message_type, ack, received in rows:
        entry = counts[(feed_key(facility, application, message_type), _minute(received))]
        entry[0] += 1
        entry[1] += ack in REFUSED
        stamp = received if received.tzinfo else received.replace(tzinfo=UTC)
        entry[2] = stamp if entry[2] is None or stamp > entry[2] else entry[2]
    stored = {(r.feed, _aware(r.minute)): r for r in session.execute(
        select(FeedActivity.feed, FeedActivity.minute, FeedActivity.received, FeedActivity.rejected,
               FeedActivity.last_at)
        .where(FeedActivity.feed.in_({k for k, _ in counts}),
               FeedActivity.minute >= min(m for _, m in counts))).all()}
    for (key, minute), (received, rejected, last_at) in counts.items():
        old = stored.get((key, minute))
        if old is None:
            session.add(FeedActivity(feed=key, minute=minute, received=received, rejected=rejected,
                                     last_at=last_at))
            continue
        session.execute(update(FeedActivity).where(FeedActivity.feed == key, FeedActivity.minute == old.minute)
                        .values(received=old.received + received, rejected=old.rejected + rejected,
                                last_at=max(_aware(old.last_at), last_at)))
    session.flush()
    session.execute(update(PollCursor).where(PollCursor.source == CURSOR)
                    .values(position={"after_id": int(rows[-1][0])}))
    return len(rows)


def roll_up(sessions: sessionmaker[Session], *, batch: int = BATCH, batches: int = 50) -> int:
    """Roll the HL7 message log up to date, each batch of ``batch`` rows in a unit of work of its own (so a long
    backlog never holds the writer's lock for long); how many log rows were rolled up."""
    done = 0
    for _ in range(batches):
        with unit_of_work(sessions, write=True) as session:
            rolled = roll_up_batch(session, batch=batch)
        done += rolled
        if rolled < batch:
            break
    return done


def prune(session: Session, *, now: datetime | None = None, keep_days: int = KEEP_DAYS) -> int:
    """Delete minute rows older than ``keep_days``; how many went."""
    cutoff = (now or utcnow()) - timedelta(days=keep_days)
    result = session.execute(FeedActivity.__table__.delete().where(FeedActivity.minute < cutoff))  # type: ignore
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


@dataclass
class FeedStatus:
    """One feed's health (see the module's docstring for each figure)."""

    feed: str
    channel: str
    trust: str | None  # the ODS code MSH-4 resolves to; None when it names no configured trust
    sending_facility: str
    sending_application: str
    family: str
    last_message_at: datetime | None
    messages_last_hour: int
    rejected_last_hour: int
    error_rate_last_hour: float | None
    usual_gap_s: float | None
    quiet: bool
    quiet_for_s: float | None
    dead_letters_waiting: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["last_message_at"] = self.last_message_at.isoformat() if self.last_message_at else None
        return out


def usual_gap(minutes: Iterable[datetime]) -> float | None:
    """The 95th percentile of gaps (seconds) between consecutive active minutes; None with fewer than
    :data:`MIN_GAPS` gaps."""
    ordered = sorted(minutes)
    gaps = sorted((b - a).total_seconds() for a, b in zip(ordered, ordered[1:], strict=False))
    if len(gaps) < MIN_GAPS:
        return None
    index = min(len(gaps) - 1, int(round(0.95 * (len(gaps) - 1))))
    return gaps[index]


def _dead_letters_by_sender(session: Session, limit: int = 10_000) -> dict[tuple[str, str], int]:
    """Waiting HL7 dead letters per (MSH-4, MSH-3), read from each message's header line."""
    waiting: dict[tuple[str, str], int] = defaultdict(int)
    rows = session.execute(select(func.substr(DeadLetter.raw, 1, 300)).where(
        DeadLetter.status == "new", DeadLetter.content_type == "hl7v2").limit(limit)).scalars()
    for head in rows:
        text = (head or "").lstrip("\x0b")
        if not text.startswith("MSH") or len(text) < 4:
            waiting[("?", "?")] += 1
            continue
        fields = text.split("\r", 1)[0].split("\n", 1)[0].split(text[3])
        facility = fields[3].split("^", 1)[0] if len(fields) > 3 else "?"
        application = fields[2].split("^", 1)[0] if len(fields) > 2 else "?"
        waiting[(facility, application)] += 1
    return waiting


def feed_statuses(session: Session, trusts: TrustRegistry, *, now: datetime | None = None) -> list[FeedStatus]:
    """Every feed seen in the last :data:`KEEP_DAYS` days with its health, quiet ones first, then by trust, as far
    as the roll-up has come (callers that want it current run :func:`roll_up` first)."""
    now = now or utcnow()
    since = now - timedelta(days=HISTORY_DAYS)
    hour_ago = now - timedelta(hours=1)
    rows = session.execute(select(FeedActivity.feed, FeedActivity.minute, FeedActivity.received,
                                  FeedActivity.rejected, FeedActivity.last_at)
                           .where(FeedActivity.minute >= now - timedelta(days=KEEP_DAYS))).all()
    by_feed: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_feed[row.feed].append(row)
    waiting = _dead_letters_by_sender(session)
    out = []
    for key, minutes in by_feed.items():
        _, facility, application, family = key.split("|", 3)
        stamps = [(m.last_at if m.last_at.tzinfo else m.last_at.replace(tzinfo=UTC)) for m in minutes]
        last = max(stamps)
        recent = [m for m in minutes if _aware(m.minute) >= hour_ago - timedelta(minutes=1)
                  and _aware(m.last_at) >= hour_ago]
        received = sum(m.received for m in recent)
        rejected = sum(m.rejected for m in recent)
        gap = usual_gap(_aware(m.minute) for m in minutes if _aware(m.minute) >= since)
        silent = (now - last).total_seconds()
        quiet = gap is not None and silent > max(QUIET_FACTOR * gap, QUIET_FLOOR.total_seconds())
        trust = trusts.resolve(facility)
        notes = []
        if trust is None:
            notes.append("the sending facility names no configured trust")
        if quiet:
            notes.append(f"quiet for {silent / 60:.0f} min; usually sends within {gap / 60:.0f} min")  # type: ignore
        out.append(FeedStatus(feed=key, channel="hl7", trust=trust.ods if trust else None, sending_facility=facility,
                              sending_application=application, family=family, last_message_at=last,
                              messages_last_hour=received, rejected_last_hour=rejected,
                              error_rate_last_hour=(rejected / received) if received else None, usual_gap_s=gap,
                              quiet=quiet, quiet_for_s=silent if quiet else None,
                              dead_letters_waiting=waiting.get((facility, application), 0), notes=notes))
    out.sort(key=lambda s: (not s.quiet, s.trust or "~", s.feed))
    return out


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


__all__ = ["FeedStatus", "feed_key", "feed_statuses", "prune", "roll_up", "roll_up_batch", "usual_gap"]
