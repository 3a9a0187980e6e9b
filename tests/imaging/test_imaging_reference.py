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


@pytest.mark.parametrize(("category", "ctdivol", "dlp"), [
    ("ct-head", 47, 790), ("ct-chest", 8.5, 290), ("ctpa", 9.1, 310), ("ct-abdomen-pelvis", 10, 530),
    ("ct-chest-abdomen-pelvis", None, 660), ("ct-cervical-spine", 16, 400), ("ct-kub", 6.3, 290)])
def test_uk_national_drls(category: str, ctdivol: float | None, dlp: float) -> None:
    drl = national_drls()[category]
    assert (drl.ctdivol_mgy, drl.dlp_mgycm) == (ctdivol, dlp)


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
