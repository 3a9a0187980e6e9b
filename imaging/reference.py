"""Reference tables shipped as data (editable without code changes): effective-dose coefficients and UK DRLs.

The values come from REFERENCE.md, each row with its source in its ``basis`` or ``source`` column:

- ``effective_dose_coefficients.csv``: k (mSv per mGy·cm) by body region, age band and CTDI phantom. Adults (16
  and over): ICRP 103 values; rows marked "judgement" extend them to regions the reference does not name. Children:
  AAPM Report 96 table 3 (after Shrimpton 2005, ICRP 60 weights), the 0-, 1-, 5- and 10-year values, which are
  defined for the 16 cm phantom for every region; ages 13 to 15 and regions without a published value have no row,
  so no estimate is made for them.
- ``uk_national_drl_ct.csv``: the UKHSA national DRLs for adult CT with the examination, the indication, the body
  regions an examination can be filed under and the description terms that select it (in file order).

Loaded once per process; a malformed file is a configuration error.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

from imaging.dose import Coefficient, CoefficientTable, Drl
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


def _optional_int(text: str | None, where: str) -> int | None:
    value = _optional_float(text, where)
    if value is None:
        return None
    if value != int(value) or value < 0:
        raise ConfigurationError(f"{where}: an age must be whole years")
    return int(value)


def load_coefficients(path: Path = COEFFICIENTS_FILE) -> CoefficientTable:
    """Effective-dose coefficients k (mSv per mGy·cm) by body region and age band, from a CSV file.

    Columns: ``body_region`` (a value of :data:`imaging.regions.BODY_REGIONS`), ``age_min`` and ``age_max`` (whole
    years, inclusive; ``age_max`` empty for no upper bound), ``phantom_cm`` (16 or 32), ``k_msv_per_mgycm``,
    ``basis``. Two rows of one region may not cover the same age.
    """
    rows: list[Coefficient] = []
    for number, row in enumerate(_rows(path), start=2):
        where = f"{path.name} line {number}"
        region = (row.get("body_region") or "").strip()
        if region not in REGIONS:
            raise ConfigurationError(f"{where}: unknown body region {region!r}")
        phantom = _optional_float(row.get("phantom_cm"), where)
        k = _optional_float(row.get("k_msv_per_mgycm"), where)
        if phantom not in (16.0, 32.0) or k is None or not 0 < k < 1:
            raise ConfigurationError(f"{where}: phantom must be 16 or 32 and k a plausible coefficient")
        age_min = _optional_int(row.get("age_min"), where)
        age_max = _optional_int(row.get("age_max"), where)
        if age_min is None or (age_max is not None and age_max < age_min):
            raise ConfigurationError(f"{where}: age_min is required and age_max may not be below it")
        basis = (row.get("basis") or "").strip()
        if not basis:
            raise ConfigurationError(f"{where}: every coefficient needs its source in basis")
        coefficient = Coefficient(region, int(phantom), k, basis, age_min, age_max)
        for other in rows:
            top = age_max if age_max is not None else 10**6
            other_top = other.age_max if other.age_max is not None else 10**6
            if other.body_region == region and age_min <= other_top and other.age_min <= top:
                raise ConfigurationError(f"{where}: ages overlap another row of {region}")
        rows.append(coefficient)
    return CoefficientTable(tuple(rows))


def load_drls(path: Path = DRL_FILE) -> dict[str, Drl]:
    """National DRLs by examination category, from a CSV file, in file order.

    Columns: ``category``, ``label``, ``indication``, ``ctdivol_mgy``, ``dlp_mgycm``, ``body_regions`` (normalised
    regions, space-separated), ``terms`` (description words that select the category, ``|``-separated), ``source``.
    """
    table: dict[str, Drl] = {}
    for number, row in enumerate(_rows(path), start=2):
        where = f"{path.name} line {number}"
        category = (row.get("category") or "").strip()
        if not category:
            raise ConfigurationError(f"{where}: category missing")
        regions = frozenset((row.get("body_regions") or "").split())
        unknown = sorted(r for r in regions if r not in REGIONS)
        if unknown:
            raise ConfigurationError(f"{where}: unknown body regions {unknown}")
        terms = tuple(" ".join(t.upper().split()) for t in (row.get("terms") or "").split("|") if t.strip())
        table[category] = Drl(category, (row.get("label") or category).strip(),
                              _optional_float(row.get("ctdivol_mgy"), where),
                              _optional_float(row.get("dlp_mgycm"), where), (row.get("source") or "").strip(),
                              (row.get("indication") or "").strip(), regions, terms)
    return table


@lru_cache(maxsize=1)
def effective_dose_coefficients() -> CoefficientTable:
    """The shipped coefficient table (cached)."""
    return load_coefficients()


@lru_cache(maxsize=1)
def national_drls() -> dict[str, Drl]:
    """The shipped UK national DRLs for adult CT (cached)."""
    return load_drls()
