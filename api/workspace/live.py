"""The live channel: what changed in a trust's requests and alerts, read from the database.

Several ``priorscan serve`` workers share one database, and an alert may be raised by any of them (an HL7 order on
one worker's MLLP port, a CDS Hooks call on another's HTTP), so no worker's memory knows of every change: each open
stream reads the changes itself (:func:`changes_since`) once per :data:`POLL_SECONDS`.

A change is a row whose ``updated_at`` is later than the stream's cursor. ``updated_at`` is written by the worker that
made the change, before its transaction commits, so a row can become visible a moment after a later-stamped one; and
the workers' clocks may differ a little. Each read therefore goes back :data:`LOOKBACK` before the cursor, and the
stream remembers which versions ``(kind, id, updated_at)`` it has sent (:class:`ChangeFeed`): a late commit is still
seen, and nothing is sent twice. A stream lasts at most :data:`STREAM_SECONDS` (so that a server can shut down
without waiting for open pages) and the page's EventSource reconnects, resuming from the last event id.

Sources: alerts and imaging orders (requests) of the trust, for people whose role grants ``priorscan/alerts``.
Another page can add its own source with :func:`register_source` (a function of ``(session, trust, since)``
returning :class:`Change` values, and the scope a person needs to receive them): its changes go down the same stream,
under the event name it chooses, to the people whose role grants that scope.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth.scopes import ALERTS
from dedupe import Alert
from imaging import ImagingOrder

#: How often an open stream reads the database.
POLL_SECONDS = 1.0
#: How far before its cursor each read looks, for changes committed late or stamped by a clock a little behind.
LOOKBACK = timedelta(seconds=30)
#: How long one stream stays open before the page reconnects (bounds a server's graceful shutdown).
STREAM_SECONDS = 15.0
#: What the page waits before reconnecting after a stream ends (milliseconds, sent as the SSE ``retry``).
RECONNECT_MS = 500


@dataclass(frozen=True)
class Change:
    """One changed row: the event it is sent as, its key and version, and what the page may show (no patient
    identifiers: the page reads the patient through an audited endpoint)."""

    event: str  # alert | request | another page's own
    key: str
    updated_at: datetime
    data: dict[str, Any]


Source = Callable[[Session, str | None, datetime], Iterable[Change]]
_SOURCES: list[tuple[str, Source]] = []


def register_source(source: Source, *, scope: str = ALERTS) -> Source:
    """Send the changes of ``source`` down the streams of people whose role grants ``scope``."""
    _SOURCES.append((scope, source))
    return source


def source_scopes() -> set[str]:
    """The scopes that some source needs: a person granted none of them has no live channel."""
    return {scope for scope, _ in _SOURCES}


def _title(request: dict[str, Any] | None, description: str | None = None) -> str:
    request = request or {}
    code = request.get("code") or {}
    return (description or code.get("display") or request.get("description")
            or " ".join(filter(None, (request.get("modality"), request.get("bodySite")))) or "Imaging request")


def alert_changes(session: Session, trust: str | None, since: datetime) -> Iterable[Change]:
    statement = select(Alert.id, Alert.updated_at, Alert.status, Alert.verdict, Alert.request, Alert.request_date,
                       Alert.requesting_trust, Alert.placer_order_number).where(Alert.updated_at > since)
    if trust:
        statement = statement.where(Alert.requesting_trust == trust)
    for row in session.execute(statement.order_by(Alert.updated_at).limit(500)):
        yield Change("alert", row.id, row.updated_at, {
            "alertId": row.id, "status": row.status, "verdict": row.verdict, "title": _title(row.request),
            "requestDate": row.request_date.isoformat() if row.request_date else None,
            "requestingTrust": row.requesting_trust, "placerOrderNumber": row.placer_order_number})


def order_changes(session: Session, trust: str | None, since: datetime) -> Iterable[Change]:
    statement = select(ImagingOrder.id, ImagingOrder.updated_at, ImagingOrder.status, ImagingOrder.description,
                       ImagingOrder.modality, ImagingOrder.body_region, ImagingOrder.requesting_trust,
                       ImagingOrder.placer_order_number).where(ImagingOrder.updated_at > since)
    if trust:
        statement = statement.where(ImagingOrder.requesting_trust == trust)
    for row in session.execute(statement.order_by(ImagingOrder.updated_at).limit(500)):
        yield Change("request", f"order-{row.id}", row.updated_at, {
            "requestId": f"order-{row.id}", "status": row.status,
            "title": _title({"modality": row.modality, "bodySite": row.body_region}, row.description),
            "requestingTrust": row.requesting_trust, "placerOrderNumber": row.placer_order_number})


register_source(alert_changes)
register_source(order_changes)


def changes_since(session: Session, trust: str | None, since: datetime,
                  allows: Callable[[str], bool] = lambda scope: True) -> list[Change]:
    """The changes at ``trust`` (every trust when None) stamped after ``since``, oldest first, of every source whose
    scope ``allows`` grants."""
    found = [change for scope, source in _SOURCES if allows(scope) for change in source(session, trust, since)]
    return sorted(found, key=lambda c: (_aware(c.updated_at), c.event, c.key))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class ChangeFeed:
    """One stream's cursor and the versions it has sent (so that re-reading the look-back sends nothing twice)."""

    cursor: datetime
    sent: dict[tuple[str, str], datetime] = field(default_factory=dict)
    allows: Callable[[str], bool] = lambda scope: True  # which sources' scopes the stream's person holds

    def read(self, session: Session, trust: str | None) -> list[Change]:
        """The changes not sent yet; moves the cursor to the newest stamp seen."""
        fresh = []
        for change in changes_since(session, trust, self.cursor - LOOKBACK, self.allows):
            stamp = _aware(change.updated_at)
            if self.sent.get((change.event, change.key)) == stamp:
                continue
            self.sent[(change.event, change.key)] = stamp
            fresh.append(change)
            self.cursor = max(self.cursor, stamp)
        horizon = self.cursor - LOOKBACK
        self.sent = {k: v for k, v in self.sent.items() if v >= horizon}
        return fresh

    def prime(self, session: Session, trust: str | None) -> None:
        """Remember what is already there without sending it (a stream opened without a last event id)."""
        self.read(session, trust)


def parse_cursor(text: str | None, *, now: datetime) -> datetime | None:
    """A last event id (ISO instant) as a cursor; None when absent, unreadable or in the future."""
    if not text:
        return None
    try:
        moment = _aware(datetime.fromisoformat(text.strip()))
    except ValueError:
        return None
    if moment > now + LOOKBACK or moment < now - timedelta(days=1):
        return None
    return moment


def sse(event: str, data: str, *, event_id: str | None = None, retry_ms: int | None = None) -> str:
    """One server-sent event (``data`` is one line of JSON)."""
    lines = []
    if retry_ms is not None:
        lines.append(f"retry: {retry_ms}")
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {event}")
    lines.append(f"data: {data}")
    return "\n".join(lines) + "\n\n"
