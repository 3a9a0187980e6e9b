"""The judgement over plain values: every rule of the packaged table, both window edges, comparability, and every
exception (REFERENCE.md, "Comparable scans")."""

from __future__ import annotations

import pytest
from dedupe_factories import RULES, TODAY, exam, facts

from dedupe import judge
from dedupe.circumstances import ONCOLOGY, PLANNED_FOLLOW_UP, PREGNANCY, TRANSFER, TRAUMA
from dedupe.comparable import (
    BY_CODE,
    BY_REGION,
    OUTSTANDING_ORDER,
    Procedure,
    RequestFacts,
    days_between,
    local_date,
)
from imaging.procedures import normalise_description


def tier(request, prior) -> str | None:  # type: ignore[no-untyped-def]
    """The severity the judgement gives ``prior`` (None: not shown)."""
    result = judge(RULES, request, [prior])
    return result.priors[0].severity if result.priors else None


@pytest.mark.parametrize(("modality", "region", "laterality", "days", "expected", "rule"), [
    # CT 30/90 for head, trunk, spine/face/neck, limbs: both edges of both windows
    ("CT", "head", "none", 0, "warning", "ct-head"),
    ("CT", "head", "none", 30, "warning", "ct-head"),  # day 30: last day of the warning window
    ("CT", "head", "none", 31, "info", "ct-head"),  # day 31: first day of info
    ("CT", "head", "none", 90, "info", "ct-head"),  # day 90: last day shown
    ("CT", "head", "none", 91, None, None),  # day 91: too old
    ("CT", "abdomen-pelvis", "none", 30, "warning", "ct-body"),
    ("CT", "abdomen-pelvis", "none", 31, "info", "ct-body"),
    ("CT", "cervical-spine", "none", 30, "warning", "ct-spine-face-neck"),
    ("CT", "face", "none", 91, None, None),
    ("CT", "knee", "left", 30, "warning", "ct-limbs"),
    ("CT", "knee", "left", 90, "info", "ct-limbs"),
    # CT angiography 7/90
    ("CT", "pulmonary-angiography", "none", 7, "warning", "ct-angiography"),
    ("CT", "pulmonary-angiography", "none", 8, "info", "ct-angiography"),
    ("CT", "pulmonary-angiography", "none", 90, "info", "ct-angiography"),
    ("CT", "pulmonary-angiography", "none", 91, None, None),
    # MR any 30/90
    ("MR", "knee", "right", 30, "warning", "mr-any"),
    ("MR", "knee", "right", 31, "info", "mr-any"),
    ("MR", "head", "none", 91, None, None),
    # NM and PET-CT 30/90
    ("NM", "whole-body", "none", 30, "warning", "nm-pet-any"),
    ("PT", "whole-body", "none", 31, "info", "nm-pet-any"),
    ("PT", "whole-body", "none", 91, None, None),
    # XR chest 7/30
    ("XR", "chest", "none", 7, "warning", "xr-chest"),
    ("XR", "chest", "none", 8, "info", "xr-chest"),
    ("XR", "chest", "none", 30, "info", "xr-chest"),
    ("XR", "chest", "none", 31, None, None),
    # XR spine, pelvis, skull 30/90
    ("XR", "lumbar-spine", "none", 30, "warning", "xr-spine-pelvis-skull"),
    ("XR", "pelvis", "none", 31, "info", "xr-spine-pelvis-skull"),
    ("XR", "head", "none", 90, "info", "xr-spine-pelvis-skull"),
    ("XR", "head", "none", 91, None, None),
    # H-CMP-15: the skull is the whole skull (facial bones, sinuses, OPG: the safer reading of REFERENCE.md's "skull")
    ("XR", "face", "none", 30, "warning", "xr-spine-pelvis-skull"),
    ("XR", "face", "none", 90, "info", "xr-spine-pelvis-skull"),
    ("XR", "face", "none", 91, None, None),
    # H-CMP-15: a region no rule names takes its parts' rules: a KUB images the pelvis, a babygram the chest
    ("XR", "abdomen-pelvis", "none", 30, "warning", "xr-spine-pelvis-skull"),
    ("XR", "abdomen-pelvis", "none", 31, "info", "xr-spine-pelvis-skull"),
    ("XR", "chest-abdomen", "none", 7, "warning", "xr-chest"),
    ("XR", "chest-abdomen", "none", 8, "info", "xr-chest"),
    ("XR", "chest-abdomen", "none", 31, None, None),
    ("XR", "whole-spine", "none", 30, "warning", "xr-spine-pelvis-skull"),
    ("XR", "abdomen", "none", 3, None, None),  # REFERENCE.md names no rule for an abdominal radiograph
    # XR limbs and joints 14/30
    ("XR", "wrist", "left", 14, "warning", "xr-limbs"),
    ("XR", "wrist", "left", 15, "info", "xr-limbs"),
    ("XR", "wrist", "left", 30, "info", "xr-limbs"),
    ("XR", "wrist", "left", 31, None, None),
    # US: info only, 30 days
    ("US", "abdomen", "none", 0, "info", "us-any"),
    ("US", "abdomen", "none", 30, "info", "us-any"),
    ("US", "abdomen", "none", 31, None, None),
    # MG breast: info only, 180 days
    ("MG", "breast", "both", 180, "info", "mg-breast"),
    ("MG", "breast", "both", 181, None, None),
    # fluoroscopy and interventional: never by age
    ("RF", "abdomen", "none", 0, None, None),
    ("XA", "peripheral-angiography", "left", 3, None, None),
])
def test_every_rule_of_the_table_with_both_window_edges(modality, region, laterality, days, expected, rule) -> None:  # type: ignore[no-untyped-def]
    result = judge(RULES, facts(modality, region, laterality), [exam(days, modality=modality, region=region,
                                                                     laterality=laterality)])
    assert (result.priors[0].severity if result.priors else None) == expected
    assert (result.priors[0].rule if result.priors else None) == rule
    assert result.verdict == (expected or "clear")


