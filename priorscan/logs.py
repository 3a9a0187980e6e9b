"""Logs as one JSON object per line (structlog over the standard library's logging), each carrying the ids that
tie it to what it is about.

- ``request_id``: one HTTP request. Taken from the client's ``X-Request-ID`` when it is a plain token (letters,
  digits, ``-._``, at most 64), otherwise made here; echoed in the response's ``X-Request-ID``.
- ``message_id``: one HL7 message, ``<MSH-4>|<MSH-10>`` (the sending facility and the control id that the ACK's
  MSA-2 echoes).

Both are bound in context variables (:func:`correlated`), added to every log line written while they are bound,
and written into the detail of every audit event recorded meanwhile (:func:`correlation`), so that an ACK, its
audit rows and its log lines can be found from one another. Log lines never carry names, NHS numbers, hospital
numbers or tokens: code logs what happened and which field, never what a field held; the SQL parameters of the
database drivers are never logged (their loggers are held at WARNING).
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog

#: Loggers that would print SQL parameters (names, NHS numbers) at INFO or DEBUG: never below WARNING.
QUIET_LOGGERS = ("sqlalchemy", "sqlalchemy.engine", "sqlalchemy.pool", "psycopg", "alembic", "httpx", "httpcore",
                 "pynetdicom", "multipart")
#: Loggers whose warnings quote the values they read (pydicom: "Invalid value for VR LO: '<a patient ID>'"): errors
#: only.
SILENT_LOGGERS = ("pydicom",)
_TOKEN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
CORRELATION_KEYS = ("request_id", "message_id")


def configure(level: str = "INFO", fmt: str = "json", stream: Any = None) -> None:
    """Send every log record (priorscan's and the libraries') to ``stream`` (standard error as it is at each
    record, when None) as JSON (``fmt="json"``) or as readable text (``"text"``), with the bound ids and ISO
    timestamps in UTC. Calling it again replaces its own handler only."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (structlog.processors.JSONRenderer() if fmt == "json"
                     else structlog.dev.ConsoleRenderer(colors=False))
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, redact_database_values, renderer])
    handler: logging.Handler = logging.StreamHandler(stream) if stream is not None else _StandardError()
    handler.setFormatter(formatter)
    setattr(handler, _OURS, True)
    root = logging.getLogger()
    for old in list(root.handlers):  # ours from an earlier call; others' handlers (a test's capture) stay
        if getattr(old, _OURS, False):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger(name).level))
    for name in SILENT_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.ERROR, logging.getLogger(name).level))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


_OURS = "_priorscan_handler"

#: What a database error's text may quote of a row: PostgreSQL's ``DETAIL: Key (columns)=(values)`` and
#: ``Failing row contains (...)``, SQLAlchemy's ``[parameters: ...]`` (hidden by the engine already).
_DATABASE_VALUES = (
    (re.compile(r"(Key \([^)]*\))=\((?:[^()]|\([^()]*\))*\)"), r"\1=(…)"),
    (re.compile(r"Failing row contains \((?:[^()]|\([^()]*\))*\)"), "Failing row contains (…)"),
    (re.compile(r"\[parameters: .*?\]\n?", re.DOTALL), "[parameters hidden]\n"),
)


def redact_database_values(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]
                           ) -> MutableMapping[str, Any]:
    """Blank the values a database error quotes (identifiers, names) in a log line and its traceback."""
    for key in ("event", "exception"):
        text = event_dict.get(key)
        if isinstance(text, str) and ("Key (" in text or "Failing row" in text or "[parameters:" in text):
            for pattern, replacement in _DATABASE_VALUES:
                text = pattern.sub(replacement, text)
            event_dict[key] = text
    return event_dict


class _StandardError(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is written (it may be replaced after configuration)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def request_id(offered: str | None) -> str:
    """The client's request id when it is a plain token, else a new one."""
    if offered and _TOKEN.match(offered):
        return offered
    return uuid.uuid4().hex


def message_id(sending_facility: str | None, control_id: str | None) -> str:
    """``<MSH-4>|<MSH-10>``, cut to plain characters (neither is patient data)."""
    def clean(part: str | None) -> str:
        return re.sub(r"[^A-Za-z0-9._^-]", "_", part or "")[:64]

    return f"{clean(sending_facility)}|{clean(control_id)}"


@contextmanager
def correlated(**ids: str) -> Iterator[None]:
    """Bind ``request_id`` and/or ``message_id`` for the log lines and audit events written inside."""
    tokens = structlog.contextvars.bind_contextvars(**ids)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def correlation() -> dict[str, str]:
    """The ids bound now (for an audit event's detail)."""
    bound = structlog.contextvars.get_contextvars()
    return {key: str(bound[key]) for key in CORRELATION_KEYS if bound.get(key)}


__all__ = ["configure", "correlated", "correlation", "message_id", "request_id"]
