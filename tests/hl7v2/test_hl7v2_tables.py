"""priorscan.hl7v2.tables: one table each for sex, NHS number identifiers and diagnostic service sections, so that a
registration, an order and its result are read alike."""

from __future__ import annotations

import pytest

from priorscan.hl7v2 import administrative_sex, is_nhs_number_authority, service_section_modality


@pytest.mark.parametrize(("code", "gender"), [
    ("M", "male"), ("f", "female"), ("U", "unknown"), ("O", "other"), ("A", "other"), ("N", "unknown"),
    ("1", "male"), ("2", "female"), ("9", "unknown"), ("FEMALE", "female"), ("X", "unknown"), ("", None),
])
def test_administrative_sex(code: str, gender: str | None) -> None:
    assert administrative_sex(code) == gender


@pytest.mark.parametrize(("name", "is_nhs"), [
    ("NHS", True), ("nhs", True), ("NHSNBR", True), ("NHS NUMBER", True), ("2.16.840.1.113883.2.1.4.1", True),
    ("urn:oid:2.16.840.1.113883.2.1.4.1", True), ("https://fhir.nhs.uk/Id/nhs-number", True),
    ("RTK", False), ("", False), (None, False),
])
def test_nhs_number_authorities(name: str | None, is_nhs: bool) -> None:
    assert is_nhs_number_authority(name) is is_nhs


@pytest.mark.parametrize(("section", "modality", "reason"), [
    ("CT", "CT", "CAT scan"), ("NMR", "MR", "nuclear magnetic resonance"), ("MRI", "MR", "what trusts send"),
    ("RUS", "US", "radiology ultrasound"), ("OUS", "US", "obstetric"), ("CUS", "US", "cardiac"),
    ("VUS", "US", "vascular"), ("NMS", "NM", "nuclear medicine"), ("RX", "DX", "radiograph"),
    ("XRC", "RF", "cineradiograph"), ("RAD", None, "radiology: no modality"),
    ("CTH", None, "cardiac catheterisation, not CT of the head"), ("ZZZ", None, "unknown"), ("", None, "none"),
])
def test_diagnostic_service_sections(section: str, modality: str | None, reason: str) -> None:
    assert service_section_modality(section) == modality, reason
