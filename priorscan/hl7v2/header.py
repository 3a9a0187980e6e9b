"""The message header (MSH): who sent a message, what it is, how it wants to be acknowledged.

:func:`read_header` reads only the first segment, so that even a message the reader refuses can be acknowledged (its
MSH-10 echoed) and kept. Header values are kept as sent, except that a control character is written as its hex
escape (``\\X00\\``): they key the idempotency log and are echoed in the ACK, and neither may carry one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from priorscan.hl7v2.delimiters import CONTROL, Delimiters
from priorscan.hl7v2.errors import ErrorLocation, MessageError

if TYPE_CHECKING:
    from priorscan.hl7v2.er7 import Segment

#: HL7 table 0155 (accept and application acknowledgement conditions).
ALWAYS, NEVER, ON_ERROR, ON_SUCCESS = "AL", "NE", "ER", "SU"


@dataclass(frozen=True)
class MessageHeader:
    """The MSH fields that route, identify and acknowledge a message (first components, as sent)."""

    sending_application: str  # MSH-3.1
    sending_facility: str  # MSH-4.1
    receiving_application: str  # MSH-5.1
    receiving_facility: str  # MSH-6.1
    message_type: str  # MSH-9.1, e.g. ADT
    trigger_event: str  # MSH-9.2, e.g. A08
    control_id: str  # MSH-10
    version: str  # MSH-12.1
    time: str = ""  # MSH-7.1, a TS/DTM as sent
    message_structure: str = ""  # MSH-9.3, e.g. ADT_A01
    processing_id: str = ""  # MSH-11 as sent (P, T, D; with its mode component)
    accept_ack_type: str = ""  # MSH-15
    application_ack_type: str = ""  # MSH-16
    charset: str = ""  # MSH-18.1
    field_separator: str = "|"
    encoding_characters: str = "^~\\&"

    @property
    def event(self) -> str:
        """``ADT^A08`` (always written with ``^``: a name, not ER7)."""
        return f"{self.message_type}^{self.trigger_event}"

    @property
    def delimiters(self) -> Delimiters:
        return Delimiters.of(self.field_separator, self.encoding_characters)

    @property
    def enhanced_acknowledgement(self) -> bool:
        """Whether the sender asked for enhanced acknowledgement (MSH-15 or MSH-16 valued); else original mode."""
        return bool(self.accept_ack_type or self.application_ack_type)

    @property
    def processing(self) -> str:
        """MSH-11.1: P (production), T (training), D (debugging)."""
        return self.processing_id.split(self.encoding_characters[:1] or "^", 1)[0].strip().upper()


def _clean(value: str, d: Delimiters) -> str:
    """A header value with any control character written as its hex escape."""
    if CONTROL.search(value) is None:
        return value
    return CONTROL.sub(lambda m: f"{d.escape}X{ord(m[0]):02X}{d.escape}", value)


def header_from_fields(fields: tuple[str, ...] | list[str], d: Delimiters) -> MessageHeader:
    """The header of an MSH whose ``fields[n]`` is MSH-n."""

    clean = CONTROL.search("".join(fields)) is None  # one search of the segment, not one of each field read

    def field(n: int) -> str:
        if n >= len(fields):
            return ""
        return fields[n] if clean else _clean(fields[n], d)

    def first(n: int) -> str:
        return field(n).split(d.component, 1)[0].split(d.subcomponent, 1)[0].strip()

    kind = field(9).split(d.component)
    return MessageHeader(
        sending_application=first(3), sending_facility=first(4), receiving_application=first(5),
        receiving_facility=first(6),
        message_type=kind[0].strip().upper() if kind else "",
        trigger_event=kind[1].strip().upper() if len(kind) > 1 else "",
        message_structure=kind[2].strip().upper() if len(kind) > 2 else "",
        control_id=field(10).strip(), version=first(12), time=first(7), processing_id=field(11).strip(),
        accept_ack_type=field(15).strip().upper(), application_ack_type=field(16).strip().upper(),
        charset=field(18).split(d.repetition, 1)[0].strip(),
        field_separator=d.field, encoding_characters=d.encoding_characters)


def header_of(msh: Segment) -> MessageHeader:
    """The header of a message's MSH segment."""
    return header_from_fields(msh.fields, msh.delimiters)


def read_header(raw: str) -> MessageHeader:
    """Read the MSH of ``raw`` alone (framing, a byte-order mark and leading blank lines allowed).

    Raises
    ------
    MessageError
        ``hl7.no-msh`` when the text does not start with an MSH segment, ``hl7.parse`` when its delimiters are not
        usable.
    """
    text = raw.lstrip("\x0b\x1c\r\n \t\ufeff")
    if not text.startswith("MSH") or len(text) < 8:
        raise MessageError("message does not start with an MSH segment", code="hl7.no-msh",
                           location=ErrorLocation("MSH", 1))
    line = text[:min((i for i in (text.find("\r"), text.find("\n")) if i >= 0), default=len(text))]
    sep = line[3]
    d = Delimiters.of(sep, line[4:].split(sep, 1)[0])
    parts = line.split(sep)
    return header_from_fields(["MSH", sep, *parts[1:]], d)


__all__ = ["ALWAYS", "NEVER", "ON_ERROR", "ON_SUCCESS", "MessageHeader", "header_from_fields", "header_of",
           "read_header"]
