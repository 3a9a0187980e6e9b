"""The vendor-file survey counts apart only the studies whose own file says they are a QA or physics test
(``bench.bench_vendor_dicom.qa_evidence``): by whole words, never by a file's name or a word that merely contains
the letters."""

from __future__ import annotations

from pydicom.dataset import Dataset

from bench.bench_vendor_dicom import copies, qa_evidence


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


def _row(source: str, name: str, study: str, sop: str) -> dict[str, object]:
    return {"source": source, "file": name, "study": study, "sop": sop, "accepted": True}


def test_a_study_re_filed_under_another_uid_is_counted_as_a_copy_of_the_first() -> None:
    rows = [_row("openrem", "Zee_adjusted.dcm", "2", "rdsr-1"), _row("openrem", "Zee.dcm", "1", "rdsr-1"),
            _row("openrem", "ct-1.dcm", "3", "img-1"), _row("openrem", "ct-2.dcm", "4", "img-1"),
            _row("openrem", "ct-3.dcm", "4", "img-2")]
    # study 2 holds only an object already read under study 1 (the first by file name); study 4 holds one of
    # its own as well, so it is another examination
    assert copies(rows) == {"2": "Zee.dcm"}
    assert copies([_row("a", "x.dcm", "1", ""), _row("a", "y.dcm", "2", "")]) == {}  # no SOP Instance UID: no copy
