"""Faults between the first ones and the network's edges: partial partitions, lossy links, a tag
process stalled alone, a stall right before a write, and both of the kit's tag processes on every
server."""

from __future__ import annotations

import pytest

from tagjoin.core.handoff import Decision
from tagjoin.sim.aws.ec2_account import Ec2World
from tagjoin.sim.consul.cluster import Cluster, ClusterConfig, build_cluster
from tagjoin.sim.consul.cluster_events import LeadershipLost
from tagjoin.sim.harness.scenario import (
    CLUSTER,
    EARLIER_FAULT_KINDS,
    FAULT_KINDS,
    ScenarioConfig,
    build,
    finish,
    run_scenario,
)
from tagjoin.sim.harness.tag_runners import BEFORE_WRITE


def test_a_partial_partition_is_not_transitive() -> None:
    cluster = build_cluster(0)
    cluster.engine.run_for(20_000)
    a, b, c = cluster.servers()
    cluster.cut(a, b)
    net = cluster.net
    assert not net.hears(a, b) and not net.hears(b, a)
    assert net.hears(a, c) and net.hears(c, a) and net.hears(b, c) and net.hears(c, b)
    assert cluster.connected(a, b), "gossip routes around the cut (memberlist indirect probes)"
    cluster.heal()
    assert net.hears(a, b)


@pytest.mark.parametrize(("pre_vote", "deposed"), [(True, False), (False, True)])
def test_a_leader_cut_from_one_follower_keeps_office_only_with_pre_vote(pre_vote: bool, deposed: bool) -> None:
    # The leader keeps its quorum through the third server. The cut follower campaigns: with
    # pre-vote it never bumps its term; without, it does and, once the cut heals, the leader sees
    # the higher term in an AppendEntries answer and steps down (hashicorp/raft replication.go).
    cluster = Cluster(4, ClusterConfig(pre_vote=pre_vote))
    for i in range(3):
        cluster.add_server(f"s{i}", f"10.0.0.{i + 1}", bootstrap_expect=3)
    for i in range(1, 3):
        cluster.join(f"s{i}", "10.0.0.1")
    cluster.engine.run_for(30_000)
    leader = cluster.leader()
    assert leader is not None
    lost: list[LeadershipLost] = []
    cluster.subscribe(LeadershipLost, lost.append)
    follower = next(n for n in cluster.servers() if n != leader)
    cluster.cut(leader, follower)
    cluster.engine.run_for(30_000)
    assert cluster.leader() == leader, "the leader still reaches a quorum through the third server"
    cluster.heal()
    cluster.engine.run_for(30_000)
    assert bool(lost) is deposed
    assert cluster.leader() is not None


def test_a_lossless_link_changes_nothing_and_a_dead_one_ends_the_lease() -> None:
    cluster = build_cluster(0)
    cluster.engine.run_for(20_000)
    leader = cluster.leader()
    assert leader is not None
    others = [n for n in cluster.servers() if n != leader]
    lost: list[LeadershipLost] = []
    cluster.subscribe(LeadershipLost, lost.append)
    cluster.lossy(leader, others, 0.0)
    cluster.engine.run_for(20_000)
    assert (lost, cluster.leader()) == ([], leader)
    cluster.lossy(leader, others, 1.0)
    cluster.engine.run_for(20_000)
    assert [ev.node_name for ev in lost] == [leader], "no heartbeat answer within the lease: it steps down"
    assert cluster.leader() not in (None, leader)


def test_link_loss_is_part_of_the_seed() -> None:
    config = ScenarioConfig(seed=3, faults=("link-loss",))
    first, second = run_scenario(config, keep_log=True), run_scenario(config, keep_log=True)
    assert [f.kind for f in first.faults] == ["link-loss"]
    assert "at 90%" in first.schedule[0]
    assert len(first.leaders) > 1, "at 90% loss the leader's lease lapses: a second leader follows"
    assert first.schedule == second.schedule
    assert first.leaders == second.leaders


def test_seeds_kept_under_the_earlier_kinds_draw_the_same_fault_with_the_new_ones() -> None:
    # Seed 670 (a regression test) drew stop-start before the new kinds were appended; appending
    # keeps the draw for most seeds, not only under EARLIER_FAULT_KINDS.
    assert len(FAULT_KINDS) == len(EARLIER_FAULT_KINDS) + 3
    for seed in (670, 716):
        kinds = []
        for faults in (EARLIER_FAULT_KINDS, FAULT_KINDS):
            with Ec2World(seed, CLUSTER) as world:
                kinds.append(build(ScenarioConfig(seed=seed, faults=faults), world).fault_kind)
        assert kinds[0] == kinds[1], (seed, kinds)


def test_a_stalled_keeper_resumes_after_leadership_moved_and_writes_nothing() -> None:
    # Seed 5: the leader's keeper stalls after its first call of a pass a client's crash started;
    # leadership moves meanwhile; the pass resumes, its quorum read fails, it writes nothing.
    config = ScenarioConfig(seed=5, faults=("keeper-stall",))
    with Ec2World(config.seed, CLUSTER) as world:
        s = build(config, world)
        s.cluster.engine.run_until(config.duration_ms)
        finish(s)
    old, new = s.rec.leaders[0].node, s.rec.leaders[-1].node
    assert old != new
    (stall,) = [line for line in s.log_lines if f"{old}: process stalls mid-pass" in line]
    assert [f.start for f in s.rec.faults] == [int(stall.split()[0])], "the fault starts when the stall does"
    assert s.fleet.handlers[old].reports[-1].decision == Decision.UNCONFIRMED
    assert s.rec.violations == []
    assert s.rec.tags[-1].holders == {new: str(s.rec.leaders[-1].term)}


def test_a_stall_before_write_waits_right_before_the_first_tag_write() -> None:
    config = ScenarioConfig(seed=0, inject_faults=False, joiners=0, duration_ms=30_000)
    with Ec2World(config.seed, CLUSTER) as world:
        s = build(config, world)
        for key in s.fleet.handlers:
            s.fleet.stall_next_pass(key, BEFORE_WRITE, 7_000)
        s.cluster.engine.run_until(config.duration_ms)
        finish(s)
    stalls = [line for line in s.log_lines if "process stalls mid-pass for 7000 ms" in line]
    assert len(stalls) == 1, "only the leader's pass reaches a write"
    stalled_at = int(stalls[0].split()[0])
    first_write = s.rec.writes[0]
    assert first_write.action == "CreateTags"
    assert first_write.t >= stalled_at + 7_000
    assert s.rec.violations == []


def test_second_writers_put_both_tag_processes_on_every_server() -> None:
    config = ScenarioConfig(seed=1, second_writers=True, inject_faults=False, joiners=0, duration_ms=30_000)
    with Ec2World(config.seed, CLUSTER) as world:
        s = build(config, world)
        s.cluster.engine.run_until(config.duration_ms)
        finish(s)
    servers = s.cluster.servers()
    assert sorted(s.fleet.handlers) == sorted([*servers, *(f"{n}/watch" for n in servers)])
    assert all(s.fleet.handlers[k].running is not None for k in s.fleet.handlers)
    assert s.rec.violations == []
