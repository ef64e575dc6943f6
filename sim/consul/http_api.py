"""The Consul HTTP API of each simulated agent, answered from that agent's own local view.

Shapes, status codes, headers and error texts follow Consul's agent/http.go (`HTTPHandlers.wrap`,
`setMeta`, `parseWait`) and the endpoint handlers in agent/*_endpoint.go. A crashed agent refuses
connections; a paused one accepts but never answers (a read timeout). Requests are handled by
`AgentApi.handle`, which two front ends share:

- `transport_for(node)` / `routing_transport()`: httpx transports that call `handle` in process, for
  simulation runs in virtual time. There a blocking query (`?index=`) returns at once with the
  current index — which Consul allows too ("returning is no guarantee of change") — so callers loop
  on virtual time, never on the wall clock.
- sim/http_server.py serves the same handler over real HTTP on loopback, where blocking queries
  really wait (`handle(..., may_block=True)` returns a `Block` and the server waits for a change).

Join addresses are simulated data-plane IPs (10.x) and are resolved inside the model, never dialled.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote

import httpx
import orjson

from tagjoin.core.model import MemberStatus
from tagjoin.sim.consul.catalog import CheckRow, ConfigServer, Fsm, NodeRow
from tagjoin.sim.consul.cluster import Cluster, NodeDown
from tagjoin.sim.consul.go_duration import format_ms, parse_duration_ns
from tagjoin.sim.consul.raft import LEADER, RaftServer
from tagjoin.sim.consul.serf import JoinFailed, MemberEntry, NoSuchMember
from tagjoin.sim.kernel.machine import SERF_LAN_PORT, Node

DEFAULT_WAIT_MS = 300_000  # default_query_time
RPC_HOLD_TIMEOUT_MS = 7_000  # rpc_hold_timeout
JITTER_FRACTION = 16  # structs.JitterFraction: holds retry after a stagger of up to timeout/16
VERIFY_POLL_MS = 50  # how often a held VerifyLeader looks whether its quorum answered
NO_LEADER = "No cluster leader"
NOT_READY = "Not ready to serve consistent reads"
LEADERSHIP_LOST = "leadership lost while committing log"
MAX_WAIT_MS = 600_000  # max_query_time
NOT_FOUND_V1 = "Invalid URL path: not a recognized HTTP API endpoint"
BUILD_DATE = "2024-10-29T19:04:05Z"
# The simulator has no calendar: timestamps such as autopilot's StableSince count virtual time
# from this instant, so a seed gives the same answers on every run.
SIM_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
# raft-autopilot's health rule (state.go `(*ServerState).isHealthy`) with Consul's defaults
# (agent/config/default.go: last_contact_threshold = "200ms", max_trailing_logs = 250).
LAST_CONTACT_THRESHOLD_MS = 200
MAX_TRAILING_LOGS = 250
_UINT = re.compile(r"\d+")


class AgentUnavailable(Exception):
    """The agent cannot answer: `refused` (process down) or not (paused: the client times out)."""

    def __init__(self, node: str, *, refused: bool) -> None:
        super().__init__(f"{node}: {'connection refused' if refused else 'timed out'}")
        self.node = node
        self.refused = refused


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str  # percent-decoded
    query: Mapping[str, Sequence[str]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names

    @classmethod
    def build(cls, method: str, target: str, headers: Mapping[str, str] | None = None) -> ApiRequest:
        """From a request target such as `/v1/catalog/nodes?index=5&wait=1s`."""
        if headers:
            return _parsed(method, target, MappingProxyType({k.lower(): v for k, v in headers.items()}))
        if len(target) <= _KEPT_TARGET_CHARS:
            return _without_headers(method, target)
        return _parsed(method, target, _NO_HEADERS)

    def has(self, key: str) -> bool:
        return key in self.query

    def get(self, key: str) -> str | None:
        values = self.query.get(key)
        return values[0] if values else None


# A served agent takes request lines of up to 64 KiB; the harness's targets are a few dozen
# characters. Only short ones are kept, so the cache stays a few MiB whatever a client sends.
_KEPT_TARGET_CHARS = 512


@lru_cache(maxsize=4096)
def _without_headers(method: str, target: str) -> ApiRequest:
    """`ApiRequest.build` of a request without headers, parsed once: the harness announces a
    keeper's every call as its target (`/v1/agent/self`, the same health query until its index
    moves), twice a second of virtual time a keeper."""
    return _parsed(method, target, _NO_HEADERS)


def _parsed(method: str, target: str, headers: Mapping[str, str]) -> ApiRequest:
    # Read-only, whether kept or not: a kept request is shared by every caller of its target, and
    # none may change another's.
    path, _, query = target.partition("?")
    values = {name: tuple(given) for name, given in parse_qs(query, keep_blank_values=True).items()}
    return ApiRequest(method.upper(), unquote(path), MappingProxyType(values), headers)


_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


@dataclass
class ApiResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Block:
    """A blocking query with nothing newer than `min_index` yet; wait up to `wait_ms`, then ask again."""

    min_index: int
    wait_ms: int


@dataclass(frozen=True)
class Hold:
    """A leader-bound request the agent is holding; look again after `retry_ms`."""

    retry_ms: int


@dataclass(slots=True)
class HeldRequest:
    """One request held in virtual time, from `since`, with what holding it has found so far."""

    since: int
    verifying: str | None = None  # the leader whose VerifyLeader the read is waiting on
    outcome: str | None = None  # the error the hold ended in, answered instead of a fresh look


@dataclass(frozen=True)
class AclConfig:
    """ACL mode: only `token` is accepted; anonymous requests are denied or filtered."""

    token: str
    default_policy: str = "deny"


class ApiError(Exception):
    def __init__(self, status: int, text: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.headers = dict(headers or {})


Result = ApiResponse | Block
Handler = Callable[["_Ctx"], Result]


@dataclass(slots=True)
class _Ctx:
    api: AgentApi
    node: Node
    req: ApiRequest
    tail: str
    may_block: bool
    anonymous: bool
    jitter: bool = True  # a blocked query's wait gets its jitter (a held query's first look)


@dataclass(frozen=True)
class _Route:
    path: str
    prefix: bool
    methods: tuple[str, ...]
    handler: Handler
    acl: str | None  # permission an anonymous caller lacks; None = no ACL check
    filtered: bool = False  # list endpoint: anonymous callers get an empty list instead of 403


def _allowed(route: _Route) -> str:
    return ",".join(("OPTIONS", *route.methods))


def _json_body(value: Any, req: ApiRequest) -> bytes:
    if req.has("pretty"):
        return (json.dumps(value, indent=4, ensure_ascii=False) + "\n").encode()
    return orjson.dumps(value)


class AgentApi:
    def __init__(self, cluster: Cluster, *, acl: AclConfig | None = None) -> None:
        self.cluster = cluster
        self.acl = acl
        self._jitter = cluster.engine.streams.get("api.wait-jitter")
        self._hold_jitter = cluster.engine.streams.get("api.rpc-hold")
        self._outcomes: dict[tuple[str, str], str] = {}
        self._routes: list[_Route] = [
            _Route("/v1/status/leader", False, ("GET",), _status_leader, None),
            _Route("/v1/status/peers", False, ("GET",), _status_peers, None),
            _Route("/v1/agent/self", False, ("GET",), _agent_self, "agent:read"),
            _Route("/v1/agent/members", False, ("GET",), _agent_members, "node:read", True),
            _Route("/v1/agent/join/", True, ("PUT",), _agent_join, "agent:write"),
            _Route("/v1/agent/leave", False, ("PUT",), _agent_leave, "agent:write"),
            _Route("/v1/agent/force-leave/", True, ("PUT",), _agent_force_leave, "operator:write"),
            _Route("/v1/catalog/nodes", False, ("GET",), _catalog_nodes, "node:read", True),
            _Route("/v1/health/state/", True, ("GET",), _health_state, "node:read", True),
            _Route("/v1/health/node/", True, ("GET",), _health_node, "node:read", True),
            _Route("/v1/catalog/node/", True, ("GET",), _catalog_node, "node:read", True),
            _Route("/v1/operator/raft/configuration", False, ("GET",), _raft_configuration, "operator:read"),
            _Route("/v1/operator/autopilot/health", False, ("GET",), _autopilot_health, "operator:read"),
            _Route("/v1/operator/autopilot/state", False, ("GET",), _autopilot_state, "operator:read"),
        ]
        # Every keeper's two calls a loop are exact paths: found by one lookup, not a pass over the
        # table. No exact path starts with a prefix route's path, so the order of the table holds.
        self._exact = {route.path: route for route in self._routes if not route.prefix}
        self._prefixed = [route for route in self._routes if route.prefix]

    # entry point ------------------------------------------------------------------------------

    def poll_blocked(self, node_name: str, req: ApiRequest, *, jitter: bool = True) -> Block | bool:
        """`handle(node_name, req, may_block=True)` for a held query, when that is cheap to know.

        Block: the query would still block (the same jitter drawn as `query` draws it); False: it
        would answer now; True: not known here (ask `handle`). Known for the keepers' trigger: a
        stale health-state query on a server's own agent, whose answer `query` takes from the
        server itself (no forwarding, no RPC that could fail or draw). Raises AgentUnavailable as
        `handle` does. Nothing is rendered and nothing else changes, as `handle` in these cases.
        """
        node = self.cluster.nodes.get(node_name)
        if node is None or not node.up:
            raise AgentUnavailable(node_name, refused=True)
        if node.paused:
            raise AgentUnavailable(node_name, refused=False)
        srv = self.cluster.raft.get(node_name)
        if (
            srv is None
            or not node.server
            or self.acl is not None
            or req.method != "GET"
            or not req.path.startswith("/v1/health/state/")
            or req.path == "/v1/health/state/"
            or not req.has("stale")
            or req.has("consistent")
            or (self._outcomes and (node_name, req.path) in self._outcomes)
        ):
            return True
        try:
            min_index, wait_ms = self.blocking_params(req)
        except ApiError:
            return True
        if min_index <= 0:
            return True
        index = max(srv.fsm.checks_index, 1)
        if index > min_index:
            return False
        return Block(min_index, wait_ms + (self._jitter.randrange(wait_ms // 16 + 1) if jitter else 0))

    def handle(self, node_name: str, req: ApiRequest, *, may_block: bool = False, jitter: bool = True) -> Result:
        """Answer `req` on agent `node_name`; raises AgentUnavailable if it cannot answer."""
        node = self.cluster.nodes.get(node_name)
        if node is None or not node.up:
            raise AgentUnavailable(node_name, refused=True)
        if node.paused:
            raise AgentUnavailable(node_name, refused=False)
        policy = self.acl.default_policy if self.acl else "allow"
        try:
            result = self._dispatch(node, req, may_block, jitter)
        except ApiError as exc:
            plain = {"Content-Type": "text/plain; charset=utf-8"}
            headers = {"X-Consul-Default-Acl-Policy": policy, **plain, **exc.headers}
            return ApiResponse(exc.status, exc.text.encode(), headers)
        if isinstance(result, ApiResponse):
            result.headers = {"X-Consul-Default-Acl-Policy": policy, **result.headers}
        return result

    def _dispatch(self, node: Node, req: ApiRequest, may_block: bool, jitter: bool = True) -> Result:
        route, tail = self._match(req.path)
        if req.method == "OPTIONS":
            return ApiResponse(200, b"", {"Allow": _allowed(route)})
        if req.method not in route.methods:
            raise ApiError(405, f"method {req.method} not allowed", {"Allow": _allowed(route)})
        anonymous = route.acl is not None and self._authenticate(req)
        if anonymous and route.acl is not None and not route.filtered:
            raise ApiError(
                403,
                f"Permission denied: anonymous token lacks permission '{route.acl}'. The anonymous token "
                "is used implicitly when a request does not specify a token.",
            )
        return route.handler(_Ctx(self, node, req, tail, may_block, anonymous, jitter))

    def _match(self, path: str) -> tuple[_Route, str]:
        exact = self._exact.get(path)
        if exact is not None:
            return exact, ""
        for route in self._prefixed:
            if path.startswith(route.path):
                return route, path[len(route.path) :]
        if path.startswith("/v1/"):
            raise ApiError(404, NOT_FOUND_V1)
        raise ApiError(404, "404 page not found\n")

    def _authenticate(self, req: ApiRequest) -> bool:
        """True for an anonymous caller in ACL mode; 403 `ACL not found` for an unknown token."""
        if self.acl is None:
            return False
        token = req.headers.get("x-consul-token")
        auth = req.headers.get("authorization", "")
        scheme, _, rest = auth.partition(" ")
        if not token and scheme.lower() == "bearer":
            token = rest.strip().split(" ")[0]
        if not token:
            token = req.get("token")
        if not token:
            return True
        if token != self.acl.token:
            raise ApiError(403, "ACL not found")
        return False

    # requests held before they are answered ----------------------------------------------------

    def hold(self, node_name: str, req: ApiRequest, held: HeldRequest) -> Hold | None:
        """Whether agent `node_name` would still be holding `req`, which arrived at `held.since`.

        Models the waits in front of a leader-bound read, from Consul's agent/consul/rpc.go:
        - `forward` → `forwardRequestToLeader`: with no known leader the request is retried after
          a jittered stagger (`lib.RandomStagger(RPCHoldTimeout / JitterFraction)`) until
          rpc_hold_timeout (7 s) has passed, then fails with "No cluster leader". A server that
          is leaving fails at once (the `leaveCh` check comes first).
        - `consistentRead`: `raft.VerifyLeader()` waits for a quorum to acknowledge the leader;
          it fails when the leader steps down (hashicorp/raft `checkLeaderLease`). Then, until
          the new leader's barrier is done (`isReadyForConsistentReads`), the read is retried
          with the same stagger until rpc_hold_timeout and fails "Not ready to serve consistent
          reads".
        Stale reads are answered by any server from its own state and are never held. None: the
        agent answers now, from its state now (or with `held.outcome`, if the hold ended in an
        error, which `handle` then returns).
        """
        node = self.cluster.nodes.get(node_name)
        if node is None or not node.responsive or not req.path.startswith(("/v1/health/", "/v1/catalog/")):
            return None
        try:
            mode = self.consistency(req)
        except ApiError:
            return None
        if mode == "stale":
            return None
        srv, _error = self.cluster.rpc_server(node_name)
        if srv is None:
            return None
        elapsed = self.cluster.engine.now - held.since
        stagger = Hold(1 + self._hold_jitter.randrange(RPC_HOLD_TIMEOUT_MS // JITTER_FRACTION))
        if held.verifying is not None:
            verifier = self.cluster.raft.get(held.verifying)
            if verifier is None or verifier.state != LEADER:
                self._end(node_name, req, held, LEADERSHIP_LOST)
                return None
            if not verifier.can_reach_quorum():
                return Hold(VERIFY_POLL_MS)
            held.verifying = None  # the quorum answered: on to the readiness check
        leader = self.cluster.leader_for(srv)
        if leader is None:
            if node.leaving or elapsed >= RPC_HOLD_TIMEOUT_MS:
                return None  # answered now: "No cluster leader"
            return stagger
        if mode == "consistent":
            if not leader.can_reach_quorum():
                held.verifying = leader.name
                return Hold(VERIFY_POLL_MS)
            if not leader.ready_for_consistent_reads():
                if elapsed >= RPC_HOLD_TIMEOUT_MS:
                    self._end(node_name, req, held, NOT_READY)
                    return None
                return stagger
        return None

    def _end(self, node_name: str, req: ApiRequest, held: HeldRequest, error: str) -> None:
        held.outcome = error
        self._outcomes[(node_name, req.path)] = error
        return None

    # shared query plumbing --------------------------------------------------------------------

    def consistency(self, req: ApiRequest) -> str:
        query = req.query
        stale, consistent = "stale" in query, "consistent" in query
        if stale and consistent:
            raise ApiError(400, "Cannot specify ?stale with ?consistent, conflicting semantics.")
        return "stale" if stale else "consistent" if consistent else "default"

    def blocking_params(self, req: ApiRequest) -> tuple[int, int]:
        """(min index, wait ms) as agent/http.go parseWait; 400 on bad values."""
        # A pure function of the request, asked again at every look at a held query: kept on it.
        known: tuple[int, int] | None = req.__dict__.get("_blocking_params")
        if known is not None:
            return known
        found = self._blocking_params(req)
        req.__dict__["_blocking_params"] = found
        return found

    def _blocking_params(self, req: ApiRequest) -> tuple[int, int]:
        wait_ms = DEFAULT_WAIT_MS
        raw_wait = req.get("wait")
        if raw_wait is not None:
            try:
                wait_ns = parse_duration_ns(raw_wait)
            except ValueError:
                raise ApiError(400, "Invalid wait time") from None
            wait_ms = min(max(wait_ns // 1_000_000, 0), MAX_WAIT_MS)
            # blockingQuery (agent/consul/rpc.go): a wait of 0 means the default query time.
            wait_ms = wait_ms or DEFAULT_WAIT_MS
        index = 0
        raw_index = req.get("index")
        if raw_index is not None:
            if not _UINT.fullmatch(raw_index) or int(raw_index) >= 2**64:
                raise ApiError(400, "Invalid index")
            index = int(raw_index)
        return index, wait_ms

    def query(self, ctx: _Ctx, table: str, render: Callable[[RaftServer], Any], *, filtered: bool = False) -> Result:
        """A catalog/health read: consistency, forwarding, blocking, and the X-Consul-* headers."""
        mode = self.consistency(ctx.req)
        min_index, wait_ms = self.blocking_params(ctx.req)
        held_error = self._outcomes.pop((ctx.node.name, ctx.req.path), None) if self._outcomes else None
        if held_error is not None:
            raise ApiError(500, held_error)
        srv, error = self.cluster.read_source(ctx.node.name, mode)
        if srv is None:
            raise ApiError(500, error)
        fsm = srv.fsm
        index = max(fsm.nodes_index if table == "nodes" else fsm.checks_index, 1)
        if ctx.may_block and min_index > 0 and index <= min_index:
            jitter = self._jitter.randrange(wait_ms // 16 + 1) if ctx.jitter else 0
            return Block(min_index, wait_ms + jitter)
        if mode == "stale":
            known = srv.state == LEADER or srv.leader is not None
            contact = srv.last_contact_ms() or 0
        else:
            known, contact = True, 0
        headers = {
            "Content-Type": "application/json",
            "X-Consul-Effective-Consistency": "leader" if mode == "default" else mode,
            "X-Consul-Index": str(index),
            "X-Consul-Knownleader": "true" if known else "false",
            "X-Consul-Lastcontact": str(contact),
        }
        value = [] if filtered else render(srv)
        return ApiResponse(200, _json_body(value, ctx.req), headers)

    def ok_json(self, ctx: _Ctx, value: Any) -> ApiResponse:
        return ApiResponse(200, _json_body(value, ctx.req), {"Content-Type": "application/json"})

    # transports -------------------------------------------------------------------------------

    def transport_for(self, node_name: str) -> httpx.MockTransport:
        """An httpx transport whose every request is answered by agent `node_name`."""
        return httpx.MockTransport(lambda request: self._serve_httpx(node_name, request))

    def routing_transport(self) -> httpx.MockTransport:
        """An httpx transport that picks the agent by the URL's host (simulated IP or node name)."""

        def route(request: httpx.Request) -> httpx.Response:
            host = request.url.host
            node = self.cluster.node_by_ip(host) or self.cluster.nodes.get(host)
            if node is None:
                raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
            return self._serve_httpx(node.name, request)

        return httpx.MockTransport(route)

    def _serve_httpx(self, node_name: str, request: httpx.Request) -> httpx.Response:
        target = request.url.raw_path.decode("ascii", "replace")
        req = ApiRequest.build(request.method, target, dict(request.headers))
        try:
            result = self.handle(node_name, req)
        except AgentUnavailable as exc:
            if exc.refused:
                raise httpx.ConnectError("[Errno 111] Connection refused", request=request) from None
            raise httpx.ReadTimeout("timed out", request=request) from None
        assert isinstance(result, ApiResponse)  # may_block=False never blocks
        return httpx.Response(result.status, headers=result.headers, content=result.body)


