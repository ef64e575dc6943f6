"""Raft leader election as hashicorp/raft does it, with Consul's timings.

Modelled faithfully: terms; follower heartbeat timers in [HT, 2HT); candidate election timers in
[ET, 2ET); pre-vote (no term bump until a majority would vote); leader stickiness (a server that knows
a leader refuses votes unless the request is a leadership transfer); one vote per term; the log
up-to-date check; quorum over the voters of the latest configuration; the leader lease check; and
leadership transfer (TimeoutNow, no pre-vote).

Simplified, on purpose: replication. A leader's heartbeat is one timer that touches every reachable
follower directly (AppendEntries at ~zero latency against a 0.5 s tick), and an entry is committed
synchronously when a quorum is reachable at that instant, or not at all. A deposed leader's
uncommitted writes are thus dropped instead of appended and later truncated — invisible to readers
either way. Because only committed entries exist, each Raft cluster keeps one shared log
(`RaftGroup.log`) and each server holds the prefix it has applied. Vote traffic goes through the
network with latency, so split votes can happen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from tagjoin.sim.consul.catalog import ConfigServer, Entry, Fsm, Noop, Op, SetConfig
from tagjoin.sim.kernel.engine import Engine
from tagjoin.sim.kernel.machine import Node, NodeTimer, node_timer
from tagjoin.sim.kernel.network import Network

FOLLOWER = "Follower"
CANDIDATE = "Candidate"
LEADER = "Leader"
SHUTDOWN = "Shutdown"

MIN_LEASE_CHECK_MS = 10  # hashicorp/raft minCheckInterval


@dataclass(frozen=True)
class RaftTimings:
    """hashicorp/raft defaults scaled by Consul's `performance.raft_multiplier` (default 5)."""

    multiplier: int = 5
    pre_vote: bool = True

    @property
    def heartbeat_ms(self) -> int:
        return 1000 * self.multiplier

    @property
    def election_ms(self) -> int:
        return 1000 * self.multiplier

    @property
    def lease_ms(self) -> int:
        return 500 * self.multiplier


class RaftGroup:
    """One Raft cluster (one bootstrap): its committed log, shared by all its members."""

    def __init__(self, gid: str, servers: tuple[ConfigServer, ...]) -> None:
        self.gid = gid
        self.log: list[Entry] = [Entry(1, 1, SetConfig(servers))]

    @property
    def last_index(self) -> int:
        return len(self.log)


class RaftHost(Protocol):
    engine: Engine
    net: Network
    timings: RaftTimings

    def raft_peer(self, name: str) -> RaftServer | None: ...

    def link_ok(self, a: Node, b: Node) -> bool: ...

    def hears(self, listener: Node, speaker: Node) -> bool: ...

    def raft_leader_elected(self, server: RaftServer) -> None: ...

    def raft_leadership_lost(self, server: RaftServer, reason: str) -> None: ...

    def raft_committed(self, server: RaftServer, entry: Entry) -> None: ...

    def raft_changed(self, server: RaftServer) -> None: ...


