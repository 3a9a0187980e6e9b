"""MLLP batches applied in writer processes (the default on a machine of two cores or more) or in threads of the
serving process (configured, or on one core): the same ACKs and the same stored result, a dead worker replaced, and
a clean stop."""

from __future__ import annotations

import os
import signal
import time

import pytest
from feeds_factories import RTK, RXC, adt, control_id, exchange, pid, record_of
from hl7.client import MLLPClient

from api.context import AppContext
from api.feeds.mllp import _writer, stop_writer, writer_processes
from mpi.records import RecordKey
from priorscan.settings import Settings


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (ended, not yet reaped) counts as ended
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def _wait_until(condition, seconds: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


MULTI_CORE = (os.cpu_count() or 1) > 1


@pytest.mark.parametrize(("backend", "configured", "expected"), [
    ("sqlite", None, 1 if MULTI_CORE else 0),  # one writer at a time, off the listener's core
    ("postgresql", None, min(2, os.cpu_count() or 1) if MULTI_CORE else 0),  # one per core, at most two
    ("postgresql", 0, 0),  # configured off: threads of the serving process
    ("sqlite", 0, 0),
    ("sqlite", 2, 2),  # configured: honoured as given
])
def test_how_many_writer_processes(backend: str, configured: int | None, expected: int, request) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    context = AppContext.open(Settings(db=url, env="test", mllp_writer_processes=configured))
    try:
        assert writer_processes(context) == expected
    finally:
        context.engine.dispose()


def test_messages_are_applied_in_writer_processes_and_committed_before_the_ack(pg_url: str, mllp_server) -> None:
    with mllp_server(pg_url, mllp_writer_processes=2) as server:
        workers = _writer(server.context).processes
        assert workers is not None and workers.processes == 2
        with MLLPClient("127.0.0.1", server.port) as client:
            acks = [exchange(client, adt("A04", pid(f"WP{n:06d}^^^RTK^MR", name=f"WRITER^PROC{n}"),
                                         control=control_id())) for n in range(6)]
            update = exchange(client, adt("A08", pid("WP000000^^^RTK^MR", name="WRITER^CHANGED"),
                                          control=control_id()))
        assert [a.code for a in acks] + [update.code] == ["AA"] * 7
        assert len(workers.pids()) == 2 and os.getpid() not in workers.pids()
        first = record_of(server, RecordKey(RTK, "WP000000"))  # the serving process's connection sees the commits
        assert first is not None and first.given == "CHANGED"
        assert all(record_of(server, RecordKey(RTK, f"WP{n:06d}")) for n in range(6))


def test_without_writer_processes_the_serving_process_applies_the_messages(store_url: str, mllp_server) -> None:
    with mllp_server(store_url, mllp_writer_processes=0) as server:
        assert _writer(server.context).processes is None
        with MLLPClient("127.0.0.1", server.port) as client:
            codes = [exchange(client, adt("A04", pid(f"WT{n:06d}^^^RTK^MR", name=f"WRITER^THREAD{n}"),
                                          control=control_id())).code for n in range(3)]
            update = exchange(client, adt("A08", pid("WT000000^^^RTK^MR", name="WRITER^CHANGED"),
                                          control=control_id()))
        assert codes + [update.code] == ["AA"] * 4
        first = record_of(server, RecordKey(RTK, "WT000000"))
        assert first is not None and first.given == "CHANGED"


def test_a_dead_writer_process_is_replaced(pg_url: str, mllp_server) -> None:
    with mllp_server(pg_url, mllp_writer_processes=1) as server:
        workers = _writer(server.context).processes
        assert workers is not None
        with MLLPClient("127.0.0.1", server.port) as client:
            assert exchange(client, adt("A04", pid("WD000001^^^RXC^MR", name="BEFORE^DEATH"))).code == "AA"
            (victim,) = workers.pids()
            os.kill(victim, signal.SIGKILL)
            assert _wait_until(lambda: not _alive(victim))
            message = adt("A04", pid("WD000002^^^RXC^MR", name="AFTER^DEATH"), control=control_id())
            refused = exchange(client, message)
            assert refused.code == "AE" and refused.error_code == "206"  # busy: send it again
            assert record_of(server, RecordKey(RXC, "WD000002")) is None
            again = exchange(client, message)  # the sender's resend, to fresh workers
        assert again.code == "AA"
        assert record_of(server, RecordKey(RXC, "WD000002")) is not None
        assert workers.pids() and victim not in workers.pids()


def test_stopping_ends_the_workers_and_refuses_later_messages(pg_url: str, mllp_server) -> None:
    server = mllp_server(pg_url, mllp_writer_processes=2).__enter__()
    try:
        workers = _writer(server.context).processes
        assert workers is not None
        assert _wait_until(lambda: len(workers.pids()) == 2)
        pids = workers.pids()
        with MLLPClient("127.0.0.1", server.port) as client:
            assert exchange(client, adt("A04", pid("WS000001^^^RTK^MR", name="STOP^FIRST"))).code == "AA"
            stop_writer(server.context)
            assert _wait_until(lambda: not any(_alive(p) for p in pids))
            refused = exchange(client, adt("A04", pid("WS000002^^^RTK^MR", name="STOP^SECOND")))
        assert refused.code == "AE" and "shutting down" in refused.text
        assert refused.error_code == "206"  # busy: the sender may send it again
    finally:
        server.__exit__(None, None, None)


def test_a_dicom_writer_gathers_its_groups_from_the_pipe_and_answers_only_after_applying_them() -> None:
    """A DICOM writer process's loop (:func:`serve_groups`): the first object waiting and every one behind it make a
    group; objects that arrive while a group is applied make the next; no status goes back before its group's
    ``apply`` returned (it returns after the commit), each under the number it came with."""
    import threading
    from multiprocessing import Pipe

    from api.feeds.dicom_receiver import Received, Sender
    from api.feeds.writer_processes import serve_groups
    from priorscan.audit import Agent
    from priorscan.outcome import ItemOutcome

    taken, objects = Pipe(duplex=False)
    answered, answer = Pipe(duplex=False)
    sender = Sender("dicom", "MOD@127.0.0.1", Agent("feed", "dicom:MOD"))
    groups: list[list[bytes]] = []
    answers: list[list[tuple[int, Received]]] = []

    def apply(group):  # type: ignore[no-untyped-def]
        while answered.poll():
            answers.append(answered.recv())
        assert len(answers) == len(groups), "a status went back before its group was applied"
        groups.append([data for _, data in group])
        if len(groups) == 1:  # these arrive while the first group is applied
            objects.send((1, sender, b"second"))
            objects.send((2, sender, b"third"))
            objects.send(None)
        return [Received(0x0000 if data != b"third" else 0xC000, ItemOutcome.rejected("DICOM", "test", "dicom"))
                for _, data in group]

    objects.send((0, sender, b"first"))
    serve_groups(taken, threading.Lock(), answer, apply)
    assert groups == [[b"first"], [b"second", b"third"]]
    while answered.poll():
        answers.append(answered.recv())
    assert [[(number, status.status) for number, status in answer] for answer in answers] == [
        [(0, 0x0000)], [(1, 0x0000), (2, 0xC000)]]
