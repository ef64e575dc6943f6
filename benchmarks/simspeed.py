"""4. Simulator throughput, on either EC2 path, and where its time goes (cProfile).

Side by side in one run: the sweep's default matrix (`tagjoin sim run`: fenced, 3 servers + 2
clients, 90 virtual s, one fault a seed from every kind) on the `direct` EC2 path (the adapter on
moto's models, the default) and on the `boto3` path (botocore over moto), in alternating rounds of
worker processes (benchmarks/sim_profile.py --time), wall and CPU time. Then the older 60 s
leader-crash scenario, fenced and naive, timed by pyperf (benchmarks/sim_pyperf.py).

Where the time goes: the default matrix under cProfile on each path (benchmarks/sim_profile.py).
Every function's own time goes to its package: the simulator (sim/), production code (core/), moto
(and what only moto uses), botocore (boto3, botocore and their libraries), httpx. Time in the
standard library and builtins goes to whoever called it, edge by edge (cProfile records own time
per caller), so `json.loads` called by botocore counts for botocore and `heapq.heappush` called by
the engine counts for the simulator.
"""

from __future__ import annotations

import json
import pstats
import subprocess
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.common import BENCH, PYTHON, ROOT, Section, Stats, Table, fmt_ms, ratio

SIM = "simulator (sim/)"
CORE = "production code (core/)"
MOTO = "moto"
BOTO = "botocore, boto3"
HTTPX = "httpx (the Consul client's library)"
OTHER = "other (entry, unattributed)"
CATEGORIES = (SIM, CORE, MOTO, BOTO, HTTPX, OTHER)
_MOTO_PACKAGES = ("moto", "responses", "werkzeug", "xmltodict", "jinja2", "markupsafe", "cfn_lint", "yaml", "requests")
_BOTO_PACKAGES = ("botocore", "boto3", "s3transfer", "dateutil", "jmespath", "urllib3", "cryptography")
_HTTPX_PACKAGES = ("httpx", "httpcore", "h11", "anyio", "sniffio", "idna", "certifi")
# The folders install as tagjoin.sim and tagjoin.core through symlinks: a profile names either path.
_SIM_DIRS = (str(ROOT / "sim") + "/", str(ROOT / "tagjoin" / "sim") + "/")
_CORE_DIRS = (str(ROOT / "core") + "/", str(ROOT / "tagjoin" / "core") + "/")
MATRIX_SEEDS = 20  # per round and path
PATHS = ("direct", "boto3")

Func = tuple[str, int, str]


def category(func: Func) -> str | None:
    path = func[0]
    if path.startswith(_SIM_DIRS):
        return SIM
    if path.startswith(_CORE_DIRS):
        return CORE
    if "site-packages/" in path:
        package = path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
        if package in _MOTO_PACKAGES:
            return MOTO
        if package in _BOTO_PACKAGES:
            return BOTO
        if package in _HTTPX_PACKAGES:
            return HTTPX
        return None
    return None  # standard library, builtins ("~"), <string>…


def attribute(stats: Mapping[Func, Any], rounds: int = 60) -> dict[str, float]:
    """Seconds of own time per category, standard library and builtins charged to their callers."""
    share: dict[Func, dict[str, float]] = {}
    for func in stats:
        cat = category(func)
        share[func] = {cat or OTHER: 1.0}
    unowned = [f for f in stats if category(f) is None]
    for _ in range(rounds):  # propagate callers' mixes down chains of standard-library calls
        for func in unowned:
            callers = stats[func][4]
            weights: dict[str, float] = defaultdict(float)
            total = 0.0
            for caller, edge in callers.items():
                w = float(edge[3])
                for cat, part in share.get(caller, {OTHER: 1.0}).items():
                    weights[cat] += w * part
                total += w
            if total > 0:
                share[func] = {cat: w / total for cat, w in weights.items()}
    seconds: dict[str, float] = defaultdict(float)
    for func, (_cc, _nc, tt, _ct, callers) in stats.items():
        cat = category(func)
        if cat is not None:
            seconds[cat] += tt
            continue
        if not callers:
            seconds[OTHER] += tt
            continue
        for caller, edge in callers.items():
            for c, part in share.get(caller, {OTHER: 1.0}).items():
                seconds[c] += float(edge[2]) * part
    return dict(seconds)


def top_own(stats: Mapping[Func, Any], cat: str, n: int = 6) -> list[tuple[str, float]]:
    rows = [(f, v[2]) for f, v in stats.items() if category(f) == cat]
    rows.sort(key=lambda r: -r[1])
    return [(f"{Path(f[0]).parent.name}/{Path(f[0]).name}:{f[2]}", tt) for f, tt in rows[:n]]


