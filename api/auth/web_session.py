"""Signed session cookies for people signed in to the web page, sign-in with audit, and brute-force slowdown.

A cookie is ``<payload>.<signature>``: the payload (base64url JSON: user id, username, a random session id, issued and
expiry times, a fingerprint of the password hash) signed with HMAC-SHA256 under ``settings.secret_key``. Nothing is kept
in process memory: the user row is read on every request, so deactivating a person or changing their password ends
their sessions at once. Signing out ends the session in the database (:class:`priorscan.tables.WebSessionEnded`):
the cookie is refused from then on, wherever it was copied to. The cookie is HttpOnly, SameSite=Strict (so other sites
cannot make the browser act), and Secure outside development and test.

Failed sign-ins are counted from the audit trail (shared by every worker): after a few failures for one username each
further attempt waits longer, and after many (for a username or an address) sign-in is refused for a while. Parallel
guesses cannot slip under that limit: before its password is checked, each attempt takes a number from a counter per
username and per address (:class:`priorscan.tables.SignInCounter`, one atomic ``INSERT ... ON CONFLICT DO UPDATE``),
and an attempt numbered past the limit is refused unchecked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, String, bindparam, delete, func, select, text
from sqlalchemy.orm import Session

from api.auth.accounts import DUMMY_PASSWORD_HASH, normalise_username, scopes_for_role, verify_password
from api.auth.principal import SESSION_COOKIE, Principal
from priorscan.audit import Agent, record
from priorscan.db import UTCDateTime, utcnow
from priorscan.tables import AuditEvent, SignInCounter, UserAccount, WebSessionEnded
from priorscan.unit_of_work import unit_of_work
from priorscan.writes import insert_unless_exists

if TYPE_CHECKING:
    from fastapi import Response

    from api.context import AppContext
    from priorscan.settings import Settings

_DOMAIN = b"priorscan-web-session-v1."

#: Failures within this window count towards slowdown and lock-out.
FAILURE_WINDOW = timedelta(minutes=15)
#: From this many recent failures for a username, each attempt waits ``SLOWDOWN_BASE_S * 2**(n - threshold)``.
SLOWDOWN_AFTER = 3
SLOWDOWN_BASE_S = 0.5
SLOWDOWN_MAX_S = 8.0
#: From this many failures for a username, or ``ADDRESS_LOCKOUT_AFTER`` from one address, sign-in is refused.
LOCKOUT_AFTER = 10
ADDRESS_LOCKOUT_AFTER = 50


# --- the cookie ---------------------------------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret_key: str, payload: str) -> str:
    return _b64(hmac.new(secret_key.encode(), _DOMAIN + payload.encode(), hashlib.sha256).digest())


def password_fingerprint(password_hash: str) -> str:
    """A short digest of the stored password hash: a changed password ends the sessions signed before."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def sign_session(settings: Settings, user: UserAccount, *, now: float | None = None) -> str:
    """A cookie value for ``user``, valid for ``settings.session_max_age_s`` from ``now``."""
    issued = int(now if now is not None else time.time())
    body = {"sub": user.id, "usr": user.username, "iat": issued, "exp": issued + settings.session_max_age_s,
            "pwf": password_fingerprint(user.password_hash), "sid": secrets.token_urlsafe(24)}
    payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
    return f"{payload}.{_signature(settings.secret_key, payload)}"


def read_session(settings: Settings, cookie: str, *, now: float | None = None) -> dict[str, Any] | None:
    """The payload of a genuine, unexpired cookie; None for anything else (tampered, expired, malformed)."""
    payload, sep, signature = cookie.partition(".")
    if not sep or not payload or len(cookie) > 4096:
        return None
    if not hmac.compare_digest(signature.encode(), _signature(settings.secret_key, payload).encode()):
        return None
    try:
        body = json.loads(_unb64(payload))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(body, dict) or not isinstance(body.get("exp"), int) or not isinstance(body.get("sub"), int) \
            or not isinstance(body.get("sid"), str) or not 0 < len(body["sid"]) <= 64:
        return None
    current = now if now is not None else time.time()
    if body["exp"] <= current or body.get("iat", 0) > current + 60:
        return None
    return body


