"""The MPI review queue and manual operations over HTTP: scope, audit, decisions that stick, history."""

from __future__ import annotations

from datetime import date

import httpx
from sqlalchemy import select

from mpi import Demographics, PatientIndex
from priorscan.tables import AuditEvent

A = "https://fhir.ashfordstpeters.nhs.uk/Id/hospital-number"  # RTK
B = "https://fhir.esht.nhs.uk/Id/hospital-number"  # RXC


def seed(server) -> None:  # type: ignore[no-untyped-def]
    """One patient, and a second record with a different, unverified NHS number: a possible match."""
    base = {"family": "Whitfield", "given": "Eleanor", "birth_date": date(1978, 3, 14), "sex": "female",
            "postcode": "GU1 4AB", "address": "12 Mill Lane"}
    with server.context.sessions() as session:
        index = PatientIndex(session, server.context.trusts)
        index.upsert(Demographics(A, "A1", nhs_number="9434765919", nhs_verification="01", **base), event="t",
                     actor="feed")
        index.upsert(Demographics(B, "B1", nhs_number="9434765870", nhs_verification="02", **base), event="t",
                     actor="feed")
        session.commit()


def test_scope_is_required(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    url = live_server_sqlite.base_url + "/api/v1/mpi/review"
    assert httpx.get(url).status_code == 401
    token = live_server_sqlite.token(["priorscan/alerts"])
    assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 403


def test_review_queue_decision_and_history(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    server = live_server_sqlite
    seed(server)
    headers = {"Authorization": f"Bearer {server.token(['priorscan/mpi-review'])}"}
    queue = httpx.get(server.base_url + "/api/v1/mpi/review", headers=headers).json()
    assert queue["total"] == 1
    item = queue["items"][0]
    assert item["levels"]["nhs_number"] == "else" and item["fieldWeights"]["birth_date"] > 0
    assert item["guard"] == "different-nhs-numbers"
    assert item["record"]["value"] == "B1" and item["candidate"]["value"] == "A1"

    decided = httpx.post(server.base_url + f"/api/v1/mpi/review/{item['id']}", json={"decision": "match"},
                         headers=headers)
    assert decided.status_code == 200, decided.text
    regional = decided.json()["regionalId"]
    assert httpx.get(server.base_url + "/api/v1/mpi/review", headers=headers).json()["total"] == 0
    again = httpx.post(server.base_url + f"/api/v1/mpi/review/{item['id']}", json={"decision": "match"},
                       headers=headers)
    assert again.status_code == 404

    history = httpx.get(server.base_url + f"/api/v1/mpi/patients/{regional}/history", headers=headers).json()
    assert any(e["manual"] and e["actor"] == "client:test-client" for e in history["events"])
    assert history["events"][0]["reason"].startswith("link-on-write")

    unlinked = httpx.post(server.base_url + "/api/v1/mpi/unlink", headers=headers,
                          json={"a": {"system": "RTK", "value": "A1"}, "b": {"system": B, "value": "B1"}})
    assert unlinked.status_code == 200 and unlinked.json()["regionalId"] != regional
    relinked = httpx.post(server.base_url + "/api/v1/mpi/link", headers=headers,
                          json={"a": {"system": A, "value": "A1"}, "b": {"system": B, "value": "B1"}})
    assert relinked.status_code == 200
    missing = httpx.post(server.base_url + "/api/v1/mpi/unlink", headers=headers,
                         json={"a": {"system": A, "value": "nope"}, "b": {"system": B, "value": "B1"}})
    assert missing.status_code == 404
    assert httpx.get(server.base_url + "/api/v1/mpi/patients/RPNOSUCH/history", headers=headers).status_code == 404

    with server.context.sessions() as session:
        subtypes = set(session.scalars(select(AuditEvent.subtype)))
    assert {"mpi-review-queue", "mpi-review-decision", "mpi-history", "mpi-unlink", "mpi-link"} <= subtypes


def test_a_review_item_is_served_with_its_waterfall(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    server = live_server_sqlite
    seed(server)
    headers = {"Authorization": f"Bearer {server.token(['priorscan/mpi-review'])}"}
    queue = httpx.get(server.base_url + "/api/v1/mpi/review?order=risk", headers=headers).json()
    item_id = queue["items"][0]["id"]
    item = httpx.get(server.base_url + f"/api/v1/mpi/review/{item_id}", headers=headers)
    assert item.status_code == 200, item.text
    body = item.json()
    shown = body["waterfall"]
    assert shown["modelVersion"] == body["modelVersion"] and shown["prior"]["weight"] < 0
    assert [step["comparison"] for step in shown["steps"]] == list(body["fieldWeights"])
    assert shown["total"] == body["weight"] and abs(shown["probability"] - body["probability"]) < 1e-3
    assert "nhsNumberPresent" not in body["differences"] and body["differences"] == []
    assert httpx.get(server.base_url + "/api/v1/mpi/review/999999", headers=headers).status_code == 404
    assert httpx.get(server.base_url + "/api/v1/mpi/review?order=sideways", headers=headers).status_code == 422
    assert httpx.get(server.base_url + f"/api/v1/mpi/review/{item_id}").status_code == 401
    with server.context.sessions() as session:
        assert "mpi-review-item" in set(session.scalars(select(AuditEvent.subtype)))
