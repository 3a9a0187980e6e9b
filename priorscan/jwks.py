"""Public keys that clients sign their JWTs with (CDS Hooks EHRs, SMART backend clients).

A JWKS is checked before it is trusted (:func:`check_jwks`) and parsed into keys once per content (:func:`public_keys`).

CDS Hooks 2.0 asks for asymmetric signatures; priorscan accepts RS384 (RSA, at least 2048 bits) and ES384 (EC on
P-384). HMAC (``oct``) keys, other curves and algorithms are refused, and so is a JWKS that carries private key
material: the client must publish its public keys only. Messages never echo key material.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt import PyJWK, PyJWKSet
from jwt.exceptions import PyJWKError, PyJWKSetError, PyJWTError

from priorscan.errors import InputError

ACCEPTED_ALGORITHMS = {"RSA": "RS384", "EC": "ES384"}
MIN_RSA_BITS = 2048
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


@dataclass(frozen=True)
class CheckedJwks:
    """The usable public keys of a JWKS, and why any others were left out."""

    keys: list[dict[str, Any]]
    skipped: list[str] = field(default_factory=list)

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": self.keys}

    @property
    def key_ids(self) -> list[str]:
        return [str(k.get("kid", "")) for k in self.keys]


def read_jwks_file(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; ``input.jwks`` when unreadable or not a JSON object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read the JWKS file ({exc.strerror or type(exc).__name__})",
                         code="input.jwks") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError("the JWKS file is not valid JSON", code="input.jwks") from exc
    if not isinstance(data, dict):
        raise InputError('the JWKS file must hold a JSON object {"keys": [...]}', code="input.jwks")
    return data


def _why_unusable(index: int, jwk: Any) -> str | None:
    label = f"key {index + 1}" + (f" (kid {jwk.get('kid')!s:.40})" if isinstance(jwk, dict) and jwk.get("kid") else "")
    if not isinstance(jwk, dict):
        return f"{label}: not a JSON object"
    kty = jwk.get("kty")
    if kty == "oct":
        return f"{label}: HMAC (oct) keys are never accepted for CDS Hooks"
    if kty not in ACCEPTED_ALGORITHMS:
        return f"{label}: key type {kty!s:.20} is not RSA or EC"
    algorithm = ACCEPTED_ALGORITHMS[kty]
    if jwk.get("alg") not in (None, algorithm):
        return f"{label}: algorithm {jwk.get('alg')!s:.20} is not {algorithm}"
    if jwk.get("use") not in (None, "sig"):
        return f"{label}: use {jwk.get('use')!s:.20} is not sig"
    if kty == "EC" and jwk.get("crv") != "P-384":
        return f"{label}: curve {jwk.get('crv')!s:.20} is not P-384 (ES384)"
    try:
        key = PyJWK(jwk, algorithm=algorithm).key
    except PyJWTError:
        return f"{label}: not a valid {kty} public key"
    if kty == "RSA":
        if not isinstance(key, rsa.RSAPublicKey):
            return f"{label}: not an RSA public key"
        if key.key_size < MIN_RSA_BITS:
            return f"{label}: RSA key of {key.key_size} bits is shorter than {MIN_RSA_BITS}"
    elif not isinstance(key, ec.EllipticCurvePublicKey):
        return f"{label}: not an EC public key"
    return None


def check_jwks(data: dict[str, Any]) -> CheckedJwks:
    """Keep the keys of ``data`` usable for RS384 or ES384; refuse the whole set if none is, or any is private.

    Raises
    ------
    InputError
        ``input.jwks`` with the reasons, naming keys by position and ``kid`` only.
    """
    keys = data.get("keys")
    if not isinstance(keys, list) or not keys:
        raise InputError('the JWKS has no "keys" list', code="input.jwks")
    for index, jwk in enumerate(keys):
        if isinstance(jwk, dict) and any(member in jwk for member in _PRIVATE_MEMBERS if jwk.get("kty") != "oct"):
            raise InputError(f"key {index + 1} holds private key material; give the client's public keys only",
                             code="input.jwks")
    try:
        PyJWKSet.from_dict(data)  # the library's own reading of the set: at least one key it can use
    except (PyJWKSetError, PyJWKError, PyJWTError) as exc:
        raise InputError("the JWKS holds no usable key", code="input.jwks") from exc
    usable: list[dict[str, Any]] = []
    skipped: list[str] = []
    for index, jwk in enumerate(keys):
        reason = _why_unusable(index, jwk)
        if reason is None:
            usable.append({k: v for k, v in jwk.items() if k not in _PRIVATE_MEMBERS})
        else:
            skipped.append(reason)
    if not usable:
        raise InputError("the JWKS holds no RSA or EC public key usable for RS384/ES384: " + "; ".join(skipped),
                         code="input.jwks")
    return CheckedJwks(usable, skipped)


@lru_cache(maxsize=256)
def public_keys(jwks_json: str) -> tuple[tuple[str | None, str, Any], ...]:
    """(kid, key type, public key) of every usable RSA or EC key of a stored JWKS, cached by its content (a changed
    JWKS is parsed afresh); keys PyJWT cannot use are left out."""
    keys = []
    for jwk in json.loads(jwks_json).get("keys", []):
        kty = jwk.get("kty")
        if kty not in ("RSA", "EC"):
            continue
        try:
            keys.append((jwk.get("kid"), kty, PyJWK(jwk, algorithm="RS384" if kty == "RSA" else "ES384").key))
        except PyJWTError:
            continue
    return tuple(keys)
