"""L1: once faults heal, the tag settles on the leader alone."""

from __future__ import annotations

from tagjoin.sim.harness.invariants.checker import LivenessChecker
from tagjoin.sim.harness.invariants.observations import RunEnd
from tagjoin.sim.harness.recording import Violation


class TagOnLeader(LivenessChecker):
    """L1: after faults heal, within a bound, exactly one running instance is tagged and it is the leader.

    Judged at the end of a run that lasted at least `settle_ms` after the last fault healed: there
    is a leader, and among the cluster's running instances only the leader's carries the tag.
    """

    name = "L1"

    def finish(self, end: RunEnd) -> list[Violation]:
        if not self.settled(end) or (end.leader is not None and end.tag_holders == (end.leader,)):
            return []
        holders = list(end.tag_holders)
        return [
            self.violation(end.t, f"{self.settle_ms}ms after the faults healed: leader {end.leader}, tags on {holders}")
        ]
