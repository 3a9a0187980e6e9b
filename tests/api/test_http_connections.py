"""``priorscan serve``'s HTTP door holds no connection for a client that never completes a request, and serves a
bounded number at once (hazard log H-SEC-11).

Before, a connection that sent nothing, or a request line and part of its headers (slowloris), stayed open for as long
as the client liked (uvicorn times out only a connection left idle after a response); enough of them used up the
process's file descriptors, which the MLLP listener and the DICOM port share.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx
from api_factories import free_port

HEADER_TIMEOUT_S = 3
MAX_CONNECTIONS = 4
MAX_HEADER_BYTES = 65536  # the default of settings.http_max_header_bytes


@contextmanager
def serving(db_url: str, header_timeout_s: float = HEADER_TIMEOUT_S) -> Iterator[int]:
    port = free_port()
    env = dict(os.environ, PRIORSCAN_HTTP_HEADER_TIMEOUT_S=str(header_timeout_s),
               PRIORSCAN_HTTP_MAX_CONNECTIONS=str(MAX_CONNECTIONS))
    process = subprocess.Popen([sys.executable, "-m", "priorscan.cli", "--db", db_url, "serve", "--port", str(port),
                                "--mllp-port", "0"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _closed_by_server(sock: socket.socket, within_s: float) -> bool:
    """True when the server closes ``sock`` (end of stream) within ``within_s``; bytes it sends before are read
    and left aside (what matters is that the connection ends)."""
    deadline = time.monotonic() + within_s
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if sock.recv(4096) == b"":
                return True
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
    return False


def _whole_response(sock: socket.socket) -> bytes:
    """One HTTP response read whole from ``sock``: its head, then as many body bytes as Content-Length says (the
    head and the body may arrive in separate segments)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, "the server closed the connection before a whole response"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = sock.recv(4096)
        assert chunk, "the server closed the connection before a whole response"
        body += chunk
    return head + b"\r\n\r\n" + body


def test_connections_that_never_complete_their_headers_are_closed(sqlite_url: str) -> None:
    with serving(sqlite_url) as port, ExitStack() as stack:
        silent = stack.enter_context(socket.create_connection(("127.0.0.1", port)))
        partial = stack.enter_context(socket.create_connection(("127.0.0.1", port)))
        partial.sendall(b"GET /healthz HTTP/1.1\r\nHost: priorscan\r\nX-Slow: ")
        kept_alive = stack.enter_context(socket.create_connection(("127.0.0.1", port)))
        kept_alive.sendall(b"GET /healthz HTTP/1.1\r\nHost: priorscan\r\n\r\n")
        kept_alive.settimeout(10)
        assert _whole_response(kept_alive).startswith(b"HTTP/1.1 200")  # the body too: nothing of it left unread
        kept_alive.sendall(b"GET /healthz HTTP/1.1\r\nHost: ")  # the next request, never finished
        # generous: the deadline is HEADER_TIMEOUT_S; a loaded test host may be slow to run the timer
        assert _closed_by_server(silent, 30), "a connection that sent nothing"
        assert _closed_by_server(partial, 30), "a connection whose headers never ended"
        assert _closed_by_server(kept_alive, 30), "a kept-alive connection whose next request never ended"


def test_connections_beyond_the_limit_are_closed_on_arrival(sqlite_url: str) -> None:
    with serving(sqlite_url, header_timeout_s=120) as port:  # the held ones are not closed by the deadline
        with ExitStack() as stack:
            held = [stack.enter_context(socket.create_connection(("127.0.0.1", port)))
                    for _ in range(MAX_CONNECTIONS)]
            time.sleep(0.5)  # let the server accept them
            extra = stack.enter_context(socket.create_connection(("127.0.0.1", port)))
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: priorscan\r\n\r\n")
            assert _closed_by_server(extra, 10)
            assert len(held) == MAX_CONNECTIONS
        # the held ones closed by the client: the door serves again
        deadline = time.monotonic() + 30
        while httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.2)


def _answer_then_close(sock: socket.socket, within_s: float) -> bytes:
    """What the server sends on ``sock`` until it closes the connection (or ``within_s`` runs out)."""
    answer = b""
    deadline = time.monotonic() + within_s
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        answer += chunk
    return answer


def test_a_request_line_or_header_without_end_is_431_before_it_fills_memory(sqlite_url: str) -> None:
    """Before, the parser kept a URL or a header value that never ended for as long as the header deadline allowed:
    hundreds of megabytes from a client with no credentials (hazard log H-SEC-13)."""
    with serving(sqlite_url, header_timeout_s=120) as port:  # the deadline does not close them first
        for start in (b"GET /healthz?q=", b"GET /healthz HTTP/1.1\r\nHost: priorscan\r\nX-Long: "):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                # just past the limit: the server has read every byte when it answers, so it closes cleanly
                # (unread bytes would make it reset the connection, and the answer could be lost)
                sock.sendall(start + b"a" * (MAX_HEADER_BYTES + 100 - len(start)))
                answer = _answer_then_close(sock, 30)
            assert answer.startswith(b"HTTP/1.1 431"), (start, answer[:100])
            assert answer.endswith(b'{"detail": "the request line and headers are too long"}')
        headers = {"Authorization": "Bearer " + "x" * 40000}  # long but within the limit: judged as usual
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/alerts", headers=headers, timeout=10).status_code == 401