# rendering ------------------------------------------------------------------------------------


def _member_json(entry: MemberEntry, acl: bool) -> dict[str, Any]:
    tags = dict(entry.tags)
    if acl:
        tags["acls"] = "1"
    return {
        "Name": entry.name,
        "Addr": entry.addr,
        "Port": SERF_LAN_PORT,
        "Tags": tags,
        "Status": int(entry.status),
        "ProtocolMin": 1,
        "ProtocolMax": 5,
        "ProtocolCur": 2,
        "DelegateMin": 2,
        "DelegateMax": 5,
        "DelegateCur": 4,
    }


def _node_json(row: NodeRow, datacenter: str) -> dict[str, Any]:
    addr = row.address
    return {
        "ID": row.node_id,
        "Node": row.name,
        "Address": addr,
        "Datacenter": datacenter,
        "TaggedAddresses": {"lan": addr, "lan_ipv4": addr, "wan": addr, "wan_ipv4": addr},
        "Meta": {"consul-network-segment": ""},
        "CreateIndex": row.create_index,
        "ModifyIndex": row.modify_index,
    }


def _check_json(row: CheckRow) -> dict[str, Any]:
    return {
        "Node": row.node,
        "CheckID": "serfHealth",
        "Name": "Serf Health Status",
        "Status": row.status,
        "Notes": "",
        "Output": row.output,
        "ServiceID": "",
        "ServiceName": "",
        "ServiceTags": [],
        "Type": "",
        "ExposedPort": 0,
        "Definition": {},
        "CreateIndex": row.create_index,
        "ModifyIndex": row.modify_index,
    }


