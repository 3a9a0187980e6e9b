"""``POST /oauth2/token`` (SMART Backend Services): client assertions, scopes, errors, audit, the tokens it issues."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from sqlalchemy import select

from api.auth.accounts import register_backend_client
from api.auth.oauth import ASSERTION_TYPE, JWKS_URLS
from api.http import deps
from priorscan.audit import SYSTEM
from priorscan.db import session_scope
from priorscan.tables import ApiClient, AuditEvent, SmartSeenJti

CLIENT_ID = "regional-order-comms"
REGISTERED = ["system/Patient.rs", "priorscan/duplicate-check"]


# --- factories -------------------------------------------------------------------------------------------------------

def make_key(algorithm: str) -> Any:
    if algorithm == "RS384":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP384R1())


def public_jwks(private_key: Any, kid: str) -> dict[str, Any]:
    algorithm = RSAAlgorithm if isinstance(private_key, rsa.RSAPrivateKey) else ECAlgorithm
    jwk = json.loads(algorithm.to_jwk(private_key.public_key()))
    return {"keys": [{**jwk, "kid": kid, "alg": "RS384" if algorithm is RSAAlgorithm else "ES384", "use": "sig"}]}


def assertion(private_key: Any, algorithm: str, *, aud: str, kid: str = "k1", client_id: str = CLIENT_ID,
              lifetime: int = 240, headers: dict[str, Any] | None = None, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": client_id, "sub": client_id, "aud": aud, "exp": now + lifetime, "iat": now,
               "jti": uuid.uuid4().hex, **claims}
    return jwt.encode(payload, private_key, algorithm=algorithm, headers={"kid": kid, **(headers or {})})


def token_form(client_assertion: str, scope: str = "system/Patient.rs", **overrides: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion, "scope": scope, **overrides}


class Backend:
    """A registered backend client with its key, talking to a live server."""

    def __init__(self, server: Any, algorithm: str) -> None:
        self.server, self.algorithm = server, algorithm
        self.key = make_key(algorithm)
        self.token_url = server.base_url + "/oauth2/token"
        with session_scope(server.context.sessions) as session:
            register_backend_client(session, CLIENT_ID, REGISTERED, agent=SYSTEM, jwks=public_jwks(self.key, "k1"))

    def assertion(self, **kwargs: Any) -> str:
        kwargs.setdefault("aud", self.token_url)
        return assertion(self.key, self.algorithm, **kwargs)

    def request(self, form: dict[str, str]) -> httpx.Response:
        return httpx.post(self.token_url, data=form)


@pytest.fixture
def backend(live_server_sqlite: Any) -> Backend:
    return Backend(live_server_sqlite, "ES384")


def audit_rows(server: Any) -> list[AuditEvent]:
    with server.context.sessions() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.subtype == "oauth-token")
                                    .order_by(AuditEvent.id)))


# --- the round trip --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["ES384", "RS384"])
def test_round_trip_then_a_fhir_call(live_server: Any, algorithm: str) -> None:
    """On both backends and with both algorithms: a token for the scopes asked for, usable at once on FHIR."""
    client = Backend(live_server, algorithm)
    signed = client.assertion()
    response = client.request(token_form(signed, scope="system/Patient.rs priorscan/duplicate-check"))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 300
    assert body["scope"] == "system/Patient.rs priorscan/duplicate-check"
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    search = httpx.get(live_server.base_url + "/fhir/Patient", params={"family": "Nobody"}, headers=bearer)
    assert search.status_code == 200, search.text
    assert search.json()["resourceType"] == "Bundle"
    # scopes are enforced exactly as for `priorscan token create` tokens
    assert httpx.post(live_server.base_url + "/fhir/Patient", json={"resourceType": "Patient"},
                      headers=bearer).status_code == 403
    assert httpx.get(live_server.base_url + "/api/v1/alerts", headers=bearer).status_code == 403
    (audit,) = audit_rows(live_server)
    assert audit.outcome == "0" and audit.agent_name == CLIENT_ID
    assert audit.detail["granted"] == ["system/Patient.rs", "priorscan/duplicate-check"]
    stored = json.dumps([audit.detail, audit.entity])
    assert body["access_token"] not in stored and signed not in stored


def test_only_the_registered_scopes_are_granted(backend: Backend) -> None:
    response = backend.request(token_form(backend.assertion(), scope="system/Patient.rs system/Patient.cruds "
                                                                     "priorscan/alerts *"))
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "system/Patient.rs"  # the write, alerts and admin scopes are dropped
    with backend.server.context.sessions() as session:
        row = session.scalars(select(ApiClient).where(ApiClient.name == CLIENT_ID)).one()
    assert row.scopes == ["system/Patient.rs"] and row.expires_at is not None


def test_a_narrower_scope_covered_by_the_registration_is_granted(live_server_sqlite: Any) -> None:
    key = make_key("ES384")
    with session_scope(live_server_sqlite.context.sessions) as session:
        register_backend_client(session, "pacs-bridge", ["system/*.rs"], agent=SYSTEM, jwks=public_jwks(key, "k1"))
    url = live_server_sqlite.base_url + "/oauth2/token"
    response = httpx.post(url, data=token_form(assertion(key, "ES384", aud=url, client_id="pacs-bridge"),
                                               scope="system/ImagingStudy.rs system/Patient.c"))
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "system/ImagingStudy.rs"


# --- refusals --------------------------------------------------------------------------------------------------------

def _error(response: httpx.Response) -> tuple[int, str]:
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"error", "error_description"}
    return response.status_code, body["error"]


@pytest.mark.parametrize(("case", "expected"), [
    ("bad-signature", (401, "invalid_client")),  # signed by another key under the registered kid
    ("wrong-aud", (401, "invalid_client")),  # an assertion meant for another server
    ("expired", (401, "invalid_client")),  # exp two minutes ago (beyond the leeway)
    ("too-long", (401, "invalid_client")),  # exp an hour ahead: SMART allows five minutes
    ("unknown-client", (401, "invalid_client")),  # iss = sub = a client never registered
    ("sub-differs", (401, "invalid_client")),  # sub must equal iss
    ("hmac", (401, "invalid_client")),  # HS256: never accepted
    ("unknown-kid", (401, "invalid_client")),  # no key of the JWKS has this kid
    ("no-jti", (401, "invalid_client")),
    ("not-a-jwt", (401, "invalid_client")),
    ("wrong-assertion-type", (401, "invalid_client")),
    ("password-grant", (400, "unsupported_grant_type")),
    ("no-grant-type", (400, "invalid_request")),
    ("no-assertion", (400, "invalid_request")),
    ("no-scope", (400, "invalid_request")),
    ("scope-not-allowed", (400, "invalid_scope")),  # registered for other scopes only
    ("unknown-scope", (400, "invalid_scope")),
])
def test_refusals(backend: Backend, case: str, expected: tuple[int, str]) -> None:
    aud = backend.token_url
    forms: dict[str, Callable[[], dict[str, str]]] = {
        "bad-signature": lambda: token_form(assertion(make_key("ES384"), "ES384", aud=aud)),
        "wrong-aud": lambda: token_form(backend.assertion(aud="https://elsewhere.example/oauth2/token")),
        "expired": lambda: token_form(backend.assertion(lifetime=-120)),
        "too-long": lambda: token_form(backend.assertion(lifetime=3600)),
        "unknown-client": lambda: token_form(backend.assertion(client_id="stranger")),
        "sub-differs": lambda: token_form(backend.assertion(sub="someone-else")),
        "hmac": lambda: token_form(jwt.encode({"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": aud, "jti": "x",
                                               "exp": int(time.time()) + 60}, "s" * 48, algorithm="HS256")),
        "unknown-kid": lambda: token_form(backend.assertion(kid="k9")),
        "no-jti": lambda: token_form(backend.assertion(jti=None)),
        "not-a-jwt": lambda: token_form("not.a.jwt"),
        "wrong-assertion-type": lambda: token_form(backend.assertion(), client_assertion_type="urn:example:saml"),
        "password-grant": lambda: token_form(backend.assertion(), grant_type="password"),
        "no-grant-type": lambda: {k: v for k, v in token_form(backend.assertion()).items() if k != "grant_type"},
        "no-assertion": lambda: {k: v for k, v in token_form(backend.assertion()).items()
                                 if k != "client_assertion"},
        "no-scope": lambda: {k: v for k, v in token_form(backend.assertion()).items() if k != "scope"},
        "scope-not-allowed": lambda: token_form(backend.assertion(), scope="priorscan/alerts system/Patient.cud"),
        "unknown-scope": lambda: token_form(backend.assertion(), scope="made/up"),
    }
    assert _error(backend.request(forms[case]())) == expected
    refused = audit_rows(backend.server)
    assert [row.outcome for row in refused] == ["4"]
    assert refused[0].detail["error"] == expected[1]


def test_a_replayed_assertion_is_refused(backend: Backend) -> None:
    signed = backend.assertion()
    assert backend.request(token_form(signed)).status_code == 200
    assert _error(backend.request(token_form(signed))) == (401, "invalid_client")
    assert [row.outcome for row in audit_rows(backend.server)] == ["0", "4"]
    with backend.server.context.sessions() as session:
        assert session.scalars(select(SmartSeenJti.client_id)).all() == [CLIENT_ID]


def test_an_assertion_refused_for_its_scopes_is_spent(backend: Backend) -> None:
    """No scope can be granted (400 invalid_scope), yet the assertion's jti is kept: the same assertion sent again
    with scopes the client may have is a replay, not a second chance."""
    signed = backend.assertion()
    assert _error(backend.request(token_form(signed, scope="made/up"))) == (400, "invalid_scope")
    with backend.server.context.sessions() as session:
        assert session.scalars(select(SmartSeenJti.client_id)).all() == [CLIENT_ID]
        assert session.scalars(select(ApiClient.id).where(ApiClient.name == CLIENT_ID)).all() == []
    assert _error(backend.request(token_form(signed))) == (401, "invalid_client")


def test_a_json_body_or_a_repeated_parameter_is_an_invalid_request(backend: Backend) -> None:
    form = token_form(backend.assertion())
    assert _error(httpx.post(backend.token_url, json=form)) == (400, "invalid_request")
    repeated = httpx.post(backend.token_url, content="&".join(f"{k}={v}" for k, v in form.items()) + "&scope=x",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert _error(repeated) == (400, "invalid_request")
    assert len(audit_rows(backend.server)) == 2


def test_the_token_endpoint_is_the_one_advertised(live_server_sqlite: Any) -> None:
    config = httpx.get(live_server_sqlite.base_url + "/.well-known/smart-configuration").json()
    assert config["token_endpoint"] == live_server_sqlite.base_url + "/oauth2/token"
    assert httpx.get(config["token_endpoint"]).status_code == 405  # POST only


# --- the access token's life -----------------------------------------------------------------------------------------

def test_the_access_token_expires_even_when_cached(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    body = backend.request(token_form(backend.assertion())).json()
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    search = backend.server.base_url + "/fhir/Patient?family=Nobody"
    now = [time.time()]
    monkeypatch.setattr(deps.TOKEN_CACHE, "clock", lambda: now[0])
    monkeypatch.setattr(deps.TOKEN_CACHE, "ttl", 3600.0)  # a cache entry that would outlive the token
    assert httpx.get(search, headers=bearer).status_code == 200
    now[0] += 290
    assert httpx.get(search, headers=bearer).status_code == 200  # still valid, from the cache
    now[0] += 11
    assert httpx.get(search, headers=bearer).status_code == 401  # expired: 300 s after issue


def test_disabling_the_client_revokes_its_tokens_and_refuses_new_ones(backend: Backend, run_cli: Any) -> None:
    token = backend.request(token_form(backend.assertion())).json()["access_token"]
    search = backend.server.base_url + "/fhir/Patient?family=Nobody"
    assert httpx.get(search, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    status, out, _ = run_cli("--db", str(backend.server.context.engine.url), "smart", "disable", "--client-id",
                             CLIENT_ID)
    assert status == 0 and "revoked 1 token(s)" in out
    # the CLI ran in this process: its revocation empties this process's token cache at once
    assert httpx.get(search, headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert _error(backend.request(token_form(backend.assertion()))) == (401, "invalid_client")


# --- keys published at a URL -----------------------------------------------------------------------------------------

@pytest.fixture
def jwks_host() -> Iterator[tuple[str, dict[str, Any]]]:
    """A loopback HTTP server publishing whatever JWKS the test puts in the dict it yields."""
    published: dict[str, Any] = {"keys": []}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            data = json.dumps(published).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", published
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_keys_from_a_jwks_url_and_their_rotation(live_server_sqlite: Any, jwks_host: tuple[str, dict[str, Any]],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    url, published = jwks_host
    clock = [0.0]
    monkeypatch.setattr(JWKS_URLS, "clock", lambda: clock[0])
    first, second = make_key("RS384"), make_key("RS384")
    published.update(public_jwks(first, "2024"))
    with session_scope(live_server_sqlite.context.sessions) as session:
        register_backend_client(session, CLIENT_ID, REGISTERED, agent=SYSTEM, jwks_url=url)
    token_url = live_server_sqlite.base_url + "/oauth2/token"
    signed = assertion(first, "RS384", aud=token_url, kid="2024", headers={"jku": url})
    assert httpx.post(token_url, data=token_form(signed)).status_code == 200
    other_jku = assertion(first, "RS384", aud=token_url, kid="2024", headers={"jku": "https://attacker.example/k"})
    assert _error(httpx.post(token_url, data=token_form(other_jku))) == (401, "invalid_client")
    # the client rotates its key: an unknown kid makes the server look again (once the copy is 30 s old)
    published.update(public_jwks(second, "2025"))
    clock[0] += 31
    rotated = assertion(second, "RS384", aud=token_url, kid="2025")
    assert httpx.post(token_url, data=token_form(rotated)).status_code == 200


def test_behind_a_proxy_the_configured_address_is_the_only_audience(backend: Backend,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``public_base_url`` set, an assertion made for the address the request came in on (which follows the
    Host header a caller chooses) is refused; one made for the configured address is accepted."""
    public = "https://priorscan.example.nhs.uk"
    context = backend.server.context
    monkeypatch.setattr(context, "settings", context.settings.model_copy(update={"public_base_url": public + "/"}))
    config = httpx.get(backend.server.base_url + "/.well-known/smart-configuration").json()
    assert config["token_endpoint"] == public + "/oauth2/token"
    assert _error(backend.request(token_form(backend.assertion()))) == (401, "invalid_client")
    accepted = backend.request(token_form(backend.assertion(aud=public + "/oauth2/token")))
    assert accepted.status_code == 200, accepted.text
    # made for an address of the caller's choosing, sent with that address as Host: refused all the same
    spoofed = httpx.post(backend.token_url, data=token_form(backend.assertion(aud="http://evil.example/oauth2/token")),
                         headers={"Host": "evil.example"})
    assert _error(spoofed) == (401, "invalid_client")
