"""imaging.units: vendor unit spellings converted by their UCUM meaning; unreadable units refused, never guessed."""

from __future__ import annotations

import pytest

from imaging.units import conversion, convert, parse_number, parse_unit, read_unit


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
    (12.5, "MGY.CM", "dlp", 12.5),  # UCUM's case-insensitive form: M is milli, never mega (issue 14)
    (12.5, "MGYCM", "dlp", 12.5),  # the same without the dot
    (12.5, "mGy-cm", "dlp", 12.5),  # a hyphen for the product
    (12.5, "mGy x cm", "dlp", 12.5),  # a spelled-out times
    (1.6e-5, "GY.M2", "dap", 1.6e-5),  # case-insensitive gray square metres
    (25.0, "DGY.CM2", "dap", 2.5e-4),  # case-insensitive decigray square centimetres
    (2.5, "Gy*cm^2", "dap", 2.5e-4),  # caret exponent
    (12.0, "mGy.cm{DLP}", "dlp", 12.0),  # a UCUM annotation
    (45.0, "MGY", "dose_mgy", 45.0),  # case-insensitive milligray
    (400.0, "MABQ", "activity", 400.0),  # case-insensitive megabecquerel
    (0.4, "GABQ", "activity", 400.0),  # case-insensitive gigabecquerel
    (10.0, "MCI", "activity", 370.0),  # case-insensitive millicurie
    (2.0, "MIN", "time", 120.0),  # case-insensitive minute
    (1.0, "HR", "time", 3600.0),  # case-insensitive hour
    (30.0, "sec", "time", 30.0),  # not UCUM, but unambiguous
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


@pytest.mark.parametrize(("unit", "quantity", "why"), [
    ("MBQ", "activity", "millibecquerel"),  # case-insensitive milli, everyday mega: the two readings differ
    ("MGy.cm", "dlp", "megagray"),  # mega-gray is no imaging dose: a milligray in the wrong case is likelier
    ("Mgy.cm", "dlp", "megagray"),
    ("MAGY.CM", "dlp", "megagray"),  # the case-insensitive mega, equally implausible
    ("GGy", "dose_mgy", "gigagray"),
    ("GBQ", "activity", "case-insensitive"),  # neither UCUM form (giga is GA in capitals)
    ("mGy/cm", "dlp", "quotient"),  # a dose per length is not a dose-length product
    ("mGy.cm-1", "dlp", "negative exponent"),
    ("Gy.m2", "dlp", "not the unit of a dose-length product"),
    ("furlongs", "dlp", "not a unit"),
    ("", "dlp", "no unit"),
    ("{DLP}", "dlp", "annotations"),
])
def test_refusals_say_why(unit: str, quantity: str, why: str) -> None:
    value, problem = conversion(12.5, unit, quantity)
    assert value is None and problem is not None and why in problem, problem


def test_a_read_unit_has_no_problem_and_a_refused_one_no_unit() -> None:
    ok, refused = read_unit("mGy.cm"), read_unit("MBQ")
    assert ok.unit is not None and ok.problem is None
    assert refused.unit is None and refused.problem


@pytest.mark.parametrize(("text", "expected"), [
    ("1.6e-005", 1.6e-5),  # Siemens writes a three-digit exponent
    (" 12,5 ", 12.5),  # a decimal comma
    (b"3.2 ", 3.2),  # raw bytes with DS padding
    ("", None), ("n/a", None), ("nan", None), (None, None),
    ("1,234", None),  # a thousands separator or a decimal comma: refused, not guessed
    ("1,5,0", None),
    ("0,125", 0.125),  # a leading zero is no thousands group: a decimal comma
    ("-1,500", None),
])
def test_parse_number(text: object, expected: float | None) -> None:
    assert parse_number(text) == expected
