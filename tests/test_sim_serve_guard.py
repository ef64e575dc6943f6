"""`tagjoin sim serve` as a good citizen of 127.0.0.1: malformed requests, smuggled requests,
floods, silent and vanishing clients get an answer or a closed connection, never a traceback.

The first tests run the real command as a process and talk raw HTTP/1.1 to it over sockets; the
timeouts are checked on one guarded server in process, with the limits made short.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tagjoin.sim.live import http_guard
from tagjoin.sim.live.http_guard import MAX_CONNECTIONS, GuardedHandler, GuardedServer

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Serve:
    proc: subprocess.Popen[str]
    env: dict[str, str]
    agents: dict[str, int]  # node name -> port
    control_port: int

    @property
    def consul_port(self) -> int:
        return int(self.env["CONSUL_HTTP_ADDR"].rsplit(":", 1)[1])

    @property
    def ec2_port(self) -> int:
        return int(self.env["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def serve() -> Iterator[Serve]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tagjoin", "sim", "serve", "--servers", "3", "--clients", "1", "--speed", "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        env: dict[str, str] = {}
        agents: dict[str, int] = {}
        control = 0
        for _ in range(40):  # bounded: the banner is about 20 lines
            line = proc.stdout.readline()
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").strip().partition("=")
                env[name] = value
            elif line.startswith("#   "):
                agents[line.split()[1]] = int(line.rsplit(":", 1)[1])
            elif line.startswith("# control API:"):
                control = int(line.split("127.0.0.1:")[1].split("/")[0])
            if line.startswith("# Ctrl-C") or not line:
                break
        assert env and agents and control, "sim serve printed no banner"
        yield Serve(proc, env, agents, control)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def exchange(port: int, data: bytes, *, wait: float = 5.0) -> bytes:
    """Send `data` and read until the server closes (or `wait` seconds pass without a byte)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        # The server may close before it has read everything we sent; that is an answer too.
        with contextlib.suppress(OSError):
            sock.sendall(data)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return out


def statuses(answer: bytes) -> list[int]:
    return [int(code) for code in re.findall(rb"HTTP/1\.[01] (\d{3}) ", answer)]


