"""Faults over HTTP: the database going away answers 503 (never 500, never a hang), and service resumes when it comes
back, without a restart."""

from __future__ import annotations

import time

import httpx
from sqlalchemy import text


def _database_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_the_database_going_away_gives_503_then_recovery_without_a_restart(pg_url: str, live_server_with,  # type: ignore[no-untyped-def]
                                                                           pg_admin) -> None:
    server = live_server_with(db=pg_url)
    headers = {"Authorization": f"Bearer {server.token()}"}
    search = server.base_url + "/fhir/Patient?family=Nobody"
    check = {"patient": {"name": {"family": "Nobody"}}, "request": {"modality": "CT", "bodySite": "head"}}
    assert httpx.get(search, headers=headers).status_code == 200
    name = _database_of(pg_url)
    with pg_admin.connect() as admin:
        admin.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        admin.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                      {"name": name})
    try:
        time.sleep(6)  # past the token cache: the door itself must read the store
        away = [httpx.get(search, headers=headers, timeout=30),
                httpx.post(server.base_url + "/api/v1/duplicate-check", json=check, headers=headers, timeout=30),
                httpx.get(server.base_url + "/api/v1/alerts", headers=headers, timeout=30)]
        assert [a.status_code for a in away] == [503, 503, 503], [a.text[:200] for a in away]
        assert away[0].json()["resourceType"] == "OperationOutcome" and "retry-after" in away[0].headers
    finally:
        with pg_admin.connect() as admin:
            admin.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
    back = [httpx.get(search, headers=headers, timeout=30).status_code for _ in range(3)]
    assert back[-1] == 200, back
    assert httpx.post(server.base_url + "/api/v1/duplicate-check", json=check, headers=headers).status_code == 200
