"""Fixtures for the feed tests: a real MLLP listener in a background event loop, and an opened app context.

The listener is :func:`api.feeds.mllp.start_mllp_server` on a free loopback port; tests talk to it with the ``hl7``
package's :class:`hl7.client.MLLPClient`, an independent client.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from api.context import AppContext
from api.feeds.mllp import start_mllp_server, stop_writer
from priorscan.settings import Settings


class MllpServer:
    """The MLLP listener served by its own event loop in a thread, with the store it writes to."""

    def __init__(self, db_url: str, **settings: Any) -> None:
        self.context = AppContext.open(Settings(**{"db": db_url, "env": "test", **settings}))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0

    def __enter__(self) -> MllpServer:
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(start_mllp_server(self.context, "127.0.0.1", 0), self.loop)
        self.server = future.result(timeout=20)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self.server.close()
            await self.server.wait_closed()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_default_executor()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self.loop).result(timeout=20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()
        stop_writer(self.context)
        self.context.engine.dispose()


@pytest.fixture
def mllp(store_url: str) -> Iterator[MllpServer]:
    """A real MLLP listener on each backend."""
    with MllpServer(store_url) as server:
        yield server


@pytest.fixture
def mllp_server() -> type[MllpServer]:
    """The listener class, for tests that start one with settings of their own."""
    return MllpServer


@pytest.fixture
def mllp_sqlite(sqlite_url: str) -> Iterator[MllpServer]:
    """A real MLLP listener on SQLite, for tests whose subject is the wire or a dialect, not storage."""
    with MllpServer(sqlite_url) as server:
        yield server


@pytest.fixture
def mllp_small(sqlite_url: str) -> Iterator[MllpServer]:
    """A listener with a 4 KiB message limit and a 0.5 s idle timeout."""
    with MllpServer(sqlite_url, mllp_max_message_bytes=4096, mllp_idle_timeout_s=0.5) as server:
        yield server


@pytest.fixture
def context(store_url: str) -> Iterator[AppContext]:
    """An opened app context on each backend."""
    ctx = AppContext.open(Settings(db=store_url, env="test"))
    yield ctx
    ctx.engine.dispose()
