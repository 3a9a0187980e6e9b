"""Properties of the dose arithmetic (hypothesis): every event counts once, however its reports are sent.

- summing the distinct events' doses gives the study total, whichever reports (growing, re-sent under the same or
  a new SOP Instance UID, continued in a second report) state them and in whatever order they arrive;
- the effective dose is the sum of each event's k × DLP whenever the events make up the total;
- unit conversions round-trip, and UCUM's case-insensitive spelling reads as the case-sensitive one.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imaging import dose as dz
from imaging.reference import effective_dose_coefficients
from imaging.units import convert, from_stored, read_unit

K = effective_dose_coefficients()
ADULT_REGIONS = sorted({row.body_region for row in K.rows if not row.paediatric})
FIELDS = [("dlp_mgycm", "dlp_total_mgycm"), ("dap_gym2", "dap_total_gym2"), ("dose_rp_gy", "dose_rp_total_gy")]


@st.composite
def study_reports(draw: st.DrawFn) -> tuple[list[dz.DoseEvent], list[dz.ReportTotals]]:
    """Events, and the reports a study's devices sent about them, as they arrive at the index.

    Each *examination part* is a run of events reported by one growing report (sent after each event, each time
    under a new SOP Instance UID or the same one); a study has one or more parts (a continued examination); every
    version may be sent again, and versions arrive in any order. A report states its accumulated total exactly
    (the sum of its events), or not at all.
    """
    parts = draw(st.integers(1, 3))
    events: list[dz.DoseEvent] = []
    sent: list[dz.ReportTotals] = []
    for part in range(parts):
        count = draw(st.integers(1, 4))
        values = draw(st.lists(st.floats(0.01, 2000.0, allow_nan=False).map(lambda v: round(v, 2)),
                               min_size=count, max_size=count))
        mine = [dz.DoseEvent(f"p{part}e{i}", dz.CT, dlp_mgycm=v, dap_gym2=v / 1e4, dose_rp_gy=v / 1e3)
                for i, v in enumerate(values)]
        events += mine
        same_uid = draw(st.booleans())
        states_total = draw(st.booleans())
        for grown in range(1, count + 1):
            covered = mine[:grown]
            totals = {report: sum(getattr(e, event) for e in covered) if states_total else None
                      for event, report in FIELDS}
            key = f"report:p{part}" if same_uid else f"report:p{part}v{grown}"
            copies = draw(st.integers(1, 2))
            sent += [dz.ReportTotals(key, frozenset(e.event_uid for e in covered), **totals)] * copies
    order = draw(st.permutations(range(len(sent))))
    return events, [sent[i] for i in order]


def _stored(sent: list[dz.ReportTotals]) -> list[dz.ReportTotals]:
    """What the index keeps: one entry per report key, merged as re-sent versions arrive."""
    by_key: dict[str, dz.ReportTotals] = {}
    for totals in sent:
        by_key[totals.report_key] = dz.merge_report(by_key.get(totals.report_key), totals)
    return list(by_key.values())


@settings(max_examples=150, deadline=None)
@given(study_reports())
def test_summing_event_doses_equals_the_study_total(case: tuple[list[dz.DoseEvent], list[dz.ReportTotals]]) -> None:
    events, sent = case
    summary = dz.summarise(events, _stored(sent), study_region="chest", coefficients=K, patient_age_years=50)
    assert summary.dlp_total_mgycm == pytest.approx(sum(e.dlp_mgycm or 0 for e in events), rel=1e-9)
    assert summary.dap_total_gym2 == pytest.approx(sum(e.dap_gym2 or 0 for e in events), rel=1e-9)
    assert summary.dose_rp_total_gy == pytest.approx(sum(e.dose_rp_gy or 0 for e in events), rel=1e-9)
    assert summary.irradiation_events == len(events)


@settings(max_examples=100, deadline=None)
@given(study_reports(), st.data())
def test_the_estimate_is_the_sum_of_each_events_k_times_dlp(case: tuple[list[dz.DoseEvent], list[dz.ReportTotals]],
                                                           data: st.DataObject) -> None:
    events, sent = case
    placed = []
    for event in events:
        region = data.draw(st.sampled_from(ADULT_REGIONS))
        coefficient = K.find(region, 50)
        assert coefficient is not None
        placed.append(dz.DoseEvent(event.event_uid, dz.CT, target_region=region, phantom_cm=coefficient.phantom_cm,
                                   dlp_mgycm=event.dlp_mgycm))
    summary = dz.summarise(placed, _stored(sent), study_region=None, coefficients=K, patient_age_years=50)
    expected = sum(K.find(e.target_region, 50).k * (e.dlp_mgycm or 0) for e in placed)  # type: ignore[union-attr]
    assert summary.effective_dose_msv == pytest.approx(expected, rel=1e-9)


# --- units ---------------------------------------------------------------------------------------------------------

SPELLINGS = {
    "dlp": ["mGy.cm", "mGycm", "mGy*cm", "mGy-cm", "mGy cm", "mGy·cm", "MGY.CM", "MGYCM", "Gy.m", "GY.M", "Gy.cm",
            "cGy.cm", "uGy.m", "milligray centimeter"],
    "dap": ["Gy.m2", "Gym2", "GY.M2", "dGy.cm2", "DGY.CM2", "cGy.cm2", "mGy.cm2", "uGy.m2", "µGy·m²", "Gy.cm2",
            "Gy*cm^2", "mGy*m**2", "uGym2", "UGY.M2"],
    "dose_mgy": ["mGy", "MGY", "Gy", "GY", "uGy", "UGY", "dGy", "cGy"],
    "activity": ["MBq", "MABQ", "GBq", "GABQ", "kBq", "KBQ", "Bq", "BQ", "mCi", "MCI"],
    "time": ["s", "S", "ms", "MS", "min", "MIN", "h", "HR", "sec"],
}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([(q, u) for q, units in SPELLINGS.items() for u in units]),
       st.floats(1e-6, 1e6, allow_nan=False))
def test_unit_conversions_round_trip(spelling: tuple[str, str], value: float) -> None:
    quantity, unit = spelling
    stored = convert(value, unit, quantity)
    assert stored is not None, unit
    back = from_stored(stored, unit, quantity)
    assert back is not None and math.isclose(back, value, rel_tol=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["mGy.cm", "Gy.m2", "dGy.cm2", "cGy.cm2", "uGy.m2", "mGy", "Gy", "kBq", "GBq", "mCi", "s",
                        "ms", "min"]))
def test_case_insensitive_ucum_reads_as_the_case_sensitive_code(code: str) -> None:
    upper = code.upper().replace("GBQ", "GABQ")
    sensitive, insensitive = read_unit(code).unit, read_unit(upper).unit
    assert sensitive is not None and insensitive is not None, (code, upper)
    assert (sensitive.base, sensitive.length_power) == (insensitive.base, insensitive.length_power)
    assert math.isclose(sensitive.factor, insensitive.factor, rel_tol=1e-12)
