"""`tagjoin sim serve` under load: 50 concurrent clients for 60 s on 127.0.0.1.

Half the clients are watchers, as `consul watch -type=nodes` and `-type=checks` make them: a
blocking query, then the next one from the returned X-Consul-Index, for the whole run. The other
half make plain GETs back to back (status/leader, agent/self, agent/members, catalog/nodes). Every
client keeps one keep-alive connection, reconnecting after an error. The clients spread over the
cluster's agents; the keepers of the simulated servers run as usual.

Counted: requests and errors (a refused or reset connection, a timeout, any status but 200),
the latency of the plain GETs, how far past its wait each blocking query came back, and the
`sim serve` process's resident memory and threads, sampled every second.

    .venv/bin/python -m benchmarks --only serve --out /tmp/serve.md
    .venv/bin/python -m benchmarks.serve_load --clients 50 --seconds 60     # the table alone
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import ROOT, Deadline, Section, Table, fmt_ms, tool

PLAIN_PATHS = ("/v1/status/leader", "/v1/agent/self", "/v1/agent/members", "/v1/catalog/nodes")
WATCH_PATHS = ("/v1/catalog/nodes", "/v1/health/state/critical")
WATCH_WAIT_S = 5  # the `wait` of each blocking query
REQUEST_TIMEOUT_S = 30.0  # per request: a blocking query's wait, its jitter (wait/16) and plenty more
WARMUP_S = 5.0  # load before the first memory sample that counts as "start"


@dataclass
class ClientStats:
    requests: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # plain GETs, seconds
    overshoots: list[float] = field(default_factory=list)  # blocking queries: seconds past their wait
    early: int = 0  # blocking queries that came back before their wait (the index moved)

    def error(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


@dataclass
class Sample:
    at: float
    rss_kib: int
    threads: int


@dataclass
class LoadResult:
    clients: int
    seconds: float
    agents: int
    stats: list[ClientStats]
    samples: list[Sample]
    stderr: str
    exit_code: int | None

    @property
    def plain(self) -> list[float]:
        return sorted(x for s in self.stats for x in s.latencies)

    @property
    def requests(self) -> int:
        return sum(s.requests for s in self.stats)

    @property
    def errors(self) -> int:
        return sum(s.errors for s in self.stats)

    def rss_growth_kib(self) -> tuple[int, int, int]:
        """(after warm-up, at the end, peak) resident memory, KiB."""
        settled = [s for s in self.samples if s.at >= WARMUP_S] or self.samples
        return settled[0].rss_kib, settled[-1].rss_kib, max(s.rss_kib for s in settled)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def _proc_status(pid: int) -> tuple[int, int]:
    rss = threads = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return rss, threads


def _start_serve() -> tuple[subprocess.Popen[str], list[int]]:
    proc = subprocess.Popen(
        [tool("tagjoin"), "sim", "serve", "--servers", "3", "--clients", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    ports: list[int] = []
    for _ in range(40):  # bounded: the banner is about 20 lines
        line = proc.stdout.readline()
        if line.startswith("#   "):
            ports.append(int(line.rsplit(":", 1)[1]))
        if line.startswith("# Ctrl-C") or not line:
            break
    if not ports:
        proc.kill()
        raise RuntimeError("sim serve printed no agents")
    _wait_for_leader(ports[0], Deadline(60))
    return proc, ports


def _wait_for_leader(port: int, deadline: Deadline) -> None:
    """The load starts on a cluster with a leader: before the first election every catalog read is a 500."""
    while not deadline.passed():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/v1/status/leader")
            if json.loads(conn.getresponse().read() or b'""'):
                return
        except (OSError, http.client.HTTPException, ValueError):
            pass
        finally:
            conn.close()
        time.sleep(0.2)
    raise RuntimeError("sim serve elected no leader within 60 s")


def _client(
    port: int, stats: ClientStats, deadline: Deadline, step: Callable[[http.client.HTTPConnection], None]
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
    while not deadline.passed():
        try:
            step(conn)
        except (OSError, http.client.HTTPException) as exc:
            stats.error(type(exc).__name__)
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
    conn.close()


def _plain(stats: ClientStats, offset: int) -> Callable[[http.client.HTTPConnection], None]:
    turn = [offset]

    def step(conn: http.client.HTTPConnection) -> None:
        path = PLAIN_PATHS[turn[0] % len(PLAIN_PATHS)]
        turn[0] += 1
        started = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        took = time.perf_counter() - started
        stats.requests += 1
        if response.status != 200:
            stats.error(f"HTTP {response.status} {path}")
        else:
            stats.latencies.append(took)

    return step


def _watch(stats: ClientStats, path: str) -> Callable[[http.client.HTTPConnection], None]:
    index = ["0"]

    def step(conn: http.client.HTTPConnection) -> None:
        query = f"?index={index[0]}&wait={WATCH_WAIT_S}s" if index[0] != "0" else ""
        started = time.perf_counter()
        conn.request("GET", path + query)
        response = conn.getresponse()
        response.read()
        took = time.perf_counter() - started
        stats.requests += 1
        if response.status != 200:
            stats.error(f"HTTP {response.status} {path}")
            return
        returned = response.getheader("X-Consul-Index") or "0"
        if query:
            if returned != index[0]:
                stats.early += 1
            else:
                stats.overshoots.append(max(0.0, took - WATCH_WAIT_S))
        index[0] = returned

    return step


def run_load(clients: int, seconds: float) -> LoadResult:
    """`clients` concurrent clients for `seconds` against a fresh `tagjoin sim serve`."""
    proc, ports = _start_serve()
    stats = [ClientStats() for _ in range(clients)]
    samples: list[Sample] = []
    try:
        deadline = Deadline(seconds)
        threads = []
        for i, st in enumerate(stats):
            port = ports[i % len(ports)]
            step = _watch(st, WATCH_PATHS[i % len(WATCH_PATHS)]) if i % 2 == 0 else _plain(st, i)
            threads.append(threading.Thread(target=_client, args=(port, st, deadline, step), daemon=True))
        started = time.monotonic()
        for thread in threads:
            thread.start()
        while not deadline.passed():
            rss, count = _proc_status(proc.pid)
            samples.append(Sample(time.monotonic() - started, rss, count))
            time.sleep(min(1.0, max(0.0, deadline.left())))
        rss, count = _proc_status(proc.pid)
        samples.append(Sample(time.monotonic() - started, rss, count))
        for thread in threads:
            thread.join(REQUEST_TIMEOUT_S + 5)  # bounded: one request's timeout at most
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    return LoadResult(clients, seconds, len(ports), stats, samples, err, proc.returncode)


def table(result: LoadResult) -> Table:
    plain = result.plain
    overshoots = sorted(x for s in result.stats for x in s.overshoots)
    watch_requests = sum(s.requests for i, s in enumerate(result.stats) if i % 2 == 0)
    early = sum(s.early for s in result.stats)
    start, end, peak = result.rss_growth_kib()
    t = Table(["measure", "value"])
    t.add(
        "clients (watchers + plain GETs), agents",
        f"{result.clients} ({(result.clients + 1) // 2} + {result.clients // 2}), {result.agents}",
    )
    t.add("duration", f"{result.seconds:.0f} s")
    t.add("requests (plain GETs / blocking queries)", f"{len(plain):,} / {watch_requests:,}")
    t.add("errors", f"{result.errors}" + (f" ({_kinds(result)})" if result.errors else ""))
    t.add("plain GET latency p50 / p99 / max, ms", " / ".join(fmt_ms(percentile(plain, q)) for q in (0.5, 0.99, 1.0)))
    t.add(
        f"blocking query past its {WATCH_WAIT_S} s wait, p50 / p99, ms",
        " / ".join(fmt_ms(percentile(overshoots, q)) for q in (0.5, 0.99)) + f" ({early} came back early: index moved)",
    )
    t.add(
        f"`sim serve` resident memory after {WARMUP_S:.0f} s / at the end / peak, MiB",
        f"{start / 1024:.1f} / {end / 1024:.1f} / {peak / 1024:.1f} (growth {(end - start) / 1024:+.1f} MiB)",
    )
    t.add("`sim serve` threads, peak", str(max(s.threads for s in result.samples)))
    t.add(
        "`sim serve` stderr, exit status",
        f"{'empty' if not result.stderr.strip() else repr(result.stderr[:200])}, {result.exit_code}",
    )
    return t


def _kinds(result: LoadResult) -> str:
    kinds: dict[str, int] = {}
    for s in result.stats:
        for kind, n in s.error_kinds.items():
            kinds[kind] = kinds.get(kind, 0) + n
    return ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))


def run(out: Path, *, quick: bool = False) -> Section:
    out.mkdir(parents=True, exist_ok=True)
    clients, seconds = (10, 10.0) if quick else (50, 60.0)
    result = run_load(clients, seconds)
    (out / "serve-load.json").write_text(
        json.dumps(
            {
                "plain_latencies_s": result.plain,
                "samples": [s.__dict__ for s in result.samples],
                "errors": result.errors,
                "stderr": result.stderr,
            }
        )
    )
    section = Section("7. `tagjoin sim serve` under load")
    section.text(
        f"`tagjoin sim serve --servers 3 --clients 2` (keepers running) on 127.0.0.1; {clients} clients for "
        f"{seconds:.0f} s, each on its own keep-alive connection, spread over the {result.agents} agents: half "
        f"watchers (blocking queries on {' and '.join(WATCH_PATHS)} with `wait={WATCH_WAIT_S}s`, the next "
        f"index taken from each answer, as `consul watch` does), half plain GETs back to back "
        f"({', '.join(PLAIN_PATHS)}). Memory and threads are the `sim serve` process's, sampled every second."
    )
    section.table(table(result))
    start, end, _ = result.rss_growth_kib()
    section.aim(
        f"{clients} concurrent clients for {seconds:.0f} s: 0 errors",
        result.errors == 0 and not result.stderr.strip(),
        f"{result.errors} errors in {result.requests:,} requests; p50 {fmt_ms(percentile(result.plain, 0.5))} ms, "
        f"p99 {fmt_ms(percentile(result.plain, 0.99))} ms; memory {(end - start) / 1024:+.1f} MiB",
    )
    return section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serve_load", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 500 or not 1 <= args.seconds <= 3600:
        parser.error("--clients 1..500, --seconds 1..3600")
    result = run_load(args.clients, args.seconds)
    print(table(result).markdown())
    print(f"errors: {result.errors}; median of plain GETs {statistics.median(result.plain) * 1000:.2f} ms")
    return 0 if result.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
