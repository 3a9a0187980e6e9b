"""Postcodes: UK postcodes parsed into area, district and sector; any other postal code kept as given.

A UK postcode is ``outward inward``: the outward code (``GU1``, ``SW1A``) names a district, the first digit of the
inward code a sector (``GU1 4``), the final two letters a unit of about fifteen addresses. A code that is not
UK-shaped (a ZIP code, a four-digit Australian postcode) is kept as its characters, upper-cased without spaces, and
compared as a plain string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_UK = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][A-Z]{2})$")
_NOT_ALNUM = re.compile(r"[^A-Z0-9]")


@dataclass(frozen=True)
class Postcode:
    """A postcode cleaned for comparison."""

    code: str  # UK: "GU1 4AB"; otherwise the characters as given, upper-cased, without spaces
    uk: bool
    sector: str | None = None  # "GU1 4"
    district: str | None = None  # "GU1"
    area: str | None = None  # "GU"

    @property
    def squashed(self) -> str:
        return self.code.replace(" ", "")


@lru_cache(maxsize=200_000)
def parse_postcode(text: str | None) -> Postcode | None:
    """Parse ``text`` as a postcode; ``None`` when it holds nothing.

    Examples
    --------
    >>> parse_postcode(" gu1 4ab").code
    'GU1 4AB'
    >>> parse_postcode("2615").uk
    False
    """
    if text is None:
        return None
    squashed = _NOT_ALNUM.sub("", str(text).upper())
    if not squashed:
        return None
    # a common keying slip: letter O typed for digit 0 in the inward code's digit
    uk = _UK.match(squashed)
    if uk is None and len(squashed) >= 5 and squashed[-3] == "O":
        uk = _UK.match(squashed[:-3] + "0" + squashed[-2:])
    if uk is None:
        return Postcode(code=squashed, uk=False)
    outward, inward = uk.groups()
    area = re.match(r"[A-Z]+", outward)
    return Postcode(code=f"{outward} {inward}", uk=True, sector=f"{outward} {inward[0]}", district=outward,
                    area=area.group(0) if area else None)
