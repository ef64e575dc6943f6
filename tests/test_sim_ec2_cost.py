"""C1: followers never call EC2, and a leader's pass stays within its budget of calls."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tagjoin.sim.aws.ec2_account import Ec2World
from tagjoin.sim.harness.invariants.c1_ec2_cost import Ec2CostBounded
from tagjoin.sim.harness.invariants.observations import Ec2Request
from tagjoin.sim.harness.scenario import CLUSTER, EARLIER_FAULT_KINDS, TAG_KEY, ScenarioConfig, build, run_scenario

LEADER_CALL = Ec2Request(10, "a", "DescribeInstances", 5, True, 1, 20)


def test_a_leaders_pass_within_budget_is_fine() -> None:
    check = Ec2CostBounded()
    assert check.observe(LEADER_CALL) == []
    assert check.observe(replace(LEADER_CALL, pass_calls=20)) == []


def test_a_follower_calling_ec2_is_flagged_once_per_pass() -> None:
    check = Ec2CostBounded()
    follower = replace(LEADER_CALL, process="b", led_in_pass=False)
    found = check.observe(follower)
    assert [(v.invariant, v.detail) for v in found] == [
        ("C1", "b called EC2 DescribeInstances as a follower (not leader since its pass began)")
    ]
    assert check.observe(replace(follower, t=11, pass_calls=2)) == []
    assert len(check.observe(replace(follower, t=30, pass_started=25))) == 1  # its next pass


def test_calls_outside_a_pass_and_over_budget_are_flagged() -> None:
    check = Ec2CostBounded()
    outside = check.observe(replace(LEADER_CALL, pass_started=None, led_in_pass=False))
    assert [v.detail for v in outside] == ["a called EC2 DescribeInstances outside a handoff pass"]
    over = check.observe(replace(LEADER_CALL, pass_calls=21))
    assert [v.detail for v in over] == ["a's pass made 21 EC2 calls, over its budget of 20"]


@pytest.mark.parametrize(("strategy", "applies"), [("fenced", True), ("watch", True), ("naive", False)])
def test_c1_applies_where_followers_must_not_call_ec2(strategy: str, applies: bool) -> None:
    with Ec2World(0, CLUSTER) as world:
        s = build(ScenarioConfig(seed=0, strategy=strategy, inject_faults=False, joiners=0), world)
        assert ("C1" in [c.name for c in s.invariants.checkers]) is applies


def test_decoys_carry_the_tag_outside_the_scope_and_the_handoff_ignores_them() -> None:
    with Ec2World(0, CLUSTER) as world:
        s = build(ScenarioConfig(seed=0, inject_faults=False, joiners=0, decoys=2), world)
        outside = world.tag_values(TAG_KEY, cluster_only=False)
        assert sorted(v for i, v in outside.items() if not world.in_cluster(i)) == ["900", "901"]
        s.cluster.engine.run_until(20_000)
        leader = s.cluster.leader()
        assert leader is not None
        assert {world.node_of(i) for i in world.tag_values(TAG_KEY)} == {leader}
        assert len(world.tag_values(TAG_KEY, cluster_only=False)) == 3  # the decoys keep theirs


@pytest.mark.parametrize("strategy", ["fenced", "watch"])
def test_adversarial_schedule_stays_clean_on_core(strategy: str) -> None:
    # Seed 3 pauses the leader after 4 calls of a pass on top of a handler crash; small pages and decoys are on.
    config = ScenarioConfig(seed=3, strategy=strategy, extra_faults=1, faults=EARLIER_FAULT_KINDS)
    rec = run_scenario(config, keep_log=True)
    assert any("paused-pass" in line for line in rec.schedule), rec.schedule
    assert rec.violations == [], rec.schedule
