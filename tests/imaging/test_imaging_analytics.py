"""The analysts' dose summaries (pure pandas over a studies frame), each checked against figures worked by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from imaging import cumulative_per_patient, drl_audit, exceedances, monthly, rolling_peaks, shared_identity_share


def frame(*rows: tuple) -> pd.DataFrame:  # type: ignore[type-arg]
    """Studies: (patient, trust, date, effective dose mSv, age band, sex), completed unless the dose is None."""
    out = pd.DataFrame([{"patient": p, "study": f"s{n}", "trust": t, "study_date": pd.Timestamp(d),
                         "effective_dose_msv": e, "age_band": a, "sex": s, "status": "completed",
                         "withdrawn": None, "modality": "CT", "drl_category": None}
                        for n, (p, t, d, e, a, s) in enumerate(rows)])
    return out


def test_cumulative_dose_adds_up_across_trusts() -> None:
    studies = frame(("A", "RTK", "2026-01-01", 10.0, "60-69", "female"),
                    ("A", "RYR", "2026-02-01", 5.0, "60-69", "female"),
                    ("A", "RYR", "2026-03-01", 7.0, "60-69", "female"),
                    ("B", "RXC", "2026-01-05", 2.0, "20-29", "male"))
    per = cumulative_per_patient(studies).set_index("patient")
    assert per.loc["A", "effective_dose_msv"] == 22.0 and per.loc["A", "trusts"] == 2
    assert per.loc["A", "main_trust_dose_msv"] == 12.0 and per.loc["A", "elsewhere_dose_msv"] == 10.0
    share = shared_identity_share(per.reset_index())
    assert share["multi_trust_patients"] == 1
    assert share["dose_of_multi_trust_patients"] == pytest.approx(22 / 24)
    assert share["dose_received_elsewhere"] == pytest.approx(10 / 24)


def test_rolling_peaks_find_the_worst_window_not_the_total() -> None:
    studies = frame(("A", "RTK", "2020-01-01", 30.0, "40-49", "male"),
                    ("A", "RTK", "2024-01-01", 25.0, "40-49", "male"),
                    ("A", "RTK", "2024-06-30", 30.0, "40-49", "male"),  # 181 days after the previous one
                    ("A", "RTK", "2025-06-30", 1.0, "40-49", "male"))  # 365 days later: just outside 365 days
    peaks = rolling_peaks(studies, windows_days=(365, 1826)).set_index("patient")
    assert peaks.loc["A", "peak_365d_msv"] == 55.0  # 2024-01-01 + 2024-06-30, 181 days apart
    # 2020-01-01 to 2024-06-30 is 1,642 days (30 + 25 + 30); with 2025-06-30 the span is 2,007 days: too long
    assert peaks.loc["A", "peak_1826d_msv"] == 85.0
    over = exceedances(peaks.reset_index(), thresholds=(50.0, 100.0))
    assert set(zip(over["window_days"], over["threshold_msv"], strict=True)) == {(365, 50.0), (1826, 50.0)}


def test_drl_audit_compares_the_median_with_the_drl() -> None:
    studies = pd.DataFrame([{"study": f"s{n}", "trust": "RTK", "drl_category": "ct-head", "dlp_total_mgycm": d,
                             "ctdivol_mgy": 40.0, "drl_dlp_mgycm": 790.0, "drl_ctdivol_mgy": 47.0}
                            for n, d in enumerate((700.0, 800.0, 900.0))])
    audit = drl_audit(studies).iloc[0]
    assert audit["studies"] == 3 and audit["dlp_median_mgycm"] == 800.0
    assert audit["dlp_median_over_drl"] == pytest.approx(800 / 790)


def test_monthly_counts_by_month() -> None:
    studies = frame(("A", "RTK", "2026-01-03", 1.0, None, None), ("B", "RTK", "2026-01-30", 1.0, None, None),
                    ("C", "RTK", "2026-02-01", 1.0, None, None))
    table = monthly(studies, by="modality")
    assert table["CT"].tolist() == [2, 1]


def test_the_scanner_protocol_and_breast_thickness_reach_the_analysts(sqlite_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from imaging_factories import CtEvent, ct_rdsr, mammography_rdsr, projection_image, write

    from imaging import ingest_dicom_file, studies_frame
    from priorscan.audit import Agent
    from priorscan.db import make_engine, session_factory
    from priorscan.trusts import default_trusts

    engine = make_engine(sqlite_url)
    sessions, trusts, agent = session_factory(engine), default_trusts(), Agent("user", "test")
    report = mammography_rdsr([("left", "1.2"), ("right", "1.4")], accumulated={"left": "1.2", "right": "1.4"},
                              thickness=("5.5", "cm"), study_uid="1.2.3.77.1")
    report.Manufacturer, report.ManufacturerModelName, report.StationName = "Hologic", "Selenia Dimensions", "MAMMO2"
    image = projection_image(modality="MG", dap_dgycm2=None, organ_dose_dgy="0.013", laterality="L",
                             study_uid="1.2.3.77.2")
    image.BodyPartThickness = "48"
    ct = ct_rdsr([CtEvent("8", "300")], dlp_total="300", study_uid="1.2.3.77.3", description="CT CHEST")
    ct.Manufacturer, ct.ManufacturerModelName, ct.StationName = "Siemens", "SOMATOM Force", "CT1"
    for n, ds in enumerate((report, image, ct)):
        assert ingest_dicom_file(sessions, trusts, write(ds, tmp_path / f"{n}.dcm"), agent=agent).accepted
    frame = studies_frame(engine, pseudonym_key=b"k").set_index("study")
    engine.dispose()
    by_uid = {row["breast_thickness_mm"]: row for _, row in frame.iterrows() if row["modality"] == "MG"}
    assert set(by_uid) == {55.0, 48.0}  # 5.5 cm from the report's views; 48 mm from the image's header
    assert by_uid[55.0]["scanner"] == "Hologic Selenia Dimensions (MAMMO2)"
    ct_row = frame[frame["modality"] == "CT"].iloc[0]
    assert ct_row["scanner"] == "Siemens SOMATOM Force (CT1)"
