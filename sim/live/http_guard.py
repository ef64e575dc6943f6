"""What every loopback HTTP server of a live simulated cluster needs to be a good citizen.

The agents' Consul APIs and the control API run on `http.server`, which on its own trusts its
clients: it leaves a body it was not asked to read in the stream (where the next "request" is
parsed from it), starts a thread per connection without limit, waits on a silent client for ever
and prints a traceback when a client goes away mid-answer. `GuardedServer` and `GuardedHandler`
close those gaps:

- every body is read whole or refused (and the connection closed): a bad or repeated
  `Content-Length`, any `Transfer-Encoding`, a body over `MAX_BODY`;
- at most `MAX_CONNECTIONS` connections (threads) per server; the next one gets a 503;
- a keep-alive connection idle for `IDLE_S` is closed, and a request has `REQUEST_S` from its
  first byte to its last;
- a client that vanishes is not an error; anything else unexpected is one line on stderr.
"""

from __future__ import annotations

import io
import socket
import sys
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 1 << 20
MAX_CONNECTIONS = 128
IDLE_S = 30.0
REQUEST_S = 10.0
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 21\r\nConnection: close\r\n\r\ntoo many connections\n"
)


class _DeadlineReader(io.RawIOBase):
    """The socket's bytes, with the idle limit before a request and the request limit during it."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.deadline: float | None = None  # None: between requests

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.deadline is None:
            timeout = IDLE_S
        else:
            timeout = self.deadline - time.monotonic()
            if timeout <= 0:
                raise TimeoutError("the request did not arrive in time")
        self._sock.settimeout(timeout)
        received = self._sock.recv_into(buffer)
        if received and self.deadline is None:
            self.deadline = time.monotonic() + REQUEST_S
        return received


class GuardedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: GuardedServer

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the plain reader's reference to the socket: ours replaces it
        self._reader = _DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        self._reader.deadline = None
        super().handle_one_request()

    def read_body(self) -> bytes | None:
        """The request's body, or None after refusing it; the connection then closes, so no byte
        of an unread body is ever taken for a request of its own."""
        if self.headers.get("Transfer-Encoding") is not None:
            self.reject(411, "send the body with a Content-Length, not a Transfer-Encoding")
            return None
        lengths = {value.strip() for value in self.headers.get_all("Content-Length") or []}
        if len(lengths) > 1:
            self.reject(400, "more than one Content-Length")
            return None
        raw = lengths.pop() if lengths else "0"
        if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
            self.reject(400, "Content-Length is not a whole number")
            return None
        length = int(raw)
        if length > MAX_BODY:
            self.reject(413, f"body larger than {MAX_BODY} bytes")
            return None
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            self.close_connection = True  # the client went away mid-body
            return None
        return body

    def reject(self, status: int, message: str) -> None:
        self.close_connection = True
        self.send_reply(status, {"Content-Type": "text/plain; charset=utf-8", "Connection": "close"}, message.encode())

    def send_reply(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        """Answer; a client that has gone away meanwhile only closes the connection."""
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server's own refusals (a request line or header too long, a malformed request line).
        if self.request_version == "HTTP/0.9":
            # A request line it could not read leaves it at 0.9, which answers without a status
            # line; every client of ours speaks 1.x, so answer as Go's net/http (the agent) does.
            self.request_version = "HTTP/1.0"
        try:
            super().send_error(code, message, explain)
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the simulator's trace and the console own the terminal."""


class GuardedServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # never join handler threads: they may be waiting for the sim lock
    allow_reuse_address = True
    # socketserver's default backlog is 5: a burst of connections (50 watchers starting together)
    # would see SYNs dropped and retried a second or more later.
    request_queue_size = 128
    max_connections = MAX_CONNECTIONS
    label = "sim http"

    def server_bind(self) -> None:
        self._slots = threading.BoundedSemaphore(self.max_connections)
        super().server_bind()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            _turn_away(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return  # the client went away or went silent: its business
        what = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}" if exc else "unknown error"
        print(f"tagjoin sim serve: {self.label}: error serving a request: {what}", file=sys.stderr, flush=True)


def _turn_away(request: socket.socket) -> None:
    try:
        request.settimeout(0.5)
        request.sendall(_BUSY)
    except OSError:
        pass
