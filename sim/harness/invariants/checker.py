"""The shape every invariant checker has: shown observations as the run goes, then its end.

A checker returns violations the moment it can tell, so that safety breaks are recorded in the
order they happen and a stateful test can look after each step; liveness can only be judged at
the end. Checkers keep whatever state they need between observations.
"""

from __future__ import annotations

from typing import ClassVar

from tagjoin.sim.harness.invariants.observations import Observation, RunEnd
from tagjoin.sim.harness.recording import Violation


class Checker:
    name: ClassVar[str]  # S1..S4, L1, L2: what reports call the invariant

    def observe(self, event: Observation) -> list[Violation]:
        """Violations `event` shows; the default sees none."""
        return []

    def finish(self, end: RunEnd) -> list[Violation]:
        """Violations the end of the run shows; the default sees none."""
        return []

    def violation(self, t: int, detail: str) -> Violation:
        return Violation(self.name, t, detail)


class LivenessChecker(Checker):
    """Judged only on runs that went on for `settle_ms` after the last fault healed.

    A shorter tail says nothing about convergence, so such a run is not held against liveness.
    """

    def __init__(self, settle_ms: int) -> None:
        self.settle_ms = settle_ms

    def settled(self, end: RunEnd) -> bool:
        return end.t - end.healed_at >= self.settle_ms
