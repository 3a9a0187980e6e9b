"""The bytes of an HL7 v2 message as text: the character set MSH-18 names (HL7 table 0211), or the feeds' default.

Every way a message arrives (MLLP, ``POST /hl7``, ``priorscan ingest`` and the bulk load) reads its bytes here, so
that a name reaches the patient index as the sender wrote it, whichever door it came through.

- MSH-18 names a set of table 0211 (``8859/1`` to ``8859/9``, ``8859/15``, ``UNICODE UTF-8``, ``ISO IR87`` and
  the other Japanese sets, ``GB 18030-2000``, ``KS X 1001``, ``BIG-5``), an ISO 8859 part by its ISO-IR number as
  DICOM writes it (``ISO IR126``, ``ISO_IR 144``), or a name Python's codecs know (``ISO-8859-2``,
  ``windows-1250``): the bytes are read in it. A repetition after the first (``ISO IR6~ISO IR87``)
  names the sets that escape sequences switch to; the Japanese ones are read with ISO 2022-JP-2, which follows them.
- MSH-18 is empty, or names ASCII (``ASCII``, ``ISO IR6``): UTF-8, else Windows-1252 (what UK PAS feeds send
  without saying so), else ISO 8859-1. Each is tried strictly, so a byte sequence is never half read.
- MSH-18 names a set priorscan does not read (``CNS 11643-1992``, UTF-16), or the bytes are not text in the set
  it names: the message is not read. :attr:`DecodedMessage.problem` says why, and :attr:`DecodedMessage.text` holds
  the bytes as ISO 8859-1, which maps every byte to one character, so the dead letter keeps them all. Reading the
  bytes in another set would put wrong letters in a patient's name (an ISO 8859-7 ``Δ`` read as ISO 8859-1 is
  ``Ä``), and the record would then fail to match the same person sent correctly by another trust.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

#: Error code of a message whose bytes cannot be read as text (its refusal: AR, HL7 error 103, table value).
CHARSET_ERROR = "hl7.charset"

#: HL7 table 0211 (and the spellings senders use for the same sets) to Python codecs. ``None``: the feeds' default.
_TABLE_0211: dict[str, str | None] = {
    "": None, "ASCII": None, "ISO IR6": None, "ISO-IR6": None, "US-ASCII": None,
    **{f"8859/{n}": f"iso8859-{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 15)},
    "LATIN1": "iso8859-1",
    # the ISO-IR numbers of the ISO 8859 parts, as DICOM's Specific Character Set and RIS bridges write them
    **{f"{prefix}{number}": codec for number, codec in (
        (100, "iso8859-1"), (101, "iso8859-2"), (109, "iso8859-3"), (110, "iso8859-4"), (144, "iso8859-5"),
        (127, "iso8859-6"), (126, "iso8859-7"), (138, "iso8859-8"), (148, "iso8859-9"), (203, "iso8859-15"),
        (166, "tis-620")) for prefix in ("ISO IR", "ISO_IR ", "ISO-IR ", "ISO-IR")},
    "ISO IR14": "iso2022_jp_2", "ISO IR87": "iso2022_jp_2", "ISO IR159": "iso2022_jp_2",
    "UNICODE": "utf-8", "UNICODE UTF-8": "utf-8", "UTF-8": "utf-8", "UTF8": "utf-8", "ISO_IR 192": "utf-8",
    "GB 18030-2000": "gb18030", "KS X 1001": "euc_kr", "BIG-5": "big5",
}
#: Sets HL7 names that Python cannot read, or that the MSH itself would not survive (two or four bytes a character).
_UNREADABLE = frozenset({"CNS 11643-1992", "UNICODE UTF-16", "UNICODE UTF-32"})
_JAPANESE = frozenset({"ISO IR14", "ISO IR87", "ISO IR159"})
_DEFAULTS = ("utf-8", "cp1252")
_LOSSLESS = "latin-1"


@dataclass(frozen=True)
class DecodedMessage:
    """A message's text, the codec it was read with (its ACK is written with the same), and why it could not be
    read, if it could not (then ``text`` holds the bytes as ISO 8859-1)."""

    text: str
    encoding: str
    problem: str | None = None


def declared_charset(payload: bytes) -> list[str]:
    """The repetitions of MSH-18, upper-cased and stripped (``[]`` when there is no MSH or no MSH-18)."""
    first = payload.lstrip(b"\x0b\r\n \t\xef\xbb\xbf")[:2048].split(b"\r", 1)[0].split(b"\n", 1)[0]
    if not first.startswith(b"MSH") or len(first) < 5:
        return []
    fields = first.split(first[3:4])
    if len(fields) <= 17:
        return []
    repetition = fields[1][1:2] or b"~"
    names = [part.decode("ascii", "replace").strip().upper() for part in fields[17].split(repetition)]
    return [name for name in names if name]


def codec_of(names: list[str]) -> str | None:
    """The Python codec of MSH-18's repetitions; ``None`` for the feeds' default. Raises ``LookupError`` for a set
    that is not read."""
    if not names:
        return None
    if any(name in _JAPANESE for name in names):
        return "iso2022_jp_2"
    first = names[0]
    if first in _UNREADABLE:
        raise LookupError(first)
    if first in _TABLE_0211:
        codec = _TABLE_0211[first]
        if codec is None and len(names) > 1:  # ASCII first, the set the escapes switch to after it
            return codec_of(names[1:])
        return codec
    return codecs.lookup(first).name  # a codec's own name (ISO-8859-2, windows-1250); LookupError otherwise


def decode_message(payload: bytes) -> DecodedMessage:
    """The text of one message's bytes, read in the set its MSH-18 names (see the module's description)."""
    names = declared_charset(payload)
    try:
        codec = codec_of(names)
    except LookupError:
        return DecodedMessage(payload.decode(_LOSSLESS), _LOSSLESS,
                              f"MSH-18 names a character set priorscan does not read ({names[0][:40]})")
    if codec is not None:
        try:
            return DecodedMessage(payload.decode(codec), codec)
        except UnicodeDecodeError as exc:
            return DecodedMessage(payload.decode(_LOSSLESS), _LOSSLESS,
                                  f"byte {exc.start} is not text in the character set MSH-18 names ({names[0][:40]})")
    for default in _DEFAULTS:
        try:
            return DecodedMessage(payload.decode(default), default)
        except UnicodeDecodeError:
            continue
    return DecodedMessage(payload.decode(_LOSSLESS), _LOSSLESS)
