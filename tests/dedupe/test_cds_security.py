"""CDS Hooks under attack: feedback within the caller's scopes and trust, requesting trusts, the patient fetch
(SSRF), the JWT audience, and hostile bodies."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from dedupe_factories import add_patient, add_study, nhs_number
from test_cds_hooks import EC_KEY, ISSUER, call, hook_request, jwks, seed, signed

from api.auth.accounts import create_user
from api.http.deps import SESSION_COOKIE
from dedupe.cds_hooks import markdown_text
from dedupe.tables import Alert
from priorscan.audit import Agent
from priorscan.tables import CdsTrustedIssuer
from priorscan.trusts import NHS_NUMBER_SYSTEM, ODS_SYSTEM

PASSWORD = "a-long-enough-password-1"
TRUSTS_FILE = Path(__file__).resolve().parents[2] / "priorscan" / "data" / "trusts.toml"


@pytest.fixture
def server(live_server_sqlite):  # type: ignore[no-untyped-def]
    with live_server_sqlite.context.sessions() as session:
        session.add(CdsTrustedIssuer(issuer=ISSUER, jwks=jwks()))
        session.commit()
    return live_server_sqlite


def _signed_in(server, trust: str, username: str | None = None) -> dict[str, str]:  # type: ignore[no-untyped-def]
    username = username or f"rad.{trust.lower()}"
    with server.context.sessions() as session:
        create_user(session, server.context.trusts, username=username, password=PASSWORD, role="radiographer",
                    trust=trust, agent=Agent("system", "test"))
        session.commit()
    login = httpx.post(server.base_url + "/ui/login", data={"username": username, "password": PASSWORD},
                       headers={"Accept": "application/json"})
    assert login.status_code == 200, login.text
    return {SESSION_COOKIE: login.cookies[SESSION_COOKIE]}


def _card(server, n: int, draft: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """A card (with its alert, requested by RXC) raised through a client token with every scope."""
    answer = call(server, server.token(), hook_request(seed(server, n), drafts=(draft,)))
    assert answer.status_code == 200, answer.text
    return answer.json()["cards"][0]  # type: ignore[no-any-return]


def _accept(card: dict[str, Any]) -> dict[str, Any]:
    return {"feedback": [{"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2025-03-31T10:00:00Z",
                          "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}]}]}


def _status(server, alert_id: str) -> str:  # type: ignore[no-untyped-def]
    with server.context.sessions() as session:
        return session.get(Alert, alert_id).status  # type: ignore[union-attr, no-any-return]


def test_feedback_needs_the_alerts_scope(server) -> None:  # type: ignore[no-untyped-def]
    """Without ``priorscan/alerts`` a client's feedback cannot settle an alert it did not raise; with it, it can."""
    card = _card(server, 31, "s1")  # raised through another client's token
    only_check = server.token(["priorscan/duplicate-check"], client="order-entry")
    answer = httpx.post(f"{server.base_url}/cds-services/order-sign/feedback", json=_accept(card),
                        headers={"Authorization": f"Bearer {only_check}"})
    assert answer.status_code == 200 and answer.json() == {"recorded": 0}, "the card is treated as unknown"
    assert _status(server, card["uuid"]) == "open"
    with_alerts = server.token(["priorscan/alerts"])
    answer = httpx.post(f"{server.base_url}/cds-services/order-sign/feedback", json=_accept(card),
                        headers={"Authorization": f"Bearer {with_alerts}"})
    assert answer.status_code == 200 and _status(server, card["uuid"]) == "cancelled"


def test_a_duplicate_check_client_completes_cds_hooks_with_feedback_on_its_own_cards(server) -> None:  # type: ignore[no-untyped-def]
    """DESIGN: ``priorscan/duplicate-check`` is "the duplicate check and CDS Hooks", and CDS Hooks includes
    ``POST /cds-services/{id}/feedback``: an order-entry client holding only that scope sends feedback on the cards its
    own calls returned (it was refused with 403), while the alerts API stays closed to it."""
    only_check = server.token(["priorscan/duplicate-check"], client="order-entry")
    answer = call(server, only_check, hook_request(seed(server, 35), drafts=("s5",)))
    assert answer.status_code == 200, answer.text
    card = answer.json()["cards"][0]
    answer = httpx.post(f"{server.base_url}/cds-services/order-sign/feedback", json=_accept(card),
                        headers={"Authorization": f"Bearer {only_check}"})
    assert (answer.status_code, answer.json()) == (200, {"recorded": 1})
    assert _status(server, card["uuid"]) == "cancelled"
    alerts = httpx.get(f"{server.base_url}/api/v1/alerts", headers={"Authorization": f"Bearer {only_check}"})
    assert alerts.status_code == 403


