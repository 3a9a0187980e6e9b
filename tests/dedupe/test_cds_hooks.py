"""CDS Hooks 2.0 over a real HTTP server: discovery, JWT authentication of the EHR, cards, and feedback."""

from __future__ import annotations

import time
import uuid
from datetime import date
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from dedupe_factories import add_patient, add_study, nhs_number
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from dedupe.tables import Alert
from priorscan.tables import CdsTrustedIssuer
from priorscan.trusts import NHS_NUMBER_SYSTEM, ODS_SYSTEM

ISSUER = "https://ehr.rxc.example.nhs.uk"
EC_KEY = ec.generate_private_key(ec.SECP384R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks() -> dict[str, Any]:
    keys = [{**ECAlgorithm.to_jwk(EC_KEY.public_key(), as_dict=True), "kid": "ec-1", "alg": "ES384"},
            {**RSAAlgorithm.to_jwk(RSA_KEY.public_key(), as_dict=True), "kid": "rsa-1", "alg": "RS384"}]
    return {"keys": keys}


def signed(server, service: str = "order-sign", *, algorithm: str = "ES384", **claims: Any) -> str:  # type: ignore[no-untyped-def]
    now = int(time.time())
    body = {"iss": ISSUER, "aud": f"{server.base_url}/cds-services/{service}", "iat": now, "exp": now + 120,
            "jti": str(uuid.uuid4()), **claims}
    body = {k: v for k, v in body.items() if v is not None}
    key, kid = (EC_KEY, "ec-1") if algorithm == "ES384" else (RSA_KEY, "rsa-1")
    return jwt.encode(body, key, algorithm=algorithm, headers={"kid": kid})


@pytest.fixture
def server(live_server_sqlite):  # type: ignore[no-untyped-def]
    with live_server_sqlite.context.sessions() as session:
        session.add(CdsTrustedIssuer(issuer=ISSUER, jwks=jwks()))
        session.commit()
    return live_server_sqlite


def seed(server, n: int, *, dose: float | None = 2.1) -> str:  # type: ignore[no-untyped-def]
    number = nhs_number(n)
    with server.context.sessions() as session:
        _, record = add_patient(session, server.context.trusts, local_id=f"AB8{n:05d}", nhs=number)
        add_study(session, record, days_ago=6, on=date.today(), dose=dose)
        session.commit()
    return number


def hook_request(number: str, hook: str = "order-sign", *, drafts: tuple[str, ...] = ("d1",),
                 selections: list[str] | None = None) -> dict[str, Any]:
    entries = [{"resource": {"resourceType": "ServiceRequest", "id": draft, "status": "draft", "intent": "order",
                             "code": {"coding": [{"system": "https://fhir.nhs.uk/CodeSystem/NICIP", "code": "CHEAD",
                                                  "display": "CT Head"}]},
                             "subject": {"reference": "Patient/ehr-123"},
                             "requester": {"identifier": {"system": ODS_SYSTEM, "value": "RXC"}}}}
               for draft in drafts]
    context: dict[str, Any] = {"userId": "Practitioner/77", "patientId": "ehr-123",
                               "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": entries}}
    if selections is not None:
        context["selections"] = selections
    return {"hookInstance": str(uuid.uuid4()), "hook": hook, "context": context,
            "prefetch": {"patient": {"resourceType": "Patient", "id": "ehr-123",
                                     "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": number}]}}}


def call(server, token: str, body: dict[str, Any], service: str = "order-sign") -> httpx.Response:  # type: ignore[no-untyped-def]
    return httpx.post(f"{server.base_url}/cds-services/{service}", json=body,
                      headers={"Authorization": f"Bearer {token}"})


def test_discovery_answers_a_caller_with_a_token(server) -> None:  # type: ignore[no-untyped-def]
    answer = httpx.get(f"{server.base_url}/cds-services",
                       headers={"Authorization": f"Bearer {server.token(['priorscan/duplicate-check'])}"})
    assert answer.status_code == 200
    services = {s["id"]: s for s in answer.json()["services"]}
    assert set(services) == {"order-select", "order-sign"}
    for service in services.values():
        assert {"hook", "title", "description", "id", "prefetch"} <= set(service)
        assert service["prefetch"] == {"patient": "Patient/{{context.patientId}}"}


@pytest.mark.parametrize("algorithm", ["ES384", "RS384"])
def test_order_sign_with_a_signed_jwt_answers_with_a_card(server, algorithm: str) -> None:  # type: ignore[no-untyped-def]
    number = seed(server, 1 if algorithm == "ES384" else 2)
    answer = call(server, signed(server, algorithm=algorithm), hook_request(number))
    assert answer.status_code == 200, answer.text
    [card] = answer.json()["cards"]
    assert len(card["summary"]) < 140
    assert card["indicator"] == "warning"
    assert card["source"]["label"]
    assert card["links"][0]["type"] == "absolute" and card["links"][0]["url"].startswith("https://pacs.")
    assert {r["code"] for r in card["overrideReasons"]} >= {"clinical-change", "prior-unavailable"}
    [suggestion] = card["suggestions"]
    assert suggestion["actions"] == [{"type": "delete", "description": "Remove the draft imaging order",
                                      "resourceId": "ServiceRequest/d1"}]
    assert card["selectionBehavior"] == "at-most-one"
    with server.context.sessions() as session:
        alert = session.get(Alert, card["uuid"])
        assert (alert.channel, alert.requesting_trust, alert.placer_order_number) == ("cds-hooks", "RXC", "cds:d1")


