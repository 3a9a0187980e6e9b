"""imaging.dicom_time: DICOM dates and times are the sender's local time (Europe/London) unless an offset is given."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imaging.dicom_time import LOCAL_ZONE, parse_dt, parse_offset, parse_tm, study_time


@pytest.mark.parametrize(("da", "tm", "offset", "instant", "local", "reason"), [
    ("20260801", "003000", None, "2026-07-31T23:30:00+00:00", "2026-08-01",
     "no offset: London time, BST in summer, so half past midnight is 23:30 UTC the day before"),
    ("20260115", "003000", None, "2026-01-15T00:30:00+00:00", "2026-01-15", "no offset in winter: GMT is UTC"),
    ("20260731", "233000", "+0000", "2026-07-31T23:30:00+00:00", "2026-08-01",
     "stated UTC: 23:30 UTC is 00:30 BST on 1 August, a London date"),
    ("20260801", "003000", "+0100", "2026-07-31T23:30:00+00:00", "2026-08-01", "an offset that agrees with BST"),
    ("20260301", "200000", "-0500", "2026-03-02T01:00:00+00:00", "2026-03-02",
     "a sender in New York: 20:00 there is 01:00 on 2 March in London"),
    ("20190316", "132623", "UTC-04:00", "2019-03-16T17:26:23+00:00", "2019-03-16",
     "a GE fluoroscopy unit writes its offset as UTC-04:00"),
    ("20260329", "013000", None, "2026-03-29T01:30:00+00:00", "2026-03-29",
     "the hour the clocks skip in spring: read as GMT, the date unchanged"),
    ("20261025", "013000", None, "2026-10-25T00:30:00+00:00", "2026-10-25",
     "the hour that happens twice in autumn: the first (BST), the date unchanged"),
    ("20260801", "", "+0100", None, "2026-08-01", "no time: no instant, the date as sent"),
    ("20260801", "1015", None, "2026-08-01T09:15:00+00:00", "2026-08-01", "a TM without seconds"),
    ("20260801", "10:15:00", None, "2026-08-01T09:15:00+00:00", "2026-08-01", "an ACR-NEMA TM with colons"),
])
def test_study_time(da: str, tm: str, offset: str | None, instant: str | None, local: str, reason: str) -> None:
    found = study_time(da, tm, offset)
    assert (found.instant.isoformat() if found.instant else None, found.local_date.isoformat()) == (instant, local), \
        reason
    assert found.note is None


def test_a_malformed_offset_is_reported_and_local_time_assumed() -> None:
    found = study_time("20260801", "003000", "+25:00")
    assert found.instant == datetime(2026, 7, 31, 23, 30, tzinfo=UTC)
    assert found.note and "not read" in found.note


@pytest.mark.parametrize(("text", "hours"), [("+0100", 1), ("-0500", -5), ("+0530", 5.5), ("UTC-04:00", -4),
                                             ("+0000", 0), ("Z", 0), ("+1400", 14), ("+1500", None), ("-1300", None),
                                             ("0100", None), ("+01", None), ("", None), ("+0160", None)])
def test_parse_offset(text: str, hours: float | None) -> None:
    zone = parse_offset(text)
    assert (zone.utcoffset(None) / timedelta(hours=1) if zone else None) == hours


@pytest.mark.parametrize(("text", "valid"), [("101500", True), ("101500.123456", True), ("10", True), ("2460", False),
                                             ("1", False), ("ab", False), ("", False)])
def test_parse_tm(text: str, valid: bool) -> None:
    assert (parse_tm(text) is not None) == valid


@pytest.mark.parametrize(("text", "offset", "expected"), [
    ("20260801003000", None, "2026-07-31T23:30:00+00:00"),  # London time
    ("20260801003000+0100", None, "2026-07-31T23:30:00+00:00"),  # its own suffix
    ("20260801003000", "+0000", "2026-08-01T00:30:00+00:00"),  # the object's offset
    ("20260801003000+0000", "+0100", "2026-08-01T00:30:00+00:00"),  # its own suffix wins
    ("2026080100", None, "2026-07-31T23:00:00+00:00"),
    ("not a date", None, None),
])
def test_parse_dt(text: str, offset: str | None, expected: str | None) -> None:
    found = parse_dt(text, offset)
    assert (found.isoformat() if found else None) == expected


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2040, 12, 31)),
       st.sampled_from([None, "+0000", "+0100", "-0500", "+0930"]))
def test_the_local_date_is_the_london_date_of_the_instant(moment: datetime, offset: str | None) -> None:
    found = study_time(moment.strftime("%Y%m%d"), moment.strftime("%H%M%S"), offset)
    assert found.instant is not None and found.local_date is not None
    if offset is None:
        assert found.local_date == moment.date()  # the DA as sent is already a London date
    else:
        assert found.local_date == found.instant.astimezone(LOCAL_ZONE).date()
    assert found.local_date - moment.date() in (timedelta(days=-1), timedelta(0), timedelta(days=1))
    assert isinstance(found.local_date, date)


@pytest.mark.parametrize(("started", "expected", "why"), [
    ("2026-07-31T23:30:00Z", "2026-08-01", "23:30 UTC in summer is 00:30 BST on 1 August (issue 14)"),
    ("2026-08-01T00:30:00+01:00", "2026-08-01", "an offset of its own"),
    ("2026-01-31T23:30:00Z", "2026-01-31", "GMT in winter: the UTC date"),
    ("2026-08-01T00:30:00", "2026-08-01", "no offset: the sender's local time"),
    ("2026-08-01", "2026-08-01", "a date alone"),
])
def test_a_fhir_imaging_study_started_is_a_london_date(started: str, expected: str, why: str) -> None:
    from imaging.fhir_imaging import _started

    day, moment = _started(started)
    assert str(day) == expected, why
    assert moment is None or moment.tzinfo is not None, why
