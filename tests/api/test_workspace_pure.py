"""The workspace's pure parts: the banner's wording, the local day, the dose windows, the worklist's order and the
live channel's cursor."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from api.workspace import dose_windows, format_nhs_number, identity_doubt, local_today, parse_cursor, sse
from api.workspace.banner import TrustRecord, display_name, display_sex
from api.workspace.clock import day_bounds
from api.workspace.worklist import WorklistItem, identity_of_record, nearest_prior_days, sort_items


@pytest.mark.parametrize(("value", "shown"), [
    ("9434765919", "943 476 5919"),  # 3 3 4, as NHS banners write it
    ("943 476 5919", "943 476 5919"),  # already spaced
    ("943-476-5919", "943 476 5919"),
    ("12345", "12345"),  # not ten digits: as sent, never padded into a plausible number
    (None, None),
    ("", None),
])
def test_nhs_numbers_are_written_three_three_four(value: str | None, shown: str | None) -> None:
    assert format_nhs_number(value) == shown


@pytest.mark.parametrize(("family", "given", "shown"), [
    ("Okafor", "Adaeze", "OKAFOR, Adaeze"),
    ("Smith-Jones", "Mary Ann", "SMITH-JONES, Mary Ann"),  # double-barrelled, two given names
    ("Okafor", None, "OKAFOR"),
    (None, "Adaeze", "Adaeze"),
    (None, None, "Name not known"),  # never an empty banner
])
def test_names_are_written_family_first_in_capitals(family: str | None, given: str | None, shown: str) -> None:
    assert display_name(family, given) == shown


def test_sex_is_written_out() -> None:
    assert [display_sex(s) for s in ("female", "male", "other", "unknown", None, "x")] == [
        "Female", "Male", "Other", "Unknown", "Not known", "Not known"]


def record(**overrides: object) -> TrustRecord:
    values: dict[str, object] = dict(trust="RTK", trust_name="Ashford", local_id="AB1", link_state="match",
                                     provisional=False, nhs_number="9434765919", nhs_verified=True, family="A",
                                     given="B", birth_date=None)
    values.update(overrides)
    return TrustRecord(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(("check", "records", "words"), [
    ("confirmed", [record()], None),  # nothing casts doubt
    ("probable", [record()], "only as a possible match"),
    ("unknown", [], "not found in the regional index"),
    ("confirmed", [record(), record(trust="RYR", trust_name="Sussex", link_state="possible-match")],
     "The record at Sussex is linked to this patient only as a possible match"),
    ("confirmed", [record(provisional=True)], "provisional"),
    ("confirmed", [record(), record(trust="RYR", nhs_number="4010232137")], "different NHS numbers"),
])
def test_an_identity_doubt_is_stated_plainly(check: str, records: list[TrustRecord], words: str | None) -> None:
    doubt = identity_doubt(check, records)
    if words is None:
        assert doubt is None
    else:
        assert doubt is not None and words in doubt


@pytest.mark.parametrize(("day", "hours"), [
    (date(2026, 3, 29), 23),  # the clocks go forward: a 23-hour day
    (date(2026, 10, 25), 25),  # and back: 25 hours
    (date(2026, 6, 15), 24),
])
def test_a_local_day_is_bounded_in_its_zone(day: date, hours: int) -> None:
    start, end = day_bounds(day, "Europe/London")
    assert end - start == timedelta(hours=hours)
    assert start.tzinfo is not None and local_today(now=start) == day and local_today(now=end) == day + timedelta(1)


def test_today_is_londons_date_not_utcs() -> None:
    late = datetime(2026, 6, 15, 23, 30, tzinfo=UTC)  # 00:30 BST on the 16th
    assert local_today(now=late) == date(2026, 6, 16)
    assert local_today(now=datetime(2026, 1, 15, 23, 30, tzinfo=UTC)) == date(2026, 1, 15)  # GMT


AS_OF = date(2026, 6, 15)


def test_dose_windows_count_only_ionising_studies_inside_each_window() -> None:
    studies = [
        (AS_OF, "completed", "CT", 2.0),  # the last day of every window
        (AS_OF - timedelta(days=29), "completed", "CT", 1.0),  # the first day of 30 days
        (AS_OF - timedelta(days=30), "completed", "XR", 0.02),  # one day too old for 30 days
        (AS_OF - timedelta(days=100), "completed", "NM", None),  # ionising, no estimate
        (AS_OF - timedelta(days=5), "completed", "US", None),  # not ionising: nowhere
        (AS_OF - timedelta(days=5), "cancelled", "CT", 9.0),  # cancelled: nowhere
        (AS_OF + timedelta(days=1), "completed", "CT", 9.0),  # after the as-of date: nowhere
        (None, "completed", "CT", 3.0),  # no date: only in the total on record
    ]
    got = {w.label: (round(w.total_msv, 3), w.studies, w.without_estimate) for w in dose_windows(studies, AS_OF)}
    assert got == {"Last 30 days": (3.0, 2, 0), "Last 12 months": (3.02, 4, 1), "Last 5 years": (3.02, 4, 1),
                   "All on record": (6.02, 5, 1)}


def item(id_: str, verdict: str, status: str = "open", identity: str = "confirmed", hour: int = 9) -> WorklistItem:
    return WorklistItem(id_, "RTK", id_, datetime(2026, 6, 15, hour, tzinfo=UTC), AS_OF, None, "CT", "head", None,
                        None, "hl7", verdict, identity, status, "active", None, None, 0, None)


def test_the_worklist_puts_warnings_first_then_what_awaits_review() -> None:
    items = [item("clear-known", "clear", "active", hour=7), item("info", "info", hour=8),
             item("warning-done", "warning", "overridden", hour=6), item("warning-open", "warning", hour=11),
             item("clear-unknown", "clear", "active", identity="unknown", hour=10)]
    assert [i.id for i in sort_items(items)] == ["warning-open", "warning-done", "info", "clear-unknown",
                                                 "clear-known"]


def test_the_nearest_prior_and_the_identity_of_an_order() -> None:
    assert nearest_prior_days([{"daysAgo": 40}, {"daysAgo": 3}, {"daysAgo": None}]) == 3
    assert nearest_prior_days([]) is None and nearest_prior_days(None) is None
    assert [identity_of_record(s, p) for s, p in [("match", False), ("possible-match", False), ("match", True),
                                                   (None, None), ("no-match", False)]] == [
        "confirmed", "probable", "probable", "unknown", "unknown"]


def test_a_last_event_id_resumes_only_when_it_is_a_recent_instant() -> None:
    now = datetime(2026, 6, 15, 12, tzinfo=UTC)
    assert parse_cursor("2026-06-15T11:59:00+00:00", now=now) == datetime(2026, 6, 15, 11, 59, tzinfo=UTC)
    assert parse_cursor("2026-06-15T11:59:00", now=now) == datetime(2026, 6, 15, 11, 59, tzinfo=UTC)
    for bad in (None, "", "not a time", "2026-06-13T12:00:00+00:00", "2026-06-16T12:00:00+00:00"):
        assert parse_cursor(bad, now=now) is None


def test_a_server_sent_event_is_framed() -> None:
    framed = sse("change", '{"a": 1}', event_id="x", retry_ms=500)
    assert framed == 'retry: 500\nid: x\nevent: change\ndata: {"a": 1}\n\n'
