"""Shared FastAPI dependencies: the app context, a unit-of-work session, and who is calling with which scopes.

Every endpoint but ``/healthz``, ``/fhir/metadata``, ``/.well-known/smart-configuration`` and ``/oauth2/token`` (which
authenticates by the client assertion, :mod:`api.auth.oauth`) needs a principal:
an API client with ``Authorization: Bearer <token>`` or a person signed in to the web page (session cookie).
Without one the answer is 401; without the scope, 403.

The dependencies that every route uses (:data:`ContextDep`, :data:`PrincipalDep`, :func:`require`) are ``async``: a
sync dependency costs a hop to a worker thread and back on every request, and these do no I/O on their hot path (a
token found in the cache). A token not in the cache, or a session cookie, is looked up in a worker thread.

Bearer tokens are looked up by their SHA-256 hash and the answer is kept in process for a few seconds
(:class:`api.auth.principal.PrincipalCache`, :data:`TOKEN_CACHE_SECONDS`), so that a busy client costs one database
lookup per few seconds instead of one per request. Revocation stays in force:

- a token revoked in this process (:func:`api.auth.accounts.revoke_tokens`, or any ORM update or delete of
  ``api_client`` rows through a :class:`~sqlalchemy.orm.Session`) is dropped from the cache at once, and again when
  that transaction commits;
- a token revoked by another process (``priorscan token revoke`` or ``smart disable`` against a running server,
  another ``priorscan serve`` worker, plain SQL) is refused here at most :data:`TOKEN_CACHE_SECONDS` later;
- an access token with an expiry (issued at ``/oauth2/token``) is never served from the cache past its expiry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.auth.principal import (  # noqa: F401 - the names callers have always found here, too
    SESSION_COOKIE,
    TOKEN_CACHE,
    TOKEN_CACHE_SECONDS,
    TOKEN_CACHE_SIZE,
    Principal,
    PrincipalCache,
    token_hash,
)
from api.context import AppContext
from priorscan.tables import ApiClient
from priorscan.unit_of_work import unit_of_work


def get_context(request: Request) -> AppContext:
    return request.app.state.context  # type: ignore[no-any-return]


async def context_dependency(request: Request) -> AppContext:
    """:func:`get_context` as a dependency, run on the event loop (no worker thread for an attribute read)."""
    return request.app.state.context  # type: ignore[no-any-return]


ContextDep = Annotated[AppContext, Depends(context_dependency)]


def public_base(request: Request) -> str:
    """The service's base URL as clients reach it: the ``public_base_url`` setting, else the request's own (which
    follows its ``Host`` header: set the setting wherever that header is not the service's to choose)."""
    configured: str | None = get_context(request).settings.public_base_url
    return (configured or str(request.base_url)).rstrip("/")


def get_session(ctx: ContextDep) -> Iterator[Session]:
    """The request's unit of work (:func:`priorscan.unit_of_work.unit_of_work`) for a route that reads and audits.

    Routes commit explicitly before answering (2xx only after commit); the unit rolls back what a failing route left
    and closes the session.
    """
    with unit_of_work(ctx.sessions) as session:
        yield session


def get_write_session(ctx: ContextDep) -> Iterator[Session]:
    """The request's writing unit of work: as :func:`get_session`, holding the writer's turn on SQLite from the
    first statement (``BEGIN IMMEDIATE``), so that a route that reads and then writes never meets a stale snapshot."""
    with unit_of_work(ctx.sessions, write=True) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
WriteSessionDep = Annotated[Session, Depends(get_write_session)]


def _unauthorised(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def _cache_key(engine: Engine, hashed_token: str) -> str:
    # per store: a process serving two stores (tests, tools) must not accept one store's token for the other
    return f"{engine.url}#{hashed_token}"


def lookup_token(engine: Engine, token: str, *, cache: PrincipalCache | None = None,
                 address: str | None = None) -> Principal | None:
    """The API client holding ``token`` (not revoked, not expired), from the cache or one column-only query.

    Parameters
    ----------
    engine
        The store holding ``api_client``.
    token
        The bearer token as sent; only its hash is looked up or kept.
    cache
        Where recent answers are kept (:data:`TOKEN_CACHE` by default); its clock also decides expiry.
    address
        The caller's network address, set on the principal returned.
    """
    cache = TOKEN_CACHE if cache is None else cache
    hashed = token_hash(token)
    key = _cache_key(engine, hashed)
    found = cache.get(key)
    if found is None:
        generation = cache.generation
        query = select(ApiClient.name, ApiClient.scopes, ApiClient.expires_at).where(
            ApiClient.token_hash == hashed, ApiClient.revoked_at.is_(None))
        with engine.connect() as connection:
            row = connection.execute(query).first()
        if row is None or (row.expires_at is not None and row.expires_at.timestamp() <= cache.clock()):
            return None
        found = Principal("client", row.name, tuple(row.scopes))
        cache.put(key, found, expires_at=row.expires_at, generation=generation)
    return replace(found, address=address)


def _bearer_token(request: Request) -> str | None:
    """The bearer token of ``Authorization`` (None without the header); 401 for another scheme or an empty token."""
    header = request.headers.get("authorization", "")
    if not header:
        return None
    kind, _, token = header.partition(" ")
    token = token.strip()
    if kind.lower() != "bearer" or not token:
        raise _unauthorised("expected a Bearer token")
    return token


def _cookie_principal(ctx: AppContext, request: Request, address: str | None) -> Principal:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        from api.auth.web_session import principal_from_cookie

        principal = principal_from_cookie(ctx, cookie, address)
        if principal is not None:
            return principal
    raise _unauthorised("authentication required")


def cached_principal(engine: Engine, token: str, address: str | None, *,
                     cache: PrincipalCache | None = None) -> Principal | None:
    """The API client holding ``token`` in the store of ``engine`` if the cache remembers it (no I/O), else None
    (then :func:`lookup_token`)."""
    found = (TOKEN_CACHE if cache is None else cache).get(_cache_key(engine, token_hash(token)))
    return None if found is None else replace(found, address=address)


def get_principal(request: Request, ctx: AppContext) -> Principal:
    """The caller, from a bearer token or the web page's session cookie; 401 when neither is valid (blocking: for
    code already in a worker thread; routes depend on :data:`PrincipalDep`).

    A bearer token's lookup is reused for up to :data:`TOKEN_CACHE_SECONDS` (see the module's notes on revocation).
    """
    admitted = _admitted(request)
    if admitted is not None:
        return admitted
    address = request.client.host if request.client else None
    token = _bearer_token(request)
    if token is None:
        return _cookie_principal(ctx, request, address)
    principal = lookup_token(ctx.engine, token, address=address)
    if principal is None:
        raise _unauthorised("invalid, expired or revoked token")
    return principal


def _admitted(request: Request) -> Principal | None:
    """The principal :class:`api.http.guard.Guard` let in (it authenticates before the body is read), if any."""
    found = request.scope.get("state", {}).get("priorscan_principal")
    return found if isinstance(found, Principal) else None


async def current_principal(request: Request, ctx: ContextDep) -> Principal:
    """:func:`get_principal` as a dependency: the principal the door let in, else on the event loop when the token is
    cached, in a worker thread when the store must be read."""
    admitted = _admitted(request)
    if admitted is not None:
        return admitted
    address = request.client.host if request.client else None
    token = _bearer_token(request)
    if token is None:
        return await run_in_threadpool(_cookie_principal, ctx, request, address)
    principal = cached_principal(ctx.engine, token, address)
    if principal is None:
        principal = await run_in_threadpool(lambda: lookup_token(ctx.engine, token, address=address))
        if principal is None:
            raise _unauthorised("invalid, expired or revoked token")
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def require(needed: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that lets the call through only with the ``needed`` scope (403 otherwise)."""

    async def check(request: Request) -> Principal:
        # the principal is read here rather than through PrincipalDep: each nested dependency costs FastAPI a
        # resolution per request, and every route of the API depends on this one
        principal = await current_principal(request, get_context(request))
        if not principal.allows(needed):
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"scope {needed} required")
        return principal

    return check

