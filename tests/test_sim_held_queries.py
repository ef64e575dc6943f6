"""Held blocking queries wake when the cluster changes, as Consul's `blockingQuery` does."""

from __future__ import annotations

import pytest

from tagjoin.sim.aws.ec2_account import Ec2World
from tagjoin.sim.consul.change_waiters import ChangeWaiters
from tagjoin.sim.consul.cluster import Cluster
from tagjoin.sim.consul.cluster_events import Committed, MemberChanged
from tagjoin.sim.harness.scenario import CLUSTER, ScenarioConfig, build
from tagjoin.sim.kernel.engine import Engine


def test_a_waiter_wakes_once_a_tick_after_the_next_change() -> None:
    engine = Engine(0)
    waiters = ChangeWaiters(engine)
    woken: list[int] = []
    waiters.poke()
    assert engine.peek() is None, "a change nobody waits for schedules nothing"
    waiters.wait(lambda: woken.append(engine.now))
    engine.run_until(500)
    assert woken == [], "no change, no wake-up"
    waiters.poke()
    waiters.poke()  # changes at one instant wake the waiters once
    engine.run_until(1000)
    assert woken == [501]
    waiters.poke()
    engine.run_until(2000)
    assert woken == [501], "a waiter is woken once; it waits again if it still blocks"


@pytest.mark.parametrize("seed", range(4))
def test_the_leaders_keeper_hears_a_health_change_within_one_call(seed: int) -> None:
    # A client crashes; the leader commits its failed check. The keeper's blocking health query
    # (stale, on its own server) returns at the commit, so the keeper's next call (agent/self)
    # is made at most one call's latency later, whatever the query's 1 s wait had left.
    config = ScenarioConfig(seed=seed, inject_faults=False, joiners=0)
    with Ec2World(seed, CLUSTER) as world:
        s = build(config, world)
        engine = s.cluster.engine
        engine.run_until(40_000)
        leader = s.cluster.leader()
        assert leader is not None
        commits: list[int] = []
        s.cluster.bus.subscribe(
            Committed, lambda ev: commits.append(ev.t) if ev.node == leader and ev.kind == "SetCheck" else None
        )
        asked_self: list[int] = []
        sample = s.fleet.on_step

        def on_step(node: str) -> None:
            sample(node)
            if node == leader and s.fleet.handlers[leader].pending == "consul:agent/self":
                asked_self.append(engine.now)

        s.fleet.on_step = on_step
        s.cluster.crash(s.cluster.clients()[0])
        engine.run_until(70_000)
    assert commits, "the leader never marked the crashed client critical"
    latest = s.fleet.config.latency_ms[1]
    heard = next(t for t in asked_self if t >= commits[0])
    assert heard - commits[0] <= 1 + latest, (commits[0], heard)


def test_a_stopped_wait_is_not_woken() -> None:
    engine = Engine(0)
    waiters = ChangeWaiters(engine)
    woken: list[str] = []
    stop = waiters.wait(lambda: woken.append("first"))
    waiters.wait(lambda: woken.append("second"))
    stop()
    assert len(waiters) == 1
    waiters.poke()
    engine.run_until(10)
    assert woken == ["second"]
    assert len(waiters) == 0


def test_a_quiet_cluster_keeps_one_wait_per_held_query() -> None:
    # Queries answered at their deadline stop waiting: ten virtual minutes without a change leave
    # no more waits than there are tag processes.
    config = ScenarioConfig(seed=0, inject_faults=False, joiners=0, duration_ms=600_000)
    with Ec2World(0, CLUSTER) as world:
        s = build(config, world)
        for t in range(60_000, config.duration_ms + 1, 60_000):
            s.cluster.engine.run_until(t)
            assert len(s.cluster.held) <= len(s.fleet.handlers), t


def test_a_member_list_change_wakes_the_held_queries() -> None:
    # A client agent forwards to a server it picks from its own member list: when that list
    # changes, what a held query on it would answer may change, so it looks again. Two client
    # agents and no server: nothing commits, only gossip changes the lists.
    cluster = Cluster(0)
    cluster.add_client("ip-10-0-1-100", "10.0.1.100")
    cluster.add_client("ip-10-0-2-100", "10.0.2.100")
    cluster.join("ip-10-0-2-100", "10.0.1.100")
    cluster.engine.run_until(5_000)
    changed: list[int] = []
    cluster.bus.subscribe(MemberChanged, lambda ev: changed.append(ev.t))
    woken: list[int] = []
    cluster.held.wait(lambda: woken.append(cluster.engine.now))
    cluster.engine.schedule(1_000, lambda: cluster.crash("ip-10-0-1-100"))
    cluster.engine.run_until(5_999)
    assert woken == [], "nothing changed yet"
    cluster.engine.run_until(6_001)
    assert woken == [6_001], "the crash itself is a change"
    woken.clear()
    cluster.held.wait(lambda: woken.append(cluster.engine.now))
    cluster.engine.run_until(40_000)
    assert changed, "serf never marked the crashed agent failed"
    assert woken == [changed[0] + 1]
