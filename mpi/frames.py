"""Columns of normalised records, the shape every comparison reads: one numpy array per field.

A :class:`Frame` is built from :class:`~mpi.normalise.MatchRecord` objects or from a pandas table (batch). Missing
strings are ``""`` and missing numbers ``0``, so comparisons test for absence with one vectorised equality. Every
string column of a frame of many records is also coded (int32 codes into the column's distinct values), and a few
derived columns (initials, name lengths, first middle name) are computed once per distinct value and gathered, so
no comparison loops in Python over pairs.

A probe and its candidates (real time, a few dozen records: :func:`probe_pairs`) are not coded: coding every
column would cost more than it saves, and below ``comparisons.DISTINCT_FROM`` pairs the comparisons work on the
strings anyway. The comparisons are the same; only the columns they find differ (values rather than codes).
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from mpi.normalise import MatchRecord

STRING_COLUMNS = ("nhs_number", "family", "given", "middle", "family_ph", "given_ph", "nick", "dob", "sex",
                  "postcode", "sector", "district", "address", "phone", "identifiers")
INT_COLUMNS = ("birth_year", "birth_month", "birth_day")
BOOL_COLUMNS = ("nhs_valid", "nhs_verified", "postcode_uk")
STORED_COLUMNS = STRING_COLUMNS + INT_COLUMNS + BOOL_COLUMNS


class Frame(dict[str, NDArray[Any]]):
    """Named columns of equal length.

    In a coded frame every string column ``name`` also has ``name__code`` (int32): its index in ``vocab[name]``,
    the column's distinct values. Comparisons test equality on codes and compute string similarities once per
    distinct pair of values, never once per pair of rows; gathering int32 codes for a million pairs is far cheaper
    than gathering Python strings. ``cache`` holds what is derived from the vocabularies (term frequencies per model).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.vocab: dict[str, NDArray[Any]] = {}
        self.cache: dict[Any, Any] = {}

    @property
    def origin(self) -> Frame:
        """The frame whose rows (and vocabularies) these are."""
        return self

    @property
    def size(self) -> int:
        return len(self["family"]) if "family" in self else 0

    @property
    def rows(self) -> NDArray[np.int64]:
        """The rows of :attr:`origin` these are."""
        return np.arange(self.size, dtype=np.int64)

    def take(self, index: NDArray[np.int64]) -> Frame:
        """The rows at ``index`` (one side of a set of pairs); columns are gathered when first read."""
        return TakenFrame(self, index)


class TakenFrame(Frame):
    """Rows of another frame, gathered column by column on first use (a comparison reads only a few)."""

    def __init__(self, source: Frame, index: NDArray[np.int64]) -> None:
        super().__init__()
        self._source = source
        self._index = index
        self.vocab = source.vocab
        self.cache = source.cache

    def __missing__(self, name: str) -> NDArray[Any]:
        column = self._source[name][self._index]
        self[name] = column
        return column

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name) or name in self._source

    @property
    def origin(self) -> Frame:
        return self._source

    @property
    def size(self) -> int:
        return len(self._index)

    @property
    def rows(self) -> NDArray[np.int64]:
        return self._index

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


#: The string columns the comparisons read (``dob`` is for training and blocking only).
_COMPARED_STRINGS = tuple(name for name in STRING_COLUMNS if name != "dob")
_READ = attrgetter(*_COMPARED_STRINGS, *INT_COLUMNS, *BOOL_COLUMNS, "record_id")


