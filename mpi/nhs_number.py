"""NHS numbers: the Modulus 11 check (REFERENCE.md) and normalisation."""

from __future__ import annotations

import operator
import re

_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)
_SEPARATORS = re.compile(r"[\s-]")
_TEN_DIGITS = re.compile(r"\d{10}")


def normalise_nhs_number(value: str | None) -> str | None:
    """Digits only (spaces and dashes removed); None when it is not ten digits."""
    if not value:
        return None
    digits = _SEPARATORS.sub("", str(value))
    return digits if _TEN_DIGITS.fullmatch(digits) else None


def check_digit(first_nine: str) -> int | None:
    """The Modulus 11 check digit for nine digits; None when the number cannot be valid (check 10)."""
    if len(first_nine) != len(_WEIGHTS):
        raise ValueError(f"check_digit takes nine digits, not {len(first_nine)}")
    total = sum(map(operator.mul, map(int, first_nine), _WEIGHTS))
    check = 11 - (total % 11)
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def is_valid_nhs_number(value: str | None) -> bool:
    """Whether ``value`` is ten digits whose last is the Modulus 11 check of the first nine, and not one digit ten
    times (:func:`is_placeholder`)."""
    digits = normalise_nhs_number(value)
    if digits is None or is_placeholder(digits):
        return False
    expected = check_digit(digits[:9])
    return expected is not None and expected == int(digits[9])


def is_placeholder(value: str | None) -> bool:
    """Whether ``value`` is one digit ten times (``0000000000``, ``9999999999``). Every such number passes the
    Modulus 11 check, none is issued, and systems key them for "not known": read as a patient's number, every
    record holding one would be one person (H-ID-33)."""
    digits = normalise_nhs_number(value)
    return bool(digits) and len(set(digits or "")) == 1


#: NHS numbers starting 999 are never issued to patients: NHS England reserves them for testing (REFERENCE.md).
TEST_RANGE_PREFIX = "999"


def is_test_range(value: str | None) -> bool:
    """Whether ``value`` is an NHS number of the test range (999…), which no real patient holds."""
    digits = normalise_nhs_number(value)
    return bool(digits and digits.startswith(TEST_RANGE_PREFIX))


def counts_as_nhs_number(value: str | None, *, production: bool) -> bool:
    """Whether ``value`` may be used as a patient's NHS number: ten digits passing Modulus 11 and, in production,
    not of the test range (such a number is kept, flagged as not valid, and never used for matching)."""
    return is_valid_nhs_number(value) and not (production and is_test_range(value))
