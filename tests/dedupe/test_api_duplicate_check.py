"""``POST /api/v1/duplicate-check`` and the alert endpoints over a real HTTP server (DESIGN.md section 6)."""

from __future__ import annotations

from datetime import date

import httpx
from dedupe_factories import add_patient, add_study, nhs_number
from sqlalchemy import select

from priorscan.tables import UserAccount
from priorscan.trusts import NHS_NUMBER_SYSTEM

CONTRACT_PRIOR = {"studyInstanceUid", "accessionNumber", "trust", "studyDate", "daysAgo", "modality", "bodySite",
                  "laterality", "description", "effectiveDoseMsv", "severity", "rule", "viewerUrl"}


def seed(server, n: int, *, days_ago: int = 10, trust: str = "RTK", dose: float | None = 1.8) -> str:  # type: ignore[no-untyped-def]
    """A patient with a CT head ``days_ago`` days before today at ``trust``; their NHS number."""
    number = nhs_number(n)
    with server.context.sessions() as session:
        _, record = add_patient(session, server.context.trusts, trust=trust, local_id=f"AB5{n:05d}", nhs=number)
        add_study(session, record, days_ago=days_ago, on=date.today(), trust=trust, dose=dose)
        session.commit()
    return number


def body(number: str, **request: object) -> dict:  # type: ignore[type-arg]
    return {"patient": {"identifiers": [{"system": NHS_NUMBER_SYSTEM, "value": number}]},
            "request": {"modality": "CT", "bodySite": "head", "requestingTrust": "RXC", **request}}