def frame_of_few(records: Sequence[MatchRecord]) -> Frame:
    """An uncoded frame of a few ``records`` (in order): the compared columns, absence flags and the derived
    columns, built per value in one pass (no vocabularies).

    Comparisons on it give the levels they give on :func:`frame_from_records`; they read values instead of codes.
    """
    width = len(_COMPARED_STRINGS) + len(INT_COLUMNS) + len(BOOL_COLUMNS) + 1
    columns = list(zip(*map(_READ, records), strict=True)) if records else [()] * width
    frame = Frame()
    for name, values in zip(_COMPARED_STRINGS, columns, strict=False):
        column = np.array(["" if v is None else v for v in values], dtype=object)
        frame[name] = column
        frame[f"{name}__missing"] = column == ""
    rest = columns[len(_COMPARED_STRINGS):]
    for name, values in zip(INT_COLUMNS, rest, strict=False):
        frame[name] = np.array([v or 0 for v in values], dtype=np.int32)
    for name, values in zip(BOOL_COLUMNS, rest[len(INT_COLUMNS):], strict=False):
        frame[name] = np.array([bool(v) for v in values], dtype=bool)
    frame["record_id"] = np.array([-1 if v is None else v for v in columns[-1]], dtype=np.int64)
    family, given = frame["family"].tolist(), frame["given"].tolist()
    frame["family_multi"] = np.array([" " in v for v in family], dtype=bool)
    frame["given_len"] = np.array([len(v) for v in given], dtype=np.int32)
    frame["given_initial"] = np.array([ord(v[0]) if v else 0 for v in given], dtype=np.int32)
    frame["middle1"] = np.array([v.split(" ", 1)[0] for v in frame["middle"].tolist()], dtype=object)
    return frame


def probe_pairs(probe: MatchRecord, candidates: Sequence[MatchRecord]) -> tuple[Frame, Frame]:
    """The two sides of ``probe`` paired with each of ``candidates`` (real time), rows of one
    :func:`frame_of_few`: the probe repeated, and the candidates in order."""
    frame = frame_of_few([probe, *candidates])
    return (frame.take(np.zeros(len(candidates), dtype=np.int64)),
            frame.take(np.arange(1, len(candidates) + 1, dtype=np.int64)))


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


#: Frames smaller than this are coded with a plain dict (real time: a probe and a few dozen candidates).
_SMALL = 2_000


def factorize(values: NDArray[Any]) -> tuple[NDArray[np.int32], NDArray[Any]]:
    """Codes (int32) and distinct values of a string column, in order of first appearance."""
    if len(values) < _SMALL:
        index: dict[Any, int] = {}
        codes = np.fromiter((index.setdefault(v, len(index)) for v in values), dtype=np.int32, count=len(values))
        vocab = np.empty(len(index), dtype=object)
        vocab[:] = list(index)
        return codes, vocab
    codes64, uniques = pd.factorize(values)
    return codes64.astype(np.int32), np.asarray(uniques, dtype=object)


def _per_value(vocab: NDArray[Any], func: Any, dtype: Any) -> NDArray[Any]:
    return np.fromiter((func(v) for v in vocab), dtype=dtype, count=len(vocab))


def _derive(frame: Frame) -> Frame:
    for name in STRING_COLUMNS:
        codes, vocab = factorize(frame[name])
        frame[f"{name}__code"] = codes
        frame.vocab[name] = vocab
        # absence as booleans: cheaper to gather and test than strings
        frame[f"{name}__missing"] = (vocab == "")[codes] if len(vocab) else np.zeros(0, dtype=bool)
    # what comparisons derive from a value is computed once per distinct value, then gathered
    family, given, middle = frame.vocab["family"], frame.vocab["given"], frame.vocab["middle"]
    frame["family_multi"] = _per_value(family, lambda v: " " in v, bool)[frame["family__code"]]
    frame["given_len"] = _per_value(given, len, np.int32)[frame["given__code"]]
    frame["given_initial"] = _per_value(given, lambda v: ord(v[0]) if v else 0, np.int32)[frame["given__code"]]
    # the first middle name as a code of the given-name vocabulary (-2: a name no record has as its first)
    given_index = {v: i for i, v in enumerate(given.tolist())}
    frame["middle1__given_code"] = _per_value(
        middle, lambda v: given_index.get(v.split(" ", 1)[0], -2) if v else -2, np.int32)[frame["middle__code"]]
    return frame
