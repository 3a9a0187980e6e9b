"""Acknowledgements: the ACK messages a message gets, written in its own encoding and version.

An ACK echoes the message's delimiters (MSH-1, MSH-2), processing id (MSH-11), version (MSH-12) and character set
(MSH-18), and MSH-10 in MSA-2. Its own time carries an offset. The error segment follows the message's version:

- v2.3 to v2.4: ``ERR-1`` (ELD) ``segment^sequence^field^code&text&HL70357``;
- v2.5 and later: ``ERR-2`` location (ERL: ``segment^sequence^field^repetition^component^sub-component``),
  ``ERR-3`` the HL7 error code (table 0357), ``ERR-4`` severity, ``ERR-5`` priorscan's own error code and ``ERR-8``
  the reason, for people.

Acknowledgement modes (HL7 v2.5 section 2.9): with MSH-15 and MSH-16 both empty (*original mode*) a message gets one
ACK, AA, AE or AR, after the work is committed. Otherwise (*enhanced mode*) it gets an accept acknowledgement
(CA: committed to safe storage; CE: it could not be, send again; CR: refused for its type, event, version,
processing id or sender) when MSH-15 asks for one, then, if it was accepted, an application acknowledgement (AA,
AE, AR) when MSH-16 asks for one: AL always, NE never, ER only after an error, SU only after success; a condition
left empty while the other is valued counts as AL. A refused message is kept as a dead letter, so a refusal at the
application level is committed too (CA, then AE or AR).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from priorscan.hl7v2.datatypes import format_timestamp
from priorscan.hl7v2.delimiters import STANDARD, Delimiters
from priorscan.hl7v2.errors import ErrorLocation
from priorscan.hl7v2.header import ALWAYS, NEVER, ON_ERROR, ON_SUCCESS, MessageHeader
from priorscan.hl7v2.tables import ERROR_TEXT

ACCEPTED, ERROR, REJECTED = "AA", "AE", "AR"
COMMIT_ACCEPT, COMMIT_ERROR, COMMIT_REJECT = "CA", "CE", "CR"
#: The coding system of priorscan's own error codes in ERR-5 (HL7 local coding systems start with 99).
LOCAL_CODES = "99PRIORSCAN"
_TEXT_LIMIT = 500


@dataclass(frozen=True)
class AckError:
    """What an ERR segment says: the HL7 error code (table 0357), where, how severe, and priorscan's own code."""

    hl7_code: str = "207"
    location: ErrorLocation | None = None
    severity: str = "E"  # E error, W warning, I information
    application_code: str = ""


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split("."))
    except ValueError:
        return ()


def _err(d: Delimiters, version: str, error: AckError, text: str) -> str:
    described = ERROR_TEXT.get(error.hl7_code, "Error")
    number = _version(version)
    if number and number < (2, 5):  # ERR-1 ELD: the location's first three parts and a CE in sub-components
        where = error.location
        place = [where.segment, str(where.sequence), str(where.field or "")] if where else ["", "", ""]
        code = d.subcomponent.join([error.hl7_code, described, "HL70357"])
        return d.field.join(["ERR", d.component.join([*place, code])])
    location = error.location.erl(d.component) if error.location else ""
    application = d.component.join([d.escape_text(error.application_code), "", LOCAL_CODES]) \
        if error.application_code else ""
    return d.field.join(["ERR", "", location, d.component.join([error.hl7_code, described, "HL70357"]),
                         error.severity, application, "", "", d.escape_text(text[:_TEXT_LIMIT])])


def build_ack(header: MessageHeader | None, code: str, *, text: str = "", error: AckError | None = None,
              now: datetime | None = None) -> str:
    """One ACK for ``header`` (None when the message's MSH could not be read).

    Parameters
    ----------
    code
        MSA-1: AA, AE, AR (original mode and application acknowledgements), CA, CE, CR (accept acknowledgements).
    text
        MSA-3 (and ERR-8 from v2.5): the reason, naming fields not values.
    error
        The ERR segment's content; none is written for AA and CA.
    """
    d = STANDARD
    if header is not None:
        try:
            d = header.delimiters
        except ValueError:  # pragma: no cover - a header is only built from usable delimiters
            d = STANDARD
    echo: Callable[[str], str] = str
    if not (d.field + d.encoding_characters).isprintable():
        # a NUL or another control character as a delimiter (the message is refused for it): an ACK written in it
        # would hold control characters an engine may not read, so it is written in the standard ones, and what it
        # echoes of the message escaped in them
        d, echo = STANDARD, STANDARD.escape_text
    version = header.version if header and header.version else "2.4"
    trigger = echo(header.trigger_event) if header else ""
    if trigger and _version(version)[:2] == (2, 3) and version != "2.3.1":
        kind = d.component.join(["ACK", trigger])
    else:
        kind = d.component.join(["ACK", trigger, "ACK"]) if trigger else "ACK"
    stamp = format_timestamp((now or datetime.now(UTC)).astimezone(UTC))
    msh = ["MSH", d.encoding_characters, "PRIORSCAN", "REGION", echo(header.sending_application) if header else "",
           echo(header.sending_facility) if header else "", stamp, "", kind, "A" + uuid.uuid4().hex[:19],
           (header.processing_id if header and header.processing_id else "P"), version]
    if header is not None and header.charset:
        msh += ["", "", "", "", "", header.charset]
    msa = ["MSA", code, echo(header.control_id) if header else ""]
    if text:
        msa.append(d.escape_text(text[:200]))
    segments = [d.field.join(msh), d.field.join(msa)]
    if code not in (ACCEPTED, COMMIT_ACCEPT):
        segments.append(_err(d, version, error or AckError(), text))
    return "\r".join(segments) + "\r"


def _wanted(condition: str, success: bool) -> bool:
    if condition == NEVER:
        return False
    if condition == ON_ERROR:
        return not success
    if condition == ON_SUCCESS:
        return success
    return True  # AL, empty beside a valued other, or a value HL7 does not define


def acknowledgements(header: MessageHeader | None, code: str, *, text: str = "", error: AckError | None = None,
                     accept: str | None = None, now: datetime | None = None) -> list[str]:
    """Every ACK a message gets, in the order to send them (none, one or two).

    Parameters
    ----------
    header
        The message's MSH (None when unreadable: one ACK, original mode).
    code
        The outcome as an original-mode code: AA (applied), AE (understood, not applied), AR (refused as a whole).
    accept
        In enhanced mode, the accept code (CA, CE, CR); by default CA after AA or AE, CR after AR.
    """
    if header is None or not header.enhanced_acknowledgement:
        return [build_ack(header, code, text=text, error=error, now=now)]
    accept = accept or (COMMIT_REJECT if code == REJECTED else COMMIT_ACCEPT)
    acks = []
    if _wanted(header.accept_ack_type or ALWAYS, accept == COMMIT_ACCEPT):
        acks.append(build_ack(header, accept, text="" if accept == COMMIT_ACCEPT else text,
                              error=None if accept == COMMIT_ACCEPT else error, now=now))
    if accept == COMMIT_ACCEPT and _wanted(header.application_ack_type or ALWAYS, code == ACCEPTED):
        acks.append(build_ack(header, code, text=text, error=error, now=now))
    return acks


__all__ = ["ACCEPTED", "COMMIT_ACCEPT", "COMMIT_ERROR", "COMMIT_REJECT", "ERROR", "LOCAL_CODES", "REJECTED",
           "AckError", "acknowledgements", "build_ack"]
