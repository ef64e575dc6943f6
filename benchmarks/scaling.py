"""11. A scenario's cost against the cluster's size: 3 servers and 0 / 10 / 100 / 300 / 1,000 / 5,000
clients, and the `--preset 5x500` cluster.

.venv/bin/python -m benchmarks --only scaling        # into RESULTS.md (opt-in: it takes minutes)
.venv/bin/python -m benchmarks.scaling --budget 120  # the table alone, on stdout

Each size is one scenario (seed 1, fenced, a server crash, no joiners, EC2 lag on, 90 virtual s, the
kit's auto-join on the servers' tag as a large fleet runs it; `--auto-join cluster` for the default),
run in a process of its own (`python -m benchmarks.scaling --one N`), so the sizes do not share
caches or heap. A size whose scenario passes `--budget` seconds is stopped and the larger ones are
not run: they would cost more still.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import PYTHON, ROOT, Section, Table, load_average

SIZES = (0, 10, 100, 300, 1000, 5000)
DEFAULT_BUDGET_S = 300


def one(servers: int, clients: int, auto_join: str = "servers") -> dict[str, Any]:
    """One scenario in this process: CPU and wall time, peak memory, what it did."""
    from tagjoin.sim.aws.ec2_account import Ec2World
    from tagjoin.sim.harness.scenario import CLUSTER, ScenarioConfig, build, finish
    from tagjoin.sim.kernel.collector import paced_collector

    config = ScenarioConfig(
        seed=1, servers=servers, clients=clients, faults=("crash",), joiners=0, ec2_lag="default", auto_join=auto_join
    )
    cpu, wall = time.process_time(), time.perf_counter()
    # As `run_scenario` runs it, which a sweep and a preset use.
    with paced_collector(), Ec2World(config.seed, CLUSTER) as world:
        s = build(config, world)
        s.cluster.engine.run_until(config.duration_ms)
        finish(s)
        engine = s.cluster.engine
        return {
            "servers": servers,
            "clients": clients,
            "auto_join": auto_join,
            "cpu_s": time.process_time() - cpu,
            "wall_s": time.perf_counter() - wall,
            "events": engine.events_run,
            "trace_lines": engine.trace.count,
            "violations": len(s.rec.violations),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }


def measure(servers: int, clients: int, budget_s: float, auto_join: str = "servers") -> dict[str, Any] | None:
    """`one` in a fresh process; None when it ran past the budget."""
    cmd = [PYTHON, "-m", "benchmarks.scaling", "--one", str(clients), "--servers", str(servers)]
    cmd += ["--auto-join", auto_join]
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=budget_s, check=True)
    except subprocess.TimeoutExpired:
        return None
    row: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return row


def measure_median(
    servers: int, clients: int, budget_s: float, repeat: int
) -> tuple[dict[str, Any] | None, list[float]]:
    """`measure` up to `repeat` times, in turns of a fresh process each: the run with the median
    CPU time, and every run's CPU time. A size whose run takes over REPEAT_UNDER_S runs once: the
    machine's noise (±30% on a 0.2 s run) matters for the small sizes, and the large ones take minutes."""
    runs: list[dict[str, Any]] = []
    for _ in range(repeat):
        row = measure(servers, clients, budget_s)
        if row is None:
            return None, []
        runs.append(row)
        if row["cpu_s"] > REPEAT_UNDER_S:
            break
    runs.sort(key=lambda r: r["cpu_s"])
    return runs[(len(runs) - 1) // 2], [r["cpu_s"] for r in runs]


REPEAT_UNDER_S = 20.0


def table(budget_s: float, progress: bool = True, repeat: int = 3) -> tuple[Table, list[dict[str, Any]], str]:
    rows: list[dict[str, Any]] = []
    t = Table(
        [
            "servers + clients",
            "CPU s (median)",
            "CPU s of each run",
            "wall s",
            "CPU ÷ 100 clients' CPU",
            "events run",
            "trace lines",
            "peak memory, MiB",
            "violations",
        ]
    )
    stopped = ""
    sizes = [(3, n) for n in SIZES] + [(5, 500)]
    base: float | None = None
    for servers, clients in sizes:
        if stopped and servers == 3:
            t.add(f"{servers} + {clients:,}", "not run", "", "", "", "", "", "", "")
            continue
        if progress:
            print(f"scaling: {servers} + {clients} …", file=sys.stderr, flush=True)
        row, cpus = measure_median(servers, clients, budget_s, repeat)
        if row is None:
            stopped = f"{servers} + {clients:,} passed the {budget_s:.0f} s budget"
            t.add(f"{servers} + {clients:,}", f"> {budget_s:.0f} (stopped)", "", "", "", "", "", "", "")
            continue
        rows.append(row)
        if clients == 100 and servers == 3:
            base = row["cpu_s"]
        vs = f"{row['cpu_s'] / base:.1f}x" if base and servers == 3 and clients >= 100 else ""
        t.add(
            f"{servers} + {clients:,}" + (" (`--preset 5x500`)" if servers == 5 else ""),
            f"{row['cpu_s']:.2f}",
            " / ".join(f"{c:.2f}" for c in cpus),
            f"{row['wall_s']:.2f}",
            vs,
            f"{row['events']:,}",
            f"{row['trace_lines']:,}",
            f"{row['peak_rss_mib']:.0f}",
            str(row["violations"]),
        )
    return t, rows, stopped


def run(out_dir: Path, *, quick: bool = False) -> Section:
    section = Section("11. A scenario's cost against the cluster's size")
    out_dir.mkdir(parents=True, exist_ok=True)
    before = load_average()
    t, rows, stopped = table(60 if quick else DEFAULT_BUDGET_S)
    (out_dir / "scaling.json").write_text(json.dumps(rows, indent=1))
    section.text(
        "One scenario per size (seed 1, fenced, a server crash, no joiners, EC2 lag on, 90 virtual s, auto-join on "
        "the servers' tag), each in "
        "a process of its own (`python -m benchmarks.scaling --one N`); CPU time is the process's own, the median "
        f"of up to 3 runs (one for a size whose run takes over {REPEAT_UNDER_S:.0f} s). "
        f"Load average at start {before}, at end {load_average()}."
        + (f" {stopped}; the larger sizes were not run." if stopped else "")
    )
    section.table(t)
    by = {(r["servers"], r["clients"]): r["cpu_s"] for r in rows}
    if (3, 100) in by and (3, 1000) in by:
        growth = by[(3, 1000)] / by[(3, 100)]
        section.aim("1,000 clients at most ~12x the cost of 100 clients", growth <= 12, f"{growth:.0f}x")
    else:
        section.aim("1,000 clients at most ~12x the cost of 100 clients", False, "1,000 clients did not finish")
    return section


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.splitlines()[0])
    parser.add_argument("--one", type=int, metavar="CLIENTS", help="run one scenario in this process, print JSON")
    parser.add_argument("--servers", type=int, default=3)
    parser.add_argument("--auto-join", choices=("cluster", "servers"), default="servers")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, help="seconds a size may take")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size under 20 s; the median is shown")
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.servers, args.one, args.auto_join)))
        return 0
    t, _rows, stopped = table(args.budget, repeat=args.repeat)
    print(t.markdown())
    if stopped:
        print(f"\n{stopped}; the larger sizes were not run.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
