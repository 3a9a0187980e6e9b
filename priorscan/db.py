"""Storage plumbing: the declarative base, engines for SQLite and PostgreSQL, sessions and migrations.

Each package declares its own tables (``mpi.tables``, ``imaging.tables`` ...) on :class:`Base`; the Alembic
migrations under ``priorscan/migrations`` create them. SQLite runs in WAL mode with foreign keys on.

PostgreSQL connections are pooled without a ping per checkout (a round trip each; two per request). Instead:

- at checkout, a connection whose server has closed it (a restart, ``pg_terminate_backend``, or a dead peer found by
  TCP keepalives) is seen without a round trip: an idle connection has nothing to read, so a readable or failed
  socket means the server said goodbye; the pool then opens a fresh connection (:func:`peer_closed`);
- a connection that dies silently anyway fails the one statement that uses it; SQLAlchemy recognises the disconnect,
  invalidates that connection and every other one opened before it, so the next request reconnects (SQLAlchemy's
  "optimistic" disconnect handling);
- connections are recycled after :data:`POOL_RECYCLE_S`, under the idle timeouts of firewalls and poolers.
"""

from __future__ import annotations

import importlib
import logging
import re
import select
import threading
import weakref
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import JSON, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from priorscan.errors import StorageError

if TYPE_CHECKING:
    from priorscan.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

#: Modules whose tables make up the schema; imported before migrations or ``create_all``.
TABLE_MODULES = ("priorscan.tables", "mpi.tables", "imaging.tables", "dedupe.tables")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
#: Seconds after which a pooled PostgreSQL connection is closed and replaced at its next checkout.
POOL_RECYCLE_S = 1800
#: libpq TCP keepalives: a peer that vanished without closing the connection is noticed within about 90 s.
PG_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 60, "keepalives_interval": 10, "keepalives_count": 3}

class JSONType(TypeDecorator[object]):
    """JSON on SQLite, JSONB on PostgreSQL."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect):  # type: ignore[no-untyped-def]
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on both SQLite and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value if value.tzinfo else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def load_table_modules() -> MetaData:
    """Import every module that declares tables and return the full metadata."""
    for name in TABLE_MODULES:
        importlib.import_module(name)
    return Base.metadata


def make_engine(url: str, *, echo: bool = False, background_checkpoint: bool = False) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout.

    SQL parameters (names, NHS numbers) are hidden from every message the engine writes or raises
    (``hide_parameters``), so neither ``echo`` nor an error's text carries them into a log.

    ``background_checkpoint`` (SQLite, long-running servers): the WAL is checkpointed by a thread of its own instead
    of by whichever commit crosses SQLite's auto-checkpoint threshold, so no request waits for the disk flush a
    checkpoint makes (it was the slowest 1% of link-on-write commits). The thread stops when the engine is disposed.
    """
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url[len("postgres://"):]
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, echo=echo, hide_parameters=True,
                                   connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
            if background_checkpoint:
                event.listen(engine, "connect", _no_auto_checkpoint)
                WalCheckpointer(engine).start()
        else:
            engine = create_engine(url, echo=echo, hide_parameters=True, pool_size=10, max_overflow=20,
                                   pool_recycle=POOL_RECYCLE_S, connect_args=dict(PG_KEEPALIVES))
            event.listen(engine, "checkout", _refuse_closed_connection)
            _cache_long_queries()
    except (SQLAlchemyError, ImportError) as exc:
        raise StorageError(f"cannot open the store ({type(exc).__name__})") from exc
    return engine


#: psycopg turns a query's named placeholders into PostgreSQL's ``$n`` once per distinct query and keeps the result,
#: but only for queries of at most 4 096 characters and 50 parameters. A new registration's one statement
#: (:func:`mpi.link_statements._new_record_in_one_statement`) has more of both, so it was parsed afresh on every
#: call (about 0.1 ms of CPU, some 4% of an HL7 registration's work). These limits keep every statement priorscan
#: writes cached.
PSYCOPG_CACHED_QUERY_LIMITS = {"MAX_CACHED_STATEMENT_LENGTH": 16_384, "MAX_CACHED_STATEMENT_PARAMS": 200}


def _cache_long_queries() -> None:
    """Raise psycopg's limits for caching a query's conversion (module settings of ``psycopg._queries``, read on
    every execute; a psycopg without them is left as it is)."""
    try:
        from psycopg import _queries
    except ImportError:  # another driver: nothing to tune
        return
    for name, limit in PSYCOPG_CACHED_QUERY_LIMITS.items():
        if isinstance(getattr(_queries, name, None), int) and getattr(_queries, name) < limit:
            setattr(_queries, name, limit)


