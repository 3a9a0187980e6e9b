"""A source record's columns from the demographics a feed sent: for a new record (:func:`new_record_columns`), for a
known one after an update (:func:`updated_columns`), and the rows of a new record written unlinked by a bulk load
(:func:`unlinked_record`). Pure: the one place where a feed's demographics become stored columns, so link-on-write's
two paths and the bulk load store a record alike."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from mpi.engine import blocking_keys, to_match_record
from mpi.identifier_systems import identifier_tokens
from mpi.index_store import DEMOGRAPHIC_FIELDS, match_source
from mpi.nhs_number import counts_as_nhs_number, normalise_nhs_number
from mpi.normalise import as_date
from mpi.records import DELETE, Demographics
from priorscan.bulk_rows import JsonText


def new_record_columns(demographics: Demographics, *, production: bool = False) -> dict[str, Any]:
    """The source record's demographic columns for a new record (as :func:`updated_columns` sets them on a known one).

    ``production``: a test-range NHS number (999…) is kept but flagged as not valid, so it is never used
    (:func:`mpi.nhs_number.counts_as_nhs_number`)."""
    values: dict[str, Any] = {name: None for name in DEMOGRAPHIC_FIELDS}
    values.update(nhs_number_valid=False, birth_date_text=None)
    for name in DEMOGRAPHIC_FIELDS:
        value = getattr(demographics, name)
        if value is None or value == DELETE:
            continue
        if name == "nhs_number":
            digits = normalise_nhs_number(value)
            values["nhs_number"] = digits or str(value)[:10]
            values["nhs_number_valid"] = counts_as_nhs_number(digits, production=production)
        elif name == "birth_date":
            full = as_date(value)
            values["birth_date"] = full
            values["birth_date_text"] = None if full else str(value)[:10]
        elif name == "death_date":
            values["death_date"] = as_date(value)
        else:
            values[name] = value
    return values


def updated_columns(row: Any, demographics: Demographics, *, production: bool = False) -> dict[str, Any]:
    """A known record's demographic columns (``row``: a stored row or record) after ``demographics`` is applied
    (both update paths of link-on-write use it); ``production`` as :func:`new_record_columns`."""
    values: dict[str, Any] = {name: getattr(row, name) for name in DEMOGRAPHIC_FIELDS}
    values["nhs_number_valid"] = row.nhs_number_valid
    values["birth_date_text"] = row.birth_date_text
    for name in DEMOGRAPHIC_FIELDS:
        value = getattr(demographics, name)
        if value is None:
            continue
        if value == DELETE:
            value = None
        if name == "nhs_number":
            digits = normalise_nhs_number(value) if value is not None else None
            values["nhs_number"] = (digits or str(value)[:10]) if value is not None else None
            values["nhs_number_valid"] = counts_as_nhs_number(digits, production=production)
        elif name == "birth_date":
            full = as_date(value) if value is not None else None
            values["birth_date"] = full
            values["birth_date_text"] = None if full or value is None else str(value)[:10]
        elif name == "death_date":
            values["death_date"] = as_date(value) if value is not None else None
        else:
            values[name] = value
    return values


@dataclass
class UnlinkedRecord:
    """A new source record as link-on-write would write it, less its link (a batch relink places it):
    the rows :meth:`mpi.store_writer.StoreWriter.write_unlinked` writes."""

    namespace: str
    local_id: str
    columns: dict[str, Any]  # the source_record columns but id and link
    version: dict[str, Any]  # the source_record_version columns but ids
    keys: list[str]  # blocking keys
    identifiers: list[tuple[str, str]]  # further identifiers (canonical namespace, value), own key left out


#: The source_record columns of :attr:`UnlinkedRecord.columns` (all of them but id and link), in the order of
#: :attr:`UnlinkedRows.source`.
UNLINKED_COLUMNS = (*DEMOGRAPHIC_FIELDS, "nhs_number_valid", "birth_date_text", "namespace", "local_id", "trust_ods",
                    "source_kind", "provisional", "active", "version", "match_fields", "link_manual", "last_event_at",
                    "created_at", "updated_at")
#: The source_record_version columns of :attr:`UnlinkedRecord.version`, in the order of :attr:`UnlinkedRows.version`.
UNLINKED_VERSION_COLUMNS = ("version", "event", "event_at", "received_at", "applied", "demographics")


class UnlinkedRows(NamedTuple):
    """An :class:`UnlinkedRecord` with its rows converted for the database's driver already
    (:class:`mpi.store_writer.UnlinkedConverter`, in a worker process): tuples of plain values in column order, which
    the store writer sends with their ids (:meth:`mpi.store_writer.StoreWriter.write_unlinked`). Compact to pickle."""

    namespace: str
    local_id: str
    source: tuple[Any, ...]  # the values of UNLINKED_COLUMNS
    version: tuple[Any, ...]  # the values of UNLINKED_VERSION_COLUMNS
    keys: list[str]
    identifiers: list[tuple[str, str]]


def unlinked_record(demographics: Demographics, *, event: str, source_kind: str, production: bool, now: datetime,
                    identifiers: list[tuple[str, str]]) -> UnlinkedRecord | None:
    """The rows of a new record from ``demographics`` (the same columns, match fields and blocking keys as
    link-on-write's new record), or None without a local identifier. ``identifiers``: the further identifiers,
    their systems already in canonical namespaces; the record's own key and repeats are left out (as link-on-write
    leaves them out). JSON columns come serialised
    (:class:`priorscan.bulk_rows.JsonText`), as a worker process sends them."""
    local_id = demographics.local_id.strip()
    if not local_id:
        return None
    values = new_record_columns(demographics, production=production)
    own = (demographics.namespace, local_id)
    further: list[tuple[str, str]] = []
    for pair in identifiers:
        if pair != own and pair not in further:
            further.append(pair)
    probe = to_match_record(None, {**match_source(values), "identifiers": identifier_tokens(own, further)})
    columns = {**values, "namespace": demographics.namespace, "local_id": local_id,
               "trust_ods": demographics.trust_ods, "source_kind": source_kind, "provisional": False, "active": True,
               "version": 1, "match_fields": JsonText(json.dumps(probe.as_stored())), "link_manual": False,
               "last_event_at": demographics.event_at, "created_at": now, "updated_at": now}
    version = {"version": 1, "event": event, "event_at": demographics.event_at, "received_at": now,
               "applied": True, "demographics": JsonText(json.dumps(demographics.as_json()))}
    return UnlinkedRecord(demographics.namespace, local_id, columns, version, sorted(blocking_keys(probe)), further)


__all__ = ["UNLINKED_COLUMNS", "UNLINKED_VERSION_COLUMNS", "UnlinkedRecord", "UnlinkedRows",
           "new_record_columns", "unlinked_record", "updated_columns"]
