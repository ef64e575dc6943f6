"""C1: followers never call EC2, and a leader's pass costs a bounded number of calls."""

from __future__ import annotations

from tagjoin.sim.harness.invariants.checker import Checker
from tagjoin.sim.harness.invariants.observations import Ec2Request, Observation
from tagjoin.sim.harness.recording import Violation


class Ec2CostBounded(Checker):
    """C1: EC2 is called only by a leader's handoff pass, and one pass makes at most its budget of calls.

    Judged on every request attempt of a core tag process (`Ec2Request`): it falls inside a pass,
    and the node was the Raft leader at some instant since that pass began (a pass that proved
    leadership and then lost it may still finish its reads and learn so at the last look). A pass
    makes at most `pass_budget` attempts: two paged reads, one create and one delete per other
    holder, each retried at most the store's max attempts.

    Applies to the fenced and watch strategies only: the naive scheme calls EC2 from every node by
    design. One violation per pass, so a follower that keeps calling is one finding per pass.
    """

    name = "C1"

    def __init__(self) -> None:
        self._reported: set[tuple[str, int | None]] = set()

    def observe(self, event: Observation) -> list[Violation]:
        if not isinstance(event, Ec2Request):
            return []
        key = (event.process, event.pass_started)
        if key in self._reported:
            return []
        if event.pass_started is None:
            detail = f"{event.process} called EC2 {event.action} outside a handoff pass"
        elif not event.led_in_pass:
            detail = f"{event.process} called EC2 {event.action} as a follower (not leader since its pass began)"
        elif event.pass_calls > event.pass_budget:
            detail = f"{event.process}'s pass made {event.pass_calls} EC2 calls, over its budget of {event.pass_budget}"
        else:
            return []
        self._reported.add(key)
        return [self.violation(event.t, detail)]