def _leader_addr(cluster: Cluster, srv: RaftServer) -> str:
    if srv.leader is None:
        return ""
    leader = cluster.nodes.get(srv.leader)
    return "" if leader is None else leader.raft_addr


def _rpc_server(ctx: _Ctx) -> RaftServer:
    srv, error = ctx.api.cluster.rpc_server(ctx.node.name)
    if srv is None:
        raise ApiError(500, error)
    return srv


def _raft_stats(cluster: Cluster, srv: RaftServer) -> dict[str, str]:
    fsm = srv.fsm
    voters = fsm.voters()
    contact = srv.last_contact_ms()
    if srv.state == LEADER:
        last_contact = "0"
    elif contact is None:
        last_contact = "never"
    else:
        last_contact = format_ms(contact)
    config = _configuration_text(fsm.config)
    return {
        "applied_index": str(fsm.index),
        "commit_index": str(fsm.index),
        "fsm_pending": "0",
        "last_contact": last_contact,
        "last_log_index": str(fsm.index),
        "last_log_term": str(fsm.last_term),
        "last_snapshot_index": "0",
        "last_snapshot_term": "0",
        "latest_configuration": config,
        "latest_configuration_index": str(fsm.config_index),
        "num_peers": str(len(voters) - 1 if srv.name in voters else 0),
        "protocol_version": "3",
        "protocol_version_max": "3",
        "protocol_version_min": "0",
        "snapshot_version_max": "1",
        "snapshot_version_min": "0",
        "state": srv.state,
        "term": str(srv.term),
    }


