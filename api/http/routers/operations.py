"""For the people who keep priorscan running (scope ``priorscan/operations``; no patient data in either answer).

- ``GET /metrics``: Prometheus exposition format (see :mod:`priorscan.metrics`): this worker's counters and
  latency histograms (its MLLP writer processes included) and the store's feed health, dead letters and pollers.
- ``GET /api/v1/feeds``: each trust's HL7 feeds with their last message, last hour's rate and error rate, dead
  letters waiting, usual gap and whether they have gone quiet (:mod:`priorscan.feed_health`); quiet feeds first.

It also installs the middleware every HTTP request goes through: a request id (the client's ``X-Request-ID`` when
well formed, else a new one, echoed in the response) bound to the request's log lines and audit events; the
request counted and timed by route template; and the access log line (method, path without the query string,
status, duration).
"""

from __future__ import annotations

import logging
import re
import time
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.http.deps import ContextDep, SessionDep, require
from mpi import is_valid_nhs_number
from priorscan import metrics
from priorscan.feed_health import feed_statuses, roll_up
from priorscan.logs import correlated, request_id

OPERATIONS = "priorscan/operations"
access_log = logging.getLogger("priorscan.access")

router = APIRouter(tags=["operations"])


@router.get("/metrics", dependencies=[Depends(require(OPERATIONS))], response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus exposition format"}})
def prometheus_metrics(ctx: ContextDep) -> Response:
    body, content_type = metrics.exposition(ctx.engine, ctx.trusts)
    return Response(content=body, media_type=content_type)


class FeedOut(BaseModel):
    feed: str
    channel: str
    trust: str | None
    sendingFacility: str
    sendingApplication: str
    family: str
    lastMessageAt: datetime | None
    messagesLastHour: int
    rejectedLastHour: int
    errorRateLastHour: float | None
    usualGapSeconds: float | None
    quiet: bool
    quietForSeconds: float | None
    deadLettersWaiting: int
    notes: list[str]


class FeedsOut(BaseModel):
    feeds: list[FeedOut]
    quiet: int


@router.get("/api/v1/feeds", response_model=FeedsOut, dependencies=[Depends(require(OPERATIONS))])
def feeds(ctx: ContextDep, session: SessionDep) -> FeedsOut:
    roll_up(ctx.sessions)
    statuses = feed_statuses(session, ctx.trusts)
    out = [FeedOut(feed=s.feed, channel=s.channel, trust=s.trust, sendingFacility=s.sending_facility,
                   sendingApplication=s.sending_application, family=s.family, lastMessageAt=s.last_message_at,
                   messagesLastHour=s.messages_last_hour, rejectedLastHour=s.rejected_last_hour,
                   errorRateLastHour=s.error_rate_last_hour, usualGapSeconds=s.usual_gap_s, quiet=s.quiet,
                   quietForSeconds=s.quiet_for_s, deadLettersWaiting=s.dead_letters_waiting, notes=s.notes)
           for s in statuses]
    return FeedsOut(feeds=out, quiet=sum(1 for s in statuses if s.quiet))


class RequestObservation:
    """Bind a request id for the request's log lines and audit events, echo it, and count and time the request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                offered = value.decode("latin-1")
                break
        rid = request_id(offered)
        status_code = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = int(message["status"])
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())]}
            await send(message)

        with correlated(request_id=rid):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - started
                route = _route_template(scope)
                observed = metrics.instruments()
                method = str(scope.get("method", "-"))
                observed.http_requests.labels(method, route, str(status_code)).inc()
                observed.http_seconds.labels(method, route).observe(elapsed)
                # the path, never the query string (a FHIR search may carry an NHS number); its control characters
                # escaped: a CR or LF sent as %0d%0a in an id would otherwise write a forged line in a text log
                path = logged_path(str(scope.get("path", "-")))
                if not path.isprintable():
                    path = path.encode("unicode_escape").decode("ascii")
                access_log.info("%s %s %d %.0fms", method, path, status_code, elapsed * 1000)


#: Ten digits, written together or 3 3 4 with spaces or hyphens, not inside a longer run of digits.
_TEN_DIGITS = re.compile(r"(?<![0-9])[0-9]{3}[ -]?[0-9]{3}[ -]?[0-9]{4}(?![0-9])")
NHS_NUMBER_MARK = "[nhs-number]"


def logged_path(path: str) -> str:
    """``path`` as the access log writes it: a valid NHS number in it (a FHIR client whose logical ids are NHS
    numbers, ``GET /fhir/Patient/9434765919``) replaced by :data:`NHS_NUMBER_MARK` (hazard log H-SEC-08); other
    digits (study UIDs, regional ids) kept for the reader of the log."""
    return _TEN_DIGITS.sub(lambda found: NHS_NUMBER_MARK if is_valid_nhs_number(re.sub(r"[ -]", "", found.group()))
                           else found.group(), path)


def _route_template(scope: Scope) -> str:
    """The matched route's path template (never the path itself, which may hold an identifier)."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


def install(app: FastAPI) -> None:
    app.add_middleware(RequestObservation)
