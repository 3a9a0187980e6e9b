"""priorscan.csv_cells: a cell a spreadsheet would read as a formula is neutralised; numbers are left exact."""

from __future__ import annotations

import pytest

from priorscan.csv_cells import neutral_cell, neutral_mapping, neutral_row


@pytest.mark.parametrize(("value", "written"), [
    ("=HYPERLINK(\"http://x\",\"open\")", "'=HYPERLINK(\"http://x\",\"open\")"),  # OWASP's first example
    ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),  # DDE: runs a program in old Excel
    ("+44 (0)1234 567890", "'+44 (0)1234 567890"),  # a formula to a spreadsheet, not a number
    ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),  # begins as a number, is a formula
    ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
    ("\t=1+1", "'\t=1+1"),  # a tab, then a formula: some spreadsheets drop the tab
    ("\r=1+1", "'\r=1+1"),
    ("-", "'-"),  # not a number
    ("-1.5", "-1.5"),  # a negative figure: a number, never a formula, kept exact
    ("+44", "+44"),
    ("-2e-3", "-2e-3"),
    ("-.5", "-.5"),
    ("A0418916", "A0418916"),  # an ordinary hospital number
    ("1.2.826.0.1.3680043", "1.2.826.0.1.3680043"),  # a UID
    ("a=b", "a=b"),  # the characters matter only at the start
    ("", ""),
])
def test_a_cell_a_spreadsheet_would_run_is_neutralised_and_a_number_is_not(value: str, written: str) -> None:
    assert neutral_cell(value) == written


@pytest.mark.parametrize("value", [-1.5, -3, 0.0, None, True], ids=["float", "int", "zero", "none", "bool"])
def test_values_that_are_not_text_are_never_changed(value: object) -> None:
    assert neutral_cell(value) is value


def test_rows_and_mappings_are_neutralised_cell_by_cell() -> None:
    assert neutral_row(["RP1", "=1+1", -2.5]) == ["RP1", "'=1+1", -2.5]
    assert neutral_mapping({"a": "@x", "b": "-7"}) == {"a": "'@x", "b": "-7"}