@pytest.mark.parametrize(("request_", "prior", "comparable", "why"), [
    (("CT", "head", "none"), ("CT", "chest", "none"), False, "different region group"),
    (("CT", "head", "none"), ("MR", "head", "none"), False, "different modality"),
    (("CT", "chest", "none"), ("CT", "abdomen-pelvis", "none"), False, "regions share no part (issue 14)"),
    (("CT", "chest", "none"), ("CT", "chest-abdomen-pelvis", "none"), True, "the CAP images the chest"),
    (("CT", "abdomen-pelvis", "none"), ("CT", "chest-abdomen-pelvis", "none"), True, "the CAP images both"),
    (("CT", "chest-abdomen", "none"), ("CT", "abdomen-pelvis", "none"), True, "both image the abdomen"),
    (("MR", "chest", "none"), ("MR", "pelvis", "none"), False, "overlap is the rule for every modality"),
    (("CT", "head", "none"), ("CT", "whole-body", "none"), True, "a trauma pan-scan covers the head (issue 14)"),
    (("CT", "chest-abdomen-pelvis", "none"), ("CT", "whole-body", "none"), True, "and the trunk"),
    (("CT", "lumbar-spine", "none"), ("CT", "whole-body", "none"), True, "and the spine (reformats)"),
    (("CT", "whole-body", "none"), ("CT", "head", "none"), True, "a requested pan-scan shows a recent CT head"),
    (("CT", "knee", "left"), ("CT", "whole-body", "none"), False, "a pan-scan is not assumed to cover limbs"),
    (("CT", "face", "none"), ("CT", "whole-body", "none"), False, "nor the face"),
    (("NM", "abdomen", "none"), ("NM", "whole-body", "none"), False, "a bone scan stands in for no renogram"),
    (("MR", "head", "none"), ("MR", "whole-body", "none"), False, "coverage is the rule file's, for CT only"),
    (("CT", "pulmonary-angiography", "none"), ("CT", "coronary-angiography", "none"), False,
     "CTPA and coronary CTA are different territories (issue 14)"),
    (("CT", "pulmonary-angiography", "none"), ("CT", "head-neck-angiography", "none"), False,
     "CTPA and CTA head and neck are different territories (issue 14)"),
    (("CT", "aortic-angiography", "none"), ("CT", "aortic-angiography", "none"), True, "same territory"),
    (("CT", "pulmonary-angiography", "none"), ("CT", "angiography", "none"), True,
     "an unspecified CTA may have imaged any territory"),
    (("CT", "pulmonary-angiography", "none"), ("CT", "whole-body", "none"), False,
     "a pan-scan does not stand in for a CTPA"),
    (("XR", "chest", "none"), ("XR", "abdomen", "none"), False, "projection X-rays compare overlapping regions only"),
    (("XR", "wrist", "left"), ("XR", "wrist", "right"), False, "left is not right"),
    (("XR", "wrist", "left"), ("XR", "wrist", "both"), True, "both matches either side"),
    (("XR", "wrist", "left"), ("XR", "wrist", None), True, "unknown laterality cannot rule a match out"),
    (("XR", "wrist", "left"), ("XR", "ankle", "left"), False, "limbs must be the same part"),
    (("MR", "knee", "left"), ("MR", "knee", "right"), False, "MR limbs respect laterality"),
    (("MG", "breast", "left"), ("MG", "breast", "right"), False, "mammography respects laterality"),
    (("CT", "pulmonary-angiography", "none"), ("CT", "chest", "none"), False, "angiography is its own group"),
    (("CT", None, None), ("CT", "head", "none"), False, "an unknown region compares by code only"),
])
def test_comparability(request_, prior, comparable, why) -> None:  # type: ignore[no-untyped-def]
    shown = tier(facts(*request_), exam(3, modality=prior[0], region=prior[1], laterality=prior[2]))
    assert (shown is not None) == comparable, why


