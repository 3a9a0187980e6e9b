"""The HTTP door: 401 before the body is read, on every path but the contract's public ones; bodies bounded (413)."""

from __future__ import annotations

import httpx
import pytest

from priorscan.settings import Settings

PATIENT = {"resourceType": "Patient", "name": [{"family": "Door"}]}


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/fhir/Patient", b"{not json"),
    ("PUT", "/fhir/Patient/p1", b"{not json"),
    ("POST", "/fhir/Patient/$match", b"\x00\xff garbage"),
    ("POST", "/fhir", b"[[[["),
    ("POST", "/fhir/ImagingStudy", b"{"),
    ("POST", "/api/v1/duplicate-check", b"{"),
    ("POST", "/cds-services/order-sign", b"{"),
    ("POST", "/cds-services/order-sign/feedback", b"{"),
    ("POST", "/hl7", b"MSH|"),
    ("POST", "/api/v1/alerts/x/override", b"{"),
    ("POST", "/dicomweb/studies", b"--x--"),
    ("GET", "/docs", b""),
    ("GET", "/redoc", b""),
    ("GET", "/openapi.json", b""),
    ("GET", "/cds-services", b""),
    ("GET", "/no/such/route", b""),
], ids=lambda v: v if isinstance(v, str) else None)
def test_no_token_is_401_before_the_body_is_judged(live_server_sqlite, method: str, path: str, body: bytes) -> None:
    answer = httpx.request(method, live_server_sqlite.base_url + path, content=body,
                           headers={"Content-Type": "application/fhir+json"})
    assert answer.status_code == 401, (path, answer.status_code, answer.text[:200])
    assert answer.headers["www-authenticate"] == "Bearer"
    assert b"Door" not in answer.content


def test_a_wrong_token_is_401_before_the_body_is_judged(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    for token in ("ps_not-a-token", "a.b.c"):
        answer = httpx.post(live_server_sqlite.base_url + "/fhir/Patient", content=b"{not json",
                            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"})
        assert answer.status_code == 401
        assert answer.json()["issue"][0]["code"] == "login", "an OperationOutcome under /fhir"


@pytest.mark.parametrize("path", ["/healthz", "/fhir/metadata", "/.well-known/smart-configuration", "/ui/"])
def test_the_public_paths_answer_without_a_token(live_server_sqlite, path: str) -> None:  # type: ignore[no-untyped-def]
    assert httpx.get(live_server_sqlite.base_url + path).status_code == 200


def test_the_api_docs_answer_with_a_token(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {live_server_sqlite.token(['priorscan/alerts'])}"}
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert httpx.get(live_server_sqlite.base_url + path, headers=headers).status_code == 200


def test_a_body_over_the_limit_is_413(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    limit = Settings().http_max_body_bytes
    token = live_server_sqlite.token()
    big = {**PATIENT, "name": [{"family": "x" * (limit + 10)}]}
    for path in ("/fhir/Patient", "/api/v1/duplicate-check"):
        answer = httpx.post(live_server_sqlite.base_url + path, json=big,
                            headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert answer.status_code == 413, path

    def chunks():  # type: ignore[no-untyped-def]  # no Content-Length: counted as it arrives
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    answer = httpx.post(live_server_sqlite.base_url + "/hl7", content=chunks(),
                        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"}, timeout=60)
    assert answer.status_code == 413


def test_every_answer_says_nosniff_and_the_page_its_own_policy(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    """No answer (JSON, an OperationOutcome, a 401, a CSV or an ACK as text) may be sniffed by a browser into a page
    or a script; the web page's shell carries its content security policy as well."""
    base = live_server_sqlite.base_url
    token = live_server_sqlite.token(["system/Patient.rs"])
    answers = [httpx.get(base + "/healthz"), httpx.get(base + "/fhir/metadata"),
               httpx.get(base + "/api/v1/alerts"),
               httpx.get(base + "/fhir/Patient", params={"family": "Door"},
                         headers={"Authorization": f"Bearer {token}"})]
    for answer in answers:
        assert answer.headers.get("x-content-type-options") == "nosniff", (answer.url, answer.headers)
    page = httpx.get(base + "/ui/")
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
