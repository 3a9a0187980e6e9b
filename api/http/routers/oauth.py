"""``POST /oauth2/token``: SMART Backend Services access tokens for registered backend clients (:mod:`api.auth.oauth`).

The one endpoint without a bearer token: the client authenticates with its signed client assertion. Answers carry
``Cache-Control: no-store``; errors are RFC 6749 §5.2 JSON (``{"error", "error_description"}``, 401 for
``invalid_client``, 400 otherwise).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.auth.oauth import IssuedToken, OAuthError, audit_refusal, exchange
from api.http.deps import get_context, public_base
from api.http.routers.fhir import TOKEN_PATH

#: A token request is a few parameters and one JWT; anything larger is refused unread.
MAX_BODY_BYTES = 64 * 1024
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

router = APIRouter(tags=["oauth"])


class TokenResponse(BaseModel):
    access_token: str
    token_type: str
    expires_in: int
    scope: str


class TokenError(BaseModel):
    error: str
    error_description: str


def _form(request_body: bytes, media_type: str) -> dict[str, str]:
    if media_type != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "send the parameters as application/x-www-form-urlencoded")
    if len(request_body) > MAX_BODY_BYTES:
        raise OAuthError("invalid_request", "the request is too large")
    try:
        pairs = parse_qsl(request_body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as exc:
        raise OAuthError("invalid_request", "the form body cannot be read") from exc
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:  # RFC 6749 §3.2: parameters MUST NOT be included more than once
            raise OAuthError("invalid_request", f"the {name} parameter is given more than once")
        form[name] = value
    return form


@router.post(TOKEN_PATH, response_model=TokenResponse,
             responses={400: {"model": TokenError}, 401: {"model": TokenError}},
             openapi_extra={"requestBody": {"required": True,
                                            "content": {"application/x-www-form-urlencoded": {}}}})
async def token(request: Request) -> JSONResponse:
    """Exchange a signed client assertion for an access token (``grant_type=client_credentials``)."""
    context = get_context(request)
    address = request.client.host if request.client else None
    token_url = public_base(request) + TOKEN_PATH
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        form = _form(await request.body(), media_type)
    except OAuthError as error:
        await run_in_threadpool(audit_refusal, context.sessions, None, error, address)
        return JSONResponse(error.body(), status_code=error.status_code, headers=_NO_STORE)
    try:
        issued: IssuedToken = await run_in_threadpool(exchange, context.sessions, form, token_url=token_url,
                                                      address=address)
    except OAuthError as error:  # audited by exchange()
        return JSONResponse(error.body(), status_code=error.status_code, headers=_NO_STORE)
    return JSONResponse(issued.body(), headers=_NO_STORE)
