"""The HL7 door under hostile input and faults, bounded for CI (issue 15 item 4; hazard log H-HL7-10): hypothesis-
generated HL7 through the real MLLP listener (never a crash, always an ACK, AA only when committed); kill -9 of
``priorscan serve`` mid-stream (no ACKed message lost, none applied twice); PostgreSQL going away and coming back,
and turning read-only (negative ACKs, never an AA, then recovery without a restart). The long runs are
``python -m bench reliability`` (BENCHMARKS.md, "Reliability")."""

from __future__ import annotations

import socket

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from bench.bench_reliability import GONE, READ_ONLY, aa_committed, database_fault, fuzz, kill9, outage


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_generated_hl7_always_gets_an_ack_and_aa_only_when_committed(mllp) -> None:  # type: ignore[no-untyped-def]
    figures = fuzz(mllp.port, mllp.context.engine, examples=120, seed=15)
    assert figures.inputs >= 100
    assert figures.no_ack == 0, figures.as_dict()
    assert figures.aa_not_committed == 0, figures.as_dict()
    assert set(figures.acks) <= {"AA", "AE", "AR"}, figures.as_dict()
    assert figures.acks["AA"] and figures.acks["AR"], figures.as_dict()  # the generator reaches both ends


def test_kill_9_mid_stream_loses_no_acked_message_and_applies_none_twice(store_url: str, engine: Engine) -> None:
    figures = kill9(store_url, engine, messages=60, kills=3, ports=_free_port, seed=15)
    assert figures.kills == 3
    assert figures.acks["AA"] >= 60, figures.as_dict()
    assert (figures.acked_lost, figures.duplicates) == (0, 0), figures.as_dict()


def test_the_database_going_away_gives_negative_acks_then_recovers_without_a_restart(  # type: ignore[no-untyped-def]
        pg_url: str, pg_admin: Engine, mllp_server) -> None:
    fault = database_fault(pg_admin, str(make_url(pg_url).database), GONE)
    with mllp_server(pg_url) as server:
        figures, phases = outage(server.port, fault, before=3, during=4, after=3, prefix="GONE")
        assert phases["before"] == ["AA"] * 3, phases
        assert phases["during"] and set(phases["during"]) <= {"AE"}, phases  # negative ACKs, never AA
        assert phases["after"].count("AA") == 3, phases  # recovered, the same listener
        assert figures.no_ack == 0
        for n in range(figures.inputs):
            codes = phases["before"] + phases["during"] + phases["after"]
            assert aa_committed(server.context.engine, f"GONE{n}") == (codes[n] == "AA")


def test_a_read_only_database_never_gets_an_aa(pg_url: str, pg_admin: Engine, mllp_server) -> None:  # type: ignore[no-untyped-def]
    fault = database_fault(pg_admin, str(make_url(pg_url).database), READ_ONLY)
    with mllp_server(pg_url) as server:
        figures, phases = outage(server.port, fault, before=2, during=4, after=2, prefix="RO")
        assert phases["before"] == ["AA"] * 2, phases
        assert phases["during"] and set(phases["during"]) <= {"AE"}, phases
        assert phases["after"].count("AA") == 2, phases
        assert figures.no_ack == 0
