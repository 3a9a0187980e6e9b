"""The delimiters of an HL7 v2 message (MSH-1, MSH-2) and its escape sequences, both ways.

Escape sequences (v2.3 to v2.8): ``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\`` (the delimiters), ``\\P\\`` (the truncation
character), ``\\Xhh...\\`` (bytes, read as UTF-8, else ISO 8859-1), ``\\.br\\`` and the other formatting commands
(a space, or nothing for ``\\.fi\\ \\.nf\\``), ``\\H\\ \\N\\`` (highlighting), ``\\Cxxyy\\ \\Mxxyyzz\\`` (character
set switches) and ``\\Zxx\\`` (local): the last three carry no text of their own. An escape character with no
closing one is kept as text.
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


def hex_text(digits: str) -> str:
    """The text of a hex escape's digits: UTF-8 when they are, else ISO 8859-1."""
    raw = bytes.fromhex(digits)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


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

    def unescape(self, value: str) -> str:
        """``value`` with its escape sequences replaced by the text they stand for."""
        esc = self.escape
        if esc not in value:
            return value
        out: list[str] = []
        i = 0
        while i < len(value):
            start = value.find(esc, i)
            end = value.find(esc, start + 1) if start >= 0 else -1
            if start < 0 or end < 0:
                out.append(value[i:])
                break
            out.append(value[i:start])
            out.append(self._sequence(value[start + 1:end]))
            i = end + 1
        return "".join(out)

    def _sequence(self, code: str) -> str:
        simple = {"F": self.field, "S": self.component, "T": self.subcomponent, "R": self.repetition,
                  "E": self.escape, "P": self.truncation}
        if code in simple:
            return simple[code]
        if _HEX.fullmatch(code):
            return CONTROL.sub(" ", hex_text(code[1:])).replace("\r", " ").replace("\n", " ").replace("\t", " ")
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


__all__ = ["CONTROL", "NULL", "STANDARD", "Delimiters", "hex_text"]
