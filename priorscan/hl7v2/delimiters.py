"""The delimiters of an HL7 v2 message (MSH-1, MSH-2) and its escape sequences, both ways.

Escape sequences (v2.3 to v2.8, ch. 2.7): ``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\`` (the delimiters), ``\\P\\`` (the
truncation character), ``\\.br\\`` and the other formatting commands (a space, or nothing for ``\\.fi\\ \\.nf\\``),
``\\H\\ \\N\\`` (highlighting) and ``\\Zxx\\`` (local) carry no text of their own. An escape character with no closing
one is kept as text. The others stand for bytes, read as the message's character set says:

- ``\\Xhh...\\``: bytes in the set MSH-18 names (:attr:`Delimiters.charset`; ``\\XE9\\`` is ``é`` in 8859/1 and ``ι``
  in 8859/7, ``\\XC3A9\\`` is ``é`` in UTF-8); without MSH-18, UTF-8, else Windows-1252, as the message's own bytes
  (:mod:`priorscan.hl7v2.charset`). Adjacent hex escapes are one run of bytes (``\\XC3\\\\XA9\\`` is ``é``).
- ``\\Cxxyy\\`` and ``\\Mxxyyzz\\`` (v2.5 2.7.4, for PN and XPN): the ISO 2022 escape ``ESC xx yy (zz)`` that switches
  the set of what follows in the value. The sets HL7 lists are read: ISO-IR 6 (``\\C2842\\``), JIS X 0201 Romaji
  and Katakana (``\\C284A\\ \\C2949\\``), JIS X 0208 and 0212 (``\\M2442\\ \\M2440\\ \\M242844\\``), whose bytes follow
  as 7-bit text, and the ISO 8859 upper halves (``\\C2D41\\`` ... ``\\C2D4D\\``), for bytes from 0xA0.

A value whose bytes are not text in the set they are in (``\\XE9\\`` in a UTF-8 message, ``\\M2442\\`` followed by
an odd number of bytes) or that switches to a set not listed is not read: :meth:`Delimiters.unescape` with
``strict`` raises :class:`EscapeError`, and :func:`priorscan.hl7v2.parse_message` refuses the message
(``hl7.escape``), because any guess would put other letters in a patient's name; without ``strict`` the escape is
kept as sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from priorscan.hl7v2.errors import ErrorLocation, MessageError

#: The HL7 null: a field or component sent as two double quotes deletes the value the receiver holds.
NULL = '""'
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FORMATTING = {".br": " ", ".sp": " ", ".in": " ", ".ti": " ", ".sk": " ", ".ce": " ", ".fi": "", ".nf": "",
               "H": "", "N": ""}
_HEX = re.compile(r"X(?:[0-9A-Fa-f]{2})+")
_SWITCH = re.compile(r"[CM][0-9A-Fa-f]{4,6}")
#: Without MSH-18: the codecs a message's bytes are read in, in order (as :mod:`priorscan.hl7v2.charset` does).
_DEFAULT_CODECS = ("utf-8", "cp1252")
_ASCII = b"\x1b(B"
#: ``\\C`` / ``\\M`` escapes (HL7 v2.5 2.7.4) of the 7-bit sets, as the ISO 2022 escape they stand for.
_G0_SETS = {"C2842": _ASCII, "C284A": b"\x1b(J", "C2949": b"\x1b(I", "M2442": b"\x1b$B", "M2440": b"\x1b$@",
            "M242844": b"\x1b$(D"}
#: ``\\C`` escapes of the ISO 8859 upper halves (G1), as the codec of the bytes from 0xA0.
_G1_SETS = {"C2D41": "iso8859-1", "C2D42": "iso8859-2", "C2D43": "iso8859-3", "C2D44": "iso8859-4",
            "C2D4C": "iso8859-5", "C2D47": "iso8859-6", "C2D46": "iso8859-7", "C2D48": "iso8859-8",
            "C2D4D": "iso8859-9"}


@dataclass(frozen=True, slots=True)
class _Switch:
    """A ``\\Cxxyy\\`` or ``\\Mxxyyzz\\`` escape (its code, upper case)."""

    code: str


class EscapeError(ValueError):
    """An escape sequence whose bytes are not text in their character set, or a switch to a set not read."""

    def __init__(self, reason: str, *, control: bool = False) -> None:
        super().__init__(reason)
        self.control = control  # the bytes are text, but a control character (NUL ...)


def hex_text(digits: str, charset: str | None = None) -> str:
    """The text of a hex escape's digits in ``charset`` (a Python codec; None: UTF-8, else Windows-1252).

    Raises
    ------
    EscapeError
        When the bytes are not text in that set.
    """
    return _bytes_text(bytes.fromhex(digits), charset)


def _bytes_text(raw: bytes, charset: str | None) -> str:
    for codec in (charset,) if charset else _DEFAULT_CODECS:
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            continue
    raise EscapeError(f"a hex escape's bytes are not text in {charset or 'UTF-8 or Windows-1252'}")


def _switched_text(pieces: list[bytes | _Switch], charset: str | None) -> str:
    """The text of a value that holds ``\\C``/``\\M`` switches: ``pieces`` are its bytes and switch codes in order."""
    g0, g1, out, run = _ASCII, charset, [], bytearray()

    def flush() -> None:
        if not run:
            return
        if g0 != _ASCII:  # a 7-bit ISO 2022 set: Python's ISO-2022-JP reader follows the escape
            if any(b >= 0x80 for b in run):
                raise EscapeError("bytes from 0x80 after a switch to a 7-bit set")
            try:
                out.append((g0 + bytes(run) + _ASCII).decode("iso2022_jp_ext"))
            except UnicodeDecodeError as exc:
                raise EscapeError("bytes that are not text in the set switched to") from exc
        else:
            for high, chunk in _runs(bytes(run)):
                out.append(_bytes_text(chunk, g1) if high else chunk.decode("ascii"))
        run.clear()

    for piece in pieces:
        if isinstance(piece, bytes):
            run.extend(piece)
            continue
        flush()
        code = piece.code
        if code in _G0_SETS:
            g0 = _G0_SETS[code]
        elif code in _G1_SETS:
            g1 = _G1_SETS[code]
        else:
            raise EscapeError("a switch to a character set priorscan does not read")
    flush()
    return "".join(out)


def _clean(text: str, strict: bool) -> str:
    """Text an escape stands for, with a control character refused (``strict``) or written as a space, as line ends
    and tabs are (a value is one line)."""
    if CONTROL.search(text):
        if strict:
            raise EscapeError("an escape stands for a control character", control=True)
        text = CONTROL.sub(" ", text)
    return text.replace("\r", " ").replace("\n", " ").replace("\t", " ")


def _runs(raw: bytes) -> list[tuple[bool, bytes]]:
    """``raw`` cut into runs of bytes below 0x80 and from 0x80 (``(True, ...)`` for the latter)."""
    out: list[tuple[bool, bytes]] = []
    start = 0
    for i in range(1, len(raw) + 1):
        if i == len(raw) or (raw[i] >= 0x80) != (raw[start] >= 0x80):
            out.append((raw[start] >= 0x80, raw[start:i]))
            start = i
    return out


@dataclass(frozen=True, slots=True)
class Delimiters:
    """A message's delimiters: MSH-1 (field) and MSH-2 (component, repetition, escape, sub-component, and from v2.7
    truncation)."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    truncation: str = ""
    #: The Python codec of MSH-18, in which hex escapes are read (None: not declared; see the module's description).
    charset: str | None = None

    @classmethod
    def of(cls, field_separator: str, encoding_characters: str) -> Delimiters:
        """The delimiters MSH-1 and MSH-2 declare (standard ones for what MSH-2 leaves out); one object for the same
        characters, read once (a feed's messages all declare the same ones; each message's header asks twice).

        Raises
        ------
        MessageError
            ``hl7.parse`` when the characters are not distinct non-alphanumeric ones.
        """
        return _declared(field_separator, encoding_characters)

    @classmethod
    def _read(cls, field_separator: str, encoding_characters: str) -> Delimiters:
        enc = encoding_characters
        chars = [field_separator, *enc]
        if (not field_separator or len(enc) > 5 or len(set(chars)) != len(chars)
                or any(c.isalnum() or c.isspace() for c in chars)):
            raise MessageError("MSH-1 and MSH-2 do not declare distinct delimiters", code="hl7.parse",
                               location=ErrorLocation("MSH", 1, 2))
        standard = "^~\\&"
        picked = [enc[i] if i < len(enc) else standard[i] for i in range(4)]
        if len(set([field_separator, *picked])) != 5:
            raise MessageError("MSH-2 declares too few delimiters", code="hl7.parse",
                               location=ErrorLocation("MSH", 1, 2))
        return cls(field_separator, picked[0], picked[1], picked[2], picked[3], enc[4] if len(enc) > 4 else "")

    @property
    def encoding_characters(self) -> str:
        """MSH-2 as this message writes it."""
        return self.component + self.repetition + self.escape + self.subcomponent + self.truncation

    def unescape(self, value: str, *, strict: bool = False) -> str:
        """``value`` with its escape sequences replaced by the text they stand for.

        Parameters
        ----------
        value
            One leaf (a component or sub-component) as sent.
        strict
            Raise :class:`EscapeError` for bytes that are not text in their set, a switch to a set not read, or a
            control character in a hex escape; otherwise such a value keeps its escapes as sent (and a control
            character becomes a space).
        """
        esc = self.escape
        if esc not in value:
            return value
        pieces: list[bytes | str | _Switch] = []  # text, and for the escapes that stand for bytes, bytes
        switched = False
        i = 0
        while i < len(value):
            start = value.find(esc, i)
            end = value.find(esc, start + 1) if start >= 0 else -1
            if start < 0 or end < 0:
                pieces.append(value[i:])
                break
            if start > i:
                pieces.append(value[i:start])
            code = value[start + 1:end]
            if _HEX.fullmatch(code):
                pieces.append(bytes.fromhex(code[1:]))
            elif _SWITCH.fullmatch(code):
                pieces.append(_Switch(code.upper()))
                switched = True
            else:
                pieces.append(self._sequence(code))
            i = end + 1
        try:
            return self._text(pieces, switched, strict)
        except EscapeError:
            if strict:
                raise
            return value

    def _text(self, pieces: list[bytes | str | _Switch], switched: bool, strict: bool) -> str:
        if switched:  # a 7-bit set's bytes are sent as text: the whole value is bytes
            as_bytes: list[bytes | _Switch] = []
            for piece in pieces:
                if isinstance(piece, str):
                    if not piece.isascii():
                        raise EscapeError("text beside a character set switch that is not 7-bit")
                    as_bytes.append(piece.encode("ascii"))
                else:
                    as_bytes.append(piece)
            return _clean(_switched_text(as_bytes, self.charset), strict)
        out: list[str] = []
        run = bytearray()
        for piece in pieces:
            if isinstance(piece, bytes):
                run.extend(piece)
                continue
            if run:
                out.append(_clean(_bytes_text(bytes(run), self.charset), strict))
                run.clear()
            out.append(piece if isinstance(piece, str) else "")
        if run:
            out.append(_clean(_bytes_text(bytes(run), self.charset), strict))
        return "".join(out)

    def _sequence(self, code: str) -> str:
        simple = {"F": self.field, "S": self.component, "T": self.subcomponent, "R": self.repetition,
                  "E": self.escape, "P": self.truncation}
        if code in simple:
            return simple[code]
        formatting = _FORMATTING.get(code, _FORMATTING.get(code[:3]))
        return formatting if formatting is not None else ""

    def escape_text(self, value: str) -> str:
        """``value`` written as an HL7 text value: delimiters escaped, line ends as ``\\.br\\``, other control
        characters as hex escapes."""
        esc = self.escape
        out = value.replace(esc, f"{esc}E{esc}")
        for char, code in ((self.field, "F"), (self.component, "S"), (self.repetition, "R"),
                           (self.subcomponent, "T"), (self.truncation, "P")):
            if char:
                out = out.replace(char, f"{esc}{code}{esc}")
        out = out.replace("\r\n", "\n").replace("\r", "\n").replace("\n", f"{esc}.br{esc}")
        return CONTROL.sub(lambda m: f"{esc}X{ord(m[0]):02X}{esc}", out)


STANDARD = Delimiters()


@lru_cache(maxsize=64)  # bounded: MSH-1 and MSH-2 are the sender's text; a refusal raises and is not kept
def _declared(field_separator: str, encoding_characters: str) -> Delimiters:
    return Delimiters._read(field_separator, encoding_characters)  # noqa: SLF001 - its own class's reader


__all__ = ["CONTROL", "NULL", "STANDARD", "Delimiters", "EscapeError", "hex_text"]