def principal_from_cookie(ctx: AppContext, cookie: str, address: str | None) -> Principal | None:
    """The signed-in person a session cookie names, if it is genuine, unexpired and the account still active."""
    body = read_session(ctx.settings, cookie)
    if body is None:
        return None
    with unit_of_work(ctx.sessions) as session:
        user = session.get(UserAccount, body["sub"])
        ended = session.scalar(select(WebSessionEnded.session_id).where(WebSessionEnded.session_id == body["sid"]))
    if (ended is not None or user is None or not user.active or user.username != body.get("usr")
            or not hmac.compare_digest(password_fingerprint(user.password_hash), str(body.get("pwf", "")))):
        return None
    return principal_for(user, address)


def principal_for(user: UserAccount, address: str | None) -> Principal:
    """The principal of a signed-in ``user``: their role's scopes, at their trust."""
    return Principal("user", user.username, scopes_for_role(user.role), trust_ods=user.trust_ods, role=user.role,
                     address=address)


def secure_cookies(settings: Settings) -> bool:
    return settings.env not in ("development", "test")


def set_session_cookie(response: Response, settings: Settings, value: str) -> None:
    response.set_cookie(SESSION_COOKIE, value, max_age=settings.session_max_age_s, path="/", httponly=True,
                        samesite="strict", secure=secure_cookies(settings))


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=secure_cookies(settings))


# --- sign-in --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SignInResult:
    """What became of one sign-in attempt; ``cookie`` is set only on success."""

    ok: bool
    reason: str | None = None  # wrong-credentials | throttled
    cookie: str | None = None
    principal: Principal | None = None
    retry_after_s: int | None = None


def audit_name(username: str, known: bool) -> str:
    """How an attempt is named in the audit trail: the username if it exists, else a digest.

    People type their password into the username field; an unknown name is never written down as typed.
    """
    if known:
        return username
    return "unknown-user:" + hashlib.sha256(username.encode()).hexdigest()[:12]


def recent_failures(session: Session, *, name: str, address: str | None) -> tuple[int, int]:
    """Failed sign-ins within :data:`FAILURE_WINDOW` for ``name`` and from ``address``."""
    since = utcnow() - FAILURE_WINDOW
    base = select(func.count()).select_from(AuditEvent).where(
        AuditEvent.event_type == "login", AuditEvent.subtype == "sign-in", AuditEvent.outcome != "0",
        AuditEvent.recorded_at >= since)
    by_name = session.scalar(base.where(AuditEvent.agent_name == name)) or 0
    by_address = (session.scalar(base.where(AuditEvent.source_address == address)) or 0) if address else 0
    return int(by_name), int(by_address)


def slowdown_seconds(failures: int) -> float:
    """How long an attempt waits after ``failures`` recent failures for its username."""
    if failures < SLOWDOWN_AFTER:
        return 0.0
    return float(min(SLOWDOWN_BASE_S * 2 ** (failures - SLOWDOWN_AFTER), SLOWDOWN_MAX_S))


def lookup_attempt(ctx: AppContext, username: str, address: str | None) -> tuple[str, float, bool]:
    """For an attempt by ``username``: its audit name, the delay to impose, and whether it is locked out."""
    name = normalise_username(username)
    with unit_of_work(ctx.sessions) as session:
        known = session.scalars(select(UserAccount.id).where(UserAccount.username == name)).first() is not None
        who = audit_name(name, known)
        by_name, by_address = recent_failures(session, name=who, address=address)
    locked = by_name >= LOCKOUT_AFTER or by_address >= ADDRESS_LOCKOUT_AFTER
    return who, slowdown_seconds(by_name), locked


#: Take the next number of a counter, starting afresh when its window has passed (one statement: the database settles
#: parallel attempts; the same syntax on SQLite 3.35+ and PostgreSQL; all SET expressions read the old row).
_TAKE_NUMBER = text(
    "INSERT INTO sign_in_counter (key, window_started_at, attempts) VALUES (:key, :now, 1) "
    "ON CONFLICT (key) DO UPDATE SET "
    "attempts = CASE WHEN sign_in_counter.window_started_at < :since THEN 1 ELSE sign_in_counter.attempts + 1 END, "
    "window_started_at = CASE WHEN sign_in_counter.window_started_at < :since THEN :now "
    "ELSE sign_in_counter.window_started_at END "
    "RETURNING attempts").bindparams(bindparam("key", type_=String()), bindparam("now", type_=UTCDateTime()),
                                     bindparam("since", type_=UTCDateTime())).columns(attempts=Integer())


