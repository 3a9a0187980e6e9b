"""Authenticating a CDS client (EHR) by the signed JWT CDS Hooks 2.0 asks it to send as the bearer token.

The JWT must be signed with RS384 or ES384 (never ``none``, never HMAC) by a key in the JWKS of a trusted issuer
(:class:`priorscan.tables.CdsTrustedIssuer`, added by ``priorscan cds trust``); its ``aud`` must name the service
being called, and it must carry ``iss``, ``aud``, ``exp``, ``iat`` and ``jti``. ``exp`` may lie at most five minutes
ahead (the specification's limit). A ``jti`` is accepted once per issuer: it is stored
(:class:`priorscan.tables.CdsSeenJti`) in its own transaction before the request is served, so a replay is refused by
every worker even if the first request failed. Keys are taken from the stored JWKS only; a ``jku`` header is not
followed. Errors never echo the token or its claims.
"""

from __future__ import annotations

import base64
import json
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import Text, bindparam, cast, delete, select
from sqlalchemy.orm import Session, sessionmaker

from priorscan.errors import AuthError
from priorscan.jwks import public_keys
from priorscan.tables import CdsSeenJti, CdsTrustedIssuer
from priorscan.writes import insert_unless_exists, one_writer

ALGORITHMS = ("RS384", "ES384")
_KEY_TYPE = {"RS384": "RSA", "ES384": "EC"}
MAX_LIFETIME = timedelta(minutes=5)
LEEWAY_S = 60
#: Share of verifications that also delete expired jti rows (keeps the table small without a scheduler).
PURGE_SHARE = 0.01


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


_SEGMENT = re.compile(r"[A-Za-z0-9_-]+={0,2}")


def _json_segment(segment: str) -> dict[str, Any]:
    if not _SEGMENT.fullmatch(segment):
        raise ValueError("not base64url")
    value = json.loads(base64.urlsafe_b64decode(segment.rstrip("=") + "=" * (-len(segment.rstrip("=")) % 4)))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a compact JWS, read without verifying anything (ValueError when malformed).

    A plain base64url + JSON read: PyJWT's own unverified decode checks every character in Python, and the verified
    decode that follows does it again.
    """
    header, payload, _signature = token.split(".")
    return _json_segment(header), _json_segment(payload)


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
        The URLs the ``aud`` claim may name (the service called, as seen from the client).

    Raises
    ------
    AuthError
        ``auth.cds``, saying what is wrong but not what the token held.
    """
    now = now or datetime.now(UTC)
    try:  # the header and the (unverified) claims, only to choose the issuer's key: jwt.decode verifies them
        header, unverified = _unverified_parts(token)
    except ValueError as exc:
        raise _unauthorised("not a well-formed JWT", exc) from exc
    algorithm = header.get("alg")
    if algorithm not in ALGORITHMS:
        raise _unauthorised("the algorithm must be RS384 or ES384")
    issuer = unverified.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise _unauthorised("no iss claim")
    with sessions() as session:
        # the issuer is read on every call (trust withdrawn or keys rotated take effect at once); only the parsing
        # of its JWKS into key objects is cached, by the stored JWKS text
        jwks_text = session.connection().execute(_JWKS_OF, {"issuer": issuer}).scalar()
        if jwks_text is None:
            raise _unauthorised("the issuer is not trusted")
        candidates = [key for kid, kty, key in public_keys(jwks_text)
                      if kty == _KEY_TYPE[algorithm] and (header.get("kid") is None or kid == header.get("kid"))]
        if not candidates:
            raise _unauthorised("no key of the issuer's JWKS fits the token (kid, key type)")
        claims = _decode(token, candidates, algorithm, issuer, list(audiences))
        expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
        if expires - now > MAX_LIFETIME + timedelta(seconds=LEEWAY_S):
            raise _unauthorised("exp lies more than five minutes ahead")
        jti = str(claims["jti"])
        if not jti or len(jti) > 200:
            raise _unauthorised("jti must be 1 to 200 characters")
        with one_writer(session):
            fresh = insert_unless_exists(session, CdsSeenJti, {"issuer": issuer, "jti": jti, "expires_at": expires},
                                         ("issuer", "jti"))
            if random.random() < PURGE_SHARE:
                session.execute(delete(CdsSeenJti).where(CdsSeenJti.expires_at < now - timedelta(seconds=LEEWAY_S)))
            session.commit()
    if not fresh:
        raise _unauthorised("the jti was used before (replay)")
    return CdsClient(issuer, claims.get("sub"), jti)


def _decode(token: str, keys: list[Any], algorithm: str, issuer: str, audiences: list[str]) -> dict[str, Any]:
    last: Exception | None = None
    for key in keys:
        try:
            return jwt.decode(token, key, algorithms=[algorithm], audience=audiences, issuer=issuer, leeway=LEEWAY_S,
                              options={"require": ["iss", "aud", "exp", "iat", "jti"]})
        except jwt.InvalidSignatureError as exc:
            last = exc
            continue
        except jwt.ExpiredSignatureError as exc:
            raise _unauthorised("the token has expired", exc) from exc
        except jwt.InvalidAudienceError as exc:
            raise _unauthorised("aud does not name this service", exc) from exc
        except jwt.ImmatureSignatureError as exc:
            raise _unauthorised("iat or nbf lies in the future", exc) from exc
        except jwt.MissingRequiredClaimError as exc:
            raise _unauthorised(f"the {exc.claim} claim is missing", exc) from exc
        except jwt.PyJWTError as exc:
            raise _unauthorised(f"invalid token ({type(exc).__name__})", exc) from exc
    raise _unauthorised("the signature does not verify", last)