def get(port: int, path: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return resp.status, resp.read()


def test_a_bad_content_length_is_refused(serve: Serve) -> None:
    answer = exchange(serve.consul_port, b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
    assert statuses(answer) == [400]


def test_a_request_hidden_in_an_oversized_body_is_never_run(serve: Serve) -> None:
    hidden = b"PUT /v1/agent/leave HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    body = hidden + b"A" * ((1 << 20) + 10 - len(hidden))
    head = b"POST /v1/status/leader HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
    answer = exchange(serve.consul_port, head + body)
    assert statuses(answer) == [413]  # one answer: the connection closed instead of reading on
    assert get(serve.consul_port, "/v1/agent/self")[0] == 200  # the agent did not leave


def test_a_request_behind_a_chunked_body_is_never_run(serve: Serve) -> None:
    hidden = b"PUT /v1/agent/leave HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    chunked = b"POST /v1/status/leader HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    assert statuses(exchange(serve.consul_port, chunked + hidden)) == [411]
    both = b"POST /v1/status/leader HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 60\r\n\r\nhello"
    assert statuses(exchange(serve.consul_port, both + hidden)) == [400]
    assert get(serve.consul_port, "/v1/agent/self")[0] == 200


def test_a_small_body_is_read_and_keep_alive_goes_on(serve: Serve) -> None:
    two = (
        b"PUT /v1/status/leader HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    answer = exchange(serve.consul_port, two)
    assert len(statuses(answer)) == 2 and statuses(answer)[1] == 200


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
        (b"GET /v1/status/leader HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(150)) + b"\r\n", 431),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"BREW /coffee HTCPCP/1.0\r\n\r\n", 400),
        (b"GET /v1/status/leader HTTP/9.9\r\n\r\n", 505),
    ],
    ids=["header line of 70 kB", "150 headers", "request line of 70 kB", "not HTTP", "HTTP/9.9"],
)
def test_malformed_requests_get_an_answer(serve: Serve, request_bytes: bytes, status: int) -> None:
    for port in (serve.consul_port, serve.control_port):
        assert statuses(exchange(port, request_bytes)) == [status]


def test_clients_that_vanish_mid_query_leave_no_trace(serve: Serve) -> None:
    port = serve.consul_port
    for linger in (False, True):
        for _ in range(10):
            sock = socket.create_connection(("127.0.0.1", port))
            if linger:  # close with a reset, as a killed process does
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.sendall(b"GET /v1/catalog/nodes?index=999999999&wait=1s HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.close()
        for _ in range(10):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"GET /v1/agent/members HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.close()
    time.sleep(1.5)  # let the held queries come back and find their clients gone
    assert get(port, "/v1/agent/self")[0] == 200


def test_a_flood_of_connections_is_turned_away_and_then_served(serve: Serve) -> None:
    port = serve.agents[sorted(serve.agents)[-1]]
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.5)  # every one of them has its thread now
        answer = exchange(port, b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n\r\n")
        assert statuses(answer) == [503] and answer.endswith(b"too many connections\n")
    finally:
        for sock in held:
            sock.close()
    for _ in range(50):  # bounded: the slots come back as the server sees the closes
        try:
            if get(port, "/v1/status/leader")[0] == 200:
                break
        except OSError:
            time.sleep(0.1)
    assert get(port, "/v1/status/leader")[0] == 200


def test_the_ec2_endpoint_refuses_a_huge_body_and_survives_garbage(serve: Serve) -> None:
    port = serve.ec2_port
    body = b"Action=DescribeInstances&" + b"A" * (2 << 20)
    head = (
        b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n"
    )
    assert statuses(exchange(port, head % len(body) + body, wait=2)) == [413]
    chunked = (
        b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\n\xff\x00\x01\r\n0\r\n\r\n"
    )
    assert len(statuses(exchange(port, chunked))) == 1  # an answer (moto's), and no traceback (the last test)


def test_sim_serve_stops_cleanly_and_said_nothing_on_stderr(serve: Serve) -> None:
    # The control API still answers after everything above, then the process stops on SIGTERM.
    status, body = get(serve.control_port, "/control/nodes")
    assert status == 200 and len(json.loads(body)["nodes"]) == 4
    serve.proc.send_signal(signal.SIGTERM)
    out, err = serve.proc.communicate(timeout=30)
    assert serve.proc.returncode == 0
    assert out.rstrip().endswith("tagjoin sim serve: stopped")
    assert err == "", err


# -- timeouts, in process, with short limits --------------------------------------------------


class _Echo(GuardedHandler):
    def do_POST(self) -> None:
        body = self.read_body()
        if body is not None:
            self.send_reply(200, {}, body)


@pytest.fixture
def short_limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setattr(http_guard, "IDLE_S", 0.5)
    monkeypatch.setattr(http_guard, "REQUEST_S", 0.5)
    server = GuardedServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_an_idle_keep_alive_connection_is_closed(short_limits: int) -> None:
    with socket.create_connection(("127.0.0.1", short_limits), timeout=10) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        answer = b""
        while not answer.endswith(b"hi"):
            answer += sock.recv(1024)
        assert sock.recv(1024) == b""  # closed by the server, well before our own 10 s


def test_a_request_that_trickles_in_is_cut_off(short_limits: int) -> None:
    with socket.create_connection(("127.0.0.1", short_limits), timeout=10) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\n")
        closed = False
        for _ in range(100):  # a header byte every 50 ms, for up to 5 s
            try:
                sock.sendall(b"X")
            except OSError:
                closed = True
                break
            time.sleep(0.05)
        if not closed:
            sock.settimeout(5)
            closed = sock.recv(1024) == b""
    assert closed


def test_a_body_shorter_than_announced_is_not_waited_for(short_limits: int) -> None:
    answer = exchange(short_limits, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly this", wait=10)
    assert answer == b""
