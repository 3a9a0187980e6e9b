"""The MLLP listener: HL7 v2 over TCP from the trusts' interface engines, one ACK per message, in order.

Framing (HL7 MLLP release 2): ``0x0B`` message ``0x1C 0x0D``. A frame may hold a batch (``[FHS] BHS {MSH ...} BTS
[FTS]``) instead of one message: each of its messages is handled as if it had come alone, and the frame is answered
with one batch of their ACKs (:mod:`priorscan.hl7v2.batch`). Each connection is served by one coroutine that reads
frames, queues each message for the store's :class:`GroupWriter` and writes its ACK before reading the next, so ACKs
go back in order and only after commit; many connections (one per trust feed, or several) are served at once. The
writer applies the messages waiting from every connection together (group commit), so a bad one is refused alone,
then one commit, then the ACKs (:func:`api.feeds.hl7_service.process_messages`). The batches are applied in writer
processes (:mod:`api.feeds.writer_processes`; :func:`writer_processes` says how many), so that the feeds use more than
one core. A message
larger than ``settings.mllp_max_message_bytes`` is refused with an AR and the rest of its frame is skipped, so the
connection stays usable. A connection with no message under way for ``settings.mllp_idle_timeout_s`` is closed; once a
byte arrives, the message must be whole within ``settings.mllp_frame_timeout_s`` of it (a total deadline that later
bytes do not restart), so a sender that drips bytes cannot hold a connection. At most
``settings.mllp_max_connections`` connections are served at once (more are closed on arrival), so half-sent frames
can pin at most that many times the message limit; and at most ``settings.mllp_max_connections_per_address`` from one
address (hazard log H-SEC-14), so one host that opens connections and sends nothing cannot take every place from the
trusts' engines for the idle timeout, again and again.

Who may send (TLS with client certificates, the trusts' allow-list of senders): :mod:`api.feeds.mllp_access`. A message
from a sender that may not send it is refused (AR, ``hl7.sender-not-allowed``) and kept as a dead letter.

Bytes are read as text in the character set MSH-18 names (:func:`priorscan.hl7v2.decode_message`: without MSH-18,
UTF-8, else Windows-1252); a message whose bytes are not text in that set, or whose MSH-18 names a set that is not
read, is refused (AR, ``hl7.charset``) and kept byte for byte as a dead letter. The ACK is encoded the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from api.feeds.group_commit import next_group
from api.feeds.hl7_service import ACK_CODES, Incoming, process_messages, reject_message
from api.feeds.mllp_access import SENDER_NOT_ALLOWED, certificate_names, sender_refusal, tls_context
from api.feeds.writer_processes import WriterProcesses
from priorscan import metrics
from priorscan.audit import Agent
from priorscan.errors import StorageError
from priorscan.hl7v2 import (
    CHARSET_ERROR,
    COMMIT_ERROR,
    AckError,
    ErrorLocation,
    MessageError,
    acknowledgements,
    batch_acknowledgement,
    decode_message,
    is_batch,
    read_header,
    split_batch,
)
from priorscan.logs import correlated, message_id
from priorscan.outcome import ItemOutcome

if TYPE_CHECKING:
    from api.context import AppContext

log = logging.getLogger(__name__)

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c"
CARRIAGE_RETURN = b"\x0d"
READ_CHUNK = 64 * 1024
CHANNEL = "mllp"
#: Writers for PostgreSQL (processes unless ``settings.mllp_writer_processes`` says otherwise), at most one per core:
#: their transactions overlap; each applies a batch at a time.
POSTGRES_WRITERS = 2
#: Most messages one writer applies with one commit.
MAX_BATCH = 32


@dataclass(frozen=True)
class Frame:
    """One framed message: its bytes (only the first ``limit`` bytes when oversized) and its full size."""

    payload: bytes
    size: int
    oversized: bool = False


class MllpFramer:
    """Cut a byte stream into MLLP frames (pure: no I/O).

    Lenient where senders are sloppy: bytes outside a frame are skipped, a frame may end with ``0x1C`` alone, and a
    new ``0x0B`` inside a frame starts it again (the sender gave up on the partial one).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._buffer = bytearray()
        self._in_frame = False
        self._size = 0
        self._skip_cr = False
        self.discarded = 0  # bytes seen outside any frame

    @property
    def in_frame(self) -> bool:
        """Whether a frame has begun and not yet ended."""
        return self._in_frame

    def feed(self, data: bytes) -> list[Frame]:
        """Frames completed by ``data``, in order."""
        frames: list[Frame] = []
        view = memoryview(data)
        i = 0
        if self._skip_cr and view[:1] == CARRIAGE_RETURN:
            i = 1
        self._skip_cr = False
        while i < len(view):
            if not self._in_frame:
                start = data.find(START_BLOCK, i)
                if start < 0:
                    self.discarded += len(data[i:].strip())
                    break
                self.discarded += len(data[i:start].strip())
                self._in_frame, self._size = True, 0
                self._buffer.clear()
                i = start + 1
                continue
            end = data.find(END_BLOCK, i)
            restart = data.find(START_BLOCK, i, end if end >= 0 else len(data))
            if restart >= 0:  # a new frame begins before this one ended: drop the partial one
                log.warning("MLLP frame restarted before its end block; %d partial bytes dropped",
                            self._size + restart - i)
                self._in_frame = False
                i = restart
                continue
            stop = end if end >= 0 else len(data)
            self._take(view[i:stop])
            if end < 0:
                break
            frames.append(Frame(bytes(self._buffer), self._size, self._size > self.max_bytes))
            self._buffer.clear()
            self._in_frame = False
            i = end + 1
            if i < len(view) and view[i:i + 1] == CARRIAGE_RETURN:
                i += 1
            elif i == len(view):
                self._skip_cr = True
        return frames

    def _take(self, chunk: memoryview) -> None:
        room = self.max_bytes - len(self._buffer)
        if room > 0:
            self._buffer.extend(chunk[:room])
        self._size += len(chunk)


