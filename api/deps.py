"""Shared FastAPI dependencies: the app context, a unit-of-work session, and who is calling with which scopes.

Every endpoint but ``/healthz``, ``/fhir/metadata`` and ``/.well-known/smart-configuration`` needs a principal:
an API client with ``Authorization: Bearer <token>`` or a person signed in to the web page (session cookie).
Without one the answer is 401; without the scope, 403.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from api import scopes as scope_rules
from api.context import AppContext
from priorscan.audit import Agent
from priorscan.tables import ApiClient

SESSION_COOKIE = "priorscan_session"


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API client or a signed-in person, with the scopes they hold."""

    kind: str  # client | user
    name: str
    scopes: tuple[str, ...]
    trust_ods: str | None = None
    role: str | None = None
    address: str | None = field(default=None, compare=False)

    def allows(self, needed: str) -> bool:
        return scope_rules.covers(self.scopes, needed)

    @property
    def agent(self) -> Agent:
        return Agent(self.kind, self.name, self.address)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def get_context(request: Request) -> AppContext:
    return request.app.state.context  # type: ignore[no-any-return]


ContextDep = Annotated[AppContext, Depends(get_context)]


def get_session(ctx: ContextDep) -> Iterator[Session]:
    """A session for the request; routes commit explicitly before answering (2xx only after commit)."""
    with ctx.sessions() as session:
        try:
            yield session
        except BaseException:
            session.rollback()
            raise


SessionDep = Annotated[Session, Depends(get_session)]


def _unauthorised(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def get_principal(request: Request, ctx: ContextDep) -> Principal:
    """The caller, from a bearer token or the web page's session cookie; 401 when neither is valid."""
    address = request.client.host if request.client else None
    header = request.headers.get("authorization", "")
    if header:
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise _unauthorised("expected a Bearer token")
        with ctx.sessions() as session:
            client = session.scalars(select(ApiClient).where(ApiClient.token_hash == token_hash(token.strip()),
                                                             ApiClient.revoked_at.is_(None))).first()
        if client is None:
            raise _unauthorised("invalid or revoked token")
        return Principal("client", client.name, tuple(client.scopes), address=address)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        from api.web_session import principal_from_cookie

        principal = principal_from_cookie(ctx, cookie, address)
        if principal is not None:
            return principal
    raise _unauthorised("authentication required")


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(needed: str) -> Callable[[Principal], Principal]:
    """A dependency that lets the call through only with the ``needed`` scope (403 otherwise)."""

    def check(principal: PrincipalDep) -> Principal:
        if not principal.allows(needed):
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"scope {needed} required")
        return principal

    return check
