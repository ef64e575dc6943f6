"""Metrics from recordings (docs/design.md §4): convergence, tag windows, join availability, EC2 cost."""

from __future__ import annotations

import itertools
import math
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


def _dist(values: Sequence[float]) -> dict[str, float | None]:
    return {
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
    }


def summarise(recordings: Iterable[Recording]) -> Summary:
    recs = list(recordings)
    metrics = [run_metrics(r) for r in recs]
    violations: dict[str, int] = {}
    seeds: dict[str, list[int]] = {}
    for rec in recs:
        for name in sorted({v.invariant for v in rec.violations}):
            violations[name] = violations.get(name, 0) + 1
            seeds.setdefault(name, []).append(rec.seed)
    calls: dict[str, int] = {}
    for rec in recs:
        for action, n in rec.ec2_calls.items():
            calls[action] = calls.get(action, 0) + n
    failovers = sum(r.failovers for r in recs)
    joiners = sum(m.joiners for m in metrics)
    return Summary(
        runs=len(recs),
        violations=violations,
        violating_seeds=seeds,
        convergence_from_fault=_dist([x for m in metrics for x in m.convergence_from_fault_ms]),
        convergence_from_leader=_dist([x for m in metrics for x in m.convergence_from_leader_ms]),
        unconverged=sum(m.unconverged for m in metrics),
        zero_tag_ms=sum(m.windows.zero_ms for m in metrics),
        several_tag_ms=sum(m.windows.several_ms for m in metrics),
        stale_tag_ms=sum(m.windows.stale_ms for m in metrics),
        runs_with_zero_tag=sum(1 for m in metrics if m.windows.zero_ms),
        runs_with_stale_tag=sum(1 for m in metrics if m.windows.stale_ms),
        join_availability=(sum(m.joined for m in metrics) / joiners) if joiners else None,
        ec2_calls_per_failover={a: n / failovers for a, n in sorted(calls.items())} if failovers else {},
        ec2_calls_total=dict(sorted(calls.items())),
        throttled=sum(r.throttled for r in recs),
        failovers=failovers,
    )