def test_the_contract_on_both_backends(live_server) -> None:  # type: ignore[no-untyped-def]
    number = seed(live_server, 1)
    token = live_server.token(["priorscan/duplicate-check"])
    answer = httpx.post(f"{live_server.base_url}/api/v1/duplicate-check", json=body(number, placerOrderNumber="P1"),
                        headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    result = answer.json()
    assert {"regionalPatientId", "identity", "verdict", "priors", "alertId"} <= set(result)
    assert (result["identity"], result["verdict"]) == ("confirmed", "warning")
    assert CONTRACT_PRIOR <= set(result["priors"][0])
    assert result["priors"][0]["viewerUrl"].startswith("https://")
    assert result["alertId"]
    clear = httpx.post(f"{live_server.base_url}/api/v1/duplicate-check", json=body(number, bodySite="knee"),
                       headers={"Authorization": f"Bearer {token}"}).json()
    assert (clear["verdict"], clear["priors"], clear["alertId"]) == ("clear", [], None)


def test_the_answer_is_json_serialised_by_the_route() -> None:
    from api.http.routers.duplicate_check import json_response

    answer = json_response({"verdict": "clear", "effectiveDoseMsv": float("nan"), "trustName": "Hôpital"})
    assert answer.media_type == "application/json"
    assert answer.headers["content-length"] == str(len(answer.body))
    # a non-finite number would make invalid JSON: it becomes null; text stays UTF-8, not escaped
    assert answer.body == '{"verdict":"clear","effectiveDoseMsv":null,"trustName":"Hôpital"}'.encode()


def test_authentication_scope_and_validation(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    server = live_server_sqlite
    url = f"{server.base_url}/api/v1/duplicate-check"
    assert httpx.post(url, json=body(nhs_number(2))).status_code == 401
    alerts_only = server.token(["priorscan/alerts"])
    assert httpx.post(url, json=body(nhs_number(2)), headers={"Authorization": f"Bearer {alerts_only}"}
                      ).status_code == 403
    token = {"Authorization": f"Bearer {server.token(['priorscan/duplicate-check'])}"}
    no_procedure = httpx.post(url, json={"patient": {}, "request": {"modality": "CT"}}, headers=token)
    assert no_procedure.status_code == 422
    assert "code, or a modality and a bodySite" in no_procedure.text
    assert httpx.post(url, json=body(nhs_number(2), requestingTrust="XYZ"), headers=token).status_code == 422
    by_code = httpx.post(url, json={"patient": {"name": {"family": "Nobody", "given": ["Known"]},
                                                "birthDate": "1901-01-01"},
                                    "request": {"code": {"system": "NICIP", "code": "CHEAD", "display": "CT Head"}}},
                         headers=token)
    assert by_code.status_code == 200
    assert (by_code.json()["identity"], by_code.json()["request"]["bodySite"]) == ("unknown", "head")


def test_the_alert_lifecycle_over_http(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    server = live_server_sqlite
    headers = {"Authorization": f"Bearer {server.token()}"}
    alert_ids = []
    for n in (3, 4, 5):
        answer = httpx.post(f"{server.base_url}/api/v1/duplicate-check", headers=headers,
                            json=body(seed(server, n), placerOrderNumber=f"P{n}"))
        alert_ids.append(answer.json()["alertId"])
    listed = httpx.get(f"{server.base_url}/api/v1/alerts", params={"status": "open", "trust": "RXC"},
                       headers=headers).json()["alerts"]
    assert {a["id"] for a in listed} == set(alert_ids)
    assert {"id", "status", "verdict", "identity", "regionalPatientId", "requestingTrust", "placerOrderNumber",
            "createdAt", "request", "priors"} <= set(listed[0])
    first, second, third = alert_ids
    base = f"{server.base_url}/api/v1/alerts"
    assert httpx.post(f"{base}/{first}/acknowledge", json={"user": "rad.x"}, headers=headers).json()["status"] == \
        "acknowledged"
    bad = httpx.post(f"{base}/{second}/override", json={"reason": {"code": "whim"}}, headers=headers)
    assert bad.status_code == 422
    done = httpx.post(f"{base}/{second}/override", headers=headers,
                      json={"reason": {"system": "urn:priorscan:duplicate-override-reason",
                                       "code": "different-question"}, "comment": "new symptoms", "user": "dr.y"})
    assert (done.status_code, done.json()["reason"]["code"]) == (200, "different-question")
    cancelled = httpx.post(f"{base}/{third}/cancel", json={"user": "dr.z"}, headers=headers).json()
    assert (cancelled["status"], cancelled["doseAvoidedMsv"]) == ("cancelled", 1.8)
    assert httpx.post(f"{base}/{third}/override", json={"reason": {"code": "other"}, "comment": "x"},
                      headers=headers).status_code == 409
    assert httpx.post(f"{base}/nope/acknowledge", json={}, headers=headers).status_code == 404
    detail = httpx.get(f"{base}/{second}", headers=headers).json()
    assert [e["action"] for e in detail["history"]] == ["created", "overridden"]
    assert [a["id"] for a in httpx.get(base, params={"status": "open"}, headers=headers).json()["alerts"]] == []


def test_a_person_of_one_trust_sees_that_trusts_alerts_only(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    from api.auth.accounts import create_user
    from api.auth.web_session import sign_session
    from api.http.deps import SESSION_COOKIE
    from priorscan.audit import SYSTEM

    server = live_server_sqlite
    headers = {"Authorization": f"Bearer {server.token()}"}
    for n, trust in ((6, "RXC"), (7, "RYR")):
        httpx.post(f"{server.base_url}/api/v1/duplicate-check", headers=headers,
                   json=body(seed(server, n), requestingTrust=trust, placerOrderNumber=f"Q{n}"))
    with server.context.sessions() as session:
        create_user(session, server.context.trusts, username="rad.rxc", password="a long password 1",
                    role="radiographer", trust="RXC", agent=SYSTEM)
        session.commit()
        user = session.scalars(select(UserAccount).where(UserAccount.username == "rad.rxc")).one()
        cookie = sign_session(server.context.settings, user)
    with httpx.Client(base_url=server.base_url, cookies={SESSION_COOKIE: cookie}) as browser:
        mine = browser.get("/api/v1/alerts").json()["alerts"]
        assert {a["requestingTrust"] for a in mine} == {"RXC"}
        assert browser.get("/api/v1/alerts", params={"trust": "RYR"}).status_code == 403
        other = httpx.get(f"{server.base_url}/api/v1/alerts", params={"trust": "RYR"}, headers=headers).json()
        assert browser.post(f"/api/v1/alerts/{other['alerts'][0]['id']}/acknowledge", json={}).status_code == 404
