"""Where benchmarks keep their large stores between runs: a SQLite file in a cache, or a PostgreSQL database."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import create_engine, text

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
