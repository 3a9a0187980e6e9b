"""The vendor-file survey counts apart only the studies whose own file says they are a QA or physics test
(``bench.bench_vendor_dicom.qa_evidence``): by whole words, never by a file's name or a word that merely contains
the letters."""

from __future__ import annotations

from pydicom.dataset import Dataset

from bench.bench_vendor_dicom import qa_evidence


def _text_item(name: str, value: str) -> Dataset:
    item, concept = Dataset(), Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = "x", "99TEST", name
    item.ValueType, item.ConceptNameCodeSequence, item.TextValue = "TEXT", [concept], value
    return item


def test_a_file_that_says_it_is_a_qa_or_physics_test_is_named_with_where_it_says_so() -> None:
    ds = Dataset()
    ds.PatientName = "MONTHLY_QC^CTSIM1"
    container = Dataset()
    container.ValueType = "CONTAINER"
    container.ContentSequence = [_text_item("Acquisition Protocol", "4DCT /PHYSICS")]
    ds.ContentSequence = [container]
    assert qa_evidence(ds) == ["PatientName: MONTHLY_QC^CTSIM1", "SR Acquisition Protocol: 4DCT /PHYSICS"]
    other = Dataset()
    other.StudyDescription = "Z_Physics Test"
    assert qa_evidence(other) == ["StudyDescription: Z_Physics Test"]


def test_a_patient_examination_is_not_taken_for_a_test() -> None:
    ds = Dataset()
    ds.PatientName, ds.StudyDescription, ds.ProtocolName = "AQUARIUS^QUINN", "CT QUALITATIVE PERFUSION", "QAB"
    ds.ContentSequence = [_text_item("Calibration Protocol", "Validation test protocols for Accuracy and Calibration"),
                          _text_item("Comment", "quality image")]
    assert qa_evidence(ds) == []
