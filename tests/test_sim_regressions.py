"""Seeds whose schedules exposed a safety or liveness bug, each kept clean under the fenced strategy."""

from __future__ import annotations

import pytest

from tagjoin.core.handoff import Decision
from tagjoin.core.model import MemberStatus
from tagjoin.sim.aws.ec2_account import Ec2World
from tagjoin.sim.harness.invariants.s3_stale_writer import StaleWriterFenced
from tagjoin.sim.harness.invariants.suite import InvariantSuite
from tagjoin.sim.harness.scenario import CLUSTER, RAFT_PROFILES, ScenarioConfig, build, finish, run_scenario


def test_two_writers_seed_27_a_stalled_older_pass_cannot_lower_the_leaders_tag() -> None:
    # Leadership moves 3-10 → 1-10 → 3-10 → 1-10 within 4 s while one of 1-10's passes of term 3
    # stalls. With a lock per process instead of one per node, its other process wrote 5 and the
    # stalled pass then wrote 3 over it (S3: lowered leader's tag 5 to 3). With the node's lock the
    # other process is turned away while the stalled pass holds it.
    config = ScenarioConfig(seed=27, faults=("two-writers",))
    with Ec2World(config.seed, CLUSTER) as world:
        s = build(config, world)
        s.cluster.engine.run_until(config.duration_ms)
        finish(s)
        assert s.rec.violations == [], s.rec.schedule
        assert [span.term for span in s.rec.leaders] == [2, 3, 4, 5], "the flips this seed is kept for"
        node = s.rec.leaders[-1].node
        reports = [*s.fleet.handlers[node].reports, *s.fleet.handlers[f"{node}/watch"].reports]
        assert any(r.decision == Decision.BUSY for r in reports), "both writers on the node wanted a pass at once"


@pytest.mark.parametrize(("strategy", "seed"), [("fenced", 220), ("fenced", 230), ("watch", 378)])
def test_two_writers_a_pass_stalled_after_its_last_look_leaves_the_leaders_own_tag_alone(
    strategy: str, seed: int
) -> None:
    # Leadership moves A → B → A within seconds. B's term-3 pass passes its last look, then its
    # process stalls (CPU starvation, a CreateTags retried after throttling) until A leads again
    # at term 4 while still carrying its own term-2 tag. B then tags itself 3 and deletes A's `2`:
    # the value matches, because A has not written its term-4 tag yet. EC2 conditions a delete on
    # the value alone, so no look before a write closes that window (S3's docstring has the
    # argument); the fence's guarantee is that A's term-4 tag, once written, is never touched,
    # and the tag then settles on A. These seeds are kept because they hit that window.
    config = ScenarioConfig(seed=seed, strategy=strategy, faults=("two-writers",))
    assert run_scenario(config).violations == []
    with Ec2World(config.seed, CLUSTER) as world:
        s = build(config, world)
        s.invariants = InvariantSuite([StaleWriterFenced(own_term_only=False)])
        s.cluster.engine.run_until(config.duration_ms)
        finish(s)
    window = [v.detail for v in s.rec.violations]
    assert any("removed leader" in d and "(term 4)" in d for d in window), (
        "the window these seeds are kept for",
        window,
    )


@pytest.mark.parametrize("profile", RAFT_PROFILES)
@pytest.mark.parametrize(("seed", "kind"), [(380, "pause"), (663, "agent-pause"), (367, "pause")])
def test_a_pause_taken_by_the_keepers_next_pass_counts_from_when_it_starts(seed: int, kind: str, profile: str) -> None:
    # The fault is armed at 15-25 s, but the leader stops only at its keeper's next pass. These
    # seeds once had that pass be the anti-entropy pass a minute later, still paused when the run
    # ended: recorded at arming, the pause looked healed for 30 s by then, and L1 ("leader None")
    # or L2 (the paused server not a member) judged a cluster whose leader was paused at that
    # moment. The recorded span must start when the node really stops.
    config = ScenarioConfig(seed=seed, raft_profile=profile, faults=(kind,))
    first = run_scenario(config)
    assert first.violations == [], first.schedule
    [fault] = first.faults
    assert fault.kind == kind and fault.start > config.fault_window_ms[0]
    with Ec2World(config.seed, CLUSTER) as world:
        s = build(config, world)
        s.cluster.engine.run_until(fault.start - 1)
        assert not s.cluster.nodes[fault.target].paused, "paused before the recorded start"
        s.cluster.engine.run_until(fault.start)
        assert s.cluster.nodes[fault.target].paused, "not paused at the recorded start"
        s.cluster.engine.run_until(fault.end + config.settle_ms)
        leader = s.cluster.leader()
        assert leader is not None
        assert s.cluster.member_status(leader, fault.target) == MemberStatus.ALIVE


def test_stop_start_under_ec2_lag_seed_670_settles_within_the_bound() -> None:
    # `stop-start` of a former leader's instance while EC2 reads lag: the new leader's pass runs
    # while that instance is stopped (its old tag out of the running scope, so not deleted); when
    # it runs again, the pass its agent's return triggers reads an EC2 that does not yet show it
    # running. Before the keeper looked again a few seconds after a change-triggered pass
    # (KeepConfig.settle), nothing looked until the 60 s anti-entropy pass, past L1's 30 s bound.
    rec = run_scenario(ScenarioConfig(seed=670, ec2_lag="default"))
    assert [f.kind for f in rec.faults] == ["stop-start"]
    assert rec.violations == [], rec.violations


def test_replace_under_ec2_lag_seed_716_a_late_conditional_delete_is_in_scope() -> None:
    # `replace` under lagging EC2 reads: the leader's pass still saw the replaced server's instance
    # running with its old tag and deleted that value after the instance had terminated. S2 once
    # counted that as a write outside the scope; it removes only the value read, on this
    # cluster's own instance (S2's docstring).
    rec = run_scenario(ScenarioConfig(seed=716, ec2_lag="default"))
    assert [f.kind for f in rec.faults] == ["replace"]
    assert rec.violations == [], rec.violations
