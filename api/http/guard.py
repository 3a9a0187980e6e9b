"""The door of the HTTP API: who is calling is settled before a byte of the body is read, and bodies are bounded.

:class:`Guard` (pure ASGI, innermost of the app's middleware) answers

- **401** to a request for any path but the public ones (:data:`PUBLIC_PATHS`, :data:`PUBLIC_PREFIXES`) that carries
  neither a valid bearer token nor a valid session cookie of the web page, before the body is read: a client without
  credentials learns nothing from how its body would have been judged. That covers every route, the API docs
  (``/docs``, ``/redoc``, ``/openapi.json``) and paths that match no route. A bearer token shaped as a JWT is let
  through on ``/cds-services`` only, where the route verifies it (CDS Hooks 2.0: the EHR's signed JWT, whose ``jti``
  may be used once).
- **413** to a body longer than its endpoint class allows (:func:`body_limit`: ``dicomweb_max_body_bytes`` for
  STOW-RS, ``hl7_http_max_body_bytes`` for ``POST /hl7``, ``cds_max_body_bytes`` for CDS Hooks,
  ``http_max_body_bytes`` for FHIR and the rest), as soon as ``Content-Length`` says so or the bytes received pass
  the limit;
- **408** to a body that arrives too slowly (hazard log H-SEC-12): the whole body must be in within
  ``settings.http_body_timeout_s`` plus one second for each ``http_body_min_bytes_per_s`` bytes received, a
  deadline that a client sending a byte now and then cannot push back (the connection's header deadline,
  :mod:`api.http.connections`, ends once the headers are whole). The route is stopped where it waits for the body,
  so nothing of a refused body is applied.

- **403** to a state-changing request (any method but GET, HEAD and OPTIONS) authenticated by the web page's session
  cookie that a browser says comes from another origin (``Origin`` not this service's, ``Origin: null``, or
  ``Sec-Fetch-Site`` ``same-site`` / ``cross-site``): cross-site request forgery (hazard log H-SEC-18). The cookie is
  SameSite=Strict, but another application on the same site (a sibling host of the trust's domain) is not
  cross-site to the browser, and the CDS Hooks routes take a ``text/plain`` body, which a form may send without a
  CORS preflight. Bearer-token clients send no cookie and are not concerned; a request without ``Origin`` or
  ``Sec-Fetch-Site`` (not a browser's) is let through.

The size and pace refusals close the connection (``Connection: close``): the rest of the body is not read. Whatever
the route answers to a body the door cut short (FastAPI calls it a body it could not parse, 400), the door's answer
replaces it.

The principal found is kept in the request's state (:data:`STATE_KEY`), so the routes' own checks
(:func:`api.http.deps.current_principal`) do not look it up again; they still decide the scope (403).

Public paths: ``/healthz`` and ``/readyz`` (no data), ``/fhir/metadata`` and ``/.well-known/smart-configuration``
(the contract's public paths), ``/oauth2/token`` (authenticated by its client assertion), and the web page's shell
(``/ui/``, ``/ui/review``, ``/ui/static/…``, ``/ui/login``, ``/ui/logout``), which hold no patient data: the page signs
in through them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth.web_session import principal_from_cookie
from api.context import AppContext
from api.http.deps import SESSION_COOKIE, cached_principal, lookup_token
from api.http.storage_errors import RETRY_AFTER_S, UNAVAILABLE
from priorscan.settings import Settings

log = logging.getLogger(__name__)

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
#: Where one HL7 v2 message arrives over HTTP, with a limit of its own.
HL7_PATH = "/hl7"
#: The header that closes the connection after a refusal of the body (its rest is not read).
CLOSE = (b"connection", b"close")
#: The request state key of the principal the door let in.
STATE_KEY = "priorscan_principal"


#: Methods that change nothing (RFC 9110 safe methods): never refused as cross-site.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_cross_site(origin: str | None, fetch_site: str | None, host: str | None, public_base_url: str | None, *,
                  null_origin_allowed: bool = False) -> bool:
    """Whether a browser says the request comes from a page of another origin than this service.

    ``origin`` and ``fetch_site`` are the request's ``Origin`` and ``Sec-Fetch-Site`` headers, ``host`` its
    ``Host``; the service's own origin is the one ``host`` names or the one of ``public_base_url`` (behind a proxy
    that rewrites ``Host``).
    """
    if fetch_site in ("same-site", "cross-site"):
        return True
    if not origin:
        return False
    if origin == "null":
        return not null_origin_allowed
    parts = urlsplit(origin)
    own = {host} if host else set()
    if public_base_url:
        own.add(urlsplit(public_base_url).netloc)
    return parts.netloc not in own


def is_public(path: str) -> bool:
    """Whether ``path`` is answered without credentials."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _is_fhir(path: str) -> bool:
    return path == "/fhir" or path.startswith(("/fhir/", "/.well-known/smart"))