def _configuration_text(config: tuple[ConfigServer, ...]) -> str:
    """raft's `latest_configuration` as Go prints it (`%+v` of each server); a configuration
    changes a few times a run and agent/self shows it once a second a keeper."""
    kept = _configurations_rendered.get(id(config))
    if kept is not None and kept[0] is config:
        return kept[1]
    servers = " ".join(
        f"{{Suffrage:{'Voter' if s.voter else 'Nonvoter'} ID:{s.id} Address:{s.address}}}" for s in config
    )
    return _keep(_configurations_rendered, id(config), config, f"[{servers}]")


# handlers -------------------------------------------------------------------------------------


def _status_leader(ctx: _Ctx) -> Result:
    srv = _rpc_server(ctx)
    return ctx.api.ok_json(ctx, _leader_addr(ctx.api.cluster, srv))


def _status_peers(ctx: _Ctx) -> Result:
    srv = _rpc_server(ctx)
    return ctx.api.ok_json(ctx, [s.address for s in srv.fsm.config])


def _agent_self(ctx: _Ctx) -> Result:
    api, node = ctx.api, ctx.node
    cluster = api.cluster
    acl = "enabled" if api.acl else "disabled"
    view = cluster.serf.view(node.name)
    own = view.get(node.name)
    members = list(view.values())
    stats: dict[str, dict[str, str]] = {}
    if node.server:
        srv = cluster.raft[node.name]
        stats["consul"] = {
            "acl": acl,
            "bootstrap": "false",
            "known_datacenters": "1",
            "leader": "true" if srv.state == LEADER else "false",
            "leader_addr": _leader_addr(cluster, srv),
            "server": "true",
        }
        stats["raft"] = _raft_stats(cluster, srv)
    else:
        known = sum(1 for m in members if m.is_server and m.status == MemberStatus.ALIVE)
        stats["consul"] = {"acl": acl, "known_servers": str(known), "server": "false"}
    failed = left = 0
    for m in members:  # one pass: the pool can be thousands of members
        status = m.status
        if status == _FAILED:
            failed += 1
        elif status == _LEFT:
            left += 1
    stats["serf_lan"] = {
        "encrypted": "false",
        "failed": str(failed),
        "health_score": "0",
        "left": str(left),
        "members": str(len(members)),
    }
    stats["runtime"] = _RUNTIME
    # A keeper reads agent/self once a second of virtual time, and rendering it was a tenth of a
    # sweep: the parts fixed for an agent's life, and its member entry, are rendered once and the
    # answer spliced around the stats, byte for byte what rendering the whole would give. orjson
    # writes compact UTF-8 JSON, keys in the value's order, in a fraction of the time json takes.
    fixed = _agent_fixed_json(
        node.datacenter, node.name, node.node_id, node.server, cluster.config.consul_version, node.bootstrap_expect
    )
    member = b"null" if own is None else _member_json_bytes(own, api.acl is not None)
    body = b"".join((fixed, b',"Member":', member, b',"Stats":', orjson.dumps(stats), _AGENT_SELF_END))
    if ctx.req.has("pretty"):
        return api.ok_json(ctx, json.loads(body))
    return ApiResponse(200, body, {"Content-Type": "application/json"})


