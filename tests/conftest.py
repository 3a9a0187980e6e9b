"""Shared fixtures: a throwaway store on SQLite and on the PostgreSQL server of this machine.

``engine`` (and ``session``) are parametrised over both backends, so a test that asks for them runs twice. PostgreSQL
must be reachable: the suite fails loudly rather than skip (scripts/setup-system.sh starts it).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from priorscan.db import make_engine, migrate, session_factory

PG_ADMIN_URL = os.environ.get("PRIORSCAN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _pg_url(dbname: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + dbname


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # the suite must not pass by skipping PostgreSQL
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}", pytrace=False)
    yield admin
    admin.dispose()


@pytest.fixture(scope="session")
def pg_template(pg_admin: Engine) -> Iterator[str]:
    """A migrated template database; each test's database is a cheap copy of it."""
    name = f"priorscan_tmpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(_pg_url(name))
    migrate(engine)
    engine.dispose()
    yield name
    with pg_admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("tmpl") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path.read_bytes()


def _new_store(backend: str, request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    if backend == "sqlite":
        path = tmp_path / f"store_{uuid.uuid4().hex[:6]}.db"
        path.write_bytes(request.getfixturevalue("sqlite_template"))
        yield f"sqlite:///{path}"
        return
    admin: Engine = request.getfixturevalue("pg_admin")
    template = request.getfixturevalue("pg_template")
    name = f"priorscan_t_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield _pg_url(name)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The URL of an empty, migrated store, once per backend."""
    yield from _new_store(request.param, request, tmp_path)


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """An empty, migrated PostgreSQL store, for tests of what only PostgreSQL does."""
    yield from _new_store("postgresql", request, tmp_path)


@pytest.fixture
def sqlite_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """An empty, migrated SQLite store, for tests whose subject is not storage."""
    yield from _new_store("sqlite", request, tmp_path)


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    eng = make_engine(store_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with session_factory(engine)() as s:
        yield s


# --- a real HTTP server ---------------------------------------------------------------------------------------------

def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """``priorscan``'s app served by uvicorn in a thread on a free loopback port (a real HTTP server)."""

    def __init__(self, db_url: str, **settings: object) -> None:
        db_url = str(settings.pop("db", db_url))
        import threading

        import uvicorn

        from api.context import AppContext
        from api.http.app import create_app
        from priorscan.settings import Settings

        self.context = AppContext.open(Settings(db=db_url, **{"env": "test", **settings}))  # type: ignore[arg-type]
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(self.context), host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        import time

        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.context.engine.dispose()

    def token(self, scopes: list[str] | None = None, client: str = "test-client") -> str:
        """A bearer token with ``scopes`` (every scope when None)."""
        import secrets

        from api.http.deps import token_hash
        from priorscan.tables import ApiClient

        token = "ps_" + secrets.token_urlsafe(24)
        with self.context.sessions() as s:
            s.add(ApiClient(name=client, token_hash=token_hash(token), scopes=scopes or ["*"]))
            s.commit()
        return token


@pytest.fixture
def live_server(store_url: str) -> Iterator[LiveServer]:
    """A real server on each backend."""
    with LiveServer(store_url) as server:
        yield server


@pytest.fixture
def live_server_with(sqlite_url: str) -> Iterator[Callable[..., LiveServer]]:
    """Start a real server on SQLite with settings of the test's choosing: ``live_server_with(public_base_url=...)``."""
    started: list[LiveServer] = []

    def start(**settings: object) -> LiveServer:
        server = LiveServer(sqlite_url, **settings).__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__(None, None, None)


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory, sqlite_template: bytes) -> Iterator[LiveServer]:
    """A real server on a fresh SQLite store shared by a module's tests (fuzzing: each example costs one request)."""
    path = tmp_path_factory.mktemp("module") / "store.db"
    path.write_bytes(sqlite_template)
    with LiveServer(f"sqlite:///{path}") as server:
        yield server


@pytest.fixture
def live_server_sqlite(sqlite_url: str) -> Iterator[LiveServer]:
    """A real server on SQLite only, for tests whose subject is not storage."""
    with LiveServer(sqlite_url) as server:
        yield server
