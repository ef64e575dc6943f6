"""What a Consul server does around Raft: bootstrap_expect, the leader's reconcile, autopilot.

- `maybe_bootstrap` follows agent/consul/server_serf.go: count alive servers of the datacenter in
  the local Serf view, abort on a conflicting `expect` tag, ask every one of them for Raft peers
  (any answer with peers, or no answer, means no bootstrap now), then bootstrap with all of them.
- `reconcile` follows leader.go `reconcileMember`: alive → register the node with `serfHealth`
  passing and add a new server to Raft (as a non-voter, autopilot promotes it); failed → only the
  check turns critical (`SkipNodeUpdate`), the node row stays; left → remove from Raft and
  deregister; nodes in the catalog but no longer in Serf → deregister (reap).
- `autopilot` follows raft-autopilot: promote non-voters stable for ServerStabilizationTime; with
  CleanupDeadServers, remove stale servers from Raft and ask Serf to force-leave failed ones
  (`RemoveFailedServer` → `RemoveFailedNode(name, prune=false)`), never a majority at once. So a
  crashed server is eventually deregistered from the catalog too — through autopilot, not the crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from tagjoin.core.model import MemberStatus
from tagjoin.sim.consul.catalog import (
    CRITICAL,
    PASSING,
    SERF_ALIVE_OUTPUT,
    SERF_FAILED_OUTPUT,
    ConfigServer,
    DeregisterNode,
    Op,
    RegisterNode,
    SetCheck,
    SetConfig,
)
from tagjoin.sim.consul.raft import LEADER, RaftGroup, RaftServer
from tagjoin.sim.consul.serf import MemberEntry, Serf
from tagjoin.sim.kernel.engine import Engine
from tagjoin.sim.kernel.machine import SERVER_RPC_PORT, Node, NodeTimer, node_timer


@dataclass(frozen=True)
class ConsulTimings:
    reconcile_interval_ms: int = 60_000
    autopilot_interval_ms: int = 10_000
    server_stabilization_ms: int = 10_000
    cleanup_dead_servers: bool = True
    min_quorum: int = 0
    leave_propagate_ms: int = 3_000  # lib/serf.go LeavePropagateDelay
    leave_drain_ms: int = 5_000  # performance.leave_drain_time


class DutiesHost(Protocol):
    """What the duties need of the cluster that owns them; the cluster imports this module."""

    engine: Engine
    serf: Serf

    def raft_peer(self, name: str) -> RaftServer | None: ...

    def link_ok(self, a: Node, b: Node) -> bool: ...


@dataclass
class _ServerState:
    expect_pending: int
    reconcile_timer: NodeTimer | None = None
    periodic: dict[str, NodeTimer] = field(default_factory=dict)
    healthy_since: dict[str, int] = field(default_factory=dict)


class ServerDuties:
    def __init__(self, host: DutiesHost, timings: ConsulTimings) -> None:
        self.host = host
        self.timings = timings
        self._state: dict[str, _ServerState] = {}
        self.groups: dict[str, RaftGroup] = {}

    def register(self, node: Node) -> None:
        self._state[node.name] = _ServerState(expect_pending=node.bootstrap_expect)

    def _st(self, name: str) -> _ServerState:
        return self._state[name]

    def healthy_since(self, leader: str) -> dict[str, int]:
        """When `leader`'s autopilot first saw each server healthy (virtual ms): its StableSince."""
        st = self._state.get(leader)
        return dict(st.healthy_since) if st is not None else {}

    # bootstrap_expect -------------------------------------------------------------------------

    def maybe_bootstrap(self, srv: RaftServer) -> None:
        node = srv.node
        st = self._st(node.name)
        if srv.group is not None or st.expect_pending <= 0 or not node.responsive:
            return
        host = self.host
        servers = [
            m
            for m in host.serf.members(node.name)
            if m.status == MemberStatus.ALIVE and m.is_server and m.tag("dc") == node.datacenter
        ]
        expect = str(st.expect_pending)
        for m in servers:
            if m.tag("expect") != expect:
                host.engine.record(node.name, "bootstrap: member has a conflicting expect value")
                return
        if len(servers) < st.expect_pending:
            return
        for m in servers:
            if m.name == node.name:
                continue
            peer = host.raft_peer(m.name)
            if peer is None or not host.link_ok(node, peer.node):
                return  # "Failed to confirm peer status": try again on the next member event
            if peer.fsm.config:
                host.engine.record(node.name, f"bootstrap disabled: {m.name} reports raft peers")
                st.expect_pending = 0
                return
        config = tuple(
            ConfigServer(m.tag("id") or m.name, m.name, f"{m.addr}:{SERVER_RPC_PORT}", True) for m in servers
        )
        gid = "+".join(sorted(m.name for m in servers))
        group = self.groups.get(gid)
        if group is None:
            group = RaftGroup(gid, config)
            self.groups[gid] = group
        st.expect_pending = 0
        srv.bootstrap(group)

    # leadership hooks -------------------------------------------------------------------------

    def leader_elected(self, srv: RaftServer) -> None:
        st = self._st(srv.name)
        self._cancel_periodic(st)
        st.healthy_since.clear()
        engine = self.host.engine
        since = srv.leader_since

        def every(interval: int, action: str) -> None:
            def tick() -> None:
                if srv.state != LEADER or srv.leader_since != since:
                    return
                st.periodic[action] = node_timer(engine, srv.node, interval, tick, f"consul.{action}")
                if action == "reconcile":
                    self.reconcile(srv)
                else:
                    self.autopilot(srv)

            st.periodic[action] = node_timer(engine, srv.node, interval, tick, f"consul.{action}")

        every(self.timings.reconcile_interval_ms, "reconcile")
        every(self.timings.autopilot_interval_ms, "autopilot")
        self.reconcile(srv)

    def leadership_lost(self, srv: RaftServer) -> None:
        self._cancel_periodic(self._st(srv.name))

    def _cancel_periodic(self, st: _ServerState) -> None:
        for timer in st.periodic.values():
            timer.cancel()
        st.periodic.clear()
        if st.reconcile_timer is not None:
            st.reconcile_timer.cancel()
            st.reconcile_timer = None

    def member_event(self, srv: RaftServer) -> None:
        """A Serf change on a server: maybe bootstrap; if it leads, reconcile soon (coalesced)."""
        self.maybe_bootstrap(srv)
        if srv.state != LEADER:
            return
        st = self._st(srv.name)
        if st.reconcile_timer is not None and not st.reconcile_timer.cancelled:
            return

        def run() -> None:
            st.reconcile_timer = None
            self.reconcile(srv)

        st.reconcile_timer = node_timer(self.host.engine, srv.node, 0, run, "consul.reconcile")

    # reconcile --------------------------------------------------------------------------------

    def reconcile(self, srv: RaftServer) -> None:
        if srv.state != LEADER:
            return
        view = self.host.serf.view(srv.name)
        for name in sorted(view):
            member = view[name]
            for op in (self._config_op(srv, member), self._catalog_op(srv, member)):
                if op is not None and not srv.propose(op):
                    return  # no quorum right now; the next event or ReconcileInterval retries
        for name in sorted(srv.fsm.nodes):
            if name not in view and name != srv.name and not srv.propose(DeregisterNode(name)):
                return

    def _catalog_op(self, srv: RaftServer, m: MemberEntry) -> Op | None:
        fsm = srv.fsm
        row = fsm.nodes.get(m.name)
        check = fsm.checks.get(m.name)
        node_id = m.tag("id") or m.name
        if m.status == MemberStatus.ALIVE:
            if (
                row is None
                or row.address != m.addr
                or row.node_id != node_id
                or check is None
                or check.status != PASSING
            ):
                return RegisterNode(m.name, node_id, m.addr, PASSING, SERF_ALIVE_OUTPUT)
        elif m.status == MemberStatus.FAILED:
            if row is None:
                return RegisterNode(m.name, node_id, m.addr, CRITICAL, SERF_FAILED_OUTPUT)
            if check is None or check.status != CRITICAL:
                return SetCheck(m.name, CRITICAL, SERF_FAILED_OUTPUT)
        elif m.status == MemberStatus.LEFT and row is not None and m.name != srv.name:
            return DeregisterNode(m.name)
        return None

    def _config_op(self, srv: RaftServer, m: MemberEntry) -> Op | None:
        if not m.is_server or m.tag("dc") != srv.node.datacenter:
            return None
        config = srv.fsm.config
        current = srv.fsm.in_config(m.name)
        address = f"{m.addr}:{SERVER_RPC_PORT}"
        if m.status == MemberStatus.ALIVE:
            if current is None:
                peer = self.host.raft_peer(m.name)
                if peer is None or (peer.group is not None and peer.group is not srv.group):
                    return None  # Raft data of another cluster: the logs cannot be merged
                added = ConfigServer(m.tag("id") or m.name, m.name, address, False)
                return SetConfig((*config, added))
            if current.address != address:
                moved = ConfigServer(current.id, current.name, address, current.voter)
                return SetConfig(tuple(moved if s.name == m.name else s for s in config))
        elif m.status == MemberStatus.LEFT and current is not None and m.name != srv.name:
            return SetConfig(tuple(s for s in config if s.name != m.name))
        return None

    # autopilot --------------------------------------------------------------------------------

    def autopilot(self, srv: RaftServer) -> None:
        if srv.state != LEADER:
            return
        host = self.host
        now = host.engine.now
        st = self._st(srv.name)
        view = host.serf.view(srv.name)
        config = srv.fsm.config
        for server in config:
            member = view.get(server.name)
            peer = host.raft_peer(server.name)
            healthy = (
                member is not None
                and member.status == MemberStatus.ALIVE
                and peer is not None
                and (peer is srv or host.link_ok(srv.node, peer.node))
            )
            if healthy:
                st.healthy_since.setdefault(server.name, now)
            else:
                st.healthy_since.pop(server.name, None)
        stable = self.timings.server_stabilization_ms
        promoted = False
        for server in config:
            since = st.healthy_since.get(server.name)
            if not server.voter and since is not None and now - since >= stable:
                config = tuple(
                    ConfigServer(s.id, s.name, s.address, True) if s.name == server.name else s for s in config
                )
                if not srv.propose(SetConfig(config)):
                    return
                promoted = True
        if promoted or not self.timings.cleanup_dead_servers:
            return
        self._prune_dead(srv, view)

    def _prune_dead(self, srv: RaftServer, view: dict[str, MemberEntry]) -> None:
        registry = {s.name: s for s in srv.fsm.config}
        stale = [s for s in srv.fsm.config if s.name not in view and s.name != srv.name]
        failed = [
            s
            for s in srv.fsm.config
            if s.name in view and view[s.name].status != MemberStatus.ALIVE and s.name != srv.name
        ]
        for batch, remove_from_raft in (
            ([s for s in stale if not s.voter], True),
            ([s for s in stale if s.voter], True),
            ([s for s in failed if not s.voter], False),
            ([s for s in failed if s.voter], False),
        ):
            chosen = self._adjudicate([s for s in batch if s.name in registry], len(registry))
            for server in chosen:
                del registry[server.name]
                if remove_from_raft:
                    remaining = tuple(s for s in srv.fsm.config if s.name != server.name)
                    if not srv.propose(SetConfig(remaining)):
                        return
                else:
                    self.host.serf.force_leave(srv.node, server.name, prune=False)

    def _adjudicate(self, servers: list[ConfigServer], potential: int) -> list[ConfigServer]:
        removed = 0
        max_removal = (potential - 1) // 2
        chosen = []
        for server in servers:
            if potential - removed - 1 < self.timings.min_quorum:
                continue
            if server.voter and max_removal < 1:
                continue
            max_removal -= 1
            removed += 1
            chosen.append(server)
        return chosen
