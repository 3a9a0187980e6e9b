"""Many rows at once, for the bulk load: COPY on PostgreSQL, one prepared statement run for every row by the driver
on SQLite, in the caller's transaction, with ids reserved beforehand so that rows can name each other before they
are written.

The single-row writes of the live paths are :mod:`priorscan.writes`; these are their counterpart for batches, shared
by the identity rows of a backfill (:mod:`api.feeds.bulk_writes`), the studies of one (:mod:`imaging.bulk`) and the
links a batch relink writes back (:mod:`mpi.batch`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import JSON, Connection, Dialect, Table, text
from sqlalchemy.exc import DBAPIError


class JsonText(str):
    """A JSON column's value serialised already (in a worker process, off the writer's core)."""

    __slots__ = ()


#: A JSON column without a value, as the ORM writes it (JSON ``null``, not SQL NULL).
JSON_NULL = JsonText("null")

T = TypeVar("T")


@dataclass(frozen=True)
class Prepared:
    """Rows of one table converted for the driver already (:func:`prepare_rows`), for :func:`insert_rows`."""

    columns: list[str]
    values: list[tuple[Any, ...]]


def is_postgresql(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql"


def reserve_ids(connection: Connection, table: Table, count: int) -> list[int]:
    """``count`` new ids of ``table``: from its sequence on PostgreSQL (safe beside live writers), after its largest
    id on SQLite (under the write lock, which the caller's transaction holds: ``BEGIN IMMEDIATE``)."""
    if count == 0:
        return []
    name = table.name
    if is_postgresql(connection):  # the sequence looked up once, not once an id (a catalog look-up each: 8x the CPU)
        rows = connection.execute(text(f"WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence('{name}', 'id')"
                                       "::regclass AS seq) SELECT nextval(s.seq) FROM s, generate_series(1, :n)"),
                                  {"n": count}).scalars().all()
        return sorted(int(r) for r in rows)
    start = int(connection.execute(text(f"SELECT coalesce(max(id), 0) FROM {name}")).scalar_one()) + 1
    return list(range(start, start + count))


@contextlib.contextmanager
def driver_errors(connection: Connection, statement: str) -> Iterator[None]:
    """Raise a driver's error from a write sent past SQLAlchemy (COPY, a pipeline, ``executemany`` on the driver's
    connection) as SQLAlchemy would have raised it: a duplicate key as :class:`sqlalchemy.exc.IntegrityError`, so the
    callers' fall-backs (a pushed group racing another writer goes through the per-message path) see it as they see
    the same error from a statement. Raised raw, it escaped them: one of eight concurrent STOW-RS requests failed
    whole on PostgreSQL with ``UniqueViolation`` (2026-12-07)."""
    base = connection.dialect.loaded_dbapi.Error
    try:
        yield
    except base as exc:
        raise DBAPIError.instance(statement, None, exc, base, dialect=connection.dialect) from exc


def insert_rows(connection: Connection, table: Table, rows: Sequence[dict[str, Any]] | Prepared) -> None:
    """Insert ``rows`` (all with the same columns, or :func:`prepare_rows`'s conversion of them): COPY on PostgreSQL,
    one prepared INSERT run for every row by the driver on SQLite.

    Values are converted by the columns' own types (JSON, UTC timestamps), column by column, each distinct timestamp
    once, then sent through the driver as they are: SQLAlchemy's compilation of a statement per row, or of one with
    thousands of rows, would cost more than the insert itself.
    """
    prepared = rows if isinstance(rows, Prepared) else prepare_rows(connection, table, rows)
    if not prepared.values:
        return
    columns = prepared.columns
    names = ", ".join(f'"{c}"' for c in columns)
    raw = connection.connection.driver_connection
    assert raw is not None
    if is_postgresql(connection):
        statement = f'COPY "{table.name}" ({names}) FROM STDIN'
        with driver_errors(connection, statement), raw.cursor() as cursor, cursor.copy(statement) as copy:
            for values in prepared.values:
                copy.write_row(values)
        return
    statement = f'INSERT INTO "{table.name}" ({names}) VALUES (' + ", ".join("?" for _ in columns) + ")"
    with driver_errors(connection, statement):
        raw.executemany(statement, prepared.values)


def prepare_rows(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> Prepared:
    """``rows`` (all with the same columns) converted as :func:`insert_rows` sends them: the work of this process
    alone (no statement), so it may be done while the server is busy with another (:func:`update_rows`'s
    ``meanwhile``)."""
    if not rows:
        return Prepared([], [])
    columns = list(rows[0])
    return Prepared(columns, _converted(connection, table, columns, rows))


#: Rows a table at most for :func:`insert_tables` to send them as INSERT statements in one pipeline rather than by
#: COPY: a COPY takes two round trips (started, then its data sent and confirmed), where a pipeline takes one for
#: every table's rows, which wins for the few rows of a pushed group.
FEW_ROWS = 64


def insert_tables(connection: Connection, batches: Sequence[tuple[Table, Sequence[dict[str, Any]]]]) -> None:
    """Insert each batch's rows into its table, in the order given (as :func:`insert_rows` does each).

    On PostgreSQL, when no table has more than :data:`FEW_ROWS` rows, every row goes as an INSERT statement, all of
    them in one pipeline: one round trip to the server for the whole write, where COPY would take two a table. Values
    are converted as for COPY; the rows written are the same either way.
    """
    if not is_postgresql(connection) or any(len(rows) > FEW_ROWS for _, rows in batches):
        for table, rows in batches:
            insert_rows(connection, table, rows)
        return
    raw = connection.connection.driver_connection
    assert raw is not None
    with driver_errors(connection, "INSERT (pipeline)"), raw.pipeline(), raw.cursor() as cursor:
        for table, rows in batches:
            if not rows:
                continue
            columns = list(rows[0])
            names = ", ".join(f'"{c}"' for c in columns)
            cursor.executemany(f'INSERT INTO "{table.name}" ({names}) VALUES (' + ", ".join("%s" for _ in columns)
                               + ")", _converted(connection, table, columns, rows))


def update_rows(connection: Connection, table: Table, rows: Sequence[dict[str, Any]], *, key: str = "id",
                meanwhile: Callable[[], T] | None = None) -> T | None:
    """Update rows of ``table`` by ``key``: each of ``rows`` (all with the same columns) names its row by ``key`` and
    gives the new values of the other columns. PostgreSQL: the rows are copied (COPY) into a temporary table and
    applied by one ``UPDATE ... FROM``; SQLite: one prepared UPDATE run for every row by the driver (no round trips
    there). Values are converted as :func:`insert_rows` converts them.

    ``meanwhile``: work of this process that does not use ``connection`` (the next write's rows, converted by
    :func:`prepare_rows`), done on PostgreSQL while the server applies the ``UPDATE`` (the statement waits on the
    server in a thread, which holds no lock of Python's while it waits), after the update on SQLite (where the update
    is this process's own work); its result is returned. Every record of a store rewritten at once keeps the server
    busy for a while (a new version of each row): the client no longer idles meanwhile.
    """
    if not rows:
        return meanwhile() if meanwhile is not None else None
    changed = [c for c in rows[0] if c != key]
    columns = [*changed, key]
    raw = connection.connection.driver_connection
    assert raw is not None and key in rows[0] and changed
    if is_postgresql(connection):
        staging = f"_update_{table.name}"
        names = ", ".join(f'"{c}"' for c in columns)
        connection.execute(text(f'CREATE TEMPORARY TABLE "{staging}" ON COMMIT DROP AS '
                                f'SELECT {names} FROM "{table.name}" WITH NO DATA'))
        statement = f'COPY "{staging}" ({names}) FROM STDIN'
        with driver_errors(connection, statement), raw.cursor() as cursor, cursor.copy(statement) as copy:
            for values in _converted(connection, table, columns, rows):
                copy.write_row(values)
        assignments = ", ".join(f'"{c}" = s."{c}"' for c in changed)
        update = f'UPDATE "{table.name}" AS t SET {assignments} FROM "{staging}" AS s WHERE t."{key}" = s."{key}"'
        if meanwhile is None:
            connection.execute(text(update))
            result = None
        else:
            result = _while_running(connection, update, meanwhile)
        connection.execute(text(f'DROP TABLE "{staging}"'))
        return result
    statement = f'UPDATE "{table.name}" SET ' + ", ".join(f'"{c}" = ?' for c in changed) + f' WHERE "{key}" = ?'
    with driver_errors(connection, statement):
        raw.executemany(statement, _converted(connection, table, columns, rows))
    return meanwhile() if meanwhile is not None else None


def _while_running(connection: Connection, statement: str, meanwhile: Callable[[], T]) -> T:
    """Run ``statement`` (no parameters) on ``connection``'s driver connection in a thread while this one runs
    ``meanwhile``; its result once both are done. The statement's failure is raised as SQLAlchemy raises it
    (:func:`driver_errors`), after ``meanwhile``'s own, which goes first: either leaves the caller's transaction to
    be rolled back."""
    raw = connection.connection.driver_connection
    assert raw is not None
    failed: list[BaseException] = []

    def run() -> None:
        try:
            with raw.cursor() as cursor:
                cursor.execute(statement)
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread below
            failed.append(exc)

    thread = threading.Thread(target=run, name="bulk-rows-update", daemon=True)
    thread.start()
    try:
        result = meanwhile()
    finally:
        thread.join()
    if failed:
        with driver_errors(connection, statement):
            raise failed[0]
    return result


#: Keys looked up per statement on SQLite (two or three values each: within its limit of bound values).
_HELD_CHUNK = 2_000


def held_keys(connection: Connection, table: Table, columns: Sequence[str],
              keys: Sequence[tuple[str, ...]]) -> set[tuple[str, ...]]:
    """Which of ``keys`` (text values of ``columns``, in that order) rows of ``table`` hold, in the caller's
    transaction: the keys joined to the table's unique index on ``columns`` (one search per key, whatever the
    table's size). PostgreSQL: the keys sent as one array per column (``unnest``); SQLite: a list of row values in
    chunks, the statement's text written here (SQLAlchemy's rendering of thousands of tuples would cost more than
    the look-up, and SQLite plans ``(a, b) IN (VALUES ...)`` as a scan of the whole index)."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return set()
    names = ", ".join(f't."{c}"' for c in columns)
    on = " AND ".join(f't."{c}" = k.c{i}' for i, c in enumerate(columns))
    raw = connection.connection.driver_connection
    assert raw is not None
    if is_postgresql(connection):
        arrays = ", ".join("%s::text[]" for _ in columns)
        aliases = ", ".join(f"c{i}" for i in range(len(columns)))
        with raw.cursor() as cursor:
            cursor.execute(f'SELECT {names} FROM unnest({arrays}) AS k({aliases}) JOIN "{table.name}" AS t ON {on}',
                           [list(values) for values in zip(*wanted, strict=True)])
            return {tuple(row) for row in cursor.fetchall()}
    found: set[tuple[str, ...]] = set()
    row = "(" + ", ".join("?" for _ in columns) + ")"
    aliases = ", ".join(f"column{i + 1} AS c{i}" for i in range(len(columns)))
    for start in range(0, len(wanted), _HELD_CHUNK):
        chunk = wanted[start:start + _HELD_CHUNK]
        found.update(tuple(r) for r in raw.execute(
            f'SELECT {names} FROM (SELECT {aliases} FROM (VALUES {", ".join([row] * len(chunk))})) AS k '
            f'CROSS JOIN "{table.name}" AS t ON {on}', [value for key in chunk for value in key]))
    return found


def copy_text(value: Any) -> str:
    """``value`` (a date or timestamp) as psycopg's own dumper writes it into a COPY in text format (its default
    adapters, which the store's connections use for dates and times): sent as this text, a row's COPY bytes are
    the ones psycopg writes for the value itself, and the server reads the same value from them.

    Why: psycopg dumps a date or timestamp ~10x slower than text (a source_record row with its birth date and three
    timestamps: 14.5 µs to format, 4.5 with them as text; 2026-12-07, BENCHMARKS.md), while a load's timestamps
    repeat (the batch's time) and are converted once each (:func:`_converted`, :class:`RowConverter`)."""
    from psycopg.adapt import PyFormat

    return bytes(_psycopg_defaults().get_dumper(value, PyFormat.TEXT).dump(value)).decode()


@functools.cache
def _psycopg_defaults() -> Any:
    """A psycopg transformer of its default adapters (no connection), its dumpers cached per type."""
    from psycopg.adapt import Transformer

    return Transformer()


def from_copy_text(kind: Any) -> Callable[[str], Any] | None:
    """The inverse of :func:`copy_text` for a column of type ``kind`` (a date or timestamp column; None for any
    other): what the driver would give back for the value written as that text."""
    from sqlalchemy import Date, DateTime

    from priorscan.db import UTCDateTime

    if isinstance(kind, UTCDateTime | DateTime):
        return datetime.fromisoformat
    if isinstance(kind, Date):
        return date.fromisoformat
    return None


def _converters(dialect: Dialect, table: Table,
                columns: Sequence[str]) -> list[tuple[Callable[[Any], Any] | None, bool]]:
    """For each of ``columns``: what converts its values for the driver (None: they are sent as they are) and whether
    it is a JSON column. PostgreSQL (COPY): JSON serialised, timestamps in UTC and dates as psycopg's COPY text
    (:func:`copy_text`); SQLite: the columns' own bind processors (JSON text, timestamp text)."""
    from sqlalchemy import Date

    from priorscan.db import JSONType, UTCDateTime

    utc = UTCDateTime()
    found: list[tuple[Callable[[Any], Any] | None, bool]] = []
    for name in columns:
        kind = table.c[name].type
        is_json = isinstance(kind, JSONType | JSON)
        convert: Callable[[Any], Any] | None
        if dialect.name == "postgresql":
            convert = json.dumps if is_json else (lambda v: copy_text(utc.process_bind_param(v, None))) \
                if isinstance(kind, UTCDateTime) else copy_text if isinstance(kind, Date) else None
        else:
            convert = kind._cached_bind_processor(dialect)  # noqa: SLF001
        found.append((convert, is_json))
    return found


def _converted(connection: Connection, table: Table, columns: Sequence[str],
               rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Each row's values (in the order of ``columns``) as the driver takes them (:func:`_converters`). A value
    serialised already (:class:`JsonText`) and None are sent as they are; a column's repeated values (the load's one
    timestamp, a flag) are converted once."""
    converted: list[list[Any]] = []
    for name, (convert, is_json) in zip(columns, _converters(connection.dialect, table, columns), strict=True):
        values = [row[name] for row in rows]
        if convert is None:
            pass
        elif is_json:
            values = [v if v is None or isinstance(v, JsonText) else convert(v) for v in values]
        else:
            done: dict[Any, Any] = {}
            values = [v if v is None else done[v] if v in done else done.setdefault(v, convert(v)) for v in values]
        converted.append(values)
    return list(zip(*converted, strict=True))


class RowConverter:
    """One table's rows converted one at a time as :func:`insert_rows` converts a batch of them (the same values:
    :func:`_converters`), into tuples in the order of ``columns``: for a worker process to send rows ready for the
    driver, so that the writer only adds their ids (:class:`Prepared`)."""

    #: Distinct values a column's cache holds at most (timestamps repeat: the batch's time, an extract's event times).
    CACHED = 4_096

    def __init__(self, dialect: Dialect, table: Table, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)
        # only the columns with a conversion are walked (most are text and integers, sent as they are)
        self._converted: list[tuple[int, Callable[[Any], Any], bool, dict[Any, Any]]] = [
            (n, convert, is_json, {})
            for n, (convert, is_json) in enumerate(_converters(dialect, table, columns)) if convert is not None]

    def __call__(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        values = [row[name] for name in self.columns]
        for n, convert, is_json, done in self._converted:
            value = values[n]
            if value is None or (is_json and isinstance(value, JsonText)):
                continue
            if is_json:
                values[n] = convert(value)
            elif value in done:
                values[n] = done[value]
            else:
                if len(done) >= self.CACHED:
                    done.clear()
                values[n] = done.setdefault(value, convert(value))
        return tuple(values)


__all__ = ["FEW_ROWS", "JSON_NULL", "JsonText", "Prepared", "RowConverter", "copy_text", "from_copy_text", "held_keys",
           "insert_rows", "insert_tables", "is_postgresql", "prepare_rows", "reserve_ids", "update_rows"]
