"""DICOM dates and times: the sender's local time (Europe/London) unless Timezone Offset From UTC says otherwise.

DICOM DA, TM and DT values carry no zone of their own. PS3.3 C.12.1.1.8: they are the local time of the sender,
unless Timezone Offset From UTC (0008,0201) gives the offset (``+0100``, ``-0500``) of every date and time of the
object, and a DT value may carry its own suffix (``20260801003000+0100``). The five trusts are in Europe/London
(GMT, BST from the last Sunday of March to the last Sunday of October), so:

- an instant (the study's date and time) is the local time in Europe/London when no offset is given, and the
  stated offset's time otherwise; it is stored in UTC;
- the study *date* is a London calendar date: the DA as sent when no offset is given (or no time), else the London
  date of the instant (``20260731`` ``233000`` with offset ``+0000`` is 1 August in London, in BST);
- a local time that falls twice in London (the autumn hour) is read as the first (BST), one that does not exist
  (the spring hour) as if the clocks had not yet changed: at day resolution neither moves a date.

A malformed offset is not guessed at: it is ignored (local time assumed) and the caller is told. Pure functions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

LOCAL_ZONE = ZoneInfo("Europe/London")


def parse_da(value: str | None) -> date | None:
    """A DICOM DA (``YYYYMMDD``, also ``YYYY.MM.DD`` from old devices); None when empty or invalid."""
    digits = "".join(c for c in (value or "") if c.isdigit())[:8]
    if len(digits) != 8:
        return None
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None


def parse_tm(value: str | None) -> time | None:
    """A DICOM TM (``HHMMSS.FFFFFF``, ``HHMM``, ``HH``, and ``HH:MM:SS`` from ACR-NEMA devices); None when invalid."""
    text = (value or "").strip()
    if not text:
        return None
    whole, _, fraction = text.partition(".")
    digits = whole.replace(":", "")
    if not digits.isdigit() or len(digits) not in (2, 4, 6):
        return None
    hh, mm, ss = (int(digits[i:i + 2]) if len(digits) >= i + 2 else 0 for i in (0, 2, 4))
    micro = int((fraction + "000000")[:6]) if fraction.isdigit() else 0
    if hh > 23 or mm > 59 or ss > 60:
        return None
    return time(hh, mm, min(ss, 59), micro)


_OFFSET = re.compile(r"(?:UTC|GMT)?\s*([+-])(\d{2}):?(\d{2})")


def parse_offset(value: str | None) -> timezone | None:
    """Timezone Offset From UTC (``+0100``, ``-0500``; also ``UTC-04:00`` as one vendor writes it); None when
    absent or malformed (outside -12:00 to +14:00, or not an offset)."""
    text = (value or "").strip().upper()
    if not text:
        return None
    if text in ("Z", "UTC", "GMT", "+0000", "-0000"):
        return UTC
    match = _OFFSET.fullmatch(text)
    if not match:
        return None
    sign, hours, minutes = match.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    if int(minutes) >= 60 or delta > timedelta(hours=14):
        return None
    delta = -delta if sign == "-" else delta
    if delta < timedelta(hours=-12):
        return None
    return timezone(delta)


@dataclass(frozen=True)
class StudyTime:
    """A study's instant (UTC; None without a time) and its London calendar date, and what could not be read."""

    instant: datetime | None
    local_date: date | None
    note: str | None = None


def _aware(day: date, moment: time, zone: tzinfo) -> datetime:
    return datetime.combine(day, moment).replace(tzinfo=zone)


def study_time(da: str | None, tm: str | None, offset: str | None = None) -> StudyTime:
    """The instant and London date of a DICOM date and time, read in the sender's zone.

    Parameters
    ----------
    da, tm : str or None
        The DA and TM values (Study Date and Study Time, or any other pair).
    offset : str, optional
        Timezone Offset From UTC (0008,0201) of the object.

    Examples
    --------
    >>> study_time("20260801", "003000").instant.isoformat()  # BST: 23:30 UTC the day before
    '2026-07-31T23:30:00+00:00'
    >>> study_time("20260731", "233000", "+0000").local_date.isoformat()  # 00:30 BST
    '2026-08-01'
    """
    day = parse_da(da)
    if day is None:
        return StudyTime(None, None)
    zone: tzinfo = LOCAL_ZONE
    note = None
    if offset is not None and str(offset).strip():
        stated = parse_offset(offset)
        if stated is None:
            note = f"Timezone Offset From UTC {str(offset).strip()[:20]!r} not read: local (Europe/London) time assumed"
        else:
            zone = stated
    moment = parse_tm(tm)
    if moment is None:
        return StudyTime(None, day, note)
    local = _aware(day, moment, zone)
    instant = local.astimezone(UTC)
    london_date = day if zone is LOCAL_ZONE else instant.astimezone(LOCAL_ZONE).date()
    return StudyTime(instant, london_date, note)


def parse_dt(value: str | None, offset: str | None = None) -> datetime | None:
    """A DICOM DT (``YYYYMMDDHHMMSS.FFFFFF&ZZXX``) as a UTC instant: its own suffix, else ``offset``, else London."""
    text = (value or "").strip()
    match = re.fullmatch(r"(\d{8})(\d{2,6}(?:\.\d{1,6})?)?([+-]\d{4})?", text)
    if not match:
        return None
    digits, clock, suffix = match.groups()
    day = parse_da(digits)
    if day is None:
        return None
    moment = parse_tm(clock) if clock else time(0, 0)
    if moment is None:
        return None
    zone = parse_offset(suffix) or parse_offset(offset) or LOCAL_ZONE
    return _aware(day, moment, zone).astimezone(UTC)