def _hs256(server) -> str:  # type: ignore[no-untyped-def]
    now = int(time.time())
    return jwt.encode({"iss": ISSUER, "aud": f"{server.base_url}/cds-services/order-sign", "iat": now,
                       "exp": now + 60, "jti": "x"}, "a-shared-secret-that-is-long-enough-for-hs256", algorithm="HS256")


def _none(server) -> str:  # type: ignore[no-untyped-def]
    now = int(time.time())
    return jwt.encode({"iss": ISSUER, "aud": f"{server.base_url}/cds-services/order-sign", "iat": now,
                       "exp": now + 60, "jti": "y"}, None, algorithm="none")


@pytest.mark.parametrize(("token", "why"), [
    (_hs256, "HMAC is never accepted"),
    (_none, "alg none is never accepted"),
    (lambda s: signed(s, aud="https://elsewhere.example/cds-services/order-sign"), "aud must name this service"),
    (lambda s: signed(s, iss="https://untrusted.example"), "the issuer must be trusted"),
    (lambda s: signed(s, exp=int(time.time()) + 3600), "exp at most five minutes ahead"),
    (lambda s: signed(s, exp=int(time.time()) - 600, iat=int(time.time()) - 900), "expired"),
    (lambda s: signed(s, exp=10**20), "exp past any date (was a 500: the check made a datetime of it)"),
    (lambda s: signed(s, iat=None), "iat is required"),
    (lambda s: signed(s, aud=None), "aud is required"),
    (lambda s: signed(s, nbf=int(time.time()) + 600), "not yet valid"),
    (lambda s: signed(s, jti=None), "jti is required"),
    (lambda s: jwt.encode({"iss": ISSUER, "aud": f"{s.base_url}/cds-services/order-sign", "iat": int(time.time()),
                           "exp": int(time.time()) + 60, "jti": "z"}, ec.generate_private_key(ec.SECP384R1()),
                          algorithm="ES384", headers={"kid": "ec-1"}), "signed by a key not in the JWKS"),
    (lambda s: "a!b.c$d.e", "three parts, but not base64url"),
    (lambda s: "e30.W10.sig", "the claims are a JSON array, not an object"),
    (lambda s: signed(s) + "x", "a signature altered after the unverified read chose the key"),
])
def test_bad_jwts_are_refused(server, token, why: str) -> None:  # type: ignore[no-untyped-def]
    answer = call(server, token(server), hook_request(nhs_number(3)))
    assert answer.status_code == 401, why
    assert "CDS client JWT refused" in answer.text


def test_a_replayed_jwt_is_refused(server) -> None:  # type: ignore[no-untyped-def]
    token = signed(server)
    assert call(server, token, hook_request(nhs_number(4))).status_code == 200
    replay = call(server, token, hook_request(nhs_number(4)))
    assert (replay.status_code, "replay" in replay.text) == (401, True)


def test_a_priorscan_token_with_the_duplicate_check_scope_is_accepted(server) -> None:  # type: ignore[no-untyped-def]
    number = seed(server, 5)
    assert call(server, server.token(["priorscan/duplicate-check"]), hook_request(number)).status_code == 200
    assert call(server, server.token(["priorscan/alerts"]), hook_request(number)).status_code == 403
    assert httpx.post(f"{server.base_url}/cds-services/order-sign", json=hook_request(number)).status_code == 401
    assert call(server, server.token(), hook_request(number), service="patient-view").status_code == 404


def test_order_select_checks_the_selected_drafts_only(server) -> None:  # type: ignore[no-untyped-def]
    number = seed(server, 6)
    body = hook_request(number, "order-select", drafts=("d1", "d2"), selections=["ServiceRequest/d2"])
    cards = call(server, signed(server, "order-select"), body, service="order-select").json()["cards"]
    assert [c["suggestions"][0]["actions"][0]["resourceId"] for c in cards] == ["ServiceRequest/d2"]


def test_feedback_overridden_and_accepted(server) -> None:  # type: ignore[no-untyped-def]
    first = call(server, signed(server), hook_request(seed(server, 7), drafts=("a1",))).json()["cards"][0]
    second = call(server, signed(server), hook_request(seed(server, 8, dose=None), drafts=("a2",))).json()["cards"][0]
    third = call(server, signed(server), hook_request(seed(server, 9), drafts=("a3",))).json()["cards"][0]
    reason = first["overrideReasons"][0]
    feedback = {"feedback": [
        {"card": first["uuid"], "outcome": "overridden", "outcomeTimestamp": "2025-03-31T10:00:00Z",
         "overrideReason": {"reason": reason, "userComment": "new neurology"}},
        {"card": second["uuid"], "outcome": "accepted", "outcomeTimestamp": "2025-03-31T10:00:00Z",
         "acceptedSuggestions": [{"id": second["suggestions"][0]["uuid"]}]},
        {"card": third["uuid"], "outcome": "overridden", "outcomeTimestamp": "2025-03-31T10:00:00Z"},
    ]}
    answer = httpx.post(f"{server.base_url}/cds-services/order-sign/feedback", json=feedback,
                        headers={"Authorization": f"Bearer {signed(server, 'order-sign/feedback')}"})
    assert answer.status_code == 200, answer.text
    with server.context.sessions() as session:
        overridden, cancelled, untouched = (session.get(Alert, c["uuid"]) for c in (first, second, third))
        assert (overridden.status, overridden.reason_code, overridden.comment) == ("overridden", reason["code"],
                                                                                  "new neurology")
        assert (cancelled.status, cancelled.dose_avoided_msv) == ("cancelled", 1.5)  # typical CT head dose
        assert untouched.status == "open"  # overridden without a reason: recorded, the alert stays open
