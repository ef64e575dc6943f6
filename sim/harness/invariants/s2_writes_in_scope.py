"""S2: writes stay inside the cluster scope."""

from __future__ import annotations

from tagjoin.sim.harness.invariants.checker import Checker
from tagjoin.sim.harness.invariants.observations import Observation, TagWrite
from tagjoin.sim.harness.recording import Violation


class WritesInScope(Checker):
    """S2: writes only touch running instances inside the cluster scope.

    Every accepted write of the leader tag key targets an instance the scenario launched that is
    running at the time of the call and carries the cluster's scope tag — with one exception: a
    value-conditional DeleteTags on an instance of this cluster that stopped or terminated moments
    before. EC2's reads are eventually consistent ("Eventual consistency in the Amazon EC2 API"),
    so a pass can still see such an instance running with its old tag and break it; the delete
    removes only the value the pass read and touches nothing outside the cluster. A create on a
    non-running instance (its tag would come back with it) and any write outside the scope stay
    violations.
    """

    name = "S2"

    def observe(self, event: Observation) -> list[Violation]:
        if not isinstance(event, TagWrite) or (event.target_running and event.target_in_scope):
            return []
        if event.action == "DeleteTags" and event.target_in_scope and event.value is not None:
            return []
        return [self.violation(event.t, f"{event.writer} wrote {event.action} to {event.instance} outside scope")]
