"""The server starts on both backends and answers /healthz without a token."""

import httpx


def test_healthz_answers_without_a_token(live_server) -> None:  # type: ignore[no-untyped-def]
    response = httpx.get(live_server.base_url + "/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