def frame(ack: str, encoding: str = "utf-8") -> bytes:
    """An ACK wrapped for the wire."""
    return START_BLOCK + ack.encode(encoding, errors="replace") + END_BLOCK + CARRIAGE_RETURN


async def start_mllp_server(context: AppContext, host: str, port: int) -> asyncio.Server:
    """Listen for MLLP on ``host:port`` (already accepting when this returns).

    Parameters
    ----------
    context
        The opened store, settings and trusts; ``settings.mllp_max_message_bytes`` and
        ``settings.mllp_idle_timeout_s`` bound each connection.
    host, port
        Where to listen (port 0 picks a free one; read it from ``server.sockets[0].getsockname()``).

    Returns
    -------
    asyncio.Server
        Close it (and await ``wait_closed()``) to stop, then :func:`stop_writer`.
    """

    limit = context.settings.mllp_max_connections
    per_address = context.settings.mllp_max_connections_per_address
    active = 0
    by_address: dict[str | None, int] = {}

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal active
        peername = writer.get_extra_info("peername")
        address = peername[0] if isinstance(peername, tuple) else None
        if active >= limit or by_address.get(address, 0) >= per_address:
            log.warning("MLLP connection from %s closed on arrival: %d connections already served (the limit), "
                        "%d from its address (at most %d)", _peer(writer), active, by_address.get(address, 0),
                        per_address)
            metrics.instruments().mllp_closed.labels("limit").inc()
            writer.close()
            with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
                await writer.wait_closed()
            return
        active += 1
        by_address[address] = by_address.get(address, 0) + 1
        try:
            await _serve_connection(context, reader, writer)
        finally:
            active -= 1
            by_address[address] -= 1
            if not by_address[address]:
                del by_address[address]

    tls = tls_context(context.settings)
    if not context.trusts.senders_configured and context.settings.mllp_tls_client_ca is None:
        if context.settings.env == "production":
            log.warning("MLLP: no HL7 sender is configured and no client certificate is required: every message "
                        "will be refused (configure [[trust.hl7_sender]] or PRIORSCAN_MLLP_TLS_CLIENT_CA)")
        else:
            log.warning("MLLP: open to any sender (no [[trust.hl7_sender]], no client certificates; %s only)",
                        context.settings.env)
    _writer(context)  # its writer processes start now, not when the first message waits for them
    server = await asyncio.start_server(on_connection, host, port, reuse_address=True, ssl=tls,
                                        ssl_handshake_timeout=context.settings.mllp_frame_timeout_s if tls else None)
    return server


def _peer(writer: asyncio.StreamWriter) -> str:
    peername = writer.get_extra_info("peername")
    return f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)


