"""ER7, HL7 v2's pipe-and-hat encoding: delimiters, escape sequences, segments, fields, repetitions, components.

The one reader of HL7 v2 text in priorscan. A message is split into segments (CR, LF or CRLF ends; MLLP framing and
blank lines dropped) and each segment into its fields; repetitions, components and sub-components are split when
they are read, and escape sequences are undone only in the leaf value, after splitting, as the standard requires.
Reading is lenient where real senders are sloppy (Z-segments, unknown segments, missing trailing fields) and strict
where a value could be silently wrong:

- the delimiters come from MSH-1 and MSH-2 and must be five (four, with ``&`` assumed) distinct non-alphanumeric
  characters;
- a control character (NUL, VT, FS, ...: anything below 0x20 but TAB, CR and LF, and DEL) anywhere in the text, or
  in the value of a hex escape (``\\X00\\``), refuses the message: it cannot be stored faithfully, and cutting the
  value at it (``7777\\x0008`` read as ``7777``) would name another patient;
- an escape whose bytes are not text in the message's character set (MSH-18), or that switches to a set not read,
  refuses the message (``hl7.escape``) when it is in a segment that names a patient (PID, MRG, PD1, NK1): a guessed
  letter in a name would name another person; elsewhere it is kept as sent;
- a second MSH refuses the message: one message is one message (a batch is split by whoever reads the file);
- no field may repeat more than ``max_repetitions`` times.

Escape sequences are those of :mod:`priorscan.hl7v2.delimiters`, hex escapes read in the set MSH-18 names.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo

from priorscan.hl7v2.charset import codec_of
from priorscan.hl7v2.datatypes import LOCAL_ZONE
from priorscan.hl7v2.delimiters import CONTROL, NULL, Delimiters, EscapeError
from priorscan.hl7v2.errors import ErrorLocation, MessageError
from priorscan.hl7v2.header import MessageHeader, header_of

#: Most repetitions of one field (PID-3 has a handful in real feeds; tens of thousands are an attack).
MAX_REPETITIONS = 100
_SEGMENT_END = re.compile(r"\r\n|\n|\r")


class Composite:
    """One repetition of a field: its components and their sub-components (1-based), as sent or unescaped."""

    __slots__ = ("_components", "delimiters", "raw")

    def __init__(self, raw: str, delimiters: Delimiters) -> None:
        self.raw = raw
        self.delimiters = delimiters
        self._components: list[str] | None = None

    def __repr__(self) -> str:
        return f"Composite({self.raw!r})"

    @property
    def is_empty(self) -> bool:
        """Nothing sent."""
        return not self.raw.strip()

    @property
    def is_null(self) -> bool:
        """Sent as the HL7 null ``""``: the value is to be deleted."""
        return self.raw.strip() == NULL

    def component(self, n: int, sub: int = 1) -> str:
        """Component ``n``, sub-component ``sub``, as sent (still escaped)."""
        parts = self._components
        if parts is None:
            parts = self._components = self.raw.split(self.delimiters.component)
        if n > len(parts):
            return ""
        part = parts[n - 1]
        if sub == 1 and self.delimiters.subcomponent not in part:
            return part
        subs = part.split(self.delimiters.subcomponent)
        return subs[sub - 1] if sub <= len(subs) else ""

    def text(self, n: int = 1, sub: int = 1) -> str:
        """Component ``n`` (sub-component ``sub``) unescaped and stripped; ``""`` when not sent, :data:`NULL` kept.

        :meth:`component` written out here: a reader asks ~45 leaves per ADT message, most of them not sent, and the
        call was a third of each ask."""
        parts = self._components
        delimiters = self.delimiters
        if parts is None:
            parts = self._components = self.raw.split(delimiters.component)
        if n > len(parts):
            return ""
        part = parts[n - 1]
        if not part:
            return ""
        if sub != 1 or delimiters.subcomponent in part:
            subs = part.split(delimiters.subcomponent)
            part = subs[sub - 1] if sub <= len(subs) else ""
            if not part:
                return ""
        return (delimiters.unescape(part) if delimiters.escape in part else part).strip()

    def value(self, n: int = 1, sub: int = 1) -> str | None:
        """Component ``n`` (sub-component ``sub``) unescaped; None when not sent or sent as :data:`NULL`."""
        value = self.text(n, sub)
        return value if value and value != NULL else None

    @property
    def components(self) -> int:
        """How many components were sent (trailing empty ones included)."""
        return self.raw.count(self.delimiters.component) + 1


class Segment:
    """One segment: ``fields[n]`` is SEG-n as sent (for MSH, ``fields[1]`` is the field separator itself)."""

    __slots__ = ("delimiters", "fields", "name", "sequence")

    def __init__(self, name: str, fields: tuple[str, ...], delimiters: Delimiters, sequence: int = 1) -> None:
        self.name = name
        self.fields = fields
        self.delimiters = delimiters
        self.sequence = sequence  # 1 for the first segment of its name in the message, 2 for the second ...

    def __repr__(self) -> str:
        return f"Segment({self.name}, {len(self.fields) - 1} fields)"

    def raw(self, n: int) -> str:
        """Field ``n`` as sent ("" when absent)."""
        return self.fields[n] if 0 < n < len(self.fields) else ""

    def repetitions(self, n: int) -> list[Composite]:
        """The repetitions of field ``n`` (empty ones included; none when the field is empty)."""
        raw = self.raw(n)
        if not raw:
            return []
        d = self.delimiters
        if self.name == "MSH" and n in (1, 2):
            return [Composite(raw, d)]
        return [Composite(r, d) for r in raw.split(d.repetition)]

    def composite(self, n: int, repetition: int = 1) -> Composite:
        """Repetition ``repetition`` (1-based) of field ``n`` (empty when absent)."""
        raw = self.raw(n)
        d = self.delimiters
        if repetition == 1 and d.repetition not in raw:
            return Composite(raw, d)
        reps = raw.split(d.repetition)
        return Composite(reps[repetition - 1] if repetition <= len(reps) else "", d)

    def text(self, n: int, component: int = 1, sub: int = 1, repetition: int = 1) -> str:
        """A leaf of field ``n`` unescaped and stripped ("" when not sent; :data:`NULL` kept)."""
        return self.composite(n, repetition).text(component, sub)

    def value(self, n: int, component: int = 1, sub: int = 1, repetition: int = 1) -> str | None:
        """A leaf of field ``n`` unescaped; None when not sent or sent as :data:`NULL`."""
        return self.composite(n, repetition).value(component, sub)

    def location(self, field: int | None = None, component: int | None = None) -> ErrorLocation:
        """Where field ``field`` (component ``component``) of this segment is, for an ERR segment."""
        return ErrorLocation(self.name, self.sequence, field, None, component)


def normalise_segments(raw: str) -> str:
    """The message with MLLP framing, a byte-order mark and blank lines stripped; segments joined by CR."""
    text = raw.strip("\x0b\x1c\r\n \t\ufeff")
    if "\n" not in text:
        return text if "\r\r" not in text else "\r".join(s for s in text.split("\r") if s.strip())
    return "\r".join(s for s in _SEGMENT_END.split(text) if s.strip())


def content_digest(raw: str) -> str:
    """A digest of what a message says, the same for a re-send of it: its segments normalised
    (:func:`normalise_segments`, trailing spaces of each dropped) and MSH-7, the time the message was made, left
    out (an interface engine re-sending a message may stamp it again). Two messages under one MSH-10 whose digests
    differ are two messages (a sender whose counter started again), not a re-send."""
    segments = [segment.rstrip() for segment in normalise_segments(raw).split("\r")]
    if segments and segments[0].startswith("MSH") and len(segments[0]) > 3:
        separator = segments[0][3]
        fields = segments[0].split(separator)
        if len(fields) > 6:
            fields[6] = ""  # MSH-7 (MSH-1 is the separator itself: field n is at index n - 1)
        segments[0] = separator.join(fields)
    return hashlib.sha256("\r".join(segments).encode("utf-8", "surrogatepass")).hexdigest()


def split_segments(text: str, delimiters: Delimiters) -> list[Segment]:
    """The segments of a normalised message (:func:`normalise_segments`), each numbered within its name."""
    seen: dict[str, int] = {}
    out: list[Segment] = []
    sep = delimiters.field
    for line in text.split("\r"):
        parts = line.split(sep)
        name = parts[0].strip().upper()
        fields = (name, sep, *parts[1:]) if name == "MSH" else (name, *parts[1:])
        number = seen[name] = seen.get(name, 0) + 1
        out.append(Segment(name, fields, delimiters, number))
    return out


def control_character_at(segments: list[Segment]) -> ErrorLocation | None:
    """Where the first control character is in the text; None when there is none."""
    for segment in segments:
        for n, raw in enumerate(segment.fields):
            if CONTROL.search(raw):
                return ErrorLocation(segment.name or "?", segment.sequence, n or None)
    return ErrorLocation("MSH", 1) if not segments else None


#: Segments that name a patient: an escape in them that cannot be read refuses the message; elsewhere (a report's
#: text, a Z-segment) it is kept as sent, which names no one wrongly.
IDENTITY_SEGMENTS = frozenset({"PID", "MRG", "PD1", "NK1"})


def unreadable_escape_at(segments: list[Segment]) -> tuple[ErrorLocation, EscapeError] | None:
    """The first escape that stands for a control character (any segment) or, in a segment that names a patient
    (:data:`IDENTITY_SEGMENTS`), for bytes that are not text in the message's set (:meth:`Delimiters.unescape` with
    ``strict``), where it is, and why; None when there is none."""
    for segment in segments:
        d = segment.delimiters
        marks = tuple(f"{d.escape}{kind}" for kind in "XCM")
        for n, raw in enumerate(segment.fields):
            if not any(mark in raw for mark in marks) or (segment.name == "MSH" and n <= 2):
                continue
            for repetition in raw.split(d.repetition):
                for component in repetition.split(d.component):
                    for leaf in component.split(d.subcomponent):
                        try:
                            d.unescape(leaf, strict=True)
                        except EscapeError as exc:
                            if exc.control or segment.name in IDENTITY_SEGMENTS:
                                return ErrorLocation(segment.name or "?", segment.sequence, n or None), exc
    return None


def _escape_codec(msh_line: str, delimiters: Delimiters) -> str | None:
    """The codec of MSH-18's repetitions, in which hex escapes are read (None: not declared, or not a set read)."""
    fields = msh_line.split(delimiters.field)
    if len(fields) <= 17:
        return None
    names = [name.strip().upper() for name in fields[17].split(delimiters.repetition) if name.strip()]
    try:
        return codec_of(names)
    except LookupError:  # decode_message refuses such a message before it is read
        return None