@pytest.mark.parametrize(("request_regions", "prior_regions", "expected", "rule", "why"), [
    (("head", "cervical-spine"), ("cervical-spine",), "warning", "ct-spine-face-neck",
     "a combined request compares with each region it names, by that region's rule"),
    (("cervical-spine",), ("head", "cervical-spine"), "warning", "ct-spine-face-neck",
     "a combined prior covers each region it names (issue 14: indexed only the head)"),
    (("head", "cervical-spine"), ("chest",), None, None, "no region in common"),
    (("head", "chest"), ("chest-abdomen-pelvis",), "warning", "ct-body", "the chest of a head-and-chest request"),
])
def test_every_region_named_is_compared(request_regions, prior_regions, expected, rule, why) -> None:  # type: ignore[no-untyped-def]
    request = facts("CT", request_regions[0], regions=request_regions)
    prior = exam(5, region=prior_regions[0], regions=prior_regions)
    result = judge(RULES, request, [prior])
    assert (result.priors[0].severity if result.priors else None) == expected, why
    assert (result.priors[0].rule if result.priors else None) == rule, why


def test_a_whole_body_ct_two_days_ago_is_a_warning_for_ct_head_and_ct_cap() -> None:
    """Issue 14: a trauma pan-scan 2 days ago gave ``clear`` for CT head and for CT chest-abdomen-pelvis."""
    pan_scan = exam(2, region="whole-body")
    assert judge(RULES, facts("CT", "head"), [pan_scan]).verdict == "warning"
    assert judge(RULES, facts("CT", "chest-abdomen-pelvis"), [pan_scan]).verdict == "warning"
    assert [p.rule for p in judge(RULES, facts("CT", "head"), [pan_scan]).priors] == ["ct-head"]


def test_the_same_procedure_code_is_comparable_even_when_regions_are_unknown() -> None:
    request = facts("CT", None, None, code="CHEAD", system="NICIP")
    prior = exam(10, region=None, laterality=None, code="chead", system="https://fhir.nhs.uk/CodeSystem/NICIP")
    result = judge(RULES, request, [prior])
    assert [(p.match, p.severity) for p in result.priors] == [(BY_CODE, "warning")]


@pytest.mark.parametrize(("system", "prior_trust", "prior_modality", "shown", "why"), [
    ("LOCAL", "RTK", "CT", True, "a local code within the requesting trust"),
    ("LOCAL", "RXC", "CT", False, "the same local code at another trust need not be the same procedure"),
    ("L", "RXC", "CT", False, "HL7's L is local too"),
    ("99RTK", "RXC", "CT", False, "and HL7's 99zzz"),
    (None, "RXC", "CT", False, "a code with no system is local"),
    ("NICIP", "RXC", "CT", True, "a national code means one procedure everywhere"),
    ("NICIP", "RTK", "MR", False, "a code never makes two modalities the same procedure"),
])
def test_a_local_code_is_the_same_procedure_only_within_one_trust(system, prior_trust, prior_modality, shown,  # type: ignore[no-untyped-def]
                                                                   why) -> None:
    request = facts("CT", None, None, code="X1", system=system, trust="RTK")
    prior = exam(10, modality=prior_modality, region=None, laterality=None, code="X1", system=system,
                 trust=prior_trust)
    assert bool(judge(RULES, request, [prior]).priors) is shown, why


def test_a_code_with_the_other_side_is_not_the_same_procedure() -> None:
    request = facts("XR", "knee", "left", code="XKNEE", system="NICIP")
    assert tier(request, exam(3, modality="XR", region="knee", laterality="right", code="XKNEE",
                              system="NICIP")) is None


