"""Bearer tokens and scopes at the HTTP boundary: 401 without a valid token, 403 without the scope."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

import httpx
import pytest
from api_factories import AppServer
from fastapi import APIRouter, Depends

from api.context import AppContext
from api.http.app import create_app
from api.http.deps import Principal, require


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
    from api.auth.accounts import issue_token
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

    from api.http.deps import token_hash
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


# --- the token cache -------------------------------------------------------------------------------------------------

def _principal(name: str = "c") -> Principal:
    return Principal("client", name, ("priorscan/alerts",))


def test_cache_entries_live_for_the_ttl_and_never_past_the_token_expiry() -> None:
    from datetime import UTC, datetime

    from api.http.deps import PrincipalCache

    now = [1_000.0]
    cache = PrincipalCache(ttl=5.0, clock=lambda: now[0])
    cache.put("a", _principal("a"))
    cache.put("b", _principal("b"), expires_at=datetime.fromtimestamp(1_002.0, UTC))
    now[0] = 1_001.9
    assert cache.get("a") == _principal("a") and cache.get("b") == _principal("b")
    now[0] = 1_002.0
    assert cache.get("b") is None  # the token expired before the entry would have
    now[0] = 1_004.9
    assert cache.get("a") is not None
    now[0] = 1_005.0
    assert cache.get("a") is None and len(cache) == 0


def test_cache_is_bounded_and_drops_the_least_recently_used() -> None:
    from api.http.deps import PrincipalCache

    cache = PrincipalCache(max_entries=2, clock=lambda: 0.0)
    cache.put("a", _principal("a"))
    cache.put("b", _principal("b"))
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put("c", _principal("c"))
    assert len(cache) == 2 and cache.get("b") is None and cache.get("a") is not None


def test_an_answer_read_before_a_revocation_is_not_kept() -> None:
    from api.http.deps import PrincipalCache

    cache = PrincipalCache(clock=lambda: 0.0)
    generation = cache.generation  # a lookup starts reading the database ...
    cache.clear()  # ... a revocation in this process clears the cache meanwhile ...
    cache.put("a", _principal("a"), generation=generation)  # ... so the (possibly stale) answer is dropped
    assert cache.get("a") is None


def _count_token_lookups(context: AppContext) -> list[str]:
    from sqlalchemy import event

    seen: list[str] = []

    def before(conn, cursor, statement, parameters, ctx, many) -> None:  # type: ignore[no-untyped-def]
        if "FROM api_client" in statement:
            seen.append(statement)

    event.listen(context.engine, "before_cursor_execute", before)
    return seen


def test_one_column_only_lookup_serves_repeated_requests(probe: httpx.Client, mint: Callable[[list[str]], str],
                                                         context: AppContext) -> None:
    token = mint(["priorscan/alerts"])
    lookups = _count_token_lookups(context)
    for _ in range(5):
        assert probe.get("/probe/alerts", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert len(lookups) == 1
    assert lookups[0].split("FROM")[0].count(",") == 2  # name, scopes, expires_at: not the whole row


def test_revocation_by_another_process_takes_effect_within_the_cache_lifetime(
        probe: httpx.Client, mint: Callable[[list[str]], str], context: AppContext,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import update

    from api.http import deps
    from api.http.deps import token_hash
    from priorscan.db import utcnow
    from priorscan.tables import ApiClient

    now = [10_000.0]
    monkeypatch.setattr(deps.TOKEN_CACHE, "clock", lambda: now[0])
    token = mint(["priorscan/alerts"])
    bearer = {"Authorization": f"Bearer {token}"}
    assert probe.get("/probe/alerts", headers=bearer).status_code == 200
    # another process revokes: plain SQL on its own connection, nothing this process's ORM sees
    with context.engine.begin() as connection:
        connection.execute(update(ApiClient).where(ApiClient.token_hash == token_hash(token))
                           .values(revoked_at=utcnow()))
    now[0] += deps.TOKEN_CACHE_SECONDS - 0.5
    assert probe.get("/probe/alerts", headers=bearer).status_code == 200  # the documented delay
    now[0] += 0.5
    assert probe.get("/probe/alerts", headers=bearer).status_code == 401


def test_revoking_in_this_process_takes_effect_at_once(probe: httpx.Client, mint: Callable[[list[str]], str],
                                                      context: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    from api.auth.accounts import revoke_tokens
    from api.http import deps
    from priorscan.audit import SYSTEM
    from priorscan.db import session_scope

    monkeypatch.setattr(deps.TOKEN_CACHE, "clock", lambda: 10_000.0)  # the cache never ages in this test
    token, other = mint(["priorscan/alerts"]), mint(["priorscan/alerts"])
    with session_scope(context.sessions) as session:
        from api.auth.accounts import issue_token

        kept = issue_token(session, "another-client", ["priorscan/alerts"], agent=SYSTEM)
    for each in (token, other, kept):
        assert probe.get("/probe/alerts", headers={"Authorization": f"Bearer {each}"}).status_code == 200
    with session_scope(context.sessions) as session:
        assert revoke_tokens(session, "probe-client", agent=SYSTEM) == 2
    assert probe.get("/probe/alerts", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert probe.get("/probe/alerts", headers={"Authorization": f"Bearer {other}"}).status_code == 401
    assert probe.get("/probe/alerts", headers={"Authorization": f"Bearer {kept}"}).status_code == 200



def test_an_orm_change_to_the_client_row_in_this_process_takes_effect_at_once(
        probe: httpx.Client, mint: Callable[[list[str]], str], context: AppContext,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import select

    from api.http import deps
    from api.http.deps import token_hash
    from priorscan.db import utcnow
    from priorscan.tables import ApiClient

    monkeypatch.setattr(deps.TOKEN_CACHE, "clock", lambda: 10_000.0)  # the cache never ages in this test
    token = mint(["priorscan/alerts"])
    bearer = {"Authorization": f"Bearer {token}"}
    assert probe.get("/probe/alerts", headers=bearer).status_code == 200
    with context.sessions() as session:  # the unit of work (not a bulk UPDATE): loaded, changed, committed
        session.scalars(select(ApiClient).where(ApiClient.token_hash == token_hash(token))).one().revoked_at = utcnow()
        session.commit()
    assert probe.get("/probe/alerts", headers=bearer).status_code == 401

# --- a PostgreSQL restart costs at most one failed request -----------------------------------------------------------

def _terminate_every_connection(pg_admin, database: str) -> int:  # type: ignore[no-untyped-def]
    """What a server restart does to the pool: every session of ``database`` ends (waiting until each is gone)."""
    from sqlalchemy import text

    with pg_admin.connect() as conn:
        pids = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid()"),
                            {"d": database}).scalars().all()
        for pid in pids:
            conn.execute(text("SELECT pg_terminate_backend(:p, 5000)"), {"p": pid})
    return len(pids)


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("notice_closed_connections", [True, False],
                         ids=["server-said-goodbye", "silently-dead"])  # the second: optimistic handling only
def test_a_postgresql_restart_costs_at_most_one_failed_request(  # type: ignore[no-untyped-def]
        live_server, pg_admin, notice_closed_connections: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    import concurrent.futures

    from sqlalchemy.engine import make_url

    import priorscan.db
    from api.http import deps

    server = live_server
    token = server.token(["priorscan/alerts"])
    url = server.base_url + "/api/v1/alerts?status=open"
    bearer = {"Authorization": f"Bearer {token}"}
    with concurrent.futures.ThreadPoolExecutor(4) as pool:  # several pooled connections
        assert set(pool.map(lambda _: httpx.get(url, headers=bearer).status_code, range(8))) == {200}
    assert _terminate_every_connection(pg_admin, make_url(server.context.engine.url).database) >= 1
    if not notice_closed_connections:
        monkeypatch.setattr(priorscan.db, "peer_closed", lambda _connection: False)
    deps.TOKEN_CACHE.clear()  # so that authentication, too, needs the database
    statuses = [httpx.get(url, headers=bearer).status_code for _ in range(6)]
    failures = [s for s in statuses if s != 200]
    assert len(failures) <= 1 and statuses[1:] == [200] * 5, statuses
    if notice_closed_connections:
        assert failures == []  # a closed connection is found at checkout, without a round trip


def test_a_cached_token_of_one_store_does_not_open_another(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from api.auth.accounts import issue_token
    from api.http.deps import PrincipalCache, cached_principal, lookup_token
    from priorscan.audit import SYSTEM
    from priorscan.db import open_store, session_factory

    first, second = (open_store(f"sqlite:///{tmp_path / name}") for name in ("first.db", "second.db"))
    try:
        with session_factory(first)() as session:
            token = issue_token(session, "order-entry", ["priorscan/duplicate-check"], agent=SYSTEM)
            session.commit()
        cache = PrincipalCache()
        assert lookup_token(first, token, cache=cache) is not None  # now remembered, for the first store
        assert cached_principal(first, token, None, cache=cache) is not None
        assert cached_principal(second, token, None, cache=cache) is None
        assert lookup_token(second, token, cache=cache) is None
    finally:
        first.dispose()
        second.dispose()
