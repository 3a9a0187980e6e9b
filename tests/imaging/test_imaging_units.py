"""imaging.units: vendor unit spellings converted by their UCUM meaning; unreadable units refused, never guessed."""

from __future__ import annotations

import pytest

from imaging.units import convert, parse_number, parse_unit


@pytest.mark.parametrize(("value", "unit", "quantity", "expected"), [
    (12.5, "mGy.cm", "dlp", 12.5),  # the UCUM code itself
    (12.5, "mGycm", "dlp", 12.5),  # GE and Toshiba write the dot-less form
    (12.5, "mGy*cm", "dlp", 12.5),  # an asterisk for the product
    (0.125, "Gy.m", "dlp", 12500.0),  # dose-length in SI base units
    (1.6e-5, "Gym2", "dap", 1.6e-5),  # Siemens fluoroscopy
    (1.6e-5, "Gy.m2", "dap", 1.6e-5),  # Philips
    (25.0, "dGy.cm2", "dap", 2.5e-4),  # the unit of the DAP image attribute (0018,115E)
    (250.0, "cGy.cm2", "dap", 2.5e-4),  # centigray square centimetres
    (16.0, "uGy.m2", "dap", 1.6e-5),  # micro prefix as u
    (16.0, "µGy·m²", "dap", 1.6e-5),  # micro sign, middle dot and superscript
    (2500.0, "mGy.cm2", "dap", 2.5e-4),  # milligray square centimetres
    (1.5, "Gy", "dose_mgy", 1500.0),  # dose in gray stored in mGy
    (10.0, "mCi", "activity", 370.0),  # activity in curies
    (0.4, "GBq", "activity", 400.0),  # giga prefix on becquerel
    (1500.0, "ms", "time", 1.5),
    (3.0, "milligray centimeter", "dlp", 3.0),  # a meaning spelled out instead of a code
])
def test_converts_each_spelling(value: float, unit: str, quantity: str, expected: float) -> None:
    assert convert(value, unit, quantity) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("unit", "quantity"), [
    ("Gy.m2", "dlp"),  # a dose-area unit on a dose-length quantity is an error, not a conversion
    ("mGy", "dap"),  # no area at all
    ("[arb'U]", "dap"),  # not a dose unit
    (None, "dlp"),  # no unit
    ("MBq.cm", "activity"),  # activity has no length part
])
def test_refuses_units_of_another_dimension(unit: str | None, quantity: str) -> None:
    assert convert(1.0, unit, quantity) is None


def test_prefix_case_matters() -> None:
    assert parse_unit("MBq").factor == pytest.approx(1e6)  # mega
    assert parse_unit("mBq").factor == pytest.approx(1e-3)  # milli


@pytest.mark.parametrize(("text", "expected"), [
    ("1.6e-005", 1.6e-5),  # Siemens writes a three-digit exponent
    (" 12,5 ", 12.5),  # a decimal comma
    (b"3.2 ", 3.2),  # raw bytes with DS padding
    ("", None), ("n/a", None), ("nan", None), (None, None),
])
def test_parse_number(text: object, expected: float | None) -> None:
    assert parse_number(text) == expected
