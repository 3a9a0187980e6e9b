"""``POST /hl7``: the same service as MLLP over HTTP; 200 with the ACK as text whatever MSA-1 says."""

from __future__ import annotations

import httpx
import pytest
from feeds_factories import RTK, Ack, adt, pid
from sqlalchemy import select

from priorscan.tables import DeadLetter


def test_accepted_and_refused_messages_both_answer_200_with_the_ack(live_server) -> None:  # type: ignore[no-untyped-def]
    token = live_server.token(["priorscan/hl7"])
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/hl7-v2"}
    good = adt("A04", pid("AB900001^^^RTK^MR"), segment_end="\n")
    bad = adt("A08", pid("AB900002^^^RTK^MR", dob="20241340"))
    accepted = httpx.post(f"{live_server.base_url}/hl7", content=good, headers=headers)
    refused = httpx.post(f"{live_server.base_url}/hl7", content=bad, headers={**headers,
                                                                               "Content-Type": "text/plain"})
    assert (accepted.status_code, refused.status_code) == (200, 200)
    assert accepted.headers["content-type"].startswith("text/plain")
    assert (Ack(accepted.text).code, Ack(refused.text).code, Ack(refused.text).error_code) == ("AA", "AE", "102")
    assert httpx.post(f"{live_server.base_url}/hl7", content=good, headers=headers).text == accepted.text
    with live_server.context.sessions() as session:
        letters = session.scalars(select(DeadLetter)).all()
    assert [(d.channel, d.content_type) for d in letters] == [("http-hl7", "hl7v2")]
    from mpi.records import RecordKey
    from mpi.service import PatientIndex

    with live_server.context.sessions() as session:
        assert PatientIndex(session, live_server.context.trusts).get_record(RecordKey(RTK, "AB900001")) is not None


@pytest.mark.parametrize(("scopes", "status"), [
    (None, 401),  # no token at all
    (["system/Patient.cruds"], 403),  # FHIR scopes do not cover the HL7 endpoint
    (["priorscan/duplicate-check"], 403),
])
def test_post_hl7_needs_the_hl7_scope(live_server_sqlite, scopes: list[str] | None, status: int) -> None:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {live_server_sqlite.token(scopes)}"} if scopes else {}
    response = httpx.post(f"{live_server_sqlite.base_url}/hl7", content=adt("A08"), headers=headers)
    assert response.status_code == status


def test_an_oversized_body_is_refused_with_ar(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    limit = live_server_sqlite.context.settings.mllp_max_message_bytes
    big = adt("A08", pid("AB900003^^^RTK^MR"), "ZXX|" + "X" * (limit + 10))
    token = live_server_sqlite.token(["priorscan/hl7"])
    response = httpx.post(f"{live_server_sqlite.base_url}/hl7", content=big,
                          headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert (Ack(response.text).code, Ack(response.text).control_id) == ("AR", big.split("|")[9])


@pytest.mark.parametrize(("accept", "application"), [("NE", "NE"), ("AL", "SU"), ("NE", "ER")])
def test_a_message_asking_for_no_ack_is_still_answered_with_its_verdict(live_server_sqlite, accept: str,  # type: ignore[no-untyped-def]
                                                                       application: str) -> None:
    """Over MLLP a sender may ask for no acknowledgement (MSH-15/16 ``NE``, or ``SU``/``ER`` for the other
    verdict); over HTTP the request has its answer all the same, and an empty 200 would hide a refusal."""
    token = live_server_sqlite.token(["priorscan/hl7"])
    headers = {"Authorization": f"Bearer {token}"}

    def enhanced(message: str) -> str:
        msh, rest = message.split("\r", 1)
        return f"{msh}|||{accept}|{application}\r{rest}"

    good = enhanced(adt("A04", pid("AB900011^^^RTK^MR")))
    bad = enhanced(adt("A08", pid("AB900012^^^RTK^MR", dob="20241340")))
    answers = [httpx.post(f"{live_server_sqlite.base_url}/hl7", content=m, headers=headers) for m in (good, bad)]
    assert [a.status_code for a in answers] == [200, 200]
    verdicts = [Ack("MSH|" + a.text.split("MSH|")[-1]).code for a in answers]  # the last ACK: the application's
    assert verdicts == ["AA", "AE"]