async def _serve_connection(context: AppContext, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
    peername = writer.get_extra_info("peername")
    peer = _peer(writer)
    address = peername[0] if isinstance(peername, tuple) else None
    certificate = certificate_names(writer.get_extra_info("peercert"))
    # the audit trail names the feed by its certificate when it has one (never a patient)
    agent = Agent("feed", f"mllp:{certificate[0]}" if certificate else "mllp", address)
    sender = _Sender(address, certificate)
    settings = context.settings
    framer = MllpFramer(settings.mllp_max_message_bytes)
    log.info("MLLP connection from %s%s", peer, " (client certificate)" if certificate else "")
    messages = 0
    connections = metrics.instruments().mllp_connections
    connections.inc()
    loop = asyncio.get_running_loop()
    under_way_since: float | None = None  # when the first byte of the message (or noise) now under way came
    try:
        while True:
            if under_way_since is None:
                timeout = settings.mllp_idle_timeout_s
            else:
                timeout = max(0.0, under_way_since + settings.mllp_frame_timeout_s - loop.time())
            try:
                chunk = await asyncio.wait_for(reader.read(READ_CHUNK), timeout=timeout)
            except TimeoutError:
                if under_way_since is None:
                    log.info("MLLP connection from %s idle for %.0f s: closing", peer, settings.mllp_idle_timeout_s)
                else:
                    log.warning("MLLP connection from %s: no whole message within %.0f s of its first byte: closing",
                                peer, settings.mllp_frame_timeout_s)
                    metrics.instruments().mllp_closed.labels("deadline").inc()
                break
            if not chunk:
                break
            if under_way_since is None:
                under_way_since = loop.time()
            completed = framer.feed(chunk)
            for item in completed:
                if not item.payload.strip():
                    continue  # an empty frame (a keep-alive) is not a message
                started = time.perf_counter()
                if is_batch(item.payload) and not item.oversized:
                    reply, encoding, answered = await _acknowledge_batch(context, item, agent, peer, sender)
                    writer.write(frame(reply, encoding))
                else:
                    acks, encoding = await _acknowledge(context, item, agent, peer, sender)
                    for ack in acks:
                        writer.write(frame(ack, encoding))
                    answered = [(item, acks)]
                await writer.drain()
                messages += len(answered)
                for part, acks in answered:
                    _observe(context, part, acks[-1] if acks else "", time.perf_counter() - started)
            if completed:
                # a frame ended: the deadline starts again with the next byte, or now if one is under way already
                under_way_since = loop.time() if framer.in_frame else None
    except (ConnectionError, OSError) as exc:
        log.info("MLLP connection from %s lost (%s)", peer, type(exc).__name__)
    finally:
        if framer.discarded:
            log.warning("MLLP connection from %s: %d bytes outside MLLP framing were skipped", peer,
                        framer.discarded)
        log.info("MLLP connection from %s closed after %d message(s)", peer, messages)
        connections.dec()
        writer.close()
        with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
            await writer.wait_closed()


def _observe(context: AppContext, item: Frame, ack: str, seconds: float) -> None:
    """Count the acknowledged message by its sender's trust, its type and its ACK code (the header is read again
    here, cheaply, because the writer that applied the message may be another process)."""
    header = _header_or_none(decode_message(item.payload).text)
    trust = context.trusts.resolve(header.sending_facility) if header is not None else None
    kind = f"{header.message_type}^{header.trigger_event}" if header is not None else None
    metrics.hl7_acknowledged("mllp", trust.ods if trust else None, kind, metrics.ack_code(ack), seconds)
    if header is not None:
        with correlated(message_id=message_id(header.sending_facility, header.control_id)):
            log.debug("MLLP ACK %s sent", metrics.ack_code(ack))


@dataclass(frozen=True)
class _Sender:
    """What the connection proves about its sender: the peer's address and its client certificate's names."""

    address: str | None
    certificate: tuple[str, ...] | None


async def _acknowledge(context: AppContext, item: Frame, agent: Agent, peer: str,
                       sender: _Sender) -> tuple[list[str], str]:
    """The acknowledgements of one frame (one ACK in original mode; what MSH-15/16 ask for in enhanced mode)."""
    decoded = decode_message(item.payload)
    text, encoding = decoded.text, decoded.encoding
    header = _header_or_none(text)
    if decoded.problem is not None:
        outcome = await asyncio.to_thread(
            reject_message, context, text[:context.settings.mllp_max_message_bytes], header, decoded.problem,
            code=CHARSET_ERROR, channel=CHANNEL, agent=agent, source=peer, location=ErrorLocation("MSH", 1, 18))
        acks = outcome.detail.get("acks")
        return (list(acks) if isinstance(acks, list) else [str(outcome.detail["ack"])]), encoding
    refusal = sender_refusal(context.trusts, context.settings, header, address=sender.address,
                             certificate=sender.certificate)
    if refusal is not None:
        outcome = await asyncio.to_thread(
            reject_message, context, text[:context.settings.mllp_max_message_bytes], header, refusal,
            code=SENDER_NOT_ALLOWED, channel=CHANNEL, agent=agent, source=peer, location=ErrorLocation("MSH", 1, 4),
            idempotency=False)
        acks = outcome.detail.get("acks")
        return (list(acks) if isinstance(acks, list) else [str(outcome.detail["ack"])]), encoding
    try:
        outcome = await asyncio.wrap_future(_writer(context).submit(_Job(context, text, item, agent, peer)))
        acks = outcome.detail.get("acks")
        return (list(acks) if isinstance(acks, list) else [str(outcome.detail["ack"])]), encoding
    except StorageError as exc:  # the store could not take it now (a writer process died, the listener is stopping)
        log.warning("MLLP message from %s not applied: %s", peer, exc.message)
        _, error_code = ACK_CODES.get(exc.code, ("AE", "207"))
        return acknowledgements(_header_or_none(text), "AE", text=exc.message, accept=COMMIT_ERROR,
                                error=AckError(error_code, application_code=exc.code)), encoding
    except Exception as exc:  # never leave the sender without an answer; name the fault's type only
        log.error("MLLP message from %s could not be processed (%s)", peer, type(exc).__name__)
        return acknowledgements(_header_or_none(text), "AE", text=f"internal error ({type(exc).__name__})",
                                accept=COMMIT_ERROR, error=AckError("207", application_code="internal")), encoding


async def _acknowledge_batch(context: AppContext, item: Frame, agent: Agent, peer: str,
                             sender: _Sender) -> tuple[str, str, list[tuple[Frame, list[str]]]]:
    """The answer to a batch (FHS/BHS ... BTS/FTS) sent in one frame: each of its messages, and each run of segments
    outside a message, acknowledged in order exactly as if it had come alone (so each is applied, refused and
    dead-lettered, or recognised as a repeat, on its own, and answered only once committed), then every ACK in one
    batch (:func:`priorscan.hl7v2.batch_acknowledgement`), written in the first message's character set."""
    batch = split_batch(item.payload)
    answered: list[tuple[Frame, list[str]]] = []
    encoding: str | None = None
    for payload in [*batch.stray, *batch.messages]:
        part = Frame(payload, len(payload))
        acks, part_encoding = await _acknowledge(context, part, agent, peer, sender)
        encoding = encoding or part_encoding
        answered.append((part, acks))
    reply = batch_acknowledgement(batch, [ack for _, acks in answered for ack in acks])
    return reply, encoding or "utf-8", answered


@dataclass(frozen=True)
class _Job:
    """A message waiting for the writer, with what its ACK needs."""

    context: AppContext
    text: str
    frame: Frame
    agent: Agent
    peer: str


class GroupWriter:
    """The writers that apply a store's MLLP messages, several at a time with one commit (group commit).

    Every connection queues its message here and waits for the ACK before reading its next one, so a sender's
    messages are applied in the order sent. A writer thread takes every message waiting (from any connection, up
    to ``max_batch``) and applies them with :func:`api.feeds.hl7_service.process_messages`: one commit, and only then
    the outcomes, whose ACKs the connections send. With ``processes``, each thread hands its batch to a writer process;
    without, the threads apply them here: one for SQLite (one writer at a time anyway), more for PostgreSQL, whose
    round trips and commits then overlap.
    """

    def __init__(self, threads: int, max_batch: int = MAX_BATCH, processes: WriterProcesses | None = None) -> None:
        self.max_batch = max_batch
        self.processes = processes
        self._stopped = False
        self._guard = threading.Lock()  # a message is either queued before the stop markers or refused
        self._queue: queue.SimpleQueue[tuple[_Job, Future[ItemOutcome]] | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._run, name=f"mllp-writer-{n}", daemon=True)
                         for n in range(threads)]
        for thread in self._threads:
            thread.start()

    def submit(self, job: _Job) -> Future[ItemOutcome]:
        future: Future[ItemOutcome] = Future()
        with self._guard:
            if not self._stopped:
                self._queue.put((job, future))
                return future
        # the listener is shutting down: the connection answers AE, and the sender sends the message again
        future.set_exception(StorageError("the MLLP listener is shutting down", code="busy"))
        return future

    def health(self) -> dict[str, int | bool]:
        """Whether the writer can apply messages: its threads and (if any) writer processes alive."""
        threads = sum(1 for thread in self._threads if thread.is_alive())
        out: dict[str, int | bool] = {"threads": threads, "threads_expected": len(self._threads)}
        ok = threads == len(self._threads) and not self._stopped
        if self.processes is not None:
            alive = self.processes.alive()
            out.update(processes=alive, processes_expected=self.processes.processes)
            ok = ok and alive == self.processes.processes
        out["ok"] = ok
        return out

    def stop(self) -> None:
        """Let the batches in flight finish, then end the threads (and the writer processes); once."""
        with self._guard:
            if self._stopped:
                return
            self._stopped = True
            for _ in self._threads:
                self._queue.put(None)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()
        if self.processes is not None:
            self.processes.stop()

    def _run(self) -> None:
        while True:
            batch, stopping = next_group(self._queue, self.max_batch)
            if batch:
                self._apply([(job, future) for job, future in batch if future.set_running_or_notify_cancel()])
            if stopping:
                return

    def _apply(self, batch: list[tuple[_Job, Future[ItemOutcome]]]) -> None:
        messages = [(job, future) for job, future in batch if not job.frame.oversized]
        for job, future in batch:
            if job.frame.oversized:
                _settle(future, lambda job=job: _refuse_oversized(job))  # type: ignore[misc]
        if not messages:
            return
        context = messages[0][0].context
        incoming = [Incoming(job.text, job.agent, job.peer) for job, _ in messages]
        try:
            if self.processes is not None:
                outcomes = self.processes.apply(incoming, channel=CHANNEL)
            else:
                outcomes = process_messages(context, incoming, channel=CHANNEL)
        except Exception as exc:  # noqa: BLE001 - each connection answers AE for its message
            for _, future in messages:
                future.set_exception(exc)
            return
        for (_, future), outcome in zip(messages, outcomes, strict=True):
            future.set_result(outcome)


