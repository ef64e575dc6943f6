"""Text and JSON reports of a seed sweep, side by side when several strategies ran."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from tagjoin.sim.harness.metrics import Summary
from tagjoin.sim.harness.recording import Recording

INVARIANTS = ("S1", "S2", "S3", "S4", "L1", "L2")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value / 1000:.2f}s"


def _rows(summary: Summary) -> list[tuple[str, str]]:
    s = summary
    rows: list[tuple[str, str]] = [("runs", str(s.runs))]
    for name in INVARIANTS:
        count = s.violations.get(name, 0)
        seeds = s.violating_seeds.get(name, [])
        shown = ", ".join(str(x) for x in seeds[:5]) + (" …" if len(seeds) > 5 else "")
        rows.append((f"{name} violations (runs)", f"{count}" + (f" (seeds {shown})" if seeds else "")))
    rows += [
        (
            "convergence from fault p50/p99/max",
            " / ".join(_ms(s.convergence_from_fault[k]) for k in ("p50", "p99", "max")),
        ),
        (
            "convergence from new leader p50/p99/max",
            " / ".join(_ms(s.convergence_from_leader[k]) for k in ("p50", "p99", "max")),
        ),
        ("leader terms never tagged", str(s.unconverged)),
        ("zero-tag time (runs)", f"{_ms(s.zero_tag_ms)} ({s.runs_with_zero_tag})"),
        ("several-tag time", _ms(s.several_tag_ms)),
        ("stale-tag time (runs)", f"{_ms(s.stale_tag_ms)} ({s.runs_with_stale_tag})"),
        (
            "join availability",
            "-" if s.join_availability is None else f"{s.join_availability * 100:.1f}%",
        ),
        ("failovers", str(s.failovers)),
        (
            "EC2 calls per failover",
            ", ".join(f"{a} {n:.1f}" for a, n in s.ec2_calls_per_failover.items()) or "-",
        ),
        ("EC2 calls, all runs", ", ".join(f"{a} {n}" for a, n in s.ec2_calls_total.items()) or "-"),
        ("throttled / failed calls injected", str(s.throttled)),
    ]
    return rows


def render_text(summaries: Mapping[str, Summary]) -> str:
    names = list(summaries)
    table = {name: dict(_rows(summary)) for name, summary in summaries.items()}
    labels = [label for label, _ in _rows(next(iter(summaries.values())))]
    width = max(len(label) for label in labels)
    cols = [max(len(name), *(len(table[name][label]) for label in labels)) for name in names]
    out = [" " * width + "  " + "  ".join(n.ljust(c) for n, c in zip(names, cols, strict=True))]
    for label in labels:
        cells = "  ".join(table[n][label].ljust(c) for n, c in zip(names, cols, strict=True))
        out.append(f"{label.ljust(width)}  {cells}".rstrip())
    return "\n".join(out) + "\n"


def render_violations(recordings: Sequence[Recording], limit: int = 10) -> str:
    lines: list[str] = []
    for rec in recordings:
        for v in rec.violations[:1]:
            schedule = "; ".join(rec.schedule) or "no faults"
            lines.append(f"{rec.strategy} seed {rec.seed}: {v.invariant} at {v.t}ms: {v.detail} [schedule: {schedule}]")
            if len(lines) >= limit:
                return "\n".join(lines) + "\n"
    return "\n".join(lines) + ("\n" if lines else "")


def to_json(summaries: Mapping[str, Summary], recordings: Sequence[Recording]) -> dict[str, Any]:
    return {
        # tag_after_leader_ms: from a leader's election until the tag is on it and nowhere else.
        "strategies": {
            name: {**asdict(s), "tag_after_leader_ms": dict(s.convergence_from_leader)} for name, s in summaries.items()
        },
        "violations": [
            {
                "strategy": r.strategy,
                "seed": r.seed,
                "invariant": v.invariant,
                "t_ms": v.t,
                "detail": v.detail,
                "schedule": r.schedule,
            }
            for r in recordings
            for v in r.violations
        ],
    }
