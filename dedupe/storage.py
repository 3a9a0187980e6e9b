"""Storage helpers the duplicate check shares: an insert that the database settles when two workers race.

``INSERT ... ON CONFLICT DO NOTHING`` exists on both backends (SQLite 3.24+, PostgreSQL 9.5+), so a unique
constraint, not process memory, decides which of two concurrent writers creates a row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_unless_exists(session: Session, model: type, values: Mapping[str, Any], keys: Sequence[str]) -> bool:
    """Insert one row of ``model`` unless a row with the same unique ``keys`` exists; True when inserted.

    The row goes straight to the database (not through the session's identity map); read it back to use it.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(model).values(**values).on_conflict_do_nothing(index_elements=list(keys))
    result = session.execute(statement)
    return bool(result.rowcount)  # type: ignore[attr-defined]
