"""Reference tables shipped as data (editable without code changes): effective-dose coefficients and UK DRLs.

The values come from REFERENCE.md; rows marked "judgement" in their ``basis`` column extend them to regions the
reference does not name. Loaded once per process; a malformed file is a configuration error.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

from imaging.dose import Coefficient, Drl
from imaging.regions import REGIONS
from priorscan.errors import ConfigurationError

DATA = Path(__file__).parent / "data"
COEFFICIENTS_FILE = DATA / "effective_dose_coefficients.csv"
DRL_FILE = DATA / "uk_national_drl_ct.csv"


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except OSError as exc:
        raise ConfigurationError(f"cannot read reference table {path.name}") from exc


def _optional_float(text: str | None, where: str) -> float | None:
    if text is None or not text.strip():
        return None
    try:
        return float(text)
    except ValueError as exc:
        raise ConfigurationError(f"{where}: not a number") from exc


def load_coefficients(path: Path = COEFFICIENTS_FILE) -> dict[str, Coefficient]:
    """Effective-dose coefficients k (mSv per mGy·cm) by body region, from a CSV file.

    Columns: ``body_region`` (a value of :data:`imaging.regions.BODY_REGIONS`), ``phantom_cm`` (16 or 32),
    ``k_msv_per_mgycm``, ``basis``.
    """
    table: dict[str, Coefficient] = {}
    for number, row in enumerate(_rows(path), start=2):
        where = f"{path.name} line {number}"
        region = (row.get("body_region") or "").strip()
        if region not in REGIONS:
            raise ConfigurationError(f"{where}: unknown body region {region!r}")
        phantom = _optional_float(row.get("phantom_cm"), where)
        k = _optional_float(row.get("k_msv_per_mgycm"), where)
        if phantom not in (16.0, 32.0) or k is None or not 0 < k < 1:
            raise ConfigurationError(f"{where}: phantom must be 16 or 32 and k a plausible coefficient")
        table[region] = Coefficient(region, int(phantom), k, (row.get("basis") or "").strip())
    return table


def load_drls(path: Path = DRL_FILE) -> dict[str, Drl]:
    """National DRLs by examination category, from a CSV file (``category,label,ctdivol_mgy,dlp_mgycm,source``)."""
    table: dict[str, Drl] = {}
    for number, row in enumerate(_rows(path), start=2):
        where = f"{path.name} line {number}"
        category = (row.get("category") or "").strip()
        if not category:
            raise ConfigurationError(f"{where}: category missing")
        table[category] = Drl(category, (row.get("label") or category).strip(),
                              _optional_float(row.get("ctdivol_mgy"), where),
                              _optional_float(row.get("dlp_mgycm"), where), (row.get("source") or "").strip())
    return table


@lru_cache(maxsize=1)
def effective_dose_coefficients() -> dict[str, Coefficient]:
    """The shipped coefficient table (cached)."""
    return load_coefficients()


@lru_cache(maxsize=1)
def national_drls() -> dict[str, Drl]:
    """The shipped UK national DRLs for adult CT (cached)."""
    return load_drls()
