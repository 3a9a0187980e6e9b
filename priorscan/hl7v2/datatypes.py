"""HL7 v2 datatypes read from a field's repetition: HD, CX, XPN, XAD, XTN, and TS/DTM and DT with time zones.

Values are unescaped and stripped; a component not sent is ``""`` and one sent as the HL7 null keeps the text
:data:`~priorscan.hl7v2.delimiters.NULL` (``""``), so that adapters can tell *not sent* (keep what is known) from
*delete*. The layouts are those of v2.5.1, which v2.3 to v2.4 share for the components read here.

Time (HL7 v2.5 ch. 2A, DTM): ``YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]``. A time without an offset is the
sender's local time, which for the consortium is Europe/London (GMT in winter, BST in summer): ``20260801003000``
and ``20260801003000+0100`` are the same instant, 31 July 23:30 UTC, on the local date 1 August. A local time that
does not exist (the hour skipped when the clocks go forward) or exists twice (the hour repeated when they go back)
is read with the offset in force before the change; the local date is never affected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from priorscan.hl7v2.er7 import Composite

#: The time zone of the consortium's senders: HL7 v2 times without an offset are local time here.
LOCAL_ZONE = ZoneInfo("Europe/London")
_DTM = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,4}))?([+-]\d{4})?")


@dataclass(frozen=True, slots=True)
class Timestamp:
    """An HL7 TS/DTM read: the instant (UTC), the calendar date where the sender is, and what was sent."""

    instant: datetime  # timezone-aware, UTC
    local_date: date  # the date on the sender's calendar (in its zone, or at the offset sent, seen from its zone)
    digits: int  # how many date and time digits were sent: 4 (year) ... 14 (seconds)
    offset_sent: bool  # whether the value carried its own +/-ZZZZ

    @property
    def has_time(self) -> bool:
        """Whether a time of day was sent (not only a date)."""
        return self.digits > 8


def parse_timestamp(value: str | None, zone: ZoneInfo = LOCAL_ZONE) -> Timestamp | None:
    """An HL7 TS/DTM; None when empty, the HL7 null, or not a valid date and time.

    Parameters
    ----------
    value
        The value (a TS's first component is read when the whole field is given).
    zone
        Where the sender's local time is (a value without an offset is read there).
    """
    if not value:
        return None
    text = value.split("^", 1)[0].strip()
    m = _DTM.fullmatch(text)
    if m is None:
        return None
    y, mo, d, h, mi, s, fraction, offset = m.groups()
    try:
        naive = datetime(int(y), int(mo or 1), int(d or 1), int(h or 0), int(mi or 0), int(s or 0),
                         int((fraction or "0").ljust(6, "0")[:6]))
    except ValueError:
        return None
    digits = len(text.split(".", 1)[0].split("+", 1)[0].split("-", 1)[0])
    if offset:
        hours, minutes = int(offset[1:3]), int(offset[3:5])
        if hours > 14 or minutes > 59:
            return None
        sign = 1 if offset[0] == "+" else -1
        aware = naive.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes)))
        instant = aware.astimezone(UTC)
        local = instant.astimezone(zone).date() if digits > 8 else naive.date()
        return Timestamp(instant, local, digits, True)
    return Timestamp(naive.replace(tzinfo=zone).astimezone(UTC), naive.date(), digits, False)


def parse_date(value: str | None) -> date | None:
    """An HL7 DT (``YYYYMMDD``; a TS/DTM gives its date as sent); None when not a full valid date."""
    if not value:
        return None
    text = value.split("^", 1)[0].strip()
    if len(text) < 8 or not text[:8].isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


def format_timestamp(moment: datetime) -> str:
    """An aware moment as an HL7 DTM to the second, with its offset (``20260801003000+0100``)."""
    offset = moment.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return moment.strftime("%Y%m%d%H%M%S") + f"{sign}{minutes // 60:02d}{minutes % 60:02d}"


@dataclass(frozen=True, slots=True)
class HD:
    """Hierarchic designator: namespace id, universal id, universal id type (``RTK``; ``&2.16.840...&ISO``)."""

    namespace_id: str = ""
    universal_id: str = ""
    universal_id_type: str = ""

    @property
    def names(self) -> list[str]:
        """The names given (namespace id, then universal id), without nulls."""
        return [n for n in (self.namespace_id, self.universal_id) if n and n != '""']


def _hd(c: Composite, n: int) -> HD:
    return HD(c.text(n, 1), c.text(n, 2), c.text(n, 3))


@dataclass(frozen=True, slots=True)
class CX:
    """Extended composite id: PID-3, PID-2, MRG-1."""

    id: str  # CX.1
    check_digit: str  # CX.2
    assigning_authority: HD  # CX.4
    identifier_type: str  # CX.5, upper case
    assigning_facility: HD  # CX.6

    @classmethod
    def of(cls, c: Composite) -> CX:
        return cls(c.text(1), c.text(2), _hd(c, 4), c.text(5).upper(), _hd(c, 6))


@dataclass(frozen=True, slots=True)
class XPN:
    """Extended person name: PID-5."""

    family: str  # XPN.1 (FN.1 surname)
    given: str  # XPN.2
    further_given: str  # XPN.3 (second and further given names or initials)
    suffix: str  # XPN.4
    prefix: str  # XPN.5
    name_type: str  # XPN.7, upper case (L legal, ...)

    @classmethod
    def of(cls, c: Composite) -> XPN:
        return cls(c.text(1), c.text(2), c.text(3), c.text(4), c.text(5), c.text(7).upper())


@dataclass(frozen=True, slots=True)
class XAD:
    """Extended address: PID-11."""

    street: str  # XAD.1 (SAD.1)
    other: str  # XAD.2
    city: str  # XAD.3
    state: str  # XAD.4 (county)
    postcode: str  # XAD.5
    country: str  # XAD.6
    address_type: str  # XAD.7, upper case (H home ...)

    @classmethod
    def of(cls, c: Composite) -> XAD:
        return cls(c.text(1), c.text(2), c.text(3), c.text(4), c.text(5), c.text(6), c.text(7).upper())

    @property
    def lines(self) -> list[str]:
        """Street, other designation, city and county, as sent (nulls included)."""
        return [self.street, self.other, self.city, self.state]


@dataclass(frozen=True, slots=True)
class XTN:
    """Extended telecommunication number: PID-13, PID-14."""

    number: str  # XTN.1 (the v2.3 formatted number)
    use: str  # XTN.2, upper case (PRN primary residence ...)
    equipment: str  # XTN.3
    email: str  # XTN.4
    area: str  # XTN.6
    local: str  # XTN.7
    unformatted: str  # XTN.12

    @classmethod
    def of(cls, c: Composite) -> XTN:
        return cls(c.text(1), c.text(2).upper(), c.text(3), c.text(4), c.text(6), c.text(7), c.text(12))


__all__ = ["CX", "HD", "LOCAL_ZONE", "XAD", "XPN", "XTN", "Timestamp", "format_timestamp", "parse_date",
           "parse_timestamp"]
