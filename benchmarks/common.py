"""Shared pieces of the benchmark runner: statistics, tables, hyperfine, tools, the machine."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
VENV_BIN = Path(sys.executable).parent
PYTHON = sys.executable


def tool(name: str) -> str:
    """A console script of this venv (tagjoin, aws), falling back to PATH."""
    local = VENV_BIN / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"benchmarks: {name} not found in {VENV_BIN} or on PATH")
    return found


@dataclass(frozen=True)
class Stats:
    """Median, min and max of repeated measurements (any unit)."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        if not values:
            raise ValueError("no measurements")
        return cls(tuple(values))

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    @property
    def n(self) -> int:
        return len(self.values)

    def ms(self) -> tuple[str, str, str]:
        return fmt_ms(self.median), fmt_ms(self.min), fmt_ms(self.max)


def fmt_ms(seconds: float) -> str:
    ms = seconds * 1000
    if ms >= 100:
        return f"{ms:,.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    return f"{ms:.2f}"


def fmt_num(value: float) -> str:
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.1f}"


def ratio(alternative: float, ours: float) -> str:
    """How many times the alternative's figure is ours (>1: ours is smaller, i.e. better)."""
    if ours <= 0:
        return "∞" if alternative > 0 else "-"
    return f"{alternative / ours:.2f}x"


@dataclass
class Table:
    headers: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.headers) + " |", "|" + "|".join("---" for _ in self.headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


@dataclass
class Section:
    """One benchmark's part of RESULTS.md."""

    title: str
    body: list[str] = field(default_factory=list)
    aims: list[tuple[str, bool | None, str]] = field(default_factory=list)  # (aim, met?, figure)

    def text(self, *parts: str) -> None:
        self.body.extend(parts)

    def table(self, table: Table) -> None:
        self.body.append(table.markdown())

    def aim(self, aim: str, met: bool | None, figure: str) -> None:
        self.aims.append((aim, met, figure))

    def markdown(self) -> str:
        return "\n\n".join([f"## {self.title}", *self.body])


# --- hyperfine ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HyperfineResult:
    command: str
    times: Stats  # seconds, one per timed run
    exit_codes: tuple[int, ...]


def hyperfine(
    name: str,
    command: str,
    *,
    runs: int,
    warmup: int,
    env: Mapping[str, str],
    out_dir: Path,
    prepare: str | None = None,
    timeout_s: float = 600,
) -> HyperfineResult:
    """Time one shell command with hyperfine (--export-json); fails loudly on a non-zero exit."""
    out_dir.mkdir(parents=True, exist_ok=True)
    export = out_dir / f"hyperfine-{_slug(name)}.json"
    argv = [
        "hyperfine",
        "--runs",
        str(runs),
        "--warmup",
        str(warmup),
        "--style",
        "basic",
        "--command-name",
        name,
        "--export-json",
        str(export),
    ]
    if prepare is not None:
        argv += ["--prepare", prepare]
    argv.append(command)
    log = out_dir / f"hyperfine-{_slug(name)}.log"
    with log.open("w") as handle:
        done = subprocess.run(argv, env=dict(env), stdout=handle, stderr=subprocess.STDOUT, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"hyperfine failed for {name!r} (exit {done.returncode}); see {log}")
    data = json.loads(export.read_text())["results"][0]
    codes = tuple(int(c) for c in data.get("exit_codes", []))
    return HyperfineResult(command, Stats.of(data["times"]), codes)


def hyperfine_rounds(
    cases: Mapping[str, str],
    *,
    rounds: int,
    runs: int,
    warmup: int,
    env: Mapping[str, str],
    out_dir: Path,
    prepare: Mapping[str, str] | None = None,
) -> dict[str, Stats]:
    """hyperfine each case `rounds` times in turn and pool the timed runs.

    The machine is shared: alternating the cases in rounds spreads any drift in load over all of
    them instead of charging it to whichever ran last.
    """
    pooled: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(rounds):
        for name, command in cases.items():
            result = hyperfine(
                f"{name} round {r + 1}",
                command,
                runs=runs,
                warmup=warmup,
                env=env,
                out_dir=out_dir,
                prepare=(prepare or {}).get(name),
            )
            pooled[name].extend(result.times.values)
    return {name: Stats.of(values) for name, values in pooled.items()}


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")[:60]


# --- tools and machine ----------------------------------------------------------------------------


def bench_requirements() -> list[str]:
    """The `bench` optional-dependency group of pyproject.toml."""
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs: list[str] = data["project"]["optional-dependencies"]["bench"]
    return reqs


def ensure_tools() -> dict[str, str]:
    """Install what is missing (pip: the bench group; apt: hyperfine) and return tool versions."""
    missing = []
    for module in ("pyperf", "pyinstrument"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        print(f"benchmarks: installing the bench extra ({', '.join(missing)} missing)", flush=True)
        subprocess.run([PYTHON, "-m", "pip", "install", "-q", *bench_requirements()], check=True, timeout=600)
    if shutil.which("hyperfine") is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise SystemExit("benchmarks: hyperfine is missing; install it (Debian: apt-get install -y hyperfine)")
        print("benchmarks: installing hyperfine with apt-get", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "hyperfine"], check=True, timeout=600)
    for name in ("curl",):
        if shutil.which(name) is None:
            raise SystemExit(f"benchmarks: {name} is missing (the shell handler needs it)")
    import pyperf

    hf = subprocess.run(["hyperfine", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    aws = subprocess.run([tool("aws"), "--version"], capture_output=True, text=True, check=False)
    return {
        "hyperfine": hf.removeprefix("hyperfine "),
        "pyperf": pyperf.__version__,
        "aws": (aws.stdout or aws.stderr).split()[0] if (aws.stdout or aws.stderr) else "?",
    }


def machine() -> dict[str, str]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu or "?",
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "?"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


class Deadline:
    """A wall-clock bound for a benchmark's loops."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def passed(self) -> bool:
        return self.left() <= 0
