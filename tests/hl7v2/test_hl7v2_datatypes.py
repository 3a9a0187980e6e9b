"""priorscan.hl7v2.datatypes: CX, XPN, XAD, XTN, and HL7 time read in the sender's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from priorscan.hl7v2 import CX, XAD, XPN, XTN, parse_date, parse_message, parse_timestamp
from priorscan.hl7v2.datatypes import format_timestamp

PID = ("PID|1||AB1^^^RTK&2.16.840.1.113883.2.1.3.1&ISO^MR^RTK01||SMITH-JONES^ANNE^MARIE^JR^MRS^^L|"
       "|||||1 HIGH ST^FLAT 2^GUILDFORD^SURREY^GU1 1AA^GBR^H||01483 000000^PRN^PH^a@b.uk^44^1483^000000")


def pid():  # type: ignore[no-untyped-def]
    text = "MSH|^~\\&|PAS|RTK|X|Y|20240101||ADT^A08|C1|P|2.5\r" + PID
    found = parse_message(text).segment("PID")
    assert found is not None
    return found


def test_cx() -> None:
    cx = CX.of(pid().composite(3))
    assert (cx.id, cx.identifier_type, cx.assigning_authority.namespace_id, cx.assigning_authority.universal_id,
            cx.assigning_authority.universal_id_type, cx.assigning_facility.names) == (
        "AB1", "MR", "RTK", "2.16.840.1.113883.2.1.3.1", "ISO", ["RTK01"])


def test_xpn_xad_xtn() -> None:
    segment = pid()
    name = XPN.of(segment.composite(5))
    assert (name.family, name.given, name.further_given, name.suffix, name.prefix, name.name_type) == (
        "SMITH-JONES", "ANNE", "MARIE", "JR", "MRS", "L")
    address = XAD.of(segment.composite(11))
    assert (address.lines, address.postcode, address.country, address.address_type) == (
        ["1 HIGH ST", "FLAT 2", "GUILDFORD", "SURREY"], "GU1 1AA", "GBR", "H")
    phone = XTN.of(segment.composite(13))
    assert (phone.number, phone.use, phone.email, phone.area, phone.local) == (
        "01483 000000", "PRN", "a@b.uk", "1483", "000000")


@pytest.mark.parametrize(("value", "instant", "local_date", "reason"), [
    ("20260801003000+0100", datetime(2026, 7, 31, 23, 30, tzinfo=UTC), date(2026, 8, 1), "BST, offset sent"),
    ("20260801003000", datetime(2026, 7, 31, 23, 30, tzinfo=UTC), date(2026, 8, 1), "BST, local time"),
    ("20260115003000", datetime(2026, 1, 15, 0, 30, tzinfo=UTC), date(2026, 1, 15), "GMT, local time"),
    ("20260731233000+0000", datetime(2026, 7, 31, 23, 30, tzinfo=UTC), date(2026, 8, 1), "UTC sent: London's date"),
    ("20260801003000-0500", datetime(2026, 8, 1, 5, 30, tzinfo=UTC), date(2026, 8, 1), "another offset"),
    ("202608010030", datetime(2026, 7, 31, 23, 30, tzinfo=UTC), date(2026, 8, 1), "to the minute"),
    ("20260801", datetime(2026, 7, 31, 23, 0, tzinfo=UTC), date(2026, 8, 1), "a date: local midnight"),
    ("20260801003000.25", datetime(2026, 7, 31, 23, 30, 0, 250000, tzinfo=UTC), date(2026, 8, 1), "fraction"),
    ("20261025013000", datetime(2026, 10, 25, 0, 30, tzinfo=UTC), date(2026, 10, 25), "repeated hour: BST"),
    ("20260329013000", datetime(2026, 3, 29, 1, 30, tzinfo=UTC), date(2026, 3, 29), "skipped hour: GMT"),
    ("20260801003000^S", datetime(2026, 7, 31, 23, 30, tzinfo=UTC), date(2026, 8, 1), "v2.3 TS precision"),
])
def test_times_without_an_offset_are_the_senders_local_time(value: str, instant: datetime, local_date: date,
                                                             reason: str) -> None:
    stamp = parse_timestamp(value)
    assert stamp is not None, reason
    assert (stamp.instant, stamp.local_date) == (instant, local_date), reason
    assert stamp.instant.tzinfo is UTC


def test_the_senders_zone_is_a_parameter() -> None:
    stamp = parse_timestamp("20260801003000", ZoneInfo("America/New_York"))
    assert stamp is not None and stamp.instant == datetime(2026, 8, 1, 4, 30, tzinfo=UTC)


@pytest.mark.parametrize("value", ["", '""', "2026-08-01", "20261301", "20260230", "20260801256000",
                                   "20260801003000+2500", "2026080100300"])
def test_what_is_not_a_time_is_none(value: str) -> None:
    assert parse_timestamp(value) is None


def test_dates() -> None:
    assert parse_date("19800102") == date(1980, 1, 2)
    assert parse_date("19800102123000+0100") == date(1980, 1, 2)  # the date as sent
    assert parse_date("1980") is None and parse_date("19800231") is None


def test_our_own_times_carry_their_offset() -> None:
    assert format_timestamp(datetime(2026, 8, 1, 0, 30, tzinfo=ZoneInfo("Europe/London"))) == "20260801003000+0100"
    assert format_timestamp(datetime(2026, 1, 1, 12, 0, tzinfo=UTC)) == "20260101120000+0000"
