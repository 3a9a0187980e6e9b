"""Data-entry errors: how a trust's copy of a person comes to differ from the person.

Each kind of error has a rate in :class:`regionsynth.settings.ErrorRates`, a share of source records. A rate is met by
a :class:`Quota` rather than by independent coin flips: the quota accrues the rate on every record and spends it on
the next record the error can apply to (a nickname needs a name that has one, a day/month transposition a day of 12
or less). The observed share then tracks the setting closely even in small regions, and errors that apply only to
some records still reach their overall rate.

Error names, as written to ``truth/records.csv``: ``typo``, ``nickname``, ``surname-change``, ``swapped-names``,
``date-transposed``, ``missing-nhs-number``, ``mistyped-nhs-number``, ``untraced``, ``moved-house``,
``postcode-typo``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from functools import cache

from nicknames import NickNamer

from regionsynth.geography import Address
from regionsynth.identifiers import NhsNumberAllocator, invalid_nhs_number
from regionsynth.people import Person
from regionsynth.settings import ErrorRates

ERROR_KINDS = ("typo", "nickname", "surname-change", "swapped-names", "date-transposed", "missing-nhs-number",
               "mistyped-nhs-number", "untraced", "moved-house", "postcode-typo")

VERIFIED = "01"
UNTRACED_STATUSES = ("02", "02", "02", "02", "03", "04", "05", "06")
MISSING_STATUSES = ("03", "04", "07", "07")

_KEYBOARD = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEIGHBOURS: dict[str, str] = {}
for _row_index, _row in enumerate(_KEYBOARD):
    for _i, _ch in enumerate(_row):
        near = _row[max(_i - 1, 0):_i] + _row[_i + 1:_i + 2]
        for _other in (_row_index - 1, _row_index + 1):
            if 0 <= _other < len(_KEYBOARD):
                near += _KEYBOARD[_other][_i:_i + 1]
        _NEIGHBOURS[_ch] = near
_INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"


class Quota:
    """Meets a rate over a stream of records (see the module docstring).

    Parameters
    ----------
    rate
        The share of records that should carry the error.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.debt = 0.0
        self.applied = 0
        self.offered = 0

    def draw(self, rng: random.Random, eligible: bool, forced: bool = False) -> bool:
        """Whether this record carries the error; ``forced`` records carry it whatever the quota says."""
        self.offered += 1
        self.debt += self.rate
        if forced or (eligible and rng.random() < self.debt):
            self.debt -= 1.0
            self.applied += 1
            return True
        return False


@dataclass(slots=True)
class Recorded:
    """The demographics one source record holds (after errors), and which errors made them differ."""

    given: str
    middle: str
    family: str
    sex: str
    birth_date: date
    address: Address
    nhs_number: str | None
    nhs_status: str
    nhs_error: str = ""  # invalid-check, unissued or other-person
    nhs_owner: str | None = None  # for other-person: whose number was keyed in
    errors: list[str] = field(default_factory=list)

    @property
    def stale_family(self) -> bool:
        """Whether the record still holds the surname from before a marriage."""
        return "surname-change" in self.errors

    @property
    def stale_address(self) -> bool:
        """Whether the record still holds the address from before a move."""
        return "moved-house" in self.errors


@cache
def _nicknames_of(name: str) -> tuple[str, ...]:
    found = sorted(n for n in _namer().nicknames_of(name.lower()) if len(n) >= 3 and n.isalpha())
    # forms that keep the name's first letter (Bill aside) are the ones people actually use
    return tuple(n.capitalize() for n in found for _ in range(3 if n[0] == name[0].lower() else 1))


@cache
def _namer() -> NickNamer:
    return NickNamer()


def nickname(rng: random.Random, given: str) -> str | None:
    """A nickname of ``given`` (William -> Bill), or None when the name has none."""
    options = _nicknames_of(given)
    return rng.choice(options) if options else None


def typo(rng: random.Random, text: str) -> str:
    """``text`` with one keying slip: a neighbouring key, a dropped, doubled or transposed letter."""
    letters = [i for i, ch in enumerate(text) if ch.isalpha()]
    if len(letters) < 3:
        return text + text[-1].lower()
    for _ in range(10):
        pos = rng.choice(letters[1:])
        ch = text[pos]
        kind = rng.randrange(4)
        if kind == 0 and ch.lower() in _NEIGHBOURS:
            sub = rng.choice(_NEIGHBOURS[ch.lower()])
            out = text[:pos] + (sub.upper() if ch.isupper() else sub) + text[pos + 1:]
        elif kind == 1:
            out = text[:pos] + text[pos + 1:]
        elif kind == 2:
            out = text[:pos] + ch + text[pos:]
        else:
            prev = pos - 1
            out = text[:prev] + text[pos] + text[prev] + text[pos + 1:]
        if out != text and out.lower() != text.lower():
            return out
    return text[:-1] if len(text) > 3 else text + "e"