@pytest.mark.parametrize(("status", "kind", "days", "expected", "rule", "why"), [
    ("cancelled", "study", 3, None, None, "cancelled priors never count"),
    ("scheduled", "study", 400, "warning", OUTSTANDING_ORDER, "a scheduled exam is flagged at any age"),
    ("scheduled", "study", -5, "warning", OUTSTANDING_ORDER, "even when booked for a later date"),
    ("active", "order", 365, "warning", OUTSTANDING_ORDER, "an outstanding order is flagged at any age"),
    ("cancelled", "order", 3, None, None, "a cancelled order is no prior"),
])
def test_status_of_priors(status, kind, days, expected, rule, why) -> None:  # type: ignore[no-untyped-def]
    result = judge(RULES, facts(), [exam(days, status=status, kind=kind)])
    assert (result.priors[0].severity if result.priors else None) == expected, why
    assert (result.priors[0].rule if result.priors else None) == rule, why


def test_an_outstanding_fluoroscopy_order_is_flagged_though_fluoroscopy_has_no_window() -> None:
    result = judge(RULES, facts("RF", "abdomen"), [exam(40, modality="RF", region="abdomen", status="active",
                                                       kind="order")])
    assert [p.rule for p in result.priors] == [OUTSTANDING_ORDER]


def test_an_exam_performed_after_the_request_is_no_prior() -> None:
    """A historic order replayed late is judged as of its own date: what came after it does not count."""
    assert tier(facts(), exam(-1)) is None


# --- exceptions -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("circumstances", "days", "expected", "why"), [
    (frozenset({TRAUMA}), 5, "info", "trauma/STAT: never suppressed, shown as info"),
    (frozenset({TRAUMA}), 60, "info", "an info prior stays shown in trauma"),
    (frozenset({ONCOLOGY}), 5, "info", "oncology staging/restaging/surveillance: downgraded to info"),
    (frozenset({PLANNED_FOLLOW_UP}), 5, "info", "planned follow-up: info"),
    (frozenset({TRANSFER}), 60, "warning", "inter-trust transfer: warning with image link"),
    (frozenset({TRAUMA, TRANSFER}), 5, "warning", "transfer wins over the trauma downgrade"),
    (frozenset({PREGNANCY}), 5, "warning", "pregnancy alone changes nothing for the head"),
    (frozenset({PREGNANCY, TRAUMA}), 5, "info", "pregnancy guards abdomen/pelvis only, not the head"),
])
def test_exceptions_for_ct_head(circumstances, days, expected, why) -> None:  # type: ignore[no-untyped-def]
    assert tier(facts(circumstances=circumstances), exam(days)) == expected, why


@pytest.mark.parametrize(("circumstances", "expected", "why"), [
    (frozenset({PREGNANCY, ONCOLOGY}), "warning", "pregnancy (ionising abdomen/pelvis) is never downgraded"),
    (frozenset({PREGNANCY, TRAUMA}), "warning", "nor by trauma"),
    (frozenset({ONCOLOGY}), "info", "without pregnancy the downgrade applies"),
])
def test_pregnancy_is_never_downgraded_for_ionising_abdomen_and_pelvis(circumstances, expected, why) -> None:  # type: ignore[no-untyped-def]
    request = facts("CT", "abdomen-pelvis", circumstances=circumstances)
    assert tier(request, exam(5, region="abdomen-pelvis")) == expected, why


@pytest.mark.parametrize(("modality", "region", "expected", "why"), [
    ("XR", "whole-spine", "warning", "H-CMP-16: a whole-spine radiograph images the lumbar spine (was info)"),
    ("CT", "whole-spine", "warning", "H-CMP-16: and a whole-spine CT"),
    ("CT", "aortic-angiography", "warning", "H-CMP-16: a CT angiogram of the aorta irradiates the abdomen (was info)"),
    ("CT", "peripheral-angiography", "warning", "H-CMP-16: a run-off starts at the aortic bifurcation (was info)"),
    ("XR", "lumbar-spine", "warning", "a lumbar spine radiograph, as before"),
    ("CT", "head", "info", "the head is not an abdomen or pelvis region: the trauma downgrade applies"),
    ("CT", "coronary-angiography", "info", "nor the coronary arteries"),
])
def test_pregnancy_guards_every_region_that_images_the_abdomen_or_pelvis(modality, region, expected, why) -> None:  # type: ignore[no-untyped-def]
    request = facts(modality, region, circumstances=frozenset({PREGNANCY, TRAUMA}))
    assert tier(request, exam(5, modality=modality, region=region)) == expected, why


