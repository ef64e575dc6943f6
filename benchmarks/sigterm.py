"""8. How long `tagjoin keep` takes to exit after SIGTERM while a call hangs.

systemd sends SIGTERM and waits `TimeoutStopSec` before SIGKILL; a keeper that lingers delays
every reboot and deploy. Two states are measured, each in a fresh process:

- hanging agent call: the local agent accepted the connection and never answers (a listening
  socket that never calls accept: the kernel completes the handshake, nobody reads);
- stuck in C: a thread blocked in C with the GIL released, which no signal wakes — the watchdog in
  `tagjoin.core.cli.stop_on_signals` is what ends the process.

    .venv/bin/python -m benchmarks.sigterm --runs 10
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.common import PYTHON, Section, Stats, Table

ROOT = Path(__file__).resolve().parent.parent
STUCK_IN_C = (
    "import ctypes\n"
    "from tagjoin.core.cli import stop_on_signals\n"
    "stop_on_signals()\n"
    "mutex = ctypes.create_string_buffer(64)\n"
    "lock = ctypes.CDLL(None).pthread_mutex_lock\n"
    "lock(mutex)\n"
    "print('keeper: watching', file=__import__('sys').stderr, flush=True)\n"
    "lock(mutex)\n"
)


@contextmanager
def silent_agent() -> Iterator[str]:
    """A loopback port that completes TCP handshakes and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def _env(agent_url: str) -> dict[str, str]:
    return {
        "PYTHONPATH": str(ROOT),
        "PATH": os.environ.get("PATH", ""),
        "CONSUL_HTTP_ADDR": agent_url,
        "AWS_REGION": "us-east-1",
    }


def time_to_exit(argv: list[str], env: dict[str, str], settle_s: float) -> tuple[float, int, str]:
    """Start `argv`, wait for its first stderr line and `settle_s` more, SIGTERM it, time the exit."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        assert proc.stderr is not None
        proc.stderr.readline()
        time.sleep(settle_s)  # a benchmark harness, not core or sim logic: real time is what it measures
        t0 = time.perf_counter()
        proc.terminate()
        _, err = proc.communicate(timeout=30)
        return time.perf_counter() - t0, proc.returncode, (err.strip().splitlines() or [""])[-1]
    finally:
        proc.kill()


def measure(runs: int) -> list[tuple[str, Stats, int, str]]:
    keep = [PYTHON, "-m", "tagjoin", "keep", "--interval", "30s"]
    rows: list[tuple[str, Stats, int, str]] = []
    with silent_agent() as url:
        cases: list[tuple[str, list[str], float]] = [
            ("hanging agent call (agent/self never answered)", keep, 1.5),
            ("stuck in C (GIL released, signal never seen)", [PYTHON, "-c", STUCK_IN_C], 0.5),
        ]
        for label, argv, settle in cases:
            samples: list[float] = []
            code, last = 0, ""
            for _ in range(runs):
                seconds, code, last = time_to_exit(argv, _env(url), settle)
                samples.append(seconds)
            rows.append((label, Stats.of(samples), code, last))
    return rows


def run(out_dir: Path, *, quick: bool = False) -> Section:
    runs = 3 if quick else 10
    rows = measure(runs)
    section = Section("8. `tagjoin keep` stopping on SIGTERM")
    section.text(
        f"`.venv/bin/python -m benchmarks.sigterm --runs {runs}`: time from SIGTERM to process exit, "
        f"{runs} fresh processes per state, measured on the caller's side."
    )
    table = Table(("state", "SIGTERM → exit, ms (median / min / max)", "exit status", "last stderr line"))
    for label, stats, code, last in rows:
        table.add(label, " / ".join(stats.ms()), code, f"`{last}`")
    section.table(table)
    worst = max(stats.max for _, stats, _, _ in rows)
    section.aim("exit within 1 s of SIGTERM even while a call hangs", worst < 1.0, f"worst {worst * 1000:.0f} ms")
    return section


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sigterm", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    if not 1 <= args.runs <= 100:
        parser.error("--runs must be 1 to 100")
    for label, stats, code, last in measure(args.runs):
        median, low, high = stats.ms()
        print(f"{label}: {median} ms median (min {low}, max {high}), exit {code}, last line: {last}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
