"""Repeat imaging counted by the duplicate check's own rules, and alert outcomes (pure pandas over frames)."""

from __future__ import annotations

import csv
from datetime import date

import pandas as pd
from dedupe_factories import add_patient, add_study

from dedupe import alert_outcomes, before_and_after, override_reasons, repeat_rates, repeats_frame
from dedupe.analytics import write_extract
from imaging.tables import Study
from priorscan.db import session_factory
from priorscan.trusts import default_trusts


def studies(*rows: tuple) -> pd.DataFrame:  # type: ignore[type-arg]
    """(patient, trust, modality, region, laterality, date)."""
    return pd.DataFrame([{"patient": p, "study": f"s{n}", "trust": t, "modality": m, "body_region": r,
                          "laterality": lat, "study_date": pd.Timestamp(d), "status": "completed", "withdrawn": None}
                         for n, (p, t, m, r, lat, d) in enumerate(rows)])


def test_a_repeat_is_a_comparable_study_within_the_warning_window() -> None:
    frame = studies(("A", "RTK", "CT", "head", None, "2026-01-01"),
                    ("A", "RYR", "CT", "head", None, "2026-01-20"),  # 19 days: CT's 30-day warning, other trust
                    ("A", "RYR", "CT", "head", None, "2026-06-01"),  # 132 days after the last: no repeat
                    ("A", "RYR", "MR", "head", None, "2026-06-02"),  # MR never compares with CT
                    ("B", "RXC", "XR", "wrist", "left", "2026-03-01"),
                    ("B", "RXC", "XR", "wrist", "right", "2026-03-02"))  # the other side: not a repeat
    repeats = repeats_frame(frame).set_index("study")
    assert repeats["repeat"].tolist() == [False, True, False, False, False, False]
    assert repeats.loc["s1", "across_trusts"] and repeats.loc["s1", "days_since_prior"] == 19
    rates = repeat_rates(repeats.reset_index(), by=("modality",)).set_index("modality")
    assert rates.loc["CT", "repeats"] == 1 and rates.loc["CT", "across_trusts"] == 1
    assert rates.loc["CT", "repeat_rate"] == 1 / 3
    compared = before_and_after(repeats.reset_index(), date(2026, 1, 10), by=("modality",))
    ct = compared[compared["modality"] == "CT"].set_index("period")
    assert ct.loc["before", "repeats"] == 0 and ct.loc["after", "repeats"] == 1


def test_alert_outcomes_and_override_reasons() -> None:
    alerts = pd.DataFrame([
        {"alert": "a", "status": "overridden", "reason_code": "clinical-change", "reason_display": "Clinical change",
         "request_date": pd.Timestamp("2026-01-05"), "created_at": pd.Timestamp("2026-12-01", tz="UTC"),
         "dose_avoided_msv": None},
        {"alert": "b", "status": "cancelled", "reason_code": None, "reason_display": None,
         "request_date": pd.Timestamp("2026-01-20"), "created_at": pd.Timestamp("2026-12-01", tz="UTC"),
         "dose_avoided_msv": 2.5},
        {"alert": "c", "status": "open", "reason_code": None, "reason_display": None,
         "request_date": pd.Timestamp("2026-02-03"), "created_at": pd.Timestamp("2026-12-01", tz="UTC"),
         "dose_avoided_msv": None}])
    outcomes = alert_outcomes(alerts).set_index("period")  # by the request's month, not when it was loaded
    assert outcomes.loc[pd.Timestamp("2026-01-01"), "raised"] == 2
    assert outcomes.loc[pd.Timestamp("2026-01-01"), "dose_avoided_msv"] == 2.5
    assert outcomes.loc[pd.Timestamp("2026-02-01"), "open"] == 1
    assert override_reasons(alerts).to_dict("records") == [{"reason": "Clinical change", "alerts": 1}]


def test_the_csv_extract_writes_no_cell_a_spreadsheet_would_run(engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Hazard log H-SEC-17: a scanner's Station Name (from the DICOM header, as the modality sent it) reached the
    analysts' CSV as ``=HYPERLINK(...)``, a formula in their spreadsheet; written with a quote before it, and the
    figures unchanged."""
    with session_factory(engine)() as session:
        _, record = add_patient(session, default_trusts())
        uid = add_study(session, record, dose=2.5)
        session.query(Study).filter_by(study_instance_uid=uid).update({"station_name": "=HYPERLINK(\"x\")"})
        session.commit()
    write_extract(engine, tmp_path, fmt="csv", pseudonym_key=b"a-key-of-at-least-sixteen-bytes")
    with (tmp_path / "studies.csv").open(newline="") as handle:
        (row,) = csv.DictReader(handle)
    assert row["scanner"] == "'=HYPERLINK(\"x\")"
    assert float(row["effective_dose_msv"]) == 2.5 and row["modality"] == "CT"