_FAILED, _LEFT = MemberStatus.FAILED, MemberStatus.LEFT
_AGENT_SELF_END = b',"Meta":{"consul-network-segment":""}}'


_RUNTIME = {"arch": "amd64", "os": "linux", "version": "go1.22.7", "max_procs": "2"}


@lru_cache(maxsize=1024)
def _agent_fixed_json(datacenter: str, name: str, node_id: str, server: bool, version: str, expect: int) -> bytes:
    """agent/self's Config, DebugConfig and Coord, as the start of its compact JSON (no closing brace)."""
    fixed = {
        "Config": {
            "Datacenter": datacenter,
            "PrimaryDatacenter": datacenter,
            "NodeName": name,
            "NodeID": node_id,
            "Revision": "",
            "Server": server,
            "Version": version,
            "BuildDate": BUILD_DATE,
        },
        "DebugConfig": {
            "BootstrapExpect": expect,
            "Datacenter": datacenter,
            "NodeID": node_id,
            "NodeName": name,
            "ServerMode": server,
        },
        "Coord": {"Vec": [0.0] * 8, "Error": 1.5, "Adjustment": 0.0, "Height": 1e-05},
    }
    return orjson.dumps(fixed)[:-1]


def _member_json_bytes(entry: MemberEntry, acl: bool) -> bytes:
    key = (id(entry), acl)
    kept = _members_rendered.get(key)
    if kept is not None and kept[0] is entry:
        return kept[1]
    return _keep(_members_rendered, key, entry, orjson.dumps(_member_json(entry, acl)))