def peer_closed(dbapi_connection: object) -> bool:
    """Whether the server has closed this idle DBAPI connection, found without a round trip.

    A pooled connection is idle: the server sends nothing unasked (priorscan uses no LISTEN), so a socket with data to
    read, at end of file or in error means the server terminated the session. A false alarm only costs a reconnect.
    """
    if getattr(dbapi_connection, "closed", False) or getattr(dbapi_connection, "broken", False):
        return True
    try:
        fd = dbapi_connection.fileno()  # type: ignore[attr-defined]
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no socket to look at: leave it to the optimistic handling
        return False


def _refuse_closed_connection(dbapi_connection: object, _record: object, _proxy: object) -> None:
    # DisconnectionError at checkout makes the pool discard this connection and hand out a fresh one
    if peer_closed(dbapi_connection):
        raise DisconnectionError("the server closed this pooled connection")


def _no_auto_checkpoint(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


class WalCheckpointer(threading.Thread):
    """Checkpoint a SQLite store's WAL every ``interval_s`` (``PASSIVE``: it never blocks readers or writers) until
    the engine is disposed or garbage collected."""

    def __init__(self, engine: Engine, interval_s: float = 0.5) -> None:
        super().__init__(name="sqlite-wal-checkpointer", daemon=True)
        self._engine = weakref.ref(engine)
        self._interval_s = interval_s
        self._stopping = threading.Event()
        event.listen(engine, "engine_disposed", lambda _engine: self._stopping.set())

    def run(self) -> None:
        while not self._stopping.wait(self._interval_s):
            engine = self._engine()
            if engine is None:
                return
            try:
                with engine.connect() as connection:
                    connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except SQLAlchemyError:
                log.warning("WAL checkpoint failed; retrying in %.1f s", self._interval_s)
            del engine


#: How much of a SQLite store is read through a memory map (SQLite caps it at its compile-time maximum, 2 GB in
#: common builds): a page read is then a memory access, not a ``pread`` system call, which pays off in a long-running
#: server whose pages stay mapped. Writes still go through the WAL. Measured in ``BENCHMARKS.md`` (the effect is
#: small beside this machine's noise).
SQLITE_MMAP_BYTES = 1 << 31


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    cursor.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def session_scope(factory: sessionmaker[Session]) -> UnitOfWork:
    """A session that commits on success and rolls back on error: :func:`priorscan.unit_of_work.unit_of_work`, under
    the name tests and notebooks know (code in the packages calls ``unit_of_work`` itself)."""
    from priorscan.unit_of_work import unit_of_work

    return unit_of_work(factory)


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


_REVISION = re.compile(r"^(down_)?revision\s*(?::[^=]*)?=\s*(.*)$", re.MULTILINE)


def _head_revision() -> str | None:
    """The newest migration, read from the migration scripts' ``revision`` and ``down_revision`` lines without
    Alembic; None unless exactly one script is named by no other (Alembic decides then)."""
    revisions: set[str] = set()
    named: set[str] = set()
    for script in (Path(__file__).parent / "migrations" / "versions").glob("[!_]*.py"):
        found = dict.fromkeys(("revision", "down_revision"), "")
        for down, value in _REVISION.findall(script.read_text(encoding="utf-8")):
            found["down_revision" if down else "revision"] = value
        ids = re.findall(r"['\"]([^'\"]+)['\"]", found["revision"])
        if len(ids) != 1:
            return None
        revisions.add(ids[0])
        named.update(re.findall(r"['\"]([^'\"]+)['\"]", found["down_revision"]))
    heads = revisions - named
    return heads.pop() if len(heads) == 1 else None


def _at_head(engine: Engine) -> bool:
    """Whether the store records exactly the newest migration (one statement; Alembic is not imported, a fixed
    part of every command's start)."""
    head = _head_revision()
    if head is None:
        return False
    try:
        with engine.connect() as connection:
            stored = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
    except SQLAlchemyError:  # no version table: a new store
        return False
    return list(stored) == [head]


def migrate(engine: Engine) -> None:
    """Bring the store's schema to the newest migration (idempotent; a store at it is only checked)."""
    load_table_modules()
    if _at_head(engine):
        return
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")


def open_store(url: str, *, upgrade: bool = True, background_checkpoint: bool = False) -> Engine:
    """Open the store at ``url``, migrating it to the current schema."""
    engine = make_engine(url, background_checkpoint=background_checkpoint)
    if upgrade:
        migrate(engine)
    return engine

