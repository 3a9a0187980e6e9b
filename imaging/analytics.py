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


def studies_frame(engine: Engine | str, *, pseudonym_key: bytes | None = None, batch: int = 50_000) -> pd.DataFrame:
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
    for column in _DATE_COLUMNS:
        frame[column] = pd.to_datetime(frame[column])
    return frame.drop(columns=["row_id"])


def drl_frame() -> pd.DataFrame:
    """The UK national DRLs for adult CT as a DataFrame (``category``, ``label``, ``ctdivol_mgy``, ``dlp_mgycm``)."""
    import pandas as pd

    return pd.DataFrame([{"category": d.category, "label": d.label, "ctdivol_mgy": d.ctdivol_mgy,
                          "dlp_mgycm": d.dlp_mgycm, "source": d.source} for d in national_drls().values()])
