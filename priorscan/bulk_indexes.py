"""Secondary indexes set aside while a bulk load fills an empty store, and built once after it.

A non-unique index kept up to date row by row costs a bulk load most where it hurts: every COPY'd or inserted row
descends each index of its table at a random place, and once an index outgrows the database's cache the server reads
and writes a page for each. Built after the rows are in, the same index is one sort. So a bulk load that starts on a
store holding no source records sets the identity tables' non-unique indexes aside (:func:`set_aside`) and builds
them again (:func:`restore`) before anything that looks rows up by them runs.

Only non-unique indexes are set aside: unique constraints and unique indexes (a record's ``(namespace, local_id)``,
an HL7 message's control id) keep guarding against doubles throughout. Both functions are idempotent, and which
indexes exist is read from the store itself, so a load killed in between restores them when it is resumed; the
indexes are those of the tables' metadata, which the migrations are held equal to (``tests/test_storage.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Index, Table, inspect, text


def secondary_indexes(tables: Sequence[Table]) -> list[Index]:
    """The non-unique indexes of ``tables``, as the schema defines them, in a stable order."""
    found = [index for table in tables for index in table.indexes if not index.unique]
    return sorted(found, key=lambda index: str(index.name))


def _present(connection: Connection, tables: Sequence[Table]) -> set[str]:
    inspector = inspect(connection)
    return {str(index["name"]) for table in tables for index in inspector.get_indexes(table.name)}


def set_aside(connection: Connection, tables: Sequence[Table]) -> list[str]:
    """Drop the non-unique indexes of ``tables`` that the store has, in the caller's transaction; their names."""
    present = _present(connection, tables)
    quote = connection.dialect.identifier_preparer.quote
    dropped = []
    for index in secondary_indexes(tables):
        if str(index.name) in present:
            connection.execute(text(f"DROP INDEX {quote(str(index.name))}"))
            dropped.append(str(index.name))
    return dropped


def missing(connection: Connection, tables: Sequence[Table]) -> list[Index]:
    """The non-unique indexes of ``tables`` that the schema defines and the store lacks."""
    present = _present(connection, tables)
    return [index for index in secondary_indexes(tables) if str(index.name) not in present]


def restore(connection: Connection, tables: Sequence[Table]) -> list[str]:
    """Build every non-unique index of ``tables`` that the store lacks, in the caller's transaction; their names."""
    built = missing(connection, tables)
    for index in built:
        index.create(connection)
    return [str(index.name) for index in built]


__all__ = ["missing", "restore", "secondary_indexes", "set_aside"]
