"""The door of the HTTP API: who is calling is settled before a byte of the body is read, and bodies are bounded.

:class:`Guard` (pure ASGI, innermost of the app's middleware) answers

- **401** to a request for any path but the public ones (:data:`PUBLIC_PATHS`, :data:`PUBLIC_PREFIXES`) that carries
  neither a valid bearer token nor a valid session cookie of the web page, before the body is read: a client without
  credentials learns nothing from how its body would have been judged. That covers every route, the API docs
  (``/docs``, ``/redoc``, ``/openapi.json``) and paths that match no route. A bearer token shaped as a JWT is let
  through on ``/cds-services`` only, where the route verifies it (CDS Hooks 2.0: the EHR's signed JWT, whose ``jti``
  may be used once).
- **413** to a body longer than ``settings.http_max_body_bytes`` (``dicomweb_max_body_bytes`` for STOW-RS), as soon
  as ``Content-Length`` says so or the bytes received pass the limit.

The principal found is kept in the request's state (:data:`STATE_KEY`), so the routes' own checks
(:func:`api.http.deps.current_principal`) do not look it up again; they still decide the scope (403).

Public paths: ``/healthz`` and ``/readyz`` (no data), ``/fhir/metadata`` and ``/.well-known/smart-configuration``
(the contract's public paths), ``/oauth2/token`` (authenticated by its client assertion), and the web page's shell
(``/ui/``, ``/ui/review``, ``/ui/static/…``, ``/ui/login``, ``/ui/logout``), which hold no patient data: the page signs
in through them.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth.web_session import principal_from_cookie
from api.context import AppContext
from api.http.deps import SESSION_COOKIE, cached_principal, lookup_token
from api.http.storage_errors import RETRY_AFTER_S, UNAVAILABLE

#: Paths answered without credentials (exact match).
PUBLIC_PATHS = frozenset({
    "/healthz", "/readyz", "/fhir/metadata", "/.well-known/smart-configuration",
    "/fhir/.well-known/smart-configuration", "/oauth2/token", "/ui", "/ui/", "/ui/review", "/ui/login", "/ui/logout",
})
#: Path prefixes answered without credentials (the web page's scripts, styles and images).
PUBLIC_PREFIXES = ("/ui/static/",)
#: Where a JWT-shaped bearer token goes to the route, which verifies it.
JWT_PREFIX = "/cds-services"
#: Where STOW-RS bodies (DICOM objects) arrive, with a limit of their own.
DICOMWEB_PREFIX = "/dicomweb/"
#: The request state key of the principal the door let in.
STATE_KEY = "priorscan_principal"


def is_public(path: str) -> bool:
    """Whether ``path`` is answered without credentials."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _is_fhir(path: str) -> bool:
    return path == "/fhir" or path.startswith(("/fhir/", "/.well-known/smart"))


async def _refuse(send: Send, path: str, status_code: int, detail: str,
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """Answer ``status_code`` with ``detail`` (an OperationOutcome under ``/fhir``, FastAPI's shape elsewhere)."""
    if _is_fhir(path):
        issue = {401: "login", 413: "too-costly", 503: "transient"}.get(status_code, "processing")
        body: dict[str, Any] = {"resourceType": "OperationOutcome", "issue": [{
            "severity": "fatal" if status_code >= 500 else "error", "code": issue, "diagnostics": detail}]}
        media = b"application/fhir+json"
    else:
        body, media = {"detail": detail}, b"application/json"
    content = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status_code,
                "headers": [(b"content-type", media), (b"content-length", str(len(content)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": content})


class BodyTooLarge(Exception):
    """Raised into the app when the body passes the limit (the door answers 413 if nothing was sent yet)."""


class Guard:
    """Credentials before the body; bodies within their limit (see the module's notes)."""

    def __init__(self, app: ASGIApp, context: AppContext) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        if not is_public(path):
            try:
                refusal = await self._authenticate(scope, path)
            except UNAVAILABLE:  # the store is away: the client may try again (api.http.storage_errors does the rest)
                await _refuse(send, path, 503, "the database is unavailable; try again shortly",
                              [(b"retry-after", str(RETRY_AFTER_S).encode())])
                return
            if refusal is not None:
                await _refuse(send, path, 401, refusal, [(b"www-authenticate", b"Bearer")])
                return
        settings = self.context.settings
        limit = settings.dicomweb_max_body_bytes if path.startswith(DICOMWEB_PREFIX) else settings.http_max_body_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, path, 413, f"the request body is larger than {limit} bytes")
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge:
            if started:
                raise
            await _refuse(send, path, 413, f"the request body is larger than {limit} bytes")

    async def _authenticate(self, scope: Scope, path: str) -> str | None:
        """None when the request carries valid credentials (the principal kept in its state), else why not."""
        headers = {name: value for name, value in scope.get("headers", ()) if name in (b"authorization", b"cookie")}
        client = scope.get("client")
        address = client[0] if client else None
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        if authorization:
            kind, _, token = authorization.partition(" ")
            token = token.strip()
            if kind.lower() != "bearer" or not token:
                return "expected a Bearer token"
            if token.count(".") == 2:  # a JWT: only CDS Hooks takes one, and verifies it itself
                return None if path == JWT_PREFIX or path.startswith(JWT_PREFIX + "/") else \
                    "invalid, expired or revoked token"
            principal = cached_principal(self.context.engine, token, address)
            if principal is None:
                principal = await run_in_threadpool(lambda: lookup_token(self.context.engine, token,
                                                                         address=address))
            if principal is None:
                return "invalid, expired or revoked token"
        else:
            cookie = _cookie(headers.get(b"cookie", b"").decode("latin-1"), SESSION_COOKIE)
            if not cookie:
                return "authentication required"
            principal = await run_in_threadpool(principal_from_cookie, self.context, cookie, address)
            if principal is None:
                return "authentication required"
        scope.setdefault("state", {})[STATE_KEY] = principal
        return None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip('"') or None
    return None