class RaftServer:
    """The Raft state of one Consul server; survives crashes (it is what the data dir holds)."""

    def __init__(self, host: RaftHost, node: Node) -> None:
        self.host = host
        self.node = node
        self.name = node.name
        self.group: RaftGroup | None = None
        self.fsm = Fsm()
        self.term = 0
        self.voted_term = 0
        self.voted_for: str | None = None
        self.state = SHUTDOWN
        self.leader: str | None = None
        self.last_contact: int | None = None
        self.leader_since: int | None = None
        # When this leader may serve ?consistent reads: Consul's leaderLoop commits a barrier in
        # the new term and only then, at the end of establishLeadership, calls
        # setConsistentReadReady (agent/consul/leader.go). Until then: "Not ready to serve
        # consistent reads".
        self.consistent_ready_at: int | None = None
        self._barrier_rng = host.engine.streams.get("raft.barrier", node.name)
        self._rng = host.engine.streams.get("raft.timer", node.name)
        self._timer: NodeTimer | None = None  # follower heartbeat check or candidate election timeout
        self._hb: NodeTimer | None = None
        self._lease: NodeTimer | None = None
        self._transfer_timer: NodeTimer | None = None
        self._campaign_id = 0
        self._prevote = False
        self._granted: set[str] = set()
        self._contact: dict[str, int] = {}
        self.transferring = False
        self._on_transfer_done: Callable[[bool], None] | None = None

    # lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Process start: follower with no known leader, timers of the new incarnation."""
        self._cancel_all()
        self.state = FOLLOWER
        self.leader = None
        self.last_contact = None
        self.leader_since = None
        self.consistent_ready_at = None
        self.transferring = False
        self._arm_follower()

    def stop(self) -> None:
        """Crash or shutdown; persistent state (term, vote, log) stays."""
        was_leader = self.state == LEADER
        self._cancel_all()
        self.state = SHUTDOWN
        self.leader = None
        self.transferring = False
        self._on_transfer_done = None
        if was_leader:
            self.host.raft_leadership_lost(self, "shutdown")

    def wipe(self) -> None:
        """A stopped server's data dir emptied: what hashicorp/raft keeps in its stable store
        (CurrentTerm, LastVoteTerm, LastVoteCand: raft.go `setCurrentTerm`, `persistVote`), its log
        and snapshots are gone, so the next start is a server that never was in a cluster."""
        if self.state != SHUTDOWN:
            raise ValueError(f"{self.name} is running; stop it before emptying its data dir")
        self.group = None
        self.fsm = Fsm()
        self.term = 0
        self.voted_term = 0
        self.voted_for = None
        self._contact = {}

    def bootstrap(self, group: RaftGroup) -> None:
        """raft.BootstrapCluster: the configuration becomes entry 1, the term becomes 1."""
        self.group = group
        self._catch_up(group, 1)
        self.term = max(self.term, 1)
        self.host.engine.record(self.name, f"raft bootstrap group={group.gid}")

    # queries --------------------------------------------------------------------------------

    @property
    def now(self) -> int:
        return self.host.engine.now

    def is_voter(self) -> bool:
        return self.name in self.fsm.voters()

    def quorum(self, voters: frozenset[str] | None = None) -> int:
        return len(self.fsm.voters() if voters is None else voters) // 2 + 1

    def last_contact_ms(self) -> int | None:
        """ms since the leader was last heard from (0 on the leader, None if never)."""
        if self.state == LEADER:
            return 0
        return None if self.last_contact is None else self.now - self.last_contact

    def heard_from(self, name: str) -> int | None:
        """When this leader last reached `name` (virtual ms), as its lease check counts it."""
        return self._contact.get(name) if self.state == LEADER else None

    def ready_for_consistent_reads(self) -> bool:
        """Consul's isReadyForConsistentReads: leader, and its barrier is committed."""
        ready = self.consistent_ready_at
        return self.state == LEADER and ready is not None and self.now >= ready and self.can_reach_quorum()

    def can_reach_quorum(self) -> bool:
        """What VerifyLeader would conclude right now: a quorum acknowledges this leader."""
        if self.state != LEADER or self.group is None:
            return False
        voters = self.fsm.voters()
        acks = 1 if self.name in voters else 0
        for name in voters:
            if name == self.name:
                continue
            peer = self._peer_in_reach(name)
            if peer is not None and peer.term <= self.term:
                acks += 1
        return acks >= self.quorum(voters)

    # timers ---------------------------------------------------------------------------------

    def _timeout(self, base_ms: int) -> int:
        return base_ms + self._rng.randrange(base_ms)  # hashicorp/raft randomTimeout: [T, 2T)

    def _arm_follower(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        delay = self._timeout(self.host.timings.heartbeat_ms)
        self._timer = node_timer(self.host.engine, self.node, delay, self._on_heartbeat_timeout, "raft.hb-check")

    def _cancel_all(self) -> None:
        for timer in (self._timer, self._hb, self._lease, self._transfer_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._hb = self._lease = self._transfer_timer = None

    def _on_heartbeat_timeout(self) -> None:
        self._arm_follower()
        hb = self.host.timings.heartbeat_ms
        if self.last_contact is not None and self.now - self.last_contact < hb:
            return
        self._set_leader(None)
        if not self.fsm.config or not self.is_voter():
            return  # "no known peers" / "not part of stable configuration": no election
        self._campaign(transfer=False)

    # elections ------------------------------------------------------------------------------

    def _set_leader(self, leader: str | None) -> None:
        if leader != self.leader:
            self.leader = leader
            self.host.raft_changed(self)  # where this server forwards to moved

    def _campaign(self, *, transfer: bool) -> None:
        if self.state != CANDIDATE:
            self.host.engine.record(self.name, f"raft candidate term={self.term + 1}")
        self.state = CANDIDATE
        self._set_leader(None)
        self._campaign_id += 1
        if self._timer is not None:
            self._timer.cancel()
        delay = self._timeout(self.host.timings.election_ms)
        self._timer = node_timer(self.host.engine, self.node, delay, self._on_election_timeout, "raft.election")
        # With pre-vote (hashicorp/raft >= v1.7.0, raft.go preElectSelf; Consul >= 1.20) the term
        # is bumped only once a majority would vote; without it (electSelf) every election
        # timeout of a cut-off server bumps its term.
        self._round(prevote=self.host.timings.pre_vote and not transfer, transfer=transfer)

    def _on_election_timeout(self) -> None:
        if self.state == CANDIDATE:
            self._campaign(transfer=False)

    def _round(self, *, prevote: bool, transfer: bool) -> None:
        self._prevote = prevote
        if not prevote:
            self.term += 1
            self.voted_term, self.voted_for = self.term, self.name
        self._granted = {self.name}
        if self._tally():
            return
        req_term = self.term + 1 if prevote else self.term
        campaign = self._campaign_id
        last_index, last_term = self.fsm.index, self.fsm.last_term
        group = self.group
        for server in self.fsm.config:
            if not server.voter or server.name == self.name:
                continue
            peer = self.host.raft_peer(server.name)
            if peer is None:
                continue

            def deliver(peer: RaftServer = peer) -> None:
                peer._on_vote_request(self, group, req_term, last_index, last_term, prevote, transfer, campaign)

            self.host.net.send(self.node, peer.node, deliver, "raft.prevote" if prevote else "raft.vote")

    def _tally(self) -> bool:
        voters = self.fsm.voters()
        if len(self._granted & voters) < self.quorum(voters):
            return False
        if self._prevote:
            self._round(prevote=False, transfer=False)
        else:
            self._become_leader()
        return True

    def _accepts(self, group: RaftGroup | None) -> bool:
        # A server without Raft data takes part in any cluster's RPCs (hashicorp/raft grants votes
        # when its configuration is empty); servers of two bootstraps never talk Raft together.
        return self.group is None or group is None or self.group is group

    def _on_vote_request(
        self,
        cand: RaftServer,
        group: RaftGroup | None,
        term: int,
        last_index: int,
        last_term: int,
        prevote: bool,
        transfer: bool,
        campaign: int,
    ) -> None:
        if not self._accepts(group) or self.state == SHUTDOWN:
            return
        granted = self._decide_vote(cand.name, term, last_index, last_term, prevote, transfer)
        my_term = self.term

        def reply() -> None:
            cand._on_vote_response(self.name, my_term, granted, prevote, campaign)

        self.host.net.send(self.node, cand.node, reply, "raft.vote-reply")

    def _decide_vote(
        self, cand: str, term: int, last_index: int, last_term: int, prevote: bool, transfer: bool
    ) -> bool:
        config = self.fsm.config
        if config and not any(s.name == cand and s.voter for s in config):
            return False
        # hashicorp/raft raft.go requestVote: a known leader rejects the request before the term is
        # compared, so a lone campaigner's newer term is not adopted by the leader's followers,
        # nor by the leader itself; the leader learns it only from an answer (see _heartbeat).
        if self.leader is not None and self.leader != cand and not transfer:
            return False  # leader stickiness
        if term < self.term:
            return False
        log_ok = (last_term, last_index) >= (self.fsm.last_term, self.fsm.index)
        if prevote:
            return log_ok
        if term > self.term:
            self._step_down(term, "vote request with a newer term")
        if self.voted_term == term and self.voted_for is not None:
            return self.voted_for == cand
        if not log_ok:
            return False
        self.voted_term, self.voted_for = term, cand
        self.last_contact = self.now
        return True

    def _on_vote_response(self, voter: str, term: int, granted: bool, prevote: bool, campaign: int) -> None:
        if self.state != CANDIDATE or campaign != self._campaign_id or prevote != self._prevote:
            return
        if term > self.term:
            self._step_down(term, "newer term in a vote reply")
            return
        if granted:
            self._granted.add(voter)
            self._tally()

    def _on_timeout_now(self, leader: RaftServer) -> None:
        if self.state == SHUTDOWN or not self._accepts(leader.group):
            return
        self.host.engine.record(self.name, f"raft timeout-now from={leader.name}")
        self._campaign(transfer=True)

    # leadership -----------------------------------------------------------------------------

    def _become_leader(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.state = LEADER
        self._set_leader(self.name)
        self.leader_since = self.now
        # A barrier is one replication round to a quorum plus the FSM catching up; establishing
        # leadership (autopilot, sessions, ACL bootstrap) adds more. Tens of ms, with a tail.
        self.consistent_ready_at = self.now + round(self._barrier_rng.triangular(5, 400, 30))
        self.transferring = False
        self._contact = {s.name: self.now for s in self.fsm.config if s.name != self.name}
        self.host.engine.record(self.name, f"raft leader term={self.term}")
        self._heartbeat()
        if self.state != LEADER:
            return
        self._lease = node_timer(
            self.host.engine, self.node, self.host.timings.lease_ms, self._check_lease, "raft.lease"
        )
        self.propose(Noop())
        if self.state == LEADER:
            self.host.raft_leader_elected(self)

    def _step_down(self, term: int | None, reason: str) -> None:
        if term is not None and term > self.term:
            self.term = term
        was_leader = self.state == LEADER
        if self.state == FOLLOWER and not was_leader:
            return
        for timer in (self._hb, self._lease, self._transfer_timer):
            if timer is not None:
                timer.cancel()
        self._hb = self._lease = self._transfer_timer = None
        self.state = FOLLOWER
        self.transferring = False
        if self.leader == self.name:
            self._set_leader(None)
        if was_leader:
            self.last_contact = self.now  # so it does not report stale data as if just deposed
            self.leader_since = None
            self.host.engine.record(self.name, f"raft step-down term={self.term} ({reason})")
        self._arm_follower()
        if was_leader:
            self.host.raft_leadership_lost(self, reason)
            done, self._on_transfer_done = self._on_transfer_done, None
            if done is not None:
                done(True)

    def _peer_in_reach(self, name: str, *, both_ways: bool = True) -> RaftServer | None:
        """The peer, if this server's RPC reaches it (and, with `both_ways`, its answer comes back)."""
        peer = self.host.raft_peer(name)
        if peer is None or peer.state == SHUTDOWN or not self.host.link_ok(self.node, peer.node):
            return None
        if not self.host.hears(peer.node, self.node):
            return None
        if both_ways and not self.host.hears(self.node, peer.node):
            return None
        if not peer._accepts(self.group):
            return None
        return peer

    def _heartbeat(self) -> None:
        if self.state != LEADER:
            return
        for server in self.fsm.config:
            if server.name == self.name:
                continue
            # Over a one-way cut the follower may get the AppendEntries while its answer is lost
            # (a pooled connection, hashicorp/raft net_transport.go): it keeps following, but
            # the leader's lease does not count it.
            peer = self._peer_in_reach(server.name, both_ways=False)
            if peer is None or self.host.net.lost(peer.name, self.name):
                continue
            answered = self.host.hears(self.node, peer.node) and not self.host.net.lost(self.name, peer.name)
            if peer.term > self.term:
                # hashicorp/raft replication.go replicateTo: `resp.Term > req.Term` →
                # handleStaleTerm → the leader steps down. Without pre-vote (Consul <= 1.19) this
                # is how a rejoining server whose lone campaigns inflated its term deposes a
                # healthy leader, and a second election follows.
                if answered:
                    self._step_down(peer.term, "follower has a newer term")
                    return
                continue  # raft.go appendEntries rejects the older term; the answer never arrives
            peer._on_append(self)
            if answered:
                self._contact[server.name] = self.now
        hb = self.host.timings.heartbeat_ms // 10
        self._hb = node_timer(self.host.engine, self.node, self._timeout(hb), self._heartbeat, "raft.heartbeat")

    def _on_append(self, leader: RaftServer) -> None:
        """AppendEntries from `leader` (already known to have a term >= ours)."""
        if leader.term > self.term or self.state != FOLLOWER:
            self.term = max(self.term, leader.term)
            if self.state == LEADER:
                self._step_down(None, "append entries from another leader")
            elif self.state == CANDIDATE:
                self.state = FOLLOWER
                self._arm_follower()
        if self.group is None and leader.group is not None:
            self.group = leader.group
        self._set_leader(leader.name)
        self.last_contact = self.now
        if leader.group is not None:
            self._catch_up(leader.group, leader.fsm.index)

    def _catch_up(self, group: RaftGroup, upto: int) -> None:
        # Only up to what the sending leader itself holds: a deposed leader must not hand out
        # entries that a newer leader committed behind its back.
        log = group.log
        fsm = self.fsm
        upto = min(upto, len(log))
        if fsm.index >= upto:
            return
        while fsm.index < upto:
            fsm.apply(log[fsm.index])
        self.host.raft_changed(self)

    def _check_lease(self) -> None:
        if self.state != LEADER:
            return
        lease = self.host.timings.lease_ms
        voters = self.fsm.voters()
        contacted = 1 if self.name in voters else 0
        max_diff = 0
        for name in voters:
            if name == self.name:
                continue
            seen = self._contact.get(name)
            if seen is None:
                continue
            diff = self.now - seen
            if diff <= lease:
                contacted += 1
                max_diff = max(max_diff, diff)
        if contacted < self.quorum(voters):
            self._step_down(None, "failed to contact quorum of nodes")
            return
        delay = max(lease - max_diff, MIN_LEASE_CHECK_MS)
        self._lease = node_timer(self.host.engine, self.node, delay, self._check_lease, "raft.lease")

    # writes ---------------------------------------------------------------------------------

    def propose(self, op: Op) -> bool:
        """Commit `op` if this leader can reach a quorum now; False (nothing written) otherwise."""
        group = self.group
        if self.state != LEADER or group is None or self.transferring:
            return False
        if self.fsm.index != group.last_index:
            self._step_down(None, "log behind the cluster")  # cannot happen to a legitimate leader
            return False
        new_config = op.servers if isinstance(op, SetConfig) else self.fsm.config
        voters = frozenset(s.name for s in new_config if s.voter)
        targets = [s.name for s in self.fsm.config]
        targets += [s.name for s in new_config if s.name not in targets]
        acks = 1 if self.name in voters else 0
        reached: list[RaftServer] = []
        for name in targets:
            if name == self.name:
                continue
            peer = self._peer_in_reach(name)
            if peer is None:
                continue
            if peer.term > self.term:
                self._step_down(peer.term, "follower has a newer term")
                return False
            reached.append(peer)
            if name in voters:
                acks += 1
        if acks < len(voters) // 2 + 1:
            return False
        entry = Entry(group.last_index + 1, self.term, op)
        group.log.append(entry)
        self.fsm.apply(entry)
        for peer in reached:
            peer._on_append(self)
            self._contact[peer.name] = self.now
        self.host.raft_committed(self, entry)
        if isinstance(op, SetConfig) and self.state == LEADER and self.name not in voters:
            self._step_down(None, "removed from the configuration")
        return True

    def transfer_leadership(self, on_done: Callable[[bool], None], *, to: str | None = None) -> str | None:
        """raft.LeadershipTransfer: catch the most up-to-date voter up and send it TimeoutNow.

        With `to`, that voter only (raft.LeadershipTransferToServer, api.go). `on_done(True)` runs
        when this server stops leading, `on_done(False)` after ElectionTimeout if it still leads.
        Returns the chosen target, or None if no voter is reachable.
        """
        if self.state != LEADER:
            return None
        best: RaftServer | None = None
        for server in self.fsm.config:
            if not server.voter or server.name == self.name or (to is not None and server.name != to):
                continue
            peer = self._peer_in_reach(server.name)
            if peer is not None and (best is None or peer.fsm.index > best.fsm.index):
                best = peer
        if best is None:
            return None
        self.transferring = True
        best._on_append(self)
        target = best
        self.host.net.send(self.node, target.node, lambda: target._on_timeout_now(self), "raft.timeout-now")
        term = self.term

        def expire() -> None:
            self._transfer_timer = None
            if self.state == LEADER and self.term == term and self._on_transfer_done is on_done:
                self.transferring = False
                self._on_transfer_done = None
                on_done(False)

        self._transfer_timer = node_timer(
            self.host.engine, self.node, self.host.timings.election_ms, expire, "raft.transfer-timeout"
        )
        self._on_transfer_done = on_done
        return target.name