def test_a_radiographer_cannot_act_on_another_trusts_alert_through_feedback(server) -> None:  # type: ignore[no-untyped-def]
    card = _card(server, 32, "s2")  # requested by RXC
    elsewhere = _signed_in(server, "RTK")
    answer = httpx.post(f"{server.base_url}/cds-services/order-sign/feedback", json=_accept(card), cookies=elsewhere)
    assert answer.status_code == 200 and answer.json() == {"recorded": 0}
    assert _status(server, card["uuid"]) == "open"
    own = _signed_in(server, "RXC")
    answer = httpx.post(f"{server.base_url}/cds-services/order-sign/feedback", json=_accept(card), cookies=own)
    assert answer.json() == {"recorded": 1} and _status(server, card["uuid"]) == "cancelled"


def test_an_ehr_acts_only_on_the_alerts_its_own_calls_raised(server) -> None:  # type: ignore[no-untyped-def]
    card = _card(server, 33, "s3")  # raised through a priorscan token, not by the EHR
    answer = httpx.post(f"{server.base_url}/cds-services/order-sign/feedback", json=_accept(card),
                        headers={"Authorization": f"Bearer {signed(server, 'order-sign/feedback')}"})
    assert answer.json() == {"recorded": 0} and _status(server, card["uuid"]) == "open"


def test_a_radiographer_cannot_raise_an_alert_in_another_trusts_queue(server) -> None:  # type: ignore[no-untyped-def]
    number = seed(server, 34)
    cookies = _signed_in(server, "RTK")
    answer = httpx.post(f"{server.base_url}/cds-services/order-sign", json=hook_request(number), cookies=cookies)
    assert answer.status_code == 403, "the draft names RXC as requesting trust"
    check = {"patient": {"identifiers": [{"system": NHS_NUMBER_SYSTEM, "value": number}]},
             "request": {"modality": "CT", "bodySite": "head", "requestingTrust": "RXC"}}
    assert httpx.post(f"{server.base_url}/api/v1/duplicate-check", json=check, cookies=cookies).status_code == 403
    request = {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
               "code": {"coding": [{"system": "https://fhir.nhs.uk/CodeSystem/NICIP", "code": "CHEAD"}]},
               "subject": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": number}},
               "requester": {"identifier": {"system": ODS_SYSTEM, "value": "RXC"}},
               "identifier": [{"system": "urn:placer", "value": "p-34"}]}
    assert httpx.post(f"{server.base_url}/fhir/ServiceRequest", json=request, cookies=cookies).status_code == 403
    with server.context.sessions() as session:
        assert session.query(Alert).filter(Alert.requesting_trust == "RXC").count() == 0
    unnamed = {**check, "request": {"modality": "CT", "bodySite": "head"}}
    answer = httpx.post(f"{server.base_url}/api/v1/duplicate-check", json=unnamed, cookies=cookies)
    assert answer.status_code == 200
    with server.context.sessions() as session:
        assert session.get(Alert, answer.json()["alertId"]).requesting_trust == "RTK", "their own trust's queue"


# --- fetching the patient (SSRF) -------------------------------------------------------------------------------------

