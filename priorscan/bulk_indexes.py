"""Secondary indexes and, on PostgreSQL, foreign keys set aside while a bulk load fills an empty store, and built
once after it.

A non-unique index kept up to date row by row costs a bulk load most where it hurts: every COPY'd or inserted row
descends each index of its table at a random place, and once an index outgrows the database's cache the server reads
and writes a page for each. Built after the rows are in, the same index is one sort. So a bulk load that starts on a
store holding no source records sets the identity tables' non-unique indexes aside (:func:`set_aside`) and builds
them again (:func:`restore`) before anything that looks rows up by them runs.

A foreign key is checked row by row too: PostgreSQL runs a look-up of the parent row, which it locks, for every row
COPY'd into a child table (a record's version, its ~9 blocking keys, its identifiers) and for every record the relink
links to a patient; the checks took two thirds of a COPY into ``blocking_key`` (2026-12-07, BENCHMARKS.md). Added
again after the rows are in, the same key is checked once for the whole table, by one join. So on PostgreSQL the same
load sets the foreign keys of these tables aside as well, and :func:`restore` adds them again, **validating every
row**: a row that names no parent makes the restore fail, and the load with it (H-ID-44), rather than leave the store
with a key it does not keep. SQLite cannot drop a constraint (and checks foreign keys only when asked to): its
foreign keys stay.

The keys of the tables a relink does not write (a record's blocking keys, versions and identifiers) need not wait
for the relink: :func:`add_unchecked` adds them ``NOT VALID`` before the relink takes its lock (enforced for every row
written from then on, no scan, a moment's lock), and :func:`validate_foreign_keys` checks the rows already in while the
relink runs, on another connection (``VALIDATE CONSTRAINT`` locks the records only against a table rewrite, not
against the relink's writes). A key added so is not kept until it is validated: :func:`missing_foreign_keys` counts
it as missing and :func:`restore_foreign_keys` validates it, failing as it fails for a key it adds (H-ID-44).

Only non-unique indexes are set aside: unique constraints and unique indexes (a record's ``(namespace, local_id)``,
an HL7 message's control id) keep guarding against doubles throughout. Both functions are idempotent, and which
indexes and keys exist is read from the store itself, so a load killed in between restores them when it is resumed;
they are those of the tables' metadata, which the migrations are held equal to (``tests/test_storage.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, ForeignKeyConstraint, Index, Table, inspect, text
from sqlalchemy.schema import AddConstraint


def secondary_indexes(tables: Sequence[Table]) -> list[Index]:
    """The non-unique indexes of ``tables``, as the schema defines them, in a stable order."""
    found = [index for table in tables for index in table.indexes if not index.unique]
    return sorted(found, key=lambda index: str(index.name))


def foreign_keys(connection: Connection, tables: Sequence[Table]) -> list[ForeignKeyConstraint]:
    """The foreign keys of ``tables`` that a load sets aside on this database (none on SQLite), in a stable order."""
    if connection.dialect.name != "postgresql":
        return []
    found = [key for table in tables for key in table.foreign_key_constraints]
    return sorted(found, key=lambda key: str(key.name))


def _present(connection: Connection, tables: Sequence[Table]) -> set[str]:
    inspector = inspect(connection)
    return {str(index["name"]) for table in tables for index in inspector.get_indexes(table.name)}


def _present_keys(connection: Connection, tables: Sequence[Table]) -> dict[str, bool]:
    """The foreign keys of ``tables`` that the store has (PostgreSQL), each with whether it is validated (every row
    checked: not a key added ``NOT VALID`` and not validated since)."""
    rows = connection.execute(text(
        "SELECT c.conname, c.convalidated FROM pg_constraint AS c JOIN pg_class AS t ON t.oid = c.conrelid "
        "WHERE c.contype = 'f' AND t.relname = ANY(:names) AND pg_table_is_visible(t.oid)"),
        {"names": [table.name for table in tables]}).all()
    return {str(name): bool(validated) for name, validated in rows}


def set_aside(connection: Connection, tables: Sequence[Table]) -> list[str]:
    """Drop the non-unique indexes of ``tables`` that the store has and, on PostgreSQL, their foreign keys, in the
    caller's transaction; their names."""
    present = _present(connection, tables)
    quote = connection.dialect.identifier_preparer.quote
    dropped = []
    for index in secondary_indexes(tables):
        if str(index.name) in present:
            connection.execute(text(f"DROP INDEX {quote(str(index.name))}"))
            dropped.append(str(index.name))
    wanted = foreign_keys(connection, tables)
    keys = _present_keys(connection, tables) if wanted else {}
    for key in wanted:
        if str(key.name) in keys:
            assert key.table is not None
            connection.execute(text(f"ALTER TABLE {quote(key.table.name)} DROP CONSTRAINT {quote(str(key.name))}"))
            dropped.append(str(key.name))
    return dropped


