"""Held blocking queries wake when the cluster changes, as Consul's `blockingQuery` does."""

from __future__ import annotations

import pytest

from tagjoin.sim.aws.ec2_account import Ec2World
from tagjoin.sim.consul.change_waiters import ChangeWaiters
from tagjoin.sim.consul.cluster_events import Committed
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
