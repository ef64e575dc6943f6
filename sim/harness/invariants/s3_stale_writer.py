"""S3: a stale writer never removes or outranks the leader's tag."""

from __future__ import annotations

from tagjoin.core.model import parse_term
from tagjoin.sim.harness.invariants.checker import Checker
from tagjoin.sim.harness.invariants.observations import Observation, TagWrite
from tagjoin.sim.harness.recording import Violation


def joiner_rank(value: str | None) -> int:
    """How joiners order tags: by term, a naive `true` below every term."""
    term = parse_term(value)
    return -1 if term is None else term


class StaleWriterFenced(Checker):
    """S3: a stale writer never removes or outranks a newer leader's tag.

    While a leader is followed, an accepted write by any other node must not
    - remove the tag on the leader's instance, nor
    - put on another instance a tag that joiners rank at or above the leader's tag as it stood
      before the write (`joiner_rank`).
    """

    name = "S3"

    def observe(self, event: Observation) -> list[Violation]:
        if not isinstance(event, TagWrite):
            return []
        leader, leader_instance = event.leader, event.leader_instance
        if leader is None or leader_instance is None or event.writer == leader.node:
            return []
        found = []
        leader_tag = event.tags_before.get(leader_instance)
        if event.removes and event.instance == leader_instance:
            current = event.tags_before.get(event.instance)
            found.append(
                self.violation(
                    event.t, f"{event.writer} removed leader {leader.node}'s tag {current} (term {leader.term})"
                )
            )
        if (
            event.action == "CreateTags"
            and event.instance != leader_instance
            and leader_tag is not None
            and joiner_rank(event.value) >= joiner_rank(leader_tag)
        ):
            found.append(
                self.violation(
                    event.t, f"{event.writer} tagged {event.target}={event.value}, outranking leader's {leader_tag}"
                )
            )
        return found
