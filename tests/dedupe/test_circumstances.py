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


@pytest.mark.parametrize(("priority", "text", "expected", "why"), [
    # issue 14's cases
    ("S", "RTC. Pregnant - not for contrast", {TRAUMA, PREGNANCY},
     "the 'not' negates the contrast, not the pregnancy (was: pregnancy lost)"),
    ("routine", "Referred from GP with headache", set(), "a GP referral is no inter-hospital transfer"),
    ("routine", "Post-op day 3, ?anastomotic leak", set(), "a post-operative complication is no planned follow-up"),
    ("routine", "not metastatic disease", set(), "negated oncology"),
    # pregnancy: negation applies to the term it negates
    ("routine", "Patient is 12 weeks pregnant, not for contrast", {PREGNANCY}, "the negation is of the contrast"),
    ("routine", "not for contrast as pregnant", {PREGNANCY}, "'as' ends the negation's scope"),
    ("routine", "No contrast, pregnant", {PREGNANCY}, "another clause"),
    ("routine", "RTC but not pregnant", {TRAUMA}, "negated after 'but'"),
    ("routine", "Pregnant: no", set(), "a form's answer"),
    ("routine", "Pregnant? N", set(), "a form's short answer"),
    ("routine", "Pregnancy status: not pregnant", set(), "the status named, then negated"),
    ("routine", "Pregnancy test positive", {PREGNANCY}, "a positive test"),
    ("routine", "denies pregnancy", set(), "denies"),
    ("routine", "no longer pregnant", set(), "no longer"),
    ("routine", "non-pregnant", set(), "one hyphenated word"),
    ("routine", "?pregnant", {PREGNANCY}, "a queried pregnancy counts: the safe side"),
    ("routine", "possibly pregnant", {PREGNANCY}, "so does a possible one"),
    # trauma
    ("routine", "no trauma", set(), "negated trauma"),
    ("routine", "denies trauma, fell at home", set(), "denied"),
    ("routine", "no history of trauma", set(), "a multi-word cue"),
    ("routine", "Not a trauma call", set(), "one word between cue and term"),
    ("routine", "Trauma? No", set(), "answered no"),
    ("routine", "non-emergency", set(), "one hyphenated word"),
    # transfer: inter-hospital only
    ("routine", "Referred from the GP", set(), "GP"),
    ("routine", "Transferred from ED to CT", set(), "within the hospital"),
    ("routine", "transferred from the ward", set(), "within the hospital"),
    ("routine", "Transferred from Brighton for neurosurgery", {TRANSFER}, "from another hospital"),
    ("routine", "Inter-hospital transfer", {TRANSFER}, "stated"),
    ("routine", "Referred from another hospital", {TRANSFER}, "stated"),
    # oncology
    ("routine", "No known malignancy", set(), "'no known' negates"),
    ("routine", "no evidence of metastases", set(), "'no evidence of' negates"),
    ("routine", "metastases excluded", set(), "negated after"),
    ("routine", "?metastases", set(), "a query is no known cancer's staging"),
    ("routine", "query staging", set(), "nor is a queried staging"),
    ("routine", "Not for staging", set(), "one word between cue and term"),
    ("routine", "Not a trauma, known malignancy for restaging", {ONCOLOGY}, "the negation ends with its clause"),
    # planned follow-up
    ("routine", "post-op day 2, collection?", set(), "post-op alone is no plan"),
    ("routine", "CTPA PE protocol", set(), "a scanning protocol is no follow-up plan"),
    ("routine", "Stroke protocol", set(), "neither"),
    ("routine", "Planned post-op CT, ?leak", {PLANNED_FOLLOW_UP}, "planned"),
    ("routine", "Post-op follow-up per protocol", {PLANNED_FOLLOW_UP}, "a follow-up per protocol"),
    ("routine", "unplanned return to theatre", set(), "unplanned"),
    ("routine", "not planned", set(), "negated"),
    ("routine", "routine f/u", {PLANNED_FOLLOW_UP}, "H-CMP-17: f/u is follow-up (was not read: a warning for a plan)"),
    ("routine", "post-op f/u", {PLANNED_FOLLOW_UP}, "H-CMP-17: post-op follow-up (was not read)"),
    ("routine", "oncology f/u", {ONCOLOGY}, "H-CMP-17: oncology follow-up (was not read)"),
    ("routine", "CXR f/u 6/52", set(), "a follow-up alone is no plan (the rule file's judgement)"),
    ("routine", "unplanned f/u", set(), "unplanned"),
    ("stat", "repat from St George's", {TRAUMA, TRANSFER}, "H-CMP-17: repat is a repatriation (was not read)"),
])
def test_negation_and_keywords_read_in_context(priority, text, expected, why) -> None:  # type: ignore[no-untyped-def]
    found = read_circumstances(RULES, priority=priority, reason=RequestReason(text))
    assert found == frozenset(expected), why


@pytest.mark.parametrize(("text", "pregnant", "why"), [
    ("12/40, abdominal pain", True, "gestation in weeks over forty (H-CMP-03; was not read)"),
    ("RTC, 36+4/40, abdo pain", True, "with days, beside a trauma (was not read: the trauma downgrade applied)"),
    ("bHCG positive, ?ectopic", True, "a positive hCG (was not read)"),
    ("Preg test +ve", True, "+ve is positive (was not read)"),
    ("UPT +ve, RIF pain", True, "urine pregnancy test positive (was not read)"),
    ("primigravida, RUQ pain", True, "was not read"),
    ("preg test -ve", False, "-ve is negative"),
    ("bHCG -ve, ?appendicitis", False, "a negative hCG is no pregnancy"),
    ("LMP 6/52 ago", False, "6/52 is an interval of weeks, not a gestation"),
    ("BP 120/40, collapse", False, "a blood pressure is no gestation"),
    ("Ca prostate, PSA +ve", False, "a positive PSA is no pregnancy"),
    ("G2P1 at 20 weeks, RIF pain", True, "gravida and para with a gestation (H-CMP-12; was not read)"),
    ("G3P2, 12+3 wks, abdo pain", True, "with days and wks (was not read)"),
    ("G2P1, LIF pain", True, "more pregnancies than births: gravida counts this one (was not read)"),
    ("G1 P0, ?ectopic", True, "a first pregnancy, spaced (was not read)"),
    ("G2P2, RUQ pain", False, "as many births as pregnancies: not pregnant now"),
    ("G3P1+2, pelvic pain", False, "and with the losses after the plus"),
    ("Pt is 20wks preg, RTC", True, "H-CMP-17: 'preg' is pregnant (was not read: the trauma downgrade applied)"),
    ("?preg, LIF pain", True, "H-CMP-17: a queried pregnancy counts, erring on the side of the fetus (was not read)"),
    ("pt pregant, fall from height", True, "H-CMP-17: the commonest misspelling (was not read)"),
    ("not preg", False, "negated"),
    ("Preg? N", False, "answered no"),
    ("preg test neg", False, "a pregnancy test is no pregnancy"),
    ("preg status unknown", False, "nor a pregnancy status"),
    ("preg test positive", True, "a positive one is"),
])
def test_uk_pregnancy_shorthand(text: str, pregnant: bool, why: str) -> None:
    found = read_circumstances(RULES, priority=None, reason=RequestReason(text))
    assert (PREGNANCY in found) is pregnant, why