@pytest.mark.parametrize(("modality", "region", "age", "days", "expected", "why"), [
    ("CT", "head", 15, 60, "warning", "under 16, ionising: info escalated to warning"),
    ("CT", "head", 16, 60, "info", "16 is not paediatric"),
    ("CT", "head", None, 60, "info", "unknown age: no escalation"),
    ("XR", "chest", 4, 20, "warning", "paediatric chest X-ray in the info window"),
    ("XR", "chest-abdomen", 0, 3, "warning", "H-CMP-15: a newborn's repeat babygram (was not shown: no rule)"),
    ("XR", "chest-abdomen", 0, 20, "warning", "H-CMP-15: escalated in the chest rule's info window"),
    ("US", "abdomen", 4, 20, "info", "ultrasound is not ionising: no escalation"),
    ("CT", "head", 10, 120, None, "escalation does not widen the window"),
])
def test_paediatric_ionising_repeats_are_escalated(modality, region, age, days, expected, why) -> None:  # type: ignore[no-untyped-def]
    assert tier(facts(modality, region, age=age), exam(days, modality=modality, region=region)) == expected, why


@pytest.mark.parametrize(("prior_trust", "days", "expected", "why"), [
    ("RXC", 1, "warning", "a prior at another trust yesterday: a transfer, so warning despite STAT"),
    ("RXC", 2, "info", "two days is beyond the transfer window: the STAT downgrade stands"),
    ("RTK", 0, "info", "the same trust is no transfer"),
])
def test_a_recent_prior_at_another_trust_marks_a_transfer(prior_trust, days, expected, why) -> None:  # type: ignore[no-untyped-def]
    request = facts(circumstances=frozenset({TRAUMA}), trust="RTK")
    assert tier(request, exam(days, trust=prior_trust)) == expected, why


def test_the_verdict_is_the_loudest_prior_and_priors_are_sorted_by_tier_then_recency() -> None:
    priors = [exam(60), exam(20), exam(45), exam(3, region="chest")]
    result = judge(RULES, facts(), priors)
    assert result.verdict == "warning"
    assert [(p.severity, p.days_ago) for p in result.priors] == [("warning", 20), ("info", 45), ("info", 60)]
    assert all(p.match == BY_REGION for p in result.priors)


def test_nothing_comparable_is_clear() -> None:
    assert judge(RULES, facts(), [exam(3, region="chest")]).verdict == "clear"
    assert judge(RULES, facts(), []).verdict == "clear"


def test_day_counting_is_calendar_days_in_the_consortium_time_zone() -> None:
    from datetime import UTC, date, datetime

    assert days_between(date(2025, 2, 28), date(2025, 3, 30)) == 30
    # 23:30 UTC on 31 March 2025 is already 1 April in London (BST)
    assert local_date(datetime(2025, 3, 31, 23, 30, tzinfo=UTC), "Europe/London") == date(2025, 4, 1)
    assert local_date(datetime(2025, 1, 31, 23, 30, tzinfo=UTC), "Europe/London") == date(2025, 1, 31)
    assert TODAY.isoformat() == "2025-03-31"


def _described(text: str) -> RequestFacts:
    """A request as order entry words it, read by the imaging index's normaliser (as the check reads it)."""
    read = normalise_description(text)
    return RequestFacts(Procedure(read.modality, read.body_region, read.laterality, regions=read.regions,
                                  sides=read.sides), TODAY, "RTK", frozenset(), 40)


@pytest.mark.parametrize(("request_text", "prior_region", "prior_side", "shown"), [
    ("XR left wrist and right ankle", "wrist", "right", False),  # each region on its own side
    ("XR left wrist and right ankle", "wrist", "left", True),
    ("XR left wrist and right ankle", "ankle", "right", True),
    ("XR left wrist and right ankle", "ankle", "left", False),
    ("XR L hand R foot", "hand", "right", False),
    ("XR hands and left foot", "hand", "right", True),  # both hands: was read as the left side only, and missed
    ("XR hands and left foot", "foot", "right", False),
    ("XR left wrist and ankle", "ankle", "right", False),  # one side named: it is the whole request's
    ("XR left wrist and ankle", "ankle", "left", True),
])
def test_a_request_naming_sides_by_region_compares_each_region_on_its_side(
        request_text: str, prior_region: str, prior_side: str, shown: bool) -> None:
    prior = exam(3, modality="XR", region=prior_region, laterality=prior_side)
    assert (tier(_described(request_text), prior) is not None) is shown
