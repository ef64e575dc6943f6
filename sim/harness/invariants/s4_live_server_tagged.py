"""S4: the tag never leaves every live server."""

from __future__ import annotations

from tagjoin.sim.harness.invariants.checker import Checker
from tagjoin.sim.harness.invariants.observations import Observation, TagWrite
from tagjoin.sim.harness.recording import Violation


class LiveServerStaysTagged(Checker):
    """S4: with a leader and a tag in place, there is never a moment with no running tagged live server.

    Judged on removals: no accepted write removes the tag from an instance of a live server (its
    agent is up) when no other running instance of the cluster that carries the tag is a live server.
    A handoff therefore tags the new holder before it untags the old one.
    """

    name = "S4"

    def observe(self, event: Observation) -> list[Violation]:
        if not isinstance(event, TagWrite) or not event.removes:
            return []
        live = event.live_servers_before
        if event.instance not in live or live - {event.instance}:
            return []
        return [self.violation(event.t, f"{event.writer} removed the last tag on a live server ({event.target})")]
