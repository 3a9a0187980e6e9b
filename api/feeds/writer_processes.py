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

The C-STORE SCP (:mod:`api.feeds.dicom_scp`) hands its objects to :class:`DicomWriterProcesses`: its process keeps
pynetdicom (sockets, PDUs, DIMSE, a thread per association), the worker reads each header and indexes a group with one
commit (:func:`api.feeds.dicom_receiver.receive_group`), and only then are the statuses sent. There each association's
thread writes its object straight into a worker's pipe, and the worker gathers its own groups from what waits there
(:func:`serve_groups`): a group begins the moment the last one is committed, with no thread of the serving process
between the two (an association's round trip bounds C-STORE, and every hand-over between threads was part of it). A
worker that dies answers the objects it held 0xA700 (out of resources: the sender sends them again), and so does the
first object that finds it dead, which starts a fresh one.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import structlog

from api.context import AppContext
from api.feeds.dicom_receiver import MAX_GROUP, Pushed, Received, Sender, busy, receive_group
from api.feeds.group_commit import next_group
from api.feeds.hl7_service import Incoming, process_messages
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


# --- the C-STORE SCP's writers ----------------------------------------------------------------------------------------

#: What waits for a DICOM writer: an object's number, its sender and its bytes; None stops one writer.
_Sent = tuple[int, Sender, bytes | Pushed]


class DicomWriterProcesses:
    """Writer processes for the C-STORE SCP's objects, fed through one pipe they share.

    :meth:`receive` writes the object into the pipe and waits for its status. A worker that comes free takes the
    first object waiting and every object behind it (up to ``max_group``: :func:`serve_groups`), indexes them with one
    commit per sender and sends their statuses back through a pipe of its own, which a thread of this process reads and
    hands to the waiting callers. Nothing is sent back before the commit. Between an association's thread and a worker
    there is no thread of this process, and a worker begins its next group the moment it has sent the statuses of the
    last (an association's round trip bounds C-STORE, and every hand-over between threads was part of it).

    A worker that dies leaves no way to know which objects it held, nor whether it held the taking lock: every object
    waiting is answered 0xA700 (out of resources: the sender sends it again; one already committed is indexed once,
    as any object sent twice), and so is the first object that comes after, which starts a fresh set of workers.

    Parameters
    ----------
    settings, processes
        As for :class:`WriterProcesses`: the serving process's settings (each worker opens the same store), and how
        many workers.
    max_group
        Most objects a worker applies in one group.
    """

    def __init__(self, settings: Settings, processes: int, max_group: int = MAX_GROUP) -> None:
        if processes < 1:
            raise ValueError("at least one writer process")
        self.processes = processes
        self._settings = settings
        self._max_group = max_group
        self._guard = threading.Lock()  # the waiters and the state below; never held across I/O
        self._putting = threading.Lock()  # one object at a time into the pipe (held while a large one is written)
        self.waiting: dict[int, _Waiter] = {}
        self._numbered = 0
        self._dead = False
        self._stopped = False
        self._start()

    def _start(self) -> None:
        spawn = multiprocessing.get_context("spawn")  # not fork: this process has threads and open connections
        # the objects' pipe, written by the associations' threads themselves (a multiprocessing.Queue would hand each
        # object to a feeder thread first), read by whichever worker holds the taking lock
        taken, self._objects = spawn.Pipe(duplex=False)
        taking = self._taking = spawn.Lock()  # kept: a worker that starts late must still find its semaphore
        self._workers: list[multiprocessing.process.BaseProcess] = []
        for _ in range(self.processes):
            ours, theirs = spawn.Pipe(duplex=False)
            worker = spawn.Process(target=_serve_dicom, name="priorscan-dicom-writer", daemon=True,
                                   args=(self._settings, os.getpid(), taken, taking, theirs, self._max_group))
            worker.start()
            theirs.close()  # the worker holds the only writing end: its death ends our reads (EOF)
            self._workers.append(worker)
            threading.Thread(target=self._read_statuses, args=(ours, self._objects), name="dicom-writer-statuses",
                             daemon=True).start()
        taken.close()  # with every worker gone, writing fails at once instead of filling the pipe
        self._dead = False

    def receive(self, sender: Sender, data: bytes | Pushed) -> Received:
        """Index one object in a worker; its status, after its commit (0xA700 when a worker died meanwhile)."""
        waiter = _Waiter()
        with self._guard:
            if self._stopped:
                return busy()
            if self._dead:  # a worker died since the last object: this one is refused, the next go to fresh workers
                log.error("a DICOM writer process died: starting the writer processes again")
                self._end_workers()
                self._start()
                return busy()
            number, self._numbered = self._numbered, self._numbered + 1
            self.waiting[number] = waiter
            objects = self._objects
        try:
            with self._putting:
                objects.send((number, sender, data))
        except (OSError, ValueError):  # every worker is gone, or the pipe was closed under us: nobody will answer
            self._answer_all(objects)
        waiter.done.wait()
        assert waiter.result is not None
        return waiter.result

    def _read_statuses(self, pipe: Connection, objects: Connection) -> None:
        while True:
            try:
                statuses: list[tuple[int, Received]] = pipe.recv()
            except (EOFError, OSError):  # the worker ended (stopped, or died)
                pipe.close()
                with self._guard:
                    if self._stopped or objects is not self._objects:
                        return
                    self._dead = True
                self._answer_all(objects)
                return
            with self._guard:
                waiters = [(self.waiting.pop(number, None), status) for number, status in statuses]
            for waiter, status in waiters:
                if waiter is not None:
                    waiter.result = status
                    waiter.done.set()

    def _answer_all(self, objects: Connection) -> None:
        """Every object waiting is answered 0xA700: the workers of ``objects`` cannot be relied on to answer."""
        with self._guard:
            if objects is not self._objects:
                return
            waiters, self.waiting = list(self.waiting.values()), {}
        for waiter in waiters:
            waiter.result = busy()
            waiter.done.set()

    def _end_workers(self) -> None:
        for worker in self._workers:  # a survivor may wait on the taking lock, held by the dead one: it must go too
            if worker.is_alive():
                worker.kill()
            worker.join(timeout=5)
        self._objects.close()

    def pids(self) -> list[int]:
        """The process ids of the workers (for operators and tests)."""
        return sorted(w.pid for w in self._workers if w.pid is not None)

    def alive(self) -> int:
        """How many workers are running."""
        return sum(1 for w in self._workers if w.is_alive())

    def stop(self) -> None:
        """Let the objects sent finish, then end the workers."""
        with self._guard:
            self._stopped = True
            dead = self._dead
        try:
            for _ in self._workers if not dead else ():
                with self._putting:
                    self._objects.send(None)  # one for each worker, after every object sent before
        except (OSError, ValueError):  # every worker is gone already
            pass
        for worker in self._workers:
            worker.join(timeout=60)
        self._end_workers()


@dataclass
class _Waiter:
    result: Received | None = None
    done: threading.Event = field(default_factory=threading.Event)


class _Taking:
    """The objects' pipe read by a worker as :func:`api.feeds.group_commit.next_group` reads a :class:`queue.Queue`
    (its caller holds the taking lock); the serving process gone (EOF) reads as the stop marker."""

    def __init__(self, reader: Connection) -> None:
        self._reader = reader

    def get(self) -> _Sent | None:
        try:
            sent: _Sent | None = self._reader.recv()
        except (EOFError, OSError):
            return None
        return sent

    def get_nowait(self) -> _Sent | None:
        if not self._reader.poll():
            raise queue.Empty
        return self.get()


def serve_groups(taken: Connection, taking: Any, answer: Connection,
                 apply: Callable[[list[tuple[Sender, bytes | Pushed]]], list[Received]],
                 max_group: int = MAX_GROUP) -> None:
    """A DICOM writer's loop: holding ``taking`` (the workers' shared lock), take from ``taken`` the first object
    waiting and every one behind it (up to ``max_group``), apply them as one group, and only then send their statuses
    back on ``answer``, each under the number its object came with; until the stop marker (None) or the serving
    process's end.

    ``apply`` is :func:`api.feeds.dicom_receiver.receive_group` on the worker's store (it answers every object, and
    returns once they are committed)."""
    source = _Taking(taken)
    while True:
        with taking:  # held while this worker gathers: its group is all that waited, none of it taken by another
            group, stop = next_group(source, max_group)
        if group:
            statuses = apply([(sender, data) for _, sender, data in group])
            try:
                answer.send([(number, status) for (number, _, _), status in zip(group, statuses, strict=True)])
            except (OSError, ValueError):  # the serving process is gone: nobody waits for these statuses
                return
        if stop:
            return


def _serve_dicom(settings: Settings, parent: int, taken: Connection, taking: Any, answer: Connection,
                 max_group: int) -> None:
    _open_worker(settings, parent)
    context = _context
    if context is None:  # pragma: no cover - _open_worker sets it or raises
        raise StorageError("the writer process has no store")
    serve_groups(taken, taking, answer, lambda group: receive_group(context, group), max_group)


__all__ = ["DicomWriterProcesses", "WriterProcesses"]
