"""9. Seed sweeps on every core and on Dask: `--jobs 1` vs `--jobs 2`, Dask's start-up and per-task
overhead, and what one seed costs (the figure a 1,000,000-seed estimate is made from).

.venv/bin/python -m benchmarks --only sweep          # into RESULTS.md
.venv/bin/python -m benchmarks.sweep --seeds 100     # the tables alone, on stdout

Everything runs on this machine: the sweeps as `tagjoin sim run` processes (start-up included, as a
user sees it), Dask as a `distributed.LocalCluster` of 2 worker processes (1 thread each) on
127.0.0.1 with its dashboard off. Every sweep's `--json` report is compared with the `--jobs 1` one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, Section, Stats, Table, load_average, tool


def _sweep(seeds: int, *how: str) -> tuple[float, str]:
    """Wall time of `tagjoin sim run --seeds N --quiet --json …` and its report."""
    cmd = [tool("tagjoin"), "sim", "run", "--seeds", str(seeds), "--quiet", "--json", *how]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)}: exit {done.returncode}: {done.stderr[-2000:]}")
    return wall, done.stdout


def per_seed_seconds(seeds: int) -> Stats:
    """One core's time per seed (default scenario, fenced), measured in this process chunk by chunk."""
    from tagjoin.sim.harness.scenario import ScenarioConfig
    from tagjoin.sim.harness.sweep_pool import SweepPlan, run_chunk

    plan = SweepPlan.of([ScenarioConfig(seed=0)], range(1000, 1000 + seeds), chunk_size=1)
    return Stats.of([run_chunk(chunk).seconds for chunk in plan.chunks()])


def dask_overheads(rounds: int, tasks: int) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    starts: list[float] = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        with (
            LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            client.wait_for_workers(2)
            starts.append(time.perf_counter() - t0)
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None)
    client = Client(cluster)
    try:
        client.wait_for_workers(2)
        client.submit(abs, -1, pure=False).result()  # warm
        round_trips = []
        for i in range(50):
            t0 = time.perf_counter()
            client.submit(abs, -i, pure=False).result()
            round_trips.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        client.gather([client.submit(abs, -i, pure=False) for i in range(tasks)])
        batch = time.perf_counter() - t0
        return {
            "address": cluster.scheduler_address,
            "cluster": cluster,
            "client": client,
            "start": Stats.of(starts),
            "round_trip": Stats.of(round_trips),
            "per_task_batch": batch / tasks,
            "tasks": tasks,
        }
    except BaseException:
        client.close()
        cluster.close()
        raise