def postcode_typo(rng: random.Random, postcode: str) -> str:
    """``postcode`` with one keying slip in the inward code (digit, letter or transposed letters)."""
    outward, inward = postcode.split(" ")
    for _ in range(10):
        kind = rng.randrange(3)
        if kind == 0:
            new_inward = str((int(inward[0]) + rng.choice((1, 9))) % 10) + inward[1:]
        elif kind == 1:
            new_inward = inward[:2] + rng.choice(_INWARD_LETTERS)
        else:
            new_inward = inward[0] + inward[2] + inward[1]
        if new_inward != inward:
            return f"{outward} {new_inward}"
    return f"{outward} {inward[0]}{inward[2]}{inward[1]}"


class ErrorModel:
    """Turns a person into the demographics one trust records for them, with errors at the configured rates.

    Parameters
    ----------
    rates
        The error rates.
    nhs_numbers
        Supplies valid numbers that nobody holds (a mistyped number that happens to pass the check).
    someone_else
        Returns ``(person_id, nhs_number)`` of another person already written, for a number keyed from the wrong
        notes; None when there is nobody yet.
    """

    def __init__(self, rates: ErrorRates, nhs_numbers: NhsNumberAllocator,
                 someone_else: Callable[[random.Random, str], tuple[str, str] | None]) -> None:
        self.nhs_numbers = nhs_numbers
        self.someone_else = someone_else
        self.quotas = {kind: Quota(getattr(rates, kind.replace("-", "_"))) for kind in ERROR_KINDS}

    def record(self, rng: random.Random, person: Person, known_on: date) -> Recorded:
        """What a trust that has known ``person`` since ``known_on`` holds on the as-of date.

        A surname or address that changed after ``known_on`` has reached the record, unless the record carries the
        ``surname-change`` or ``moved-house`` error, in which case it still holds the old one.
        """
        q = self.quotas
        errors: list[str] = []
        family = person.family
        if q["surname-change"].draw(rng, person.previous_family is not None):
            family = person.previous_family or family
            errors.append("surname-change")
        address = person.address
        if q["moved-house"].draw(rng, person.previous_address is not None):
            address = person.previous_address or address
            errors.append("moved-house")
        given, middle = person.given, person.middle
        if q["nickname"].draw(rng, bool(_nicknames_of(given))):
            given = nickname(rng, given) or given
            errors.append("nickname")
        if q["typo"].draw(rng, True):
            if rng.random() < 0.5:
                given = typo(rng, given)
            else:
                family = typo(rng, family)
            errors.append("typo")
        if q["swapped-names"].draw(rng, True):
            given, family = family, given
            errors.append("swapped-names")
        birth = person.birth_date
        if q["date-transposed"].draw(rng, birth.day <= 12 and birth.day != birth.month):
            birth = date(birth.year, birth.day, birth.month)
            errors.append("date-transposed")
        if q["postcode-typo"].draw(rng, True):
            address = Address(address.line1, address.line2, address.town, address.county,
                              postcode_typo(rng, address.postcode))
            errors.append("postcode-typo")
        recorded = Recorded(given=given, middle=middle, family=family, sex=person.sex, birth_date=birth,
                            address=address, nhs_number=person.nhs_number, nhs_status=VERIFIED, errors=errors)
        self._nhs(rng, person, recorded)
        return recorded

    def _nhs(self, rng: random.Random, person: Person, recorded: Recorded) -> None:
        q = self.quotas
        if q["missing-nhs-number"].draw(rng, True, forced=person.nhs_number is None):
            recorded.nhs_number = None
            recorded.nhs_status = rng.choice(MISSING_STATUSES)
            recorded.errors.append("missing-nhs-number")
            q["mistyped-nhs-number"].draw(rng, False)
            q["untraced"].draw(rng, False)
            return
        number = person.nhs_number or ""
        mistyped = q["mistyped-nhs-number"].draw(rng, True)
        if mistyped:
            recorded.nhs_number, recorded.nhs_error, recorded.nhs_owner = self._mistype(rng, person, number)
            recorded.errors.append("mistyped-nhs-number")
        if q["untraced"].draw(rng, True, forced=mistyped):
            recorded.nhs_status = rng.choice(UNTRACED_STATUSES)
            recorded.errors.append("untraced")

    def _mistype(self, rng: random.Random, person: Person, number: str) -> tuple[str, str, str | None]:
        roll = rng.random()
        if roll < 0.2:
            other = self.someone_else(rng, person.person_id)
            if other is not None:
                return other[1], "other-person", other[0]
        if roll < 0.4:
            return self.nhs_numbers.unissued(), "unissued", None
        for _ in range(50):
            position = rng.randrange(3, 10)
            candidate = invalid_nhs_number(number, position, str(rng.randrange(10)))
            if candidate is not None:
                return candidate, "invalid-check", None
        return number[:9] + str((int(number[9]) + 1) % 10), "invalid-check", None
