"""S3: a stale writer never removes, outranks or lowers the leader's tag."""

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
      before the write (`joiner_rank`);
    and no write, the leader's own node's included, may lower the leader's tag below a value of
    at most its term: a stalled older-term pass on the leader's node does that when two tag
    processes overlap there (CreateTags is unconditional), and a stale former leader's delete,
    conditional on that older value, can then take the tag off the leader. A tag above the
    leader's term is debris of an earlier cluster and may go down.

    A term-valued tag on the leader's instance counts as the leader's once it carries the
    leader's own term. Before the leader's first pass of its term, its instance may still carry
    a tag from one of its earlier terms, older than the terms of passes already under way
    elsewhere: with leadership A(2) → B(3) → A(4), B's pass, stalled after its last look, tags B
    with 3 and deletes A's `2` (the value still matches). EC2 conditions a delete on the value
    alone and a create on nothing, so no look before a write can close that window; what the
    fence does guarantee is that the tag a leader writes in its own term (a value no earlier
    pass has seen) is never removed or outranked, and L1 bounds how long the tag stays off the
    leader. Untermed values (the naive scheme's `true`) have no such notion and are judged
    strictly.
    """

    name = "S3"

    def __init__(self, *, own_term_only: bool = True) -> None:
        # False judges every term-valued tag on the leader's instance as the leader's: the
        # stricter rule that the window described above breaks, kept to show a seed reaches it.
        self.own_term_only = own_term_only

    def observe(self, event: Observation) -> list[Violation]:
        if not isinstance(event, TagWrite):
            return []
        leader, leader_instance = event.leader, event.leader_instance
        if leader is None or leader_instance is None:
            return []
        found = []
        leader_tag = event.tags_before.get(leader_instance)
        if (
            event.action == "CreateTags"
            and event.instance == leader_instance
            and leader_tag is not None
            and joiner_rank(event.value) < joiner_rank(leader_tag) <= leader.term
        ):
            found.append(
                self.violation(
                    event.t, f"{event.writer} lowered leader {leader.node}'s tag {leader_tag} to {event.value}"
                )
            )
        if event.writer == leader.node or (self.own_term_only and not _leaders_own(leader_tag, leader.term)):
            return found
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


def _leaders_own(tag: str | None, term: int) -> bool:
    """Whether the leader's instance carries a tag that a stale writer must leave alone."""
    value = parse_term(tag)
    return value is None or value >= term