def has_control_characters(text: str) -> bool:
    """Whether ``text`` holds a control character other than TAB, CR and LF."""
    return CONTROL.search(text) is not None


@dataclass(frozen=True)
class Message:
    """One HL7 v2 message as read: its delimiters, header and segments, and the zone its local times are in."""

    text: str  # segments joined by CR, framing removed
    delimiters: Delimiters
    segments: tuple[Segment, ...]
    header: MessageHeader
    zone: ZoneInfo

    def segment(self, name: str) -> Segment | None:
        """The first segment called ``name``."""
        return next((s for s in self.segments if s.name == name), None)

    def all(self, name: str) -> list[Segment]:
        """Every segment called ``name``, in order."""
        return [s for s in self.segments if s.name == name]

    @property
    def z_segments(self) -> list[Segment]:
        """The locally defined segments (``Z..``)."""
        return [s for s in self.segments if s.name.startswith("Z")]


def parse_message(raw: str, *, zone: ZoneInfo | str | None = None,
                  max_repetitions: int = MAX_REPETITIONS) -> Message:
    """Read one HL7 v2 message.

    Parameters
    ----------
    raw
        The message: CR, LF or CRLF segment ends; MLLP framing allowed.
    zone
        The time zone of the sender's local time, in which timestamps without an offset are read (default
        :data:`priorscan.hl7v2.datatypes.LOCAL_ZONE`, Europe/London).
    max_repetitions
        Most repetitions of one field.

    Raises
    ------
    MessageError
        ``hl7.no-msh``, ``hl7.parse`` (delimiters, a second MSH), ``hl7.control-character``, ``hl7.escape`` or
        ``hl7.too-many-repetitions``, with the location and, when the MSH could be read, the header.
    """
    text = normalise_segments(raw)
    if not text.startswith("MSH") or len(text) < 8:
        raise MessageError("message does not start with an MSH segment", code="hl7.no-msh",
                           location=ErrorLocation("MSH", 1))
    first_end = text.find("\r")
    msh_line = text if first_end < 0 else text[:first_end]
    sep = msh_line[3]
    delimiters = Delimiters.of(sep, msh_line[4:].split(sep, 1)[0])
    codec = _escape_codec(msh_line, delimiters)
    if codec is not None:
        delimiters = replace(delimiters, charset=codec)
    segments = split_segments(text, delimiters)
    header = header_of(segments[0])
    if CONTROL.search(text):
        where = control_character_at(segments)
        if where is not None:
            raise MessageError(f"{where.label} holds a control character (NUL or another byte below 0x20)",
                               code="hl7.control-character", location=where, header=header)
    esc = delimiters.escape
    if f"{esc}X" in text or f"{esc}C" in text or f"{esc}M" in text:
        problem = unreadable_escape_at(segments)
        if problem is not None:
            where, exc = problem
            if exc.control:
                raise MessageError(f"{where.label} holds a control character (NUL or another byte below 0x20)",
                                   code="hl7.control-character", location=where, header=header)
            raise MessageError(f"{where.label} holds an escape sequence that is not text in the message's "
                               f"character set ({exc})", code="hl7.escape", location=where, header=header)
    extra = next((s for s in segments[1:] if s.name == "MSH"), None)
    if extra is not None:
        raise MessageError("the text holds more than one message (a second MSH segment): send one message at a time",
                           code="hl7.several-messages", location=ErrorLocation("MSH", extra.sequence), header=header)
    if text.count(delimiters.repetition) >= max_repetitions:
        for segment in segments:
            for n, field in enumerate(segment.fields[1:], 1):
                if field.count(delimiters.repetition) >= max_repetitions and not (segment.name == "MSH" and n <= 2):
                    raise MessageError(f"{segment.name}-{n} repeats more than {max_repetitions} times",
                                       code="hl7.too-many-repetitions", location=segment.location(n),
                                       header=header)
    local = zone if isinstance(zone, ZoneInfo) else ZoneInfo(zone) if zone else LOCAL_ZONE
    return Message(text, delimiters, tuple(segments), header, local)


__all__ = ["MAX_REPETITIONS", "Composite", "Message", "Segment", "control_character_at", "has_control_characters",
           "normalise_segments", "parse_message", "split_segments", "unreadable_escape_at"]
