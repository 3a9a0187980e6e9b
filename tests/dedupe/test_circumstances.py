"""Reading a request's circumstances from its priority, coded reasons and the words of its reason."""

from __future__ import annotations

import pytest
from dedupe_factories import RULES

from dedupe.circumstances import (
    ONCOLOGY,
    PLANNED_FOLLOW_UP,
    PREGNANCY,
    TRANSFER,
    TRAUMA,
    RequestReason,
    normalise_priority,
    read_circumstances,
)


@pytest.mark.parametrize(("priority", "expected"), [
    ("S", "stat"), ("stat", "stat"), ("STAT", "stat"), ("emergency", "stat"), ("A", "asap"), ("urgent", "urgent"),
    ("R", "routine"), ("routine", "routine"), (None, None), ("", None),
])
def test_priorities_of_hl7_fhir_and_free_text(priority: str | None, expected: str | None) -> None:
    assert normalise_priority(priority) == expected


@pytest.mark.parametrize(("priority", "text", "codes", "pregnant", "expected", "why"), [
    ("S", None, (), None, {TRAUMA}, "HL7 priority S is STAT"),
    ("routine", "RTC, ?c-spine injury", (), None, {TRAUMA}, "road traffic collision is trauma"),
    ("routine", "Restaging after cycle 3", (), None, {ONCOLOGY}, "restaging"),
    ("routine", "Lymphoma surveillance", (), None, {ONCOLOGY}, "surveillance"),
    ("routine", "Post-op check, planned", (), None, {PLANNED_FOLLOW_UP}, "planned post-operative"),
    ("routine", "Transferred from RXC for neurosurgery", (), None, {TRANSFER}, "transfer"),
    ("routine", "Patient is 12 weeks pregnant", (), None, {PREGNANCY}, "pregnant"),
    ("routine", "Not pregnant, LMP 2 weeks ago", (), None, set(), "negated before"),
    ("routine", "Pregnancy test negative", (), None, set(), "negated after"),
    ("routine", "abdominal pain", ("http://snomed.info/sct|77386006",), None, {PREGNANCY}, "pregnancy by code"),
    ("routine", "pregnant", (), False, set(), "an explicit answer wins over the text"),
    ("routine", "headache", (), True, {PREGNANCY}, "an explicit yes"),
    ("routine", "headache", (), None, set(), "nothing special"),
    ("routine", "staggering gait", (), None, set(), "whole words only: 'staging' is not in 'staggering'"),
])
def test_circumstances(priority, text, codes, pregnant, expected, why) -> None:  # type: ignore[no-untyped-def]
    found = read_circumstances(RULES, priority=priority, reason=RequestReason(text, codes, pregnant))
    assert found == frozenset(expected), why
