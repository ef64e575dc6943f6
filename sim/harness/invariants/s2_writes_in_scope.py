"""S2: writes stay inside the cluster scope."""

from __future__ import annotations

from tagjoin.sim.harness.invariants.checker import Checker
from tagjoin.sim.harness.invariants.observations import Observation, TagWrite
from tagjoin.sim.harness.recording import Violation


class WritesInScope(Checker):
    """S2: writes only touch running instances inside the cluster scope.

    Every accepted write of the leader tag key targets an instance the scenario launched that is
    running at the time of the call and carries the cluster's scope tag.
    """

    name = "S2"

    def observe(self, event: Observation) -> list[Violation]:
        if not isinstance(event, TagWrite) or (event.target_running and event.target_in_scope):
            return []
        return [self.violation(event.t, f"{event.writer} wrote {event.action} to {event.instance} outside scope")]
