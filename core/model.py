"""Plain data shared by the adapters, the pure decisions, the console and the simulator."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Generic, TypeVar

T = TypeVar("T")


class MemberStatus(IntEnum):
    """Serf member status codes as `/v1/agent/members` reports them."""

    NONE = 0
    ALIVE = 1
    LEAVING = 2
    LEFT = 3
    FAILED = 4

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Member:
    """One element of `/v1/agent/members` (the gossip view of the answering agent)."""

    name: str
    addr: str
    port: int
    status: MemberStatus
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_server(self) -> bool:
        return self.tags.get("role") == "consul"


@dataclass(frozen=True)
class AgentSelf:
    """What `/v1/agent/self` tells about the local agent."""

    node_name: str
    address: str
    datacenter: str
    server: bool
    raft_state: str  # "Leader", "Follower", "Candidate", or "" on clients
    term: int  # 0 on clients
    member: Member | None = None

    @property
    def is_leader(self) -> bool:
        return self.raft_state == "Leader"


@dataclass(frozen=True)
class RaftServer:
    id: str
    node: str
    address: str  # IP:8300
    leader: bool
    voter: bool
    last_index: int | None = None  # recent Consul versions only (`LastIndex`)


@dataclass(frozen=True)
class RaftConfiguration:
    servers: tuple[RaftServer, ...]
    index: int


@dataclass(frozen=True)
class ServerHealth:
    """One server in `/v1/operator/autopilot/health`."""

    id: str
    name: str
    address: str
    serf_status: str  # alive / failed / left / …
    version: str
    leader: bool
    voter: bool
    healthy: bool
    last_contact: float | None  # seconds since the server last heard from the leader; None if unknown
    last_term: int
    last_index: int
    stable_since: str  # RFC 3339


@dataclass(frozen=True)
class AutopilotHealth:
    """What autopilot on the leader thinks of every server (HTTP 429 when not `healthy`)."""

    healthy: bool
    failure_tolerance: int
    servers: tuple[ServerHealth, ...]


@dataclass(frozen=True)
class AutopilotState:
    """`/v1/operator/autopilot/state`: autopilot's own role for each server, keyed by server ID."""

    healthy: bool
    failure_tolerance: int
    optimistic_failure_tolerance: int
    leader: str  # server ID
    voters: tuple[str, ...]
    statuses: Mapping[str, str]  # server ID -> leader / voter / non-voter / staging


@dataclass(frozen=True)
class NodeService:
    """One service of `/v1/catalog/node/:node`."""

    id: str
    service: str
    port: int
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class CatalogNode:
    id: str
    node: str
    address: str
    datacenter: str


@dataclass(frozen=True)
class HealthCheck:
    node: str
    check_id: str
    name: str
    status: str  # passing / warning / critical
    output: str = ""


@dataclass(frozen=True)
class Blocking(Generic[T]):
    """A blocking-query result with the index to pass on the next call."""

    value: T
    index: int
    known_leader: bool = True
    last_contact_ms: int = 0


@dataclass(frozen=True)
class Instance:
    """An EC2 instance of the cluster, as DescribeInstances reports it."""

    instance_id: str
    private_ip: str | None
    public_ip: str | None
    state: str  # pending / running / stopping / stopped / shutting-down / terminated
    tags: Mapping[str, str] = field(default_factory=dict)
    zone: str | None = None  # Placement.AvailabilityZone
    instance_type: str | None = None
    launch_time: str | None = None  # RFC 3339

    @property
    def running(self) -> bool:
        return self.state == "running"


def leader_address(raft_addr: str) -> str:
    """`10.0.1.10:8300` → `10.0.1.10` (IPv6 `[::1]:8300` → `::1`)."""
    if raft_addr.startswith("["):
        return raft_addr[1 : raft_addr.index("]")]
    host, sep, _port = raft_addr.rpartition(":")
    return host if sep else raft_addr


def parse_term(value: str | None) -> int | None:
    """The Raft term stored in a leader tag, or None for a naive (`true`) or garbled value."""
    if value is None:
        return None
    try:
        term = int(value.strip())
    except ValueError:
        return None
    return term if term >= 0 else None
