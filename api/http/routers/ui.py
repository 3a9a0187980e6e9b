"""The workspace page: ``/ui/`` (static HTML, CSS and JavaScript; no build step), sign-in/out and the session.

The page itself holds no data: once signed in it calls JSON endpoints with the session cookie (the workspace's read
models in :mod:`api.http.routers.workspace`, the alerts API, the duplicate check). ``GET /ui/session`` tells the page
who is signed in and which pages their role opens (:mod:`api.workspace.pages`, where the note on adding a page is).
Sign-in answers JSON to the page's script and redirects a plain form post.
Every ``/ui`` response carries a strict Content-Security-Policy (scripts and styles from this origin only), and
every response of ``/ui`` and of the workspace's JSON is ``no-store`` (patient data must not linger in caches).
"""

from __future__ import annotations

import asyncio
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, FastAPI, Form, HTTPException, Request, status
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import web_session
from api.http.deps import SESSION_COOKIE, ContextDep, Principal, PrincipalDep, get_principal
from api.http.guard import is_cross_site
from api.workspace import local_today, pages_for, source_scopes
from priorscan.errors import PriorscanError

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"

router = APIRouter(prefix="/ui", tags=["web page"])

CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
                           "object-src 'none'")
#: Paths whose responses get the security headers below.
PROTECTED_PREFIXES = ("/ui", "/api/v1/workspace")
_SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class TrustInfo(BaseModel):
    ods: str
    name: str


class PageInfo(BaseModel):
    """One page of the workspace the person may open (the menu shows those with ``menu``)."""

    id: str
    title: str
    script: str
    menu: bool


class SessionInfo(BaseModel):
    """Who is signed in, for the page to greet them, draw their menu and ask for their trust's requests."""

    username: str
    kind: str = Field(description="user (signed in) or client (bearer token)")
    role: str | None = None
    trust: str | None = Field(default=None, description="ODS code of the person's trust")
    trustName: str | None = None  # noqa: N815 (JSON field name)
    scopes: list[str]
    trusts: list[TrustInfo] = Field(description="every trust of the region, for display names")
    pages: list[PageInfo] = Field(default_factory=list, description="the pages the person's role opens")
    live: bool = Field(default=False, description="whether the person's role receives live updates")
    timezone: str = "Europe/London"
    today: str | None = Field(default=None, description="today's date in the consortium's time zone")


class OverrideReasonInfo(BaseModel):
    """A coded reason for going ahead with a scan despite a comparable prior."""

    system: str
    code: str
    display: str
    commentRequired: bool = False  # noqa: N815 (JSON field name)


OVERRIDE_SYSTEM = "urn:priorscan:override-reason"
#: Shown when the rule table cannot be read; the rule table's own list takes precedence.
DEFAULT_OVERRIDE_REASONS = (
    ("clinical-change", "Clinical change since the prior"),
    ("different-protocol", "Different protocol or contrast phase"),
    ("prior-unavailable", "Prior images unavailable or inadequate"),
    ("different-question", "Different clinical question"),
    ("other", "Other (explain in the comment)"),
)


@lru_cache(maxsize=4)
def override_reasons(rules_file: Path | None) -> tuple[OverrideReasonInfo, ...]:
    """The override reasons of the duplicate rule table (the clinical leads' list), or the defaults."""
    try:
        from dedupe import load_rules

        rule_set = load_rules(rules_file)
        return tuple(OverrideReasonInfo(system=r.system, code=r.code, display=r.display,
                                        commentRequired=r.comment_required) for r in rule_set.override_reasons)
    except (ImportError, PriorscanError):
        return tuple(OverrideReasonInfo(system=OVERRIDE_SYSTEM, code=code, display=display, commentRequired=True)
                     for code, display in DEFAULT_OVERRIDE_REASONS)


def _session_info(ctx: ContextDep, principal: Principal) -> SessionInfo:
    trusts = [TrustInfo(ods=t.ods, name=t.name) for t in ctx.trusts.trusts]
    trust_name = next((t.name for t in trusts if t.ods == principal.trust_ods), None)
    pages = [PageInfo(id=p.id, title=p.title, script=p.script, menu=p.menu) for p in pages_for(principal)]
    zone = _timezone(ctx)
    return SessionInfo(username=principal.name, kind=principal.kind, role=principal.role, trust=principal.trust_ods,
                       trustName=trust_name, scopes=list(principal.scopes), trusts=trusts, pages=pages,
                       live=any(principal.allows(s) for s in source_scopes()), timezone=zone,
                       today=local_today(zone).isoformat())


