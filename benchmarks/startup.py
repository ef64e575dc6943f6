"""6. Start-up: `tagjoin targets --help`, `tagjoin console --help`, the node-side import path, the EC2 client.

hyperfine for whole commands, with the plain interpreter and the aws CLI's cheapest invocation as
the alternatives measured in the same run; `python -X importtime` for where the import time goes.
The EC2 client (botocore) is not on the node-side import path: it is built on a pass's first EC2
call, so it has a row of its own, next to what importing boto3 would add.
"""

from __future__ import annotations

import re
import statistics
import subprocess
from pathlib import Path

from benchmarks.common import PYTHON, Section, Table, hyperfine_rounds, ratio, tool

NODE_IMPORTS = (
    "import tagjoin.core.cli, tagjoin.core.consul.client, tagjoin.core.aws.tag_store, tagjoin.core.aws.lazy_ec2,"
    " tagjoin.core.handoff"
)
# What a pass's first EC2 call imports on top of NODE_IMPORTS.
CLIENT_IMPORTS = "import tagjoin.core.aws.boto_ec2"
# packages whose cumulative import time is reported (first occurrence at any depth)
IMPORT_PARTS = (
    "httpx",
    "httpx._main",
    "tagjoin.core.consul.client",
    "tagjoin.core.aws.tag_store",
    "tagjoin.core.aws.lazy_ec2",
)
CLIENT_PARTS = ("botocore.session", "botocore.client", "urllib3")
_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")


def import_times(statement: str, parts: tuple[str, ...], runs: int) -> dict[str, float]:
    """Median cumulative import time (s) of `parts` and of the whole statement."""
    samples: dict[str, list[float]] = {}
    for _ in range(runs):
        done = subprocess.run(
            [PYTHON, "-X", "importtime", "-c", statement], capture_output=True, text=True, check=True, timeout=60
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
            if name in parts and name not in seen:
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
        f'`python -c "{CLIENT_IMPORTS}"` (the EC2 client, botocore)': f'{PYTHON} -c "{CLIENT_IMPORTS}"',
        '`python -c "import boto3"` (for comparison)': f'{PYTHON} -c "import boto3"',
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
    i = Table(["import (`python -X importtime`)", "cumulative, ms (median of runs)"])
    for statement, wanted in ((NODE_IMPORTS, IMPORT_PARTS), (CLIENT_IMPORTS, CLIENT_PARTS)):
        parts = import_times(statement, wanted, 3 if quick else 7)
        label = "node-side path" if statement == NODE_IMPORTS else "EC2 client"
        for name in ("all imports", *wanted):
            if name in parts:
                what = f"{label}: all of the statement" if name == "all imports" else f"{label}: `{name}`"
                i.add(what, f"{parts[name] * 1000:.0f}")
    section.table(i)
    section.text(
        "`httpx._main` is httpx's command-line client: httpx imports it eagerly, and it pulls in rich, "
        "click and pygments when they are installed (here they come with the console extra); on a node "
        "installed without the console extra that import fails at once and costs nothing.",
        "botocore is not on the node-side path: the node commands hold a `LazyEc2` "
        "(core/aws/lazy_ec2.py) that imports botocore and builds the one EC2 client of the process on "
        "the first EC2 call, so `--help`, a follower's pass and a pass that stops at Consul never load "
        "it. A pass that does call EC2 pays the client's import (the row above) plus building the client, "
        "which parses botocore's 4.4 MB EC2 service model (section 2). The client comes from "
        "`botocore.session`, not `boto3.client`: boto3 would add its resource layer and s3transfer, "
        "which an EC2 client never uses.",
    )
    return section
