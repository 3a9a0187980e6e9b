"""Signed JWT assertions, as SMART Backend Services (client assertions, :mod:`api.auth.oauth`) and CDS Hooks 2.0 (the
EHR's bearer JWT, :mod:`dedupe.cds_auth`) both use them: one reading of the token and one verification.

The rules they share: the signature is RS384 or ES384 (never ``none``, never HMAC) by one of the caller's registered
public keys (chosen by ``kid`` and key type; a ``jku`` is never followed from here); ``iss`` is the caller, ``aud``
one of the addresses the caller must name (never taken from the request's ``Host``: the callers pass configured
ones), the claims the protocol requires are present, ``exp`` lies at most five minutes ahead, ``jti`` is a string of
1 to :data:`MAX_JTI_LENGTH` characters. Each protocol then records the ``jti`` in a table of its own (a replay is
refused by every worker) and says what is wrong in its own words: :class:`AssertionRefused` carries a reason that
never quotes the token or its claims.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

ALGORITHMS = ("RS384", "ES384")
#: The JWK key type each algorithm needs.
KEY_TYPE = {"RS384": "RSA", "ES384": "EC"}
MAX_LIFETIME = timedelta(minutes=5)
LEEWAY_S = 60
MAX_JTI_LENGTH = 200

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+={0,2}")


class AssertionRefused(Exception):
    """A JWT assertion that does not verify; ``reason`` says why without quoting it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _json_segment(segment: str) -> dict[str, Any]:
    if not _SEGMENT.fullmatch(segment):
        raise ValueError("not base64url")
    value = json.loads(base64.urlsafe_b64decode(segment.rstrip("=") + "=" * (-len(segment.rstrip("=")) % 4)))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a compact JWS, read without verifying anything, only to choose the caller's keys.

    Raises
    ------
    AssertionRefused
        When the token is not three base64url parts holding JSON objects.
    """
    try:
        header, payload, _signature = token.split(".")
        return _json_segment(header), _json_segment(payload)
    except (ValueError, RecursionError) as exc:
        raise AssertionRefused("not a well-formed JWT") from exc


def algorithm_of(header: dict[str, Any]) -> str:
    """The header's ``alg`` if it is one of :data:`ALGORITHMS`."""
    algorithm = header.get("alg")
    if algorithm not in ALGORITHMS:
        raise AssertionRefused("the algorithm must be RS384 or ES384")
    return str(algorithm)


def verify_assertion(token: str, keys: Sequence[Any], algorithm: str, *, issuer: str, audiences: Sequence[str],
                     required: Sequence[str], now: datetime | None = None) -> dict[str, Any]:
    """The verified claims of ``token``, signed by one of ``keys``.

    Parameters
    ----------
    keys
        The caller's public keys that fit the header (``kid``, key type).
    issuer
        The ``iss`` (and, for SMART, ``sub``) the token must carry.
    audiences
        The addresses ``aud`` may name: configured, never read from the request.
    required
        The claims the protocol requires.

    Raises
    ------
    AssertionRefused
        With the reason (expired, wrong audience, signature, ...).
    """
    now = now or datetime.now(UTC)
    for key in keys:
        try:
            claims: dict[str, Any] = jwt.decode(token, key, algorithms=[algorithm], audience=list(audiences),
                                                issuer=issuer, leeway=LEEWAY_S,
                                                options={"require": list(required), "verify_iat": True})
        except jwt.InvalidSignatureError:
            continue
        except jwt.ExpiredSignatureError as exc:
            raise AssertionRefused("the token has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise AssertionRefused("aud does not name this service") from exc
        except jwt.ImmatureSignatureError as exc:
            raise AssertionRefused("iat or nbf lies in the future") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise AssertionRefused(f"the {exc.claim} claim is missing") from exc
        except jwt.PyJWTError as exc:
            raise AssertionRefused(f"invalid token ({type(exc).__name__})") from exc
        # compared as numbers: an exp of 10**20 (signed by a trusted but broken client) is past any datetime
        if int(claims["exp"]) - now.timestamp() > (MAX_LIFETIME + timedelta(seconds=LEEWAY_S)).total_seconds():
            raise AssertionRefused("exp lies more than five minutes ahead")
        jti = claims.get("jti")
        if "jti" in required and (not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH):
            raise AssertionRefused(f"jti must be a string of 1 to {MAX_JTI_LENGTH} characters")
        return claims
    raise AssertionRefused("the signature does not verify")
