"""imaging.reference: the shipped coefficient and DRL tables carry REFERENCE.md's values and are validated."""

from __future__ import annotations

from pathlib import Path

import pytest

from imaging.reference import effective_dose_coefficients, load_coefficients, national_drls
from priorscan.errors import ConfigurationError


@pytest.mark.parametrize(("region", "phantom", "k"), [
    ("head", 16, 0.0019), ("neck", 32, 0.0051), ("chest", 32, 0.0145), ("abdomen", 32, 0.0153),
    ("pelvis", 32, 0.0129), ("chest-abdomen-pelvis", 32, 0.0152)])
def test_reference_coefficients(region: str, phantom: int, k: float) -> None:
    coefficient = effective_dose_coefficients().find(region, 40)
    assert coefficient is not None and (coefficient.phantom_cm, coefficient.k) == (phantom, k)
    assert "REFERENCE.md" in coefficient.basis and "ICRP 103" in coefficient.basis


# REFERENCE.md's UKHSA adult CT table, every row in its order: examination (clinical indication), CTDIvol / DLP
@pytest.mark.parametrize(("category", "indication", "ctdivol", "dlp"), [
    ("ct-head", "acute stroke", 47, 790),
    ("ct-sinuses", "sinus disease", 12, 160),
    ("ct-cervical-spine", "fracture", 16, 400),
    ("ct-neck-chest-abdomen-pelvis", "cancer", None, 850),
    ("ct-chest", "lung cancer", 8.5, 290),
    ("ct-chest-abdomen", "lung cancer", None, 470),
    ("ct-hrct", "interstitial lung disease", 8, 300),
    ("ct-chest-abdomen-pelvis", "cancer", None, 660),
    ("ctpa", "pulmonary embolism", 9.1, 310),
    ("ct-abdomen-pelvis", "abscess", 10, 530),
    ("ct-colonography", "polyps/tumour", None, 690),
    ("ct-kub", "stones/colic", 6.3, 290),
    ("ct-urogram", "tumour/stones/colic", None, 890),
])
def test_uk_national_drls(category: str, indication: str, ctdivol: float | None, dlp: float) -> None:
    drl = national_drls()[category]
    assert (drl.indication, drl.ctdivol_mgy, drl.dlp_mgycm) == (indication, ctdivol, dlp)
    assert "UKHSA" in drl.source and "2022" in drl.source


def test_the_national_drl_table_has_reference_mds_thirteen_rows_only() -> None:
    """Coronary CTA and the paediatric table are not shipped: REFERENCE.md gives no values for them."""
    assert len(national_drls()) == 13


@pytest.mark.parametrize("row", [
    "nowhere,16,,32,0.01,x",  # not a body region of the vocabulary
    "head,16,,20,0.01,x",  # no such CTDI phantom
    "head,16,,16,7,x",  # not a plausible coefficient
    "head,,,16,0.002,x",  # no age band
    "head,8,3,16,0.002,x",  # an age band upside down
    "head,2.5,,16,0.002,x",  # ages are whole years
    "head,16,,16,0.002,",  # a coefficient without its source
    "head,16,,16,0.002,x\nhead,40,,16,0.003,y",  # two rows for one age
])
def test_malformed_coefficients_are_refused(tmp_path: Path, row: str) -> None:
    path = tmp_path / "k.csv"
    path.write_text("body_region,age_min,age_max,phantom_cm,k_msv_per_mgycm,basis\n" + row + "\n", encoding="utf-8")
    with pytest.raises(ConfigurationError):
        load_coefficients(path)
