"""What a scenario records: ground truth, tag state, writes, faults and joiners, in virtual ms."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LeaderSpan:
    start: int
    end: int | None  # None: still leading when the run ended
    node: str
    term: int


@dataclass(frozen=True)
class TagSample:
    """The running instances carrying the leader tag right after a change, by node name.

    With EC2's lag on (ScenarioConfig.ec2_lag), as a node booting at that instant would read them
    (scenario.SEEN_BY), not as EC2 holds them: what a joiner would join is what its reads show."""

    t: int
    holders: Mapping[str, str]  # node name → tag value


@dataclass(frozen=True)
class Write:
    t: int
    writer: str
    action: str  # CreateTags / DeleteTags
    target: str  # node name of the instance written (or "?" for an unknown instance)
    value: str
    writer_term: int  # the writer's term when it planned (0 for naive writers)
    newest_term: int  # highest term any leader had reached at write time
    target_running: bool
    target_in_scope: bool
    removed: bool = False  # a delete that actually removed a tag


@dataclass(frozen=True)
class FaultSpan:
    start: int
    end: int
    kind: str
    target: str


@dataclass(frozen=True)
class Joiner:
    arrive: int
    joined: int | None  # when it became a member, None if it never did within the deadline
    via: str | None  # address it joined through


@dataclass(frozen=True)
class Violation:
    invariant: str  # S1..S4, L1, L2
    t: int
    detail: str


@dataclass
class Recording:
    seed: int
    strategy: str
    duration_ms: int
    leaders: list[LeaderSpan] = field(default_factory=list)
    tags: list[TagSample] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    faults: list[FaultSpan] = field(default_factory=list)
    joiners: list[Joiner] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    ec2_calls: dict[str, int] = field(default_factory=dict)
    throttled: int = 0
    failovers: int = 0
    schedule: list[str] = field(default_factory=list)  # the fault schedule, for reproducing a violation

    def leader_at(self, t: int) -> LeaderSpan | None:
        for span in self.leaders:
            if span.start <= t and (span.end is None or t < span.end):
                return span
        return None

    def tags_at(self, t: int) -> Mapping[str, str]:
        current: Mapping[str, str] = {}
        for sample in self.tags:
            if sample.t > t:
                break
            current = sample.holders
        return current
