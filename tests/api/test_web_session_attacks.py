"""The web page's session under attack: parallel password guessing, a cookie replayed after signing out, a
justification record signed in another person's name, and requests forged from another origin."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from api_factories import PASSWORD, make_alert, make_user
from sqlalchemy import select

from api.auth import web_session
from api.http.deps import SESSION_COOKIE
from dedupe.tables import Alert
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


def _signed_in(base: str) -> dict[str, str]:
    login = httpx.post(base + "/ui/login", data={"username": "rad.one", "password": PASSWORD}, headers=JSON)
    assert login.status_code == 200, login.text
    return {SESSION_COOKIE: login.cookies[SESSION_COOKIE]}


def test_a_signed_in_person_cannot_sign_the_justification_record_as_someone_else(live_server) -> None:  # type: ignore[no-untyped-def]
    """Hazard log H-SEC-18: the alert actions took ``user`` from the body whoever sent it, so a radiographer signed
    in as ``rad.one`` could record an override as made by ``dr.consultant`` (the IR(ME)R justification record). A
    signed-in person is now always recorded as themselves; an API client still names the person it acts for."""
    context, base = live_server.context, live_server.base_url
    make_user(context)
    cookie = _signed_in(base)
    overridden, acknowledged, by_client = (make_alert(context) for _ in range(3))
    reason = {"system": "urn:priorscan:duplicate-override-reason", "code": "clinical-change"}
    answer = httpx.post(f"{base}/api/v1/alerts/{overridden}/override", cookies=cookie,
                        json={"reason": reason, "comment": "new symptoms", "user": "dr.consultant"})
    assert answer.status_code == 200, answer.text
    assert httpx.post(f"{base}/api/v1/alerts/{acknowledged}/acknowledge", cookies=cookie,
                      json={"user": "dr.consultant"}).status_code == 200
    engine = {"Authorization": f"Bearer {live_server.token(['priorscan/alerts'])}"}
    assert httpx.post(f"{base}/api/v1/alerts/{by_client}/acknowledge", headers=engine,
                      json={"user": "rad.two"}).status_code == 200
    with context.sessions() as session:
        assert [session.get(Alert, a).acted_by for a in (overridden, acknowledged, by_client)] == [
            "rad.one", "rad.one", "rad.two"]


@pytest.mark.parametrize(("headers", "why"), [
    ({"Origin": "https://intranet.example.nhs.uk"}, "another origin (a sibling host is the same site: Strict sends "
                                                     "the cookie)"),
    ({"Origin": "null"}, "an opaque origin (a sandboxed frame, a data: page)"),
    ({"Sec-Fetch-Site": "same-site"}, "the browser says another host of the same site"),
    ({"Sec-Fetch-Site": "cross-site"}, "the browser says another site"),
])
def test_a_state_change_forged_from_another_origin_with_the_session_cookie_is_403(  # type: ignore[no-untyped-def]
        live_server_sqlite, headers: dict[str, str], why: str) -> None:
    """Hazard log H-SEC-18: CDS Hooks feedback takes a ``text/plain`` body (a form may send it without a CORS
    preflight) and acted on the session cookie, so a page of another origin could settle the person's alerts; the
    alert actions too, for any origin the cookie was sent from. Now 403, and nothing is changed."""
    context, base = live_server_sqlite.context, live_server_sqlite.base_url
    make_user(context)
    cookie = _signed_in(base)
    alert_id = make_alert(context)
    feedback = '{"feedback": [{"card": "%s", "outcome": "accepted", "outcomeTimestamp": "2026-01-05T10:00:00Z"}]}'
    forged = httpx.post(f"{base}/cds-services/order-sign/feedback", cookies=cookie, content=feedback % alert_id,
                        headers={"Content-Type": "text/plain", **headers})
    assert forged.status_code == 403, why
    assert httpx.post(f"{base}/api/v1/alerts/{alert_id}/acknowledge", cookies=cookie, json={},
                      headers=headers).status_code == 403, why
    with context.sessions() as session:
        assert session.get(Alert, alert_id).status == "open"
    assert httpx.get(f"{base}/api/v1/alerts/{alert_id}", cookies=cookie, headers=headers).status_code == 200, \
        "a read is not a state change"


def test_the_page_itself_and_clients_with_a_token_are_not_refused_as_cross_site(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    """The control refuses forged requests only: the page's own (same origin), a client sending no Origin, and a
    bearer-token client whatever it says (no cookie: nothing to forge) act as before."""
    context, base = live_server_sqlite.context, live_server_sqlite.base_url
    make_user(context)
    cookie = _signed_in(base)
    same_origin, no_origin, by_token = (make_alert(context) for _ in range(3))
    assert httpx.post(f"{base}/api/v1/alerts/{same_origin}/acknowledge", cookies=cookie, json={},
                      headers={"Origin": base, "Sec-Fetch-Site": "same-origin"}).status_code == 200
    assert httpx.post(f"{base}/api/v1/alerts/{no_origin}/acknowledge", cookies=cookie, json={}).status_code == 200
    token = {"Authorization": f"Bearer {live_server_sqlite.token(['priorscan/alerts'])}",
             "Origin": "https://elsewhere.example"}
    assert httpx.post(f"{base}/api/v1/alerts/{by_token}/acknowledge", headers=token, json={}).status_code == 200
