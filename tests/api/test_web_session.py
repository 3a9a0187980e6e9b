"""Signed session cookies, sign-in and sign-out of the web page, its audit trail and brute-force slowdown."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from api_factories import PASSWORD, make_user
from fastapi import Response
from sqlalchemy import select, update

from api.auth import web_session
from api.auth.accounts import ROLE_SCOPES, hash_password
from api.context import AppContext
from api.http.deps import SESSION_COOKIE
from priorscan.settings import Settings
from priorscan.tables import AuditEvent, UserAccount


def _user(context: AppContext, username: str = "rad.one") -> UserAccount:
    with context.sessions() as session:
        user = session.scalars(select(UserAccount).where(UserAccount.username == username)).one()
        session.expunge(user)
        return user


def _audit(context: AppContext) -> list[AuditEvent]:
    with context.sessions() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.event_type == "login")
                                    .order_by(AuditEvent.id)))


# --- the cookie itself ----------------------------------------------------------------------------------------------

def test_cookie_round_trip_gives_the_users_principal(context: AppContext) -> None:
    make_user(context)
    cookie = web_session.sign_session(context.settings, _user(context))
    principal = web_session.principal_from_cookie(context, cookie, "10.0.0.1")
    assert principal is not None
    assert (principal.kind, principal.name, principal.role, principal.trust_ods) == ("user", "rad.one",
                                                                                     "radiographer", "RTK")
    assert set(principal.scopes) == {"priorscan/alerts", "priorscan/duplicate-check", "system/Patient.rs",
                                     "system/ImagingStudy.rs"}
    assert principal.address == "10.0.0.1"


def _flip(text: str, index: int) -> str:
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1:]


@pytest.mark.parametrize("tamper", [
    lambda c: _flip(c, 3),  # payload changed
    lambda c: _flip(c, len(c) - 2),  # signature changed
    lambda c: c.split(".")[0],  # signature removed
    lambda c: c.split(".")[0] + ".",  # empty signature
    lambda c: "." + c.split(".")[1],  # payload removed
    lambda c: c + "x" * 5000,  # oversized
    lambda c: "",
    lambda c: "not-a-cookie",
], ids=["payload", "signature", "no-signature", "empty-signature", "no-payload", "oversized", "empty", "garbage"])
def test_tampered_cookies_are_refused(context: AppContext, tamper) -> None:  # type: ignore[no-untyped-def]
    make_user(context)
    cookie = web_session.sign_session(context.settings, _user(context))
    assert web_session.principal_from_cookie(context, tamper(cookie), None) is None


def test_forged_payload_with_another_users_id_is_refused(context: AppContext) -> None:
    make_user(context, "rad.one")
    make_user(context, "boss", role="admin", trust=None)
    cookie = web_session.sign_session(context.settings, _user(context, "rad.one"))
    payload, signature = cookie.split(".")
    body = json.loads(web_session._unb64(payload))
    body["sub"] = _user(context, "boss").id
    forged = web_session._b64(json.dumps(body).encode()) + "." + signature
    assert web_session.principal_from_cookie(context, forged, None) is None


def test_cookie_signed_with_another_secret_is_refused(context: AppContext) -> None:
    make_user(context)
    other = Settings(db=context.settings.db, env="test", secret_key="another-secret-entirely-0123456789")
    cookie = web_session.sign_session(other, _user(context))
    assert web_session.principal_from_cookie(context, cookie, None) is None


def test_cookie_expires(context: AppContext) -> None:
    make_user(context)
    issued = time.time() - context.settings.session_max_age_s - 1
    cookie = web_session.sign_session(context.settings, _user(context), now=issued)
    assert web_session.read_session(context.settings, cookie) is None
    assert web_session.principal_from_cookie(context, cookie, None) is None
    fresh = web_session.sign_session(context.settings, _user(context), now=time.time() - 60)
    assert web_session.principal_from_cookie(context, fresh, None) is not None


@pytest.mark.parametrize("change", [
    {"active": False},  # deactivated: sessions end at once
    {"password_hash": hash_password("a brand new password")},  # password changed
    {"username": "renamed"},
], ids=["deactivated", "password-changed", "renamed"])
def test_account_changes_end_existing_sessions(context: AppContext, change: dict[str, object]) -> None:
    make_user(context)
    user = _user(context)
    cookie = web_session.sign_session(context.settings, user)
    with context.sessions() as session:
        session.execute(update(UserAccount).where(UserAccount.id == user.id).values(**change))
        session.commit()
    assert web_session.principal_from_cookie(context, cookie, None) is None


@pytest.mark.parametrize(("env", "secure"), [("development", False), ("test", False), ("production", True)])
def test_cookie_attributes(env: str, secure: bool) -> None:
    settings = Settings(env=env, secret_key="a-real-secret-for-this-test-0123456789")
    response = Response()
    web_session.set_session_cookie(response, settings, "value")
    header = response.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=strict" in header and "path=/" in header
    assert f"max-age={settings.session_max_age_s}" in header
    assert ("secure" in header.split("; ")) is secure


@pytest.mark.parametrize(("role", "scopes"), [
    ("radiographer", ["priorscan/alerts", "priorscan/duplicate-check", "system/Patient.rs", "system/ImagingStudy.rs"]),
    ("radiologist", ["priorscan/alerts", "priorscan/duplicate-check", "system/Patient.rs", "system/ImagingStudy.rs"]),
    ("clinician", ["priorscan/alerts", "priorscan/duplicate-check", "system/Patient.rs", "system/ImagingStudy.rs"]),
    ("analyst", ["priorscan/analytics"]),
    ("admin", ["*"]),
])
def test_roles_map_to_scopes(role: str, scopes: list[str]) -> None:
    assert list(ROLE_SCOPES[role]) == scopes


def test_slowdown_grows_and_is_capped() -> None:
    delays = [web_session.slowdown_seconds(n) for n in range(12)]
    assert delays[:web_session.SLOWDOWN_AFTER] == [0.0] * web_session.SLOWDOWN_AFTER
    assert delays == sorted(delays) and max(delays) == web_session.SLOWDOWN_MAX_S


# --- over HTTP ------------------------------------------------------------------------------------------------------

JSON = {"Accept": "application/json"}


def test_sign_in_sets_a_cookie_that_authenticates(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    context = live_server_sqlite.context
    make_user(context)
    base = live_server_sqlite.base_url
    response = httpx.post(base + "/ui/login", data={"username": "Rad.One", "password": PASSWORD}, headers=JSON)
    assert response.status_code == 200, response.text
    assert response.json()["trust"] == "RTK" and response.json()["role"] == "radiographer"
    header = response.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=strict" in header and "secure" not in header.split("; ")
    cookie = {SESSION_COOKIE: response.cookies[SESSION_COOKIE]}
    session = httpx.get(base + "/ui/session", cookies=cookie)
    assert session.status_code == 200 and session.json()["username"] == "rad.one"
    reasons = httpx.get(base + "/ui/override-reasons", cookies=cookie)
    assert reasons.status_code == 200 and len(reasons.json()) >= 4
    tampered = {SESSION_COOKIE: _flip(cookie[SESSION_COOKIE], 5)}
    assert httpx.get(base + "/ui/session", cookies=tampered).status_code == 401
    (event,) = _audit(context)
    assert (event.subtype, event.outcome, event.agent_name) == ("sign-in", "0", "rad.one")


def test_failed_sign_in_is_audited_without_the_password(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    context = live_server_sqlite.context
    make_user(context)
    base = live_server_sqlite.base_url
    wrong = httpx.post(base + "/ui/login", data={"username": "rad.one", "password": "guess-1234"}, headers=JSON)
    assert wrong.status_code == 401 and SESSION_COOKIE not in wrong.cookies
    typo = "my secret passphrase"  # a password typed into the username field
    unknown = httpx.post(base + "/ui/login", data={"username": typo, "password": "x"}, headers=JSON)
    assert unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]  # does not tell which was wrong
    events = _audit(context)
    assert [(e.outcome, e.subtype) for e in events] == [("4", "sign-in"), ("4", "sign-in")]
    assert events[0].agent_name == "rad.one"
    assert events[1].agent_name.startswith("unknown-user:")
    text = json.dumps([[e.agent_name, e.entity, e.detail] for e in events])
    assert "guess-1234" not in text and typo not in text


def test_form_post_redirects(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    make_user(live_server_sqlite.context)
    base = live_server_sqlite.base_url
    ok = httpx.post(base + "/ui/login", data={"username": "rad.one", "password": PASSWORD})
    assert ok.status_code == 303 and ok.headers["location"] == "/ui/" and SESSION_COOKIE in ok.cookies
    bad = httpx.post(base + "/ui/login", data={"username": "rad.one", "password": "wrong-password"})
    assert bad.status_code == 303 and bad.headers["location"] == "/ui/?signin=failed"


def test_sign_out_clears_the_cookie(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    context = live_server_sqlite.context
    make_user(context)
    base = live_server_sqlite.base_url
    login = httpx.post(base + "/ui/login", data={"username": "rad.one", "password": PASSWORD}, headers=JSON)
    cookie = {SESSION_COOKIE: login.cookies[SESSION_COOKIE]}
    out = httpx.post(base + "/ui/logout", cookies=cookie, headers=JSON)
    assert out.status_code == 204
    assert f'{SESSION_COOKIE}=""' in out.headers["set-cookie"] and "max-age=0" in out.headers["set-cookie"].lower()
    assert [e.subtype for e in _audit(context)] == ["sign-in", "sign-out"]


def test_cross_site_sign_in_is_refused(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    make_user(live_server_sqlite.context)
    response = httpx.post(live_server_sqlite.base_url + "/ui/login", data={"username": "rad.one",
                                                                         "password": PASSWORD},
                          headers={**JSON, "Origin": "https://evil.example"})
    assert response.status_code == 403


def test_repeated_failures_slow_down_then_lock_out(live_server_sqlite, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(web_session, "SLOWDOWN_AFTER", 2)
    monkeypatch.setattr(web_session, "SLOWDOWN_BASE_S", 0.2)
    monkeypatch.setattr(web_session, "SLOWDOWN_MAX_S", 0.2)
    monkeypatch.setattr(web_session, "LOCKOUT_AFTER", 4)
    context = live_server_sqlite.context
    make_user(context)
    url = live_server_sqlite.base_url + "/ui/login"
    timings = []
    for attempt in range(4):
        started = time.monotonic()
        response = httpx.post(url, data={"username": "rad.one", "password": f"wrong-{attempt}"}, headers=JSON)
        timings.append(time.monotonic() - started)
        assert response.status_code == 401
    assert min(timings[2:]) >= 0.2 > 0  # the third and later attempts wait
    locked = httpx.post(url, data={"username": "rad.one", "password": PASSWORD}, headers=JSON)
    assert locked.status_code == 429 and "Retry-After" in locked.headers  # even the right password
    assert SESSION_COOKIE not in locked.cookies
    other = httpx.post(url, data={"username": "someone.else", "password": "whatever-1"}, headers=JSON)
    assert other.status_code == 401  # another username is not locked out
    assert _audit(context)[-2].subtype == "sign-in-refused"
