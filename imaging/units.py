"""Units of dose quantities as vendors write them, converted by their UCUM meaning.

DICOM dose reports carry units as UCUM codes (``mGy.cm``, ``Gy.m2``), but devices in the field also write
``mGycm``, ``Gym2``, ``mGy*cm``, ``dGy.cm2``, ``cGy.cm2``, ``uGy.m2``, ``µGy·m²`` or spell units out in the code
meaning. :func:`parse_unit` reads any of these into a prefix, a base unit and a length or area part, and
:func:`convert` brings a value to the unit the index stores:

==============  =========  ===========================================
quantity        stored in  examples of what arrives
==============  =========  ===========================================
dose-length     mGy·cm     ``mGy.cm``, ``mGycm``, ``Gy.m``, ``mGy*cm``
dose-area       Gy·m²      ``Gy.m2``, ``Gym2``, ``dGy.cm2``, ``cGy.cm2``, ``uGy.m2``, ``mGy.cm2``
dose            mGy / Gy   ``mGy``, ``Gy``, ``dGy``, ``uGy``
activity        MBq        ``MBq``, ``GBq``, ``kBq``, ``Bq``, ``mCi``
time            s          ``s``, ``ms``, ``min``, ``h``
==============  =========  ===========================================

Pure functions: no I/O. An unreadable unit gives ``None``, never a guess.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_PREFIX = {"": 1.0, "d": 1e-1, "c": 1e-2, "m": 1e-3, "u": 1e-6, "n": 1e-9, "p": 1e-12, "k": 1e3, "M": 1e6,
           "G": 1e9}
_LENGTH = {"m": 1.0, "dm": 1e-1, "cm": 1e-2, "mm": 1e-3}
_TIME = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "min": 60.0, "h": 3600.0}
_BASES = ("Gy", "Sv", "Bq", "Ci")
_CURIE_IN_BQ = 3.7e10

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

    base: str  # Gy | Sv | Bq | s | 1
    length_power: int  # 0 dose, 1 dose-length, 2 dose-area
    factor: float  # to Gy·m^n (or Sv, Bq, s)


def _clean(text: str) -> str:
    value = text.strip()
    if re.search(r"[a-z]{4,}", value, flags=re.IGNORECASE):
        for word, code in _WORDS:
            value = re.sub(re.escape(word), code, value, flags=re.IGNORECASE)
    value = value.replace("µ", "u").replace("μ", "u").replace("²", "2").replace("^", "")
    return re.sub(r"[\s.*·×/]+|\[|\]", "", value)


def parse_unit(code: str | None) -> Unit | None:
    """Read a UCUM unit as vendors write it; ``None`` when it is not a dose, activity or time unit.

    Parameters
    ----------
    code : str or None
        The unit's code value (or meaning), e.g. ``"mGy.cm"``, ``"Gym2"``, ``"dGy.cm2"``.

    Examples
    --------
    >>> parse_unit("mGycm").length_power
    1
    >>> round(parse_unit("dGy.cm2").factor, 12)
    1e-05
    """
    if not code:
        return None
    text = _clean(code)
    if text in _TIME:
        return Unit("s", 0, _TIME[text])
    lowered_time = text.lower()
    if lowered_time in ("sec", "secs"):
        return Unit("s", 0, 1.0)
    match = re.fullmatch(r"([dcmunpkMG]?)(Gy|Sv|Bq|Ci|gy|sv|bq|GY|SV|BQ)(.*)", text)
    if not match:
        return None
    prefix, base, rest = match.groups()
    base = next(b for b in _BASES if b.lower() == base.lower())
    factor = _PREFIX[prefix]
    if base == "Ci":
        base, factor = "Bq", factor * _CURIE_IN_BQ
    if not rest:
        return Unit(base, 0, factor)
    length = re.fullmatch(r"(dm|cm|mm|m)(2?)", rest.lower())
    if not length or base == "Bq":
        return None
    power = 2 if length.group(2) else 1
    return Unit(base, power, factor * _LENGTH[length.group(1)] ** power)


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


def convert(value: float | None, unit_code: str | None, quantity: str) -> float | None:
    """``value`` in ``unit_code`` converted to the stored unit of ``quantity`` (a key of :data:`STORED`).

    Returns ``None`` when the value is missing or not finite, or when the unit is unreadable or of another
    dimension (a DLP written in ``Gy.m2`` is refused, not guessed). A missing unit on a dimensionless-looking
    value is refused too.

    Examples
    --------
    >>> convert(1.6e-5, "Gym2", "dap")
    1.6e-05
    >>> convert(12.5, "mGycm", "dlp")
    12.5
    >>> round(convert(25.0, "dGy.cm2", "dap"), 12)
    0.00025
    """
    if value is None or not math.isfinite(value):
        return None
    target = STORED[quantity]
    unit = parse_unit(unit_code)
    if unit is None or unit.base != target.base or unit.length_power != target.length_power:
        return None
    return float(f"{value * unit.factor / target.factor:.12g}")  # drop binary noise of the factors


def parse_number(text: object) -> float | None:
    """A number as devices write it (``'1.6e-005'``, ``' 12,5 '``, ``b'3.2'``); ``None`` when it is not one."""
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
            raw = raw.replace(",", ".")
        try:
            value = float(raw)
        except ValueError:
            return None
    return value if math.isfinite(value) else None
