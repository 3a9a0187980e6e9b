"""HTTP connections within bounds, as the MLLP listener bounds its own (``priorscan serve``).

uvicorn closes a connection left idle *after* a response (``timeout_keep_alive``), but not one that never completes
a request: a client that opens connections and sends nothing, or a request line and a few header bytes, held each
one for as long as it liked, and enough of them used up the process's file descriptors, which the MLLP listener and
the DICOM port share. So, in the protocol uvicorn runs for each connection (its httptools one, with two limits):

- a request's headers must arrive whole within ``settings.http_header_timeout_s`` of the connection's opening, or of
  the first byte of the request after the previous response (a total deadline that later bytes do not restart);
  otherwise the connection is closed. A body is not under this deadline: a large STOW-RS upload on a slow link is
  a caller who has been authenticated (:mod:`api.http.guard` answers before reading a body);
- a request line and headers longer in all than ``settings.http_max_header_bytes`` are answered 431 and the connection
  closed (hazard log H-SEC-13): the parser keeps them in memory until they end, and without a limit a client with no
  credentials could send hundreds of megabytes of URL or of one header within the deadline;
- at most ``settings.http_max_connections`` connections are served at once; more are closed on arrival, so the
  HTTP door alone cannot take every descriptor from the feeds.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)


#: The answer to a request whose line and headers pass the limit (the path may be unread: FastAPI's error shape).
_TOO_LONG = json.dumps({"detail": "the request line and headers are too long"}).encode()
HEADERS_TOO_LONG = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
                    b"content-length: " + str(len(_TOO_LONG)).encode() + b"\r\nconnection: close\r\n\r\n" + _TOO_LONG)


def bounded_protocol(header_timeout_s: float, max_connections: int,
                     max_header_bytes: int = 65536) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with a deadline on each request's headers, a limit on their length and a cap on
    connections.

    Parameters
    ----------
    header_timeout_s
        Seconds within which a request's headers must be whole.
    max_connections
        Connections served at once; one more is closed as it arrives.
    max_header_bytes
        Bytes of a request line and headers; a request that has sent more without ending its headers is answered
        431 and its connection closed.
    """

    class BoundedHttpProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None
        _head_bytes = 0

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                log.warning("HTTP connection closed on arrival: %d connections are open (the limit)",
                            max_connections)
                transport.close()
                return
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._deadline is None and (self.cycle is None or self.cycle.response_complete):
                self._arm()  # the first bytes of the next request on a kept-alive connection
            awaiting_headers = self._deadline is not None
            super().data_received(data)
            if awaiting_headers and self._deadline is not None and not self.transport.is_closing():
                self._head_bytes += len(data)  # counted whole: a chunk that ends the headers is not counted
                if self._head_bytes > max_header_bytes:
                    self._disarm()
                    log.warning("HTTP request refused: its line and headers passed %d bytes", max_header_bytes)
                    self.transport.write(HEADERS_TOO_LONG)
                    self.transport.close()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._head_bytes = 0
            self._deadline = self.loop.call_later(header_timeout_s, self._headers_too_late)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _headers_too_late(self) -> None:
            self._deadline = None
            log.info("HTTP connection closed: no whole request headers within %.0f s", header_timeout_s)
            self.transport.close()

    return BoundedHttpProtocol


__all__ = ["bounded_protocol"]
