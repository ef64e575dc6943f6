"""Consul HTTP API client: the few endpoints tagjoin needs, typed, with one-line errors.

Every failure surfaces as a ConsulError subclass whose message names the agent and what to do
next; the ACL token never appears in one. The transport is injectable so the simulator can route
requests to simulated agents in process.
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from functools import lru_cache
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote, urlencode

import httpx
import orjson

from tagjoin.core.consul.settings import ConsulSettings, build_http_client
from tagjoin.core.errors import (
    AclDenied,
    BadResponse,
    ConsulError,
    ConsulRateLimited,
    ConsulUnreachable,
    NoLeader,
)
from tagjoin.core.model import (
    AgentSelf,
    AutopilotHealth,
    AutopilotState,
    Blocking,
    CatalogNode,
    HealthCheck,
    Member,
    MemberStatus,
    NodeService,
    RaftConfiguration,
    RaftServer,
    ServerHealth,
)
from tagjoin.core.text import one_line

T = TypeVar("T")

CONSISTENCY_MODES = ("consistent", "stale")
# Consul's own defaults (agent/config/default.go): a blocking query without ?wait waits 5 min,
# and no query waits longer than 10 min.
DEFAULT_QUERY_WAIT = 300.0
MAX_QUERY_WAIT = 600.0
_MAX_BODY_IN_MESSAGE = 300


@lru_cache(maxsize=16)  # a keeper asks for the same state's path twice a loop
def health_state_path(state: str) -> str:
    return f"/v1/health/state/{quote(state, safe='')}"


def next_index(previous: int, returned: int) -> int:
    """The index for the next blocking query, after Consul's rules for misbehaving indexes.

    An index that goes backwards (a snapshot restore, a new leader with a different state store)
    means our view is void: start over with 0. An index below 1 would turn every later query
    into a non-blocking busy loop, so it is treated as 1.
    """
    # Only an index we already hold can go backwards; from 0 there is nothing to reset.
    if previous > 0 and returned < previous:
        return 0
    return max(returned, 1)


class _ShapeError(Exception):
    """The JSON parsed but is not what this endpoint returns."""


class _BorrowedTransport(httpx.BaseTransport):
    """An injected transport lent to one client; closing the client must not close it."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._inner.handle_request(request)

    def close(self) -> None:
        """The owner of the injected transport closes it, not the clients borrowing it."""