def _matrix_rounds(rounds: int, seeds: int) -> dict[str, list[dict[str, float]]]:
    """Each round runs the same seeds on each path, one worker process a path, paths alternating."""
    got: dict[str, list[dict[str, float]]] = {p: [] for p in PATHS}
    for r in range(rounds):
        for path in PATHS if r % 2 == 0 else tuple(reversed(PATHS)):
            done = subprocess.run(
                [PYTHON, str(BENCH / "sim_profile.py"), "--time", str(seeds), "--ec2", path, "--matrix", "default"],
                check=True,
                timeout=1800,
                capture_output=True,
                text=True,
            )
            got[path].append(json.loads(done.stdout.strip().splitlines()[-1]))
    return got


def _profile(out_dir: Path, path: str, seeds: int) -> dict[Func, Any]:
    prof = out_dir / f"matrix-{path}.prof"
    cmd = [PYTHON, str(BENCH / "sim_profile.py"), str(prof), str(seeds), "--ec2", path, "--matrix", "default"]
    subprocess.run(cmd, check=True, timeout=1800)
    stats: dict[Func, Any] = pstats.Stats(str(prof)).stats  # type: ignore[attr-defined]
    return stats


def run(out_dir: Path, *, quick: bool = False) -> Section:
    section = Section("4. Simulator throughput and where its time goes")
    out_dir.mkdir(parents=True, exist_ok=True)

    # -- the default matrix, both EC2 paths ---------------------------------------------------------
    rounds, seeds = (2, 4) if quick else (4, MATRIX_SEEDS)
    got = _matrix_rounds(rounds, seeds)
    per_wall = {p: Stats.of([r["scenarios"] / r["wall_s"] for r in got[p]]) for p in PATHS}
    per_cpu = {p: Stats.of([r["scenarios"] / r["cpu_s"] for r in got[p]]) for p in PATHS}
    t = Table(
        [
            "EC2 path",
            "scenarios/s, wall (median / min / max)",
            "scenarios/s, CPU time (median / min / max)",
            "CPU ms per scenario (median)",
            "ratio (direct ÷ boto3, CPU)",
        ]
    )
    for p in PATHS:
        w, c = per_wall[p], per_cpu[p]
        t.add(
            f"`--ec2 {p}`",
            f"{w.median:.1f} / {w.min:.1f} / {w.max:.1f}",
            f"{c.median:.1f} / {c.min:.1f} / {c.max:.1f}",
            fmt_ms(1 / c.median),
            ratio(per_cpu["direct"].median, per_cpu["boto3"].median) if p == "direct" else "",
        )
    section.text(
        "The sweep's default matrix (`tagjoin sim run` with its defaults: fenced, 3 servers + 2 clients, 90 "
        f"virtual s, one fault a seed from all {_fault_count()} kinds, 3 joiners), one core: {rounds} rounds, "
        f"each running seeds 0-{seeds - 1} in one worker process per path, the paths alternating; a worker "
        "shares one started moto mock between its worlds (`kept_running`) and runs "
        "one warm-up scenario first. CPU time is the worker's own (`time.process_time`), the figure to "
        "compare on a machine shared with other work; wall time is what a user waits."
    )
    section.table(t)

    # -- where the time goes, per path ----------------------------------------------------------------
    prof_seeds = 3 if quick else 10
    profiles = {p: _profile(out_dir, p, prof_seeds) for p in PATHS}
    split = {p: attribute(stats) for p, stats in profiles.items()}
    direct_stats = profiles["direct"]
    pt = Table(["where the time goes (cProfile, own time)", *(f"`{p}`: s / share" for p in PATHS)])
    for cat in CATEGORIES:
        cells = []
        for p in PATHS:
            total = sum(split[p].values())
            cells.append(f"{split[p].get(cat, 0.0):.2f} / {100 * split[p].get(cat, 0.0) / total:.0f}%")
        pt.add(cat, *cells)
    pt.add("total", *(f"{sum(split[p].values()):.2f}" for p in PATHS))
    section.text(
        f"cProfile over {prof_seeds} scenarios of the same matrix on each path (cProfile slows Python code "
        "several-fold, so the shares matter, not the seconds). Own time by package; standard-library and "
        "builtin time is charged to its callers."
    )
    section.table(pt)
    section.text(
        "Largest own times on the `direct` path: "
        + "; ".join(
            f"{cat}: " + ", ".join(f"`{name}` {fmt_ms(tt)} ms" for name, tt in top_own(direct_stats, cat, 4))
            for cat in (SIM, CORE, MOTO, HTTPX)
        )
        + "."
    )

    # -- the keepers' calls: what production code alone costs a scenario ------------------------------
    done = subprocess.run(
        [PYTHON, str(BENCH / "sim_profile.py"), "--calls", "3" if quick else "7"],
        check=True,
        timeout=900,
        capture_output=True,
        text=True,
    )
    us = json.loads(done.stdout.strip().splitlines()[-1])
    per_scenario = {call: _ncalls(direct_stats, call) / prof_seeds for call in ("agent_self", "health_state")}
    ct = Table(["keeper call", "calls per scenario", "whole call, µs", "simulated answer, µs", "production side, µs"])
    floor_ms = 0.0
    for label, call, key in (("`agent/self`", "agent_self", "agent_self"), ("health state", "health_state", "health")):
        whole, answer, response = us[f"{key}_call"], us[f"{key}_answer"], us[f"{key}_response"]
        production = whole - answer - response
        floor_ms += per_scenario[call] * production / 1000
        ct.add(label, f"{per_scenario[call]:.0f}", f"{whole:.0f}", f"{answer + response:.0f}", f"{production:.0f}")
    section.text(
        "What production code alone costs a scenario: every keeper asks its agent's health state (blocking, "
        "at most 1 s) and then `agent/self` each loop, so 3 servers make most of a scenario's steps these two "
        "calls (counted in the profile above). Each call timed on a settled cluster (median of rounds of "
        "2,000, `sim_profile.py --calls`): the whole call as the keeper makes it, the simulated agent's "
        "answer with the response object it comes back as, and the rest, production code and its libraries "
        f"(core's Consul client, httpx's response, json). That rest comes to {floor_ms:.0f} ms a scenario: "
        f"with a simulator that cost nothing, one core would run at most {1000 / floor_ms:.0f} scenarios/s "
        "while the production code stays in the loop."
    )
    section.table(ct)

    # -- the older scenario, pyperf ----------------------------------------------------------------------
    pyperf_out = out_dir / "pyperf-scenarios.json"
    pyperf_out.unlink(missing_ok=True)
    processes, values, loops = (2, 1, 2) if quick else (4, 3, 5)
    subprocess.run(
        [
            PYTHON,
            str(BENCH / "sim_pyperf.py"),
            "-o",
            str(pyperf_out),
            "--quiet",
            "--processes",
            str(processes),
            "--values",
            str(values),
            "--warmups",
            "1",
            "--loops",
            str(loops),
        ],
        check=True,
        timeout=900,
        capture_output=True,
    )
    import pyperf

    suite = pyperf.BenchmarkSuite.load(str(pyperf_out))
    per: dict[str, Stats] = {b.get_name(): Stats.of(b.get_values()) for b in suite.get_benchmarks()}
    fenced, naive = per["scenario-fenced"], per["scenario-naive"]
    t2 = Table(
        [
            "strategy",
            "time per scenario, ms (median / min / max)",
            "scenarios per second (median)",
            "ratio (naive ÷ fenced time)",
        ]
    )
    t2.add("fenced", " / ".join(fenced.ms()), f"{1 / fenced.median:.1f}", "")
    t2.add("naive", " / ".join(naive.ms()), f"{1 / naive.median:.1f}", ratio(naive.median, fenced.median))
    section.text(
        "The older figure, for comparison with earlier runs: `run_scenario` with 3 servers + 2 clients, 60 "
        "virtual s, one leader crash, 3 joiners, on the default (`direct`) path, each scenario starting and "
        f"stopping its own moto mock; pyperf, {processes} worker processes x {values} values x {loops} "
        f"scenarios (seeds 0-{loops - 1}) after a warm-up; a value is the mean wall time of one scenario."
    )
    section.table(t2)

    direct = per_cpu["direct"].median
    section.aim(
        "≥ 30 scenarios/s on one core on the default matrix (aim 50), the `boto3` path measured beside it",
        direct >= 30,
        f"{direct:.1f} scenarios/s CPU ({per_wall['direct'].median:.1f} wall) on `direct`, "
        f"{per_cpu['boto3'].median:.1f} on `boto3` ({ratio(direct, per_cpu['boto3'].median)})",
    )
    return section


def _ncalls(stats: Mapping[Func, Any], name: str) -> int:
    """Calls of core's `ConsulClient.<name>` in a profile."""
    return sum(v[1] for f, v in stats.items() if f[2] == name and f[0].endswith("core/consul/client.py"))


def _fault_count() -> int:
    from tagjoin.sim.harness.scenario import FAULT_KINDS

    return len(FAULT_KINDS)
