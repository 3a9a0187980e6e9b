"""SMART Backend Services (SMART App Launch 2.x): the client-credentials grant behind ``POST /oauth2/token``.

A registered backend client (:class:`priorscan.tables.SmartBackendClient`, added by ``priorscan smart register``)
authenticates with a client assertion (RFC 7523): a JWT signed RS384 or ES384 by a key of its JWKS, with
``iss`` = ``sub`` = its client id, ``aud`` = the token endpoint's URL, ``exp`` at most five minutes ahead and a
``jti`` never used before (kept in :class:`priorscan.tables.SmartSeenJti` until the assertion expires, so a replay is
refused by every worker). It is granted the scopes it asks for that its registration covers, as an access token
that works like one from ``priorscan token create`` (an ``api_client`` row holding only the token's hash) but expires
after :data:`ACCESS_TOKEN_SECONDS`.

Errors are :class:`OAuthError` with the RFC 6749 §5.2 codes; every request and its outcome is audited. Neither the
assertion, nor its claims beyond the client id, nor the access token appear in an error, a log line or the audit.

The assertion is read and verified by :mod:`priorscan.jwt_assertion`, which CDS Hooks shares. Keys come from the
stored JWKS or from the registered JWKS URL (fetched with a short timeout, kept for
:data:`JWKS_URL_CACHE_SECONDS`, fetched again early when a ``kid`` is not found, so key rotation works). A ``jku``
header must name the registered JWKS URL; it is never followed otherwise.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from api.auth import scopes as scope_rules
from api.auth.accounts import add_token
from priorscan.audit import Agent, record
from priorscan.errors import AuthError, InputError
from priorscan.jwks import check_jwks, public_keys
from priorscan.jwt_assertion import (
    ALGORITHMS,
    KEY_TYPE,
    LEEWAY_S,
    AssertionRefused,
    unverified_parts,
    verify_assertion,
)
from priorscan.tables import ApiClient, SmartBackendClient, SmartSeenJti
from priorscan.unit_of_work import unit_of_work
from priorscan.writes import insert_unless_exists

GRANT_TYPE = "client_credentials"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "jti")
#: The shared verifier's reasons in the words of RFC 7523 clients.
_SMART_WORDING = {"the token has expired": "the client assertion has expired",
                  "aud does not name this service": "aud must be the token endpoint's URL",
                  "the signature does not verify": "the client assertion's signature does not verify"}
#: Lifetime of an issued access token.
ACCESS_TOKEN_SECONDS = 300
JWKS_URL_CACHE_SECONDS = 300.0
#: A JWKS URL is fetched again for an unknown ``kid`` only when its copy is at least this old (no fetch storms).
JWKS_REFETCH_AFTER_S = 30.0
JWKS_FETCH_TIMEOUT_S = 5.0


class OAuthError(AuthError):
    """A refused token request: ``error`` is the RFC 6749 §5.2 code, the message its ``error_description``."""

    code = "auth.oauth"

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error  # invalid_request | invalid_client | invalid_scope | unsupported_grant_type

    @property
    def status_code(self) -> int:
        return 401 if self.error == "invalid_client" else 400

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.message}


@dataclass(frozen=True)
class IssuedToken:
    """The answer to a successful token request (the token is shown to the client once, never stored)."""

    access_token: str
    expires_in: int
    scopes: list[str]
    client_id: str

    def body(self) -> dict[str, Any]:
        return {"access_token": self.access_token, "token_type": "bearer", "expires_in": self.expires_in,
                "scope": " ".join(self.scopes)}


# --- keys ----------------------------------------------------------------------------------------------------------

def fetch_jwks(url: str) -> dict[str, Any]:
    """The public keys published at ``url`` (checked like a JWKS file); :class:`InputError` when unusable."""
    try:
        response = httpx.get(url, timeout=JWKS_FETCH_TIMEOUT_S, follow_redirects=False,
                             headers={"Accept": "application/json"})
        response.raise_for_status()
        data = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise InputError(f"the JWKS URL could not be read ({type(exc).__name__})", code="input.jwks") from exc
    if not isinstance(data, dict):
        raise InputError("the JWKS URL did not answer with a JSON object", code="input.jwks")
    return check_jwks(data).jwks


class JwksUrlCache:
    """JWKS fetched from clients' URLs, each kept for ``ttl`` seconds; ``fetch`` and ``clock`` are injectable."""

    def __init__(self, fetch: Callable[[str], dict[str, Any]] = fetch_jwks, *, ttl: float = JWKS_URL_CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.fetch = fetch
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, url: str, *, fresher_than: float | None = None) -> dict[str, Any]:
        """The JWKS at ``url``; fetched when absent, older than ``ttl``, or older than ``fresher_than`` seconds."""
        now = self.clock()
        with self._lock:
            entry = self._entries.get(url)
        limit = self.ttl if fresher_than is None else min(self.ttl, fresher_than)
        if entry is not None and now - entry[0] < limit:
            return entry[1]
        jwks = self.fetch(url)
        with self._lock:
            self._entries[url] = (now, jwks)
        return jwks