# Renderings of immutable objects, found by the object itself: a frozen dataclass hashes every
# field each time it is looked up (a member entry its dozen tags). Each keeps its object, whose id
# is then never another's.
_KEPT_RENDERED = 4096
_members_rendered: dict[tuple[int, bool], tuple[MemberEntry, bytes]] = {}
_configurations_rendered: dict[int, tuple[tuple[ConfigServer, ...], str]] = {}
_Key = TypeVar("_Key")
_Source = TypeVar("_Source")
_Rendered = TypeVar("_Rendered")


def _keep(
    kept: dict[_Key, tuple[_Source, _Rendered]], key: _Key, rendered_from: _Source, rendered: _Rendered
) -> _Rendered:
    """Keep `rendered` under `key`, with the object it was rendered from (a bounded store)."""
    if len(kept) >= _KEPT_RENDERED:
        kept.clear()
    kept[key] = (rendered_from, rendered)
    return rendered


def _agent_members(ctx: _Ctx) -> Result:
    if ctx.anonymous:
        return ctx.api.ok_json(ctx, [])
    members = ctx.api.cluster.serf.members(ctx.node.name)
    return ctx.api.ok_json(ctx, [_member_json(m, ctx.api.acl is not None) for m in members])


def _agent_join(ctx: _Ctx) -> Result:
    try:
        ctx.api.cluster.join(ctx.node.name, ctx.tail)
    except JoinFailed as exc:
        raise ApiError(500, str(exc)) from None
    except NodeDown as exc:
        raise ApiError(500, str(exc)) from None
    return ApiResponse(200)


