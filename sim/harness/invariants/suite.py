"""The invariants of a failover scenario, judged together in a fixed order.

The order (S1, S2, S3, S4, L1, L2, then C1 where it applies) is the order in which one observation's violations are
recorded, so a seed's report stays the same byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence

from tagjoin.sim.harness.invariants.c1_ec2_cost import Ec2CostBounded
from tagjoin.sim.harness.invariants.checker import Checker
from tagjoin.sim.harness.invariants.l1_tag_on_leader import TagOnLeader
from tagjoin.sim.harness.invariants.l2_one_membership import OneMembership
from tagjoin.sim.harness.invariants.observations import Observation, RunEnd
from tagjoin.sim.harness.invariants.s1_no_split_brain import NoSplitBrain
from tagjoin.sim.harness.invariants.s2_writes_in_scope import WritesInScope
from tagjoin.sim.harness.invariants.s3_stale_writer import StaleWriterFenced
from tagjoin.sim.harness.invariants.s4_live_server_tagged import LiveServerStaysTagged
from tagjoin.sim.harness.recording import Violation


class InvariantSuite:
    def __init__(self, checkers: Sequence[Checker]) -> None:
        self.checkers = tuple(checkers)

    @classmethod
    def standard(cls, settle_ms: int, *, ec2_cost: bool = False) -> InvariantSuite:
        """`ec2_cost` adds C1, for strategies whose followers must not call EC2 (not naive)."""
        checkers: list[Checker] = [
            NoSplitBrain(),
            WritesInScope(),
            StaleWriterFenced(),
            LiveServerStaysTagged(),
            TagOnLeader(settle_ms),
            OneMembership(settle_ms),
        ]
        if ec2_cost:
            checkers.append(Ec2CostBounded())
        return cls(checkers)

    def observe(self, event: Observation) -> list[Violation]:
        return [v for checker in self.checkers for v in checker.observe(event)]

    def finish(self, end: RunEnd) -> list[Violation]:
        return [v for checker in self.checkers for v in checker.finish(end)]
