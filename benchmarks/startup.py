"""6. Start-up: `tagjoin targets --help`, `tagjoin console --help`, and the node-side import path.

hyperfine for whole commands, with the plain interpreter and the aws CLI's cheapest invocation as
the alternatives measured in the same run; `python -X importtime` for where the import time goes.
"""

from __future__ import annotations

import re
import statistics
import subprocess
from pathlib import Path

from benchmarks.common import PYTHON, Section, Table, hyperfine_rounds, ratio, tool

NODE_IMPORTS = (
    "import tagjoin.core.cli, tagjoin.core.consul.client, tagjoin.core.aws.tag_store, tagjoin.core.aws.connect,"
    " tagjoin.core.ec2_query, tagjoin.core.handoff"
)
# packages whose cumulative import time is reported (first occurrence at any depth)
IMPORT_PARTS = (
    "httpx",
    "httpx._main",
    "tagjoin.core.consul.client",
    "tagjoin.core.aws.tag_store",
    "tagjoin.core.ec2_query",
    "http.client",
    "ssl",
)
_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")


def import_times(runs: int) -> dict[str, float]:
    """Median cumulative import time (s) of IMPORT_PARTS and of the whole statement."""
    samples: dict[str, list[float]] = {}
    for _ in range(runs):
        done = subprocess.run(
            [PYTHON, "-X", "importtime", "-c", NODE_IMPORTS], capture_output=True, text=True, check=True, timeout=60
        )
        seen: dict[str, float] = {}
        total = 0.0
        for line in done.stderr.splitlines():
            m = _LINE.match(line)
            if not m:
                continue
            _self_us, cum_us, indent, name = m.groups()
            if not indent:
                total += int(cum_us) / 1e6
            if name in IMPORT_PARTS and name not in seen:
                seen[name] = int(cum_us) / 1e6
        seen["all imports"] = total
        for name, value in seen.items():
            samples.setdefault(name, []).append(value)
    return {name: statistics.median(values) for name, values in samples.items()}


def run(out_dir: Path, *, quick: bool = False) -> Section:
    section = Section("6. Start-up")
    rounds, runs, warmup = (1, 5, 1) if quick else (3, 7, 1)
    env = {"PATH": str(Path(PYTHON).parent) + ":/usr/bin:/bin", "HOME": str(Path.home())}
    cases = {
        "`tagjoin targets --help`": f"{tool('tagjoin')} targets --help",
        "`tagjoin console --help`": f"{tool('tagjoin')} console --help",
        f'`python -c "{NODE_IMPORTS}"`': f'{PYTHON} -c "{NODE_IMPORTS}"',
        "`aws --version` (alternative)": f"{tool('aws')} --version",
        "`python -c pass` (alternative)": f"{PYTHON} -c pass",
    }
    times = hyperfine_rounds(cases, rounds=rounds, runs=runs, warmup=warmup, env=env, out_dir=out_dir)
    aws, bare = times["`aws --version` (alternative)"], times["`python -c pass` (alternative)"]
    t = Table(["command", "wall, ms (median / min / max)", "vs `aws --version`", "over bare python (fastest runs), ms"])
    for name, s in times.items():
        t.add(name, " / ".join(s.ms()), ratio(aws.median, s.median), f"{(s.min - bare.min) * 1000:.0f}")
    section.text(
        f"hyperfine in {rounds} alternating rounds of {runs} runs (after {warmup} warm-up run) per command; "
        "no AWS or Consul endpoint is contacted."
    )
    section.table(t)
    parts = import_times(3 if quick else 7)
    i = Table(["node-side import (`python -X importtime`)", "cumulative, ms (median of runs)"])
    for name in ("all imports", *IMPORT_PARTS):
        if name in parts:
            i.add(f"`{name}`" if name != "all imports" else "all of the statement", f"{parts[name] * 1000:.0f}")
    section.table(i)
    section.text(
        "`httpx._main` is httpx's command-line client: httpx imports it eagerly, and it pulls in rich, "
        "click and pygments when they are installed (here they come with the console extra); on a node "
        "installed without the console extra that import fails at once and costs nothing. boto3 is not "
        "imported at all on this path (see section 2 for what it would cost)."
    )
    return section
