"""The vendor-file survey (``python -m bench vendor_dicom``): copies of a study counted once, and the shares it
prints, patients' studies apart by the index's own ``not_patient`` flag (the survey keeps no word list of its own)."""

from __future__ import annotations

import bench.bench_vendor_dicom as survey
from bench.bench_vendor_dicom import copies, dose_shares


def test_the_survey_reads_tests_apart_by_the_products_flag_only() -> None:
    assert not any(name in vars(survey) for name in ("qa_evidence", "_QA_WORDS")), "no second word list"


def test_both_shares_count_each_copy_once() -> None:
    # 53 dose-bearing studies, 43 normalised; 10 are QA tests (5 normalised); one copy, a patient's, not normalised
    counts = {"dose": 53, "dose_normalised": 43, "dose_qa": 10, "dose_qa_normalised": 5, "dose_copies": 1,
              "dose_copies_normalised": 0}
    shares = dose_shares(counts)
    assert shares["patient studies (target), each copy once"] == (38, 42)
    assert shares["all studies (QA/physics tests too), each copy once"] == (43, 52)
    assert shares["patient studies, copies counted"] == (38, 43)
    assert shares["all studies, copies counted"] == (43, 53)


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
