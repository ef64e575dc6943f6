"""A minimal fake Consul agent served over real HTTP (TCP or unix socket) on loopback.

It answers with the JSON shapes, headers (Go-canonicalised names) and plain-text error bodies
of Consul's agent/http.go and its endpoint handlers, and records every request so tests can check
what was sent.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import socket
import socketserver
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

LEADER_ADDR = "10.0.1.10:8300"

SELF_SERVER: dict[str, Any] = {
    "Config": {
        "Datacenter": "dc1",
        "PrimaryDatacenter": "dc1",
        "NodeName": "ip-10-0-1-10",
        "NodeID": "40e4a748-2192-161a-0510-9bf59fe950b5",
        "Revision": "a1b2c3d4",
        "Server": True,
        "Version": "1.20.1",
        "BuildDate": "2024-10-29T19:04:05Z",
    },
    "DebugConfig": {"...": "full runtime config, unstable format"},
    "Coord": {"Adjustment": 0, "Error": 1.5, "Height": 0, "Vec": [0, 0, 0, 0, 0, 0, 0, 0]},
    "Member": {
        "Name": "ip-10-0-1-10",
        "Addr": "10.0.1.10",
        "Port": 8301,
        "Tags": {
            "dc": "dc1",
            "id": "40e4a748-2192-161a-0510-9bf59fe950b5",
            "port": "8300",
            "role": "consul",
            "expect": "3",
            "raft_vsn": "3",
            "vsn": "2",
            "vsn_max": "3",
            "vsn_min": "2",
        },
        "Status": 1,
        "ProtocolMin": 1,
        "ProtocolMax": 5,
        "ProtocolCur": 2,
        "DelegateMin": 2,
        "DelegateMax": 5,
        "DelegateCur": 4,
    },
    "Stats": {
        "consul": {
            "server": "true",
            "leader": "true",
            "leader_addr": LEADER_ADDR,
            "bootstrap": "false",
            "known_datacenters": "1",
            "acl": "disabled",
        },
        "raft": {"state": "Leader", "num_peers": "2", "last_contact": "0", "term": "3"},
    },
    "Meta": {"consul-network-segment": ""},
}

SELF_CLIENT: dict[str, Any] = {
    "Config": {**SELF_SERVER["Config"], "NodeName": "ip-10-0-1-20", "Server": False},
    "Coord": SELF_SERVER["Coord"],
    "Member": {
        **SELF_SERVER["Member"],
        "Name": "ip-10-0-1-20",
        "Addr": "10.0.1.20",
        "Tags": {"dc": "dc1", "role": "node", "segment": "", "vsn": "2", "vsn_max": "3", "vsn_min": "2"},
    },
    "Stats": {"consul": {"server": "false", "known_servers": "3"}},
    "Meta": {"consul-network-segment": ""},
}


def _member(name: str, addr: str, status: int, role: str) -> dict[str, Any]:
    tags = {"acls": "0", "dc": "dc1", "role": role, "segment": "", "vsn": "2", "vsn_max": "3", "vsn_min": "2"}
    if role == "consul":
        tags |= {"expect": "3", "port": "8300", "raft_vsn": "3"}
    return {
        "Name": name,
        "Addr": addr,
        "Port": 8301,
        "Tags": tags,
        "Status": status,
        "ProtocolMin": 1,
        "ProtocolMax": 5,
        "ProtocolCur": 2,
        "DelegateMin": 2,
        "DelegateMax": 5,
        "DelegateCur": 4,
    }


MEMBERS = [
    _member("ip-10-0-1-10", "10.0.1.10", 1, "consul"),
    _member("ip-10-0-2-10", "10.0.2.10", 4, "consul"),
    _member("ip-10-0-1-20", "10.0.1.20", 1, "node"),
]


def _catalog_node(node_id: str, name: str, addr: str, create: int, modify: int) -> dict[str, Any]:
    return {
        "ID": node_id,
        "Node": name,
        "Address": addr,
        "Datacenter": "dc1",
        "TaggedAddresses": {"lan": addr, "lan_ipv4": addr, "wan": addr, "wan_ipv4": addr},
        "Meta": {"consul-network-segment": ""},
        "CreateIndex": create,
        "ModifyIndex": modify,
    }


CATALOG_NODES = [
    _catalog_node("0e4e4f2c-5c6b-4a9e-9f2b-0c8d3e1f2a7b", "ip-10-0-1-20", "10.0.1.20", 1190, 1190),
    _catalog_node("40e4a748-2192-161a-0510-9bf59fe950b5", "ip-10-0-1-10", "10.0.1.10", 5, 7),
]


def _serf_check(node: str, status: str) -> dict[str, Any]:
    output = "Agent alive and reachable" if status == "passing" else "Agent not live or unreachable"
    return {
        "Node": node,
        "CheckID": "serfHealth",
        "Name": "Serf Health Status",
        "Status": status,
        "Notes": "",
        "Output": output,
        "ServiceID": "",
        "ServiceName": "",
        "ServiceTags": [],
        "Type": "",
        "ExposedPort": 0,
        "Definition": {},
        "CreateIndex": 6,
        "ModifyIndex": 1290,
    }


CHECKS = [
    _serf_check("ip-10-0-1-10", "passing"),
    _serf_check("ip-10-0-2-10", "critical"),
    _serf_check("ip-10-0-1-20", "passing"),
]


def _raft_server(node_id: str, node: str, addr: str, leader: bool, last_index: int) -> dict[str, Any]:
    return {
        "ID": node_id,
        "Node": node,
        "Address": addr,
        "Leader": leader,
        "ProtocolVersion": "3",
        "Voter": True,
        "LastIndex": last_index,
    }


RAFT_CONFIGURATION = {
    "Servers": [
        _raft_server("40e4a748-2192-161a-0510-9bf59fe950b5", "ip-10-0-1-10", LEADER_ADDR, True, 1294),
        _raft_server("8f246b77-f3e1-ff88-5b48-8ec93abf3e05", "ip-10-0-2-10", "10.0.2.10:8300", False, 1294),
        _raft_server("b3c1d2e4-7a8b-4c9d-8e0f-1a2b3c4d5e6f", "ip-10-0-3-10", "10.0.3.10:8300", False, 1293),
    ],
    "Index": 1201,
}

ANONYMOUS_DENIED = (
    "Permission denied: anonymous token lacks permission 'node:read'. "
    "The anonymous token is used implicitly when a request does not specify a token."
)


@dataclass
class Reply:
    """A canned answer that replaces the agent's own for one method and path."""

    status: int = 200
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names