async def _refuse(send: Send, path: str, status_code: int, detail: str,
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """Answer ``status_code`` with ``detail`` (an OperationOutcome under ``/fhir``, FastAPI's shape elsewhere)."""
    if _is_fhir(path):
        issue = {401: "login", 408: "timeout", 413: "too-costly", 503: "transient"}.get(status_code, "processing")
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


def body_limit(path: str, settings: Settings) -> int:
    """The largest request body accepted on ``path``, by endpoint class (see the module's notes)."""
    if path.startswith(DICOMWEB_PREFIX):
        return settings.dicomweb_max_body_bytes
    if path.rstrip("/") == HL7_PATH:
        return settings.hl7_http_max_body_bytes
    if path == JWT_PREFIX or path.startswith(JWT_PREFIX + "/"):
        return settings.cds_max_body_bytes
    return settings.http_max_body_bytes


class BodyRefused(Exception):
    """Raised into the app where it waits for a body the door refuses (the door answers if nothing was sent yet)."""

    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BodyTooLarge(BodyRefused):
    """The body passed its limit: 413."""

    status_code = 413


class BodyTooSlow(BodyRefused):
    """The body did not arrive by its deadline: 408."""

    status_code = 408


async def _at_hand(waiting: Awaitable[Message]) -> Message:
    """The message ``waiting`` gives if the server holds it already (the client sent it in time and the route asks
    for it late), else :class:`TimeoutError`. ``asyncio.wait_for`` with no time left gives up before the coroutine
    has run at all, so a body that had arrived whole would be refused as too slow."""
    task = asyncio.ensure_future(waiting)
    await asyncio.sleep(0)  # the task's first step runs before this resumes: a message at hand is taken
    if not task.done():
        task.cancel()
        raise TimeoutError
    return task.result()


class _TimedBody:
    """The request body as the route receives it: counted against its limit, and under its deadline."""

    def __init__(self, receive: Receive, limit: int, timeout_s: float, min_bytes_per_s: int) -> None:
        self._receive = receive
        self._limit = limit
        self._timeout_s = timeout_s
        self._min_bytes_per_s = min_bytes_per_s
        self._began = asyncio.get_running_loop().time()
        self.received = 0
        self.whole = False
        self.refusal: BodyRefused | None = None

    async def receive(self) -> Message:
        if self.refusal is not None:
            raise self.refusal
        if self.whole:  # after the body (a route waiting for the client to leave): no deadline
            return await self._receive()
        loop = asyncio.get_running_loop()
        left = self._began + self._timeout_s + self.received / self._min_bytes_per_s - loop.time()
        try:
            if left > 0:
                message = await asyncio.wait_for(self._receive(), left)
            else:
                message = await _at_hand(self._receive())
        except TimeoutError:
            self.refusal = BodyTooSlow("the request body did not arrive in time")
            log.warning("HTTP request refused: its body was too slow (%d bytes received)", self.received)
            raise self.refusal from None
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self._limit:
                self.refusal = BodyTooLarge(f"the request body is larger than {self._limit} bytes")
                raise self.refusal
            self.whole = not message.get("more_body", False)
        return message


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
            if self._forged(scope):
                await _refuse(send, path, 403, "cross-site request refused")
                return
        settings = self.context.settings
        limit = body_limit(path, settings)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, path, 413, f"the request body is larger than {limit} bytes", [CLOSE])
            return
        body = _TimedBody(receive, limit, settings.http_body_timeout_s, settings.http_body_min_bytes_per_s)
        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            if body.refusal is not None and not started:
                return  # the route's answer to a body the door cut short: the door answers instead
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, body.receive, watched_send)
        except BodyRefused:
            if started:
                raise
        if body.refusal is not None and not started:
            await _refuse(send, path, body.refusal.status_code, body.refusal.detail, [CLOSE])

    def _forged(self, scope: Scope) -> bool:
        """Whether a state-changing request the session cookie let in comes from another origin (see the notes)."""
        principal = scope.get("state", {}).get(STATE_KEY)
        if getattr(principal, "kind", None) != "user" or str(scope.get("method", "GET")).upper() in SAFE_METHODS:
            return False
        headers = {name: value.decode("latin-1") for name, value in scope.get("headers", ())
                   if name in (b"origin", b"sec-fetch-site", b"host")}
        return is_cross_site(headers.get(b"origin"), headers.get(b"sec-fetch-site"), headers.get(b"host"),
                             self.context.settings.public_base_url)

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