def measure(seeds: int, rounds: int, tasks: int) -> dict[str, Any]:
    results: dict[str, Any] = {"seeds": seeds, "rounds": rounds, "load_before": load_average()}
    walls: dict[str, list[float]] = {"1": [], "2": []}
    reports: dict[str, str] = {}
    for _ in range(rounds):  # alternate, so both see the same machine
        for jobs in ("1", "2"):
            wall, report = _sweep(seeds, "--jobs", jobs)
            walls[jobs].append(wall)
            reports.setdefault(jobs, report)
            if report != reports["1"] and jobs == "2":
                raise RuntimeError("--jobs 2 gave another report than --jobs 1")
    results["jobs"] = {k: Stats.of(v) for k, v in walls.items()}
    results["startup"] = Stats.of([_sweep(1, "--jobs", "1")[0] for _ in range(rounds)])
    results["per_seed"] = per_seed_seconds(max(10, seeds // 2))
    dask = dask_overheads(rounds, tasks)
    try:
        dask_walls = []
        for _ in range(rounds):
            wall, report = _sweep(seeds, "--dask", dask["address"])
            if report != reports["1"]:
                raise RuntimeError("--dask gave another report than --jobs 1")
            dask_walls.append(wall)
        results["dask_sweep"] = Stats.of(dask_walls)
    finally:
        dask["client"].close()
        dask["cluster"].close()
    results["dask"] = {k: v for k, v in dask.items() if k not in ("client", "cluster", "address")}
    results["identical"] = True
    results["load_after"] = load_average()
    return results


def tables(r: dict[str, Any]) -> list[str]:
    seeds, jobs = r["seeds"], r["jobs"]
    one = jobs["1"].median
    t = Table(
        [
            "how",
            "wall time, s (median / min / max)",
            "seeds/s",
            "speed-up (medians)",
            "speed-up (fastest runs)",
            "report",
        ]
    )
    rows = [
        ("`--jobs 1` (in process)", jobs["1"], "reference"),
        ("`--jobs 2` (2 worker processes)", jobs["2"], "identical"),
        ("`--dask` (LocalCluster, 2 worker processes)", r["dask_sweep"], "identical"),
    ]
    for how, st, report in rows:
        t.add(
            how,
            f"{st.median:.1f} / {st.min:.1f} / {st.max:.1f}",
            f"{seeds / st.median:.1f}",
            f"{one / st.median:.2f}x",
            f"{jobs['1'].min / st.min:.2f}x",
            report,
        )
    dk = r["dask"]
    o = Table(["figure", "value"])
    o.add("`tagjoin sim run --seeds 1 --jobs 1` (process start-up, imports, one seed)", f"{r['startup'].median:.2f} s")
    ps = r["per_seed"]
    o.add(
        "one seed on one core (default scenario, fenced; in process)",
        f"{ps.median * 1000:.0f} ms median, {statistics.fmean(ps.values) * 1000:.0f} ms mean (n = {ps.n})",
    )
    o.add(
        "LocalCluster start-up (2 worker processes, until both registered)",
        f"{dk['start'].median:.2f} s (min {dk['start'].min:.2f}, max {dk['start'].max:.2f})",
    )
    o.add(
        "Dask round trip of a no-op task (submit → result, one at a time)",
        f"{dk['round_trip'].median * 1000:.2f} ms median",
    )
    o.add(
        f"Dask per-task overhead, {dk['tasks']} no-op tasks at once on 2 workers",
        f"{dk['per_task_batch'] * 1000:.2f} ms a task",
    )
    chunk_ms = 10 * ps.median * 1000
    o.add(
        "that overhead against a 10-seed chunk",
        f"{dk['round_trip'].median * 1000 / chunk_ms * 100:.2f}% of the chunk's {chunk_ms / 1000:.1f} s",
    )
    return [t.markdown(), o.markdown()]


def run(out: Path, quick: bool = False) -> Section:
    out.mkdir(parents=True, exist_ok=True)
    seeds, rounds, tasks = (20, 1, 100) if quick else (100, 3, 500)
    r = measure(seeds, rounds, tasks)
    section = Section("9. Seed sweeps on every core and on Dask")
    section.text(
        f"`tagjoin sim run --seeds {seeds} --quiet --json` (default scenario: fenced, 3 servers + 2 clients, "
        f"90 virtual s, every fault kind) as a process, {rounds} alternating round(s) per way; "
        f"load average at start {r['load_before']}, at end {r['load_after']}. "
        f"Every report is byte-identical to the `--jobs 1` one. Dask: a LocalCluster of 2 worker processes "
        f"(1 thread each) on 127.0.0.1, dashboard off; the sweep's first chunks include the workers' import of "
        f"the simulator.",
        *tables(r),
    )
    jobs = r["jobs"]
    two = jobs["1"].median / jobs["2"].median
    section.aim(
        "`--jobs 2` faster than `--jobs 1`, same report byte for byte",
        two > 1.0,
        f"{two:.2f}x on medians ({jobs['1'].min / jobs['2'].min:.2f}x on the fastest runs), identical",
    )
    return section


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=500)
    args = parser.parse_args()
    r = measure(args.seeds, args.rounds, args.tasks)
    print(f"{os.cpu_count()} CPUs, load {r['load_before']} → {r['load_after']}")
    print("\n\n".join(tables(r)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
