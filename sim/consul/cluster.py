"""The simulated Consul cluster: nodes, faults, ground truth, and the hooks drivers subscribe to.

    cluster = build_cluster(seed=7, servers=3, clients=2)      # joined at t=0
    cluster.engine.run_for(30_000)                              # virtual ms
    cluster.crash(cluster.leaders()[0].node)
    cluster.subscribe(LeaderElected, lambda ev: ...)

Fault calls act at the engine's current virtual time; to put a fault later, schedule it:
`cluster.engine.schedule(5_000, lambda: cluster.partition([[a], [b, c]]))`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from tagjoin.core.model import MemberStatus
from tagjoin.sim.consul.catalog import ConfigServer, Entry, Fsm, SetConfig
from tagjoin.sim.consul.change_waiters import ChangeWaiters
from tagjoin.sim.consul.cluster_events import (
    Committed,
    EventBus,
    LeaderElected,
    LeadershipLost,
    MemberChanged,
    NetworkChanged,
    NodeAdded,
    NodeCrashed,
    NodeLeaving,
    NodePaused,
    NodeRestarted,
    NodeResumed,
    NodeShutdown,
    SimEvent,
)
from tagjoin.sim.consul.raft import LEADER, RaftServer, RaftTimings
from tagjoin.sim.consul.serf import MemberEntry, Serf, SerfTimings
from tagjoin.sim.consul.server_duties import ConsulTimings, ServerDuties
from tagjoin.sim.consul.watch_triggers import WatchTracker
from tagjoin.sim.kernel.engine import Engine
from tagjoin.sim.kernel.machine import Node, node_timer, release_deferred
from tagjoin.sim.kernel.network import Network

E = TypeVar("E", bound=SimEvent)

MAX_FORWARD_HOPS = 3


class NodeDown(Exception):
    """The agent process is not running (or is paused) and cannot act."""


@dataclass(frozen=True)
class ClusterConfig:
    raft_multiplier: int = 5
    pre_vote: bool = True
    datacenter: str = "dc1"
    consul_version: str = "1.20.1"
    latency_ms: tuple[int, int] = (1, 5)
    serf: SerfTimings = field(default_factory=SerfTimings)
    consul: ConsulTimings = field(default_factory=ConsulTimings)


@dataclass(frozen=True)
class LeaderInfo:
    node: str
    term: int
    group: str
    since: int | None
    responsive: bool  # False while paused: it still believes it leads


def node_name_for(ip: str) -> str:
    """EC2-style host name: 10.0.1.10 → ip-10-0-1-10."""
    return "ip-" + ip.replace(".", "-")


class Cluster:
    def __init__(self, seed: int = 0, config: ClusterConfig | None = None, *, engine: Engine | None = None) -> None:
        self.config = config or ClusterConfig()
        self.engine = engine or Engine(seed)
        self.timings = RaftTimings(self.config.raft_multiplier, self.config.pre_vote)
        self.net = Network(self.engine, self.config.latency_ms)
        self.bus = EventBus(self.engine.record)
        self.nodes: dict[str, Node] = {}
        self.raft: dict[str, RaftServer] = {}
        self._by_ip: dict[str, str] = {}
        self.serf = Serf(self, self.config.serf)
        self.duties = ServerDuties(self, self.config.consul)
        self.watches = WatchTracker(self)
        self.held = ChangeWaiters(self.engine)  # blocking queries held by the agents
        self._ids = self.engine.streams.get("node.id")

    # host interface for raft / serf -----------------------------------------------------------

    def node(self, name: str) -> Node | None:
        return self.nodes.get(name)

    def node_by_ip(self, ip: str) -> Node | None:
        name = self._by_ip.get(ip)
        return None if name is None else self.nodes[name]

    def raft_peer(self, name: str) -> RaftServer | None:
        return self.raft.get(name)

    def connected(self, a: str, b: str) -> bool:
        return self.net.connected(a, b)

    def lan_group(self, name: str) -> int:
        return self.net.group_of(name)

    def link_ok(self, a: Node, b: Node) -> bool:
        return a.responsive and b.responsive and self.net.connected(a.name, b.name)

    def hears(self, listener: Node, speaker: Node) -> bool:
        return self.link_ok(listener, speaker) and self.net.hears(listener.name, speaker.name)

    def rpc_ok(self, a: Node, b: Node) -> bool:
        """A TCP request from `a` to `b` and its answer both get through."""
        return self.hears(b, a) and self.hears(a, b)

    def raft_leader_elected(self, server: RaftServer) -> None:
        self.bus.publish(LeaderElected(self.engine.now, server.name, server.term, self._gid(server)))
        self.duties.leader_elected(server)
        self._changed()

    def raft_leadership_lost(self, server: RaftServer, reason: str) -> None:
        self.duties.leadership_lost(server)
        self.bus.publish(LeadershipLost(self.engine.now, server.name, server.term, reason))
        self._changed()

    def raft_changed(self, server: RaftServer) -> None:
        # A follower caught up (its stale reads answer differently) or lost or found its leader
        # (a read it forwards fails or goes elsewhere).
        self.held.poke()

    def raft_committed(self, server: RaftServer, entry: Entry) -> None:
        fsm = server.fsm
        kind = type(entry.op).__name__
        self.bus.publish(
            Committed(
                self.engine.now, server.name, self._gid(server), entry.index, kind, fsm.nodes_index, fsm.checks_index
            )
        )
        self._changed()

    def serf_changed(self, observer: Node, subject: str, entry: MemberEntry | None) -> None:
        status = None if entry is None else entry.status
        addr = "" if entry is None else entry.addr
        if self.bus.heard(MemberChanged):
            self.bus.publish(MemberChanged(self.engine.now, observer.name, subject, status, addr))
        elif self.bus.traces(MemberChanged):
            # n agents make n x n of these: with nobody listening, the trace line alone.
            self.bus.record(observer.name, MemberChanged.line(observer.name, subject, status, addr))
        # A client agent picks the server it forwards to from its member list.
        self.held.poke()
        srv = self.raft.get(observer.name)
        if srv is not None and observer.responsive:
            self.duties.member_event(srv)

    def serf_changed_many(self, changes: list[tuple[Node, str, MemberEntry]]) -> None:
        # A boot burst of n agents changes n x n client views: the trace counts them, one line a
        # batch, while a server's changes (which drive reconcile and the catalog) keep a line each.
        # Subscribers still hear every change, without a line of its own, so that listening does
        # not change the trace.
        bus = self.bus
        if bus.heard(MemberChanged):
            now = self.engine.now
            for obs, subj, e in changes:
                bus.notify(MemberChanged(now, obs.name, subj, e.status, e.addr))
        if bus.traces(MemberChanged):
            bus.record("", MemberChanged.batch_line(changes))
        self.held.poke()

    @staticmethod
    def _gid(server: RaftServer) -> str:
        return "" if server.group is None else server.group.gid

    # building ---------------------------------------------------------------------------------

    def _new_id(self) -> str:
        raw = f"{self._ids.getrandbits(128):032x}"
        return f"{raw[:8]}-{raw[8:12]}-4{raw[13:16]}-a{raw[17:20]}-{raw[20:]}"

    def _add(self, name: str, ip: str, server: bool, expect: int) -> Node:
        if name in self.nodes:
            raise ValueError(f"node {name!r} exists already")
        if ip in self._by_ip:
            raise ValueError(f"address {ip} is taken by {self._by_ip[ip]}")
        node = Node(name, self._new_id(), ip, server, self.config.datacenter, expect)
        self.nodes[name] = node
        self._by_ip[ip] = name
        self.bus.publish(NodeAdded(self.engine.now, name, ip, server))
        self.serf.start(node, rejoin=False)
        if server:
            srv = RaftServer(self, node)
            self.raft[name] = srv
            self.duties.register(node)
            srv.start()
            self.duties.maybe_bootstrap(srv)
        self._changed()
        return node

    def add_server(self, name: str, ip: str, *, bootstrap_expect: int = 3) -> Node:
        """A server agent, started but not joined (use `join`); `bootstrap_expect=0` never bootstraps."""
        return self._add(name, ip, True, bootstrap_expect)

    def add_client(self, name: str, ip: str) -> Node:
        return self._add(name, ip, False, 0)

    def subscribe(self, kind: type[E], callback: Callable[[E], None]) -> Callable[[], None]:
        return self.bus.subscribe(kind, callback)

    # faults and operations ----------------------------------------------------------------------

    def _node(self, name: str) -> Node:
        node = self.nodes.get(name)
        if node is None:
            raise KeyError(f"no simulated node named {name!r}")
        return node

    def _responsive(self, name: str) -> Node:
        node = self._node(name)
        if not node.responsive:
            raise NodeDown(f"{name} is {'paused' if node.up else 'down'}")
        return node

    def join(self, name: str, address: str) -> None:
        """`consul join ADDRESS` on `name`; raises serf.JoinFailed with Consul's error text."""
        self.serf.join(self._responsive(name), address)

    def joined(self, name: str, address: str) -> bool:
        """`join` from a responsive agent's own retry_join: whether it succeeded, and no error text."""
        node = self.nodes[name]
        return node.responsive and self.serf.try_join(node, address) is None

    def force_leave(self, issuer: str, subject: str, *, prune: bool = False) -> None:
        """`consul force-leave [-prune] SUBJECT` on `issuer`; raises serf.NoSuchMember."""
        self.serf.force_leave(self._responsive(issuer), subject, prune=prune)

    def leave(self, name: str) -> None:
        """Graceful leave then shutdown, as PUT /v1/agent/leave (agent/consul/server.go Leave)."""
        node = self._responsive(name)
        node.leaving = True
        self.bus.publish(NodeLeaving(self.engine.now, name))
        srv = self.raft.get(name)
        consul = self.config.consul

        def shutdown() -> None:
            self._stop(node)
            node.has_left = True
            self.bus.publish(NodeShutdown(self.engine.now, name))
            self._reassess()

        def after_left() -> None:
            node_timer(self.engine, node, consul.leave_propagate_ms + consul.leave_drain_ms, shutdown, "shutdown")

        def serf_phase(_transferred: bool = True) -> None:
            node_timer(self.engine, node, 0, lambda: self.serf.leave(node, after_left), "serf.leave-start")

        def transfer_done(ok: bool) -> None:
            if not ok and srv is not None and srv.state == LEADER:
                srv.propose(SetConfig(tuple(s for s in srv.fsm.config if s.name != name)))
            serf_phase()

        if srv is not None and srv.state == LEADER and len(srv.fsm.voters()) > 1:
            if srv.transfer_leadership(transfer_done) is None:
                transfer_done(False)
            return
        serf_phase()

    def _stop(self, node: Node) -> None:
        node.up = False
        node.paused = False
        node.leaving = False
        node.epoch += 1
        node.deferred.clear()
        srv = self.raft.get(node.name)
        if srv is not None:
            srv.stop()

    def transfer_leader(self, name: str, to: str | None = None) -> str | None:
        """`consul operator raft transfer-leader [-id]` on leader `name` (Consul >= 1.15,
        agent/consul/operator_raft_endpoint.go RaftLeadershipTransfer → raft.LeadershipTransfer or
        LeadershipTransferToServer). Returns the target, or None if no transfer started."""
        srv = self.raft.get(name)
        if srv is None or srv.state != LEADER or not srv.node.responsive:
            return None
        return srv.transfer_leadership(lambda _ok: None, to=to)

    def crash(self, name: str) -> None:
        """Kill the agent (kill -9 / instance lost): no leave, state on disk survives."""
        node = self._node(name)
        if not node.up:
            return
        self._stop(node)
        self.bus.publish(NodeCrashed(self.engine.now, name))
        self._reassess()

    def restart(self, name: str, ip: str | None = None) -> None:
        """Start a stopped agent again, optionally on a new address (the caller picks it)."""
        node = self._node(name)
        if node.up:
            raise ValueError(f"{name} is running; crash or leave it first")
        old_ip = node.ip
        if ip is not None and ip != old_ip:
            if ip in self._by_ip:
                raise ValueError(f"address {ip} is taken by {self._by_ip[ip]}")
            del self._by_ip[old_ip]
            self._by_ip[ip] = name
            node.ip = ip
        node.up = True
        node.paused = False
        node.epoch += 1
        rejoin = not node.has_left
        self.watches.forget(name)
        self.bus.publish(NodeRestarted(self.engine.now, name, node.ip, old_ip))
        srv = self.raft.get(name)
        if srv is not None:
            srv.start()
        self.serf.start(node, rejoin=rejoin)
        node.has_left = False
        if srv is not None:
            self.duties.maybe_bootstrap(srv)
        self._reassess()

    def pause(self, name: str, duration_ms: int, *, alone: bool = False) -> None:
        """Stop-the-world pause: the process does nothing, then resumes with its timers late.

        `alone`: the agent process alone stops (SIGSTOP) while the machine runs on: the node's
        other processes keep running, and messages sent to the agent wait in its sockets."""
        node = self._responsive(name)
        node.paused = True
        node.paused_alone = alone
        epoch = node.epoch
        self.bus.publish(NodePaused(self.engine.now, name, duration_ms))
        self._reassess()

        def wake() -> None:
            if node.epoch == epoch and node.paused:
                self.resume(name)

        self.engine.schedule(duration_ms, wake, "pause-end", name)

    def resume(self, name: str) -> None:
        node = self._node(name)
        if not (node.up and node.paused):
            return
        node.paused = False
        node.paused_alone = False
        release_deferred(self.engine, node)
        self.bus.publish(NodeResumed(self.engine.now, name))
        self._reassess()
        self.serf.resync(node)

    def partition(self, groups: Sequence[Iterable[str]]) -> None:
        """Split the LAN: nodes in different groups cannot talk; unlisted nodes form one more group."""
        for group in groups:
            for name in group:
                self._node(name)
        normalised = self.net.partition(groups)
        self.bus.publish(NetworkChanged(self.engine.now, normalised))
        self._reassess()

    def one_way_partition(self, listener: str, speakers: Iterable[str]) -> None:
        """`listener` stops hearing `speakers` while they still hear it; `heal` ends it."""
        self._node(listener)
        self.net.one_way(listener, [self._node(s).name for s in speakers])
        self.bus.publish(NetworkChanged(self.engine.now, self.net.groups))
        self._reassess()

    def cut(self, a: str, b: str) -> None:
        """A partial partition: `a` and `b` lose each other while both still reach everyone else."""
        self.net.cut(self._node(a).name, self._node(b).name)
        self.bus.publish(NetworkChanged(self.engine.now, self.net.groups))
        self._reassess()

    def lossy(self, name: str, peers: Iterable[str], rate: float) -> None:
        """Every Raft message between `name` and each of `peers` is lost with probability `rate`."""
        self.net.lossy(self._node(name).name, [self._node(p).name for p in peers], rate)

    def isolate(self, name: str) -> None:
        self.partition([[name]])

    def heal(self) -> None:
        self.net.heal()
        self.bus.publish(NetworkChanged(self.engine.now, ()))
        self._reassess()

    def _reassess(self) -> None:
        self.serf.reassess(self.nodes)
        self._changed()

    def _changed(self) -> None:
        self.watches.poke()
        self.held.poke()

    # ground truth -------------------------------------------------------------------------------

    def servers(self) -> list[str]:
        return sorted(self.raft)

    def clients(self) -> list[str]:
        return sorted(name for name, node in self.nodes.items() if not node.server)

    def leaders(self) -> list[LeaderInfo]:
        """Every server that currently believes it is the leader (paused ones included)."""
        out = []
        for name in sorted(self.raft):
            srv = self.raft[name]
            if srv.state == LEADER:
                out.append(LeaderInfo(name, srv.term, self._gid(srv), srv.leader_since, srv.node.responsive))
        return out

    def leader(self) -> str | None:
        """The leader with the highest term among responsive ones, or None."""
        live = [info for info in self.leaders() if info.responsive]
        return max(live, key=lambda info: info.term).node if live else None

    def connected_groups(self) -> list[tuple[str, ...]]:
        """Responsive nodes grouped by who can reach whom right now."""
        groups: dict[int, list[str]] = {}
        for name in sorted(self.nodes):
            if self.nodes[name].responsive:
                groups.setdefault(self.net.group_of(name), []).append(name)
        return [tuple(members) for _, members in sorted(groups.items())]

    def leaders_by_group(self) -> dict[tuple[str, ...], list[LeaderInfo]]:
        leaders = {info.node: info for info in self.leaders() if info.responsive}
        return {group: [leaders[n] for n in group if n in leaders] for group in self.connected_groups()}

    def raft_configuration(self, name: str) -> tuple[ConfigServer, ...]:
        """The configuration server `name` has applied (its own view)."""
        return self.raft[name].fsm.config

    def configurations(self) -> dict[str, tuple[str, ...]]:
        """Voters per server, as each server sees its configuration."""
        return {name: tuple(sorted(self.raft[name].fsm.voters())) for name in sorted(self.raft)}

    def members(self, observer: str) -> list[MemberEntry]:
        return self.serf.members(observer)

    def member_status(self, observer: str, subject: str) -> MemberStatus | None:
        return self.serf.status(observer, subject)

    def alive_members(self, observer: str) -> list[str]:
        return [m.name for m in self.serf.members(observer) if m.status == MemberStatus.ALIVE]

    def term(self, name: str) -> int:
        return self.raft[name].term

    def known_leader(self, name: str) -> str | None:
        """Whom server `name` currently believes leads (what its /v1/status/leader shows)."""
        return self.raft[name].leader

    def group_of(self, name: str) -> str | None:
        srv = self.raft.get(name)
        return None if srv is None or srv.group is None else srv.group.gid

    def catalog(self, name: str) -> Fsm:
        """Server `name`'s applied catalog (read-only by convention)."""
        return self.raft[name].fsm

    def is_up(self, name: str) -> bool:
        return self._node(name).up

    def is_responsive(self, name: str) -> bool:
        return self._node(name).responsive

    # read paths (used by the agent API and the watches) -----------------------------------------

    def rpc_server(self, name: str) -> tuple[RaftServer | None, str]:
        """The server an agent's RPCs go to: itself if a server, else a reachable known server."""
        node = self._node(name)
        if node.server:
            return self.raft[name], ""
        # The servers among its members, in name order, looked up by name: a client's view holds
        # every member of the pool, and this runs for every agent whenever a watch is evaluated.
        view = self.serf.view(name)
        known = [
            m
            for m in (view.get(server) for server in sorted(self.raft))
            if m is not None and m.is_server and m.status == MemberStatus.ALIVE
        ]
        if not known:
            return None, "No known Consul servers"
        # Consul's client router sticks to one shuffled server until it fails; a per-client
        # rotation of the name order stands in for the shuffle and stays deterministic.
        offset = int(node.node_id[:8], 16) % len(known)
        for m in known[offset:] + known[:offset]:
            srv = self.raft[m.name]
            if self.rpc_ok(node, srv.node):
                return srv, ""
        first = known[offset]
        return None, f"rpc error getting client: failed to get conn: dial tcp {first.addr}:8300: i/o timeout"

    def leader_for(self, srv: RaftServer) -> RaftServer | None:
        """Follow `srv`'s idea of the leader (forwarding), as an RPC would, or None."""
        current = srv
        for _ in range(MAX_FORWARD_HOPS):
            if current.state == LEADER:
                return current
            if current.leader is None:
                return None
            nxt = self.raft.get(current.leader)
            if nxt is None or not self.rpc_ok(current.node, nxt.node):
                return None
            current = nxt
        return current if current.state == LEADER else None

    def read_source(self, name: str, mode: str) -> tuple[RaftServer | None, str]:
        """Which server answers a catalog read on agent `name` in `mode` (default/stale/consistent)."""
        srv, error = self.rpc_server(name)
        if srv is None:
            return None, error
        if mode == "stale":
            return srv, ""
        leader = self.leader_for(srv)
        if leader is None:
            return None, "No cluster leader"
        if mode == "consistent" and not leader.can_reach_quorum():
            return None, "leadership lost while committing log"
        if mode == "consistent" and not leader.ready_for_consistent_reads():
            return None, "Not ready to serve consistent reads"
        return leader, ""


def build_cluster(
    seed: int = 0,
    *,
    servers: int = 3,
    clients: int = 0,
    config: ClusterConfig | None = None,
    bootstrap_expect: int | None = None,
    join: bool = True,
) -> Cluster:
    """Servers at 10.0.<i>.10 and clients at 10.0.<i>.<20+k>, all joined through the first server."""
    cluster = Cluster(seed, config)
    expect = servers if bootstrap_expect is None else bootstrap_expect
    server_names = []
    for i in range(servers):
        ip = f"10.0.{i + 1}.10"
        server_names.append(cluster.add_server(node_name_for(ip), ip, bootstrap_expect=expect).name)
    for k in range(clients):
        ip = f"10.0.{k % 3 + 1}.{20 + k // 3}"
        cluster.add_client(node_name_for(ip), ip)
    if join and server_names:
        first_ip = cluster.nodes[server_names[0]].ip
        for name in sorted(cluster.nodes):
            if name != server_names[0]:
                cluster.join(name, first_ip)
    return cluster
