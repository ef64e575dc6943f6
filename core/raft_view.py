"""The Raft picture: each server's role, the quorum, failure tolerance and autopilot's health.

What `consul operator raft list-peers` and `consul operator autopilot state` answer, joined with
the gossip members, so a server that is alive but not (yet) in the configuration shows up too.
Pure functions over plain data, plus `read_raft`, which asks one agent for the three documents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, Protocol

from tagjoin.core.errors import AclDenied, ConsulError, ConsulUnreachable, NoLeader
from tagjoin.core.model import (
    AgentSelf,
    AutopilotHealth,
    AutopilotState,
    MemberStatus,
    RaftConfiguration,
    ServerHealth,
    leader_address,
)
from tagjoin.core.view import NodeRow

# Consul's autopilot defaults (agent/config/default.go: last_contact_threshold, max_trailing_logs,
# server_stabilization_time); the health reasons below are judged against them.
LAST_CONTACT_THRESHOLD_S = 0.2
MAX_TRAILING_LOGS = 250
SERVER_STABILIZATION_S = 10


class Role(StrEnum):
    LEADER = "leader"
    VOTER = "voter"
    NON_VOTER = "non-voter"
    STAGING = "staging"  # autopilot/state's word for a non-voter it means to promote
    NOT_IN_CONFIG = "not in raft"  # a server member the configuration does not list


@dataclass(frozen=True)
class ServerLine:
    node: str  # the member's name, or the Raft address when no member has it
    address: str  # IP of the server
    role: Role
    serf_status: str | None  # the member's gossip status; None when no member has the address
    healthy: bool | None  # autopilot's verdict; None when autopilot could not be read
    reason: str  # why unhealthy, or why it does not vote
    last_contact: float | None = None  # seconds
    last_index: int | None = None
    last_term: int | None = None

    @property
    def votes(self) -> bool:
        return self.role in (Role.LEADER, Role.VOTER)

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "address": self.address,
            "role": self.role.value,
            "serf_status": self.serf_status,
            "healthy": self.healthy,
            "reason": self.reason or None,
            "last_contact_s": self.last_contact,
            "last_index": self.last_index,
            "last_term": self.last_term,
        }


@dataclass(frozen=True)
class Problem:
    """A document that could not be read: what, a short reason for a screen, the whole message."""

    what: str
    reason: str
    detail: str


@dataclass(frozen=True)
class RaftPicture:
    servers: tuple[ServerLine, ...]
    voters: int  # voters in the configuration
    healthy_voters: int  # voters autopilot calls healthy, or alive by gossip when autopilot is unknown
    quorum: int
    tolerance: int
    known: bool  # a configuration was read
    alive_voters: int = 0  # voters whose agent gossip calls alive: what an election can count on
    stale: bool = False  # read with ?stale: no leader stands behind this configuration
    autopilot_healthy: bool | None = None
    leader_term: int | None = None  # the leader's last log term per autopilot: its current term
    problems: tuple[Problem, ...] = ()

    @property
    def by_gossip(self) -> bool:
        """Voter health counted from gossip status, because autopilot could not be read."""
        return self.autopilot_healthy is None

    @property
    def has_quorum(self) -> bool:
        """Enough voters are alive to elect a leader (autopilot may still call some unhealthy)."""
        return self.known and self.voters > 0 and self.alive_voters >= self.quorum

    @property
    def at_risk(self) -> bool:
        """Quorum holds only by voters autopilot calls unhealthy."""
        return self.has_quorum and self.healthy_voters < self.quorum

    def line(self, node: str) -> ServerLine | None:
        return next((s for s in self.servers if s.node == node), None)

    def role_of(self, node: str) -> Role | None:
        found = self.line(node)
        return found.role if found else None

    def summary(self) -> str:
        """`voters 2/3 · quorum 2 · tolerates 0 failures`."""
        if not self.known:
            return "raft configuration unknown"
        failures = "failure" if self.tolerance == 1 else "failures"
        return (
            f"voters {self.healthy_voters}/{self.voters} · quorum {self.quorum} · tolerates {self.tolerance} {failures}"
        )

    def problem(self, what: str) -> Problem | None:
        return next((p for p in self.problems if p.what == what), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "known": self.known,
            "stale": self.stale,
            "voters": self.voters,
            "healthy_voters": self.healthy_voters,
            "alive_voters": self.alive_voters,
            "voter_health_from": "gossip" if self.by_gossip else "autopilot",
            "quorum": self.quorum,
            "failure_tolerance": self.tolerance,
            "has_quorum": self.has_quorum,
            "autopilot_healthy": self.autopilot_healthy,
            "leader_term": self.leader_term,
            "servers": [s.to_json() for s in self.servers],
            "errors": [{"what": p.what, "reason": p.reason, "message": p.detail} for p in self.problems],
        }


UNKNOWN = RaftPicture(servers=(), voters=0, healthy_voters=0, quorum=0, tolerance=0, known=False)


def quorum_of(voters: int) -> int:
    """hashicorp/raft-autopilot `requiredQuorum`: a majority of the voters."""
    return voters // 2 + 1


def build_raft(
    config: RaftConfiguration | None,
    health: AutopilotHealth | None,
    state: AutopilotState | None,
    rows: Sequence[NodeRow],
    *,
    stale: bool = False,
    problems: Sequence[Problem] = (),
) -> RaftPicture:
    if config is None:
        return RaftPicture(
            servers=(), voters=0, healthy_voters=0, quorum=0, tolerance=0, known=False, problems=tuple(problems)
        )
    by_name = {r.name: r for r in rows}
    by_ip = {r.address: r for r in rows if r.role == "server"}
    health_by_id = {h.id: h for h in health.servers} if health else {}
    leader_health = next((h for h in health.servers if h.leader), None) if health else None
    statuses = state.statuses if state else {}
    lines: list[ServerLine] = []
    listed: set[str] = set()
    for srv in config.servers:
        ip = leader_address(srv.address)
        row = by_name.get(srv.node) or by_ip.get(ip)
        name = row.name if row else (srv.node if srv.node != "(unknown)" else srv.address)
        listed.add(name)
        h = health_by_id.get(srv.id)
        role = Role.LEADER if srv.leader else Role.VOTER if srv.voter else Role.NON_VOTER
        if role is Role.NON_VOTER and statuses.get(srv.id) == "staging":
            role = Role.STAGING
        serf = row.status.label if row else (h.serf_status if h else None)
        lines.append(
            ServerLine(
                node=name,
                address=ip,
                role=role,
                serf_status=serf,
                healthy=h.healthy if h else None,
                reason=_reason(role, h, leader_health),
                last_contact=h.last_contact if h else None,
                last_index=h.last_index if h else srv.last_index,
                last_term=h.last_term if h else None,
            )
        )
    for row in rows:
        if row.role != "server" or row.name in listed or row.status in (MemberStatus.LEFT, MemberStatus.NONE):
            continue
        why = "alive but not in the configuration yet: the leader adds it" if row.status == MemberStatus.ALIVE else ""
        lines.append(ServerLine(row.name, row.address, Role.NOT_IN_CONFIG, row.status.label, None, why))
    order = {Role.LEADER: 0, Role.VOTER: 1, Role.STAGING: 2, Role.NON_VOTER: 3, Role.NOT_IN_CONFIG: 4}
    lines.sort(key=lambda s: (order[s.role], s.node))
    voting = [s for s in lines if s.votes]
    # A leaving server still runs and votes until the leader takes it out of the configuration.
    alive = sum(1 for s in voting if s.serf_status in (MemberStatus.ALIVE.label, MemberStatus.LEAVING.label))
    # Autopilot's FailureTolerance is this same count, but the configuration and the health are
    # two reads: computed here, the numbers on screen always agree with each other.
    healthy = sum(1 for s in voting if s.healthy) if health is not None else alive
    tolerance = max(0, healthy - quorum_of(len(voting))) if voting else 0
    return RaftPicture(
        servers=tuple(lines),
        voters=len(voting),
        healthy_voters=healthy,
        quorum=quorum_of(len(voting)) if voting else 0,
        tolerance=tolerance,
        known=True,
        alive_voters=alive,
        stale=stale,
        autopilot_healthy=health.healthy if health else None,
        leader_term=leader_health.last_term if leader_health else None,
        problems=tuple(problems),
    )


def _reason(role: Role, h: ServerHealth | None, leader: ServerHealth | None) -> str:
    """Why autopilot calls a server unhealthy, after hashicorp/raft-autopilot `(*ServerState).isHealthy`."""
    why: list[str] = []
    if h is not None and not h.healthy:
        if h.serf_status != "alive":
            why.append(f"serf {h.serf_status or 'unknown'}")
        if h.last_contact is None:
            why.append("no contact with the leader")
        elif h.last_contact > LAST_CONTACT_THRESHOLD_S:
            why.append(f"last contact {_secs(h.last_contact)} > {_secs(LAST_CONTACT_THRESHOLD_S)}")
        if leader is not None and h.last_term != leader.last_term:
            why.append(f"term {h.last_term} ≠ leader's {leader.last_term}")
        if leader is not None and h.last_index + MAX_TRAILING_LOGS < leader.last_index:
            why.append(f"{leader.last_index - h.last_index} entries behind (> {MAX_TRAILING_LOGS})")
        if not why:
            why.append("unhealthy")
    if role in (Role.NON_VOTER, Role.STAGING):
        why.append(f"does not vote: autopilot promotes it after {SERVER_STABILIZATION_S}s healthy")
    return "; ".join(why)


def _secs(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.1f}s"


# -- what an action would do to the quorum ---------------------------------------------------


class Change(Enum):
    LEAVE = "leave"  # graceful leave: the leader removes it from the configuration
    STOP = "stop"  # crash, isolation, pause: it stays in the configuration and stops answering


@dataclass(frozen=True)
class QuorumImpact:
    known: bool  # the Raft picture was known; otherwise nothing below means anything
    role: Role | None  # the target's role now (None: a client, or not a server we know)
    voters_after: int
    healthy_after: int
    quorum_after: int
    servers_after: int  # servers still answering afterwards, voting or not
    had_quorum: bool = False

    @property
    def leader(self) -> bool:
        return self.role is Role.LEADER

    @property
    def voter(self) -> bool:
        return self.role in (Role.LEADER, Role.VOTER)

    @property
    def holds(self) -> bool:
        return self.voters_after > 0 and self.healthy_after >= self.quorum_after

    @property
    def tolerance_after(self) -> int:
        return max(0, self.healthy_after - self.quorum_after)

    @property
    def breaks_quorum(self) -> bool:
        """The action takes away a quorum the cluster has now (or stops the last server)."""
        if not self.known or self.role is None:
            return False
        return self.servers_after == 0 or (self.voter and self.had_quorum and not self.holds)


def impact(picture: RaftPicture, node: str, change: Change) -> QuorumImpact:
    line = picture.line(node)
    role = line.role if line else None
    if not picture.known:
        return QuorumImpact(False, role, 0, 0, 0, 0)
    answering = [s for s in picture.servers if s.serf_status == MemberStatus.ALIVE.label]
    servers_after = len(answering) - (1 if line is not None and line in answering else 0)
    voters, healthy = picture.voters, picture.healthy_voters
    if line is not None and line.votes:
        counted = line.healthy if line.healthy is not None else line.serf_status == MemberStatus.ALIVE.label
        healthy -= 1 if counted else 0
        if change is Change.LEAVE:
            voters -= 1
    quorum = quorum_of(voters) if voters else 0
    return QuorumImpact(True, role, voters, healthy, quorum, servers_after, picture.has_quorum)


# -- reading it from an agent -----------------------------------------------------------------


class RaftApi(Protocol):
    def raft_configuration(self, *, stale: bool = False) -> RaftConfiguration: ...

    def autopilot_health(self) -> AutopilotHealth: ...

    def autopilot_state(self) -> AutopilotState: ...


def read_raft(api: RaftApi, rows: Sequence[NodeRow]) -> RaftPicture:
    """The configuration (with `?stale` when there is no leader) and, with a leader, autopilot's view.

    Consul forwards all three to the leader (agent/operator_endpoint.go `OperatorRaftConfiguration`,
    `OperatorServerHealth`, `OperatorAutopilotState`); only the configuration can be read without
    one. A document that cannot be read is a Problem in the picture, never an exception.
    """
    problems: list[Problem] = []
    stale = False
    config: RaftConfiguration | None = None
    try:
        config = api.raft_configuration()
    except ConsulError as exc:
        problems.append(_problem("raft configuration", exc))
        if isinstance(exc, NoLeader):
            try:
                config, stale = api.raft_configuration(stale=True), True
            except ConsulError as again:
                problems.append(_problem("raft configuration (stale)", again))
    health: AutopilotHealth | None = None
    state: AutopilotState | None = None
    if config is not None and not stale:
        try:
            health = api.autopilot_health()
        except ConsulError as exc:
            problems.append(_problem("autopilot health", exc))
        if health is not None:
            try:
                state = api.autopilot_state()
            except ConsulError as exc:  # Consul < 1.9 has no state endpoint; health is enough
                problems.append(_problem("autopilot state", exc))
    return build_raft(config, health, state, rows, stale=stale, problems=problems)


def _problem(what: str, exc: ConsulError) -> Problem:
    return Problem(what, short_reason(exc, "operator:read"), str(exc))


def short_reason(exc: Exception, permission: str = "") -> str:
    """A few words for a screen; the exception's own message stays for logs and exports."""
    if isinstance(exc, NoLeader):
        return "no cluster leader"
    if isinstance(exc, AclDenied):
        return f"ACL token lacks {permission}" if permission else "ACL denied"
    if isinstance(exc, ConsulUnreachable):
        return "the agent does not answer"
    return "unexpected answer"


class SelfApi(Protocol):
    def agent_self(self) -> AgentSelf: ...


def leader_term(api: SelfApi, picture: RaftPicture) -> int | None:
    """The leader's current term: autopilot's LastTerm of the leader (its no-op entry opens each term),
    else the answering agent's own term when it is the leader; None otherwise."""
    if picture.leader_term is not None:
        return picture.leader_term
    try:
        me = api.agent_self()
    except ConsulError:
        return None
    return me.term if me.is_leader else None