def _timezone(ctx: ContextDep) -> str:
    try:
        from dedupe import active_rules

        return str(active_rules(ctx.settings.rules_file).timezone)
    except (ImportError, PriorscanError):
        return "Europe/London"


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _check_origin(request: Request) -> None:
    """Refuse a cross-site form post (login CSRF): an Origin header, when sent, must be this service's."""
    public_base_url = request.app.state.context.settings.public_base_url
    if is_cross_site(request.headers.get("origin"), request.headers.get("sec-fetch-site"),
                     request.headers.get("host"), public_base_url, null_origin_allowed=True):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="cross-site request refused")


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    """The workspace (sign-in, then the pages of the person's role: worklist, request, patient, check a request)."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


#: The identity review page is the workspace's (``api/static/pages/review.js``); its former address leads there.
REVIEW_PAGE = "/ui/#/identity-review"


@router.get("/review", include_in_schema=False)
def review_page() -> RedirectResponse:
    """The identity review page for MPI data stewards, in the workspace (``/ui/#/identity-review``)."""
    return RedirectResponse(REVIEW_PAGE, status_code=status.HTTP_307_TEMPORARY_REDIRECT)


@router.get("/session", response_model=SessionInfo)
def current_session(ctx: ContextDep, principal: PrincipalDep) -> SessionInfo:
    """Who is signed in (401 when nobody is)."""
    return _session_info(ctx, principal)


@router.get("/override-reasons", response_model=list[OverrideReasonInfo])
def list_override_reasons(ctx: ContextDep, principal: PrincipalDep) -> list[OverrideReasonInfo]:
    """The coded reasons the page offers when a person overrides an alert."""
    return list(override_reasons(ctx.settings.rules_file))


@router.post("/login", response_model=SessionInfo,
             responses={401: {"description": "wrong username or password"}, 429: {"description": "too many failures"},
                        303: {"description": "to /ui/ (a form post)"}})
async def login(request: Request, ctx: ContextDep, username: Annotated[str, Form(max_length=200)],
                password: Annotated[str, Form(max_length=4096)]) -> Response:
    """Sign in with a username and password; sets the session cookie.

    Answers JSON when the request accepts it (the page's script), otherwise redirects to ``/ui/``.
    """
    _check_origin(request)
    address = request.client.host if request.client else None
    who, delay, locked = await run_in_threadpool(web_session.lookup_attempt, ctx, username, address)
    if not locked:  # numbered in the database before the password is checked: parallel guesses cannot all pass
        locked = not await run_in_threadpool(web_session.take_attempt_number, ctx, who, address)
    if delay:
        await asyncio.sleep(delay)
    if locked:
        await run_in_threadpool(web_session.audit_locked_out, ctx, who, address)
        retry = int(web_session.FAILURE_WINDOW.total_seconds())
        message = "Too many failed sign-ins. Wait 15 minutes or ask your PACS/RIS administrator."
        if _wants_json(request):
            return JSONResponse({"detail": message}, status.HTTP_429_TOO_MANY_REQUESTS,
                                headers={"Retry-After": str(retry)})
        return RedirectResponse("/ui/?signin=locked", status.HTTP_303_SEE_OTHER)
    result = await run_in_threadpool(web_session.sign_in, ctx, username, password, address)
    if not result.ok or result.cookie is None or result.principal is None:
        if _wants_json(request):
            return JSONResponse({"detail": "Wrong username or password."}, status.HTTP_401_UNAUTHORIZED)
        return RedirectResponse("/ui/?signin=failed", status.HTTP_303_SEE_OTHER)
    response: Response
    if _wants_json(request):
        response = JSONResponse(_session_info(ctx, result.principal).model_dump())
    else:
        response = RedirectResponse("/ui/", status.HTTP_303_SEE_OTHER)
    web_session.set_session_cookie(response, ctx.settings, result.cookie)
    return response


@router.post("/logout", status_code=204, response_class=Response,
             responses={303: {"description": "signed out; to /ui/ (a form post)"}})
def logout(request: Request, ctx: ContextDep) -> Response:
    """Sign out: ends the session in the database (its cookie is refused from then on, wherever it was copied) and
    clears the cookie (204 for the page's script, else a redirect to ``/ui/``)."""
    _check_origin(request)
    try:
        principal = get_principal(request, ctx)
    except HTTPException:
        principal = None
    if principal is not None and principal.kind == "user":
        web_session.end_session(ctx, request.cookies.get(SESSION_COOKIE))
        web_session.audit_sign_out(ctx, principal)
    response: Response = (Response(status_code=status.HTTP_204_NO_CONTENT) if _wants_json(request)
                          else RedirectResponse("/ui/", status.HTTP_303_SEE_OTHER))
    web_session.clear_session_cookie(response, ctx.settings)
    return response


#: The header every other response carries: a browser never reads an API answer (JSON, CSV, an ACK) as a script or
#: a page whatever its content looks like.
_EVERY_RESPONSE = [(b"x-content-type-options", b"nosniff")]


class SecurityHeaders:
    """Adds the page's security headers to every ``/ui`` and workspace JSON response, and ``nosniff`` to every
    other HTTP response (pure ASGI)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _SECURITY_HEADERS if str(scope.get("path", "")).startswith(PROTECTED_PREFIXES) else _EVERY_RESPONSE

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in headers if n not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app: FastAPI) -> None:
    """Mount the page's static files and its security headers."""
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
    app.add_middleware(SecurityHeaders)
