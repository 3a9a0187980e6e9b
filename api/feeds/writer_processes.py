"""Writer processes: the MLLP listener's batches and the C-STORE SCP's objects applied in processes of their own, so
that feeds use every core.

One Python process runs Python on one core at a time (the GIL), and linking on write is mostly CPU work: parsing,
scoring candidates, building statements. With the listener and its writer threads in one process, ADT throughput
stops at what one core gives. ``priorscan serve`` therefore hands each batch to a worker process
(:func:`api.feeds.mllp.writer_processes`: one for SQLite, which takes one writer at a time; up to one per core for
PostgreSQL, whose transactions run side by side); the serving process keeps the sockets, the framing and the ACKs.
On SQLite the serving process's own writes (HTTP) and the worker's take turns through SQLite's lock (its busy
timeout), where writers within one process queue on a lock of their own. Every rule of group commit holds as
before, because a worker runs the same :func:`api.feeds.hl7_service.process_messages` on its own connection: a sender's
messages are still applied one at a time and in order (its connection waits for each ACK), and an ACK still leaves
only after its commit.

A worker ignores SIGINT and SIGTERM (the serving process decides when to stop: it lets batches in flight finish,
then shuts the workers down) and exits by itself if the serving process dies. If a worker dies, the messages of its
batch are answered AE (their transaction was rolled back, or committed and then found by the sender's resend through
the idempotency log) and a fresh set of workers is started.

The C-STORE SCP (:mod:`api.feeds.dicom_scp`) hands its objects over the same way
(:meth:`WriterProcesses.receive_dicom`): its process keeps pynetdicom (sockets, PDUs, DIMSE, a thread per association),
the worker reads each header and indexes the group with one commit (:func:`api.feeds.dicom_receiver.receive_many`), and
only then are the statuses sent. A worker that dies answers its objects 0xA700 (out of resources: the sender sends them
again).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import structlog

from api.context import AppContext
from api.feeds.dicom_receiver import Pushed, Received, receive_many
from api.feeds.hl7_service import Incoming, process_messages
from priorscan.audit import Agent
from priorscan.errors import StorageError
from priorscan.logs import configure as configure_logs
from priorscan.outcome import ItemOutcome
from priorscan.settings import Settings

log = logging.getLogger(__name__)

#: How often a worker checks that the serving process is still there.
ORPHAN_CHECK_S = 1.0

_context: AppContext | None = None  # the worker's own store connection, opened once per process


class WriterProcesses:
    """A set of worker processes for one store, applying batches of HL7 messages with group commit.

    Parameters
    ----------
    settings
        The settings the serving process opened its store with; each worker opens the same store.
    processes
        How many workers.
    """

    def __init__(self, settings: Settings, processes: int) -> None:
        if processes < 1:
            raise ValueError("at least one writer process")
        self.settings = settings
        self.processes = processes
        self._guard = threading.Lock()
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        # spawn, not fork: the serving process has threads and open connections that a forked child must not share
        pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_open_worker, initargs=(self.settings, os.getpid()))
        for _ in range(self.processes):  # start every worker now, not on the first message
            pool.submit(_ready)
        return pool

    def apply(self, messages: Sequence[Incoming], *, channel: str) -> list[ItemOutcome]:
        """Apply ``messages`` in one worker with one commit; their outcomes, in order (as ``process_messages``)."""
        pool = self._pool
        try:
            return pool.submit(_apply, list(messages), channel).result()
        except BrokenProcessPool:
            with self._guard:
                if self._pool is pool:
                    log.error("an MLLP writer process died: starting the writer processes again")
                    self._pool = self._start()
            raise StorageError("the writer process stopped", code="busy") from None

    def receive_dicom(self, objects: Sequence[bytes | Pushed], *, channel: str, source: str, agent: Agent,
                      source_trust: str | None = None) -> list[Received]:
        """Index pushed DICOM objects in one worker with one commit (as :func:`api.feeds.dicom_receiver.receive_many`);
        their statuses, in order."""
        pool = self._pool
        try:
            return pool.submit(_receive_dicom, list(objects), channel, source, agent, source_trust).result()
        except BrokenProcessPool:
            with self._guard:
                if self._pool is pool:
                    log.error("a DICOM writer process died: starting the writer processes again")
                    self._pool = self._start()
            raise StorageError("the writer process stopped", code="busy") from None

    def pids(self) -> list[int]:
        """The process ids of the workers started so far (for operators and tests)."""
        processes = getattr(self._pool, "_processes", None) or {}
        return sorted(processes)

    def alive(self) -> int:
        """How many workers are running (the readiness probe compares it with :attr:`processes`)."""
        processes = getattr(self._pool, "_processes", None) or {}
        return sum(1 for process in list(processes.values()) if process.is_alive())

    def stop(self) -> None:
        """Let batches in flight finish, then end the workers."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def _open_worker(settings: Settings, parent: int) -> None:
    """A worker's start: its signals, its logging, its own connection to the store, the watch on its parent."""
    global _context
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_logs(settings.log_level, settings.log_format)
    structlog.contextvars.bind_contextvars(writer_process=os.getpid())
    # the serving process has migrated the store; a SQLite WAL is checkpointed by a thread, not by a batch's commit
    _context = AppContext.open(settings, upgrade=False, background_checkpoint=True)
    threading.Thread(target=_exit_when_orphaned, args=(parent,), name="orphan-watch", daemon=True).start()


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(ORPHAN_CHECK_S)
    # the serving process is gone and nobody waits for an ACK: a batch not yet committed is rolled back by the store
    # when the connection ends, and its senders send it again
    os._exit(0)


def _ready() -> bool:
    return _context is not None


def _apply(messages: list[Incoming], channel: str) -> list[ItemOutcome]:
    if _context is None:  # pragma: no cover - the initializer runs first or the pool is broken
        raise StorageError("the writer process has no store")
    try:
        return process_messages(_context, messages, channel=channel)
    except Exception as exc:  # noqa: BLE001 - crosses a pipe: its type's name only (its text may quote patient data)
        log.error("MLLP batch of %d message(s) failed in a writer process (%s)", len(messages), type(exc).__name__)
        raise StorageError(f"internal error ({type(exc).__name__})") from None


def _receive_dicom(objects: list[bytes | Pushed], channel: str, source: str, agent: Agent,
                   source_trust: str | None) -> list[Received]:
    if _context is None:  # pragma: no cover - the initializer runs first or the pool is broken
        raise StorageError("the writer process has no store")
    # receive_many keeps its own faults as statuses (0x0110) and dead letters; what is left is the store's to raise
    return receive_many(_context, objects, channel=channel, source=source, agent=agent, source_trust=source_trust)


__all__ = ["WriterProcesses"]
