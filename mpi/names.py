"""Personal names: cleaning, titles, double-barrelled and hyphenated surnames, nicknames and phonetic keys.

A name is cleaned to upper-case ASCII words: accents are folded (``Zoë`` → ``ZOE``), titles dropped (``Mrs``,
``Dr``), apostrophes joined (``O'Brien`` → ``OBRIEN``), and hyphens split (``Smith-Jones`` → ``SMITH JONES``), so
that a double-barrelled name written with a hyphen, a space or run together compares word by word.

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

_NON_LETTER = re.compile(r"[^A-Z\s]")
_SPACES = re.compile(r"\s+")


def fold_accents(text: str) -> str:
    """``text`` with accents removed (``Zoë`` → ``Zoe``, ``Ångström`` → ``Angstrom``); ß → SS, Æ → AE, Ø → O."""
    text = text.replace("ß", "ss").replace("Æ", "AE").replace("æ", "ae").replace("Ø", "O").replace("ø", "o")
    text = text.replace("Œ", "OE").replace("œ", "oe").replace("Ł", "L").replace("ł", "l")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@lru_cache(maxsize=200_000)
def name_words(text: str | None) -> tuple[str, ...]:
    """The words of a name, cleaned: upper-case ASCII letters, titles and placeholders removed.

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
    cleaned = _NON_LETTER.sub(" ", cleaned)  # hyphens, dots, digits, commas become word breaks
    cleaned = _SPACES.sub(" ", cleaned).strip()
    if not cleaned or cleaned in PLACEHOLDERS:
        return ()
    return tuple(word for word in cleaned.split(" ") if word not in TITLES and word not in PLACEHOLDERS)


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
