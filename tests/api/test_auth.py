"""Bearer tokens and scopes at the HTTP boundary: 401 without a valid token, 403 without the scope."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

import httpx
import pytest
from api_factories import AppServer
from fastapi import APIRouter, Depends

from api.app import create_app
from api.context import AppContext
from api.deps import Principal, require


def _probe_router() -> APIRouter:
    router = APIRouter()

    @router.get("/probe/patient-read")
    def patient_read(p: Annotated[Principal, Depends(require("system/Patient.r"))]) -> dict[str, str]:
        return {"who": p.name}

    @router.get("/probe/patient-create")
    def patient_create(p: Annotated[Principal, Depends(require("system/Patient.c"))]) -> dict[str, str]:
        return {"who": p.name}

    @router.get("/probe/duplicate-check")
    def duplicate_check(p: Annotated[Principal, Depends(require("priorscan/duplicate-check"))]) -> dict[str, str]:
        return {"who": p.name}

    @router.get("/probe/alerts")
    def alerts(p: Annotated[Principal, Depends(require("priorscan/alerts"))]) -> dict[str, str]:
        return {"who": p.name}

    return router


@pytest.fixture
def probe(context: AppContext) -> Iterator[httpx.Client]:
    """The real app plus probe routes guarded by scopes, served on a real socket."""
    app = create_app(context)
    app.include_router(_probe_router())
    with AppServer(app) as server, httpx.Client(base_url=server.base_url) as client:
        yield client


@pytest.fixture
def mint(context: AppContext) -> Callable[[list[str]], str]:
    from api.accounts import issue_token
    from priorscan.audit import SYSTEM
    from priorscan.db import session_scope

    def make(scopes: list[str]) -> str:
        with session_scope(context.sessions) as session:
            return issue_token(session, "probe-client", scopes, agent=SYSTEM)

    return make


@pytest.mark.parametrize("headers", [
    {},  # nothing
    {"Authorization": "Bearer ps_not-a-real-token"},  # unknown token
    {"Authorization": "Basic dXNlcjpwYXNz"},  # not a bearer token
    {"Authorization": "Bearer"},  # no token after the scheme
], ids=["none", "unknown", "basic", "empty"])
def test_401_without_a_valid_token(probe: httpx.Client, headers: dict[str, str]) -> None:
    response = probe.get("/probe/patient-read", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_revoked_token_is_refused(probe: httpx.Client, mint: Callable[[list[str]], str], context: AppContext) -> None:
    from sqlalchemy import update

    from api.deps import token_hash
    from priorscan.db import utcnow
    from priorscan.tables import ApiClient

    token = mint(["*"])
    assert probe.get("/probe/alerts", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    with context.sessions() as session:
        session.execute(update(ApiClient).where(ApiClient.token_hash == token_hash(token)).values(revoked_at=utcnow()))
        session.commit()
    assert probe.get("/probe/alerts", headers={"Authorization": f"Bearer {token}"}).status_code == 401


@pytest.mark.parametrize(("scopes", "path", "status"), [
    (["system/Patient.rs"], "/probe/patient-read", 200),
    (["system/Patient.rs"], "/probe/patient-create", 403),  # read is not create
    (["system/Patient.read"], "/probe/patient-read", 200),  # SMART v1
    (["system/Patient.write"], "/probe/patient-create", 200),  # SMART v1 write = cud
    (["system/*.cruds"], "/probe/patient-create", 200),
    (["system/*.cruds"], "/probe/duplicate-check", 403),  # FHIR scopes never grant priorscan's
    (["priorscan/duplicate-check"], "/probe/duplicate-check", 200),
    (["priorscan/duplicate-check"], "/probe/alerts", 403),  # the duplicate check and nothing else
    (["priorscan/duplicate-check"], "/probe/patient-read", 403),
    (["*"], "/probe/alerts", 200),
])
def test_scope_decides(probe: httpx.Client, mint: Callable[[list[str]], str], scopes: list[str], path: str,
                       status: int) -> None:
    response = probe.get(path, headers={"Authorization": f"Bearer {mint(scopes)}"})
    assert response.status_code == status, response.text


def test_health_and_page_need_no_token(probe: httpx.Client) -> None:
    assert probe.get("/healthz").status_code == 200
    assert probe.get("/ui/").status_code == 200
    assert probe.get("/ui/session").status_code == 401


def test_cli_token_works_on_a_real_server(live_server_sqlite, run_cli) -> None:  # type: ignore[no-untyped-def]
    status, out, _ = run_cli("--db", str(live_server_sqlite.context.engine.url), "token", "create", "--client",
                             "order-comms", "--scopes", "priorscan/duplicate-check")
    assert status == 0
    token = out.split()[-1]
    base = live_server_sqlite.base_url
    who = httpx.get(base + "/ui/session", headers={"Authorization": f"Bearer {token}"})
    assert who.status_code == 200
    assert who.json()["kind"] == "client" and who.json()["scopes"] == ["priorscan/duplicate-check"]
    assert httpx.get(base + "/ui/session", headers={"Authorization": "Bearer ps_wrong"}).status_code == 401


def test_alerts_contract_needs_the_alerts_scope(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    """GET /api/v1/alerts: 401 without a token, 403 with only the duplicate-check scope, 200 with priorscan/alerts."""
    base = live_server_sqlite.base_url + "/api/v1/alerts?status=open&trust=RTK"
    assert httpx.get(base).status_code == 401
    narrow = live_server_sqlite.token(["priorscan/duplicate-check"])
    assert httpx.get(base, headers={"Authorization": f"Bearer {narrow}"}).status_code == 403
    wide = live_server_sqlite.token(["priorscan/alerts"])
    response = httpx.get(base, headers={"Authorization": f"Bearer {wide}"})
    assert response.status_code == 200
    assert response.json()["alerts"] == []