def missing(connection: Connection, tables: Sequence[Table]) -> list[Index]:
    """The non-unique indexes of ``tables`` that the schema defines and the store lacks."""
    present = _present(connection, tables)
    return [index for index in secondary_indexes(tables) if str(index.name) not in present]


def missing_foreign_keys(connection: Connection, tables: Sequence[Table]) -> list[ForeignKeyConstraint]:
    """The foreign keys of ``tables`` that a load sets aside on this database and the store lacks, or has only
    ``NOT VALID`` (:func:`add_unchecked`: the rows before it not yet checked)."""
    wanted = foreign_keys(connection, tables)
    present = _present_keys(connection, tables) if wanted else {}
    return [key for key in wanted if not present.get(str(key.name), False)]


def add_unchecked(connection: Connection, tables: Sequence[Table]) -> list[str]:
    """Add the foreign keys of ``tables`` that the store lacks ``NOT VALID``, in the caller's transaction; their
    names (none on SQLite).

    Each is enforced for every row written or changed from the commit on; the rows already in are checked by
    :func:`validate_foreign_keys` (or :func:`restore_foreign_keys`). Adding one scans nothing, but takes a ``SHARE
    ROW EXCLUSIVE`` lock on its table and on the records for the transaction: commit before a relink locks them."""
    wanted = foreign_keys(connection, tables)
    present = _present_keys(connection, tables) if wanted else {}
    added = []
    for key in wanted:
        if str(key.name) not in present:
            connection.execute(text(str(AddConstraint(key).compile(dialect=connection.dialect)) + " NOT VALID"))
            added.append(str(key.name))
    return added


def validate_foreign_keys(connection: Connection, tables: Sequence[Table]) -> list[str]:
    """Check every row against each foreign key of ``tables`` that the store has ``NOT VALID``, in the caller's
    transaction (``ALTER TABLE ... VALIDATE CONSTRAINT``: one join over the table); their names. A row naming no
    parent raises :class:`sqlalchemy.exc.IntegrityError` and the key stays unvalidated.

    Takes a ``SHARE UPDATE EXCLUSIVE`` lock on the key's table and a ``ROW SHARE`` lock on the parent's: it waits
    for no writer of either, so it may run beside the relink, which holds the records against other writers."""
    wanted = foreign_keys(connection, tables)
    present = _present_keys(connection, tables) if wanted else {}
    quote = connection.dialect.identifier_preparer.quote
    validated = []
    for key in wanted:
        if present.get(str(key.name)) is False:
            assert key.table is not None
            connection.execute(text(f"ALTER TABLE {quote(key.table.name)} VALIDATE CONSTRAINT {quote(str(key.name))}"))
            validated.append(str(key.name))
    return validated


def restore(connection: Connection, tables: Sequence[Table]) -> list[str]:
    """Build every non-unique index of ``tables`` that the store lacks, in the caller's transaction; their names
    (the foreign keys come back with :func:`restore_foreign_keys`, after the indexes)."""
    built = missing(connection, tables)
    for index in built:
        index.create(connection)
    return [str(index.name) for index in built]


def restore_foreign_keys(connection: Connection, tables: Sequence[Table]) -> list[str]:
    """Add every foreign key of ``tables`` that the store lacks, and validate every one it has ``NOT VALID``, in the
    caller's transaction; their names.

    Each is added validated (``ALTER TABLE ... ADD CONSTRAINT ... FOREIGN KEY``, one join over the table) or
    validated (:func:`validate_foreign_keys`): a row naming no parent raises :class:`sqlalchemy.exc.IntegrityError`
    and nothing is added or validated."""
    wanted = foreign_keys(connection, tables)
    if not wanted:
        return []
    validated = validate_foreign_keys(connection, tables)
    present = _present_keys(connection, tables)
    added = [key for key in wanted if str(key.name) not in present]
    for key in added:
        connection.execute(AddConstraint(key))
    return validated + [str(key.name) for key in added]


__all__ = ["add_unchecked", "foreign_keys", "missing", "missing_foreign_keys", "restore", "restore_foreign_keys",
           "secondary_indexes", "set_aside", "validate_foreign_keys"]
