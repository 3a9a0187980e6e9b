"""HL7 v2 wire format shared by every package's adapters: parsing with hl7apy, MSH fields, ACK building.

Parsing is lenient (PAS systems send Z-segments, versions 2.3 to 2.5.1, LF or CR segment ends); what enters the index
is validated by each adapter. Errors are translated into :class:`priorscan.errors.HL7Error`.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from hl7apy.core import Message
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message

from priorscan.errors import HL7Error

SUPPORTED_VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1")
_SEGMENT_SPLIT = re.compile(r"\r\n|\n|\r")


@dataclass(frozen=True)
class MessageHeader:
    """The MSH fields that route and identify a message."""

    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    message_type: str  # e.g. ADT
    trigger_event: str  # e.g. A08
    control_id: str
    version: str
    timestamp: datetime | None
    field_separator: str = "|"
    encoding_characters: str = "^~\\&"

    @property
    def event(self) -> str:
        return f"{self.message_type}^{self.trigger_event}"


def normalise_segments(raw: str) -> str:
    """Strip MLLP framing and blank lines; join segments with CR as the standard requires."""
    text = raw.strip("\x0b\x1c\r\n \t\ufeff")
    segments = [s for s in _SEGMENT_SPLIT.split(text) if s.strip()]
    return "\r".join(segments)


def read_header(raw: str) -> MessageHeader:
    """Read MSH by hand, so that even a message hl7apy refuses can be acknowledged and dead-lettered."""
    text = normalise_segments(raw)
    if not text.startswith("MSH") or len(text) < 8:
        raise HL7Error("message does not start with an MSH segment", code="hl7.no-msh")
    sep = text[3]
    enc = text[4:8].split(sep)[0]
    msh = text.split("\r", 1)[0].split(sep)
    comp = enc[0] if enc else "^"

    def field(n: int) -> str:  # MSH-n; MSH-1 is the separator itself
        idx = n - 1
        return msh[idx] if idx < len(msh) else ""

    msg_type = field(9).split(comp)
    version = field(12).split(comp)[0]
    return MessageHeader(
        sending_application=field(3).split(comp)[0],
        sending_facility=field(4).split(comp)[0],
        receiving_application=field(5).split(comp)[0],
        receiving_facility=field(6).split(comp)[0],
        message_type=msg_type[0] if msg_type else "",
        trigger_event=msg_type[1] if len(msg_type) > 1 else "",
        control_id=field(10),
        version=version,
        timestamp=parse_ts(field(7)),
        field_separator=sep,
        encoding_characters=enc or "^~\\&",
    )


def parse(raw: str) -> Message:
    """Parse a message with hl7apy, leniently (unknown segments and Z-segments allowed)."""
    text = normalise_segments(raw)
    header = read_header(text)
    if header.version and header.version not in SUPPORTED_VERSIONS:
        # hl7apy knows 2.2-2.8.2; treat unknown minor versions as the closest supported one.
        text = _with_version(text, header, "2.5")
    try:
        return parse_message(text, find_groups=False, validation_level=2)
    except (HL7apyException, ValueError, IndexError, KeyError) as exc:
        raise HL7Error(f"HL7 message could not be parsed ({type(exc).__name__})", code="hl7.parse") from exc


def _with_version(text: str, header: MessageHeader, version: str) -> str:
    sep = header.field_separator
    first, _, rest = text.partition("\r")
    parts = first.split(sep)
    if len(parts) > 11:
        parts[11] = version
    return sep.join(parts) + ("\r" + rest if rest else "")


def parse_ts(value: str | None) -> datetime | None:
    """An HL7 TS/DTM (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]) as a UTC datetime; None when empty or invalid."""
    if not value:
        return None
    value = value.split("^")[0].strip()
    m = re.fullmatch(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{4})?", value)
    if not m:
        return None
    y, mo, d, h, mi, s, tz = m.groups()
    try:
        dt = datetime(int(y), int(mo or 1), int(d or 1), int(h or 0), int(mi or 0), int(s or 0))
    except ValueError:
        return None
    if tz:
        from datetime import timedelta, timezone

        sign = 1 if tz[0] == "+" else -1
        offset = timezone(sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[3:5])))
        return dt.replace(tzinfo=offset).astimezone(UTC)
    return dt.replace(tzinfo=UTC)


def build_ack(header: MessageHeader | None, code: str, *, text: str = "", error_code: str = "207",
              error_location: str = "", severity: str = "E", now: datetime | None = None) -> str:
    """An ACK for ``header``: MSA-1 ``code`` (AA/AE/AR), MSA-2 echoing MSH-10; an ERR segment unless AA."""
    now = now or datetime.now(UTC)
    stamp = now.strftime("%Y%m%d%H%M%S")
    sep, enc = (header.field_separator, header.encoding_characters) if header else ("|", "^~\\&")
    version = header.version if header and header.version else "2.4"
    control = header.control_id if header else ""
    trigger = header.trigger_event if header else ""
    msh = sep.join(["MSH", enc, "PRIORSCAN", "REGION", header.sending_application if header else "",
                    header.sending_facility if header else "", stamp, "", f"ACK^{trigger}^ACK" if trigger else "ACK",
                    "A" + uuid.uuid4().hex[:19], "P", version])
    msa = sep.join(["MSA", code, control] + ([escape(text[:200], sep, enc)] if text else []))
    segments = [msh, msa]
    if code != "AA":
        # ERR-2 location, ERR-3 HL7 error code (table 0357), ERR-4 severity, ERR-8 user message (v2.5 layout)
        comp = enc[0]
        segments.append(sep.join(["ERR", "", error_location, f"{error_code}{comp}{_ERROR_TEXT.get(error_code, 'Error')}"
                                  f"{comp}HL70357", severity, "", "", "", escape(text[:500], sep, enc)]))
    return "\r".join(segments) + "\r"


_ERROR_TEXT = {"100": "Segment sequence error", "101": "Required field missing", "102": "Data type error",
               "103": "Table value not found", "200": "Unsupported message type", "201": "Unsupported event code",
               "203": "Unsupported version id", "204": "Unknown key identifier", "205": "Duplicate key identifier",
               "206": "Application record locked", "207": "Application internal error"}


def escape(value: str, sep: str = "|", enc: str = "^~\\&") -> str:
    """Escape HL7 delimiters in free text (\\F\\ \\S\\ \\R\\ \\E\\ \\T\\)."""
    esc = enc[2] if len(enc) > 2 else "\\"
    out = value.replace(esc, f"{esc}E{esc}")
    out = out.replace(sep, f"{esc}F{esc}")
    if enc:
        out = out.replace(enc[0], f"{esc}S{esc}")
    if len(enc) > 1:
        out = out.replace(enc[1], f"{esc}R{esc}")
    if len(enc) > 3:
        out = out.replace(enc[3], f"{esc}T{esc}")
    return out.replace("\r", " ").replace("\n", " ")
