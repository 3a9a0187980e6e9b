"""Hostile and broken input on the HL7 doors (MLLP and ``POST /hl7``): refused with an ACK, kept as a dead letter,
never stored in part, and never able to pin the listener (hazard log H-HL7-06, H-HL7-07)."""

from __future__ import annotations

import contextlib
import socket
import time

import httpx
from feeds_factories import RTK, Ack, adt, exchange, pid, record_of
from hl7.client import MLLPClient
from sqlalchemy import select

from mpi.records import RecordKey
from priorscan.tables import DeadLetter


def _letters(server) -> list[DeadLetter]:  # type: ignore[no-untyped-def]
    with server.context.sessions() as session:
        return list(session.scalars(select(DeadLetter).order_by(DeadLetter.id)))


def test_a_nul_byte_in_pid3_is_refused_and_the_message_kept(mllp) -> None:  # type: ignore[no-untyped-def]
    message = adt("A28", pid("7777\x0008^^^RTK^MR", name="NULCASE^ANNA"))
    with MLLPClient("127.0.0.1", mllp.port) as client:
        ack = exchange(client, message)
    assert ack.code == "AR" and ack.error_code == "102", ack.text
    assert record_of(mllp, RecordKey(RTK, "7777")) is None and record_of(mllp, RecordKey(RTK, "777708")) is None
    letters = _letters(mllp)
    assert [(d.channel, d.error_code) for d in letters] == [("mllp", "hl7.control-character")]
    assert "7777\\X00\\08" in letters[0].raw  # kept, the NUL written as an HL7 hex escape


def test_twenty_thousand_pid3_repetitions_are_refused_with_a_clear_error(mllp_sqlite) -> None:  # type: ignore[no-untyped-def]
    ids = "~".join(f"X{n}^^^RTK^MR" for n in range(20_000))
    message = adt("A28", pid(ids))
    with MLLPClient("127.0.0.1", mllp_sqlite.port) as client:
        ack = exchange(client, message)
    assert ack.code == "AR" and ack.error_location.startswith("PID^1^3"), ack.text
    assert "repeats more than" in ack.segment("MSA")[3]
    assert record_of(mllp_sqlite, RecordKey(RTK, "X0")) is None
    assert [d.error_code for d in _letters(mllp_sqlite)] == ["hl7.too-many-repetitions"]


def test_a_second_message_in_one_http_body_is_refused_not_ignored(live_server_sqlite) -> None:  # type: ignore[no-untyped-def]
    first, second = adt("A28", pid("AB910001^^^RTK^MR")), adt("A28", pid("AB910002^^^RTK^MR"))
    token = live_server_sqlite.token(["priorscan/hl7"])
    response = httpx.post(f"{live_server_sqlite.base_url}/hl7", content=first + second,
                          headers={"Authorization": f"Bearer {token}", "Content-Type": "application/hl7-v2"})
    assert response.status_code == 200
    ack = Ack(response.text)
    assert ack.code == "AR" and ack.control_id == first.split("|")[9], response.text
    assert record_of(live_server_sqlite, RecordKey(RTK, "AB910001")) is None
    assert record_of(live_server_sqlite, RecordKey(RTK, "AB910002")) is None
    assert [d.error_code for d in _letters(live_server_sqlite)] == ["hl7.several-messages"]


# --- a sender cannot hold the listener ----------------------------------------------------------------------------

def test_a_slow_drip_sender_is_cut_off_after_the_frame_deadline(mllp_server, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    message = b"\x0b" + adt("A28", pid("AB920001^^^RTK^MR")).encode() + b"\x1c\x0d"
    with mllp_server(sqlite_url, mllp_idle_timeout_s=5.0, mllp_frame_timeout_s=1.0) as server, \
            socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        started = time.monotonic()
        sent = 0
        with contextlib.suppress(OSError):  # the listener closes the connection (a reset, or EOF below)
            for byte in message:  # one byte every 0.1 s: each arrives well inside the 5 s idle timeout
                sock.sendall(bytes([byte]))
                sent += 1
                time.sleep(0.1)
                if time.monotonic() - started > 8:
                    break
        elapsed = time.monotonic() - started
        assert sent < len(message) and elapsed < 4, f"still connected after {elapsed:.1f} s and {sent} bytes"
        with contextlib.suppress(OSError):
            assert sock.recv(100) == b""  # closed without an ACK
        assert record_of(server, RecordKey(RTK, "AB920001")) is None
        with MLLPClient("127.0.0.1", server.port) as client:  # a sender that sends whole messages is served
            assert exchange(client, adt("A28", pid("AB920002^^^RTK^MR"))).code == "AA"


def test_connections_beyond_the_limit_are_closed_on_arrival(mllp_server, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    with mllp_server(sqlite_url, mllp_max_connections=2) as server:
        held = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(2)]
        for sock in held:
            sock.sendall(b"\x0bMSH|^~\\&|PAS|RTK|")  # half-sent frames
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as extra:
            with contextlib.suppress(ConnectionResetError):
                assert extra.recv(10) == b"", "a third connection is closed at once"
        held[0].close()
        time.sleep(0.3)
        with MLLPClient("127.0.0.1", server.port) as client:  # a place came free
            assert exchange(client, adt("A28", pid("AB920003^^^RTK^MR"))).code == "AA"
        held[1].close()


def test_one_address_cannot_take_every_connection(mllp_server, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    """Before, a host that opened connections and sent nothing held every place (the limit) for the idle timeout,
    and again as soon as they were closed: the trusts' engines could not connect (hazard log H-SEC-14)."""
    with mllp_server(sqlite_url, mllp_max_connections=4, mllp_max_connections_per_address=2) as server:
        held = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(2)]
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as extra:
            with contextlib.suppress(ConnectionResetError):
                assert extra.recv(10) == b"", "a third connection from the same address is closed at once"
        # another address (a trust's engine) still has places; 127.0.0.2 is loopback too
        with socket.create_connection(("127.0.0.1", server.port), timeout=10, source_address=("127.0.0.2", 0)) as sock:
            sock.sendall(b"\x0b" + adt("A28", pid("AB920004^^^RTK^MR")).encode() + b"\x1c\x0d")
            answer = b""
            while not answer.endswith(b"\x1c\x0d"):
                chunk = sock.recv(4096)
                assert chunk, "closed before the ACK"
                answer += chunk
            assert b"MSA|AA|" in answer
        for sock in held:
            sock.close()
