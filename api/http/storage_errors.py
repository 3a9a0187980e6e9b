"""What the HTTP API answers when the database refuses a value or is away, instead of a 500.

- A value the database cannot store (``sqlalchemy.exc.DataError``: a NUL character in text on PostgreSQL, a number
  out of range) is the client's input: **422**, naming no value.
- The database unreachable, restarting or out of connections (``OperationalError``, ``InterfaceError``,
  ``DisconnectionError``, the pool's ``TimeoutError``) is **503** with ``Retry-After``; the pool replaces its broken
  connections, so service resumes when the database does, without a restart.

Both answer an OperationOutcome under ``/fhir``. The log line names the error class only: SQL parameters (names, NHS
numbers) never reach the log (the engine hides them too, :func:`priorscan.db.make_engine`).
"""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request, Response
from sqlalchemy.exc import DataError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError)


def _answer(request: Request, status_code: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    path = request.url.path
    if path == "/fhir" or path.startswith(("/fhir/", "/.well-known/smart")):
        issue = "transient" if status_code == 503 else "invalid"
        body: object = {"resourceType": "OperationOutcome", "issue": [{
            "severity": "fatal" if status_code == 503 else "error", "code": issue, "diagnostics": detail}]}
        media = "application/fhir+json"
    else:
        body, media = {"detail": detail}, "application/json"
    return Response(json.dumps(body), status_code=status_code, headers=headers, media_type=media)


async def on_data_error(request: Request, exc: Exception) -> Response:
    log.info("a value the database cannot store was refused (%s)", type(getattr(exc, "orig", exc)).__name__)
    return _answer(request, 422, "a value cannot be stored (a NUL character, or a number out of range)")


async def on_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("the database is unavailable (%s): answered 503", type(getattr(exc, "orig", exc)).__name__)
    return _answer(request, 503, "the database is unavailable; try again shortly",
                   {"Retry-After": str(RETRY_AFTER_S)})


def install(app: FastAPI) -> None:
    """Register the handlers (more specific than any ``Exception`` handler, so they win wherever they apply)."""
    app.add_exception_handler(DataError, on_data_error)
    for kind in UNAVAILABLE:
        app.add_exception_handler(kind, on_unavailable)
