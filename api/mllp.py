"""The MLLP listener: HL7 v2 over TCP from the trusts' interface engines, one ACK per message, in order.

Framing (HL7 MLLP release 2): ``0x0B`` message ``0x1C 0x0D``. Each connection is served by one coroutine that reads
frames, hands each message to :func:`api.hl7_service.process_message` on a worker thread (the database work blocks:
one thread for SQLite, whose writers take turns anyway; several for PostgreSQL, whose commits overlap) and writes its
ACK before reading the next, so ACKs go back in order and only after commit; many connections (one per trust feed,
or several) are served at once. A message larger than ``settings.mllp_max_message_bytes`` is
refused with an AR and the rest of its frame is skipped, so the connection stays usable. A connection silent for
``settings.mllp_idle_timeout_s`` is closed.

Bytes are decoded as MSH-18 says (ISO 8859-1 or UTF-8); without MSH-18, UTF-8, falling back to ISO 8859-1. The ACK is
encoded the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from api.hl7_service import process_message, reject_message
from priorscan.audit import Agent
from priorscan.errors import HL7Error
from priorscan.hl7v2 import build_ack, read_header

if TYPE_CHECKING:
    from api.context import AppContext

log = logging.getLogger(__name__)

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c"
CARRIAGE_RETURN = b"\x0d"
READ_CHUNK = 64 * 1024
CHANNEL = "mllp"
#: Worker threads for PostgreSQL: enough for every trust feed to have a message in flight (commits overlap).
POSTGRES_WORKERS = 16
_LATIN1_NAMES = ("8859/1", "ISO-8859-1", "ISO8859-1", "ISO IR100", "LATIN1")


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


def decode(payload: bytes) -> tuple[str, str]:
    """The message text and the encoding it was read with (MSH-18 when it names one)."""
    first = payload.lstrip()[:1024].split(b"\r", 1)[0].split(b"\n", 1)[0]
    charset = ""
    if first.startswith(b"MSH") and len(first) > 3:
        fields = first.split(first[3:4])
        if len(fields) > 17:
            charset = fields[17].decode("ascii", "replace").strip().upper()
    if charset in _LATIN1_NAMES:
        return payload.decode("latin-1"), "latin-1"
    try:
        return payload.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return payload.decode("latin-1"), "latin-1"


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
        Close it (and await ``wait_closed()``) to stop.
    """

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve_connection(context, reader, writer)

    server = await asyncio.start_server(on_connection, host, port, reuse_address=True)
    return server


async def _serve_connection(context: AppContext, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
    peername = writer.get_extra_info("peername")
    peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)
    agent = Agent("feed", "mllp", peername[0] if isinstance(peername, tuple) else None)
    settings = context.settings
    framer = MllpFramer(settings.mllp_max_message_bytes)
    log.info("MLLP connection from %s", peer)
    messages = 0
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(READ_CHUNK), timeout=settings.mllp_idle_timeout_s)
            except TimeoutError:
                log.info("MLLP connection from %s idle for %.0f s: closing", peer, settings.mllp_idle_timeout_s)
                break
            if not chunk:
                break
            for item in framer.feed(chunk):
                if not item.payload.strip():
                    continue  # an empty frame (a keep-alive) is not a message
                ack, encoding = await _acknowledge(context, item, agent, peer)
                writer.write(frame(ack, encoding))
                await writer.drain()
                messages += 1
    except (ConnectionError, OSError) as exc:
        log.info("MLLP connection from %s lost (%s)", peer, type(exc).__name__)
    finally:
        if framer.discarded:
            log.warning("MLLP connection from %s: %d bytes outside MLLP framing were skipped", peer,
                        framer.discarded)
        log.info("MLLP connection from %s closed after %d message(s)", peer, messages)
        writer.close()
        with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
            await writer.wait_closed()


async def _acknowledge(context: AppContext, item: Frame, agent: Agent, peer: str) -> tuple[str, str]:
    text, encoding = decode(item.payload)
    try:
        loop, workers = asyncio.get_running_loop(), _workers(context)
        if item.oversized:
            reason = f"message of {item.size} bytes exceeds the maximum of {context.settings.mllp_max_message_bytes}"
            outcome = await loop.run_in_executor(workers, functools.partial(
                reject_message, context, text, _header_or_none(text), reason, code="hl7.too-large", channel=CHANNEL,
                agent=agent, source=peer))
        else:
            outcome = await loop.run_in_executor(workers, functools.partial(
                process_message, context, text, channel=CHANNEL, agent=agent, source=peer))
        return str(outcome.detail["ack"]), encoding
    except Exception as exc:  # never leave the sender without an answer; name the fault's type only
        log.error("MLLP message from %s could not be processed (%s)", peer, type(exc).__name__)
        return build_ack(_header_or_none(text), "AE", text=f"internal error ({type(exc).__name__})"), encoding


_WORKERS: weakref.WeakKeyDictionary[Engine, ThreadPoolExecutor] = weakref.WeakKeyDictionary()
_WORKERS_GUARD = threading.Lock()


def _workers(context: AppContext) -> ThreadPoolExecutor:
    """The threads that apply this store's messages: one for SQLite, whose writers take turns anyway (one thread
    spares them queueing on a lock and the switching that goes with it), :data:`POSTGRES_WORKERS` for PostgreSQL."""
    with _WORKERS_GUARD:
        workers = _WORKERS.get(context.engine)
        if workers is None:
            size = 1 if context.engine.dialect.name == "sqlite" else POSTGRES_WORKERS
            workers = _WORKERS[context.engine] = ThreadPoolExecutor(size, thread_name_prefix="mllp")
            weakref.finalize(context.engine, workers.shutdown, wait=False)
        return workers


def _header_or_none(text: str):  # type: ignore[no-untyped-def]
    try:
        return read_header(text)
    except HL7Error:
        return None


__all__ = ["Frame", "MllpFramer", "decode", "frame", "start_mllp_server"]
