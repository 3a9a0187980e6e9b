"""Columns of normalised records, the shape every comparison reads: one numpy array per field.

A :class:`Frame` is built from :class:`~mpi.normalise.MatchRecord` objects (real time: a probe and its candidates)
or from a pandas table (batch). Missing strings are ``""`` and missing numbers ``0``, so comparisons test for
absence with one vectorised equality. A few derived columns (nickname ids, initials, first middle name) are
computed here, once per frame, so no comparison loops in Python over pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from mpi.normalise import MatchRecord

STRING_COLUMNS = ("nhs_number", "family", "given", "middle", "family_ph", "given_ph", "nick", "dob", "sex",
                  "postcode", "sector", "district", "address", "phone")
INT_COLUMNS = ("birth_year", "birth_month", "birth_day")
BOOL_COLUMNS = ("nhs_valid", "nhs_verified", "postcode_uk")
STORED_COLUMNS = STRING_COLUMNS + INT_COLUMNS + BOOL_COLUMNS
NICK_SLOTS = 16


class Frame(dict[str, NDArray[Any]]):
    """Named columns of equal length."""

    @property
    def size(self) -> int:
        return len(self["family"]) if "family" in self else 0

    def take(self, index: NDArray[np.int64]) -> Frame:
        """The rows at ``index`` (one side of a set of pairs); columns are gathered when first read."""
        return TakenFrame(self, index)


class TakenFrame(Frame):
    """Rows of another frame, gathered column by column on first use (a comparison reads only a few)."""

    def __init__(self, source: Frame, index: NDArray[np.int64]) -> None:
        super().__init__()
        self._source = source
        self._index = index

    def __missing__(self, name: str) -> NDArray[Any]:
        column = self._source[name][self._index]
        self[name] = column
        return column

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name) or name in self._source

    @property
    def size(self) -> int:
        return len(self._index)

    def take(self, index: NDArray[np.int64]) -> Frame:
        return TakenFrame(self._source, self._index[index])


def _strings(values: Sequence[Any]) -> NDArray[Any]:
    out = np.empty(len(values), dtype=object)
    out[:] = ["" if v is None else v for v in values]
    return out


def frame_from_records(records: Sequence[MatchRecord]) -> Frame:
    """A frame of ``records`` (in order)."""
    frame = Frame()
    for name in STRING_COLUMNS:
        frame[name] = _strings([getattr(r, name) for r in records])
    for name in INT_COLUMNS:
        frame[name] = np.fromiter((getattr(r, name) or 0 for r in records), dtype=np.int32, count=len(records))
    for name in BOOL_COLUMNS:
        frame[name] = np.fromiter((bool(getattr(r, name)) for r in records), dtype=bool, count=len(records))
    frame["record_id"] = np.fromiter((r.record_id if r.record_id is not None else -1 for r in records),
                                     dtype=np.int64, count=len(records))
    return _derive(frame)


def frame_from_table(table: pd.DataFrame) -> Frame:
    """A frame from a pandas table with the columns of :class:`MatchRecord` (batch)."""
    frame = Frame()
    for name in STRING_COLUMNS:
        if name in table:
            frame[name] = table[name].fillna("").astype(object).to_numpy()
        else:
            frame[name] = np.full(len(table), "", dtype=object)
    for name in INT_COLUMNS:
        frame[name] = table[name].fillna(0).to_numpy(dtype=np.int32) if name in table else np.zeros(len(table),
                                                                                                    np.int32)
    for name in BOOL_COLUMNS:
        frame[name] = (table[name].astype("boolean").fillna(False).to_numpy(dtype=bool) if name in table
                       else np.zeros(len(table), bool))
    frame["record_id"] = table["record_id"].to_numpy(dtype=np.int64)
    return _derive(frame)


def table_from_stored(record_ids: Sequence[int], stored: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """A table with every column of :class:`MatchRecord` from stored ``match_fields`` (missing: "", 0, False)."""
    table = pd.DataFrame.from_records(list(stored))
    for name in STRING_COLUMNS:
        table[name] = table[name].fillna("").astype(object) if name in table else ""
    for name in INT_COLUMNS:
        table[name] = table[name].fillna(0).astype(np.int32) if name in table else 0
    for name in BOOL_COLUMNS:
        table[name] = table[name].astype("boolean").fillna(False).astype(bool) if name in table else False
    table["record_id"] = np.asarray(record_ids, dtype=np.int64)
    return table


def _derive(frame: Frame) -> Frame:
    for name in STRING_COLUMNS:  # absence as booleans: cheaper to gather and test than strings
        frame[f"{name}__missing"] = frame[name] == ""
    given = frame["given"]
    frame["family_multi"] = np.fromiter((" " in v for v in frame["family"]), dtype=bool, count=len(given))
    frame["given_len"] = np.fromiter((len(v) for v in given), dtype=np.int32, count=len(given))
    frame["given_initial"] = _strings([v[:1] for v in given])
    frame["family_initial"] = _strings([v[:1] for v in frame["family"]])
    frame["middle1"] = _strings([v.split(" ", 1)[0] for v in frame["middle"]])
    ids: dict[str, int] = {}
    nick_ids = np.full((len(given), NICK_SLOTS), -1, dtype=np.int32)
    for row, keys in enumerate(frame["nick"]):
        if keys:
            for slot, key in enumerate(keys.split(" ")[:NICK_SLOTS]):
                nick_ids[row, slot] = ids.setdefault(key, len(ids))
    frame["nick_ids"] = nick_ids
    return frame