class ConsulClient:
    """A synchronous client for one agent's HTTP API."""

    def __init__(
        self,
        settings: ConsulSettings,
        transport: httpx.BaseTransport | None = None,
        *,
        http: httpx.Client | None = None,
    ) -> None:
        """`transport` replaces the network under the client built from `settings`; `http` replaces
        that client altogether (the simulator's in-process agents: tagjoin.sim.consul.in_process)."""
        self._settings = settings
        self._injected = transport
        self._http = (
            http
            if http is not None
            else build_http_client(settings, _BorrowedTransport(transport) if transport is not None else None)
        )
        self._read_timeouts: dict[float, httpx.Timeout] = {}  # by the query's wait: a keeper's is the same each loop

    @property
    def settings(self) -> ConsulSettings:
        return self._settings

    @property
    def address(self) -> str:
        return self._settings.display_address

    def with_address(self, address: str, *, timeout: float | None = None) -> ConsulClient:
        """A client for another agent with the same token, TLS setup and transport.

        `timeout` replaces the per-request timeout, for callers that would rather know soon that
        an agent does not answer (a paused one never does) than wait the full default.
        """
        settings = self._settings.with_address(address)
        if timeout is not None:
            settings = replace(settings, timeout=timeout)
        return ConsulClient(settings, self._injected)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ConsulClient({self.address})"

    # -- status and agent endpoints (answered from the agent's local view) --

    def leader(self) -> str | None:
        """The Raft address (`IP:8300`) of the leader, or None when the answering server knows none."""
        path = "/v1/status/leader"
        value = self._parse("GET", path, self._get_json(path), _as_str)
        return value or None

    def peers(self) -> list[str]:
        path = "/v1/status/peers"
        return self._parse("GET", path, self._get_json(path), _parse_str_list)

    def agent_self(self) -> AgentSelf:
        path = "/v1/agent/self"
        return self._parse("GET", path, self._get_json(path), _parse_agent_self)

    def members(self) -> list[Member]:
        path = "/v1/agent/members"
        return self._parse("GET", path, self._get_json(path), _parse_members)

    def join(self, address: str) -> None:
        self._send("PUT", f"/v1/agent/join/{quote(address, safe=':[]')}")

    def leave(self) -> None:
        """Graceful leave; the agent process shuts down afterwards."""
        self._send("PUT", "/v1/agent/leave")

    def force_leave(self, node: str, *, prune: bool = False) -> None:
        params = {"prune": "1"} if prune else None
        self._send("PUT", f"/v1/agent/force-leave/{quote(node, safe='')}", params=params)

    def raft_configuration(self, *, stale: bool = False) -> RaftConfiguration:
        path = "/v1/operator/raft/configuration"
        data = self._get_json(path, params={"stale": "1"} if stale else None)
        return self._parse("GET", path, data, _parse_raft_configuration)

    def autopilot_health(self) -> AutopilotHealth:
        """Autopilot's health of every server, as the leader sees it (always read on the leader).

        Consul answers 429 with the same JSON body when anything is unhealthy
        (agent/operator_endpoint.go `OperatorServerHealth`), so that is a reply, not an error;
        a 429 without JSON is Consul's rate limiter and raises ConsulRateLimited.
        """
        path = "/v1/operator/autopilot/health"
        response = self._send("GET", path, also_ok=(429,))
        if response.status_code == 429 and not response.content.lstrip().startswith(b"{"):
            raise self._status_error("GET", path, response)
        return self._parse("GET", path, self._decode(response, "GET", path), _parse_autopilot_health)

    def autopilot_state(self) -> AutopilotState:
        """`consul operator autopilot state`: autopilot's role for each server (Consul 1.9+)."""
        path = "/v1/operator/autopilot/state"
        return self._parse("GET", path, self._get_json(path), _parse_autopilot_state)

    def node_services(self, node: str) -> list[NodeService]:
        """The node's registered services (`/v1/catalog/node/:node`); empty for an unknown node."""
        path = f"/v1/catalog/node/{quote(node, safe='')}"
        return self._parse("GET", path, self._get_json(path), _parse_node_services)

    # -- blocking query endpoints --

    def catalog_nodes(
        self, *, index: int = 0, wait: float | None = None, consistency: str | None = None
    ) -> Blocking[list[CatalogNode]]:
        return self._blocking("/v1/catalog/nodes", _parse_catalog_nodes, index, wait, consistency)

    def health_state(
        self,
        state: str = "any",
        *,
        index: int = 0,
        wait: float | None = None,
        consistency: str | None = None,
    ) -> Blocking[list[HealthCheck]]:
        return self._blocking(health_state_path(state), _parse_health_checks, index, wait, consistency)

    def health_node(self, node: str, *, consistency: str | None = "consistent") -> Blocking[list[HealthCheck]]:
        """The node's checks; with `consistent`, the leader verifies its quorum before answering."""
        return self._blocking(health_node_path(node), _parse_health_checks, 0, None, consistency)

    # -- plumbing --

    def _blocking(
        self,
        path: str,
        parse: Callable[[object], T],
        index: int,
        wait: float | None,
        consistency: str | None,
    ) -> Blocking[T]:
        params = query_params(consistency=consistency, index=index, wait=wait)
        response = self._send("GET", path, params=params, timeout=self._blocking_timeout(index, wait))
        value = self._parse("GET", path, self._decode(response, "GET", path), parse)
        returned, known_leader, last_contact = self._query_meta(response, path)
        return Blocking(
            value=value,
            index=next_index(index, returned),
            known_leader=known_leader,
            last_contact_ms=last_contact,
        )

    def _blocking_timeout(self, index: int, wait: float | None) -> httpx.Timeout | None:
        if index <= 0:
            return None
        # No (or a zero) wait means the server applies its default wait.
        held = min(wait or DEFAULT_QUERY_WAIT, MAX_QUERY_WAIT)
        timeout = self._read_timeouts.get(held)
        if timeout is None:
            # The server may hold the query up to wait/16 past the wait (jitter), then needs time to answer.
            timeout = httpx.Timeout(self._settings.timeout, read=held + held / 16 + self._settings.timeout)
            if len(self._read_timeouts) < 64:
                self._read_timeouts[held] = timeout
        return timeout

    def _query_meta(self, response: httpx.Response, path: str) -> tuple[int, bool, int]:
        raw_index = response.headers.get("X-Consul-Index")
        if raw_index is None:
            raise BadResponse(
                f"Consul agent at {self.address} answered GET {path} without an X-Consul-Index header; "
                "check that CONSUL_HTTP_ADDR points at a Consul agent"
            )
        returned = self._header_int("X-Consul-Index", raw_index, path)
        known_leader = response.headers.get("X-Consul-KnownLeader", "").strip().lower() == "true"
        raw_contact = response.headers.get("X-Consul-LastContact")
        last_contact = 0 if raw_contact is None else self._header_int("X-Consul-LastContact", raw_contact, path)
        return returned, known_leader, last_contact

    def _header_int(self, name: str, raw: str, path: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            value = -1
        if value < 0:
            raise BadResponse(
                f"Consul agent at {self.address} answered GET {path} with {name}: "
                f"{_one_line(raw, self._settings.token)!r}, not a whole number; check the agent version"
            )
        return value

    def _get_json(self, path: str, params: Mapping[str, str] | None = None) -> object:
        return self._decode(self._send("GET", path, params=params), "GET", path)

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
        also_ok: tuple[int, ...] = (),
    ) -> httpx.Response:
        try:
            response = self._http.request(
                method,
                path,
                params=params,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TransportError as exc:
            raise ConsulUnreachable(self._unreachable_message(method, path, exc)) from exc
        except httpx.RequestError as exc:
            raise BadResponse(
                f"Consul agent at {self.address} sent an unreadable answer to {method} {path} "
                f"({_one_line(str(exc), self._settings.token)}); check that it is a Consul agent"
            ) from exc
        if not response.is_success and response.status_code not in also_ok:
            raise self._status_error(method, path, response)
        return response

    def _decode(self, response: httpx.Response, method: str, path: str) -> object:
        # orjson: a keeper decodes agent/self, a document of some hundred keys, every second, and
        # orjson reads it several times faster than json. What Consul writes, it reads alike:
        # UTF-8, no NaN, integers to 64 bits.
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            if "depth" in exc.msg:  # "depth limit exceeded"; before orjson 3.12 "recursion depth exceeded"
                what = "JSON nested too deeply to read"
            else:
                snippet = _one_line(response.content.decode("utf-8", "replace"), self._settings.token, limit=80)
                what = f"a body that is not JSON ({snippet!r})"
            raise BadResponse(
                f"Consul agent at {self.address} answered {method} {path} with {what}; "
                "check that CONSUL_HTTP_ADDR points at a Consul agent's HTTP port"
            ) from None

    def _parse(self, method: str, path: str, data: object, parse: Callable[[object], T]) -> T:
        try:
            return parse(data)
        except _ShapeError as exc:
            raise BadResponse(
                f"Consul agent at {self.address} answered {method} {path} with an unexpected shape "
                f"({exc}); check that the agent runs a supported Consul version"
            ) from None

    def _status_error(self, method: str, path: str, response: httpx.Response) -> ConsulError:
        body = _one_line(response.content.decode("utf-8", "replace"), self._settings.token)
        # The Go client's rendering, which is what operators see from the consul CLI too.
        status = f"Unexpected response code: {response.status_code} ({body})"
        where = f"Consul agent at {self.address}"
        code = response.status_code
        if code == 500 and "No cluster leader" in body:
            return NoLeader(
                f"{where} has no cluster leader for {method} {path}: {status}; "
                "wait for an election, or check that a quorum of servers is up"
            )
        if code == 403:
            rule = acl_rule(method, path)
            needs = f"needs {rule} ({ACL_POLICY_RULES[rule]})" if rule else "needs the ACL permission for this call"
            return AclDenied(f"{where} denied {method} {path}: {status}; {self._settings.token_description} {needs}")
        if code == 429:
            return ConsulRateLimited(f"{where} rate-limited {method} {path}: {status}; back off and retry")
        return BadResponse(
            f"{where} failed {method} {path}: {status}; check the agent's log and that it is a Consul agent"
        )

    def _unreachable_message(self, method: str, path: str, exc: httpx.TransportError) -> str:
        why, advice = _transport_reason(exc, self._settings)
        return f"cannot reach the Consul agent at {self.address} ({method} {path}): {why}; {advice}"


def query_params(*, consistency: str | None = None, index: int = 0, wait: float | None = None) -> dict[str, str]:
    """The query string of a read: consistency mode, and for a blocking query its index and wait."""
    if index < 0 or (wait is not None and wait < 0):
        raise ValueError("a blocking query needs index >= 0 and wait >= 0")
    params = _consistency_params(consistency)
    if index > 0:
        params["index"] = str(index)
    if wait:
        params["wait"] = _wait_param(wait)
    return params


# A keeper names its next health query every loop, and encoding the same few parameters again
# cost it more than the rest of the loop's own logic: the index moves only when health does.
@lru_cache(maxsize=256, typed=True)
def query_target(path: str, *, consistency: str | None = None, index: int = 0, wait: float | None = None) -> str:
    """The request target (`path?query`) a read sends, as `ConsulClient` builds it."""
    params = query_params(consistency=consistency, index=index, wait=wait)
    return f"{path}?{urlencode(params)}" if params else path


def health_node_path(node: str) -> str:
    return f"/v1/health/node/{quote(node, safe='')}"


# The permission each call needs (Consul's API docs, "ACL Required"), with a policy rule that grants it.
ACL_POLICY_RULES = {
    "agent:read": 'agent_prefix "" { policy = "read" }',
    "agent:write": 'agent_prefix "" { policy = "write" }',
    "node:read": 'node_prefix "" { policy = "read" }',
    "node:read and service:read": 'node_prefix "" { policy = "read" } service_prefix "" { policy = "read" }',
    "operator:read": 'operator = "read"',
    "operator:write": 'operator = "write"',
}
_ACL_BY_PATH = (
    ("GET", "/v1/status/", ""),  # no ACL applies: a 403 there comes from something in between
    ("PUT", "/v1/agent/force-leave/", "operator:write"),
    ("PUT", "/v1/agent/", "agent:write"),
    ("GET", "/v1/agent/members", "node:read"),
    ("GET", "/v1/agent/", "agent:read"),
    ("GET", "/v1/operator/", "operator:read"),
    ("GET", "/v1/health/state/", "node:read and service:read"),
    ("GET", "/v1/catalog/node/", "node:read and service:read"),
    ("GET", "/v1/", "node:read"),
)


def acl_rule(method: str, path: str) -> str | None:
    """The ACL permission `method path` needs, as Consul names it; None when no rule is known."""
    for rule_method, prefix, rule in _ACL_BY_PATH:
        if method == rule_method and path.startswith(prefix):
            return rule or None
    return None


def _consistency_params(consistency: str | None) -> dict[str, str]:
    if consistency is None:
        return {}
    if consistency not in CONSISTENCY_MODES:
        raise ValueError(f"consistency must be one of {CONSISTENCY_MODES} or None, not {consistency!r}")
    # Consul looks only at the presence of the key; py-consul sends `=1`.
    return {consistency: "1"}


def _wait_param(wait: float) -> str:
    # The Go client's durToMsec: whole milliseconds, but never round a positive wait down to 0.
    millis = int(min(wait, MAX_QUERY_WAIT) * 1000)
    return f"{max(millis, 1)}ms"


def _one_line(text: str, token: str | None, *, limit: int = _MAX_BODY_IN_MESSAGE) -> str:
    return one_line(text, limit=limit, secret=token)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _transport_reason(exc: httpx.TransportError, settings: ConsulSettings) -> tuple[str, str]:
    """(what went wrong, what to do) for a failed connection, from the innermost known cause."""
    check_addr = "check CONSUL_HTTP_ADDR (or --http-addr) and that the agent is running"
    check_tls = "check CONSUL_CACERT/CONSUL_CAPATH, CONSUL_TLS_SERVER_NAME and CONSUL_CLIENT_CERT/KEY"
    if isinstance(exc, httpx.TimeoutException):
        return (
            f"no answer within {settings.timeout:g} s ({_timeout_kind(exc)})",
            "the agent may be overloaded or the network partitioned; retry later",
        )
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate verification failed ({cause.verify_message})", check_tls
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake failed ({cause.reason or cause.strerror})", check_tls
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused", check_addr
        if isinstance(cause, socket.gaierror):
            return "the host name does not resolve", check_addr
        if isinstance(cause, FileNotFoundError):
            return "no such unix socket", check_addr
    return _one_line(str(exc) or type(exc).__name__, settings.token, limit=120), check_addr


def _timeout_kind(exc: httpx.TimeoutException) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return "connecting"
    if isinstance(exc, httpx.ReadTimeout):
        return "waiting for the answer"
    return "sending the request" if isinstance(exc, httpx.WriteTimeout) else "waiting for a connection"


# -- shapes: each raises _ShapeError, never KeyError/TypeError, on an unexpected document --


def _as_obj(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _ShapeError(f"{what} is {_kind(value)}, expected an object")
    return value


def _as_list(value: object, what: str) -> list[object]:
    if not isinstance(value, list):
        raise _ShapeError(f"{what} is {_kind(value)}, expected a list")
    return value


def _as_str(value: object, what: str = "the body") -> str:
    if not isinstance(value, str):
        raise _ShapeError(f"{what} is {_kind(value)}, expected a string")
    return value


def _field(obj: Mapping[str, Any], key: str, what: str) -> object:
    if key not in obj:
        raise _ShapeError(f"{what} has no {key!r}")
    return obj[key]


# The fields below are read from every answer and every member: a value of the expected kind is
# returned at once, and the names an error gives are built only when there is one.


def _str_field(obj: Mapping[str, Any], key: str, what: str, default: str | None = None) -> str:
    value = obj.get(key)
    if isinstance(value, str):
        return value
    if default is not None and value is None:
        return default
    return _as_str(_field(obj, key, what), f"{what}.{key}")


def _int_field(obj: Mapping[str, Any], key: str, what: str) -> int:
    value = obj.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    value = _field(obj, key, what)
    # bool is an int in Python but never a count in Consul's JSON.
    if not isinstance(value, int) or isinstance(value, bool):
        raise _ShapeError(f"{what}.{key} is {_kind(value)}, expected a whole number")
    return value


def _bool_field(obj: Mapping[str, Any], key: str, what: str) -> bool:
    value = obj.get(key)
    if isinstance(value, bool):
        return value
    value = _field(obj, key, what)
    if not isinstance(value, bool):
        raise _ShapeError(f"{what}.{key} is {_kind(value)}, expected true or false")
    return value


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _parse_str_list(data: object) -> list[str]:
    return [_as_str(item, f"item {i}") for i, item in enumerate(_as_list(data, "the body"))]


# By code: an enum's own lookup by value costs more than the rest of reading a member's status.
_MEMBER_STATUSES = {status.value: status for status in MemberStatus}


def _parse_member(data: object, what: str) -> Member:
    obj = _as_obj(data, what)
    raw_status = _int_field(obj, "Status", what)
    status = _MEMBER_STATUSES.get(raw_status)
    if status is None:
        raise _ShapeError(f"{what}.Status {raw_status} is not a serf member status")
    tags = obj.get("Tags")  # Go encodes an empty map as null
    return Member(
        name=_str_field(obj, "Name", what),
        addr=_str_field(obj, "Addr", what),
        port=_int_field(obj, "Port", what),
        status=status,
        tags={} if tags is None else _str_map(tags, what, "Tags"),
    )


def _str_map(value: object, what: str, key: str) -> dict[str, str]:
    """`what.key`, an object of strings. A member has a dozen tags and `status` reads thousands of
    members: a bad value is named only when there is one."""
    if isinstance(value, dict):
        for v in value.values():
            if not isinstance(v, str):
                break
        else:
            return dict(value)
    obj = _as_obj(value, f"{what}.{key}")
    return {str(k): _as_str(v, f"{what}.{key}.{k}") for k, v in obj.items()}


def _parse_members(data: object) -> list[Member]:
    return [_parse_member(item, f"member {i}") for i, item in enumerate(_as_list(data, "the body"))]


def _parse_agent_self(data: object) -> AgentSelf:
    body = _as_obj(data, "the body")
    config = _as_obj(_field(body, "Config", "the body"), "Config")
    member = _parse_member(_field(body, "Member", "the body"), "Member")
    stats = _as_obj(body.get("Stats") or {}, "Stats")
    # Client agents have no raft stats: no state, term 0.
    raft = _as_obj(stats.get("raft") or {}, "Stats.raft")
    return AgentSelf(
        node_name=_str_field(config, "NodeName", "Config"),
        address=member.addr,
        datacenter=_str_field(config, "Datacenter", "Config"),
        server=_bool_field(config, "Server", "Config"),
        raft_state=_str_field(raft, "state", "Stats.raft", default=""),
        term=_parse_term(raft.get("term")),
        member=member,
    )


def _parse_term(raw: object) -> int:
    if raw is None or raw == "":
        return 0
    text = _as_str(raw, "Stats.raft.term")
    try:
        term = int(text)
    except ValueError:
        raise _ShapeError(f"Stats.raft.term {text!r} is not a whole number") from None
    if term < 0:
        raise _ShapeError(f"Stats.raft.term {term} is negative")
    return term


def _parse_catalog_nodes(data: object) -> list[CatalogNode]:
    nodes = []
    for i, item in enumerate(_as_list(data, "the body")):
        what = f"node {i}"
        obj = _as_obj(item, what)
        nodes.append(
            CatalogNode(
                id=_str_field(obj, "ID", what, default=""),
                node=_str_field(obj, "Node", what),
                address=_str_field(obj, "Address", what),
                datacenter=_str_field(obj, "Datacenter", what, default=""),
            )
        )
    return nodes


def _parse_health_checks(data: object) -> list[HealthCheck]:
    checks = []
    for i, item in enumerate(_as_list(data, "the body")):
        what = f"check {i}"
        obj = _as_obj(item, what)
        checks.append(
            HealthCheck(
                node=_str_field(obj, "Node", what),
                check_id=_str_field(obj, "CheckID", what),
                name=_str_field(obj, "Name", what, default=""),
                status=_str_field(obj, "Status", what),
                output=_str_field(obj, "Output", what, default=""),
            )
        )
    return checks


def _parse_raft_configuration(data: object) -> RaftConfiguration:
    body = _as_obj(data, "the body")
    servers = []
    for i, item in enumerate(_as_list(_field(body, "Servers", "the body"), "Servers")):
        what = f"Servers[{i}]"
        obj = _as_obj(item, what)
        servers.append(
            RaftServer(
                id=_str_field(obj, "ID", what),
                node=_str_field(obj, "Node", what),
                address=_str_field(obj, "Address", what),
                leader=_bool_field(obj, "Leader", what),
                voter=_bool_field(obj, "Voter", what),
                last_index=_int_field(obj, "LastIndex", what) if "LastIndex" in obj else None,
            )
        )
    return RaftConfiguration(servers=tuple(servers), index=_int_field(body, "Index", "the body"))


def _parse_autopilot_health(data: object) -> AutopilotHealth:
    # api/operator_autopilot.go `OperatorHealthReply` / `ServerHealth`.
    body = _as_obj(data, "the body")
    servers = []
    for i, item in enumerate(_as_list(body.get("Servers") or [], "Servers")):
        what = f"Servers[{i}]"
        obj = _as_obj(item, what)
        servers.append(
            ServerHealth(
                id=_str_field(obj, "ID", what),
                name=_str_field(obj, "Name", what),
                address=_str_field(obj, "Address", what),
                serf_status=_str_field(obj, "SerfStatus", what, default=""),
                version=_str_field(obj, "Version", what, default=""),
                leader=_bool_field(obj, "Leader", what),
                voter=_bool_field(obj, "Voter", what),
                healthy=_bool_field(obj, "Healthy", what),
                last_contact=_duration_field(obj, "LastContact", what),
                last_term=_int_field(obj, "LastTerm", what),
                last_index=_int_field(obj, "LastIndex", what),
                stable_since=_str_field(obj, "StableSince", what, default=""),
            )
        )
    return AutopilotHealth(
        healthy=_bool_field(body, "Healthy", "the body"),
        failure_tolerance=_int_field(body, "FailureTolerance", "the body"),
        servers=tuple(servers),
    )


def _parse_autopilot_state(data: object) -> AutopilotState:
    # api/operator_autopilot.go `AutopilotState` / `AutopilotServer`.
    body = _as_obj(data, "the body")
    servers = _as_obj(body.get("Servers") or {}, "Servers")
    statuses = {
        str(sid): _str_field(_as_obj(srv, f"Servers.{sid}"), "Status", f"Servers.{sid}", default="")
        for sid, srv in servers.items()
    }
    voters = tuple(_as_str(v, f"Voters[{i}]") for i, v in enumerate(_as_list(body.get("Voters") or [], "Voters")))
    tolerance = _int_field(body, "FailureTolerance", "the body")
    optimistic = body.get("OptimisticFailureTolerance")
    return AutopilotState(
        healthy=_bool_field(body, "Healthy", "the body"),
        failure_tolerance=tolerance,
        optimistic_failure_tolerance=_int_field(body, "OptimisticFailureTolerance", "the body")
        if optimistic is not None
        else tolerance,
        leader=_str_field(body, "Leader", "the body", default=""),
        voters=voters,
        statuses=statuses,
    )


def _parse_node_services(data: object) -> list[NodeService]:
    # An unknown node is `null` (agent/catalog_endpoint.go `CatalogNodeServices`).
    if data is None:
        return []
    body = _as_obj(data, "the body")
    services = _as_obj(body.get("Services") or {}, "Services")
    out = []
    for key, item in sorted(services.items()):
        what = f"Services.{key}"
        obj = _as_obj(item, what)
        tags = obj.get("Tags") or []
        out.append(
            NodeService(
                id=_str_field(obj, "ID", what),
                service=_str_field(obj, "Service", what),
                port=_int_field(obj, "Port", what),
                tags=tuple(_as_str(t, f"{what}.Tags") for t in _as_list(tags, f"{what}.Tags")),
            )
        )
    return out


_GO_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration_field(obj: Mapping[str, Any], key: str, what: str) -> float | None:
    """A Go `time.Duration` string (`12.3ms`, `1m2s`) as seconds; None when absent or negative."""
    raw = obj.get(key)
    if raw is None or raw == "":
        return None
    text = _as_str(raw, f"{what}.{key}")
    if text.startswith("-"):
        return None  # autopilot's "no stats yet"
    if text == "0":
        return 0.0
    total, pos = 0.0, 0
    while pos < len(text):
        match = _GO_DURATION_PART.match(text, pos)
        if match is None:
            raise _ShapeError(f"{what}.{key} {text!r} is not a Go duration")
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        pos = match.end()
    return total
