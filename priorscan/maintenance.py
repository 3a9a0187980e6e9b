"""Keeping a store: its schema's state against the migrations, and backups that can be restored.

- :func:`schema_status` tells whether a store's schema is at the newest Alembic migration, without changing it
  (``priorscan migrate --check``, the readiness probe).
- :func:`backup` copies a live store to a file: SQLite through its online backup API (a consistent copy while
  feeds keep writing), PostgreSQL through ``pg_dump --format=custom`` (one snapshot transaction).
- :func:`restore` loads such a file into an empty store: SQLite by the same backup API in reverse, PostgreSQL with
  ``pg_restore --no-owner``; the restored store is then migrated to the newest schema, so a backup taken before an
  upgrade can be restored by the upgraded program.

Restoring over a store that already holds data is refused: a restore is for a new or emptied store, never a merge.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, inspect, make_url, text

from priorscan.errors import ConfigurationError, StorageError

#: Tables whose rows mean a store is not empty (a restore is refused over them).
DATA_TABLES = ("source_record", "study", "audit_event")


@dataclass(frozen=True)
class SchemaStatus:
    """Where a store's schema stands against the migrations shipped with this program."""

    current: tuple[str, ...]  # the store's revision(s); empty when it has never been migrated
    head: tuple[str, ...]  # the newest revision(s) shipped

    @property
    def up_to_date(self) -> bool:
        return bool(self.current) and set(self.current) == set(self.head)

    @property
    def pending(self) -> list[str]:
        """Revisions shipped but not applied, oldest first."""
        from alembic.script import ScriptDirectory

        from priorscan.db import alembic_config

        script = ScriptDirectory.from_config(alembic_config("sqlite://"))
        applied: set[str] = set()
        for revision in self.current:
            applied.update(r.revision for r in script.iterate_revisions(revision, "base"))
        return [r.revision for r in reversed(list(script.walk_revisions())) if r.revision not in applied]

    def describe(self) -> str:
        if self.up_to_date:
            return f"schema up to date (revision {', '.join(self.current)})"
        if not self.current:
            return f"no schema yet; {len(self.pending)} migrations to apply (to {', '.join(self.head)})"
        return (f"schema at {', '.join(self.current)}; {len(self.pending)} migrations to apply: "
                f"{', '.join(self.pending)}")


def schema_status(engine: Engine) -> SchemaStatus:
    """The store's schema revision against the newest shipped, read without changing anything."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from priorscan.db import alembic_config

    script = ScriptDirectory.from_config(alembic_config(engine.url.render_as_string(hide_password=False)))
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
    return SchemaStatus(current=tuple(sorted(current)), head=tuple(sorted(script.get_heads())))


def is_empty(engine: Engine) -> bool:
    """Whether the store holds no patient, study or audit data (or no schema at all)."""
    tables = set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        for table in DATA_TABLES:
            if table in tables and connection.execute(text(f"SELECT 1 FROM {table} LIMIT 1")).first():
                return False
    return True


def _sqlite_file(engine: Engine) -> Path:
    database = engine.url.database
    if not database or database == ":memory:":
        raise ConfigurationError("an in-memory SQLite store cannot be backed up", code="config.backup")
    return Path(database)


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ConfigurationError(f"{name} is not installed (Debian: postgresql-client)", code="config.backup")
    return found


def _pg_args(engine: Engine) -> list[str]:
    """Connection arguments for the PostgreSQL client tools (the password, if any, goes in the environment)."""
    url = engine.url
    return ["--host", url.host or "127.0.0.1", "--port", str(url.port or 5432),
            "--username", url.username or "postgres"]


def _pg_env(engine: Engine) -> dict[str, str]:
    import os

    env = dict(os.environ)
    if engine.url.password:
        env["PGPASSWORD"] = str(engine.url.password)
    return env


def backup(engine: Engine, destination: Path) -> Path:
    """Copy the live store to ``destination`` (a SQLite file, or a ``pg_dump`` custom-format archive).

    Raises
    ------
    StorageError
        When the copy fails (the partial file is removed).
    """
    destination = Path(destination)
    if destination.exists():
        raise ConfigurationError(f"{destination} exists; a backup never overwrites", code="config.backup")
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        if engine.dialect.name == "sqlite":
            source = sqlite3.connect(_sqlite_file(engine))
            target = sqlite3.connect(destination)
            try:
                with target:
                    source.backup(target, pages=4096)  # online: writers wait only while each step copies
            finally:
                target.close()
                source.close()
        elif engine.dialect.name == "postgresql":
            result = subprocess.run([_pg_tool("pg_dump"), *_pg_args(engine), "--format=custom", "--no-owner",
                                     "--file", str(destination), engine.url.database or "postgres"],
                                    env=_pg_env(engine), capture_output=True, text=True, timeout=3600)
            if result.returncode != 0:
                raise StorageError(f"pg_dump failed: {result.stderr.strip()[-500:]}", code="storage.backup")
        else:
            raise ConfigurationError(f"no backup for {engine.dialect.name}", code="config.backup")
    except BaseException:
        destination.unlink(missing_ok=True)
        raise
    return destination


def restore(engine: Engine, source: Path) -> None:
    """Load the backup ``source`` into the empty store of ``engine``, then migrate it to the newest schema.

    Raises
    ------
    ConfigurationError
        When the store already holds data, or ``source`` is not there.
    StorageError
        When the restore fails.
    """
    from priorscan.db import migrate

    source = Path(source)
    if not source.is_file():
        raise ConfigurationError(f"{source} is not a file", code="config.restore")
    if not is_empty(engine):
        raise ConfigurationError("the store already holds data; restore into a new, empty store",
                                 code="config.restore")
    if engine.dialect.name == "sqlite":
        engine.dispose()  # no pooled connection may hold the file while its pages are replaced
        backup_copy = sqlite3.connect(source)
        target = sqlite3.connect(_sqlite_file(engine))
        try:
            with target:
                backup_copy.backup(target)
        finally:
            target.close()
            backup_copy.close()
    elif engine.dialect.name == "postgresql":
        with engine.begin() as connection:  # an empty store may still have a schema: pg_restore brings its own
            connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        result = subprocess.run([_pg_tool("pg_restore"), *_pg_args(engine), "--no-owner", "--exit-on-error",
                                 "--dbname", engine.url.database or "postgres", str(source)],
                                env=_pg_env(engine), capture_output=True, text=True, timeout=3600)
        if result.returncode != 0:
            raise StorageError(f"pg_restore failed: {result.stderr.strip()[-500:]}", code="storage.restore")
    else:
        raise ConfigurationError(f"no restore for {engine.dialect.name}", code="config.restore")
    migrate(engine)


def describe_url(url: str) -> str:
    """The store's URL without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


__all__ = ["SchemaStatus", "backup", "describe_url", "is_empty", "restore", "schema_status"]
