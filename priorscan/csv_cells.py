"""Cells of the CSV files priorscan writes, made safe to open in a spreadsheet (CSV or formula injection, OWASP).

Hospital numbers, identifier systems, accession numbers and free text reach the exports from the trusts' feeds as
sent. A cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read by Excel, LibreOffice and
Google Sheets as a formula (``=HYPERLINK(...)``, ``=cmd|' /C calc'!A0``) when an analyst opens the file: the
feed's sender would run code or send data out from the analyst's desktop (hazard log H-SEC-17).

The rule, OWASP's: such a cell is written with a single quote before it (``'=HYPERLINK(...)``), which spreadsheets
show as text and which a reader of the CSV sees plainly. One exception keeps the exports' figures exact: a cell that
is wholly a decimal number (``-1.5``, ``+44``, ``-2e-3``) is a number to a spreadsheet, never a formula, and is left as
it is; numbers given as ``int`` or ``float`` are never changed. Anything else that begins with those characters
(``-1+2``, ``-``, ``+44 (0)1234``) is neutralised.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

#: The characters that make a spreadsheet read a cell as a formula (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def neutral_cell(value: Any) -> Any:
    """``value`` as a cell no spreadsheet reads as a formula (see the module's notes); non-strings unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def neutral_row(row: Iterable[Any]) -> list[Any]:
    """Each cell of ``row`` through :func:`neutral_cell`."""
    return [neutral_cell(value) for value in row]


def neutral_mapping(row: Mapping[str, Any]) -> dict[str, Any]:
    """Each value of ``row`` (a ``csv.DictWriter`` row) through :func:`neutral_cell`."""
    return {name: neutral_cell(value) for name, value in row.items()}


__all__ = ["FORMULA_STARTS", "neutral_cell", "neutral_mapping", "neutral_row"]
