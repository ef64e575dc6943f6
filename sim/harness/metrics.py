"""Metrics from recordings (docs/design.md §4): convergence, tag windows, join availability, EC2 cost."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tagjoin.sim.harness.recording import Recording


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Windows:
    zero_ms: int = 0  # a tag had existed, and now no running instance carries one
    several_ms: int = 0  # more than one running instance carries a tag
    stale_ms: int = 0  # a leader exists, tags exist, and none is on the leader


@dataclass
class RunMetrics:
    seed: int
    convergence_from_fault_ms: list[int] = field(default_factory=list)
    convergence_from_leader_ms: list[int] = field(default_factory=list)
    unconverged: int = 0  # leader spans that ended (or the run ended) before the tag agreed
    windows: Windows = Windows()
    joiners: int = 0
    joined: int = 0


def tag_windows(rec: Recording) -> Windows:
    """Integrate the tag timeline against the leader timeline, event by event."""
    points = sorted(
        {
            0,
            rec.duration_ms,
            *(s.t for s in rec.tags),
            *(s.start for s in rec.leaders),
            *(s.end for s in rec.leaders if s.end is not None),
        }
    )
    zero = several = stale = 0
    seen_tag = False
    for start, end in itertools.pairwise(points):
        holders = rec.tags_at(start)
        leader = rec.leader_at(start)
        width = end - start
        if holders:
            seen_tag = True
        if seen_tag and not holders:
            zero += width
        if len(holders) > 1:
            several += width
        if leader is not None and holders and leader.node not in holders:
            stale += width
    return Windows(zero, several, stale)


def convergence(rec: Recording) -> tuple[list[int], list[int], int]:
    """For each leader span: time from its start (and from the fault before it) until the tag
    is exactly on that leader."""
    from_leader: list[int] = []
    from_fault: list[int] = []
    unconverged = 0
    for span in rec.leaders:
        t = _first_agreement(rec, span.node, span.start, span.end)
        if t is None:
            unconverged += 1
            continue
        from_leader.append(t - span.start)
        fault = max((f.start for f in rec.faults if f.start <= span.start), default=None)
        if fault is not None:
            from_fault.append(t - fault)
    return from_fault, from_leader, unconverged


def _first_agreement(rec: Recording, node: str, start: int, end: int | None) -> int | None:
    stop = rec.duration_ms if end is None else end
    if set(rec.tags_at(start)) == {node}:
        return start
    for sample in rec.tags:
        if start < sample.t <= stop and set(sample.holders) == {node}:
            return sample.t
    return None


def run_metrics(rec: Recording) -> RunMetrics:
    from_fault, from_leader, unconverged = convergence(rec)
    return RunMetrics(
        seed=rec.seed,
        convergence_from_fault_ms=from_fault,
        convergence_from_leader_ms=from_leader,
        unconverged=unconverged,
        windows=tag_windows(rec),
        joiners=len(rec.joiners),
        joined=sum(1 for j in rec.joiners if j.joined is not None),
    )


@dataclass(frozen=True)
class Summary:
    runs: int
    violations: Mapping[str, int]
    violating_seeds: Mapping[str, list[int]]
    convergence_from_fault: Mapping[str, float | None]
    convergence_from_leader: Mapping[str, float | None]
    unconverged: int
    zero_tag_ms: int
    several_tag_ms: int
    stale_tag_ms: int
    runs_with_zero_tag: int
    runs_with_stale_tag: int
    join_availability: float | None
    ec2_calls_per_failover: Mapping[str, float]
    ec2_calls_total: Mapping[str, int]
    throttled: int
    failovers: int


def _dist(counts: Mapping[int, int]) -> dict[str, float | None]:
    """p50, p99 (nearest rank, as `percentile`) and max of values given as value → how often."""
    n = sum(counts.values())
    if not n:
        return {"p50": None, "p99": None, "max": None}
    ordered = sorted(counts.items())

    def rank(q: float) -> float:
        wanted, seen = max(1, math.ceil(q / 100 * n)), 0
        for value, times in ordered:
            seen += times
            if seen >= wanted:
                return value
        return ordered[-1][0]

    return {"p50": rank(50), "p99": rank(99), "max": ordered[-1][0]}


@dataclass
class Tally:
    """What a `Summary` is made of, gathered run by run. Tallies of consecutive runs merge: a sweep
    tallied in chunks (in worker processes, on a cluster) and merged in seed order gives the same
    Summary as one tally of every run, whatever the chunks. Memory stays bounded in the number of
    runs: convergence times are kept as value → count, which percentiles need no more than a list."""

    runs: int = 0
    violating_seeds: dict[str, list[int]] = field(default_factory=dict)  # in order of first appearance
    from_fault: Counter[int] = field(default_factory=Counter)
    from_leader: Counter[int] = field(default_factory=Counter)
    unconverged: int = 0
    zero_tag_ms: int = 0
    several_tag_ms: int = 0
    stale_tag_ms: int = 0
    runs_with_zero_tag: int = 0
    runs_with_stale_tag: int = 0
    joiners: int = 0
    joined: int = 0
    calls: dict[str, int] = field(default_factory=dict)
    throttled: int = 0
    failovers: int = 0

    def add(self, rec: Recording) -> None:
        m = run_metrics(rec)
        self.runs += 1
        for name in sorted({v.invariant for v in rec.violations}):
            self.violating_seeds.setdefault(name, []).append(rec.seed)
        self.from_fault.update(m.convergence_from_fault_ms)
        self.from_leader.update(m.convergence_from_leader_ms)
        self.unconverged += m.unconverged
        self.zero_tag_ms += m.windows.zero_ms
        self.several_tag_ms += m.windows.several_ms
        self.stale_tag_ms += m.windows.stale_ms
        self.runs_with_zero_tag += 1 if m.windows.zero_ms else 0
        self.runs_with_stale_tag += 1 if m.windows.stale_ms else 0
        self.joiners += m.joiners
        self.joined += m.joined
        for action, n in rec.ec2_calls.items():
            self.calls[action] = self.calls.get(action, 0) + n
        self.throttled += rec.throttled
        self.failovers += rec.failovers

    def merge(self, later: Tally) -> None:
        """Add the tally of the runs that come after this one's."""
        self.runs += later.runs
        for name, seeds in later.violating_seeds.items():
            self.violating_seeds.setdefault(name, []).extend(seeds)
        self.from_fault.update(later.from_fault)
        self.from_leader.update(later.from_leader)
        for attr in (
            "unconverged",
            "zero_tag_ms",
            "several_tag_ms",
            "stale_tag_ms",
            "runs_with_zero_tag",
            "runs_with_stale_tag",
            "joiners",
            "joined",
            "throttled",
            "failovers",
        ):
            setattr(self, attr, getattr(self, attr) + getattr(later, attr))
        for action, n in later.calls.items():
            self.calls[action] = self.calls.get(action, 0) + n

    def summary(self) -> Summary:
        calls, failovers = self.calls, self.failovers
        return Summary(
            runs=self.runs,
            violations={name: len(seeds) for name, seeds in self.violating_seeds.items()},
            violating_seeds={name: list(seeds) for name, seeds in self.violating_seeds.items()},
            convergence_from_fault=_dist(self.from_fault),
            convergence_from_leader=_dist(self.from_leader),
            unconverged=self.unconverged,
            zero_tag_ms=self.zero_tag_ms,
            several_tag_ms=self.several_tag_ms,
            stale_tag_ms=self.stale_tag_ms,
            runs_with_zero_tag=self.runs_with_zero_tag,
            runs_with_stale_tag=self.runs_with_stale_tag,
            join_availability=(self.joined / self.joiners) if self.joiners else None,
            ec2_calls_per_failover={a: n / failovers for a, n in sorted(calls.items())} if failovers else {},
            ec2_calls_total=dict(sorted(calls.items())),
            throttled=self.throttled,
            failovers=failovers,
        )


def summarise(recordings: Iterable[Recording]) -> Summary:
    tally = Tally()
    for rec in recordings:
        tally.add(rec)
    return tally.summary()
