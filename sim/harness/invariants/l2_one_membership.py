"""L2: once faults heal, every live node is a member of the one cluster."""

from __future__ import annotations

from tagjoin.core.model import MemberStatus
from tagjoin.sim.harness.invariants.checker import LivenessChecker
from tagjoin.sim.harness.invariants.observations import RunEnd
from tagjoin.sim.harness.recording import Violation


class OneMembership(LivenessChecker):
    """L2: every live node ends up a member of the one cluster.

    Judged at the end of a run that lasted at least `settle_ms` after the last fault healed and has
    a leader: every agent that is up is `alive` in the leader's member list. Without a leader there
    is no cluster to be a member of, and L1 reports that.
    """

    name = "L2"

    def finish(self, end: RunEnd) -> list[Violation]:
        if not self.settled(end) or end.leader is None:
            return []
        stray = [node for node in sorted(end.membership) if end.membership[node] != MemberStatus.ALIVE]
        if not stray:
            return []
        return [self.violation(end.t, f"live nodes not members of the cluster: {stray}")]
