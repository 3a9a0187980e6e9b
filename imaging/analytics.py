"""Dose analytics for analysts and notebooks: pandas frames over the same store, pseudonymised.

Notebooks import these through :mod:`imaging` (the package's public front)::

    from imaging import studies_frame, drl_frame
    frame = studies_frame("sqlite:///region.db")   # one row per study; patients and studies by pseudonym
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from imaging.queries import analytics_rows
from imaging.reference import national_drls
from priorscan.db import make_engine, session_factory

if TYPE_CHECKING:
    import pandas as pd

_DATE_COLUMNS = ("study_date",)


def studies_frame(engine: Engine | str, *, pseudonym_key: bytes | None = None, batch: int = 50_000,
                  not_patient: bool = False) -> pd.DataFrame:
    """Every study's dose row as a DataFrame (the rows of ``GET /api/v1/analytics/studies``).

    Parameters
    ----------
    engine : sqlalchemy.Engine or str
        The store, or its URL (``sqlite:///…``, ``postgresql://…``).
    pseudonym_key : bytes, optional
        The key naming patients and studies; a fresh random key per call when omitted, so that pseudonyms are
        consistent within the frame and unlinkable across calls.
    batch : int
        Rows read per query.
    not_patient : bool
        Keep the studies that are not a patient's examination (QA, physics, phantom tests: ``not_patient`` true).
        Left out by default: a phantom's dose is no patient's, and must not enter a DRL audit or a cumulative dose.

    Returns
    -------
    pandas.DataFrame
        Columns ``patient``, ``study``, ``trust``, ``modality``, ``body_region``, ``study_date`` (datetime64),
        ``dlp_total_mgycm``, ``effective_dose_msv``, ``drl_category``, ``dlp_drl_ratio`` ... (see
        :func:`imaging.queries.analytics_rows`).
    """
    import pandas as pd

    key = pseudonym_key or secrets.token_bytes(32)
    rows: list[dict] = []
    after = 0
    owned = isinstance(engine, str)
    bound = make_engine(engine) if isinstance(engine, str) else engine
    with session_factory(bound)() as session:
        while True:
            page = analytics_rows(session, key, after_id=after, limit=batch)
            rows += page
            if len(page) < batch:
                break
            after = page[-1]["row_id"]
    if owned:
        bound.dispose()
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    if not not_patient:
        frame = frame[~frame["not_patient"].astype(bool)].reset_index(drop=True)
    for column in _DATE_COLUMNS:
        frame[column] = pd.to_datetime(frame[column])
    return frame.drop(columns=["row_id"])


def drl_frame() -> pd.DataFrame:
    """The UK national DRLs for adult CT as a DataFrame (``category``, ``label``, ``ctdivol_mgy``, ``dlp_mgycm``)."""
    import pandas as pd

    return pd.DataFrame([{"category": d.category, "label": d.label, "ctdivol_mgy": d.ctdivol_mgy,
                          "dlp_mgycm": d.dlp_mgycm, "source": d.source} for d in national_drls().values()])


# --- summaries over a studies frame (pure pandas: every function takes what studies_frame returns) ----------------

#: Cumulative effective dose thresholds (mSv) analysts report against: 50 mSv is the annual occupational limit
#: (IRR17), 100 mSv the level above which the AAPM and the ICRP discuss cumulative patient dose (judgement, shown
#: as context, not as a limit for patients).
CUMULATIVE_THRESHOLDS_MSV = (50.0, 100.0)
#: Rolling windows (days) over which cumulative dose is summed: one year and five years.
ROLLING_WINDOWS_DAYS = (365, 1826)


def _patients(frame: pd.DataFrame) -> pd.Series:
    """Rows of patients' examinations (a frame read with ``not_patient=True`` also holds QA and phantom tests)."""
    import pandas as pd

    if "not_patient" not in frame:
        return pd.Series(True, index=frame.index)
    return ~frame["not_patient"].fillna(False).astype(bool)


def _dosed(frame: pd.DataFrame) -> pd.DataFrame:
    """Studies that carry an effective-dose estimate and still stand (not cancelled, not withdrawn with its dose)."""
    keep = frame["effective_dose_msv"].notna() & (frame["status"] != "cancelled") & _patients(frame)
    if "withdrawn" in frame:
        keep &= frame["withdrawn"].isna() | frame["effective_dose_msv"].notna()
    return frame[keep & frame["patient"].notna() & frame["study_date"].notna()]


def studies_by(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """Studies counted by ``columns`` (``unknown`` where a value is missing, so nothing drops out silently)."""
    import pandas as pd

    if frame.empty:
        return pd.DataFrame(columns=[*columns, "studies"])
    filled = frame[list(columns)].astype(object).where(frame[list(columns)].notna(), "unknown")
    return filled.value_counts(sort=False).rename("studies").reset_index().sort_values(list(columns))


def drl_audit(frame: pd.DataFrame, by: tuple[str, ...] = ("trust",)) -> pd.DataFrame:
    """CT dose per UKHSA examination category (and ``by``) against the national DRLs.

    A DRL applies to the **median** of a group of typical patients, not to one study, so each group's median DLP
    and CTDIvol are compared with the DRL (``*_median_over_drl`` above 1: the group's typical dose is above the
    national level, which calls for a review of the protocol, not a judgement of any one study).
    """
    import pandas as pd

    ct = frame[frame["drl_category"].notna() & _patients(frame)]  # a phantom's dose is no patient's
    if ct.empty:
        return pd.DataFrame(columns=["drl_category", *by, "studies", "dlp_median_mgycm", "drl_dlp_mgycm",
                                     "dlp_median_over_drl", "ctdivol_median_mgy", "drl_ctdivol_mgy",
                                     "ctdivol_median_over_drl"])
    keys = ["drl_category", *by]
    grouped = ct.groupby(keys, dropna=False)
    out = grouped.agg(studies=("study", "size"), dlp_median_mgycm=("dlp_total_mgycm", "median"),
                      drl_dlp_mgycm=("drl_dlp_mgycm", "first"), ctdivol_median_mgy=("ctdivol_mgy", "median"),
                      drl_ctdivol_mgy=("drl_ctdivol_mgy", "first")).reset_index()
    out["dlp_median_over_drl"] = out["dlp_median_mgycm"] / out["drl_dlp_mgycm"]
    out["ctdivol_median_over_drl"] = out["ctdivol_median_mgy"] / out["drl_ctdivol_mgy"]
    return out[["drl_category", *by, "studies", "dlp_median_mgycm", "drl_dlp_mgycm", "dlp_median_over_drl",
                "ctdivol_median_mgy", "drl_ctdivol_mgy", "ctdivol_median_over_drl"]]


def monthly(frame: pd.DataFrame, by: str = "modality", value: str | None = None,
            statistic: str = "median") -> pd.DataFrame:
    """Per calendar month (of the study date) and ``by``: the number of studies, or ``statistic`` of ``value``.

    Returns a frame indexed by month (the first day of each month) with one column per value of ``by``.
    """
    import pandas as pd

    dated = frame[frame["study_date"].notna()].copy()
    if dated.empty:
        return pd.DataFrame()
    dated["month"] = dated["study_date"].dt.to_period("M").dt.to_timestamp()
    dated[by] = dated[by].astype(object).where(dated[by].notna(), "unknown")
    grouped = dated.groupby(["month", by])
    table = grouped.size() if value is None else grouped[value].agg(statistic)
    return table.unstack(by).sort_index()


def cumulative_per_patient(frame: pd.DataFrame) -> pd.DataFrame:
    """Each patient's cumulative effective dose (an estimate) across the five trusts.

    Columns: ``patient``, ``studies``, ``effective_dose_msv`` (sum of the studies' estimates), ``trusts`` (how many
    trusts imaged them), ``main_trust_dose_msv`` (the dose received at the trust that gave them most),
    ``elsewhere_dose_msv`` (the rest: dose only a shared identity can add up), ``age_band`` (at their latest study),
    ``sex``.
    """
    import pandas as pd

    dosed = _dosed(frame)
    if dosed.empty:
        return pd.DataFrame(columns=["patient", "studies", "effective_dose_msv", "trusts", "main_trust_dose_msv",
                                     "elsewhere_dose_msv", "age_band", "sex"])
    per_trust = dosed.groupby(["patient", "trust"], dropna=False)["effective_dose_msv"].sum()
    main = per_trust.groupby(level="patient").max().rename("main_trust_dose_msv")
    latest = dosed.sort_values("study_date").groupby("patient").last()
    out = dosed.groupby("patient").agg(studies=("study", "size"), effective_dose_msv=("effective_dose_msv", "sum"),
                                       trusts=("trust", "nunique"))
    out = out.join(main)
    out["elsewhere_dose_msv"] = out["effective_dose_msv"] - out["main_trust_dose_msv"]
    out["age_band"] = latest["age_band"] if "age_band" in latest else None
    out["sex"] = latest["sex"] if "sex" in latest else None
    return out.reset_index().sort_values("effective_dose_msv", ascending=False, kind="stable")


def rolling_peaks(frame: pd.DataFrame, windows_days: tuple[int, ...] = ROLLING_WINDOWS_DAYS) -> pd.DataFrame:
    """Each patient's highest cumulative effective dose within any window of ``windows_days`` consecutive days.

    Returns one row per patient with ``peak_<days>d_msv`` per window (the largest sum over studies whose dates lie
    within ``days`` of each other), ``age_band`` and ``sex`` of their latest study.
    """
    import numpy as np
    import pandas as pd

    dosed = _dosed(frame).sort_values(["patient", "study_date"], kind="stable")
    columns = [f"peak_{days}d_msv" for days in windows_days]
    if dosed.empty:
        return pd.DataFrame(columns=["patient", *columns, "age_band", "sex"])
    rows = []
    for patient, studies in dosed.groupby("patient", sort=False):
        days = studies["study_date"].to_numpy(dtype="datetime64[D]").astype(np.int64)
        doses = studies["effective_dose_msv"].to_numpy(dtype=float)
        running = np.concatenate([[0.0], np.cumsum(doses)])
        peaks = {}
        for window, column in zip(windows_days, columns, strict=True):
            # for each study as the window's last, the first study still inside it (two pointers via searchsorted)
            first = np.searchsorted(days, days - (window - 1), side="left")
            peaks[column] = float(np.max(running[np.arange(1, len(days) + 1)] - running[first]))
        last = studies.iloc[-1]
        rows.append({"patient": patient, **peaks, "age_band": last.get("age_band"), "sex": last.get("sex")})
    return pd.DataFrame(rows)


def exceedances(peaks: pd.DataFrame, thresholds: tuple[float, ...] = CUMULATIVE_THRESHOLDS_MSV,
                by: tuple[str, ...] = ("age_band", "sex")) -> pd.DataFrame:
    """How many patients crossed each threshold within each rolling window, by ``by`` (long format:
    ``window_days``, ``threshold_msv``, ``by`` columns, ``patients``)."""
    import pandas as pd

    records = []
    windows = [c for c in peaks.columns if c.startswith("peak_") and c.endswith("d_msv")]
    for column in windows:
        window = int(column[len("peak_"):-len("d_msv")])
        for threshold in thresholds:
            over = peaks[peaks[column] > threshold]
            keyed = over[list(by)].astype(object).where(over[list(by)].notna(), "unknown")
            for key, count in keyed.value_counts().items():
                records.append({"window_days": window, "threshold_msv": threshold,
                                **dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True)),
                                "patients": int(count)})
    return pd.DataFrame(records, columns=["window_days", "threshold_msv", *by, "patients"])


def shared_identity_share(per_patient: pd.DataFrame) -> dict[str, float]:
    """What only a regional identity shows: the share of all estimated dose received by patients imaged at more than
    one trust, and the share received away from each patient's main trust (0 when there is no dose)."""
    total = float(per_patient["effective_dose_msv"].sum()) if len(per_patient) else 0.0
    if total == 0:
        return {"patients": float(len(per_patient)), "multi_trust_patients": 0.0, "dose_of_multi_trust_patients": 0.0,
                "dose_received_elsewhere": 0.0}
    multi = per_patient[per_patient["trusts"] > 1]
    return {"patients": float(len(per_patient)), "multi_trust_patients": float(len(multi)),
            "dose_of_multi_trust_patients": float(multi["effective_dose_msv"].sum()) / total,
            "dose_received_elsewhere": float(per_patient["elsewhere_dose_msv"].sum()) / total}
