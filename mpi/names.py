"""Personal names: cleaning, titles, double-barrelled and hyphenated surnames, nicknames and phonetic keys.

A name is cleaned to upper-case words: accents are folded (``Zoë`` → ``ZOE``, ``Đorđević`` → ``DORDEVIC``), titles
dropped (``Mrs``, ``Dr``), apostrophes joined (``O'Brien`` → ``OBRIEN``), and hyphens split (``Smith-Jones`` →
``SMITH JONES``), so that a double-barrelled name written with a hyphen, a space or run together compares word by
word. Latin letters end as ASCII; the letters of other scripts (Greek, Cyrillic, Hebrew, Arabic, Chinese, Japanese,
Korean, as a trust's feed or a FHIR client sends them) are kept as letters, their accents folded too
(``Διονύσιος`` → ``ΔΙΟΝΥΣΙΟΣ``): a name in them is a name, compared like any other. Dropping them left two different
people named in Greek with no name at all, and their birth date and address alone made them a possible match.

Nicknames come from the ``nicknames`` package (a public table of English given-name variants): two given names are
equivalent when one is listed as a nickname or a formal form of the other (``Bill`` and ``William``).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import jellyfish

#: Titles and honorifics dropped wherever they appear in a name field (HL7 feeds put them in given names too).
TITLES = frozenset({
    "MR", "MRS", "MS", "MISS", "MX", "DR", "PROF", "PROFESSOR", "SIR", "DAME", "LADY", "LORD", "REV", "REVD",
    "REVEREND", "FR", "FATHER", "SR", "SISTER", "MASTER", "CAPT", "CAPTAIN", "MAJ", "COL", "LT", "HON", "JR", "SNR",
    "JNR", "II", "III", "ESQ", "BABY", "INFANT",
})
#: Placeholders that mean "no name" (HL7 feeds and newborn registrations).
PLACEHOLDERS = frozenset({"UNKNOWN", "UNK", "NOT KNOWN", "NK", "XXX", "NONE", "NULL", "NA", "N A", "TEST"})

#: Latin letters that Unicode does not decompose into a base letter and an accent.
_UNDECOMPOSED = str.maketrans({"ß": "ss", "Æ": "AE", "æ": "ae", "Ø": "O", "ø": "o", "Œ": "OE", "œ": "oe", "Ł": "L",
                               "ł": "l", "Đ": "D", "đ": "d", "Ð": "D", "ð": "d", "Þ": "TH", "þ": "th", "ı": "i",
                               "Ħ": "H", "ħ": "h", "Ŧ": "T", "ŧ": "t"})
_SPACES = re.compile(r"\s+")


def fold_accents(text: str) -> str:
    """``text`` with accents removed (``Zoë`` → ``Zoe``, ``Ångström`` → ``Angstrom``, ``Διονύσιος`` → ``Διονυσιος``);
    ß → SS, Æ → AE, Ø → O, Đ → D, Þ → TH."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_UNDECOMPOSED))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@lru_cache(maxsize=200_000)
def name_words(text: str | None) -> tuple[str, ...]:
    """The words of a name, cleaned: upper-case letters (Latin ones as ASCII), titles and placeholders removed.

    Parameters
    ----------
    text
        A family or given name as a source sent it (may hold several words, hyphens, titles, accents).

    Returns
    -------
    tuple of str
        Clean words in their order, e.g. ``"Mrs Anne-Marie O'Neill"`` → ``("ANNE", "MARIE", "ONEILL")``.
    """
    if not text:
        return ()
    cleaned = fold_accents(str(text)).upper()
    cleaned = cleaned.replace("'", "").replace("’", "").replace("`", "")
    cleaned = _letters(cleaned)  # hyphens, dots, digits, commas become word breaks
    cleaned = _SPACES.sub(" ", cleaned).strip()
    if not cleaned or cleaned in PLACEHOLDERS:
        return ()
    return tuple(word for word in cleaned.split(" ") if word not in TITLES and word not in PLACEHOLDERS)


def _letters(text: str) -> str:
    """``text`` with every character that is not a letter of some script (or a mark within one) made a space."""
    if text.isascii():
        return _NOT_ASCII_LETTER.sub(" ", text)
    return "".join(ch if unicodedata.category(ch)[0] in "LM" else " " for ch in text)


_NOT_ASCII_LETTER = re.compile(r"[^A-Za-z]")


@lru_cache(maxsize=200_000)
def phonetic_key(word: str | None) -> str | None:
    """A phonetic key of one word (Metaphone; the word itself when Metaphone gives nothing)."""
    if not word:
        return None
    key = jellyfish.metaphone(word)
    return key or word


def name_phonetic(words: tuple[str, ...]) -> str | None:
    """A phonetic key of a multi-word name (the words' keys joined)."""
    keys = [phonetic_key(w) for w in words]
    return " ".join(k for k in keys if k) or None


@lru_cache(maxsize=1)
def _namer():  # type: ignore[no-untyped-def]
    from nicknames import NickNamer

    return NickNamer()


@lru_cache(maxsize=100_000)
def nickname_keys(given: str | None) -> tuple[str, ...]:
    """A given name followed by the names it is directly a nickname or a formal form of.

    ``BILL`` → ``BILL``, ``ROBERT``, ``WILLIAM`` ... Two given names are nickname-equivalent when either appears in
    the other's keys (a *direct* relation: ``WILLIAM`` and ``BILL`` are, ``WILLIAM`` and ``ROBERT`` are not, though
    both are called Bill).
    """
    if not given:
        return ()
    lower = given.lower()
    namer = _namer()
    related = (set(namer.nicknames_of(lower)) | set(namer.canonicals_of(lower))) - {lower}
    return (given.upper(), *sorted(k.upper() for k in related))
