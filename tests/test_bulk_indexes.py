"""``priorscan.bulk_indexes``: what a bulk load into an empty store sets aside, and how it comes back."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from mpi import linkage_tables
from priorscan.bulk_indexes import (
    add_unchecked,
    foreign_keys,
    missing_foreign_keys,
    restore_foreign_keys,
    set_aside,
    validate_foreign_keys,
)


def test_a_foreign_key_set_aside_comes_back_only_if_every_row_has_its_parent(pg_url: str) -> None:
    """A blocking key naming no record, written while the keys were set aside, makes adding them back fail (the
    load stops; H-ID-44) and leaves them missing, rather than a store whose key no longer holds; once the row is
    gone they all come back."""
    tables = linkage_tables()
    engine = create_engine(pg_url)
    try:
        with engine.begin() as connection:
            dropped = set_aside(connection, tables)
            assert {str(key.name) for key in foreign_keys(connection, tables)} <= set(dropped)
            connection.execute(text("INSERT INTO blocking_key (source_record_id, key) VALUES (424242, 'x')"))
        with pytest.raises(IntegrityError), engine.begin() as connection:
            restore_foreign_keys(connection, tables)
        with engine.begin() as connection:
            assert {str(key.name) for key in missing_foreign_keys(connection, tables)} == set(
                str(key.name) for key in foreign_keys(connection, tables))
            connection.execute(text("DELETE FROM blocking_key"))
            assert len(restore_foreign_keys(connection, tables)) == len(foreign_keys(connection, tables)) >= 8
        with engine.connect() as connection:
            assert not missing_foreign_keys(connection, tables)
            assert inspect(connection).get_foreign_keys("blocking_key")
    finally:
        engine.dispose()


def test_a_foreign_key_added_not_valid_is_kept_only_once_validated(pg_url: str) -> None:
    """A key added ``NOT VALID`` (before the relink, to be validated beside it) refuses a new row naming no record
    at once, but is not counted as kept until the rows written before it are checked: a blocking key naming no record
    makes its validation fail, and the indexes stage's restore with it (H-ID-44), and the key stays missing; once
    the row is gone the restore validates it."""
    tables = linkage_tables()
    engine = create_engine(pg_url)
    try:
        with engine.begin() as connection:
            set_aside(connection, tables)
            connection.execute(text("INSERT INTO blocking_key (source_record_id, key) VALUES (424242, 'x')"))
        with engine.begin() as connection:
            added = add_unchecked(connection, tables)
        assert "fk_blocking_key_source_record_id_source_record" in added
        with engine.connect() as connection:
            assert set(added) <= {str(key.name) for key in missing_foreign_keys(connection, tables)}
        with pytest.raises(IntegrityError), engine.begin() as connection:  # enforced for new rows already
            connection.execute(text("INSERT INTO blocking_key (source_record_id, key) VALUES (424243, 'y')"))
        with pytest.raises(IntegrityError), engine.begin() as connection:
            validate_foreign_keys(connection, tables)
        with pytest.raises(IntegrityError), engine.begin() as connection:
            restore_foreign_keys(connection, tables)
        with engine.begin() as connection:
            assert set(added) <= {str(key.name) for key in missing_foreign_keys(connection, tables)}
            connection.execute(text("DELETE FROM blocking_key"))
            assert set(restore_foreign_keys(connection, tables)) == {str(key.name)
                                                                     for key in foreign_keys(connection, tables)}
        with engine.connect() as connection:
            assert not missing_foreign_keys(connection, tables)
            assert not validate_foreign_keys(connection, tables)
    finally:
        engine.dispose()


def test_sqlite_keeps_its_foreign_keys(sqlite_url: str) -> None:
    """SQLite cannot drop a constraint: nothing of its keys is set aside or added."""
    engine = create_engine(sqlite_url)
    try:
        with engine.begin() as connection:
            assert foreign_keys(connection, linkage_tables()) == []
            set_aside(connection, linkage_tables())
            assert inspect(connection).get_foreign_keys("blocking_key")
            assert restore_foreign_keys(connection, linkage_tables()) == []
    finally:
        engine.dispose()