def _settle(future: Future[ItemOutcome], work: Callable[[], ItemOutcome]) -> None:
    try:
        future.set_result(work())
    except Exception as exc:  # noqa: BLE001 - the connection answers AE
        future.set_exception(exc)


def _refuse_oversized(job: _Job) -> ItemOutcome:
    reason = (f"message of {job.frame.size} bytes exceeds the maximum of "
              f"{job.context.settings.mllp_max_message_bytes}")
    return reject_message(job.context, job.text, _header_or_none(job.text), reason, code="hl7.too-large",
                          channel=CHANNEL, agent=job.agent, source=job.peer)


_WRITERS: weakref.WeakKeyDictionary[Engine, GroupWriter] = weakref.WeakKeyDictionary()
_WRITERS_GUARD = threading.Lock()


def _writer(context: AppContext) -> GroupWriter:
    """This store's writer: with writer processes (:func:`writer_processes`), one thread more than there are
    processes, so that a batch is always ready for the next process that comes free; without, one thread for SQLite
    and :data:`POSTGRES_WRITERS` for PostgreSQL."""
    with _WRITERS_GUARD:
        writer = _WRITERS.get(context.engine)
        if writer is None:
            processes = writer_processes(context)
            if processes:
                writer = GroupWriter(processes + 1, processes=WriterProcesses(context.settings, processes))
            else:
                writer = GroupWriter(1 if context.engine.dialect.name == "sqlite" else POSTGRES_WRITERS)
            _WRITERS[context.engine] = writer
            weakref.finalize(context.engine, writer.stop)
        return writer


