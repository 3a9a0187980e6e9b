"""Identifiers the region hands out: NHS numbers, hospital numbers, accession and placer numbers, DICOM UIDs.

Every allocator is deterministic and unique within its namespace. Numbers are spread over their space by a fixed
permutation (an affine map modulo the size of the space), so that they look issued rather than counted, yet no
table of used numbers is kept: memory stays constant however large the region.
"""

from __future__ import annotations

import math
import re

from pydicom.uid import PYDICOM_ROOT_UID, generate_uid

from mpi import check_digit, is_valid_nhs_number
from priorscan.errors import ConfigurationError

NHS_TEST_PREFIX = "999"
_NHS_SPACE = 1_000_000  # six free digits after 999 and before the check digit


def _coprime_step(space: int, start: int) -> int:
    step = start
    while math.gcd(step, space) != 1:
        step += 1
    return step


class NhsNumberAllocator:
    """NHS numbers from the 999 test range (never issued to real people), with valid Modulus 11 check digits.

    Issued numbers are taken from the start of a fixed permutation of the range; numbers deliberately left
    unissued (for mistyped-but-valid numbers that belong to nobody) from its end, so the two never meet.

    Parameters
    ----------
    salt
        Offsets the permutation, so that different seeds issue different numbers.
    """

    capacity = 909_000  # of the 10^6 nine-digit stems, about 1 in 11 has no valid check digit

    def __init__(self, salt: int = 0) -> None:
        self._step = _coprime_step(_NHS_SPACE, 618_034)
        self._offset = salt % _NHS_SPACE
        self._next_issued = 0
        self._next_unissued = _NHS_SPACE - 1
        self.issued = 0

    def _candidate(self, position: int) -> str | None:
        stem = NHS_TEST_PREFIX + f"{(position * self._step + self._offset) % _NHS_SPACE:06d}"
        check = check_digit(stem)
        return None if check is None else stem + str(check)

    def issue(self) -> str:
        """The next NHS number issued to a person."""
        while self._next_issued < self._next_unissued:
            number = self._candidate(self._next_issued)
            self._next_issued += 1
            if number is not None:
                self.issued += 1
                return number
        raise ConfigurationError("the 999 test range has no NHS numbers left for this many people")

    def unissued(self) -> str:
        """A valid NHS number that no person of the region holds."""
        while self._next_unissued > self._next_issued:
            number = self._candidate(self._next_unissued)
            self._next_unissued -= 1
            if number is not None:
                return number
        raise ConfigurationError("the 999 test range has no unissued NHS numbers left")


def invalid_nhs_number(number: str, position: int, replacement: str) -> str | None:
    """``number`` with digit ``position`` replaced so that the check fails; None if this replacement passes."""
    candidate = number[:position] + replacement + number[position + 1:]
    if candidate == number or is_valid_nhs_number(candidate):
        return None
    return candidate


_TOKEN = re.compile(r"\[A-Z\]|\\d|[A-Z0-9]")
_QUANT = re.compile(r"\{(\d+)\}")


class PatternNumbers:
    """Hospital numbers that fully match a trust's ``hospital_number_pattern``.

    Understands the patterns trusts use: anchors, literal capitals and digits, ``[A-Z]`` and ``\\d``, each optionally
    repeated ``{n}`` times (``^[A-Z]{2}\\d{6}$``, ``^Q\\d{6}$``, ``^\\d{8}$``). Anything richer is refused, so a
    configuration change cannot silently produce numbers the trust would reject.
    """

    def __init__(self, pattern: str | None, salt: int = 0) -> None:
        self.pattern = pattern or r"^\d{8}$"
        self._slots = self._parse(self.pattern)
        self.space = math.prod(len(alphabet) for alphabet in self._slots)
        # a step near the golden section of the space scatters consecutive numbers across it
        self._step = _coprime_step(self.space, int(self.space * 0.6180339887) + salt % 1_000)
        self._offset = (salt * 104_729) % self.space
        self._next = 0

    @staticmethod
    def _parse(pattern: str) -> list[str]:
        body = pattern.removeprefix("^").removesuffix("$")
        slots: list[str] = []
        pos = 0
        while pos < len(body):
            token = _TOKEN.match(body, pos)
            if token is None:
                raise ConfigurationError(f"hospital number pattern {pattern!r} is beyond what the generator knows")
            text = token.group(0)
            alphabet = ("ABCDEFGHIJKLMNOPQRSTUVWXYZ" if text == "[A-Z]" else "0123456789" if text == r"\d" else text)
            pos = token.end()
            quant = _QUANT.match(body, pos)
            count = 1
            if quant is not None:
                count = int(quant.group(1))
                pos = quant.end()
            slots.extend([alphabet] * count)
        if not slots:
            raise ConfigurationError(f"hospital number pattern {pattern!r} is empty")
        return slots

    def next(self) -> str:
        """The next unused hospital number."""
        if self._next >= self.space:
            raise ConfigurationError("a trust's hospital number pattern has no numbers left")
        value = (self._next * self._step + self._offset) % self.space
        self._next += 1
        chars = []
        for alphabet in reversed(self._slots):
            value, digit = divmod(value, len(alphabet))
            chars.append(alphabet[digit])
        return "".join(reversed(chars))


class Counter:
    """Sequential numbers behind a fixed prefix (accession numbers, placer order numbers, control ids)."""

    def __init__(self, prefix: str, width: int, start: int = 1) -> None:
        self.prefix = prefix
        self.width = width
        self._next = start

    def next(self) -> str:
        """The next number."""
        value = f"{self.prefix}{self._next:0{self.width}d}"
        self._next += 1
        return value


class UidFactory:
    """DICOM UIDs, reproducible from the seed: the same seed gives the same UIDs, different seeds different ones."""

    def __init__(self, seed: int) -> None:
        self._seed = str(seed)
        self._count = 0

    def next(self, kind: str) -> str:
        """A new UID; ``kind`` (study, series, sop, event) only adds entropy."""
        self._count += 1
        return generate_uid(prefix=PYDICOM_ROOT_UID, entropy_srcs=["regionsynth", self._seed, kind, str(self._count)])
