"""Where benchmarks keep their large stores between runs: a SQLite file in a cache, or a PostgreSQL database."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

PG_ADMIN = os.environ.get("PRIORSCAN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def persistent_store_url(backend: str, sqlite_file: Path, pg_database: str) -> str:
    """The URL of a benchmark store kept between runs (the PostgreSQL database is created when missing)."""
    if backend == "sqlite":
        sqlite_file.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{sqlite_file}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(text("select 1 from pg_database where datname = :n"), {"n": pg_database}).first():
            conn.execute(text(f'CREATE DATABASE "{pg_database}"'))
    admin.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + pg_database


def settle(engine: Engine) -> None:
    """Bring a freshly loaded store to the state a running one is in: statistics gathered and, on PostgreSQL, the
    tables vacuumed (hint bits set, the visibility map filled, so index-only scans need no heap page).

    A production PostgreSQL does the vacuum itself (autovacuum, which also reacts to inserts). The server on this
    machine runs with ``autovacuum = off``, so without this a benchmark would measure a store that no running
    service would have.
    """
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM (ANALYZE)")
        return
    with engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
        connection.commit()
