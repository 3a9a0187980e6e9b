"""A request body sent slowly is answered 408 and nothing of it applied; each endpoint class has its own body limit
(hazard log H-SEC-12).

Before, the header deadline (H-SEC-11) ended with the headers: a client holding a token could send them whole and
then a byte now and then of its body, and hold a connection (and the route waiting for the body) for as long as it
liked; the body limits were one for STOW-RS and one for everything else.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable

import httpx
import pytest
from api_factories import ADT, fhir_patient, hl7
from sqlalchemy import func, select

from api.http.guard import BodyTooSlow, _TimedBody
from imaging.tables import Study
from mpi.tables import SourceRecord
from priorscan.tables import HL7MessageLog

BODY_TIMEOUT_S = 2
MIN_BYTES_PER_S = 1000


def _trickled(port: int, head: bytes, body: bytes, within_s: float) -> bytes:
    """Send ``head`` whole, the first half of ``body`` at once, then a byte every half second; the server's answer
    (read until it closes the connection), or what came before ``within_s`` ran out."""
    sock = socket.create_connection(("127.0.0.1", port))
    answer = b""
    try:
        sock.sendall(head + body[: len(body) // 2])
        deadline = time.monotonic() + within_s
        rest = iter(body[len(body) // 2:])
        sock.settimeout(0.5)
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                byte = next(rest, None)
                if byte is not None:
                    try:
                        sock.sendall(bytes([byte]))
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break
            answer += chunk
    finally:
        sock.close()
    return answer


def _head(path: str, token: str, media: str, length: int) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: priorscan\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: {media}\r\nContent-Length: {length}\r\n\r\n").encode()


def _counts(server) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    with server.context.sessions() as s:
        return tuple(s.scalar(select(func.count()).select_from(table)) or 0
                     for table in (SourceRecord, Study, HL7MessageLog))


BUNDLE = json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
    {"resource": fhir_patient(), "request": {"method": "POST", "url": "Patient"}}]}).encode()
STOW = (b"--b\r\nContent-Type: application/dicom\r\n\r\n" + b"\0" * 200 + b"\r\n--b--\r\n")


@pytest.mark.parametrize(("path", "media", "body", "fhir"), [
    ("/fhir", "application/fhir+json", BUNDLE, True),  # a transaction Bundle
    ("/fhir/Patient", "application/fhir+json", json.dumps(fhir_patient()).encode(), True),
    ("/hl7", "text/plain", hl7(ADT).encode(), False),  # one HL7 v2 message
    ("/dicomweb/studies", 'multipart/related; type="application/dicom"; boundary=b', STOW, False),
    ("/api/v1/duplicate-check", "application/json",  # a body FastAPI parses itself (it would answer 400)
     json.dumps({"patient": {"name": {"family": "Slow"}}, "request": {"modality": "CT", "bodySite": "chest"}})
     .encode(), False),
], ids=["fhir-bundle", "fhir-patient", "hl7", "stow-rs", "duplicate-check"])
def test_a_body_sent_slowly_is_408_and_nothing_of_it_applied(
        live_server_with: Callable[..., object], path: str, media: str, body: bytes, fhir: bool) -> None:
    server = live_server_with(http_body_timeout_s=BODY_TIMEOUT_S, http_body_min_bytes_per_s=MIN_BYTES_PER_S)
    before = _counts(server)
    # a byte every half second is far below the rate; generous bound: a loaded host may be slow to run the timer
    answer = _trickled(server.port, _head(path, server.token(), media, len(body)), body,  # type: ignore[attr-defined]
                       within_s=40)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    head, _, content = answer.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower(), "the rest of the body is not read"
    shape = json.loads(content)
    if fhir:
        assert shape["resourceType"] == "OperationOutcome" and shape["issue"][0]["code"] == "timeout"
    else:
        assert shape == {"detail": "the request body did not arrive in time"}
    assert _counts(server) == before, "nothing of the refused body applied"


def test_a_body_at_a_steady_rate_is_not_cut(live_server_with: Callable[..., object]) -> None:
    """A body whose bytes keep coming at least at the rate is served, however long it takes in all."""
    server = live_server_with(http_body_timeout_s=1, http_body_min_bytes_per_s=MIN_BYTES_PER_S)
    message = (hl7(ADT) + "\rZPD|" + "x" * 6000).encode()  # 6 s allowed past the grace, more than the 1 s grace

    def steadily():  # type: ignore[no-untyped-def]
        for at in range(0, len(message), 500):  # 500 bytes per 0.1 s: five times the rate, for over a second
            yield message[at:at + 500]
            time.sleep(0.1)

    answer = httpx.post(f"http://127.0.0.1:{server.port}/hl7", content=steadily(),  # type: ignore[attr-defined]
                        headers={"Authorization": f"Bearer {server.token()}",  # type: ignore[attr-defined]
                                 "Content-Type": "text/plain"}, timeout=60)
    assert answer.status_code == 200 and "MSA|AA|" in answer.text, answer.text


@pytest.mark.parametrize(("path", "setting", "media"), [
    ("/hl7", "hl7_http_max_body_bytes", "text/plain"),
    ("/cds-services/order-sign", "cds_max_body_bytes", "application/json"),
    ("/fhir", "http_max_body_bytes", "application/fhir+json"),
    ("/dicomweb/studies", "dicomweb_max_body_bytes", 'multipart/related; type="application/dicom"; boundary=b'),
])
def test_each_endpoint_class_has_its_own_body_limit(live_server_with: Callable[..., object], path: str,
                                                    setting: str, media: str) -> None:
    limits = {"hl7_http_max_body_bytes": 8192, "cds_max_body_bytes": 16384, "http_max_body_bytes": 32768,
              "dicomweb_max_body_bytes": 65536}
    server = live_server_with(**limits)
    token = server.token() if not path.startswith("/cds") else "a.b.c"  # type: ignore[attr-defined]
    over = b"x" * (limits[setting] + 1)
    under = b"x" * (min(limits.values()) - 1)
    url = f"http://127.0.0.1:{server.port}{path}"  # type: ignore[attr-defined]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": media}
    answer = httpx.post(url, content=over, headers=headers, timeout=30)
    assert answer.status_code == 413, (path, answer.status_code, answer.text[:200])
    assert answer.headers["connection"] == "close"

    def chunks():  # type: ignore[no-untyped-def]  # no Content-Length: counted as it arrives
        yield over

    assert httpx.post(url, content=chunks(), headers=headers, timeout=30).status_code == 413, path
    assert httpx.post(url, content=under, headers=headers, timeout=30).status_code != 413, path


def test_a_body_that_arrived_in_time_is_taken_though_the_route_asks_for_it_after_the_deadline() -> None:
    """The deadline refuses a body the client sends too slowly, not one the server reads late: a route that asks
    for a body already at hand after the deadline gets it (``asyncio.wait_for`` with no time left refused it
    unread: a request of a client that did nothing wrong answered 408 on a busy server)."""
    async def arrived() -> dict[str, object]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def never() -> dict[str, object]:
        await asyncio.sleep(3600)
        raise AssertionError("never sent")

    async def late(receive: Callable[[], object]) -> dict[str, object]:
        body = _TimedBody(receive, limit=1024, timeout_s=0.01, min_bytes_per_s=MIN_BYTES_PER_S)  # type: ignore[arg-type]
        await asyncio.sleep(0.05)  # the route is busy past the deadline before it asks
        return await body.receive()  # type: ignore[return-value]

    assert asyncio.run(late(arrived)) == {"type": "http.request", "body": b"{}", "more_body": False}
    with pytest.raises(BodyTooSlow):
        asyncio.run(late(never))
