"""Console refresh cost at 5,000 members + 5,000 instances, and key latency while a poll runs.

    .venv/bin/python benchmarks/bench_console.py [--members 5000] [--repeat 15] [--presses 40]

Prints a markdown table. What is measured:

- fetch (worker thread): ClusterSource.fetch, i.e. core's ConsulClient decoding /v1/status/leader
  and /v1/agent/members (5,000 entries) from an in-process transport, plus build_view joining
  them with 5,000 EC2 instances. The EC2 call itself is left out (a fixed list stands in for
  DescribeInstances): it is network time, in the same worker thread. The leader's /v1/agent/self
  (the probe) and the Raft configuration and autopilot documents are read beside each poll in
  workers of their own, as in the console; what they cost the UI thread is in `apply`'s figures.
- apply (UI thread): ConsoleApp.apply on the running app: change detection, event log, timeline,
  and the keyed diff of both tables and the drift panel. `cold` fills empty tables (the first
  refresh; the tables render and add 500 rows each per frame, and each later step is timed
  too); `steady` is a refresh where 1% of the members flip status; `failover` moves the leader
  and the tag (the marks and tag cells of 4 rows change).
- apply + paint: the same, plus the time until Textual is idle again (layout and repaint of the
  visible region), with pilot.pause(); an upper bound, since pause() adds its own scheduling.
- key latency, after the first fill is complete: `j` pressed while polls run back to back in the
  worker (each fetch waits 1 s of simulated I/O, then builds the 5,000-row view), time from the
  key event to the cursor move (the table's RowHighlighted message). Presses are spread over
  several poll cycles, so some land while a snapshot is being applied.
- dialog open: the confirm dialog (`l`), the member detail (`enter`) and the help (`?`), at 5 and
  at 5,000 members with polls running: from the key event reaching the app to the dialog's first
  frame handed to the terminal driver; then escape closes it.
- quit: `q` in the app at 5,000 members with a poll in flight, until the app has shut down; and
  `tagjoin console --demo` as a process on a pseudo-terminal, from `q` until the process has
  exited (the embedded cluster stopped too).

Harness: time.perf_counter with repeated runs (median/min/max). pyperf runs functions in worker
processes of its own and cannot drive a running Textual app's UI thread.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import gc
import ipaddress
import os
import pty
import random
import select
import statistics
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from textual import events
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable

from tagjoin.core.consul.client import ConsulClient
from tagjoin.core.consul.settings import consul_settings_from_env
from tagjoin.core.model import Instance
from tagjoin.core.view import ClusterView
from tagjoin.tui.actions import ActionService
from tagjoin.tui.agents import TemplateAgents
from tagjoin.tui.app import ConsoleApp
from tagjoin.tui.screens.confirm import ConfirmScreen
from tagjoin.tui.screens.detail import DetailScreen
from tagjoin.tui.screens.help import HelpScreen
from tagjoin.tui.source import ClusterSource, LeaderProbe, NodeExtras, RaftReading, Snapshot
from tagjoin.tui.widgets.keyed_table import ROWS_PER_STEP, KeyedTable
from tagjoin.tui.widgets.members import MembersTable
from tagjoin.tui.wiring import settle_heap
from tests.console_doubles import TAG_KEY, FakeConsul, FakeStore

SIZE = (160, 48)


# -- a large cluster ------------------------------------------------------------------------


@dataclass
class Cluster:
    """Mutable cluster state served as Consul JSON; `flip` and `failover` change it."""

    n: int
    leader: int = 0
    failed: frozenset[int] = frozenset()
    term: int = 5

    def ip(self, i: int) -> str:
        return str(ipaddress.IPv4Address("10.0.0.1") + i)

    def name(self, i: int) -> str:
        return f"node-{i:05d}"

    def members_json(self) -> list[dict[str, Any]]:
        return [
            {
                "Name": self.name(i),
                "Addr": self.ip(i),
                "Port": 8301,
                "Status": 4 if i in self.failed else 1,
                "Tags": {"role": "consul" if i < 5 else "node", "dc": "dc1"},
            }
            for i in range(self.n)
        ]

    def instances(self) -> list[Instance]:
        out = []
        for i in range(self.n):
            tags = {"Name": self.name(i), "consul-cluster": "bench"}
            if i == self.leader:
                tags[TAG_KEY] = str(self.term)
            out.append(Instance(f"i-{i:017x}", self.ip(i), None, "running", tags))
        return out

    def transport(self) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            match request.url.path:
                case "/v1/status/leader":
                    return httpx.Response(200, json=f"{self.ip(self.leader)}:8300")
                case "/v1/agent/members":
                    return httpx.Response(200, json=self.members_json())
                case "/v1/agent/self":
                    me = self.members_json()[self.leader]
                    body = {
                        "Config": {"NodeName": me["Name"], "Datacenter": "dc1", "Server": True},
                        "Member": me,
                        "Stats": {"raft": {"state": "Leader", "term": str(self.term)}},
                    }
                    return httpx.Response(200, json=body)
                case "/v1/operator/raft/configuration":
                    return httpx.Response(200, json=self.raft_json())
                case "/v1/operator/autopilot/health":
                    return httpx.Response(200, json=self.health_json())
                case "/v1/operator/autopilot/state":
                    return httpx.Response(200, json=self.state_json())
            return httpx.Response(404, text="not found")

        return httpx.MockTransport(handle)

    # The five servers' Raft and autopilot documents, in Consul's shapes (see sim/consul/http_api.py).

    def raft_json(self) -> dict[str, Any]:
        servers = [
            {
                "ID": f"id-{i}",
                "Node": self.name(i),
                "Address": f"{self.ip(i)}:8300",
                "Leader": i == self.leader,
                "Voter": True,
                "ProtocolVersion": "3",
                "LastIndex": 1000 + self.term,
            }
            for i in range(5)
        ]
        return {"Servers": servers, "Index": 10}

    def health_json(self) -> dict[str, Any]:
        servers = [
            {
                "ID": f"id-{i}",
                "Name": self.name(i),
                "Address": f"{self.ip(i)}:8300",
                "SerfStatus": "failed" if i in self.failed else "alive",
                "Version": "1.20.1",
                "Leader": i == self.leader,
                "LastContact": "0s" if i == self.leader else "12ms",
                "LastTerm": self.term,
                "LastIndex": 1000 + self.term,
                "Healthy": i not in self.failed,
                "Voter": True,
                "StableSince": "2026-01-01T00:00:00Z",
            }
            for i in range(5)
        ]
        return {"Healthy": True, "FailureTolerance": 2, "Servers": servers}

    def state_json(self) -> dict[str, Any]:
        servers = {
            f"id-{i}": {"ID": f"id-{i}", "Name": self.name(i), "Status": "leader" if i == self.leader else "voter"}
            for i in range(5)
        }
        voters = [f"id-{i}" for i in range(5)]
        return {
            "Healthy": True,
            "FailureTolerance": 2,
            "OptimisticFailureTolerance": 2,
            "Servers": servers,
            "Leader": f"id-{self.leader}",
            "Voters": voters,
        }

    def flip(self, rng: random.Random, share: float = 0.01) -> None:
        """About `share` of the members change status (alive <-> failed)."""
        picks = rng.sample(range(5, self.n), max(1, int(self.n * share)))
        self.failed = self.failed ^ frozenset(picks)

    def failover(self) -> None:
        self.leader = (self.leader + 1) % 5
        self.term += 1


class LiveishSource:
    """A ClusterSource over the in-process transport; `delay` simulates the network wait."""

    def __init__(self, cluster: Cluster, delay: float = 0.0) -> None:
        self.cluster = cluster
        self.delay = delay
        self.label = f"bench {cluster.n} members"
        self.fetch_times: list[float] = []
        settings = consul_settings_from_env({}, http_addr="127.0.0.1:8500")
        self._consul = ConsulClient(settings, cluster.transport())
        self._store = FakeStore([])
        self._source = ClusterSource(self._consul, self._store, TemplateAgents(), tag_key=TAG_KEY, label=self.label)
        self._lock = threading.Lock()

    def fetch(self) -> Snapshot:
        if self.delay:
            time.sleep(self.delay)  # the I/O wait: the GIL is free meanwhile
        with self._lock:
            self._store.found = self.cluster.instances()
            t0 = time.perf_counter()
            snap = self._source.fetch()
            self.fetch_times.append(time.perf_counter() - t0)
        return snap

    # The facts the console reads beside each poll (leader probe, Raft and autopilot), as a live
    # cluster's source does, so their UI-thread cost is in every measurement.

    def probe_leader(self, view: ClusterView) -> LeaderProbe | None:
        return self._source.probe_leader(view)

    def read_raft(self, view: ClusterView, via: str | None) -> RaftReading:
        return self._source.read_raft(view, via)

    def node_extras(self, node: str, via: str | None) -> NodeExtras:
        return NodeExtras(time.time(), node)


# -- measurements ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    values: tuple[float, ...]

    def row(self, name: str, where: str, unit: float = 1000.0) -> str:
        v = [x * unit for x in self.values]
        return f"| {name} | {where} | {len(v)} | {statistics.median(v):.1f} | {min(v):.1f} | {max(v):.1f} |"


def app_for(source: Any, interval: float) -> ConsoleApp:
    actions = ActionService(FakeConsul(), TemplateAgents())
    return ConsoleApp(source, actions, interval=interval)


async def wait(pilot: Any, cond: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out waiting for {what}")
        await pilot.pause(0.01)


def fetch_bench(n: int, repeat: int) -> Stats:
    cluster = Cluster(n)
    source = LiveishSource(cluster)
    rng = random.Random(1)
    source.fetch()  # warm-up
    source.fetch_times.clear()
    for _ in range(repeat):
        cluster.flip(rng)
        source.fetch()
    return Stats(tuple(source.fetch_times))


def snapshots(n: int, count: int, *, failover: bool) -> list[Snapshot]:
    cluster = Cluster(n)
    source = LiveishSource(cluster)
    rng = random.Random(2)
    out = [source.fetch()]
    for _ in range(count):
        if failover:
            cluster.failover()
        else:
            cluster.flip(rng)
        out.append(source.fetch())
    return out


def time_fill_steps(app: ConsoleApp) -> list[float]:
    """Record the UI time of every later step of a table fill (KeyedTable adds big fills in steps)."""
    steps: list[float] = []
    for table in app.query(KeyedTable):
        step = table._sync_step

        def timed(rows: Any, render: Any, generation: int, step: Callable[..., None] = step) -> None:
            t0 = time.perf_counter()
            step(rows, render, generation)
            steps.append(time.perf_counter() - t0)

        table._sync_step = timed  # type: ignore[method-assign,assignment]
    return steps


async def apply_bench(n: int, repeat: int) -> tuple[dict[str, tuple[Stats, Stats]], Stats, Stats]:
    """(apply, apply + paint) per scenario, all on the UI thread of one running app; then the later
    fill steps of the cold refreshes, and the wall time until a cold fill is complete."""
    results: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in ("cold", "steady", "failover")}
    fill_steps: list[float] = []
    fill_done: list[float] = []
    steady = snapshots(n, repeat, failover=False)
    moves = snapshots(n, repeat, failover=True)
    for round_ in range(max(3, repeat // 5)):
        app = app_for(LiveishSource(Cluster(n)), interval=3600)  # the timer never fires
        settle_heap()  # as `tagjoin console` does before it starts the app
        async with app.run_test(size=SIZE) as pilot:
            await wait(pilot, lambda: app.applied >= 1, "the mount's refresh")  # noqa: B023
            # Throw the mount's view away: measure filling empty tables with a fresh app state.
            for table in app.query(KeyedTable):
                table.clear()
            app.tracker = type(app.tracker)()
            gc.collect()
            await pilot.pause()
            t0 = time.perf_counter()
            app.apply(steady[0])
            t1 = time.perf_counter()
            steps = time_fill_steps(app)  # only the steps after the apply itself
            await pilot.pause()
            t2 = time.perf_counter()
            results["cold"][0].append(t1 - t0)
            results["cold"][1].append(t2 - t0)
            await wait(pilot, lambda: not any(t.filling for t in app.query(KeyedTable)), "the fill")  # noqa: B023
            fill_done.append(time.perf_counter() - t0)
            fill_steps.extend(steps)
            if round_:
                continue
            for name, series in (("steady", steady[1:]), ("failover", moves[1:])):
                if name == "failover":
                    app.apply(moves[0])
                    await pilot.pause()
                for snap in series:
                    gc.collect()
                    await pilot.pause()
                    t0 = time.perf_counter()
                    app.apply(snap)
                    t1 = time.perf_counter()
                    await pilot.pause()
                    t2 = time.perf_counter()
                    results[name][0].append(t1 - t0)
                    results[name][1].append(t2 - t0)
    applied = {k: (Stats(tuple(a)), Stats(tuple(b))) for k, (a, b) in results.items()}
    return applied, Stats(tuple(fill_steps)), Stats(tuple(fill_done))


async def key_bench(n: int, presses: int, delay: float, *, polling: bool) -> tuple[Stats, int]:
    """Latency of `j` from key event to cursor move; with polls running back to back, or idle."""
    cluster = Cluster(n)
    source = LiveishSource(cluster, delay=delay)
    app = app_for(source, interval=0.05 if polling else 3600)
    moved: list[float] = []

    def hook(message: Message) -> None:
        if isinstance(message, DataTable.RowHighlighted) and message.data_table.id == "members":
            moved.append(time.perf_counter())

    rng = random.Random(3)
    latencies: list[float] = []
    settle_heap()  # as `tagjoin console` does before it starts the app
    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        await wait(pilot, lambda: app.applied >= 1, "the first refresh")
        await wait(pilot, lambda: not any(t.filling for t in app.query(KeyedTable)), "the first fill")
        table = app.query_one(MembersTable)
        table.focus()
        await pilot.pause()
        start_applied = app.applied
        for i in range(presses):
            if polling:
                # Mutate between presses so each poll's apply has cells to update.
                with source._lock:
                    cluster.flip(rng)
            # Spread presses over the poll cycle (pacing, not synchronisation).
            await asyncio.sleep(rng.uniform(0.02, 0.3))
            before = len(moved)
            row = table.cursor_row
            t0 = time.perf_counter()
            await pilot.press("j" if i % 40 < 20 else "k")
            await wait(pilot, lambda: len(moved) > before, "the cursor to move", timeout=10)  # noqa: B023
            latencies.append(moved[before] - t0)
            assert table.cursor_row != row
        polls = app.applied - start_applied
    return Stats(tuple(latencies)), polls


async def dialog_bench(n: int, repeat: int, delay: float, interval: float = 2.0) -> dict[str, Stats]:
    """Key event → the dialog's first frame on the terminal, with polls running; escape between runs.

    The key is timed from when the app receives it (a message hook) to the first `_display` of the
    dialog's screen: Pilot's own waits for idleness would add a few hundred ms that are not the
    console's. `_display` is Textual's private hand-off to the driver (textual pinned in CI).
    """
    cluster = Cluster(n)
    source = LiveishSource(cluster, delay=delay)
    app = app_for(source, interval=interval)
    dialogs: dict[str, tuple[str, type[Screen[Any]]]] = {
        "confirm (l)": ("l", ConfirmScreen),
        "detail (enter)": ("enter", DetailScreen),
        "help (?)": ("question_mark", HelpScreen),
    }
    out: dict[str, list[float]] = {name: [] for name in dialogs}
    stamps: dict[str, float] = {}
    display = app._display

    def timed_display(screen: Screen[Any], renderable: Any) -> None:
        if "want" in stamps and isinstance(screen, dialogs[current[0]][1]) and "paint" not in stamps:
            stamps["paint"] = time.perf_counter()
        display(screen, renderable)

    def hook(message: Message) -> None:
        if isinstance(message, events.Key) and "want" in stamps and "key" not in stamps:
            stamps["key"] = time.perf_counter()

    current = [""]
    app._display = timed_display  # type: ignore[method-assign]
    settle_heap()
    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        await wait(pilot, lambda: app.applied >= 1, "the first refresh")
        await wait(pilot, lambda: not any(t.filling for t in app.query(KeyedTable)), "the first fill")
        table = app.query_one(MembersTable)
        table.focus()
        await pilot.press("j")
        rng = random.Random(4)
        for _ in range(repeat):
            for name, (key, kind) in dialogs.items():
                await asyncio.sleep(rng.uniform(0.02, 0.3))  # land anywhere in the poll cycle
                current[0] = name
                stamps.clear()
                stamps["want"] = 1.0
                await pilot.press(key)
                await wait(pilot, lambda: "paint" in stamps and "key" in stamps, name, timeout=10)
                out[name].append(stamps["paint"] - stamps["key"])
                stamps.clear()
                assert isinstance(app.screen, kind)
                await pilot.press("escape")
                await wait(pilot, lambda: len(app.screen_stack) == 1, "the dialog to close", timeout=10)
    return {name: Stats(tuple(v)) for name, v in out.items()}


async def quit_in_app(n: int, repeat: int, delay: float) -> Stats:
    """`q` → the app has shut down, with a poll in flight (its fetch waits `delay` seconds)."""
    times = []
    for _ in range(repeat):
        cluster = Cluster(n)
        source = LiveishSource(cluster, delay=delay)
        app = app_for(source, interval=0.05)
        async with app.run_test(size=SIZE) as pilot:
            await wait(pilot, lambda: app.applied >= 1, "the first refresh")  # noqa: B023
            await wait(pilot, lambda: not any(t.filling for t in app.query(KeyedTable)), "the first fill")  # noqa: B023
            await asyncio.sleep(delay / 2)  # the next poll is waiting on its I/O
            t0 = time.perf_counter()
            await pilot.press("q")
        times.append(time.perf_counter() - t0)
    return Stats(tuple(times))


def quit_demo(repeat: int) -> Stats:
    """`tagjoin console --demo` on a pseudo-terminal (120x40): `q` → the process has exited."""
    times = []
    for _ in range(repeat):
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        proc = subprocess.Popen(
            [sys.executable, "-m", "tagjoin", "console", "--demo"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**os.environ, "TERM": "xterm-256color"},
            start_new_session=True,
        )
        os.close(slave)
        seen = b""
        deadline = time.monotonic() + 60
        while b"tag agrees" not in seen and time.monotonic() < deadline and proc.poll() is None:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    seen = (seen + os.read(master, 65536))[-200_000:]
                except OSError:
                    break
        if proc.poll() is not None or b"tag agrees" not in seen:
            proc.kill()
            raise SystemExit(f"bench: the demo console did not come up (exit {proc.poll()})")
        time.sleep(2.0)  # a few polls, the Raft reads and the probe running as usual
        t0 = time.perf_counter()
        os.write(master, b"q")
        while proc.poll() is None and time.perf_counter() - t0 < 30:
            if select.select([master], [], [], 0.01)[0]:
                with contextlib.suppress(OSError):
                    os.read(master, 65536)
        times.append(time.perf_counter() - t0)
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            raise SystemExit("bench: the demo console did not quit within 30 s")
    return Stats(tuple(times))


# -- main -------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="console refresh and key-latency benchmark")
    p.add_argument("--members", type=int, default=5000, help="members and instances (default 5000)")
    p.add_argument("--repeat", type=int, default=15, help="refreshes timed per scenario (default 15)")
    p.add_argument("--presses", type=int, default=40, help="key presses timed (default 40)")
    p.add_argument("--delay", type=float, default=1.0, help="simulated I/O per poll, seconds (default 1)")
    args = p.parse_args(argv)
    n = args.members

    fetch = fetch_bench(n, args.repeat)
    applied, fill_steps, fill_done = asyncio.run(apply_bench(n, args.repeat))
    idle, _ = asyncio.run(key_bench(n, max(10, args.presses // 2), args.delay, polling=False))
    busy, polls = asyncio.run(key_bench(n, args.presses, args.delay, polling=True))
    dialog_runs = max(3, args.presses // 4)
    small_dialogs = asyncio.run(dialog_bench(5, dialog_runs, 0.05))
    big_dialogs = asyncio.run(dialog_bench(n, dialog_runs, args.delay))
    busy_dialogs = asyncio.run(dialog_bench(n, dialog_runs, args.delay, interval=0.05))
    quit_app = asyncio.run(quit_in_app(n, max(3, args.repeat // 5), args.delay))
    quit_process = quit_demo(max(3, args.repeat // 5))

    print(f"Console at {n:,} members + {n:,} instances, Python {sys.version.split()[0]}, times in ms\n")
    print("| measurement | thread | runs | median | min | max |")
    print("|---|---|---:|---:|---:|---:|")
    print(fetch.row("fetch: decode Consul JSON + build_view", "worker"))
    for name in ("cold", "steady", "failover"):
        a, ap = applied[name]
        print(a.row(f"apply, {name}", "UI"))
        print(ap.row(f"apply + paint, {name}", "UI"))
        if name == "cold":
            print(fill_steps.row(f"apply, cold: each later fill step ({ROWS_PER_STEP} rows a table)", "UI"))
            print(fill_done.row("cold fill until every row is in (several frames)", "wall"))
    print(idle.row("key j → cursor moved, no poll running", "UI"))
    print(busy.row(f"key j → cursor moved, polls running ({args.delay:g}s I/O each, {polls} applied)", "UI"))
    for size, dialogs, how in (
        (5, small_dialogs, "polls every 2s"),
        (n, big_dialogs, f"polls every 2s, {args.delay:g}s I/O each"),
        (n, busy_dialogs, f"polls back to back, {args.delay:g}s I/O each"),
    ):
        for name, stats in dialogs.items():
            print(stats.row(f"dialog open: key → first frame, {name}, {size:,} members, {how}", "UI"))
    print(quit_app.row(f"quit: q → app shut down, {n:,} members, a poll in flight", "UI"))
    print(quit_process.row("quit: q → `tagjoin console --demo` process exited (pty)", "wall"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
