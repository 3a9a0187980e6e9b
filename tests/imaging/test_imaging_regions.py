"""imaging.regions: the vocabulary the duplicate check relies on (groups, overlaps, laterality)."""

from __future__ import annotations

import pytest

from imaging import regions as rg


def test_every_region_belongs_to_a_group_of_the_rule_table() -> None:
    assert {r.group for r in rg.REGIONS.values()} == set(rg.REGION_GROUPS)
    assert len(set(rg.BODY_REGIONS)) == len(rg.BODY_REGIONS)


@pytest.mark.parametrize(("a", "b", "same"), [
    ("chest", "chest-abdomen-pelvis", True),  # "chest / abdomen / pelvis and combinations" is one group
    ("abdomen-pelvis", "chest", True),
    ("head", "face", False),  # separate rows of the rule table
    ("wrist", "knee", True),  # both limbs: same group, but see overlaps
    ("pulmonary-angiography", "chest", False),  # CTPA has its own 7-day window
    ("head", None, False),  # unknown never matches
    (None, None, False),
])
def test_same_group(a: str | None, b: str | None, same: bool) -> None:
    assert rg.same_group(a, b) is same


@pytest.mark.parametrize(("a", "b", "modality", "comparable"), [
    ("chest", "abdomen-pelvis", "CT", False),  # no part in common (issue 14)
    ("chest", "chest-abdomen-pelvis", "CT", True),  # the CAP images the chest
    ("chest", "chest-abdomen-pelvis", "MR", True),
    ("pulmonary-angiography", "coronary-angiography", "CT", False),  # one vascular territory only
    ("pulmonary-angiography", "head-neck-angiography", "CT", False),
    ("whole-body", "head", "CT", False),  # coverage is the rule file's judgement, not the vocabulary's
    ("whole-body", "whole-body", "NM", True),
    ("chest", "abdomen", "XR", False),  # a chest radiograph is not an abdominal one
    ("chest", "chest-abdomen", "XR", True),  # but overlapping views compare
    ("wrist", "knee", "XR", False),  # limbs must be the same part
    ("wrist", "upper-limb", "XR", True),  # an unspecified upper limb covers the wrist
    ("cervical-spine", "lumbar-spine", "MR", False),  # spine must be the same level
    ("whole-spine", "lumbar-spine", "MR", True),
    ("head", "head", "MR", True),
])
def test_comparable_regions(a: str, b: str, modality: str, comparable: bool) -> None:
    assert rg.comparable_regions(a, b, modality) is comparable


@pytest.mark.parametrize(("a", "b", "compatible"), [
    ("left", "right", False),  # left ≠ right
    ("left", "both", True), ("both", "right", True),  # both matches either
    ("left", "left", True), ("none", "none", True),
    ("left", None, True),  # unknown cannot rule a match out
])
def test_laterality_compatible(a: str | None, b: str | None, compatible: bool) -> None:
    assert rg.laterality_compatible(a, b) is compatible
    assert rg.laterality_compatible(b, a) is compatible


@pytest.mark.parametrize(("word", "expected"), [
    ("L", "left"), ("Rt", "right"), ("BILATERAL", "both"), ("7771000", "left"), ("24028007", "right"),
    ("51440002", "both"), ("9", None), ("sideways", None), (None, None),
])
def test_normalise_laterality(word: str | None, expected: str | None) -> None:
    assert rg.normalise_laterality(word) == expected


@pytest.mark.parametrize(("region", "parts"), [
    ("abdomen-pelvis", ("abdomen", "pelvis")),  # an XR KUB images the pelvis (H-CMP-15)
    ("chest-abdomen", ("abdomen", "chest")),  # a babygram images the chest (H-CMP-15)
    ("whole-spine", ("cervical-spine", "lumbar-spine", "thoracic-spine")),  # and the lumbar spine (H-CMP-16)
    ("whole-body", ("abdomen", "chest", "head", "neck", "pelvis")),
    ("upper-limb", ("elbow", "forearm", "hand", "humerus", "shoulder", "wrist")),
    ("chest", ()),  # a single part
    ("aortic-angiography", ()),  # a territory's parts are vessels, not regions
    (None, ()),
    ("nowhere", ()),
])
def test_region_parts(region: str | None, parts: tuple[str, ...]) -> None:
    assert rg.region_parts(region) == parts


def test_paired_regions_are_limbs_and_breast() -> None:
    paired = {r.name for r in rg.REGIONS.values() if r.paired}
    assert "breast" in paired and "knee" in paired and "head" not in paired and "chest" not in paired


def test_regions_as_stored_round_trip_and_unknown_names_are_left_out() -> None:
    assert rg.join_regions(("head", "cervical-spine")) == "head cervical-spine"
    assert rg.split_regions("head cervical-spine") == ("head", "cervical-spine")
    assert rg.join_regions(()) is None and rg.split_regions(None) == ()
    assert rg.split_regions("head elbow-of-nowhere") == ("head",)  # a truncated or foreign name is not guessed at


@pytest.mark.parametrize(("value", "side"), [
    ("(L)", "left"), ("R)", "right"), ("Lt side", "left"), ("left only", "left"), ("Right-sided", "right"),
    ("Lft", "left"), ("Rght", "right"), ("left and right", "both"), ("L + R", "both"),
    ("side", None), ("left knee", None),  # no side word, or a word that is not one: unknown, never guessed
])
def test_laterality_fields_as_order_entry_writes_them(value: str, side: str | None) -> None:
    from imaging.regions import normalise_laterality

    assert normalise_laterality(value) == side
