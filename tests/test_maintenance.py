"""Keeping a store: ``priorscan migrate --check``, an upgrade of a populated store across every migration, and
backups restored on both backends (``priorscan backup`` / ``priorscan restore``)."""

from __future__ import annotations

import contextlib
import io
import threading
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    create_engine,
    func,
    select,
    text,
)

from priorscan.cli import main
from priorscan.db import alembic_config, make_engine, migrate
from priorscan.errors import ConfigurationError
from priorscan.maintenance import backup, is_empty, restore, schema_status
from tests.fixed_dates import AS_OF


def _run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(list(argv))
    return status, out.getvalue()


def _empty_store(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> str:
    """A database with no schema at all (the fixtures' stores are migrated already)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    import uuid

    admin: Engine = request.getfixturevalue("pg_admin")
    name = f"priorscan_e_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    request.addfinalizer(drop)
    return admin.url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return _empty_store(request, tmp_path, request.param)


def test_migrate_check_changes_nothing_and_says_what_is_pending(empty_store: str) -> None:
    status, out = _run("--db", empty_store, "migrate", "--check")
    assert status == 1 and "migrations to apply" in out
    engine = make_engine(empty_store)
    try:
        assert schema_status(engine).current == ()  # --check applied nothing
        status, out = _run("--db", empty_store, "migrate")
        assert status == 0 and "applied" in out
        assert schema_status(engine).up_to_date
    finally:
        engine.dispose()
    status, out = _run("--db", empty_store, "migrate", "--check")
    assert status == 0 and "up to date" in out


# --- an upgrade of a populated store -------------------------------------------------------------------------------

def _value(column: Any, row: int) -> Any:
    """A value of the column's type for row ``row`` (distinct per row, so unique constraints hold)."""
    kind = column.type
    if isinstance(kind, Boolean):
        return False
    if isinstance(kind, Integer):
        return row
    if isinstance(kind, Float | Numeric):
        return float(row) + 0.5
    if isinstance(kind, DateTime):
        return datetime(2026, 1, 1, 12, row, tzinfo=UTC)
    if isinstance(kind, Date):
        return date(2026, 1, row)
    if isinstance(kind, JSON):
        return {"row": row}
    if isinstance(kind, String | Text):
        length = getattr(kind, "length", None) or 20
        return f"v{row}"[:length]
    return f"v{row}"


def populate_every_table(engine: Engine, rows: int = 3) -> dict[str, int]:
    """Fill every table of the store's current schema with ``rows`` rows each, parents before children."""
    metadata = MetaData()
    metadata.reflect(engine)
    counts: dict[str, int] = {}
    with engine.begin() as connection:
        for table in metadata.sorted_tables:
            if table.name == "alembic_version":
                continue
            batch = []
            for row in range(1, rows + 1):
                values = {}
                for column in table.columns:
                    if column.foreign_keys:  # the parent's row of the same number (parents come first)
                        values[column.name] = _value(next(iter(column.foreign_keys)).column, row)
                    elif not column.nullable or column.primary_key:
                        values[column.name] = _value(column, row)
                batch.append(values)
            connection.execute(table.insert(), batch)
            counts[table.name] = rows
            key = list(table.primary_key.columns)
            if engine.dialect.name == "postgresql" and len(key) == 1 and isinstance(key[0].type, Integer):
                # ids were given: move the sequence past them, as a store that assigned them itself would be
                connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', '{key[0].name}'), "
                                        f"{rows}) WHERE pg_get_serial_sequence('{table.name}', '{key[0].name}') "
                                        "IS NOT NULL"))
    return counts


def test_a_populated_store_upgrades_across_every_migration(empty_store: str) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory

    engine = make_engine(empty_store)
    try:
        config = alembic_config(empty_store)
        first = ScriptDirectory.from_config(config).get_base()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, first)
        assert schema_status(engine).current == (first,)
        counts = populate_every_table(engine)
        assert counts
        engine.dispose()
        status, out = _run("--db", empty_store, "migrate")
        assert status == 0, out
        assert schema_status(engine).up_to_date
        with engine.connect() as connection:
            for table, count in counts.items():
                kept = connection.execute(select(func.count()).select_from(text(table))).scalar_one()
                assert kept == count, f"{table}: {kept} rows after the upgrade, {count} before"
    finally:
        engine.dispose()
    status, out = _run("--db", empty_store, "export", "xref")  # the upgraded store serves the program's reads
    assert status == 0 and out.startswith("regional_id,system,value,link_state")


# --- backup and restore ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_region(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("region") / "region"
    status, _ = _run("synth", "--people", "25", "--out", str(out), "--seed", "4", "--as-of", AS_OF.isoformat())
    assert status == 0
    return out


def _exports(url: str) -> tuple[str, str]:
    return _run("--db", url, "export", "xref")[1], _run("--db", url, "export", "studies")[1]


def test_backup_and_restore_give_the_same_store(store_url: str, small_region: Path, tmp_path: Path,
                                                request: pytest.FixtureRequest) -> None:
    inputs = [str(p) for p in sorted(small_region.iterdir()) if p.name != "truth"]
    assert _run("--db", store_url, "ingest", "--no-progress", *inputs)[0] in (0, 1)
    before = _exports(store_url)
    assert before[0].count("\n") > 10 and before[1].count("\n") > 1
    archive = tmp_path / "store.backup"
    status, out = _run("--db", store_url, "backup", "--out", str(archive))
    assert status == 0 and archive.stat().st_size > 0, out
    assert _run("--db", store_url, "backup", "--out", str(archive))[0] == 2  # never overwrites a backup

    target = _empty_store(request, tmp_path, "sqlite" if store_url.startswith("sqlite") else "postgresql")
    if target.startswith("sqlite"):
        target = f"sqlite:///{tmp_path / 'restored.db'}"
    status, out = _run("--db", target, "restore", "--from", str(archive))
    assert status == 0 and "schema up to date" in out, out
    assert _exports(target) == before
    status, _ = _run("--db", target, "restore", "--from", str(archive))
    assert status == 2  # a store holding data is never restored over


def test_sqlite_backup_is_consistent_while_a_writer_writes(sqlite_url: str, tmp_path: Path) -> None:
    engine = make_engine(sqlite_url)
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set():
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO audit_event (recorded_at, action, event_type, subtype, outcome, "
                                        "agent_kind, agent_name) VALUES (:at, 'R', 'rest', 'probe', '0', 'user', "
                                        ":n)"), {"at": datetime.now(UTC), "n": f"w{n}"})
            n += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        copy = backup(engine, tmp_path / "live.db")
    finally:
        stop.set()
        writer.join()
        engine.dispose()
    check = create_engine(f"sqlite:///{copy}")
    try:
        with check.connect() as connection:
            assert connection.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
            assert connection.execute(text("SELECT count(*) FROM audit_event")).scalar_one() >= 0
    finally:
        check.dispose()


def test_restore_refuses_a_store_that_holds_data(sqlite_url: str, tmp_path: Path) -> None:
    engine = make_engine(sqlite_url)
    try:
        migrate(engine)
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO audit_event (recorded_at, action, event_type, subtype, outcome, "
                                    "agent_kind, agent_name) VALUES (:at, 'R', 'rest', 'probe', '0', 'user', 'x')"),
                               {"at": datetime.now(UTC)})
        assert not is_empty(engine)
        source = tmp_path / "b.db"
        source.write_bytes(b"")
        with pytest.raises(ConfigurationError, match="already holds data"):
            restore(engine, source)
    finally:
        engine.dispose()
