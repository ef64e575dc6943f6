"""S1: no split brain."""

from __future__ import annotations

from tagjoin.sim.harness.invariants.checker import Checker
from tagjoin.sim.harness.invariants.observations import NewLeader, Observation
from tagjoin.sim.harness.recording import Violation


class NoSplitBrain(Checker):
    """S1: no joiner ever forms or joins a second cluster while a quorum exists.

    Judged whenever a leader takes office and becomes the followed one (`NewLeader`): every server
    that then believes it leads, paused ones included, belongs to one Raft cluster (one bootstrap).
    Leaders of two clusters at once mean that some node formed or joined a second cluster.
    """

    name = "S1"

    def observe(self, event: Observation) -> list[Violation]:
        if not isinstance(event, NewLeader) or len(event.leading_clusters) <= 1:
            return []
        return [self.violation(event.t, f"two Raft clusters lead at once: {sorted(event.leading_clusters)}")]
