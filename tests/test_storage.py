"""The schema migrates on both backends and matches the table modules."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text

from priorscan.db import load_table_modules, make_engine
from priorscan.tables import DeadLetter


def test_migrations_match_the_table_modules(engine: Engine) -> None:
    metadata = load_table_modules()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), metadata)
    assert diff == [], f"run `make migration`: the migration differs from the tables: {diff[:5]}"


def test_every_table_exists(engine: Engine) -> None:
    names = set(inspect(engine).get_table_names())
    assert {"source_record", "regional_patient", "study", "alert", "audit_event", "dead_letter"} <= names


def test_round_trip_of_json_and_timestamps(session) -> None:  # type: ignore[no-untyped-def]
    session.add(DeadLetter(channel="mllp", content_type="hl7v2", error_code="hl7", reason="r", raw="MSH|x"))
    session.commit()
    row = session.scalars(select(DeadLetter)).one()
    assert row.received_at.tzinfo is not None
    assert row.status == "new"


def test_sqlite_stores_are_read_through_a_memory_map(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'mapped.db'}")
    with engine.connect() as connection:
        mapped = connection.exec_driver_sql("PRAGMA mmap_size").scalar()
        mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
    engine.dispose()
    assert mode == "wal"
    assert mapped and mapped > 0  # clamped to SQLite's own maximum, never left at its default of 0


def test_postgresql_long_statements_are_converted_once(pg_url: str) -> None:
    # a new registration's one statement has more parameters than psycopg caches by default: without the raised
    # limits (priorscan.db.PSYCOPG_CACHED_QUERY_LIMITS) every execution parsed its placeholders again
    from psycopg import _queries

    engine = make_engine(pg_url)
    count = 120
    statement = text("SELECT " + " + ".join(f"CAST(:p{n} AS INTEGER)" for n in range(count)))
    params = {f"p{n}": n for n in range(count)}
    try:
        with engine.connect() as conn:
            assert conn.execute(statement, params).scalar_one() == sum(range(count))
            before = _queries._query2pg.cache_info()
            conn.execute(statement, params)
            after = _queries._query2pg.cache_info()
    finally:
        engine.dispose()
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)


def test_the_head_revision_is_alembic_s_and_a_store_at_it_is_opened_without_alembic(store_url: str,
                                                                                    tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Opening a store already at the newest migration checks one row and imports no Alembic (a fixed part of
    every command's start); a store behind it (here: new, empty) is still migrated by Alembic."""
    import subprocess
    import sys
    from pathlib import Path

    from alembic.script import ScriptDirectory

    from priorscan.db import _head_revision, alembic_config

    assert _head_revision() == ScriptDirectory.from_config(alembic_config(store_url)).get_current_head()
    probe = ("import sys; from priorscan.db import open_store; from sqlalchemy import inspect; "
             "e = open_store(sys.argv[1]); print('alembic' in sys.modules, 'study' in inspect(e).get_table_names())")
    at_head = subprocess.run([sys.executable, "-c", probe, store_url], capture_output=True, text=True, check=True)
    assert at_head.stdout.split() == ["False", "True"]
    new = f"sqlite:///{Path(tmp_path) / 'new.db'}"
    behind = subprocess.run([sys.executable, "-c", probe, new], capture_output=True, text=True, check=True)
    assert behind.stdout.split() == ["True", "True"]