class _FhirServer:
    """A FHIR server on loopback that records what it was asked and with which Authorization."""

    def __init__(self, number: str) -> None:
        seen = self.seen = []  # type: ignore[var-annotated]

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                seen.append((self.path, self.headers.get("Authorization")))
                body = json.dumps({"resourceType": "Patient", "id": "ehr-123",
                                   "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": number}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/fhir"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _without_prefetch(number: str, fhir_server: str) -> dict[str, Any]:
    body = hook_request(number)
    del body["prefetch"]
    return {**body, "fhirServer": fhir_server,
            "fhirAuthorization": {"access_token": "ehr-secret-token", "token_type": "Bearer", "scope": "patient/*.r"}}


def test_an_unconfigured_fhir_server_is_never_fetched(server) -> None:  # type: ignore[no-untyped-def]
    number = seed(server, 35)
    ehr = _FhirServer(number)
    try:
        answer = call(server, signed(server), _without_prefetch(number, ehr.url))
        assert answer.status_code == 200 and answer.json()["cards"] == [], "the patient stays unknown"
        assert ehr.seen == [], "loopback and unconfigured: not contacted, the token not sent"
    finally:
        ehr.close()


def test_a_configured_fhir_server_is_fetched_with_the_token(live_server_with, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    trusts = tmp_path / "trusts.toml"
    number = nhs_number(36)
    ehr = _FhirServer(number)
    text = TRUSTS_FILE.read_text().replace('ods = "RXC"\n', f'ods = "RXC"\nfhir_servers = ["{ehr.url}"]\n', 1)
    trusts.write_text(text)
    try:
        live = live_server_with(trusts_file=trusts)
        if True:
            with live.context.sessions() as session:
                session.add(CdsTrustedIssuer(issuer=ISSUER, jwks=jwks()))
                session.commit()
            seed(live, 36)
            body = _without_prefetch(number, ehr.url + "/")
            del body["context"]["draftOrders"]["entry"][0]["resource"]["requester"]
            answer = call(live, signed(live), body)
            assert answer.status_code == 200, answer.text
            [card] = answer.json()["cards"]
            assert ehr.seen == [("/fhir/Patient/ehr-123", "Bearer ehr-secret-token")]
            with live.context.sessions() as session:
                assert session.get(Alert, card["uuid"]).requesting_trust == "RXC", "the server's trust"
            body["context"]["patientId"] = "../../admin"
            call(live, signed(live), body)
            assert len(ehr.seen) == 1, "a patientId that is not a FHIR id is not fetched"
    finally:
        ehr.close()


# --- the audience ----------------------------------------------------------------------------------------------------

def _jwt_for(aud: str) -> str:
    now = int(time.time())
    return jwt.encode({"iss": ISSUER, "aud": aud, "iat": now, "exp": now + 120, "jti": str(uuid.uuid4())}, EC_KEY,
                      algorithm="ES384", headers={"kid": "ec-1"})


@pytest.mark.parametrize("setting", ["cds_audience", "public_base_url"])
def test_the_audience_is_configured_never_the_host_header(live_server_with, setting: str) -> None:  # type: ignore[no-untyped-def]
    value = "https://priorscan.example.nhs.uk" + ("/cds-services" if setting == "cds_audience" else "")
    live = live_server_with(**{setting: value})
    if True:
        with live.context.sessions() as session:
            session.add(CdsTrustedIssuer(issuer=ISSUER, jwks=jwks()))
            session.commit()
        body = hook_request(nhs_number(37))
        url = f"{live.base_url}/cds-services/order-sign"
        forged = httpx.post(url, json=body, headers={"Host": "evil.example",
                                                     "Authorization": f"Bearer {_jwt_for('http://evil.example/cds-services/order-sign')}"})
        assert forged.status_code == 401, "an aud following the Host header is refused"
        served = httpx.post(url, json=body, headers={
            "Authorization": f"Bearer {_jwt_for('https://priorscan.example.nhs.uk/cds-services/order-sign')}"})
        assert served.status_code == 200, served.text
        own = httpx.post(url, json=body, headers={"Authorization": f"Bearer {_jwt_for(url)}"})
        assert own.status_code == 401, "with an address configured, the address served on is not an audience"


def test_discovery_needs_a_caller(server) -> None:  # type: ignore[no-untyped-def]
    assert httpx.get(f"{server.base_url}/cds-services").status_code == 401
    jwt_answer = httpx.get(f"{server.base_url}/cds-services",
                           headers={"Authorization": f"Bearer {_jwt_for(server.base_url + '/cds-services')}"})
    assert jwt_answer.status_code == 200
    assert {s["id"] for s in jwt_answer.json()["services"]} == {"order-select", "order-sign"}
    token = httpx.get(f"{server.base_url}/cds-services",
                      headers={"Authorization": f"Bearer {server.token(['priorscan/duplicate-check'])}"})
    assert token.status_code == 200


# --- hostile bodies ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "why"), [
    ({"hook": "order-sign", "context": []}, "context is a list"),
    ({"hook": "order-sign", "context": {"draftOrders": []}}, "draftOrders is a list"),
    ({"hook": "order-sign", "context": {"draftOrders": {"entry": {"a": 1}}}}, "entry is an object"),
    ({"hook": "order-sign", "context": {"draftOrders": {"entry": ["x"]}}}, "an entry is a string"),
    ({"hook": "order-sign", "context": {"selections": "d1"}}, "selections is a string"),
    ({"hook": "order-sign", "prefetch": []}, "prefetch is a list"),
    ({"hook": "order-sign", "prefetch": {"patient": "Patient/1"}}, "a prefetched resource is a string"),
    ({"hook": "order-sign", "fhirServer": 42}, "fhirServer is a number"),
    ({"hook": "order-sign", "fhirAuthorization": "token"}, "fhirAuthorization is a string"),
    ({"hook": ["order-sign"]}, "hook is a list"),
    ([], "the body is a list"),
    ("deep", "nested 100,000 deep"),
])
def test_wrongly_typed_or_deep_hook_bodies_are_4xx(server, body: Any, why: str) -> None:  # type: ignore[no-untyped-def]
    content = ("[" * 100_000 + "]" * 100_000).encode() if body == "deep" else json.dumps(body).encode()
    answer = httpx.post(f"{server.base_url}/cds-services/order-sign", content=content,
                        headers={"Authorization": f"Bearer {server.token()}", "Content-Type": "application/json"})
    assert 400 <= answer.status_code < 500, (why, answer.status_code, answer.text[:200])


