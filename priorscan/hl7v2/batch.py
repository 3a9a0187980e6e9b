"""HL7 v2 batches (v2.5.1 ch. 2.10.3): messages between FHS/BHS headers and BTS/FTS trailers, and their answer.

An interface engine may send a batch (``[FHS] BHS {MSH ...} BTS [FTS]``) as the content of one MLLP frame, as the HL7
transport specification allows. :func:`split_batch` cuts its bytes into messages at each MSH, so that each message
is decoded by its own MSH-18 and handled exactly as if it had come alone (refused, dead-lettered, applied, repeated);
segments before the first MSH other than the batch's own are kept apart (:attr:`Batch.stray`), to be refused rather
than lost. :func:`batch_acknowledgement` answers with one batch of acknowledgements (ch. 2.10.3.3: every message's
ACKs in order): FHS and FTS when the sender's had a file header, BHS and BTS always, FHS-12 and BHS-12 naming the
sender's file and batch control IDs (FHS-11, BHS-11), BTS-1 the number of ACK messages in it.

Pure: bytes in, text out.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from priorscan.hl7v2.datatypes import format_timestamp
from priorscan.hl7v2.delimiters import STANDARD

FILE_HEADER, BATCH_HEADER, BATCH_TRAILER, FILE_TRAILER = b"FHS", b"BHS", b"BTS", b"FTS"
BATCH_SEGMENTS = (FILE_HEADER, BATCH_HEADER, BATCH_TRAILER, FILE_TRAILER)
_SEGMENT_END = re.compile(rb"\r\n|\r|\n")
_LEADING = b"\x0b\r\n \t\xef\xbb\xbf"


def _kind(segment: bytes) -> bytes:
    """A segment's name when it is followed by a field separator (not a letter or digit), else ``b""``."""
    return segment[:3] if len(segment) > 3 and not segment[3:4].isalnum() else b""


def is_batch(payload: bytes) -> bool:
    """Whether ``payload`` begins with a file or batch header (FHS, BHS) rather than a message's MSH."""
    return _kind(payload.lstrip(_LEADING)[:4]) in (FILE_HEADER, BATCH_HEADER)


@dataclass(frozen=True)
class Batch:
    """A batch cut into its parts: its headers as sent, its messages' bytes (CR segment ends), stray segments."""

    file_header: bytes | None = None
    batch_header: bytes | None = None
    messages: list[bytes] = field(default_factory=list)
    #: runs of segments outside any message (before the first MSH), other than the batch's own headers and trailers
    stray: list[bytes] = field(default_factory=list)


def split_batch(payload: bytes) -> Batch:
    """The parts of a batch's bytes; any segment ends (CR, LF, CR LF). The first FHS and the first BHS are kept as
    the headers the answer refers to (a file of several batches is answered as one batch)."""
    file_header: bytes | None = None
    batch_header: bytes | None = None
    messages: list[list[bytes]] = []
    stray: list[list[bytes]] = []
    current: list[bytes] | None = None  # the message (or run of stray segments) segments are added to
    for raw in _SEGMENT_END.split(payload.lstrip(_LEADING)):
        segment = raw.strip(b" \t\x00")
        if not segment:
            continue
        kind = _kind(segment)
        if kind == b"MSH":
            current = [segment]
            messages.append(current)
        elif kind in BATCH_SEGMENTS:
            if kind == FILE_HEADER and file_header is None:
                file_header = segment
            elif kind == BATCH_HEADER and batch_header is None:
                batch_header = segment
            current = None  # a header or trailer ends what came before it
        elif current is not None:
            current.append(segment)
        else:
            current = [segment]
            stray.append(current)
    return Batch(
        file_header, batch_header, [b"\r".join(m) + b"\r" for m in messages], [b"\r".join(s) + b"\r" for s in stray]
    )


def _answer_header(header: bytes, now: datetime) -> tuple[str, str]:
    """The FHS or BHS answering ``header`` (from PRIORSCAN to its sender, field 12 naming its field 11) and the field
    separator it is written with: the sender's delimiters when they are usable, else the standard ones (and then
    nothing of the sender's header is echoed)."""
    text = header.decode("utf-8", errors="replace")
    name, separator = text[:3], text[3:4]
    fields = text.split(separator)
    encoding = fields[1] if len(fields) > 1 else ""
    delimiters = separator + encoding
    usable = (
        2 <= len(encoding) <= 5
        and len(set(delimiters)) == len(delimiters)
        and delimiters.isprintable()
        and not any(c.isalnum() or c.isspace() for c in delimiters)
    )
    if not usable:
        separator, encoding, fields = STANDARD.field, STANDARD.encoding_characters, [name]

    def sent(number: int) -> str:  # the sender's field ``number`` (field 1 is the separator itself)
        return fields[number - 1] if 1 < number <= len(fields) else ""

    answer = [
        name,
        encoding,
        "PRIORSCAN",
        "REGION",
        sent(3),
        sent(4),
        format_timestamp(now.astimezone(UTC)),
        "",
        "",
        "",
        "B" + uuid.uuid4().hex[:19],
        sent(11),
    ]
    return separator.join(answer), separator


def batch_acknowledgement(batch: Batch, acks: list[str], *, now: datetime | None = None) -> str:
    """One batch holding ``acks`` (each a whole ACK message) in order, answering ``batch``."""
    moment = now or datetime.now(UTC)
    segments = []
    if batch.file_header is not None:
        segments.append(_answer_header(batch.file_header, moment)[0])
    header, separator = _answer_header(batch.batch_header or b"BHS|^~\\&", moment)
    segments.append(header)
    segments.extend(ack.rstrip("\r") for ack in acks)
    segments.append(separator.join(["BTS", str(len(acks))]))
    if batch.file_header is not None:
        segments.append(separator.join(["FTS", "1"]))
    return "\r".join(segments) + "\r"


__all__ = ["BATCH_SEGMENTS", "Batch", "batch_acknowledgement", "is_batch", "split_batch"]
