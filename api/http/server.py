"""``priorscan serve``: HTTP (uvicorn) and the MLLP listener in one asyncio loop, with a clean shutdown.

Connections are bounded (:mod:`api.http.connections`): a request's headers must arrive within
``settings.http_header_timeout_s`` and be no longer than ``settings.http_max_header_bytes``, and at most
``settings.http_max_connections`` are served at once.
SIGTERM or SIGINT stops both listeners from accepting, lets requests in flight finish, and returns 0; a second SIGINT
forces the exit. The access log (written by :class:`api.http.routers.operations.RequestObservation`) names method, path
(never the query string, which may hold identifiers such as an NHS number in a FHIR search) and status.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import signal
import sys
from collections.abc import Coroutine, Generator
from typing import TYPE_CHECKING, Any

import uvicorn

from api.context import AppContext
from api.http.app import create_app
from api.http.connections import bounded_protocol

if TYPE_CHECKING:
    from priorscan.cli import CliContext

log = logging.getLogger("priorscan.server")

MLLP_CLOSE_TIMEOUT_S = 10.0


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: :func:`serve` owns the signals of the process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _mllp_starter() -> Any:
    module = importlib.import_module("api.feeds.mllp")  # written alongside; imported only when MLLP is wanted
    return module.start_mllp_server


async def serve(context: AppContext, *, host: str, port: int, mllp_port: int, log_level: str = "info",
                ready: asyncio.Event | None = None, stop: asyncio.Event | None = None, dicom_port: int = 0) -> int:
    """Serve HTTP on ``host:port``, MLLP on ``host:mllp_port`` (unless 0) and a DICOM C-STORE SCP on
    ``host:dicom_port`` (unless 0) until SIGTERM/SIGINT or ``stop``.

    Parameters
    ----------
    context
        The opened store, settings and trusts.
    ready
        Set once both listeners accept connections.
    stop
        Set it to shut down (signals set it too).

    Returns
    -------
    int
        The exit status: 0 after a clean shutdown.
    """
    app = create_app(context)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                            log_config=None, lifespan="on", server_header=False,
                            http=bounded_protocol(context.settings.http_header_timeout_s,
                                                  context.settings.http_max_connections,
                                                  context.settings.http_max_header_bytes))
    http = _EmbeddedServer(config)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals_seen: list[int] = []

    def on_signal(signum: int) -> None:
        signals_seen.append(signum)
        if stop.is_set() and signum == signal.SIGINT:
            http.force_exit = True
        stop.set()

    installed: list[signal.Signals] = []
    for handled in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not main thread / platform
            loop.add_signal_handler(handled, on_signal, int(handled))
            installed.append(handled)

    mllp_server: asyncio.AbstractServer | None = None
    dicom_server: Any = None
    try:
        if mllp_port:
            mllp_server = await _mllp_starter()(context, host, mllp_port)
            log.info("MLLP listening on %s:%d", host, mllp_port)
        if dicom_port:
            scp = importlib.import_module("api.feeds.dicom_scp")  # pynetdicom only when DICOM is wanted
            dicom_server = scp.start_store_scp(context, host, dicom_port)
            log.info("DICOM C-STORE SCP %s listening on %s:%d", dicom_server.ae_title, host, dicom_server.port)
        http_task = asyncio.create_task(http.serve(), name="http")
        while not http.started:
            if http_task.done():
                http_task.result()  # raises what stopped uvicorn (e.g. the port is taken)
                log.error("the HTTP server stopped during start-up")
                return 1
            await asyncio.sleep(0.02)
        log.info("HTTP listening on http://%s:%d", host, port)
        if ready is not None:
            ready.set()
        stop_task = asyncio.create_task(stop.wait(), name="stop")
        await asyncio.wait({http_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if signals_seen:
            log.info("shutting down (%s)", signal.Signals(signals_seen[0]).name)
        if mllp_server is not None:
            mllp_server.close()
        if dicom_server is not None:
            await asyncio.to_thread(dicom_server.stop)  # ends associations; objects in flight finish first
            dicom_server = None
        http.should_exit = True
        await http_task
        stop_task.cancel()
        if mllp_server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(mllp_server.wait_closed(), MLLP_CLOSE_TIMEOUT_S)
            await asyncio.to_thread(importlib.import_module("api.feeds.mllp").stop_writer, context)
        log.info("stopped")
        return 0
    finally:
        if mllp_server is not None:
            mllp_server.close()
        if dicom_server is not None:
            dicom_server.stop()
        for handled in installed:
            loop.remove_signal_handler(handled)


def run_event_loop(main: Coroutine[Any, Any, int]) -> int:
    """Run ``main`` on uvloop where it is installed (it is with ``uvicorn[standard]``), else on asyncio's own loop.

    uvicorn chooses uvloop only when it creates the loop itself; here one loop carries both HTTP and MLLP.
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; kept for platforms without wheels
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def run_serve(args: argparse.Namespace, ctx: CliContext) -> int:
    """``priorscan serve [--host] [--port] [--mllp-port] [--dicom-port] [--mllp-tls-cert PEM --mllp-tls-key PEM
    [--mllp-tls-client-ca PEM]]``."""
    if getattr(args, "workers", 1) != 1:
        print("priorscan: one worker per process; to use several cores run several `priorscan serve` processes "
              "(each on its own port) behind a load balancer, sharing one PostgreSQL", file=sys.stderr)
        return 2
    from priorscan import metrics
    from priorscan.settings import Settings

    settings = ctx.settings
    overrides = {name: value for name in ("mllp_tls_cert", "mllp_tls_key", "mllp_tls_client_ca")
                 if (value := getattr(args, name, None))}
    if overrides:  # validated again: the flags go together as the settings do
        settings = Settings(**{**settings.model_dump(), **overrides})
    metrics.use_directory(settings.metrics_dir)  # before any metric exists, and before writer processes start
    context = AppContext.open(settings, background_checkpoint=True)
    try:
        return run_event_loop(serve(context, host=args.host, port=args.port, mllp_port=args.mllp_port,
                                    log_level=settings.log_level.lower(),
                                    dicom_port=getattr(args, "dicom_port", 0) or 0))
    finally:
        context.engine.dispose()
        metrics.release_directory()
