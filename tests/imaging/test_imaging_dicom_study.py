"""imaging.dicom_study: a DICOM header read into study facts and header dose."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from imaging_factories import CtEvent, ct_image, ct_rdsr, dataset, projection_image

from imaging.dicom_study import facts_from_dataset, header_dose_events, parse_age, parse_da
from imaging.facts import named_procedure
from imaging.procedures import normalise_modality
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


# --- what the examination was, from what real files carry ----------------------------------------------------------

def _item(**values: object) -> pydicom.Dataset:
    item = pydicom.Dataset()
    for key, value in values.items():
        setattr(item, key, value)
    return item


def _named(ds: pydicom.Dataset, trusts: TrustRegistry) -> tuple[str | None, str | None, str | None, str]:
    facts = facts_from_dataset(ds, trusts)
    assert facts is not None
    modality = normalise_modality(facts.modalities[0] if facts.modalities else None) or facts.modality_hint
    found = named_procedure(facts, description=facts.description, codes=facts.procedure_codes, modality=modality)
    return found.modality, found.body_region, found.laterality, found.normalisation


def _with(ds: pydicom.Dataset, **values: object) -> pydicom.Dataset:
    for key, value in values.items():
        setattr(ds, key, value)
    return ds


@pytest.mark.parametrize(("ds", "expected", "reason"), [
    (ct_image(description="CT HEAD"), ("CT", "head", "none", "description"), "the study description"),
    (_with(ct_image(), RequestedProcedureDescription="CT Thorax abdomen and pelvis"),
     ("CT", "chest-abdomen-pelvis", "none", "description"), "the requested procedure when no study description"),
    (_with(ct_image(), RequestAttributesSequence=[_item(RequestedProcedureDescription="CT CHEST")]),
     ("CT", "chest", "none", "description"), "a requested procedure inside Request Attributes"),
    (_with(ct_image(), SeriesDescription="Abdomen", ProtocolName="ABD_1_VIEW"),
     ("CT", "abdomen", "none", "description"), "series description and protocol name"),
    (_with(ct_image(), BodyPartExamined="CHESTABDPELVIS"), ("CT", "chest-abdomen-pelvis", "none", "anatomy"),
     "a DICOM defined term written as one word"),
    (_with(ct_image(), BodyPartExamined="TSPINE"), ("CT", "thoracic-spine", "none", "anatomy"), "T-spine"),
    (_with(ct_image(), AnatomicRegionSequence=[_item(CodeValue="T-D3000", CodingSchemeDesignator="SRT",
                                                     CodeMeaning="Chest")]),
     ("CT", "chest", "none", "anatomy"), "Anatomic Region Sequence"),
    (_with(ct_image(), BodyPartExamined="PATTERN"), ("CT", None, None, "unknown"), "a QA pattern names no part"),
    (_with(projection_image(modality="PX"),
           AnatomicRegionSequence=[_item(CodeValue="661005", CodingSchemeDesignator="SCT", CodeMeaning="")]),
     ("XR", "face", "none", "anatomy"), "a coded jaw region (SNOMED CT 661005, meaning left out): the face"),
    (_with(projection_image(modality="PX"),
           AnatomicRegionSequence=[_item(CodeValue="T-D1213", CodingSchemeDesignator="SRT", CodeMeaning="Jaw region")]),
     ("XR", "face", "none", "anatomy"), "the same region in SNOMED RT, as a NewTom panoramic writes it"),
    (_with(ct_image(), AnatomicRegionSequence=[_item(CodeValue="69695003", CodingSchemeDesignator="SCT")]),
     ("CT", "abdomen", "none", "anatomy"), "the stomach (SNOMED CT 69695003): the abdomen"),
    (projection_image(modality="MG", laterality="L", view="CC"), ("MG", "breast", "left", "anatomy"),
     "a mammogram is always of the breast, on its image's side"),
    (projection_image(modality="MG", laterality="R", description="Screening"), ("MG", "breast", "right", "description"),
     "a mammogram's description need not name the breast"),
    (projection_image(modality="DX", laterality="L", description="XR WRIST"), ("XR", "wrist", "left", "description"),
     "Image Laterality gives a paired part its side"),
    (projection_image(modality="DX", laterality="R", description="XR L WRIST"), ("XR", "wrist", "both", "description"),
     "a side the image contradicts is widened to both, never narrowed"),
])
def test_the_procedure_a_header_names(trusts: TrustRegistry, ds: pydicom.Dataset,
                                      expected: tuple[str | None, ...], reason: str) -> None:
    assert _named(ds, trusts) == expected, reason


def test_a_dose_report_names_its_anatomy_and_protocols(trusts: TrustRegistry) -> None:
    ds = ct_rdsr([CtEvent("0.1", "2.0", region=("T-D0010", "SRT", "Entire body"),
                          acquisition=("113805", "DCM", "Constant Angle Acquisition")),
                  CtEvent("9.0", "300.0", region=("T-D4000", "SRT", "Abdomen"))], dlp_total="302.0")
    facts = facts_from_dataset(ds, trusts)
    assert facts is not None and facts.anatomy == ["abdomen"]  # the localizer's "entire body" is not the examination
    found = named_procedure(facts, description=None, codes=[], modality="CT")
    assert (found.body_region, found.normalisation) == ("abdomen", "anatomy")


def test_study_date_and_time_are_local(trusts: TrustRegistry) -> None:
    ds = ct_image(study_date="20260801")
    ds.StudyTime = "003000"
    facts = facts_from_dataset(ds, trusts)
    assert str(facts.study_date) == "2026-08-01" and facts.study_datetime.isoformat() == "2026-07-31T23:30:00+00:00"
    ds.TimezoneOffsetFromUTC = "nonsense"
    noted = facts_from_dataset(ds, trusts)
    assert any("Timezone Offset From UTC" in note for note in noted.notes)


def _exposure_group(ctdivol: str) -> pydicom.Dataset:
    exposure = pydicom.Dataset()
    exposure.CTDIvol = float(ctdivol)
    group = pydicom.Dataset()
    group.CTExposureSequence = [exposure]
    return group


@pytest.mark.parametrize(("shared", "per_frame", "expected"), [
    (None, ["11.0", "14.5", "12.0"], 14.5),  # per frame only, as scanners with tube current modulation write it
    ("9.5", [], 9.5),  # shared by every frame
    (None, [], None),  # an Enhanced CT image without exposure: no dose, not a guess
])
def test_enhanced_ct_ctdivol_from_its_functional_groups(shared: str | None, per_frame: list[str],
                                                         expected: float | None) -> None:
    """A multi-frame Enhanced CT image carries CTDIvol in its CT Exposure functional groups; only the shared groups
    were read, so an image that writes it per frame gave no header dose."""
    image = ct_image(ctdivol=None)
    image.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"  # Enhanced CT Image Storage
    image.NumberOfFrames = len(per_frame) or 1
    if shared is not None:
        image.SharedFunctionalGroupsSequence = [_exposure_group(shared)]
    image.PerFrameFunctionalGroupsSequence = [_exposure_group(value) for value in per_frame]
    events = header_dose_events(image)
    assert [event.ctdivol_mgy for event in events] == ([expected] if expected is not None else [])