JWKS_URLS = JwksUrlCache()


# --- the grant -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Registration:
    client_id: str
    jwks: dict[str, Any] | None
    jwks_url: str | None
    scopes: list[str]


def _required(form: Mapping[str, str], name: str) -> str:
    value = form.get(name, "")
    if not value:
        raise OAuthError("invalid_request", f"the {name} parameter is required")
    return value


def _claimed_client(assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        return unverified_parts(assertion)
    except AssertionRefused as exc:
        raise OAuthError("invalid_client", "the client assertion is not a well-formed JWT") from exc


def _registration(session: Session, client_id: str) -> _Registration:
    row = session.execute(select(SmartBackendClient.client_id, SmartBackendClient.jwks, SmartBackendClient.jwks_url,
                                 SmartBackendClient.scopes, SmartBackendClient.disabled_at)
                          .where(SmartBackendClient.client_id == client_id)).first()
    if row is None or row.disabled_at is not None:
        raise OAuthError("invalid_client", "unknown or disabled client")
    return _Registration(row.client_id, row.jwks, row.jwks_url, list(row.scopes))


def _candidate_keys(registration: _Registration, header: dict[str, Any], jwks_urls: JwksUrlCache) -> list[Any]:
    algorithm, kid = header["alg"], header.get("kid")
    jku = header.get("jku")
    if jku is not None and jku != registration.jwks_url:
        raise OAuthError("invalid_client", "jku does not name the client's registered JWKS URL")

    def matching(jwks: dict[str, Any]) -> list[Any]:
        return [key for key_id, kty, key in public_keys(json.dumps(jwks, sort_keys=True))
                if kty == KEY_TYPE[algorithm] and (kid is None or key_id == kid)]

    if registration.jwks is not None:
        keys = matching(registration.jwks)
    else:
        assert registration.jwks_url is not None
        try:
            keys = matching(jwks_urls.get(registration.jwks_url))
            if not keys:  # perhaps the client rotated its keys: look again, unless we just did
                keys = matching(jwks_urls.get(registration.jwks_url, fresher_than=JWKS_REFETCH_AFTER_S))
        except InputError as exc:
            raise OAuthError("invalid_client", "the client's JWKS URL could not be read") from exc
    if not keys:
        raise OAuthError("invalid_client", "no key of the client's JWKS fits the assertion (kid, key type)")
    return keys


def _verified_claims(assertion: str, keys: list[Any], algorithm: str, client_id: str,
                     token_url: str, now: datetime) -> dict[str, Any]:
    try:
        return verify_assertion(assertion, keys, algorithm, issuer=client_id, audiences=[token_url],
                                required=REQUIRED_CLAIMS, now=now)
    except AssertionRefused as exc:
        raise OAuthError("invalid_client", _SMART_WORDING.get(exc.reason, exc.reason)) from exc


def granted_scopes(requested: str, registered: list[str]) -> list[str]:
    """The requested scopes (space-separated) that the registration covers, in the order asked, each once."""
    wanted = [s for s in dict.fromkeys(requested.split()) if s != scope_rules.ADMIN]
    return [s for s in wanted if scope_rules.covers(registered, s)]


def audit_refusal(sessions: sessionmaker[Session], client_id: str | None, error: OAuthError,
                   address: str | None) -> None:
    """Record a refused token request (outcome 4), naming the client it claimed to be, never its assertion."""
    agent = Agent("client", (client_id or "unknown")[:200], address)
    with unit_of_work(sessions, write=True) as session:
        record(session, agent, action="E", event_type="security", subtype="oauth-token", outcome="4",
               entity=f"smart-client/{client_id[:200]}" if client_id else None,
               detail={"error": error.error, "reason": error.message})


def exchange(sessions: sessionmaker[Session], form: Mapping[str, str], *, token_url: str,
             address: str | None = None, now: datetime | None = None,
             jwks_urls: JwksUrlCache | None = None) -> IssuedToken:
    """Answer one client-credentials token request, auditing it whatever the outcome.

    Parameters
    ----------
    sessions
        Opens the short transactions that read the registration and record the jti, the token and the audit.
    form
        The request's form parameters (each given at most once).
    token_url
        The token endpoint's URL as the client reaches it: the only ``aud`` accepted.
    address
        The client's network address, for the audit.

    Raises
    ------
    OAuthError
        With the RFC 6749 code (``invalid_client`` for every problem with the assertion or the client).
    """
    now = now or datetime.now(UTC)
    client_id: str | None = None
    try:
        grant_type = _required(form, "grant_type")
        if grant_type != GRANT_TYPE:
            raise OAuthError("unsupported_grant_type", f"only grant_type={GRANT_TYPE} is supported")
        assertion_type = _required(form, "client_assertion_type")
        assertion = _required(form, "client_assertion")
        requested = _required(form, "scope")
        if assertion_type != ASSERTION_TYPE:
            raise OAuthError("invalid_client", f"client_assertion_type must be {ASSERTION_TYPE}")
        header, unverified = _claimed_client(assertion)
        issuer = unverified.get("iss")
        if isinstance(issuer, str) and 0 < len(issuer) <= 200:
            client_id = issuer
        if header.get("alg") not in ALGORITHMS:
            raise OAuthError("invalid_client", "the client assertion must be signed RS384 or ES384")
        if client_id is None:
            raise OAuthError("invalid_client", "the client assertion has no usable iss claim")
        if unverified.get("sub") != client_id:
            raise OAuthError("invalid_client", "sub must equal iss (the client id)")
        with unit_of_work(sessions) as session:
            registration = _registration(session, client_id)
        keys = _candidate_keys(registration, header, jwks_urls or JWKS_URLS)
        claims = _verified_claims(assertion, keys, header["alg"], client_id, token_url, now)
        scopes = granted_scopes(requested, registration.scopes)
        return _issue(sessions, registration, claims, requested, scopes, address=address, now=now)
    except OAuthError as error:
        audit_refusal(sessions, client_id, error, address)
        raise


def _issue(sessions: sessionmaker[Session], registration: _Registration, claims: dict[str, Any], requested: str,
           scopes: list[str], *, address: str | None, now: datetime) -> IssuedToken:
    client_id = registration.client_id
    assertion_expires = datetime.fromtimestamp(int(claims["exp"]), UTC) + timedelta(seconds=LEEWAY_S)
    with unit_of_work(sessions, write=True) as session:
        fresh = insert_unless_exists(session, SmartSeenJti, {"client_id": client_id, "jti": claims["jti"],
                                                             "expires_at": assertion_expires}, ("client_id", "jti"))
        if not fresh:  # raised inside the unit: nothing is kept
            raise OAuthError("invalid_client", "the client assertion's jti was used before (replay)")
        if scopes:
            # keep both tables small without a scheduler: expired rows go (both indexed by expiry). On the
            # connection, not through the ORM: dropping expired tokens is no revocation, so the token cache stays
            connection, stale = session.connection(), now - timedelta(seconds=LEEWAY_S)
            connection.execute(delete(SmartSeenJti).where(SmartSeenJti.expires_at < stale))
            connection.execute(delete(ApiClient).where(ApiClient.expires_at < stale))
            token, row = add_token(session, client_id, scopes,
                                   expires_at=now + timedelta(seconds=ACCESS_TOKEN_SECONDS))
            record(session, Agent("client", client_id, address), action="E", event_type="security",
                   subtype="oauth-token", entity=f"api-client/{row.id}",
                   detail={"client_id": client_id, "requested": requested.split()[:50], "granted": scopes,
                           "expires_in": ACCESS_TOKEN_SECONDS})
    if not scopes:  # raised after the unit committed: the assertion is spent even when no scope can be granted
        raise OAuthError("invalid_scope", "none of the requested scopes is allowed for this client")
    return IssuedToken(token, ACCESS_TOKEN_SECONDS, scopes, client_id)
