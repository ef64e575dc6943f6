"""The fault kinds of issue 11: one-way partitions, agent-only pauses, EC2 stop/start, two writers
on one node; and a bootstrap order that differs from seed to seed."""

from __future__ import annotations

from tagjoin.core.handoff import Decision
from tagjoin.sim.aws.ec2_account import Ec2World
from tagjoin.sim.consul.cluster import build_cluster
from tagjoin.sim.consul.cluster_events import LeadershipLost
from tagjoin.sim.consul.raft import FOLLOWER
from tagjoin.sim.harness.scenario import CLUSTER, TAG_KEY, ScenarioConfig, build, finish, run_scenario, stop_start


def test_the_first_leader_differs_across_seeds() -> None:
    first: set[str] = set()
    for seed in range(10):
        config = ScenarioConfig(seed=seed, inject_faults=False, joiners=0, duration_ms=20_000)
        with Ec2World(seed, CLUSTER) as world:
            s = build(config, world)
            s.cluster.engine.run_until(config.duration_ms)
            leader = s.cluster.leader()
            assert leader is not None
            first.add(leader)
    assert len(first) > 1, first


# one-way-partition -------------------------------------------------------------------------------


def test_one_way_cut_drops_only_the_messages_towards_the_deaf_node() -> None:
    cluster = build_cluster(0)
    cluster.engine.run_for(20_000)
    a, b, _ = cluster.servers()
    cluster.one_way_partition(a, [b])
    na, nb = cluster.nodes[a], cluster.nodes[b]
    got: list[str] = []
    assert cluster.net.send(na, nb, lambda: got.append("a->b"), "test")
    assert not cluster.net.send(nb, na, lambda: got.append("b->a"), "test")
    cluster.engine.run_for(100)
    assert got == ["a->b"]
    assert cluster.connected(a, b), "gossip routes around a one-way cut (indirect probes)"
    assert not cluster.rpc_ok(na, nb) and not cluster.rpc_ok(nb, na), "a TCP exchange needs both ways"
    cluster.heal()
    assert cluster.rpc_ok(na, nb)


def test_a_leader_that_hears_nobody_loses_its_lease_and_a_new_one_is_elected() -> None:
    cluster = build_cluster(3)
    cluster.engine.run_for(20_000)
    leader = cluster.leader()
    assert leader is not None
    reasons: list[str] = []
    cluster.subscribe(LeadershipLost, lambda ev: reasons.append(ev.reason))
    cluster.one_way_partition(leader, [n for n in cluster.servers() if n != leader])
    cluster.engine.run_for(30_000)
    assert reasons[:1] == ["failed to contact quorum of nodes"]
    new = cluster.leader()
    assert new is not None and new != leader
    assert cluster.raft[leader].state != "Leader"
    cluster.heal()
    cluster.engine.run_for(30_000)
    assert cluster.known_leader(leader) == cluster.leader()
    assert cluster.raft[leader].state == FOLLOWER


# agent-pause -------------------------------------------------------------------------------------


def test_messages_to_an_agent_paused_alone_wait_for_its_resume() -> None:
    cluster = build_cluster(0)
    cluster.engine.run_for(20_000)
    a, b, c = cluster.servers()
    cluster.pause(b, 5_000, alone=True)
    cluster.pause(c, 5_000)  # the whole machine: what arrives meanwhile is lost
    got: list[str] = []
    cluster.net.send(cluster.nodes[a], cluster.nodes[b], lambda: got.append(b), "test")
    cluster.net.send(cluster.nodes[a], cluster.nodes[c], lambda: got.append(c), "test")
    cluster.engine.run_for(4_000)
    assert got == []
    cluster.engine.run_for(2_000)
    assert got == [b]


def test_the_keeper_runs_on_while_its_agent_is_paused() -> None:
    # Seed 1 pauses the leader's agent alone for 9.5 s: its keeper's call hangs until the client's
    # timeout and the keeper says so while the agent is still paused.
    rec = run_scenario(ScenarioConfig(seed=1, faults=("agent-pause",)), keep_log=True)
    fault = next(f for f in rec.faults if f.kind == "agent-pause")
    trace = rec.schedule[len(rec.faults) :]  # keep_log puts the trace after one line a fault
    during = [
        line
        for line in trace
        if fault.start <= int(line.split()[0]) < fault.end and line.split()[1] == f"{fault.target}:"
    ]
    assert any("keep: cannot reach the Consul agent" in line and "no answer within 5 s" in line for line in during)
    assert rec.violations == []


