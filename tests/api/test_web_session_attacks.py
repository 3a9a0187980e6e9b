"""The web page's sign-in under attack: parallel password guessing, and a cookie replayed after signing out."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
from api_factories import PASSWORD, make_user
from sqlalchemy import select

from api.auth import web_session
from api.http.deps import SESSION_COOKIE
from priorscan.tables import AuditEvent

JSON = {"Accept": "application/json"}


def _checked_attempts(context) -> int:  # type: ignore[no-untyped-def]
    with context.sessions() as session:
        return len(session.scalars(select(AuditEvent.id).where(AuditEvent.event_type == "login",
                                                               AuditEvent.subtype == "sign-in")).all())


def test_parallel_guesses_cannot_beat_the_lockout(live_server) -> None:  # type: ignore[no-untyped-def]
    """25 simultaneous wrong passwords: only LOCKOUT_AFTER of them are checked, on SQLite and PostgreSQL."""
    context = live_server.context
    make_user(context)
    url = live_server.base_url + "/ui/login"

    def guess(n: int) -> int:
        return httpx.post(url, data={"username": "rad.one", "password": f"guess-{n:04d}-x"}, headers=JSON,
                          timeout=60).status_code

    with ThreadPoolExecutor(25) as pool:
        statuses = list(pool.map(guess, range(25)))
    assert statuses.count(401) == web_session.LOCKOUT_AFTER, statuses
    assert statuses.count(429) == 25 - web_session.LOCKOUT_AFTER
    assert _checked_attempts(context) == web_session.LOCKOUT_AFTER, "the others were refused unchecked"
    right = httpx.post(url, data={"username": "rad.one", "password": PASSWORD}, headers=JSON, timeout=60)
    assert right.status_code == 429, "locked out, even with the right password"


def test_a_successful_sign_in_starts_the_count_afresh(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    context = live_server_sqlite.context
    make_user(context)
    url = live_server_sqlite.base_url + "/ui/login"
    for _ in range(2):
        assert httpx.post(url, data={"username": "rad.one", "password": PASSWORD}, headers=JSON).status_code == 200
    assert web_session.take_attempt_number(context, "rad.one", None), "two successes used no lasting number"


def test_a_cookie_is_worthless_after_signing_out(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    context = live_server_sqlite.context
    make_user(context)
    base = live_server_sqlite.base_url
    login = httpx.post(base + "/ui/login", data={"username": "rad.one", "password": PASSWORD}, headers=JSON)
    cookie = {SESSION_COOKIE: login.cookies[SESSION_COOKIE]}
    assert httpx.get(base + "/ui/session", cookies=cookie).status_code == 200
    second = httpx.post(base + "/ui/login", data={"username": "rad.one", "password": PASSWORD}, headers=JSON)
    other_device = {SESSION_COOKIE: second.cookies[SESSION_COOKIE]}
    assert httpx.post(base + "/ui/logout", cookies=cookie, headers=JSON).status_code == 204
    assert httpx.get(base + "/ui/session", cookies=cookie).status_code == 401, "the copied cookie is refused"
    assert httpx.get(base + "/api/v1/alerts", cookies=cookie).status_code == 401
    assert httpx.get(base + "/ui/session", cookies=other_device).status_code == 200, "only that session ended"
