"""Deterministic stand-ins for the console's tests: scripted snapshots, a recording Consul, a clock.

Shipped in the package (not under tests/) so the simulator's own console tests can reuse them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tagjoin.core.errors import BadResponse, ConsulUnreachable
from tagjoin.core.model import (
    AgentSelf,
    AutopilotHealth,
    AutopilotState,
    Blocking,
    HealthCheck,
    Instance,
    Member,
    MemberStatus,
    NodeService,
    RaftConfiguration,
)
from tagjoin.core.raft_view import RaftPicture
from tagjoin.core.view import ClusterView, build_view
from tagjoin.tui.source import LeaderProbe, NodeExtras, RaftReading, Snapshot

TAG_KEY = "consul-leader"


class FixedClock:
    """A wall clock that moves only when told to."""

    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class ScriptedSource:
    """Returns the given snapshots in order, then keeps returning the last one."""

    def __init__(self, snapshots: Iterable[Snapshot] = (), label: str = "consul test  ec2 test") -> None:
        self.label = label
        self._lock = threading.Lock()
        self._queue = list(snapshots)
        self._last: Snapshot | None = None
        self.fetches = 0

    def push(self, *snapshots: Snapshot) -> None:
        with self._lock:
            self._queue.extend(snapshots)

    def fetch(self) -> Snapshot:
        with self._lock:
            self.fetches += 1
            if self._queue:
                self._last = self._queue.pop(0)
            if self._last is None:
                raise RuntimeError("ScriptedSource has nothing to return")
            return self._last


@dataclass
class FakeConsul:
    """Records what was asked of which agent; `unreachable` agents raise ConsulUnreachable."""

    address: str = "http://127.0.0.1:8500"
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (agent, call, argument)
    unreachable: set[str] = field(default_factory=set)
    leader_addr: str | None = None
    member_list: list[Member] = field(default_factory=list)
    agents: dict[str, AgentSelf] = field(default_factory=dict)

    def _call(self, name: str, arg: str = "") -> None:
        self.calls.append((self.address, name, arg))
        if self.address in self.unreachable:
            raise ConsulUnreachable(f"agent {self.address} unreachable")

    def leader(self) -> str | None:
        self._call("leader")
        return self.leader_addr

    def members(self) -> list[Member]:
        self._call("members")
        return list(self.member_list)

    def agent_self(self) -> AgentSelf:
        self._call("agent_self")
        found = self.agents.get(self.address)
        if found is None:
            raise ConsulUnreachable(f"agent {self.address} unreachable")
        return found

    def leave(self) -> None:
        self._call("leave")

    def force_leave(self, node: str, *, prune: bool = False) -> None:
        self._call("force_leave", node + (" prune" if prune else ""))

    # The operator endpoints are not scripted here: the Raft picture is tested against the simulator.
    def raft_configuration(self, *, stale: bool = False) -> RaftConfiguration:
        self._call("raft_configuration")
        raise BadResponse("not scripted")

    def autopilot_health(self) -> AutopilotHealth:
        self._call("autopilot_health")
        raise BadResponse("not scripted")

    def autopilot_state(self) -> AutopilotState:
        self._call("autopilot_state")
        raise BadResponse("not scripted")

    def health_node(self, node: str, *, consistency: str | None = "consistent") -> Blocking[list[HealthCheck]]:
        self._call("health_node", node)
        return Blocking([], 1)

    def node_services(self, node: str) -> list[NodeService]:
        self._call("node_services", node)
        return []

    def with_address(self, address: str, *, timeout: float | None = None) -> FakeConsul:
        # Shares the record, so a test sees every agent's calls in one list.
        return FakeConsul(address, self.calls, self.unreachable, self.leader_addr, self.member_list, self.agents)

    def close(self) -> None:
        return None


@dataclass
class FakeStore:
    found: list[Instance] = field(default_factory=list)

    def instances(self, *, states: Sequence[str] | None = ("running",)) -> list[Instance]:
        return [i for i in self.found if states is None or i.state in states]


def member(name: str, addr: str, status: MemberStatus = MemberStatus.ALIVE, *, server: bool = True) -> Member:
    return Member(name, addr, 8301, status, {"role": "consul" if server else "node"})


def instance(iid: str, ip: str, state: str = "running", tags: Mapping[str, str] | None = None) -> Instance:
    return Instance(iid, ip, None, state, dict(tags or {}))


def snapshot(
    at: float,
    leader_ip: str | None,
    members: Sequence[Member],
    instances: Sequence[Instance],
    *,
    term: int | None = None,
    tag_key: str = TAG_KEY,
) -> Snapshot:
    view = build_view(f"{leader_ip}:8300" if leader_ip else None, members, instances, tag_key)
    return Snapshot(fetched_at=at, view=view, term=term)


def failed(at: float, error: str) -> Snapshot:
    return Snapshot(fetched_at=at, error=error)


class ScriptedCluster(ScriptedSource):
    """A ScriptedSource that also answers the facts read beside the poll, from what a test sets."""

    def __init__(
        self,
        snapshots: Iterable[Snapshot] = (),
        label: str = "consul test  ec2 test",
        *,
        raft: RaftPicture | None = None,
        probe: LeaderProbe | None = None,
        extras: dict[str, NodeExtras] | None = None,
    ) -> None:
        super().__init__(snapshots, label)
        self.raft = raft
        self.probe = probe
        self.extras = extras or {}

    def probe_leader(self, view: ClusterView) -> LeaderProbe | None:
        return self.probe

    def read_raft(self, view: ClusterView, via: str | None) -> RaftReading:
        assert self.raft is not None, "set ScriptedCluster.raft"
        return RaftReading(self._last.fetched_at if self._last else 0.0, self.raft, "scripted")

    def node_extras(self, node: str, via: str | None) -> NodeExtras:
        return self.extras.get(node, NodeExtras(0.0, node))
