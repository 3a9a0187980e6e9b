"""Many rows per statement, for the bulk load: multi-row INSERT on SQLite, COPY on PostgreSQL, in the caller's
transaction, with ids reserved beforehand so that rows can name each other before they are written.

The single-row writes of the live paths are :mod:`priorscan.writes`; these are their counterpart for batches, shared
by the identity rows of a backfill (:mod:`api.feeds.bulk_writes`) and the studies of one (:mod:`imaging.bulk`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, text

#: SQLite's limit on bound parameters of one statement (3.32 and later); a multi-row INSERT stays under it.
SQLITE_PARAMETERS = 32_000


class JsonText(str):
    """A JSON column's value serialised already (in a worker process, off the writer's core)."""

    __slots__ = ()


def is_postgresql(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql"


def reserve_ids(connection: Connection, table: Table, count: int) -> list[int]:
    """``count`` new ids of ``table``: from its sequence on PostgreSQL (safe beside live writers), after its largest
    id on SQLite (under the write lock, which the caller's transaction holds: ``BEGIN IMMEDIATE``)."""
    if count == 0:
        return []
    name = table.name
    if is_postgresql(connection):
        rows = connection.execute(text(f"SELECT nextval(pg_get_serial_sequence('{name}', 'id')) "
                                       "FROM generate_series(1, :n)"), {"n": count}).scalars().all()
        return sorted(int(r) for r in rows)
    start = int(connection.execute(text(f"SELECT coalesce(max(id), 0) FROM {name}")).scalar_one()) + 1
    return list(range(start, start + count))


def insert_rows(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (all with the same columns): COPY on PostgreSQL, multi-row INSERTs on SQLite.

    Values are converted by the columns' own types (JSON, UTC timestamps), then sent through the driver as they are:
    SQLAlchemy's compilation of a statement with thousands of rows would cost more than the insert itself.
    """
    if not rows:
        return
    columns = list(rows[0])
    if is_postgresql(connection):
        _copy(connection, table, columns, rows)
        return
    processors = [table.c[c].type._cached_bind_processor(connection.dialect) for c in columns]  # noqa: SLF001
    names = ", ".join(f'"{c}"' for c in columns)
    one = "(" + ", ".join("?" for _ in columns) + ")"
    per_statement = max(1, SQLITE_PARAMETERS // len(columns))
    raw = connection.connection.driver_connection
    assert raw is not None
    for start in range(0, len(rows), per_statement):
        chunk = rows[start:start + per_statement]
        values: list[Any] = []
        for row in chunk:
            values.extend(value if process is None or value is None or isinstance(value, JsonText) else process(value)
                          for process, value in zip(processors, (row[c] for c in columns), strict=True))
        raw.execute(f'INSERT INTO "{table.name}" ({names}) VALUES ' + ", ".join([one] * len(chunk)), values)


def _copy(connection: Connection, table: Table, columns: list[str], rows: Sequence[dict[str, Any]]) -> None:
    from priorscan.db import JSONType, UTCDateTime

    utc = UTCDateTime()
    kinds = [("json" if isinstance(table.c[c].type, JSONType) else
              "utc" if isinstance(table.c[c].type, UTCDateTime) else "") for c in columns]
    raw = connection.connection.driver_connection
    assert raw is not None
    names = ", ".join(f'"{c}"' for c in columns)
    with raw.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([
                None if (value := row[c]) is None else value if isinstance(value, JsonText)
                else json.dumps(value) if kind == "json"
                else utc.process_bind_param(value, None) if kind == "utc" else value
                for c, kind in zip(columns, kinds, strict=True)])


__all__ = ["SQLITE_PARAMETERS", "JsonText", "insert_rows", "is_postgresql", "reserve_ids"]
