"""Who may use priorscan: API clients with bearer tokens, people who sign in to the web page, and their roles.

Only a SHA-256 hash of each token is stored; passwords are hashed with scrypt and a random salt, the parameters kept
with the hash (``scrypt$N$r$p$salt$hash``) so that they can be raised later without breaking existing accounts.
Nothing here prints, logs or audits a token or a password.

Tokens are revoked with :func:`revoke_tokens` (``priorscan token revoke``); SMART backend clients, which obtain
short-lived tokens at ``/oauth2/token`` (:mod:`api.auth.oauth`), are registered with :func:`register_backend_client`
(``priorscan smart register``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api.auth import scopes as scope_rules
from api.auth.principal import TOKEN_CACHE, token_hash
from priorscan.audit import Agent, record
from priorscan.db import utcnow
from priorscan.errors import InputError
from priorscan.tables import ApiClient, SmartBackendClient, UserAccount
from priorscan.trusts import TrustRegistry

CLINICAL_SCOPES = ("priorscan/alerts", "priorscan/duplicate-check", "system/Patient.rs", "system/ImagingStudy.rs")

#: What each role of the web page may do, as scopes (the same rules as for API clients).
ROLE_SCOPES: dict[str, tuple[str, ...]] = {
    "radiographer": CLINICAL_SCOPES,
    "radiologist": CLINICAL_SCOPES,
    "clinician": CLINICAL_SCOPES,
    "analyst": ("priorscan/analytics",),
    "mpi-steward": ("priorscan/mpi-review",),  # settles the identity review queue (/ui/review)
    "admin": (scope_rules.ADMIN,),
}
#: Roles whose work is at one trust: the web page shows that trust's alerts, so the trust is required.
ROLES_NEEDING_TRUST = frozenset({"radiographer", "radiologist", "clinician"})

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,99}$")
TOKEN_PREFIX = "ps_"

# scrypt cost: N=2**15, r=8, p=1 needs 32 MiB and about 0.1 s per hash on this kind of machine.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
_SCRYPT_MAXMEM = 256 * 1024 * 1024


# --- bearer tokens ------------------------------------------------------------------------------------------------

def parse_scopes(text: str) -> list[str]:
    """Space-separated scopes as a list, each checked by :func:`api.auth.scopes.validate`.

    Raises
    ------
    InputError
        With code ``input.scope`` when the list is empty or a scope is unknown.
    """
    scopes = list(dict.fromkeys(text.split()))
    if not scopes:
        raise InputError("give at least one scope", code="input.scope")
    try:
        return scope_rules.validate(scopes)
    except ValueError as exc:
        raise InputError(str(exc), code="input.scope") from exc


def issue_token(session: Session, client: str, scopes: list[str], *, agent: Agent) -> str:
    """Add an API client with a new random bearer token and return the token (only its hash is stored).

    The caller commits ``session``; the audit event names the client and its scopes, never the token.
    """
    client = client.strip()
    if not client or len(client) > 200:
        raise InputError("the client name must be 1 to 200 characters", code="input.client")
    token, row = add_token(session, client, scopes)
    record(session, agent, action="C", event_type="security", subtype="token-create", entity=f"api-client/{row.id}",
           detail={"client": client, "scopes": list(scopes)})
    return token


def add_token(session: Session, client: str, scopes: list[str], *,
              expires_at: datetime | None = None) -> tuple[str, ApiClient]:
    """A new random bearer token for ``client`` and its (flushed) row; no audit: the caller records why it was made."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiClient(name=client, token_hash=token_hash(token), scopes=list(scopes), expires_at=expires_at)
    session.add(row)
    session.flush()
    return token, row


def revoke_tokens(session: Session, client: str, *, agent: Agent) -> int:
    """Revoke every live token of ``client`` (tokens of ``token create`` and access tokens issued to it); the count.

    The caller commits ``session``. This process stops accepting the tokens at once (the token cache is cleared, here
    and again at commit); other processes within :data:`api.http.deps.TOKEN_CACHE_SECONDS`.
    """
    client = client.strip()
    result = session.execute(update(ApiClient).where(ApiClient.name == client, ApiClient.revoked_at.is_(None))
                             .values(revoked_at=utcnow()).execution_options(synchronize_session=False))
    count = int(result.rowcount or 0)  # type: ignore[attr-defined]
    TOKEN_CACHE.clear()
    record(session, agent, action="U", event_type="security", subtype="token-revoke", entity=client,
           detail={"client": client, "revoked": count})
    return count


# --- SMART backend clients ----------------------------------------------------------------------------------------

def backend_scopes(text: str) -> list[str]:
    """The scopes a SMART backend client may be registered for: any known scope but ``*`` (admin)."""
    scopes = parse_scopes(text)
    if scope_rules.ADMIN in scopes:
        raise InputError("a SMART backend client cannot hold the admin scope *; name its scopes", code="input.scope")
    return scopes


def check_jwks_url(url: str) -> str:
    """``url`` unchanged if it can hold a JWKS: https, or http on the loopback interface (for local testing)."""
    url = url.strip()
    parts = urlsplit(url)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if len(url) > 1000 or not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise InputError("the JWKS URL must be https:// (http:// only on localhost), at most 1000 characters",
                         code="input.jwks")
    return url


@dataclass(frozen=True)
class BackendRegistration:
    """What :func:`register_backend_client` stored."""

    id: int
    client_id: str
    scopes: list[str]
    created: bool


