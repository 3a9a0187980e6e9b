"""Writes shared by every package: single rows inserted now, and writes the database settles when two workers race.

``INSERT ... ON CONFLICT DO NOTHING`` exists on both backends (SQLite 3.24+, PostgreSQL 9.5+), so a unique
constraint, not process memory, decides which of two concurrent writers creates a row. Statements are built once per
table and column set (the check is on the request path: compiling a statement costs more than running it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Table, bindparam, func, insert, text, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

#: PostgreSQL: transaction-scoped advisory locks on the given keys, taken in key order in one statement.
_ADVISORY_LOCKS = text("SELECT COUNT(pg_advisory_xact_lock(k)) FROM "
                       "(SELECT k FROM unnest(CAST(:keys AS BIGINT[])) AS k ORDER BY k) AS ordered")


def advisory_key(name: str) -> int:
    """The advisory lock key of ``name``: a signed 64-bit hash (BLAKE2b), the same in every process."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


def advisory_locks(session: Session, keys: Iterable[int]) -> None:
    """On PostgreSQL, transaction-scoped advisory locks on ``keys`` (:func:`advisory_key`), taken in key order in
    one statement and held to the end of the transaction, so that two transactions taking overlapping keys wait
    for each other instead of deadlocking; a deadlock PostgreSQL still finds is a retryable error of the unit of
    work. Nothing on SQLite, whose write lock the writing unit of work holds already."""
    ordered = sorted(set(keys))
    if ordered and session.get_bind().dialect.name == "postgresql":
        session.execute(_ADVISORY_LOCKS, {"keys": ordered})


@lru_cache(maxsize=64)
def _insert_ignoring(table: Table, columns: tuple[str, ...], keys: tuple[str, ...]) -> Executable:
    """``INSERT ... ON CONFLICT (keys) DO NOTHING RETURNING pk`` as typed text: SQLAlchemy's ``on_conflict_do_nothing``
    construct has no cache key, so it would be compiled afresh on every call (same syntax on both backends)."""
    names = ", ".join(columns)
    values = ", ".join(f":{c}" for c in columns)
    returning = ", ".join(c.name for c in table.primary_key.columns)
    sql = (f"INSERT INTO {table.name} ({names}) VALUES ({values}) ON CONFLICT ({', '.join(keys)}) DO NOTHING "
           f"RETURNING {returning}")
    return text(sql).bindparams(*(bindparam(c, type_=table.c[c].type) for c in columns))


@lru_cache(maxsize=64)
def _python_defaults(table: Table) -> tuple[tuple[str, Any, bool], ...]:
    """``(column, default, callable)`` for the columns of ``table`` with a Python-side scalar or callable default."""
    found = []
    for column in table.columns:
        default = column.default
        if default is not None and (default.is_scalar or default.is_callable):
            found.append((column.name, default.arg, default.is_callable))  # type: ignore[attr-defined]
    return tuple(found)


def with_defaults(table: Table, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` and the Python-side defaults of the columns not given (text statements and the bulk load's
    multi-row inserts do not apply them)."""
    row = dict(values)
    for name, default, is_callable in _python_defaults(table):
        if name not in row:
            row[name] = default(None) if is_callable else default
    return row


@lru_cache(maxsize=64)
def _update(table: Table, keys: tuple[str, ...], columns: tuple[str, ...], overwrite: tuple[str, ...]) -> Executable:
    """``UPDATE``: a column sent as NULL keeps its value, except the ``overwrite`` ones (cacheable, unlike
    ``ON CONFLICT DO UPDATE``, which SQLAlchemy compiles afresh every time)."""
    where = [table.c[k] == bindparam(f"key_{k}") for k in keys]
    values: dict[str, Any] = {name: bindparam(f"new_{name}") if name in overwrite
                              else func.coalesce(bindparam(f"new_{name}"), table.c[name])
                              for name in columns if name not in keys}
    return update(table).where(*where).values(values)


def insert_unless_exists(session: Session, model: type, values: Mapping[str, Any], keys: Sequence[str]) -> bool:
    """Insert one row of ``model`` unless a row with the same unique ``keys`` exists; True when inserted.

    The row goes straight to the database (not through the session's identity map); read it back to use it.
    """
    table: Table = model.__table__  # type: ignore[attr-defined]
    row = with_defaults(table, values)
    statement = _insert_ignoring(table, tuple(sorted(row)), tuple(keys))
    # on the session's connection: Core statements need none of the ORM's execution machinery
    return session.connection().execute(statement, row).first() is not None


def upsert(session: Session, model: type, values: Mapping[str, Any], keys: Sequence[str], *,
           overwrite: Sequence[str] = ()) -> None:
    """Insert one row of ``model``, or update the row with the same unique ``keys``: a value sent as None keeps
    what is stored, except for the ``overwrite`` columns, which always take the new value."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    columns = tuple(sorted(values))
    statement = _update(table, tuple(keys), columns, tuple(overwrite))
    params = {f"key_{k}": values[k] for k in keys} | {f"new_{k}": v for k, v in values.items() if k not in keys}
    if insert_unless_exists(session, model, values, keys):  # new rows are the common case
        return
    session.connection().execute(statement, params)


@lru_cache(maxsize=64)
def _insert(table: Table, columns: tuple[str, ...]) -> Executable:
    return insert(table).values({c: bindparam(c, type_=table.c[c].type) for c in columns})


def insert_row(session: Session, model: type, values: Mapping[str, Any]) -> None:
    """Insert one row of ``model`` now, with its Python-side defaults, as a Core statement on the session's
    connection: nothing is left for the session to flush at commit (the ORM's unit of work costs more than the
    insert on the request path). The row does not enter the session's identity map."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    row = with_defaults(table, values)
    session.connection().execute(_insert(table, tuple(sorted(row))), row)


def insert_many(session: Session, model: type, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert ``rows`` of ``model`` (each with the same columns) now, with their Python-side defaults, as
    :func:`insert_row` does one: by :func:`priorscan.bulk_rows.insert_rows` (multi-row INSERT, COPY on PostgreSQL)
    on the session's connection; returns how many."""
    from priorscan.bulk_rows import insert_rows

    table: Table = model.__table__  # type: ignore[attr-defined]
    filled = [with_defaults(table, values) for values in rows]
    insert_rows(session.connection(), table, filled)
    return len(filled)
