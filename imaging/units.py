"""Units of dose quantities as vendors write them, converted by their UCUM meaning, or refused with a reason.

DICOM dose reports carry units as UCUM codes (``mGy.cm``, ``Gy.m2``), but devices in the field also write
``mGycm``, ``Gym2``, ``mGy*cm``, ``mGy-cm``, ``dGy.cm2``, ``cGy.cm2``, ``uGy.m2``, ``µGy·m²``, spell units out in
the code meaning, or use UCUM's **case-insensitive** form, all in capitals (``MGY.CM``, ``GY.M2``, ``MABQ``).
:func:`read_unit` reads any of these into a factor, a base unit and a length or area part, and :func:`convert`
brings a value to the unit the index stores:

==============  =========  =======================================================================
quantity        stored in  examples of what arrives
==============  =========  =======================================================================
dose-length     mGy·cm     ``mGy.cm``, ``mGycm``, ``mGy*cm``, ``mGy-cm``, ``Gy.m``, ``MGY.CM``
dose-area       Gy·m²      ``Gy.m2``, ``Gym2``, ``dGy.cm2``, ``cGy.cm2``, ``uGy.m2``, ``GY.M2``
dose            mGy / Gy   ``mGy``, ``Gy``, ``dGy``, ``uGy``, ``MGY``
activity        MBq        ``MBq``, ``GBq``, ``kBq``, ``Bq``, ``mCi``, ``MABQ``
time            s          ``s``, ``ms``, ``min``, ``h``, ``sec``, ``S``, ``MIN``, ``HR``
==============  =========  =======================================================================

How a spelling is read (every rule has a test in ``tests/imaging/test_imaging_units.py``):

- a code with any lower-case letter is read as case-sensitive UCUM (``M`` is mega, ``m`` milli); a code in capitals
  only is read as case-insensitive UCUM, where ``M`` is **milli** and mega is ``MA`` (``MGY.CM`` is mGy·cm, never
  megagray centimetres);
- what the two readings cannot settle is refused with a reason rather than guessed: ``MBQ`` is millibecquerel in
  case-insensitive UCUM but megabecquerel in everyday use; a mega- or giga-gray (``MGy``, ``MAGY``) is no imaging
  dose, and is far more likely a milligray written in the wrong case;
- separators (``.``, ``*``, ``·``, ``×``, spaces, a hyphen between letters) mean a product; a quotient (``/``) or a
  negative exponent is no unit of a stored quantity and is refused; UCUM annotations (``{DLP}``) are ignored.

Pure functions: no I/O. An unreadable unit gives ``None`` and a reason, never a guess.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

_PREFIX_CS = {"": 1.0, "d": 1e-1, "c": 1e-2, "m": 1e-3, "u": 1e-6, "n": 1e-9, "p": 1e-12, "k": 1e3, "M": 1e6,
              "G": 1e9}
_PREFIX_CI = {"": 1.0, "D": 1e-1, "C": 1e-2, "M": 1e-3, "U": 1e-6, "N": 1e-9, "P": 1e-12, "K": 1e3, "MA": 1e6,
              "GA": 1e9}
_LENGTH = {"m": 1.0, "dm": 1e-1, "cm": 1e-2, "mm": 1e-3}
_TIME_CS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "min": 60.0, "h": 3600.0}
_TIME_CI = {"S": 1.0, "MS": 1e-3, "US": 1e-6, "MIN": 60.0, "HR": 3600.0}
_TIME_WORDS = {"sec": 1.0, "secs": 1.0, "msec": 1e-3, "mins": 60.0, "hr": 3600.0, "hrs": 3600.0}
_BASES = ("Gy", "Sv", "Bq", "Ci")
_BASE_NAMES = {"Gy": "gray", "Sv": "sievert", "Bq": "becquerel", "Ci": "curie"}
_CURIE_IN_BQ = 3.7e10

_CS = re.compile(r"(?P<prefix>[dcmunpkMG]?)(?P<base>Gy|Sv|Bq|Ci|gy|sv|bq|ci|GY|SV|BQ|CI)(?P<rest>[a-zA-Z]*\d?)")
_CI = re.compile(r"(?P<prefix>MA|GA|[DCMUNPK]?)(?P<base>GY|SV|BQ|CI)(?P<rest>[A-Z]*\d?)")
_LENGTH_PART = re.compile(r"(dm|cm|mm|m)(2?)")

_WORDS = (  # spelled-out units seen in code meanings, longest first
    ("square centimeters", "cm2"), ("square centimetres", "cm2"), ("square meters", "m2"), ("square metres", "m2"),
    ("centimeters", "cm"), ("centimetres", "cm"), ("centimeter", "cm"), ("centimetre", "cm"),
    ("meters", "m"), ("metres", "m"), ("meter", "m"), ("metre", "m"),
    ("milligray", "mGy"), ("micrograys", "uGy"), ("microgray", "uGy"), ("decigray", "dGy"), ("centigray", "cGy"),
    ("grays", "Gy"), ("gray", "Gy"), ("millisievert", "mSv"), ("sievert", "Sv"),
    ("megabecquerel", "MBq"), ("becquerel", "Bq"), ("millicurie", "mCi"),
    ("milliseconds", "ms"), ("millisecond", "ms"), ("seconds", "s"), ("second", "s"), ("minutes", "min"),
)


@dataclass(frozen=True)
class Unit:
    """A parsed unit: ``factor`` × base unit × metre**``length_power`` (factor includes prefixes and lengths)."""

    base: str  # Gy | Sv | Bq | s
    length_power: int  # 0 dose, 1 dose-length, 2 dose-area
    factor: float  # to Gy·m^n (or Sv, Bq, s)


@dataclass(frozen=True)
class UnitReading:
    """What a unit code says: the unit, or why it was refused (exactly one of the two is set)."""

    unit: Unit | None
    problem: str | None = None


def _refuse(code: str, why: str) -> UnitReading:
    return UnitReading(None, f"unit {code!r} refused: {why}")


def _normalise(text: str) -> str | None:
    """Cosmetics away: words to codes, annotations dropped, separators removed; None for a quotient."""
    value = text.strip()
    if re.search(r"[a-z]{4,}", value, flags=re.IGNORECASE):
        for word, code in _WORDS:
            value = re.sub(re.escape(word), code, value, flags=re.IGNORECASE)
    value = re.sub(r"\{[^}]*\}", "", value)  # UCUM annotations
    value = value.replace("µ", "u").replace("μ", "u").replace("²", "2").replace("^", "").replace("**", "")
    if "/" in value:
        return None
    value = re.sub(r"(?<=[A-Za-z])\s+[xX]\s+(?=[A-Za-z])", ".", value)  # "mGy x cm"
    value = re.sub(r"(?<=[A-Za-z])-(?=[A-Za-z])", ".", value)  # "mGy-cm"
    return re.sub(r"[\s.*·×]+|\[|\]", "", value)


def read_unit(code: str | None) -> UnitReading:
    """Read a unit as vendors write it.

    Parameters
    ----------
    code : str or None
        The unit's code value (or meaning), e.g. ``"mGy.cm"``, ``"Gym2"``, ``"dGy.cm2"``, ``"MGY.CM"``.

    Returns
    -------
    UnitReading
        The unit, or ``problem`` saying why it was refused (no unit, a quotient, a case the two UCUM forms read
        differently, a prefix no imaging dose has, a unit of no dose, activity or time).

    Examples
    --------
    >>> read_unit("MGY.CM").unit.factor == read_unit("mGy.cm").unit.factor
    True
    >>> read_unit("MBQ").problem
    "unit 'MBQ' refused: in capitals it is millibecquerel (case-insensitive UCUM) but megabecquerel in common use"
    """
    if code is None or not str(code).strip():
        return UnitReading(None, "no unit given")
    return _read_unit(str(code).strip())


@lru_cache(maxsize=4096)
def _read_unit(raw: str) -> UnitReading:
    """:func:`read_unit` of a stripped, non-empty code; kept per code (a load meets the same few units on every
    report, and a reading is immutable)."""
    text = _normalise(raw)
    if text is None:
        return _refuse(raw, "a quotient (per …) is not the unit of a dose, dose-length, dose-area, activity or time")
    if not text:
        return _refuse(raw, "nothing but annotations")
    if re.search(r"-\d", text):
        return _refuse(raw, "a negative exponent is not the unit of a stored dose quantity")
    letters = [c for c in text if c.isalpha()]
    capitals_only = bool(letters) and all(c.isupper() for c in letters)
    if capitals_only:
        if text in _TIME_CI:
            return UnitReading(Unit("s", 0, _TIME_CI[text]))
    else:
        if text in _TIME_CS:
            return UnitReading(Unit("s", 0, _TIME_CS[text]))
    if text.lower() in _TIME_WORDS and text not in ("MS", "HR"):
        return UnitReading(Unit("s", 0, _TIME_WORDS[text.lower()]))
    return _read_ci(raw, text) if capitals_only else _read_cs(raw, text)


def _with_length(raw: str, base: str, factor: float, rest: str) -> UnitReading:
    if base == "Ci":
        base, factor = "Bq", factor * _CURIE_IN_BQ
    if not rest:
        return UnitReading(Unit(base, 0, factor))
    length = _LENGTH_PART.fullmatch(rest.lower())
    if not length:
        return _refuse(raw, f"{rest!r} after the {base} is no length or area")
    if base == "Bq":
        return _refuse(raw, "an activity has no length or area part")
    power = 2 if length.group(2) else 1
    return UnitReading(Unit(base, power, factor * _LENGTH[length.group(1)] ** power))


def _read_cs(raw: str, text: str) -> UnitReading:
    match = _CS.fullmatch(text)
    if not match:
        return _refuse(raw, "not a unit of dose, dose-length, dose-area, activity or time")
    prefix, base_text, rest = match.groups()
    base = next(b for b in _BASES if b.lower() == base_text.lower())
    if prefix in ("M", "G") and base in ("Gy", "Sv"):
        return _refuse(raw, f"{prefix}{base_text} would be {'mega' if prefix == 'M' else 'giga'}{_BASE_NAMES[base]}, "
                            "no imaging dose; a milli- prefix in the wrong case is likelier, so the value is not read")
    if base_text != base and prefix in ("M", "G"):
        return _refuse(raw, "a capital prefix on a lower-case unit: mega or milli cannot be told")
    return _with_length(raw, base, _PREFIX_CS[prefix], rest)


def _read_ci(raw: str, text: str) -> UnitReading:
    match = _CI.fullmatch(text)
    if not match:
        return _refuse(raw, "not a unit of dose, dose-length, dose-area, activity or time in case-insensitive UCUM "
                            "(in capitals mega is MA and giga GA)")
    prefix, base_text, rest = match.groups()
    base = next(b for b in _BASES if b.upper() == base_text)
    if prefix in ("MA", "GA") and base in ("Gy", "Sv"):
        return _refuse(raw, f"{prefix}{base_text} is {'mega' if prefix == 'MA' else 'giga'}{_BASE_NAMES[base]}, no "
                            "imaging dose")
    if prefix == "M" and base == "Bq":
        return _refuse(raw, "in capitals it is millibecquerel (case-insensitive UCUM) but megabecquerel in common use")
    return _with_length(raw, base, _PREFIX_CI[prefix], rest)


def parse_unit(code: str | None) -> Unit | None:
    """The unit of :func:`read_unit`, ``None`` when it was refused.

    Examples
    --------
    >>> parse_unit("mGycm").length_power
    1
    >>> round(parse_unit("dGy.cm2").factor, 12)
    1e-05
    """
    return read_unit(code).unit


#: What the index stores each quantity in: (base, length power, factor of the stored unit).
STORED = {
    "dlp": Unit("Gy", 1, 1e-3 * 1e-2),  # mGy·cm
    "dap": Unit("Gy", 2, 1.0),  # Gy·m²
    "dose_mgy": Unit("Gy", 0, 1e-3),  # mGy
    "dose_gy": Unit("Gy", 0, 1.0),  # Gy
    "effective_msv": Unit("Sv", 0, 1e-3),  # mSv
    "activity": Unit("Bq", 0, 1e6),  # MBq
    "time": Unit("s", 0, 1.0),  # s
}
_NAMES = {"dlp": "a dose-length product", "dap": "a dose-area product", "dose_mgy": "a dose", "dose_gy": "a dose",
          "effective_msv": "an effective dose", "activity": "an activity", "time": "a time"}


def _round(value: float) -> float:
    return float(f"{value:.12g}")  # drop binary noise of the factors


def conversion(value: float | None, unit_code: str | None, quantity: str) -> tuple[float | None, str | None]:
    """``value`` in ``unit_code`` converted to the stored unit of ``quantity``, or ``None`` and the reason.

    A value is refused when it is missing or not finite, when its unit is refused by :func:`read_unit`, or when the
    unit is of another dimension (a DLP written in ``Gy.m2`` is refused, not guessed).
    """
    if value is None or not math.isfinite(value):
        return None, None
    target = STORED[quantity]
    reading = read_unit(unit_code)
    if reading.unit is None:
        return None, reading.problem
    unit = reading.unit
    if unit.base != target.base or unit.length_power != target.length_power:
        return None, f"unit {unit_code!r} refused: it is not the unit of {_NAMES[quantity]}"
    return _round(value * unit.factor / target.factor), None


def convert(value: float | None, unit_code: str | None, quantity: str) -> float | None:
    """``value`` in ``unit_code`` converted to the stored unit of ``quantity`` (a key of :data:`STORED`).

    Returns ``None`` where :func:`conversion` gives a reason.

    Examples
    --------
    >>> convert(1.6e-5, "Gym2", "dap")
    1.6e-05
    >>> convert(12.5, "MGY.CM", "dlp")
    12.5
    >>> round(convert(25.0, "dGy.cm2", "dap"), 12)
    0.00025
    """
    return conversion(value, unit_code, quantity)[0]


def from_stored(value: float | None, unit_code: str | None, quantity: str) -> float | None:
    """The inverse of :func:`convert`: a stored value expressed in ``unit_code`` (``None`` where it is refused)."""
    if value is None or not math.isfinite(value):
        return None
    unit = parse_unit(unit_code)
    target = STORED[quantity]
    if unit is None or unit.base != target.base or unit.length_power != target.length_power:
        return None
    return _round(value * target.factor / unit.factor)


def parse_number(text: object) -> float | None:
    """A number as devices write it (``'1.6e-005'``, ``' 12,5 '``, ``b'3.2'``); ``None`` when it is not one.

    A decimal comma is read (``12,5``, ``0,125``), but a comma between a non-zero group of one to three digits and
    exactly three more (``1,234``) is refused: it is a thousands separator in one locale and a decimal comma in
    another.
    """
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    if isinstance(text, int | float):
        value = float(text)
    else:
        raw = str(text).strip().rstrip("\x00").strip()
        if not raw:
            return None
        if "," in raw and "." not in raw:
            if raw.count(",") > 1 or re.fullmatch(r"[+-]?[1-9]\d{0,2},\d{3}", raw):
                return None
            raw = raw.replace(",", ".")
        try:
            value = float(raw)
        except ValueError:
            return None
    return value if math.isfinite(value) else None
