"""The duplicate-check benchmark's load generator (``bench/bench_dedupe.py``): its prepared requests and its
minimal keep-alive HTTP client against a real server, so that the figures it reports are of real answers."""

from __future__ import annotations

import random
from datetime import date

from dedupe_factories import add_patient, add_study, nhs_number

from bench.bench_dedupe import CHECK_PATH, Connection, check_body, request_bytes, verdict_of, wrk_script
from priorscan.trusts import NHS_NUMBER_SYSTEM


def test_prepared_requests_are_answered_over_one_kept_alive_connection(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    server = live_server_sqlite
    number = nhs_number(51)
    with server.context.sessions() as session:
        _, record = add_patient(session, server.context.trusts, local_id="AB000051", nhs=number)
        add_study(session, record, days_ago=3, modality="XR", region="chest", laterality="none",
                  on=date.today())
        session.commit()
    token = server.token(["priorscan/duplicate-check"])
    body = check_body(random.Random(1), 10)
    body["patient"]["identifiers"] = [{"system": NHS_NUMBER_SYSTEM, "value": number}]
    body["request"].update(modality="XR", bodySite="chest")
    body["request"].pop("laterality", None)
    unknown = check_body(random.Random(2), 10)  # the bench store's patients are not in this one
    conn = Connection(server.port)
    try:
        status, payload = conn.exchange(request_bytes("check", server.port, body, token))
        assert (status, verdict_of("check", payload)) == (200, "warning")
        status, payload = conn.exchange(request_bytes("check", server.port, unknown, token))  # same connection
        assert (status, verdict_of("check", payload)) == (200, "clear")
        status, _ = conn.exchange(request_bytes("check", server.port, unknown, "not-a-token"))
        assert status == 401
    finally:
        conn.close()


def test_a_cds_answer_with_and_without_cards() -> None:
    assert verdict_of("cds", b'{"cards":[]}') == "no-card"
    assert verdict_of("cds", b'{"cards":[{"summary":"XR chest 3 days ago"}]}') == "card"
    assert verdict_of("check", b'{"regionalPatientId":null,"verdict":"info"}') == "info"


def test_the_wrk_script_posts_checks_with_a_fresh_placer_number_each() -> None:
    script = wrk_script(1500, "n1")
    assert f'wrk.format("POST", "{CHECK_PATH}"' in script
    assert '"placerOrderNumber":"W%s-%d-%d"' in script and "counter = counter + 1" in script
    assert "local PATIENTS = 1500" in script
