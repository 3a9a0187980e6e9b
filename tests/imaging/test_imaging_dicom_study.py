"""imaging.dicom_study: a DICOM header read into study facts and header dose."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from imaging_factories import ct_image, dataset, projection_image

from imaging.dicom_study import facts_from_dataset, header_dose_events, parse_age, parse_da
from priorscan.trusts import TrustRegistry

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def test_real_ct_file(trusts: TrustRegistry) -> None:
    facts = facts_from_dataset(pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm", stop_before_pixels=True), trusts)
    assert facts.study_instance_uid == "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
    assert (str(facts.study_date), facts.modalities, facts.performing_trust) == ("2004-01-19", ["CT"], None)
    assert not facts.patient.resolved  # no issuer, an institution outside the region


def test_issuer_qualifiers_sequence(trusts: TrustRegistry) -> None:
    ds = ct_image(issuer=None)
    qualifier = pydicom.Dataset()
    qualifier.UniversalEntityID = "RXC"
    ds.IssuerOfPatientIDQualifiersSequence = [qualifier]
    facts = facts_from_dataset(ds, trusts)
    assert facts.patient.namespace == "https://fhir.esht.nhs.uk/Id/hospital-number"


def test_demographics_for_the_provisional_record(trusts: TrustRegistry) -> None:
    facts = facts_from_dataset(ct_image(name="O'BRIEN^MARY ANN^J", birth_date="19551231", sex="F"), trusts)
    assert (facts.patient.family, facts.patient.given, str(facts.patient.birth_date), facts.patient.sex) == (
        "O'BRIEN", "MARY ANN J", "1955-12-31", "female")
    assert facts.patient_age_years == 68  # from the birth date at the study date (2024-01-05)


@pytest.mark.parametrize(("ds", "kind", "field", "value"), [
    (ct_image(ctdivol=12.5), "ct", "ctdivol_mgy", 12.5),
    (projection_image(dap_dgycm2="25"), "projection", "dap_gym2", 2.5e-4),  # dGy·cm² → Gy·m²
    (projection_image(modality="MG", dap_dgycm2=None, organ_dose_dgy="0.012", laterality="L"), "mammo", "agd_mgy",
     1.2),  # Organ Dose in dGy is the view's AGD in mGy × 100
    (projection_image(modality="RF", dap_dgycm2="100"), "fluoro", "dap_gym2", 1e-3),
])
def test_header_dose(ds: pydicom.Dataset, kind: str, field: str, value: float) -> None:
    (event,) = header_dose_events(ds)
    assert (event.kind, event.source) == (kind, "header")
    assert getattr(event, field) == pytest.approx(value)


def test_images_without_dose_give_no_event() -> None:
    assert header_dose_events(ct_image(ctdivol=None)) == []
    assert header_dose_events(dataset(sop_class="1.2.840.10008.5.1.4.1.1.4", modality="MR")) == []


@pytest.mark.parametrize(("text", "years"), [("045Y", 45), ("006M", 0), ("030W", 0), ("", None), ("45", None)])
def test_parse_age(text: str, years: int | None) -> None:
    assert parse_age(text) == years


@pytest.mark.parametrize(("text", "iso"), [("20240105", "2024-01-05"), ("2024.01.05", "2024-01-05"),
                                           ("20241305", None), ("", None)])
def test_parse_da(text: str, iso: str | None) -> None:
    day = parse_da(text)
    assert (day.isoformat() if day else None) == iso
