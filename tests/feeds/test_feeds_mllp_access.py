"""Who may send over MLLP (hazard log H-HL7-06): mutual TLS with certificates made here, the trusts' allow-list of
senders (address, MSH-3/MSH-4, certificate name), each sender bound to its own identifier domains; production refuses
anonymous senders. Every refusal is an AR with ERR and a dead letter."""

from __future__ import annotations

import os
import socket
import ssl
from pathlib import Path

import pytest
from feeds_factories import RTK, RXC, Ack, adt, control_id, exchange, nhs_number, pid, record_of
from hl7.client import MLLPClient
from sqlalchemy import select
from tls_factories import Authority, client_context, send_tls, trusts_with_senders

from mpi.records import RecordKey
from priorscan.settings import DEFAULT_SECRET
from priorscan.tables import DeadLetter


def _letters(server) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    with server.context.sessions() as session:
        return [(d.channel, d.error_code) for d in session.scalars(select(DeadLetter).order_by(DeadLetter.id))]


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, object]:
    region = Authority(tmp_path, "region-hl7")
    return {"ca": region, "server": region.issue("mllp.priorscan.example", server=True),
            "rtk": region.issue("pas.rtk.example"), "rxc": region.issue("pas.rxc.example"),
            "stranger": Authority(tmp_path, "elsewhere").issue("pas.rtk.example")}


@pytest.fixture
def tls_server(mllp_server, sqlite_url: str, tmp_path: Path, pki):  # type: ignore[no-untyped-def]
    trusts = trusts_with_senders(tmp_path, {
        "RTK": [{"application": "PAS", "certificate_names": ["pas.rtk.example"]}],
        "RXC": [{"application": "PAS", "certificate_names": ["pas.rxc.example"]}]})
    server_cert = pki["server"]
    with mllp_server(sqlite_url, trusts_file=trusts, mllp_tls_cert=server_cert.cert, mllp_tls_key=server_cert.key,
                     mllp_tls_client_ca=pki["ca"].cert) as server:
        yield server


def test_a_sender_with_its_certificate_is_accepted_over_mutual_tls(tls_server, pki) -> None:  # type: ignore[no-untyped-def]
    ack = Ack(send_tls(tls_server.port, client_context(pki["ca"], pki["rtk"]), adt("A28", pid("AB100001^^^RTK^MR"))))
    assert ack.code == "AA", ack.text
    assert record_of(tls_server, RecordKey(RTK, "AB100001")) is not None


@pytest.mark.parametrize("client", [
    None,  # no client certificate at all
    "stranger",  # a certificate with the right name from an authority the listener does not trust
], ids=["no-certificate", "untrusted-authority"])
def test_a_sender_without_a_trusted_certificate_is_refused_at_the_handshake(tls_server, pki,  # type: ignore[no-untyped-def]
                                                                            client: str | None) -> None:
    context = client_context(pki["ca"], pki[client] if client else None)  # type: ignore[arg-type]
    with pytest.raises((ssl.SSLError, OSError)):
        reply = send_tls(tls_server.port, context, adt("A28", pid("AB100002^^^RTK^MR")))
        assert "MSA|AA" not in reply  # (TLS 1.3 may report the refusal only at the first read: no ACK then)
        raise OSError("no ACK")
    assert record_of(tls_server, RecordKey(RTK, "AB100002")) is None


def test_plain_tcp_to_the_tls_listener_gets_no_ack(tls_server) -> None:  # type: ignore[no-untyped-def]
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=10) as sock:
        sock.sendall(b"\x0b" + adt("A28", pid("AB100003^^^RTK^MR")).encode() + b"\x1c\x0d")
        with pytest.raises(OSError):  # closed (a reset) or answered with a TLS alert, never an ACK
            data = sock.recv(4096)
            assert b"MSA" not in data
            raise OSError("no ACK")
    assert record_of(tls_server, RecordKey(RTK, "AB100003")) is None


def test_one_trusts_certificate_cannot_send_as_another_trust(tls_server, pki) -> None:  # type: ignore[no-untyped-def]
    message = adt("A28", pid("A1000004^^^RXC^MR"), facility="RXC")
    ack = Ack(send_tls(tls_server.port, client_context(pki["ca"], pki["rtk"]), message))
    assert (ack.code, ack.error_code, ack.control_id) == ("AR", "207", message.split("|")[9]), ack.text
    assert record_of(tls_server, RecordKey(RXC, "A1000004")) is None
    assert _letters(tls_server) == [("mllp", "hl7.sender-not-allowed")]