# stop-start --------------------------------------------------------------------------------------


def test_stop_start_keeps_the_instance_and_shows_it_stopped_meanwhile() -> None:
    config = ScenarioConfig(seed=4, inject_faults=False, joiners=0)
    with Ec2World(config.seed, CLUSTER) as world:
        s = build(config, world)
        engine = s.cluster.engine
        engine.run_until(20_000)
        leader = s.cluster.leader()
        assert leader is not None
        iid = s.node_instance[leader]
        stop_start(s, leader, 15_000)
        engine.run_until(25_000)
        assert world.state_of(iid) == "stopped"
        assert not s.cluster.is_up(leader)
        assert iid not in world.tag_values(TAG_KEY), "readers of running instances no longer see its tag"
        engine.run_until(config.duration_ms)
        assert world.state_of(iid) == "running" and s.node_instance[leader] == iid
        assert s.cluster.is_up(leader)
        finish(s)
        new = s.cluster.leader()
        assert new is not None
        assert list(world.tag_values(TAG_KEY)) == [s.node_instance[new]]
        assert s.rec.violations == []


# two-writers -------------------------------------------------------------------------------------


def test_two_writers_run_both_mechanisms_on_every_server_under_one_lock() -> None:
    busy = 0
    for seed in range(3):
        config = ScenarioConfig(seed=seed, faults=("two-writers",))
        with Ec2World(seed, CLUSTER) as world:
            s = build(config, world)
            s.cluster.engine.run_until(config.duration_ms)
            finish(s)
            servers = s.cluster.servers()
            assert sorted(s.fleet.handlers) == sorted([*servers, *(f"{n}/watch" for n in servers)])
            watch_reports = [r for n in servers for r in s.fleet.handlers[f"{n}/watch"].reports]
            assert watch_reports, "the watch handler ran passes beside the keeper"
            everything = [r for h in s.fleet.handlers.values() for r in h.reports]
            busy += sum(r.decision == Decision.BUSY for r in everything)
            assert s.rec.violations == [], (seed, s.rec.schedule)
    assert busy > 0, "passes of the two writers overlapped and the node's lock turned one away"


# ip-reuse and asg-replace ------------------------------------------------------------------------


def test_a_reused_ip_brings_another_clusters_tag_that_nobody_touches() -> None:
    config = ScenarioConfig(seed=0, faults=("ip-reuse",))
    with Ec2World(config.seed, CLUSTER) as world:
        s = build(config, world)
        s.cluster.engine.run_until(config.duration_ms)
        finish(s)
        old = next(f.target for f in s.rec.faults if f.kind == "ip-reuse")
        ip = s.cluster.nodes[old].ip
        decoys = [i for i in world.running_instances(cluster_only=False) if i.private_ip == ip]
        assert len(decoys) == 1 and not world.in_cluster(decoys[0].instance_id)
        assert world.tag_values(TAG_KEY, cluster_only=False)[decoys[0].instance_id] == "1004"
        assert all(w.target_in_scope for w in s.rec.writes)
        new = s.cluster.leader()
        assert new is not None and new != old
        assert list(world.tag_values(TAG_KEY)) == [s.node_instance[new]]
        assert s.rec.violations == []


def test_an_asg_replacement_joins_as_a_new_server_and_is_promoted() -> None:
    config = ScenarioConfig(seed=1, faults=("asg-replace",))
    with Ec2World(config.seed, CLUSTER) as world:
        s = build(config, world)
        s.cluster.engine.run_until(config.duration_ms)
        finish(s)
        old = next(f.target for f in s.rec.faults if f.kind == "asg-replace")
        new = [n for n in s.cluster.servers() if n.endswith("-60")]
        assert len(new) == 1
        assert s.cluster.nodes[new[0]].node_id != s.cluster.nodes[old].node_id
        leader = s.cluster.leader()
        assert leader is not None
        voters = {c.name for c in s.cluster.raft_configuration(leader) if c.voter}
        assert new[0] in voters and old not in voters
        assert world.state_of(s.node_instance[old]) == "terminated"
        assert s.rec.violations == []