def _counter_keys(who: str, address: str | None) -> tuple[str, str | None]:
    return f"user:{who}"[:300], (f"address:{address}"[:300] if address else None)


def take_attempt_number(ctx: AppContext, who: str, address: str | None) -> bool:
    """Number this attempt for ``who`` and ``address``; True when it is within the limits and may be checked.

    Committed before the password is checked, so that of many parallel attempts only the allowed number get through.
    """
    now = utcnow()
    user_key, address_key = _counter_keys(who, address)
    with unit_of_work(ctx.sessions, write=True) as session:
        params = {"now": now, "since": now - FAILURE_WINDOW}
        by_name = session.execute(_TAKE_NUMBER, {**params, "key": user_key}).scalar_one()
        by_address = session.execute(_TAKE_NUMBER, {**params, "key": address_key}).scalar_one() if address_key else 0
    return by_name <= LOCKOUT_AFTER and by_address <= ADDRESS_LOCKOUT_AFTER


def _forget_attempts(session: Session, who: str) -> None:
    """A successful sign-in starts the username's count afresh (the address keeps its count)."""
    session.execute(delete(SignInCounter).where(SignInCounter.key == _counter_keys(who, None)[0]))


def sign_in(ctx: AppContext, username: str, password: str, address: str | None) -> SignInResult:
    """Check a username and password (after :func:`lookup_attempt` and any delay); audit the outcome either way.

    The audit event never holds the password, and names an unknown user by digest only.
    """
    name = normalise_username(username)
    with unit_of_work(ctx.sessions) as session:  # a read: the password is checked holding no writer's turn
        user = session.scalars(select(UserAccount).where(UserAccount.username == name)).first()
        who = audit_name(name, user is not None)
        if user is None:
            verify_password(password, DUMMY_PASSWORD_HASH)  # same cost as a wrong password
            failure: str | None = "unknown-user"
        elif not verify_password(password, user.password_hash):
            failure = "wrong-password"
        elif not user.active:
            failure = "inactive"
        else:
            failure = None
        if failure is not None or user is None:
            result = SignInResult(False, "wrong-credentials")
        else:
            result = SignInResult(True, cookie=sign_session(ctx.settings, user),
                                  principal=principal_for(user, address))
        user_id = user.id if user is not None else None
    with unit_of_work(ctx.sessions, write=True) as session:  # the outcome is audited before it is answered
        record(session, Agent("user", who, address), action="E", event_type="login", subtype="sign-in",
               outcome="0" if failure is None else "4", entity=f"user/{user_id}" if user_id is not None else None,
               detail={"failure": failure} if failure else None)
        if failure is None:
            _forget_attempts(session, who)
    return result


def audit_locked_out(ctx: AppContext, who: str, address: str | None) -> None:
    """Record an attempt refused unchecked; it does not itself prolong the lock-out."""
    with unit_of_work(ctx.sessions, write=True) as session:
        record(session, Agent("user", who, address), action="E", event_type="login", subtype="sign-in-refused",
               outcome="4", detail={"failure": "locked-out"})


def end_session(ctx: AppContext, cookie: str | None) -> bool:
    """End the session of a genuine ``cookie`` in the database (signing out); False when it names none.

    Sessions that would have expired by now are forgotten at the same time (the table holds live cookies only).
    """
    body = read_session(ctx.settings, cookie) if cookie else None
    if body is None:
        return False
    now = datetime.now(UTC)
    with unit_of_work(ctx.sessions, write=True) as session:
        insert_unless_exists(session, WebSessionEnded, {
            "session_id": body["sid"], "user_id": body["sub"], "ended_at": now,
            "expires_at": datetime.fromtimestamp(body["exp"], UTC)}, ("session_id",))
        session.execute(delete(WebSessionEnded).where(WebSessionEnded.expires_at < now))
    return True


def audit_sign_out(ctx: AppContext, principal: Principal) -> None:
    with unit_of_work(ctx.sessions, write=True) as session:
        record(session, principal.agent, action="E", event_type="login", subtype="sign-out")
