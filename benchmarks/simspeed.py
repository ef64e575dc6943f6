"""4. Simulator throughput (pyperf) and where its time goes (cProfile).

Throughput: `run_scenario` with 3 servers + 2 clients, 60 virtual seconds and one leader crash,
fenced and naive, timed by pyperf in worker processes (benchmarks/sim_pyperf.py).

Where the time goes: the same fenced scenarios under cProfile (benchmarks/sim_profile.py). Every
function's own time goes to its package: the AWS stack (moto, botocore, boto3 and the libraries
they call into), the simulator and core (sim/, core/), httpx (the Consul client's transport, routed
in process to the simulated agents). Time in the standard library and builtins goes to whoever
called it, edge by edge (cProfile records own time per caller), so `json.loads` called by botocore
counts for the AWS stack and `heapq.heappush` called by the engine counts for the simulator.
"""

from __future__ import annotations

import pstats
import subprocess
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.common import BENCH, PYTHON, ROOT, Section, Stats, Table, fmt_ms, ratio

AWS = "AWS stack (moto, botocore, boto3, …)"
SIM = "simulator + core (sim/, core/)"
HTTPX = "httpx (in-process Consul transport)"
OTHER = "other (entry, unattributed)"
CATEGORIES = (AWS, SIM, HTTPX, OTHER)
_AWS_PACKAGES = (
    "moto",
    "botocore",
    "boto3",
    "s3transfer",
    "responses",
    "werkzeug",
    "xmltodict",
    "jinja2",
    "markupsafe",
    "dateutil",
    "jmespath",
    "urllib3",
    "requests",
    "cryptography",
    "cfn_lint",
    "yaml",
)
_HTTPX_PACKAGES = ("httpx", "httpcore", "h11", "anyio", "sniffio", "idna", "certifi")

Func = tuple[str, int, str]


def category(func: Func) -> str | None:
    path = func[0]
    if path.startswith((str(ROOT / "sim") + "/", str(ROOT / "core") + "/")):
        return SIM
    if "site-packages/" in path:
        package = path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
        if package in _AWS_PACKAGES:
            return AWS
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


def run(out_dir: Path, *, quick: bool = False) -> Section:
    section = Section("4. Simulator throughput and where its time goes")
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "pyperf-scenarios.json"
    out.unlink(missing_ok=True)
    processes, values, loops = (2, 1, 2) if quick else (4, 3, 5)
    subprocess.run(
        [
            PYTHON,
            str(BENCH / "sim_pyperf.py"),
            "-o",
            str(out),
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

    suite = pyperf.BenchmarkSuite.load(str(out))
    per: dict[str, Stats] = {b.get_name(): Stats.of(b.get_values()) for b in suite.get_benchmarks()}
    fenced, naive = per["scenario-fenced"], per["scenario-naive"]

    prof = out_dir / "scenarios.prof"
    seeds = 3 if quick else 10
    subprocess.run([PYTHON, str(BENCH / "sim_profile.py"), str(prof), str(seeds)], check=True, timeout=900)
    stats: dict[Func, Any] = pstats.Stats(str(prof)).stats  # type: ignore[attr-defined]
    seconds = attribute(stats)
    total = sum(seconds.values())

    t = Table(
        [
            "strategy",
            "time per scenario, ms (median / min / max)",
            "scenarios per second (median)",
            "ratio (naive ÷ fenced time)",
        ]
    )
    t.add("fenced", " / ".join(fenced.ms()), f"{1 / fenced.median:.1f}", "")
    t.add("naive", " / ".join(naive.ms()), f"{1 / naive.median:.1f}", ratio(naive.median, fenced.median))
    section.text(
        f"`run_scenario`: 3 servers + 2 clients, 60 virtual s, one leader crash, 3 joiners (the default); "
        f"pyperf, {processes} worker processes x {values} values x {loops} scenarios (seeds 0-{loops - 1}) "
        "after a warm-up; a value is the mean time of one scenario."
    )
    section.table(t)
    p = Table(["where the time goes (fenced, cProfile)", "own time, s", "share"])
    for cat in CATEGORIES:
        p.add(cat, f"{seconds.get(cat, 0.0):.2f}", f"{100 * seconds.get(cat, 0.0) / total:.0f}%")
    section.text(
        f"cProfile over {seeds} fenced scenarios ({total:.1f} s of profiled own time; cProfile slows "
        "Python code several-fold, so the shares matter, not the seconds). Own time by package; "
        "standard-library and builtin time is charged to its callers."
    )
    section.table(p)
    sim_share = seconds.get(SIM, 0.0) / total
    tops = top_own(stats, SIM)
    section.text(
        "Largest own times in sim/ and core/: " + ", ".join(f"`{name}` {fmt_ms(tt)} ms" for name, tt in tops) + "."
    )
    section.aim(
        "simulator's own logic under a quarter of its time",
        sim_share < 0.25,
        f"{100 * sim_share:.0f}% own logic, {100 * seconds.get(AWS, 0.0) / total:.0f}% AWS stack; "
        f"{1 / fenced.median:.1f} scenarios/s",
    )
    return section