def register_backend_client(session: Session, client_id: str, scopes: list[str], *, agent: Agent,
                            jwks: dict[str, Any] | None = None, jwks_url: str | None = None) -> BackendRegistration:
    """Register (or re-key, re-scope and re-enable) a SMART backend client; the caller commits ``session``.

    Exactly one of ``jwks`` (public keys already checked by :func:`priorscan.jwks.check_jwks`) and ``jwks_url`` (checked
    by :func:`check_jwks_url`, fetched when the client asks for a token) is given.
    """
    client_id = client_id.strip()
    if not client_id or len(client_id) > 200:
        raise InputError("the client id must be 1 to 200 characters", code="input.client")
    if (jwks is None) == (jwks_url is None):
        raise InputError("give the client's public keys as a JWKS file or a JWKS URL (one of them)", code="input.jwks")
    row = session.scalars(select(SmartBackendClient).where(SmartBackendClient.client_id == client_id)).first()
    created = row is None
    if row is None:
        row = SmartBackendClient(client_id=client_id, scopes=list(scopes))
        session.add(row)
    row.jwks, row.jwks_url, row.scopes, row.disabled_at = jwks, jwks_url, list(scopes), None
    session.flush()
    kids = [str(k.get("kid", "")) for k in (jwks or {}).get("keys", [])]
    record(session, agent, action="C" if created else "U", event_type="security", subtype="smart-client-register",
           entity=f"smart-client/{row.id}", detail={"client_id": client_id, "scopes": list(scopes), "kids": kids,
                                                     "jwks_url": jwks_url})
    return BackendRegistration(row.id, client_id, list(scopes), created)


def disable_backend_client(session: Session, client_id: str, *, agent: Agent) -> int | None:
    """Stop ``client_id`` getting tokens and revoke those it holds; the number revoked (None: no such client)."""
    client_id = client_id.strip()
    row = session.scalars(select(SmartBackendClient).where(SmartBackendClient.client_id == client_id)).first()
    if row is None:
        return None
    row.disabled_at = row.disabled_at or utcnow()
    session.flush()
    record(session, agent, action="U", event_type="security", subtype="smart-client-disable",
           entity=f"smart-client/{row.id}", detail={"client_id": client_id})
    return revoke_tokens(session, client_id, agent=agent)


# --- passwords ----------------------------------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """The scrypt hash of ``password`` with a fresh random salt, as ``scrypt$N$r$p$salt$hash``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_SCRYPT_MAXMEM, dklen=32)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (from :func:`hash_password`); constant-time comparison."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = hashlib.scrypt(password.encode()[:MAX_PASSWORD_LENGTH * 4], salt=_unb64(salt), n=int(n), r=int(r),
                                p=int(p), maxmem=_SCRYPT_MAXMEM, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


#: Verified against when the username is unknown, so that a wrong name costs as long as a wrong password.
DUMMY_PASSWORD_HASH = hash_password(secrets.token_urlsafe(16))


def check_password_rules(password: str) -> None:
    """Refuse an empty, short or overlong password (``input.password``)."""
    if not password.strip():
        raise InputError("the password is empty", code="input.password")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InputError(f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters",
                         code="input.password")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InputError(f"the password is too long: use at most {MAX_PASSWORD_LENGTH} characters",
                         code="input.password")


# --- people who sign in -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NewUser:
    """A person added by :func:`create_user`."""

    id: int
    username: str
    role: str
    trust_ods: str | None


def normalise_username(username: str) -> str:
    return username.strip().lower()


def create_user(session: Session, trusts: TrustRegistry, *, username: str, password: str, role: str,
                trust: str | None, agent: Agent) -> NewUser:
    """Add a person who signs in to the web page; the caller commits ``session``.

    Raises
    ------
    InputError
        ``input.username`` (malformed or taken), ``input.password`` (empty, short), ``input.role``, ``input.trust``
        (unknown, or missing for a role that works at one trust).
    """
    name = normalise_username(username)
    if not USERNAME_PATTERN.match(name):
        raise InputError("the username must be 2 to 100 characters: letters, digits and . _ @ -",
                         code="input.username")
    if role not in ROLE_SCOPES:
        raise InputError(f"unknown role {role!r}; expected one of {', '.join(ROLE_SCOPES)}", code="input.role")
    trust_ods: str | None = None
    if trust:
        found = trusts.resolve(trust)
        if found is None or found.ods != trust.strip().upper():
            raise InputError(f"unknown trust {trust!r}; expected one of {', '.join(trusts.ods_codes)}",
                             code="input.trust")
        trust_ods = found.ods
    elif role in ROLES_NEEDING_TRUST:
        raise InputError(f"a {role} works at one trust: give --trust (one of {', '.join(trusts.ods_codes)})",
                         code="input.trust")
    check_password_rules(password)
    if session.scalars(select(UserAccount.id).where(UserAccount.username == name)).first() is not None:
        raise InputError(f"a user named {name!r} already exists", code="input.username")
    user = UserAccount(username=name, password_hash=hash_password(password), role=role, trust_ods=trust_ods)
    session.add(user)
    session.flush()
    record(session, agent, action="C", event_type="security", subtype="user-create", entity=f"user/{user.id}",
           detail={"username": name, "role": role, "trust": trust_ods})
    return NewUser(user.id, name, role, trust_ods)


def scopes_for_role(role: str) -> tuple[str, ...]:
    """The scopes a signed-in person with ``role`` holds (none for an unknown role)."""
    return ROLE_SCOPES.get(role, ())
