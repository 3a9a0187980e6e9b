"""Storage helpers the duplicate check shares: writes that the database settles when two workers race.

``INSERT ... ON CONFLICT DO NOTHING`` exists on both backends (SQLite 3.24+, PostgreSQL 9.5+), so a unique
constraint, not process memory, decides which of two concurrent writers creates a row. Statements are built once per
table and dialect (the check is on the request path: building a statement costs more than running it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Table, bindparam, func, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable


def _insert(dialect: str, table: Table) -> Any:
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


@lru_cache(maxsize=64)
def _insert_ignoring(dialect: str, table: Table, keys: tuple[str, ...]) -> Executable:
    return _insert(dialect, table).on_conflict_do_nothing(index_elements=list(keys))  # type: ignore[no-any-return]


@lru_cache(maxsize=64)
def _update(table: Table, keys: tuple[str, ...], columns: tuple[str, ...], overwrite: tuple[str, ...]) -> Executable:
    """``UPDATE``: a column sent as NULL keeps its value, except the ``overwrite`` ones (cacheable, unlike
    ``ON CONFLICT DO UPDATE``, which SQLAlchemy compiles afresh every time)."""
    where = [table.c[k] == bindparam(f"key_{k}") for k in keys]
    values = {name: bindparam(f"new_{name}") if name in overwrite
              else func.coalesce(bindparam(f"new_{name}"), table.c[name]) for name in columns if name not in keys}
    return update(table).where(*where).values(values)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def insert_unless_exists(session: Session, model: type, values: Mapping[str, Any], keys: Sequence[str]) -> bool:
    """Insert one row of ``model`` unless a row with the same unique ``keys`` exists; True when inserted.

    The row goes straight to the database (not through the session's identity map); read it back to use it.
    """
    statement = _insert_ignoring(_dialect(session), model.__table__, tuple(keys))  # type: ignore[attr-defined]
    return bool(session.execute(statement, dict(values)).rowcount)  # type: ignore[attr-defined]


def upsert(session: Session, model: type, values: Mapping[str, Any], keys: Sequence[str], *,
           overwrite: Sequence[str] = ()) -> None:
    """Insert one row of ``model``, or update the row with the same unique ``keys``: a value sent as None keeps
    what is stored, except for the ``overwrite`` columns, which always take the new value."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    columns = tuple(sorted(values))
    statement = _update(table, tuple(keys), columns, tuple(overwrite))
    params = {f"key_{k}": values[k] for k in keys} | {f"new_{k}": v for k, v in values.items() if k not in keys}
    for _ in range(2):  # update; else insert; else (another writer inserted it meanwhile) update again
        if session.execute(statement, params).rowcount:  # type: ignore[attr-defined]
            return
        if insert_unless_exists(session, model, values, keys):
            return
