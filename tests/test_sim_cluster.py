"""The simulated cluster: Raft elections, Serf membership, the catalog, faults and hooks."""

from __future__ import annotations

import pytest

from tagjoin.core.model import MemberStatus
from tagjoin.sim.consul.catalog import CRITICAL, PASSING, SERF_FAILED_OUTPUT
from tagjoin.sim.consul.cluster import Cluster, ClusterConfig, build_cluster
from tagjoin.sim.consul.cluster_events import (
    LeaderElected,
    LeadershipLost,
    MemberChanged,
    NodeCrashed,
    NodeRestarted,
    NodeShutdown,
    WatchFired,
)
from tagjoin.sim.consul.raft import CANDIDATE, FOLLOWER, LEADER
from tagjoin.sim.consul.serf import JoinFailed, NoSuchMember
from tagjoin.sim.consul.server_duties import ConsulTimings

HT5 = 5000  # heartbeat = election timeout at raft_multiplier 5


def booted(seed: int, **kwargs: object) -> Cluster:
    cluster = build_cluster(seed, **kwargs)  # type: ignore[arg-type]
    cluster.engine.run_for(4 * cluster.timings.heartbeat_ms)
    assert cluster.leader() is not None
    return cluster


def leader_of(cluster: Cluster) -> str:
    leader = cluster.leader()
    assert leader is not None
    return leader


def others(cluster: Cluster, name: str) -> list[str]:
    return [n for n in cluster.servers() if n != name]


@pytest.mark.parametrize("multiplier", [5, 1])
@pytest.mark.parametrize("seed", range(5))
def test_three_servers_elect_exactly_one_leader_in_the_expected_window(multiplier: int, seed: int) -> None:
    cluster = build_cluster(seed, servers=3, config=ClusterConfig(raft_multiplier=multiplier))
    elected: list[LeaderElected] = []
    cluster.subscribe(LeaderElected, elected.append)
    ht = cluster.timings.heartbeat_ms
    assert ht == 1000 * multiplier and cluster.timings.lease_ms == 500 * multiplier
    cluster.engine.run_for(6 * ht)
    assert len(elected) == 1
    # Bootstrap happens within gossip time; the first follower timer fires in [HT, 2HT).
    assert ht <= elected[0].t <= 2 * ht + 1000
    leaders = cluster.leaders()
    assert len(leaders) == 1 and leaders[0].term == 2
    for name in cluster.servers():
        assert cluster.known_leader(name) == leaders[0].node
        assert cluster.term(name) == 2
    assert len({cluster.group_of(n) for n in cluster.servers()}) == 1


@pytest.mark.parametrize("seed", range(4))
def test_leader_crash_elects_a_new_leader_with_a_higher_term(seed: int) -> None:
    cluster = booted(seed)
    old = leader_of(cluster)
    old_term = cluster.term(old)
    elected: list[LeaderElected] = []
    voters_at_election: list[tuple[str, ...]] = []

    def on_elected(ev: LeaderElected) -> None:
        elected.append(ev)
        voters_at_election.append(cluster.configurations()[ev.node_name])

    cluster.subscribe(LeaderElected, on_elected)
    crashed_at = cluster.engine.now
    cluster.crash(old)
    cluster.engine.run_for(5 * HT5)
    assert elected, "no new leader"
    new = elected[0]
    assert new.node_name != old and new.term > old_term
    # Followers notice after [HT, 2HT) of silence; stickiness may cost one more election timeout.
    assert HT5 <= new.t - crashed_at <= 4 * HT5
    # The crashed voter still counts in the quorum: 2 of 3 voted, not 2 of 2.
    assert old in voters_at_election[0] and len(voters_at_election[0]) == 3