@dataclass
class FakeAgent:
    """The agent's state; tests mutate it between requests."""

    leader: str = LEADER_ADDR
    peers: list[str] = field(default_factory=lambda: [LEADER_ADDR, "10.0.2.10:8300", "10.0.3.10:8300"])
    self_doc: dict[str, Any] = field(default_factory=lambda: SELF_SERVER)
    members: list[dict[str, Any]] = field(default_factory=lambda: list(MEMBERS))
    catalog: list[dict[str, Any]] = field(default_factory=lambda: list(CATALOG_NODES))
    checks: list[dict[str, Any]] = field(default_factory=lambda: list(CHECKS))
    index: int = 1294
    last_contact_ms: int = 0
    required_token: str | None = None
    overrides: dict[tuple[str, str], Reply] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def bump(self, index: int) -> None:
        """A catalog write: wakes blocked queries."""
        with self.changed:
            self.index = index
            self.changed.notify_all()

    def last(self, path: str) -> Recorded:
        return [r for r in self.requests if r.path == path][-1]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows failures, not access logs."""

    def address_string(self) -> str:
        return "fake-agent"  # unix-socket peers have no (host, port)

    def do_GET(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        agent: FakeAgent = self.server.agent
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        agent.requests.append(Recorded(self.command, path, query, {k.lower(): v for k, v in self.headers.items()}))
        override = agent.overrides.get((self.command, path))
        if override is not None:
            if override.delay:
                time.sleep(override.delay)
            self._send(override.status, override.body, override.headers)
            return
        status, body, headers = _route(agent, self.command, path, query, self.headers.get("X-Consul-Token"))
        self._send(status, body, headers)

    def _send(self, status: int, body: str, headers: dict[str, str]) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("X-Consul-Default-Acl-Policy", "allow")
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Type" not in headers and data:
            # Go sniffs error bodies as text; JSON bodies set it explicitly.
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


_JSON = {"Content-Type": "application/json"}
_Answer = tuple[int, str, dict[str, str]]


def _json(value: object, extra: dict[str, str] | None = None) -> _Answer:
    return 200, json.dumps(value), {**_JSON, **(extra or {})}


def _route(agent: FakeAgent, method: str, path: str, query: dict[str, list[str]], token: str | None) -> _Answer:
    if agent.required_token is not None and token != agent.required_token:
        return 403, ANONYMOUS_DENIED if token is None else "ACL not found", {}
    if "stale" in query and "consistent" in query:
        return 400, "Cannot specify ?stale with ?consistent, conflicting semantics.", {}
    if method == "PUT":
        return _route_put(agent, path, query)
    if path == "/v1/status/leader":
        return _json(agent.leader)
    if path == "/v1/status/peers":
        return _json(agent.peers)
    if path == "/v1/agent/self":
        return _json(agent.self_doc)
    if path == "/v1/agent/members":
        return _json(agent.members)
    if path == "/v1/operator/raft/configuration":
        if not agent.leader and "stale" not in query:
            return 500, "No cluster leader", {}
        return _json(RAFT_CONFIGURATION)
    if path == "/v1/catalog/nodes":
        return _blocking(agent, query, lambda: agent.catalog)
    if path.startswith("/v1/health/state/"):
        state = path.removeprefix("/v1/health/state/")
        return _blocking(agent, query, lambda: [c for c in agent.checks if state in ("any", c["Status"])])
    if path.startswith("/v1/health/node/"):
        node = path.removeprefix("/v1/health/node/")
        return _blocking(agent, query, lambda: [c for c in agent.checks if c["Node"] == node])
    return 404, "Invalid URL path: not a recognized HTTP API endpoint", {}


def _route_put(agent: FakeAgent, path: str, query: dict[str, list[str]]) -> _Answer:
    if path.startswith("/v1/agent/join/"):
        target = path.removeprefix("/v1/agent/join/")
        if target.startswith("10.0.9."):
            failure = f"Failed to join {target}:8301: dial tcp: connect: connection refused"
            return 500, f"1 error occurred:\n\t* {failure}\n\n", {}
        return 200, "", {}
    if path == "/v1/agent/leave":
        return 200, "", {}
    if path.startswith("/v1/agent/force-leave/"):
        node = path.removeprefix("/v1/agent/force-leave/")
        if all(m["Name"] != node for m in agent.members):
            return 500, f"agent: No node found with name '{node}'", {}
        return 200, "", {}
    return 405, "method PUT not allowed", {"Allow": "OPTIONS,GET"}


def _blocking(agent: FakeAgent, query: dict[str, list[str]], value: Any) -> _Answer:
    if not agent.leader and "stale" not in query:
        return 500, "No cluster leader", {}
    index = int(query.get("index", ["0"])[0])
    wait_ms = int(query.get("wait", ["300000ms"])[0].removesuffix("ms"))
    with agent.changed:
        if index:
            agent.changed.wait_for(lambda: agent.index != index, timeout=wait_ms / 1000)
        current = agent.index
    meta = {
        # Go canonicalises header names; clients must match them case-insensitively.
        "X-Consul-Index": str(current),
        "X-Consul-Knownleader": "true" if agent.leader else "false",
        "X-Consul-Lastcontact": str(agent.last_contact_ms),
        "X-Consul-Effective-Consistency": "stale" if "stale" in query else "leader",
    }
    return _json(value(), meta)


class _TcpHandler(_Handler):
    # Headers and body go out in two writes; with Nagle on, each answer waits for the client's
    # delayed ACK (40 ms), which Go's net/http (the real agent) avoids with TCP_NODELAY.
    disable_nagle_algorithm = True


class _TcpServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that timed out and hung up is expected here, not a failure."""


