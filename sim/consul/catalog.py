"""The replicated state machine of one Consul server: catalog tables and the Raft configuration.

Only what the tag handoff can observe is modelled: nodes, their `serfHealth` check, and the server
list. Table indexes follow Consul's state store: each table remembers the Raft index of its last
write, so a write that touches only checks leaves the `nodes` index (and a `nodes` watch) alone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

SERF_CHECK_ID = "serfHealth"
SERF_CHECK_NAME = "Serf Health Status"
SERF_ALIVE_OUTPUT = "Agent alive and reachable"
SERF_FAILED_OUTPUT = "Agent not live or unreachable"
PASSING = "passing"
CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class ConfigServer:
    id: str
    name: str
    address: str  # IP:8300
    voter: bool


@dataclass(frozen=True, slots=True)
class Noop:
    """The entry a new leader appends first (hashicorp/raft LogNoop)."""


@dataclass(frozen=True, slots=True)
class SetConfig:
    servers: tuple[ConfigServer, ...]


@dataclass(frozen=True, slots=True)
class RegisterNode:
    """handleAliveMember/handleFailedMember: the node row plus its serfHealth check."""

    name: str
    node_id: str
    address: str
    status: str
    output: str


@dataclass(frozen=True, slots=True)
class SetCheck:
    """Only the serfHealth check (`SkipNodeUpdate`): the node row is untouched."""

    name: str
    status: str
    output: str


@dataclass(frozen=True, slots=True)
class DeregisterNode:
    name: str


Op = Noop | SetConfig | RegisterNode | SetCheck | DeregisterNode


@dataclass(frozen=True, slots=True)
class Entry:
    index: int
    term: int
    op: Op


@dataclass(frozen=True, slots=True)
class NodeRow:
    node_id: str
    name: str
    address: str
    create_index: int
    modify_index: int


@dataclass(frozen=True, slots=True)
class CheckRow:
    node: str
    status: str
    output: str
    create_index: int
    modify_index: int


class Fsm:
    """One server's applied state; `index`/`last_term` are those of its last applied entry."""

    __slots__ = (
        "_voters",
        "checks",
        "checks_index",
        "config",
        "config_index",
        "index",
        "last_term",
        "nodes",
        "nodes_index",
    )

    def __init__(self) -> None:
        self.index = 0
        self.last_term = 0
        self.nodes: dict[str, NodeRow] = {}
        self.checks: dict[str, CheckRow] = {}
        self.nodes_index = 0
        self.checks_index = 0
        self.config: tuple[ConfigServer, ...] = ()
        self.config_index = 0
        self._voters: frozenset[str] = frozenset()

    def voters(self) -> frozenset[str]:
        # Asked on every heartbeat, vote and agent/self; the configuration changes a few times a run.
        return self._voters

    def in_config(self, name: str) -> ConfigServer | None:
        for server in self.config:
            if server.name == name:
                return server
        return None

    def apply(self, entry: Entry) -> None:
        idx = entry.index
        op = entry.op
        if isinstance(op, SetConfig):
            self.config = op.servers
            self.config_index = idx
            self._voters = frozenset(s.name for s in op.servers if s.voter)
        elif isinstance(op, RegisterNode):
            self._upsert_node(op.name, op.node_id, op.address, idx)
            self._upsert_check(op.name, op.status, op.output, idx)
        elif isinstance(op, SetCheck):
            self._upsert_check(op.name, op.status, op.output, idx)
        elif isinstance(op, DeregisterNode):
            if self.nodes.pop(op.name, None) is not None:
                self.nodes_index = idx
            if self.checks.pop(op.name, None) is not None:
                self.checks_index = idx
        self.index = idx
        self.last_term = entry.term

    def _upsert_node(self, name: str, node_id: str, address: str, idx: int) -> None:
        row = self.nodes.get(name)
        if row is None:
            self.nodes[name] = NodeRow(node_id, name, address, idx, idx)
        elif row.address != address or row.node_id != node_id:
            self.nodes[name] = replace(row, node_id=node_id, address=address, modify_index=idx)
        else:
            return  # ensureNode skips identical rows: no index bump
        self.nodes_index = idx

    def _upsert_check(self, name: str, status: str, output: str, idx: int) -> None:
        row = self.checks.get(name)
        if row is None:
            self.checks[name] = CheckRow(name, status, output, idx, idx)
        elif row.status != status or row.output != output:
            self.checks[name] = replace(row, status=status, output=output, modify_index=idx)
        else:
            return
        self.checks_index = idx