def test_graceful_leader_leave_transfers_at_once_and_removes_the_leaver() -> None:
    cluster = booted(3)
    old = leader_of(cluster)
    old_term = cluster.term(old)
    elected: list[LeaderElected] = []
    shutdowns: list[NodeShutdown] = []
    cluster.subscribe(LeaderElected, elected.append)
    cluster.subscribe(NodeShutdown, shutdowns.append)
    t0 = cluster.engine.now
    cluster.leave(old)
    cluster.engine.run_for(1000)
    assert len(elected) == 1 and elected[0].node_name != old
    assert elected[0].t - t0 < 100  # TimeoutNow + one vote round, no election timeout
    assert elected[0].term == old_term + 1
    new = elected[0].node_name
    cluster.engine.run_for(15_000)
    assert [ev.node_name for ev in shutdowns] == [old]
    assert not cluster.is_up(old)
    for name in others(cluster, old):
        assert cluster.member_status(name, old) == MemberStatus.LEFT
        assert old not in {s.name for s in cluster.raft_configuration(name)}
    assert old not in cluster.catalog(new).nodes
    assert len(cluster.leaders()) == 1


def test_follower_leave_goes_leaving_then_left() -> None:
    cluster = booted(4)
    leader = leader_of(cluster)
    follower = others(cluster, leader)[0]
    seen: list[MemberStatus | None] = []
    cluster.subscribe(
        MemberChanged, lambda ev: seen.append(ev.status) if (ev.observer, ev.subject) == (leader, follower) else None
    )
    cluster.leave(follower)
    cluster.engine.run_for(20_000)
    assert seen == [MemberStatus.LEAVING, MemberStatus.LEFT]
    assert follower not in {s.name for s in cluster.raft_configuration(leader)}
    assert leader_of(cluster) == leader


def test_client_crash_leaves_the_node_list_and_index_alone_but_turns_health_critical() -> None:
    cluster = booted(5, clients=2)
    leader = leader_of(cluster)
    client = cluster.clients()[0]
    before = cluster.catalog(leader)
    nodes_before, nodes_index, checks_index = sorted(before.nodes), before.nodes_index, before.checks_index
    fired: list[WatchFired] = []
    cluster.subscribe(WatchFired, fired.append)
    cluster.crash(client)
    cluster.engine.run_for(2_000)
    assert cluster.member_status(leader, client) == MemberStatus.ALIVE  # not yet detected
    cluster.engine.run_for(60_000)
    after = cluster.catalog(leader_of(cluster))
    assert cluster.member_status(leader, client) == MemberStatus.FAILED
    assert sorted(after.nodes) == nodes_before
    assert after.nodes_index == nodes_index
    assert after.checks_index > checks_index
    check = after.checks[client]
    assert (check.status, check.output) == (CRITICAL, SERF_FAILED_OUTPUT)
    assert {ev.kind for ev in fired} == {"checks"}  # a `nodes` watch never fires for a crash


def test_server_crash_is_deregistered_only_by_autopilot_cleanup() -> None:
    no_cleanup = ClusterConfig(consul=ConsulTimings(cleanup_dead_servers=False))
    cluster = booted(6, config=no_cleanup)
    victim = others(cluster, leader_of(cluster))[0]
    nodes_index = cluster.catalog(leader_of(cluster)).nodes_index
    cluster.crash(victim)
    cluster.engine.run_for(120_000)
    fsm = cluster.catalog(leader_of(cluster))
    assert victim in fsm.nodes and fsm.nodes_index == nodes_index
    assert fsm.checks[victim].status == CRITICAL
    assert victim in {s.name for s in fsm.config}

    # Consul's default (cleanup_dead_servers=true) force-leaves the failed server: deregistered.
    cluster = booted(6)
    leader = leader_of(cluster)
    victim = others(cluster, leader)[0]
    cluster.crash(victim)
    cluster.engine.run_for(60_000)
    fsm = cluster.catalog(leader_of(cluster))
    assert victim not in fsm.nodes
    assert victim not in {s.name for s in fsm.config}
    assert cluster.member_status(leader, victim) == MemberStatus.LEFT