class _UnixHandler(_Handler):
    disable_nagle_algorithm = False  # TCP_NODELAY is a TCP option: a unix socket refuses it


class _UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """See _TcpServer.handle_error."""


@contextlib.contextmanager
def _running(server: socketserver.BaseServer) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def serve_tcp(agent: FakeAgent, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """Serve `agent` on 127.0.0.1; yields `127.0.0.1:<port>`."""
    server = _TcpServer(("127.0.0.1", 0), _TcpHandler)
    server.agent = agent  # type: ignore[attr-defined]
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    with _running(server):
        yield f"127.0.0.1:{server.server_address[1]}"


@contextlib.contextmanager
def serve_unix(agent: FakeAgent) -> Iterator[str]:
    """Serve `agent` on a unix socket; yields its path (kept short for the 108-byte limit)."""
    with tempfile.TemporaryDirectory(prefix="fa-", dir="/tmp") as tmp:
        path = str(Path(tmp) / "consul.sock")
        server = _UnixServer(path, _UnixHandler)
        server.agent = agent  # type: ignore[attr-defined]
        with _running(server):
            yield path


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass(frozen=True)
class TlsFiles:
    ca_file: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str

    def server_context(self, *, require_client_cert: bool = False) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.server_cert, self.server_key)
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.ca_file)
        return context


def make_tls_files(directory: Path, server_name: str = "server.dc1.consul") -> TlsFiles:
    """A throwaway CA, a server certificate for `server_name` only, and a client certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def write_key(key: ec.EllipticCurvePrivateKey, stem: str) -> str:
        path = directory / f"{stem}.key"
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.write_bytes(pem)
        return str(path)

    def write_cert(cert: x509.Certificate, stem: str) -> str:
        path = directory / f"{stem}.pem"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return str(path)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("Consul Agent CA"))
        .issuer_name(name("Consul Agent CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(common: str, usage: x509.ObjectIdentifier) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(common))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(common)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        return cert, key

    server_cert, server_key = leaf(server_name, ExtendedKeyUsageOID.SERVER_AUTH)
    client_cert, client_key = leaf("client.dc1.consul", ExtendedKeyUsageOID.CLIENT_AUTH)
    return TlsFiles(
        ca_file=write_cert(ca, "ca"),
        server_cert=write_cert(server_cert, "server"),
        server_key=write_key(server_key, "server"),
        client_cert=write_cert(client_cert, "client"),
        client_key=write_key(client_key, "client"),
    )
