"""What the Spark relink's rows carry, and the conversions between Spark's pandas batches and :class:`Frame`.

A record row holds the normalised match fields (:data:`mpi.frames.STORED_COLUMNS`) and what the write-back needs
(the link it has, the raw fields of the golden record). A pair row holds both records' match fields, the left
side's prefixed ``l_`` and the right's ``r_``, so that one pandas batch of pairs becomes one coded frame and the
pure scorer runs on it as it runs in the single-machine relink.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from mpi.frames import BOOL_COLUMNS, INT_COLUMNS, STRING_COLUMNS, Frame, frame_from_table
from mpi.model import Model

MATCH_COLUMNS = (*STRING_COLUMNS, *INT_COLUMNS, *BOOL_COLUMNS)
#: The stored link and the raw fields of the golden record (:func:`mpi.batch._golden`).
LINK_COLUMNS = ("regional_patient_id", "link_state", "link_manual", "provisional", "nhs_raw", "nhs_number_valid",
                "nhs_verification", "family_raw", "given_raw", "birth_date", "sex_raw", "postcode_raw",
                "address_raw", "stamp_us")


def _type(name: str) -> str:
    if name in INT_COLUMNS:
        return "int"
    if name in BOOL_COLUMNS:
        return "boolean"
    return "string"


MATCH_SCHEMA = ", ".join(f"{name} {_type(name)}" for name in MATCH_COLUMNS)
RECORD_SCHEMA = ("record_id long, regional_patient_id string, link_state string, link_manual boolean, "
                 "provisional boolean, nhs_raw string, nhs_number_valid boolean, nhs_verification string, "
                 "family_raw string, given_raw string, birth_date string, sex_raw string, postcode_raw string, "
                 "address_raw string, stamp_us long, " + MATCH_SCHEMA)


def spark_records(table: pd.DataFrame) -> pd.DataFrame:
    """A table of :func:`mpi.batch.load_table` as record rows (dates as ISO text, the golden record's time stamp
    as microseconds: Spark and pandas disagree on time zones, ordering does not)."""
    out = table[["record_id", *LINK_COLUMNS[:-1], *MATCH_COLUMNS]].copy()
    out["birth_date"] = [None if v is None or v != v else v.isoformat() for v in table["birth_date"]]
    stamp = table["last_event_at"].where(table["last_event_at"].notna(), table["updated_at"])
    stamp = pd.to_datetime(stamp, utc=True)
    out["stamp_us"] = pd.array([None if pd.isna(v) else int(v.value // 1000) for v in stamp], dtype="Int64")
    for name in ("link_manual", "provisional", "nhs_number_valid"):
        out[name] = out[name].astype("boolean")
    for name in ("regional_patient_id", "link_state"):
        out[name] = out[name].astype(object).where(out[name].notna(), None)
    return out


def golden_table(records: pd.DataFrame) -> pd.DataFrame:
    """Record rows as the table :func:`mpi.batch._golden` reads."""
    return pd.DataFrame({
        "provisional": records["provisional"], "nhs_verification": records["nhs_verification"],
        "last_event_at": pd.Series([None] * len(records), dtype=object, index=records.index),
        "updated_at": pd.to_datetime(records["stamp_us"], unit="us", utc=True),
        "family_raw": records["family_raw"], "given_raw": records["given_raw"],
        "birth_date": records["birth_date"], "sex_raw": records["sex_raw"], "postcode_raw": records["postcode_raw"],
        "address_raw": records["address_raw"], "nhs_raw": records["nhs_raw"],
        "nhs_number_valid": records["nhs_number_valid"]})


def side(pdf: pd.DataFrame, prefix: str, id_column: str) -> pd.DataFrame:
    """One side of a batch of pair rows as a records table (match columns and ``record_id``)."""
    table = pd.DataFrame({name: pdf[f"{prefix}{name}"].to_numpy() for name in MATCH_COLUMNS})
    table["record_id"] = pdf[id_column].to_numpy(dtype=np.int64)
    return table


def pair_frames(pdf: pd.DataFrame, left_id: str = "a", right_id: str = "b") -> tuple[Frame, Frame]:
    """The two sides of a batch of pair rows, as rows of one coded frame (the shape the scorer reads)."""
    both = pd.concat([side(pdf, "l_", left_id), side(pdf, "r_", right_id)], ignore_index=True)
    frame = frame_from_table(both)
    n = len(pdf)
    return frame.take(np.arange(n, dtype=np.int64)), frame.take(np.arange(n, 2 * n, dtype=np.int64))


_MODELS: dict[str, Model] = {}


def model_of(parameters: str) -> Model:
    """The model of its JSON parameters, built once per Python worker (the scorer caches term frequencies on it)."""
    data: dict[str, Any] = json.loads(parameters)
    version = str(data.get("version", ""))
    if version not in _MODELS:
        _MODELS.clear()
        _MODELS[version] = Model.from_dict(data)
    return _MODELS[version]