def writer_processes(context: AppContext) -> int:
    """How many writer processes apply this store's MLLP messages (0: threads of this process apply them).

    ``settings.mllp_writer_processes`` when set. Otherwise, on a machine of more than one core: one for SQLite (it
    takes one writer at a time; the serving process keeps the sockets, the framing and the ACKs off that writer's
    core), and one per core, at most :data:`POSTGRES_WRITERS`, for PostgreSQL, whose transactions run side by side.
    """
    configured = context.settings.mllp_writer_processes
    if configured is not None:
        return configured
    cores = os.cpu_count() or 1
    if cores < 2:
        return 0
    if context.engine.dialect.name == "sqlite":
        return 1
    return min(POSTGRES_WRITERS, cores)


def writer_health(context: AppContext) -> dict[str, int | bool] | None:
    """The store's MLLP writer's health (:meth:`GroupWriter.health`), or None when this process has none yet."""
    with _WRITERS_GUARD:
        writer = _WRITERS.get(context.engine)
    return None if writer is None else writer.health()


def stop_writer(context: AppContext) -> None:
    """Stop the store's writer, if it has one: the batches in flight are finished first (a listener that is shutting
    down calls this once its connections are closed)."""
    with _WRITERS_GUARD:
        writer = _WRITERS.get(context.engine)
    if writer is not None:
        writer.stop()


def _header_or_none(text: str):  # type: ignore[no-untyped-def]
    try:
        return read_header(text)
    except MessageError:
        return None


__all__ = ["Frame", "MllpFramer", "frame", "start_mllp_server", "stop_writer", "writer_processes"]