def _agent_leave(ctx: _Ctx) -> Result:
    try:
        ctx.api.cluster.leave(ctx.node.name)
    except NodeDown as exc:
        raise ApiError(500, str(exc)) from None
    return ApiResponse(200)


def _agent_force_leave(ctx: _Ctx) -> Result:
    subject = ctx.tail
    try:
        ctx.api.cluster.force_leave(ctx.node.name, subject, prune=ctx.req.has("prune"))
    except NoSuchMember:
        raise ApiError(500, f"agent: No node found with name '{subject}'") from None
    return ApiResponse(200)


def _catalog_nodes(ctx: _Ctx) -> Result:
    dc = ctx.node.datacenter

    def render(srv: RaftServer) -> list[dict[str, Any]]:
        return [_node_json(srv.fsm.nodes[name], dc) for name in sorted(srv.fsm.nodes)]

    return ctx.api.query(ctx, "nodes", render, filtered=ctx.anonymous)


def _checks(fsm: Fsm, *, state: str = "any", node: str | None = None) -> list[dict[str, Any]]:
    """The checks in `state` ("any": all) of `node` (None: every node), by name. Every keeper's
    blocking health query is answered from here: the rows are compared without a call each."""
    checks = fsm.checks
    names = sorted(
        name for name, c in checks.items() if (state == "any" or c.status == state) and (node is None or c.node == node)
    )
    return [_check_json(checks[name]) for name in names]


def _health_state(ctx: _Ctx) -> Result:
    state = ctx.tail
    if state == "":
        raise ApiError(400, "Missing check state")

    def render(srv: RaftServer) -> list[dict[str, Any]]:
        return _checks(srv.fsm, state=state)

    return ctx.api.query(ctx, "checks", render, filtered=ctx.anonymous)


def _health_node(ctx: _Ctx) -> Result:
    name = ctx.tail
    if name == "":
        raise ApiError(400, "Missing node name")

    def render(srv: RaftServer) -> list[dict[str, Any]]:
        return _checks(srv.fsm, node=name)

    return ctx.api.query(ctx, "checks", render, filtered=ctx.anonymous)


def _raft_configuration(ctx: _Ctx) -> Result:
    cluster = ctx.api.cluster
    # Only ?stale is honoured here (operator_endpoint.go); ?consistent is ignored, not an error.
    mode = "stale" if ctx.req.has("stale") else "default"
    srv, error = cluster.read_source(ctx.node.name, mode)
    if srv is None:
        raise ApiError(500, error)
    leader_addr = _leader_addr(cluster, srv)
    view = cluster.serf.view(srv.name)
    servers = []
    for s in srv.fsm.config:
        peer = cluster.raft.get(s.name)
        servers.append(
            {
                "ID": s.id,
                "Node": s.name if s.name in view else "(unknown)",
                "Address": s.address,
                "Leader": s.address == leader_addr,
                "ProtocolVersion": "3",
                "Voter": s.voter,
                "LastIndex": 0 if peer is None else peer.fsm.index,
            }
        )
    return ctx.api.ok_json(ctx, {"Servers": servers, "Index": srv.fsm.config_index})


def _catalog_node(ctx: _Ctx) -> Result:
    """agent/catalog_endpoint.go `CatalogNodeServices`: the node and its services, `null` if unknown.

    The simulated catalog holds no services of its own; a server node carries the `consul` service
    that Consul's leader registers for every server (leader.go `handleAliveMember`).
    """
    name = ctx.tail
    if name == "":
        raise ApiError(400, "Missing node name")
    dc = ctx.node.datacenter
    cluster = ctx.api.cluster
    anonymous = ctx.anonymous

    def render(srv: RaftServer) -> Any:
        row = srv.fsm.nodes.get(name)
        if row is None or anonymous:
            return None
        node = cluster.nodes.get(name)
        services: dict[str, Any] = {}
        if node is not None and node.server:
            services["consul"] = {
                "ID": "consul",
                "Service": "consul",
                "Tags": [],
                "Address": "",
                "Meta": {},
                "Port": 8300,
                "Weights": {"Passing": 1, "Warning": 1},
                "EnableTagOverride": False,
                "CreateIndex": row.create_index,
                "ModifyIndex": row.modify_index,
            }
        return {"Node": _node_json(row, dc), "Services": services}

    return ctx.api.query(ctx, "nodes", render)


@dataclass(frozen=True)
class _ServerHealth:
    server: ConfigServer
    serf: str
    contact_ms: int
    last_term: int
    last_index: int
    healthy: bool
    stable_since_ms: int


def _autopilot_leader(ctx: _Ctx) -> RaftServer:
    # Operator.ServerHealth and Operator.AutopilotState set RequireConsistent and forward to the
    # leader (agent/consul/operator_autopilot_endpoint.go); ?stale is ignored.
    srv, error = ctx.api.cluster.read_source(ctx.node.name, "default")
    if srv is None:
        raise ApiError(500, error)
    return srv


