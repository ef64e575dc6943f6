"""Hypothesis drives faults and time steps as rules; the fenced handoff's invariants must hold.

Failures shrink to a minimal schedule of rules. Derandomised, so CI runs the same examples.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tagjoin.sim.aws.ec2_account import Ec2World
from tagjoin.sim.harness.scenario import CLUSTER, ScenarioConfig, build, finish, reboot

SAFETY = {"S1", "S2", "S3", "S4"}


class FencedHandoff(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world = Ec2World(0, CLUSTER)
        config = ScenarioConfig(seed=0, inject_faults=False, joiners=0, raft_multiplier=1, duration_ms=10**9)
        self.s = build(config, self.world)
        self.cluster = self.s.cluster
        self.engine = self.cluster.engine
        self.engine.run_until(5_000)

    def _servers_up(self) -> list[str]:
        return [n for n in self.cluster.servers() if self.cluster.is_responsive(n)]

    @rule(ms=st.integers(100, 6_000))
    def advance(self, ms: int) -> None:
        self.engine.run_for(ms)

    @precondition(lambda self: self.cluster.leader() is not None and len(self._servers_up()) == 3)
    @rule()
    def crash_leader(self) -> None:
        leader = self.cluster.leader()
        assert leader is not None
        self.cluster.crash(leader)

    # One graceful leave at a time: three back to back (each a leadership transfer) take every server
    # out of the Raft configuration, an outage no handoff can outlive, not a fault it must survive.
    @precondition(
        lambda self: (
            self.cluster.leader() is not None
            and len(self._servers_up()) == 3
            and not any(self.cluster.nodes[n].leaving for n in self.cluster.servers())
        )
    )
    @rule()
    def leader_leaves(self) -> None:
        leader = self.cluster.leader()
        assert leader is not None
        self.cluster.leave(leader)

    @precondition(lambda self: self.cluster.leader() is not None and len(self._servers_up()) == 3)
    @rule(ms=st.integers(500, 8_000), after_calls=st.integers(0, 4))
    def leader_pauses_mid_pass(self, ms: int, after_calls: int) -> None:
        leader = self.cluster.leader()
        assert leader is not None
        # The keeper pauses in whichever pass it runs next.
        self.s.fleet.interrupt_next_pass(leader, after_calls, lambda: self.cluster.pause(leader, ms))

    @precondition(lambda self: self.cluster.leader() is not None)
    @rule()
    def isolate_leader(self) -> None:
        leader = self.cluster.leader()
        assert leader is not None
        self.cluster.partition([[leader]])

    @rule()
    def heal(self) -> None:
        self.cluster.heal()

    @rule(node=st.sampled_from(["ip-10-0-1-10", "ip-10-0-2-10", "ip-10-0-3-10"]))
    def restart(self, node: str) -> None:
        n = self.cluster.node(node)
        if n is not None and not n.up:
            reboot(self.s, node)

    @rule(count=st.integers(1, 6))
    def throttle_ec2(self, count: int) -> None:
        self.s.faults.arm("*", count)

    @rule(node=st.sampled_from(["ip-10-0-1-10", "ip-10-0-2-10", "ip-10-0-3-10"]), after_calls=st.integers(0, 4))
    def handler_crash(self, node: str, after_calls: int) -> None:
        self.s.fleet.interrupt_next_pass(node, after_calls)

    @invariant()
    def safety_holds(self) -> None:
        broken = [(v.invariant, v.t, v.detail) for v in self.s.rec.violations if v.invariant in SAFETY]
        assert broken == []

    def teardown(self) -> None:
        try:
            # Heal everything, then the cluster must converge: one tag, on the leader (L1, L2).
            self.cluster.heal()
            self.s.faults.disarm()
            for process in self.s.fleet.handlers.values():
                process.interrupt = None  # a pause still waiting for its pass is a fault not yet over
            for node in self.cluster.servers():
                n = self.cluster.node(node)
                if n is not None and not n.up:
                    reboot(self.s, node)
            self.engine.run_for(60_000)
            self.s.healed_at = self.engine.now - 60_000
            finish(self.s)
            assert [(v.invariant, v.detail) for v in self.s.rec.violations] == []
        finally:
            self.world.close()


TestFencedHandoff = FencedHandoff.TestCase
TestFencedHandoff.settings = settings(
    max_examples=12, stateful_step_count=12, deadline=None, derandomize=True, print_blob=True
)