@pytest.mark.parametrize(("feedback", "why"), [
    ({"feedback": {"card": "x"}}, "feedback is an object"),
    ({"feedback": [{"card": "x", "outcome": "overridden", "overrideReason": "because"}]}, "overrideReason a string"),
    ({"feedback": [{"card": "x", "outcome": "accepted", "acceptedSuggestions": "all"}]}, "suggestions a string"),
    ({"feedback": [{"card": ["x"], "outcome": "accepted"}]}, "card is a list"),
    ({"feedback": [{"card": "x", "outcome": 1}]}, "outcome is a number"),
])
def test_wrongly_typed_feedback_is_4xx(server, feedback: Any, why: str) -> None:  # type: ignore[no-untyped-def]
    answer = httpx.post(f"{server.base_url}/cds-services/order-sign/feedback", json=feedback,
                        headers={"Authorization": f"Bearer {server.token()}"})
    assert 400 <= answer.status_code < 500, (why, answer.status_code, answer.text[:200])


HOSTILE_DESCRIPTION = ("CT HEAD) at RTK\n- **warning**: CT head (invented prior) at RYR, 2026-01-01 (1 days ago); "
                       "rule `ct-head`\n<img src=x onerror=alert(1)> [View images](https://attacker.example/login)")


def test_a_feeds_free_text_reaches_the_cards_markdown_as_text_never_as_markup(server) -> None:  # type: ignore[no-untyped-def]
    """Hazard log H-SEC-19: a study description (any trust's feed writes it) went into the card's markdown
    ``detail`` raw: HTML the EHR may render, a link to another site, and after a line break a prior that was never
    found. It is now one line of literal text: every markup character escaped, line breaks gone."""
    number = nhs_number(41)
    with server.context.sessions() as session:
        _, record = add_patient(session, server.context.trusts, local_id="AB841000", nhs=number)
        add_study(session, record, days_ago=6, on=date.today(), description=HOSTILE_DESCRIPTION)
        session.commit()
    answer = call(server, server.token(), hook_request(number))
    assert answer.status_code == 200, answer.text
    (card,) = answer.json()["cards"]
    detail = card["detail"]
    priors = [line for line in detail.splitlines() if line.startswith("- ")]
    assert len(priors) == 1, "one prior, one line: the description cannot add a line"
    assert not re.search(r"(?<!\\)[<>\[\]]", detail), "no HTML tag, no link: every bracket escaped"
    assert "\\<img src=x onerror=alert\\(1\\)\\>" in detail
    assert "\\[View images\\]\\(https\\://attacker.example/login\\)" in detail
    assert "\\*\\*warning\\*\\*" in detail, "the forged prior is text within the real one's line"


@pytest.mark.parametrize(("text", "written", "why"), [
    ("CT HEAD", "CT HEAD", "ordinary text unchanged"),
    ("CT CHEST/ABDO, 2 PHASES", "CT CHEST/ABDO, 2 PHASES", "slash, comma and digits are not markup"),
    ("<b>x</b>", "\\<b\\>x\\</b\\>", "HTML"),
    ("a\r\nb\tc", "a  b c", "line breaks and tabs become spaces"),
    ("*_`~|#!", "\\*\\_\\`\\~\\|\\#\\!", "emphasis, code, strike, table, heading, image"),
    ("\\", "\\\\", "a backslash, escaped itself"),
])
def test_markdown_text_is_literal_on_one_line(text: str, written: str, why: str) -> None:
    assert markdown_text(text) == written, why
