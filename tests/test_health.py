"""The server starts on both backends and answers /healthz without a token."""

import httpx


def test_healthz_answers_without_a_token(live_server) -> None:  # type: ignore[no-untyped-def]
    response = httpx.get(live_server.base_url + "/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_answers_ready_on_a_current_store(live_server) -> None:  # type: ignore[no-untyped-def]
    response = httpx.get(live_server.base_url + "/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready" and body["checks"]["database"]["ok"] and body["checks"]["schema"]["ok"]


def test_readyz_is_not_ready_when_the_schema_is_behind(live_server) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    with live_server.context.engine.begin() as connection:  # as if a newer program's migration had not run yet
        connection.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    response = httpx.get(live_server.base_url + "/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["ok"] and not checks["schema"]["ok"] and checks["schema"]["current"] == ["0001"]


def test_readyz_fails_when_the_database_is_gone(pg_admin, pg_template) -> None:  # type: ignore[no-untyped-def]
    import uuid

    from sqlalchemy import text

    from tests.conftest import LiveServer, _pg_url

    name = f"priorscan_gone_{uuid.uuid4().hex[:8]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    with LiveServer(_pg_url(name)) as server:
        assert httpx.get(server.base_url + "/readyz").status_code == 200
        with pg_admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        response = httpx.get(server.base_url + "/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["database"]["ok"] is False
        assert "postgres" not in response.text  # names no host, user or database


def test_readiness_fails_when_an_mllp_writer_process_dies(sqlite_url: str) -> None:
    import os
    import signal
    import time

    from api.context import AppContext
    from api.feeds.mllp import _writer, stop_writer, writer_health
    from api.http.routers.health import readiness
    from priorscan.settings import Settings

    context = AppContext.open(Settings(db=sqlite_url, env="test", mllp_writer_processes=1))
    try:
        writer = _writer(context)
        assert writer.processes is not None
        deadline = time.monotonic() + 60
        while writer.processes.alive() < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert readiness(context)[0], readiness(context)[1]
        os.kill(writer.processes.pids()[0], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while writer.processes.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        health = writer_health(context)
        assert health is not None and health["ok"] is False and health["processes"] == 0
        ready, checks = readiness(context)
        assert not ready and checks["mllp_writer"]["ok"] is False
    finally:
        stop_writer(context)
        context.engine.dispose()