def _server_health(cluster: Cluster, leader: RaftServer) -> list[_ServerHealth]:
    """Autopilot's per-server health as the leader sees it now.

    Stats come straight from each server's Raft state. Consul's leader fetches them over RPC every
    ServerHealthInterval and keeps the last ones for a server it cannot reach; for such a server the
    growing time since its last contact makes it unhealthy here as there.
    """
    now = cluster.engine.now
    view = cluster.serf.view(leader.name)
    stable = cluster.duties.healthy_since(leader.name)
    lead_index, lead_term = leader.fsm.index, leader.fsm.last_term
    out = []
    for s in leader.fsm.config:
        peer = cluster.raft.get(s.name)
        member = view.get(s.name)
        serf = member.status.label if member is not None else "none"
        reached = leader.heard_from(s.name)
        if peer is leader:
            contact = 0
        elif peer is not None and peer.last_contact is not None and cluster.link_ok(leader.node, peer.node):
            contact = now - peer.last_contact
        else:  # no stats from it: time since this leader last reached it
            contact = now - (reached if reached is not None else leader.leader_since or 0)
        term = peer.fsm.last_term if peer is not None else 0
        index = peer.fsm.index if peer is not None else 0
        healthy = (
            serf == "alive"
            and contact <= LAST_CONTACT_THRESHOLD_MS
            and term == lead_term
            and not (lead_index > MAX_TRAILING_LOGS and index < lead_index - MAX_TRAILING_LOGS)
        )
        since = stable.get(s.name, leader.leader_since or 0)
        out.append(_ServerHealth(s, serf, contact, term, index, healthy, since))
    return out


def _tolerance(health: list[_ServerHealth]) -> int:
    # raft-autopilot: healthy voters beyond the quorum of all voters (`requiredQuorum`).
    voters = [h for h in health if h.server.voter]
    return max(0, sum(1 for h in voters if h.healthy) - (len(voters) // 2 + 1))


def _stamp(ms: int) -> str:
    return (SIM_EPOCH + timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _autopilot_health(ctx: _Ctx) -> Result:
    """agent/operator_endpoint.go `OperatorServerHealth`: 429 with the same body when unhealthy."""
    cluster = ctx.api.cluster
    leader = _autopilot_leader(ctx)
    health = _server_health(cluster, leader)
    healthy = all(h.healthy for h in health)
    body = {
        "Healthy": healthy,
        "FailureTolerance": _tolerance(health),
        "Servers": [
            {
                "ID": h.server.id,
                "Name": h.server.name,
                "Address": h.server.address,
                "SerfStatus": h.serf,
                "Version": cluster.config.consul_version,
                "Leader": h.server.name == leader.name,
                "LastContact": format_ms(h.contact_ms),
                "LastTerm": h.last_term,
                "LastIndex": h.last_index,
                "Healthy": h.healthy,
                "Voter": h.server.voter,
                "StableSince": _stamp(h.stable_since_ms),
            }
            for h in health
        ],
    }
    response = ctx.api.ok_json(ctx, body)
    response.status = 200 if healthy else 429
    return response


# raft-autopilot NodeStatus from the serf status (consul agent/consul/autopilot.go).
_NODE_STATUS = {"alive": "alive", "failed": "failed", "left": "left", "leaving": "left"}


def _autopilot_state(ctx: _Ctx) -> Result:
    """agent/operator_endpoint.go `OperatorAutopilotState` (`autopilotToAPIState`), Consul CE."""
    cluster = ctx.api.cluster
    leader = _autopilot_leader(ctx)
    health = _server_health(cluster, leader)
    tolerance = _tolerance(health)
    servers = {}
    for h in health:
        s = h.server
        status = "leader" if s.name == leader.name else "voter" if s.voter else "non-voter"
        servers[s.id] = {
            "ID": s.id,
            "Name": s.name,
            "Address": s.address,
            "NodeStatus": _NODE_STATUS.get(h.serf, "unknown"),
            "Version": cluster.config.consul_version,
            "LastContact": format_ms(h.contact_ms),
            "LastTerm": h.last_term,
            "LastIndex": h.last_index,
            "Healthy": h.healthy,
            "StableSince": _stamp(h.stable_since_ms),
            "Status": status,
            "Meta": {"consul-network-segment": ""},
            "NodeType": "voter",
        }
    body = {
        "Healthy": all(h.healthy for h in health),
        "FailureTolerance": tolerance,
        # CE has no redundancy zones to be optimistic about; the same number [unconfirmed].
        "OptimisticFailureTolerance": tolerance,
        "Servers": servers,
        "Leader": next((s.id for s in leader.fsm.config if s.name == leader.name), ""),
        "Voters": [s.id for s in leader.fsm.config if s.voter],
    }
    return ctx.api.ok_json(ctx, body)