# --- the allow-list without TLS ---------------------------------------------------------------------------------

@pytest.fixture
def listed(mllp_server, sqlite_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    trusts = trusts_with_senders(tmp_path, {
        "RTK": [{"application": "PAS", "addresses": ["127.0.0.1/32", "::1"]}],
        "RXC": [{"application": "EPR", "facility": "ESHT-EPR", "addresses": ["10.20.0.0/16"]}]})
    with mllp_server(sqlite_url, trusts_file=trusts) as server:
        yield server


@pytest.mark.parametrize(("application", "facility", "accepted"), [
    ("PAS", "RTK", True),  # a configured sender from its own address
    ("PAS", "ASPH", True),  # MSH-4 may be any of the trust's HL7 aliases when the sender names no facility
    ("RIS", "RTK", False),  # an application the trust did not list
    ("EPR", "ESHT-EPR", False),  # a listed sender, but from an address outside its network
    ("PAS", "NOWHERE", False),  # a facility no trust names
], ids=["listed", "alias", "unlisted-application", "wrong-address", "unknown-facility"])
def test_only_listed_senders_from_their_addresses_are_accepted(listed, application: str, facility: str,  # type: ignore[no-untyped-def]
                                                               accepted: bool) -> None:
    message = adt("A28", pid("AB100005^^^RTK^MR"), application=application, facility=facility)
    with MLLPClient("127.0.0.1", listed.port) as client:
        ack = exchange(client, message)
    if accepted:
        assert ack.code == "AA", ack.text
        return
    assert (ack.code, ack.error_code, ack.error_location) == ("AR", "207", "MSH^1^4"), ack.text
    assert record_of(listed, RecordKey(RTK, "AB100005")) is None
    assert _letters(listed) == [("mllp", "hl7.sender-not-allowed")]


def test_a_listed_sender_acts_only_on_its_own_hospital_numbers(listed) -> None:  # type: ignore[no-untyped-def]
    nhs = nhs_number(8101)
    other_trusts = adt("A28", pid(f"A1000006^^^RXC^MR~{nhs}^^^NHS^NH", name="FOREIGN^FAY"))
    own_with_cross_reference = adt("A28", pid(f"AB100007^^^RTK^MR~A1000007^^^RXC^MR~{nhs}^^^NHS^NH"))
    with MLLPClient("127.0.0.1", listed.port) as client:
        refused = exchange(client, other_trusts)
        accepted = exchange(client, own_with_cross_reference)
    assert (refused.code, refused.error_location) == ("AR", "PID^1^3"), refused.text
    assert record_of(listed, RecordKey(RXC, "A1000006")) is None
    assert accepted.code == "AA", accepted.text
    assert _letters(listed) == [("mllp", "hl7.foreign-domain")]


def test_a_listed_senders_results_name_only_its_own_patients(listed) -> None:  # type: ignore[no-untyped-def]
    def result(ids: str, uid: str) -> str:
        obr = ["OBR", "1", "P1", "F1", "CTHEAD^CT HEAD^LOCAL", "", "", "20260301101500"] + [""] * 16 + ["CT", "F"]
        return "\r".join([f"MSH|^~\\&|PAS|RTK|PRIORSCAN|REGION|20260301101500||ORU^R01|{control_id()}|P|2.4",
                          f"PID|1||{ids}||RESULT^RUTH||19700101|F", "|".join(obr),
                          f"ZDS|{uid}^RIS^Application^DICOM"]) + "\r"

    with MLLPClient("127.0.0.1", listed.port) as client:
        foreign = exchange(client, result("A1000012^^^RXC^MR", "1.2.826.0.1.3680043.10.78.1"))
        own = exchange(client, result("AB100012^^^RTK^MR", "1.2.826.0.1.3680043.10.78.2"))
    assert (foreign.code, foreign.error_location) == ("AR", "PID^1^3"), foreign.text
    assert own.code == "AA", own.text
    assert _letters(listed) == [("mllp", "hl7.foreign-domain")]


def test_in_production_an_unconfigured_listener_refuses_every_message(mllp_server, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    merge = adt("A40", pid("AB100008^^^RTK^MR"), "MRG|AB100009^^^RTK^MR")
    with mllp_server(sqlite_url, env="production", secret_key=DEFAULT_SECRET[::-1]) as server, \
            MLLPClient("127.0.0.1", server.port) as client:
        ack = exchange(client, merge)
        assert (ack.code, ack.error_code) == ("AR", "207"), ack.text
        assert _letters(server) == [("mllp", "hl7.sender-not-allowed")]


def test_priorscan_serve_takes_the_tls_flags(sqlite_url: str, tmp_path: Path, pki) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys
    import time

    from bench.bench_reliability import kill_group

    mllp_port, http_port = _free_port(), _free_port()
    server_cert = pki["server"]
    trusts = trusts_with_senders(tmp_path, {"RTK": [{"application": "PAS", "certificate_names": ["pas.rtk.example"]}]})
    process = subprocess.Popen(
        [sys.executable, "-m", "priorscan.cli", "--db", sqlite_url, "serve", "--port", str(http_port), "--mllp-port",
         str(mllp_port), "--mllp-tls-cert", str(server_cert.cert), "--mllp-tls-key", str(server_cert.key),
         "--mllp-tls-client-ca", str(pki["ca"].cert)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, env={**os.environ, "PRIORSCAN_TRUSTS_FILE": str(trusts)})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", mllp_port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "priorscan serve did not start"
                time.sleep(0.2)
        ack = Ack(send_tls(mllp_port, client_context(pki["ca"], pki["rtk"]), adt("A28", pid("AB100010^^^RTK^MR"))))
        assert ack.code == "AA", ack.text
        with pytest.raises((ssl.SSLError, OSError)):
            reply = send_tls(mllp_port, client_context(pki["ca"], None), adt("A28", pid("AB100011^^^RTK^MR")))
            assert "MSA|AA" not in reply
            raise OSError("no ACK")
    finally:
        kill_group(process)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_stranger_replaying_a_trusts_message_id_changes_nothing(mllp_server, sqlite_url: str,  # type: ignore[no-untyped-def]
                                                                 tmp_path: Path) -> None:
    from sqlalchemy import select as select_

    from priorscan.tables import HL7MessageLog

    message = adt("A28", pid("AB100013^^^RTK^MR", name="REPLAYED^RAY"))
    with mllp_server(sqlite_url) as server, MLLPClient("127.0.0.1", server.port) as client:  # the trust's own send
        original = exchange(client, message)
        assert original.code == "AA"
    elsewhere = trusts_with_senders(tmp_path, {"RTK": [{"application": "PAS", "addresses": ["10.30.0.0/16"]}]})
    with mllp_server(sqlite_url, trusts_file=elsewhere) as server, MLLPClient("127.0.0.1", server.port) as client:
        replayed = exchange(client, message)  # the same MSH-3/4/10 from an address the sender does not use
        assert (replayed.code, replayed.error_code) == ("AR", "207"), replayed.text
        assert _letters(server) == [("mllp", "hl7.sender-not-allowed")]
        with server.context.sessions() as session:
            assert [e.ack_code for e in session.scalars(select_(HL7MessageLog))] == ["AA"]
    with mllp_server(sqlite_url) as server, MLLPClient("127.0.0.1", server.port) as client:  # the trust resends
        assert exchange(client, message).text == original.text  # its original ACK: not applied twice


@pytest.fixture
def http_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    trusts = trusts_with_senders(tmp_path, {"RTK": [{"application": "PAS", "clients": ["rtk-engine"]}]})
    monkeypatch.setenv("PRIORSCAN_TRUSTS_FILE", str(trusts))
    return request.getfixturevalue("live_server_sqlite")


@pytest.mark.parametrize(("client", "facility", "accepted"), [
    ("rtk-engine", "RTK", True),  # the API client the sender names
    ("another-client", "RTK", False),  # a valid token with the scope, but not this sender's client
    ("rtk-engine", "RXC", False),  # the right client speaking for a trust that did not list it
], ids=["listed-client", "other-client", "other-trust"])
def test_post_hl7_takes_a_senders_messages_only_from_its_clients(http_listed, client: str, facility: str,  # type: ignore[no-untyped-def]
                                                                 accepted: bool) -> None:
    import httpx

    token = http_listed.token(["priorscan/hl7"], client=client)
    message = adt("A28", pid("AB100014^^^RTK^MR"), facility=facility)
    reply = httpx.post(f"{http_listed.base_url}/hl7", content=message,
                       headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"})
    ack = Ack(reply.text)
    if accepted:
        assert ack.code == "AA", reply.text
        return
    assert (ack.code, ack.error_code) == ("AR", "207"), reply.text
    assert record_of(http_listed, RecordKey(RTK, "AB100014")) is None
    assert _letters(http_listed) == [("http-hl7", "hl7.sender-not-allowed")]
