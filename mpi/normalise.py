"""Normalisation: demographics as sources send them → a :class:`MatchRecord` ready for comparison.

Everything a comparison needs is computed once, when a record is written, and stored with it (``match_fields``), so
scoring a candidate never normalises it again: clean name words, phonetic keys, nickname keys, birth-date parts,
sex, parsed postcode, cleaned address and phone digits, and the NHS number with its check and verification status.

Dates may be partial (``1980``, ``1980-05``), invalid (``1980-02-30``: the parts are kept, the date is flagged) or
in UK order (``17/05/1980``). Unknown parts are 0.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from mpi.identifier_systems import identifier_tokens
from mpi.names import fold_accents, name_phonetic, name_words, nickname_keys
from mpi.nhs_number import is_valid_nhs_number, normalise_nhs_number
from mpi.postcodes import parse_postcode

VERIFIED = "01"

_SEX = {"M": "M", "MALE": "M", "1": "M", "F": "F", "FEMALE": "F", "2": "F", "O": "O", "OTHER": "O", "9": None,
        "U": None, "UNKNOWN": None, "0": None, "A": "O", "N": None}
_ISO = re.compile(r"^(\d{4})(?:-?(\d{1,2})(?:-?(\d{1,2}))?)?(?:[T ].*)?$")
_UK_DATE = re.compile(r"^(\d{1,2})[/.](\d{1,2})[/.](\d{4})$")
_ADDRESS_WORDS = {
    "RD": "ROAD", "ST": "STREET", "AVE": "AVENUE", "AV": "AVENUE", "DR": "DRIVE", "LN": "LANE", "CL": "CLOSE",
    "CRES": "CRESCENT", "CRESC": "CRESCENT", "PL": "PLACE", "CT": "COURT", "GDNS": "GARDENS", "GRN": "GREEN",
    "SQ": "SQUARE", "TER": "TERRACE", "TERR": "TERRACE", "HSE": "HOUSE", "APT": "FLAT", "APARTMENT": "FLAT",
    "UNIT": "FLAT", "HWY": "HIGHWAY", "PDE": "PARADE", "BLVD": "BOULEVARD", "MT": "MOUNT", "NTH": "NORTH",
    "STH": "SOUTH", "E": "EAST", "W": "WEST", "N": "NORTH", "S": "SOUTH", "NO": "",
}
_NON_ALNUM = re.compile(r"[^A-Z0-9 ]")
#: Words of an address that says there is none (``NO FIXED ABODE``, ``NFA``, ``ADDRESS NOT KNOWN``): an address made
#: only of these is no address, as a postcode of the NHS's ZZ99 pseudo-district is no postcode.
_NO_ADDRESS_WORDS = frozenset({"NO", "FIXED", "ABODE", "NFA", "HOMELESS", "ADDRESS", "UNKNOWN", "NOT", "KNOWN", "NK",
                               "UNK", "NONE", "NIL", "NA", "N", "A", "TBC", "TBA", "GIVEN", "STATED", "DECLINED"})
#: The NHS's pseudo-postcodes (``ZZ99 3VZ`` no fixed abode, ``ZZ99 3WZ`` address not known, ``ZZ99 3CZ`` in England
#: but not known where, and the ``ZZ99`` codes of a country abroad) name no home.
PSEUDO_POSTCODE_DISTRICT = "ZZ99"


@dataclass(frozen=True, slots=True)
class MatchRecord:
    """A source record normalised for comparison (also its stored ``match_fields``)."""

    record_id: int | None
    nhs_number: str | None = None
    nhs_valid: bool = False
    nhs_verified: bool = False
    family: str | None = None  # clean words joined by spaces: "SMITH JONES"
    given: str | None = None  # first given name
    middle: str | None = None  # further given names, space separated
    family_ph: str | None = None
    given_ph: str | None = None
    nick: str | None = None  # nickname keys of the first given name, space separated
    birth_year: int = 0
    birth_month: int = 0
    birth_day: int = 0
    dob: str | None = None  # "1980-05-17" (also when invalid), "1980-05", "1980"
    sex: str | None = None  # M | F | O
    postcode: str | None = None  # UK "GU1 4AB", or as given (squashed)
    postcode_uk: bool = False
    sector: str | None = None
    district: str | None = None
    address: str | None = None
    phone: str | None = None
    # own key (marked ``=``) and further identifiers of evidence systems (:mod:`mpi.identifier_systems`), sorted
    identifiers: str | None = None

    def as_stored(self) -> dict[str, Any]:
        """The JSON stored in ``source_record.match_fields`` (record id left out)."""
        return {name: value for name in _STORED if (value := getattr(self, name)) not in (None, False, 0, "")}

    @classmethod
    def from_stored(cls, record_id: int | None, stored: Mapping[str, Any]) -> MatchRecord:
        """Rebuild from stored ``match_fields`` without normalising again (keys of older versions left out)."""
        if _FIELD_NAMES.issuperset(stored):
            return cls(record_id, **stored)
        return cls(record_id, **{k: v for k, v in stored.items() if k in _FIELD_NAMES})


_STORED = tuple(f.name for f in fields(MatchRecord) if f.name != "record_id")
_FIELD_NAMES = frozenset(_STORED)


def parse_birth_date(value: date | str | None) -> tuple[int, int, int]:
    """``(year, month, day)`` of a birth date, 0 for unknown parts; invalid dates keep their parts.

    Examples
    --------
    >>> parse_birth_date("1980-02-30")
    (1980, 2, 30)
    >>> parse_birth_date("17/05/1980")
    (1980, 5, 17)
    >>> parse_birth_date("1980")
    (1980, 0, 0)
    """
    if value is None or value == "":
        return (0, 0, 0)
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return (value.year, value.month, value.day)
    text = str(value).strip()
    iso = _ISO.match(text)
    if iso:
        year, month, day = iso.groups()
        parts = (int(year), int(month or 0), int(day or 0))
    else:
        uk = _UK_DATE.match(text)
        if not uk:
            return (0, 0, 0)
        parts = (int(uk.group(3)), int(uk.group(2)), int(uk.group(1)))
    year, month, day = parts
    if not 1850 <= year <= 2200:
        return (0, 0, 0)
    if not 0 <= month <= 12:
        month, day = (day, month) if 1 <= day <= 12 and month <= 31 else (0, 0)
    if not 0 <= day <= 31:
        day = 0
    return (year, month, day)


def as_date(value: date | str | None) -> date | None:
    """A full, valid ``date`` from ``value``, else ``None`` (partial and invalid dates are not dates)."""
    year, month, day = parse_birth_date(value)
    try:
        return date(year, month, day) if year and month and day else None
    except ValueError:
        return None


def dob_text(year: int, month: int, day: int) -> str | None:
    if not year:
        return None
    if not month:
        return f"{year:04d}"
    if not day:
        return f"{year:04d}-{month:02d}"
    return f"{year:04d}-{month:02d}-{day:02d}"


def normalise_sex(value: str | None) -> str | None:
    """``M``, ``F``, ``O`` or ``None`` (unknown) from FHIR, HL7 or free-text codes."""
    if not value:
        return None
    return _SEX.get(str(value).strip().upper())


@lru_cache(maxsize=200_000)
def normalise_address(text: str | None, postcode: str | None = None) -> str | None:
    """Free-text address: upper-case words (Latin letters as ASCII, accents folded as in names; the letters of other
    scripts kept, and any script's decimal digits as ASCII ones), abbreviations spelled out, the postcode removed,
    words sorted. An address in Greek, Cyrillic, Arabic ... keeps its street and town: cut to ASCII it was its house
    number alone, and two people at number 12 of two different streets agreed on it (hazard H-ID-54)."""
    if not text:
        return None
    cleaned = fold_accents(str(text)).upper().replace("'", "")
    if postcode:
        cleaned = cleaned.replace(postcode.upper(), " ")
    cleaned = _NON_ALNUM.sub(" ", cleaned) if cleaned.isascii() else _address_characters(cleaned)
    if _NO_ADDRESS_WORDS.issuperset(cleaned.split()):
        return None
    # words sorted: the same address written in another order compares equal, and a plain ratio is a token-sort one
    words = sorted(_ADDRESS_WORDS.get(w, w) for w in cleaned.split())
    result = " ".join(w for w in words if w)
    return result or None


def _address_characters(text: str) -> str:
    """``text`` (upper case, not ASCII) with the letters of every script kept, decimal digits written as ASCII ones,
    and everything else a space."""
    out = []
    for ch in text:
        if ch.isascii():
            out.append(ch if ch.isalnum() or ch == " " else " ")
            continue
        category = unicodedata.category(ch)
        out.append(ch if category[0] in "LM" else str(unicodedata.digit(ch)) if category == "Nd" else " ")
    return "".join(out)


#: Digits a number is keyed with when there is none: counting up or down through every digit.
_COUNTING = ("0123456789", "1234567890", "9876543210")


def normalise_phone(text: str | None) -> str | None:
    """Digits of a phone number, UK +44 written as a leading 0; ``None`` for fewer than 6 digits or for a number
    keyed to fill the field: its last six digits one digit repeated (``01483 000000``, ``07999 999999``), at most
    two distinct digits in all, or counting through the digits (``01234 567890``). Such a number is shared by
    everyone a system could not ask, and agreement on it says nothing of a home (hazard H-ID-33)."""
    if not text:
        return None
    digits = re.sub(r"\D", "", str(text))
    if digits.startswith("44") and len(digits) == 12:
        digits = "0" + digits[2:]
    digits = digits[-11:]
    if len(digits) < 6 or len(set(digits[-6:])) == 1 or len(set(digits)) <= 2:
        return None
    if any(run in digits for run in _COUNTING):
        return None
    return digits


def to_match_record(record_id: int | None, source: Mapping[str, Any]) -> MatchRecord:
    """Normalise stored or incoming demographics (keys as on :class:`mpi.tables.SourceRecord`).

    Parameters
    ----------
    record_id
        The source record's id (``None`` for a query).
    source
        ``nhs_number``, ``nhs_verification``, ``family``, ``given``, ``prefix``, ``birth_date``, ``sex``,
        ``postcode``, ``address``, ``phone``; any may be missing. ``birth_date_text`` (a partial or invalid date)
        is used when ``birth_date`` is empty. ``identifiers``: the record's identifier tokens
        (:func:`mpi.identifier_systems.identifier_tokens`), kept as they are; without them, they are made from
        ``namespace`` and ``local_id`` (the record's key) and ``other_identifiers`` when given (their systems
        canonical namespaces already, as :class:`mpi.records.Demographics` holds them).
    """
    nhs = normalise_nhs_number(source.get("nhs_number"))
    valid = bool(nhs and is_valid_nhs_number(nhs))
    family_words = name_words(source.get("family"))
    given_words = name_words(source.get("given"))
    given = given_words[0] if given_words else None
    birth = source.get("birth_date") or source.get("birth_date_text")
    year, month, day = parse_birth_date(birth)
    postcode = parse_postcode(source.get("postcode"))
    if postcode is not None and postcode.uk and postcode.district == PSEUDO_POSTCODE_DISTRICT:
        postcode = None
    return MatchRecord(
        record_id=record_id,
        nhs_number=nhs,
        nhs_valid=valid,
        nhs_verified=valid and source.get("nhs_verification") == VERIFIED,
        family=" ".join(family_words) or None,
        given=given,
        middle=" ".join(given_words[1:]) or None,
        family_ph=name_phonetic(family_words),
        given_ph=name_phonetic(given_words[:1]),
        nick=" ".join(nickname_keys(given)) or None,
        birth_year=year,
        birth_month=month,
        birth_day=day,
        dob=dob_text(year, month, day),
        sex=normalise_sex(source.get("sex")),
        postcode=postcode.code if postcode else None,
        postcode_uk=bool(postcode and postcode.uk),
        sector=postcode.sector if postcode else None,
        district=postcode.district if postcode else None,
        address=normalise_address(source.get("address"), source.get("postcode")),
        phone=normalise_phone(source.get("phone")),
        identifiers=_identifiers(source),
    )


def _identifiers(source: Mapping[str, Any]) -> str | None:
    if "identifiers" in source:
        return source["identifiers"] or None
    namespace, local_id = source.get("namespace"), source.get("local_id")
    key = (str(namespace), str(local_id)) if namespace and local_id else None
    return identifier_tokens(key, source.get("other_identifiers") or ())
