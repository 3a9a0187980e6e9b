"""Authenticating a CDS client (EHR) by the signed JWT CDS Hooks 2.0 asks it to send as the bearer token.

The JWT is verified by :mod:`priorscan.jwt_assertion`, which SMART Backend Services shares: signed with RS384 or
ES384 (never ``none``, never HMAC) by a key in the JWKS of a trusted issuer (:class:`priorscan.tables.CdsTrustedIssuer`,
added by ``priorscan cds trust``); its ``aud`` must name the service being called (the audiences the caller passes,
configured, never the request's ``Host``), and it must carry ``iss``, ``aud``, ``exp``, ``iat`` and ``jti``. ``exp``
may lie at most five minutes ahead (the specification's limit). A ``jti`` is accepted once per issuer: it is stored
(:class:`priorscan.tables.CdsSeenJti`) in its own transaction before the request is served, so a replay is refused by
every worker even if the first request failed. Keys are taken from the stored JWKS only; a ``jku`` header is not
followed. Errors never echo the token or its claims.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Text, bindparam, cast, delete, select
from sqlalchemy.orm import Session, sessionmaker

from priorscan.errors import AuthError
from priorscan.jwks import public_keys
from priorscan.jwt_assertion import (
    KEY_TYPE,
    LEEWAY_S,
    AssertionRefused,
    algorithm_of,
    unverified_parts,
    verify_assertion,
)
from priorscan.tables import CdsSeenJti, CdsTrustedIssuer
from priorscan.unit_of_work import unit_of_work
from priorscan.writes import insert_unless_exists

#: Share of verifications that also delete expired jti rows (keeps the table small without a scheduler).
PURGE_SHARE = 0.01
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "jti")


@dataclass(frozen=True)
class CdsClient:
    """An EHR that proved who it is with a valid JWT."""

    issuer: str
    subject: str | None
    jti: str


def looks_like_jwt(token: str) -> bool:
    """A compact JWS has three base64url parts; priorscan's own tokens have none of its dots."""
    return token.count(".") == 2


#: The issuer's JWKS as stored text (JSON on SQLite, ``jsonb::text`` on PostgreSQL), the key of the parse cache.
_JWKS_OF = select(cast(CdsTrustedIssuer.jwks, Text)).where(CdsTrustedIssuer.issuer == bindparam("issuer"))


def _unauthorised(why: str, exc: BaseException | None = None) -> AuthError:
    error = AuthError(f"CDS client JWT refused: {why}", code="auth.cds")
    if exc is not None:
        error.__cause__ = exc
    return error


def verify_cds_jwt(token: str, sessions: sessionmaker[Session], *, audiences: Iterable[str],
                   now: datetime | None = None) -> CdsClient:
    """Verify a CDS client's JWT and consume its ``jti``.

    Parameters
    ----------
    token
        The compact JWT from ``Authorization: Bearer``.
    sessions
        Opens the short transaction that reads the issuer and records the ``jti``.
    audiences
        The URLs the ``aud`` claim may name (the service called, as configured).

    Raises
    ------
    AuthError
        ``auth.cds``, saying what is wrong but not what the token held.
    """
    now = now or datetime.now(UTC)
    try:  # the header and the (unverified) claims, only to choose the issuer's key: the verification checks them
        header, unverified = unverified_parts(token)
        algorithm = algorithm_of(header)
    except AssertionRefused as exc:
        raise _unauthorised(exc.reason, exc) from exc
    issuer = unverified.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise _unauthorised("no iss claim")
    with unit_of_work(sessions) as session:
        # the issuer is read on every call (trust withdrawn or keys rotated take effect at once); only the parsing
        # of its JWKS into key objects is cached, by the stored JWKS text
        jwks_text = session.connection().execute(_JWKS_OF, {"issuer": issuer}).scalar()
    if jwks_text is None:
        raise _unauthorised("the issuer is not trusted")
    candidates = [key for kid, kty, key in public_keys(jwks_text)
                  if kty == KEY_TYPE[algorithm] and (header.get("kid") is None or kid == header.get("kid"))]
    if not candidates:
        raise _unauthorised("no key of the issuer's JWKS fits the token (kid, key type)")
    try:
        claims: dict[str, Any] = verify_assertion(token, candidates, algorithm, issuer=issuer,
                                                  audiences=list(audiences), required=REQUIRED_CLAIMS, now=now)
    except AssertionRefused as exc:
        raise _unauthorised(exc.reason, exc) from exc
    expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
    jti = str(claims["jti"])
    # the jti is spent in a unit of its own: this process's writer turn, no SQLite lock held while the token was read
    with unit_of_work(sessions, write=True, immediate=False) as session:
        fresh = insert_unless_exists(session, CdsSeenJti, {"issuer": issuer, "jti": jti, "expires_at": expires},
                                     ("issuer", "jti"))
        if random.random() < PURGE_SHARE:
            session.execute(delete(CdsSeenJti).where(CdsSeenJti.expires_at < now - timedelta(seconds=LEEWAY_S)))
    if not fresh:
        raise _unauthorised("the jti was used before (replay)")
    return CdsClient(issuer, claims.get("sub"), jti)
