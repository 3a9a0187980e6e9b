"""The expected tier of an order: the default rule table of REFERENCE.md with its exceptions."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest

from regionsynth.orders import comparable, expected_tier
from regionsynth.procedures import by_code

ORDERED = datetime(2025, 6, 20, 10, 0)


def _prior(code: str, days_ago: int):  # type: ignore[no-untyped-def]
    return SimpleNamespace(procedure=by_code()[code], performed=ORDERED - timedelta(days=days_ago, hours=1))


@pytest.mark.parametrize("code,prior,days,age,priority,reason,tier", [
    ("CHEAD", "CHEAD", 10, 50, "routine", "", "warning"),  # CT same region within 30 days
    ("CHEAD", "CHEAD", 60, 50, "routine", "", "info"),  # within 90 days only
    ("CHEAD", "CHEAD", 120, 50, "routine", "", "clear"),  # beyond every window
    ("CPULA", "CPULA", 10, 50, "routine", "", "info"),  # CT angiography: warning only within 7 days
    ("CHEAD", "CHEAD", 1, 50, "stat", "Trauma - RTC, transferred", "info"),  # trauma never suppressed, shown
    ("CCHAPC", "CCHAPC", 20, 60, "routine", "staging", "info"),  # oncology staging downgraded
    ("XWRIL", "XWRIL", 20, 8, "routine", "", "warning"),  # paediatric ionising repeat escalated
    ("XWRIL", "XWRIL", 20, 30, "routine", "", "info"),  # the same adult repeat stays information
    ("XWRIL", "XWRIR", 3, 30, "routine", "", "clear"),  # left is not right
    ("XCHES", "XCHES", 5, 70, "routine", "", "warning"),  # chest X-ray within 7 days
    ("UABDO", "URENA", 10, 40, "routine", "", "info"),  # ultrasound: information only, same region
    ("MKNEL", "XKNEL", 5, 40, "routine", "", "clear"),  # different modality
])
def test_expected_tier(code: str, prior: str, days: int, age: int, priority: str, reason: str, tier: str) -> None:
    found, which = expected_tier(by_code()[code], ORDERED, age, priority, reason, [_prior(prior, days)])
    assert found == tier
    assert (which is None) == (tier == "clear")


def test_a_prior_after_the_order_does_not_count() -> None:
    later = SimpleNamespace(procedure=by_code()["CHEAD"], performed=ORDERED + timedelta(hours=2))
    assert expected_tier(by_code()["CHEAD"], ORDERED, 50, "routine", "", [later]) == ("clear", None)


def test_bilateral_is_comparable_with_either_side() -> None:
    codes = by_code()
    assert comparable(codes["XMAML"], codes["XMAMB"]) and comparable(codes["XMAMB"], codes["XMAMR"])
    assert not comparable(codes["XMAML"], codes["XMAMR"])