def test_isolated_leader_steps_down_after_the_lease_and_the_majority_elects() -> None:
    cluster = booted(7)
    old = leader_of(cluster)
    old_term = cluster.term(old)
    lost: list[LeadershipLost] = []
    elected: list[LeaderElected] = []
    cluster.subscribe(LeadershipLost, lost.append)
    cluster.subscribe(LeaderElected, elected.append)
    t0 = cluster.engine.now
    lease = cluster.timings.lease_ms
    cluster.isolate(old)
    cluster.engine.run_for(lease // 2)
    assert cluster.raft[old].state == LEADER  # within the lease it still believes it leads
    cluster.engine.run_for(4 * HT5)
    assert [ev.node_name for ev in lost] == [old]
    # Its last heartbeat ack is at most HT/5 old at the cut; it steps down once that ack is older
    # than the lease, at the next lease check.
    assert lease - HT5 // 5 <= lost[0].t - t0 <= 2 * lease
    assert lost[0].reason == "failed to contact quorum of nodes"
    assert cluster.known_leader(old) is None
    assert len(elected) == 1 and elected[0].node_name != old and elected[0].term > old_term
    groups = cluster.leaders_by_group()
    assert groups[(old,)] == []
    majority = tuple(others(cluster, old))
    assert [info.node for info in groups[majority]] == [elected[0].node_name]

    # Healing: the old leader adopts the higher term and follows the new leader.
    cluster.heal()
    cluster.engine.run_for(90_000)
    new = elected[0].node_name
    assert leader_of(cluster) == new and len(cluster.leaders()) == 1
    assert cluster.raft[old].state == FOLLOWER
    assert cluster.term(old) == cluster.term(new)
    assert cluster.known_leader(old) == new
    assert old in {s.name for s in cluster.raft_configuration(new) if s.voter}


@pytest.mark.parametrize("seed", range(3))
def test_pre_vote_keeps_an_isolated_follower_from_bumping_the_term(seed: int) -> None:
    cluster = booted(seed)
    leader = leader_of(cluster)
    term = cluster.term(leader)
    follower = others(cluster, leader)[0]
    cluster.isolate(follower)
    cluster.engine.run_for(60_000)
    assert cluster.raft[follower].state == CANDIDATE
    assert cluster.term(follower) == term
    cluster.heal()
    cluster.engine.run_for(120_000)
    assert leader_of(cluster) == leader
    assert {cluster.term(n) for n in cluster.servers()} == {term}
    assert cluster.known_leader(follower) == leader


def test_without_pre_vote_the_isolated_follower_inflates_its_term() -> None:
    cluster = booted(1, config=ClusterConfig(pre_vote=False))
    leader = leader_of(cluster)
    term = cluster.term(leader)
    follower = others(cluster, leader)[0]
    cluster.isolate(follower)
    cluster.engine.run_for(60_000)
    assert cluster.term(follower) > term + 1


def test_two_servers_bootstrapped_alone_are_a_representable_split_brain() -> None:
    cluster = Cluster(seed=8)
    cluster.add_server("a", "10.0.1.10", bootstrap_expect=1)
    cluster.add_server("b", "10.0.2.10", bootstrap_expect=1)
    cluster.engine.run_for(3 * HT5)
    leaders = cluster.leaders()
    assert [info.node for info in leaders] == ["a", "b"]
    assert leaders[0].group != leaders[1].group
    # A later gossip join merges the member lists but not the Raft clusters: both leaders stay.
    cluster.join("b", "10.0.1.10")
    cluster.engine.run_for(60_000)
    assert cluster.member_status("a", "b") == MemberStatus.ALIVE
    assert [info.node for info in cluster.leaders()] == ["a", "b"]
    assert cluster.configurations() == {"a": ("a",), "b": ("b",)}


def test_a_server_that_joins_nothing_never_elects_itself() -> None:
    cluster = Cluster(seed=9)
    cluster.add_server("lonely", "10.0.1.10", bootstrap_expect=3)
    cluster.engine.run_for(120_000)
    assert cluster.leaders() == []
    assert cluster.raft["lonely"].state == FOLLOWER
    assert cluster.raft_configuration("lonely") == ()


def test_conflicting_expect_values_do_not_bootstrap() -> None:
    cluster = Cluster(seed=10)
    cluster.add_server("a", "10.0.1.10", bootstrap_expect=2)
    cluster.add_server("b", "10.0.2.10", bootstrap_expect=3)
    cluster.join("b", "10.0.1.10")
    cluster.engine.run_for(60_000)
    assert cluster.leaders() == []


def test_clients_join_through_any_live_member() -> None:
    cluster = booted(11)
    leader = leader_of(cluster)
    follower = others(cluster, leader)[0]
    cluster.add_client("c1", "10.0.9.1")
    cluster.add_client("c2", "10.0.9.2")
    cluster.join("c1", cluster.nodes[follower].ip)  # a follower, not the leader
    cluster.engine.run_for(1000)
    cluster.join("c2", "10.0.9.1:8301")  # another client
    cluster.engine.run_for(5000)
    for client in ("c1", "c2"):
        assert cluster.member_status(leader, client) == MemberStatus.ALIVE
        assert cluster.catalog(leader).checks[client].status == PASSING
        assert client in cluster.catalog(follower).nodes
    assert set(cluster.alive_members("c2")) == {*cluster.servers(), "c1", "c2"}
    # Joining yourself "works" and changes nothing; dead and unreachable targets fail like Consul.
    cluster.add_client("island", "10.0.9.3")
    cluster.join("island", "10.0.9.3")
    assert cluster.alive_members("island") == ["island"]
    cluster.crash("c1")
    with pytest.raises(JoinFailed, match="connect: connection refused"):
        cluster.join("island", "10.0.9.1")
    cluster.isolate("island")
    with pytest.raises(JoinFailed, match="i/o timeout"):
        cluster.join("island", cluster.nodes[leader].ip)
    with pytest.raises(JoinFailed, match="connection refused"):
        cluster.join("island", "10.200.0.1")


def test_paused_leader_is_replaced_and_learns_the_new_term_on_resume() -> None:
    cluster = booted(12)
    old = leader_of(cluster)
    old_term = cluster.term(old)
    cluster.pause(old, 40_000)
    cluster.engine.run_for(39_999)
    new = leader_of(cluster)
    assert new != old and cluster.term(new) > old_term
    # Frozen, it still believes it leads; right at resume its overdue timers have not run yet.
    assert cluster.raft[old].state == LEADER
    cluster.engine.run_for(1)
    assert cluster.is_responsive(old)
    assert cluster.raft[old].state == LEADER
    assert [info.node for info in cluster.leaders()] == sorted([old, new])
    cluster.engine.run_for(50)
    assert cluster.raft[old].state == FOLLOWER
    assert [info.node for info in cluster.leaders()] == [new]
    cluster.engine.run_for(90_000)
    assert cluster.term(old) == cluster.term(new)
    assert cluster.member_status(new, old) == MemberStatus.ALIVE
    assert cluster.known_leader(old) == new


def test_short_pause_changes_nothing() -> None:
    cluster = booted(13)
    leader = leader_of(cluster)
    term = cluster.term(leader)
    cluster.pause(leader, 1000)
    cluster.engine.run_for(30_000)
    assert leader_of(cluster) == leader and cluster.term(leader) == term
    assert all(m.status == MemberStatus.ALIVE for m in cluster.members(leader))


def test_restart_rejoins_and_a_new_ip_updates_catalog_and_raft() -> None:
    cluster = booted(14, clients=1)
    leader = leader_of(cluster)
    follower = others(cluster, leader)[0]
    restarted: list[NodeRestarted] = []
    crashed: list[NodeCrashed] = []
    cluster.subscribe(NodeRestarted, restarted.append)
    cluster.subscribe(NodeCrashed, crashed.append)
    cluster.crash(follower)
    cluster.engine.run_for(8_000)
    nodes_index = cluster.catalog(leader).nodes_index
    cluster.restart(follower, ip="10.0.7.77")
    cluster.engine.run_for(30_000)
    assert [ev.node_name for ev in crashed] == [follower]
    assert [(ev.node_name, ev.ip) for ev in restarted] == [(follower, "10.0.7.77")]
    fsm = cluster.catalog(leader_of(cluster))
    assert fsm.nodes[follower].address == "10.0.7.77"
    assert fsm.nodes_index > nodes_index
    assert fsm.checks[follower].status == PASSING
    assert fsm.in_config(follower) is not None
    assert fsm.in_config(follower).address == "10.0.7.77:8300"  # type: ignore[union-attr]
    assert cluster.member_status(leader, follower) == MemberStatus.ALIVE
    assert cluster.node_by_ip("10.0.7.77") is cluster.nodes[follower]
    with pytest.raises(ValueError):
        cluster.restart(follower)


def test_restart_after_graceful_leave_needs_an_explicit_join() -> None:
    cluster = booted(15, clients=1)
    client = cluster.clients()[0]
    cluster.leave(client)
    cluster.engine.run_for(20_000)
    assert not cluster.is_up(client)
    cluster.restart(client)
    cluster.engine.run_for(5_000)
    assert cluster.alive_members(client) == [client]
    cluster.join(client, cluster.nodes[leader_of(cluster)].ip)
    cluster.engine.run_for(5_000)
    assert client in cluster.catalog(leader_of(cluster)).nodes


def test_force_leave_moves_a_failed_member_to_left_and_prune_erases_it() -> None:
    cluster = booted(16, clients=2)
    leader = leader_of(cluster)
    c1, c2 = cluster.clients()
    with pytest.raises(NoSuchMember):
        cluster.force_leave(leader, "nobody")
    cluster.force_leave(leader, c1)  # alive and reachable: refuted, nothing happens
    cluster.engine.run_for(2000)
    assert cluster.member_status(leader, c1) == MemberStatus.ALIVE
    cluster.crash(c1)
    cluster.crash(c2)
    cluster.engine.run_for(30_000)
    cluster.force_leave(leader, c1)
    cluster.force_leave(leader, c2, prune=True)
    cluster.engine.run_for(5_000)
    for server in cluster.servers():
        assert cluster.member_status(server, c1) == MemberStatus.LEFT
        assert cluster.member_status(server, c2) is None
    fsm = cluster.catalog(leader)
    assert c1 not in fsm.nodes and c2 not in fsm.nodes


def test_join_fires_nodes_and_checks_watches_on_every_agent() -> None:
    cluster = booted(17, clients=1)
    fired: list[WatchFired] = []
    cluster.subscribe(WatchFired, fired.append)
    cluster.add_client("late", "10.0.9.9")
    cluster.join("late", cluster.nodes[leader_of(cluster)].ip)
    cluster.engine.run_for(5_000)
    by_node = {(ev.node_name, ev.kind) for ev in fired}
    for name in cluster.nodes:
        assert (name, "nodes") in by_node and (name, "checks") in by_node


def test_partition_groups_and_ground_truth_queries() -> None:
    cluster = booted(18, servers=5)
    servers = cluster.servers()
    cluster.partition([servers[:2], servers[2:]])
    cluster.engine.run_for(60_000)
    by_group = cluster.leaders_by_group()
    assert sorted(by_group) == [tuple(servers[:2]), tuple(servers[2:])]
    assert by_group[tuple(servers[:2])] == []
    assert len(by_group[tuple(servers[2:])]) == 1
    minority_view = cluster.alive_members(servers[0])
    assert minority_view == servers[:2]
    with pytest.raises(KeyError):
        cluster.partition([["no-such-node"]])
    with pytest.raises(ValueError):
        cluster.partition([[servers[0]], [servers[0]]])
