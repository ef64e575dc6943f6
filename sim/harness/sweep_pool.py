"""A seed sweep in chunks, run in this process, in a pool of local worker processes or on a Dask
cluster, and merged in seed order: the report is the same, byte for byte, whatever ran the chunks.

    plan = SweepPlan.of([ScenarioConfig(seed=0, strategy="fenced")], range(0, 1000))
    outcome = run_sweep(plan, jobs=4)              # or dask="tcp://scheduler:8786"

A chunk carries the whole `ScenarioConfig` (a frozen dataclass, pickled as it is) and a range of
seeds; the worker replaces the seed for each run, so every field of the config reaches it without
this module knowing the fields. A worker sends back a `Tally` of its runs (the parts of a Summary,
mergeable and bounded in size), the violating runs' schedules and violations, and the whole
recording of the few runs a picture may be drawn from. The merger folds results in block order
(a block is one range of seeds, a chunk per strategy), so what it holds at any moment is the
report of a prefix of the sweep: an interrupted sweep reports exactly that prefix and resumes
after it.

Worker processes are started with forkserver (spawn where there is none), never fork: moto and
the threads of a parent do not survive a fork. moto's state is process-global, so one scenario
runs at a time per process, also on a Dask worker with several threads.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from tagjoin.core.errors import ConfigError
from tagjoin.sim.harness.metrics import Summary, Tally
from tagjoin.sim.harness.recording import Recording

if TYPE_CHECKING:  # the scenario brings moto: imported where a run happens, see `start_pool_early`
    from tagjoin.sim.harness.scenario import ScenarioConfig

CLUSTER_EXTRA = "needs the cluster extra: pip install 'consul-tagjoin[cluster]'"
# moto keeps one world per process: chunks that share a process (Dask worker threads) take turns.
_ONE_WORLD_AT_A_TIME = threading.Lock()


# what travels ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    index: int  # position in the sweep's order (block by block, strategies in report order)
    block: int
    config: ScenarioConfig  # every run's config but its seed
    seeds: range
    keep: frozenset[int] = frozenset()  # seeds whose whole recording comes back (to be drawn)


@dataclass
class ChunkResult:
    index: int
    block: int
    strategy: str
    seeds: range
    tally: Tally
    violating: list[Recording]  # the violating runs, slim: seed, strategy, violations and schedule
    kept: list[Recording]  # whole recordings: the chunk's first violating run, and the seeds asked for
    seconds: float  # the chunk's wall time in the worker: for progress and benchmarks, never a report
    worker: str


def run_chunk(chunk: Chunk) -> ChunkResult:
    """Run one chunk's seeds (in a worker process, a Dask worker, or in process)."""
    from tagjoin.sim.aws.ec2_account import kept_running
    from tagjoin.sim.harness.scenario import run_scenario

    started = time.perf_counter()
    tally = Tally()
    violating: list[Recording] = []
    kept: list[Recording] = []
    # A chunk's worlds share one started moto mock: each still starts from reset backends and
    # its seed, and the patching is set up and torn down once a chunk instead of once a seed.
    with _ONE_WORLD_AT_A_TIME, kept_running():
        for seed in chunk.seeds:
            rec = run_scenario(replace(chunk.config, seed=seed))
            tally.add(rec)
            first_violation = bool(rec.violations) and not violating
            if rec.violations:
                violating.append(_slim(rec))
            if first_violation or seed in chunk.keep:
                kept.append(rec)
    return ChunkResult(
        chunk.index,
        chunk.block,
        chunk.config.run_label,
        chunk.seeds,
        tally,
        violating,
        kept,
        time.perf_counter() - started,
        f"{os.getpid()}@{socket.gethostname()}",
    )


def _slim(rec: Recording) -> Recording:
    """What a report says of a violating run: with naive strategies that can be most runs."""
    return Recording(
        rec.seed, rec.strategy, rec.duration_ms, violations=list(rec.violations), schedule=list(rec.schedule)
    )


# the plan ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepPlan:
    configs: tuple[ScenarioConfig, ...]  # one per strategy, in report order
    seeds: range
    chunk_size: int = 1
    draw_seed: int | None = None  # the seed whose recording to keep for a picture (default: see `picture`)

    @classmethod
    def of(
        cls, configs: Sequence[ScenarioConfig], seeds: range, chunk_size: int = 1, draw_seed: int | None = None
    ) -> SweepPlan:
        if not configs:
            raise ValueError("a sweep needs at least one scenario config")
        if draw_seed is not None and draw_seed not in seeds:
            raise ConfigError(f"seed {draw_seed} was not part of this run")
        return cls(tuple(configs), seeds, max(1, chunk_size), draw_seed)

    @property
    def strategies(self) -> tuple[str, ...]:
        return tuple(c.run_label for c in self.configs)

    @property
    def runs(self) -> int:
        return len(self.seeds) * len(self.configs)

    def blocks(self) -> list[range]:
        s, size = self.seeds, self.chunk_size
        return [range(lo, min(lo + size, s.stop)) for lo in range(s.start, s.stop, size)]

    def chunks(self) -> Iterator[Chunk]:
        wanted = {self.seeds.start} if self.draw_seed is None else {self.draw_seed}
        index = 0
        for b, seeds in enumerate(self.blocks()):
            keep = frozenset(s for s in wanted if s in seeds)
            for config in self.configs:
                yield Chunk(index, b, config, seeds, keep)
                index += 1


def chunk_size_for(seeds: int, strategies: int, workers: int, *, dask: bool = False) -> int:
    """Small enough that every worker gets several chunks (progress, Ctrl-C loses little), big
    enough that per-task overhead vanishes: at ~3 ms a Dask task, 10 seeds of ~0.3 s each make it 0.1%."""
    if dask:  # the cluster's size is not known here: aim at 256 tasks, and 10 seeds or more a task
        at_least = min(10, math.ceil(seeds / 8))
        return max(1, at_least, min(50, math.ceil(seeds * strategies / 256)))
    if workers <= 1:
        return 1
    return max(1, min(25, math.ceil(seeds * strategies / (workers * 4))))


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# merging -----------------------------------------------------------------------------------------


@dataclass
class Progress:
    runs_total: int
    runs_done: int = 0  # finished, in the report yet or not
    violating_runs: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        """Runs per second so far."""
        return self.runs_done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        return (self.runs_total - self.runs_done) / self.rate if self.rate > 0 else None


@dataclass
class SweepOutcome:
    summaries: dict[str, Summary]
    violating: list[Recording]  # slim recordings, strategy by strategy in report order, then by seed
    picture: Recording | None  # what `--svg` draws: the seed asked for, else the first failure, else the first run
    first_failure: Recording | None  # the whole recording of the report's first violating run
    requested: range
    done: range  # the seeds whose runs (every strategy) are all in the report
    interrupted: bool = False

    @property
    def partial(self) -> bool:
        return self.done != self.requested


class Merger:
    """Folds chunk results in block order, whatever order they arrive in."""

    def __init__(self, plan: SweepPlan) -> None:
        self.plan = plan
        self.progress = Progress(plan.runs)
        self._blocks = plan.blocks()
        self._waiting: dict[int, dict[str, ChunkResult]] = {}
        self._folded = 0  # blocks folded
        self._tallies = {s: Tally() for s in plan.strategies}
        self._violating: dict[str, list[Recording]] = {s: [] for s in plan.strategies}
        self._first_violation: dict[str, Recording] = {}
        self._drawable: dict[str, Recording] = {}

    def add(self, result: ChunkResult) -> None:
        self.progress.runs_done += len(result.seeds)
        self.progress.violating_runs += len(result.violating)
        self._waiting.setdefault(result.block, {})[result.strategy] = result
        while len(self._waiting.get(self._folded, ())) == len(self.plan.strategies):
            for strategy, res in self._waiting.pop(self._folded).items():
                self._fold(strategy, res)
            self._folded += 1

    def _fold(self, strategy: str, res: ChunkResult) -> None:
        self._tallies[strategy].merge(res.tally)
        self._violating[strategy].extend(res.violating)
        for rec in res.kept:
            if rec.violations and strategy not in self._first_violation:
                self._first_violation[strategy] = rec
            wanted = self.plan.seeds.start if self.plan.draw_seed is None else self.plan.draw_seed
            if rec.seed == wanted:
                self._drawable.setdefault(strategy, rec)

    @property
    def done(self) -> range:
        if self._folded == 0:
            return range(self.plan.seeds.start, self.plan.seeds.start)
        return range(self.plan.seeds.start, self._blocks[self._folded - 1].stop)

    def outcome(self, *, interrupted: bool = False) -> SweepOutcome:
        strategies = self.plan.strategies
        return SweepOutcome(
            summaries={s: self._tallies[s].summary() for s in strategies},
            violating=[r for s in strategies for r in self._violating[s]],
            picture=self._picture(),
            first_failure=next((self._first_violation[s] for s in strategies if s in self._first_violation), None),
            requested=self.plan.seeds,
            done=self.done,
            interrupted=interrupted,
        )

    def _picture(self) -> Recording | None:
        """The seed asked for (its first strategy); else the first violating run; else the first run."""
        strategies = self.plan.strategies
        if self.plan.draw_seed is None:
            for s in strategies:
                if s in self._first_violation:
                    return self._first_violation[s]
        return next((self._drawable[s] for s in strategies if s in self._drawable), None)


# running -----------------------------------------------------------------------------------------


def run_sweep(
    plan: SweepPlan,
    *,
    jobs: int = 1,
    dask: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> SweepOutcome:
    """Run the plan and merge; Ctrl-C (KeyboardInterrupt) ends it early with what is merged so far."""
    merger = Merger(plan)
    chunks = plan.chunks()
    if dask is not None:
        results = _on_dask(dask, chunks)
    elif jobs > 1 and len(plan.blocks()) * len(plan.configs) > 1:
        results = _in_pool(chunks, min(jobs, len(plan.blocks()) * len(plan.configs)))
    else:
        results = (run_chunk(c) for c in chunks)
    try:
        for result in results:
            merger.add(result)
            if on_progress is not None:
                on_progress(merger.progress)
    except KeyboardInterrupt:
        return merger.outcome(interrupted=True)
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()  # a generator's finally: stops the pool or cancels the cluster's tasks
    return merger.outcome()


def _ignore_sigint() -> None:
    """In a worker: Ctrl-C is for the parent, which stops the workers itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


_PRELOAD = ["tagjoin.sim.harness.scenario", "tagjoin.sim.harness.sweep_pool"]


def _mp_context() -> multiprocessing.context.BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        # The server imports moto and the simulator once; every worker forks from it ready to run.
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


def start_pool_early() -> None:
    """Start the fork server now, before this process imports the simulator (moto, ~2-3 s): the
    two imports then overlap instead of following each other. Harmless where there is no fork
    server (the workers then spawn when the sweep starts)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return
    from multiprocessing import forkserver

    _mp_context()
    forkserver.ensure_running()


def _in_pool(chunks: Iterable[Chunk], workers: int) -> Iterator[ChunkResult]:
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context(), initializer=_ignore_sigint)
    todo = iter(chunks)
    pending: set[Future[ChunkResult]] = set()
    clean = False
    try:
        for chunk in _take(todo, 2 * workers):
            pending.add(pool.submit(run_chunk, chunk))
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for chunk in _take(todo, len(finished)):
                pending.add(pool.submit(run_chunk, chunk))
            for future in sorted(finished, key=lambda f: f.result().index):
                yield future.result()
        clean = True
    finally:
        if clean:
            pool.shutdown(wait=True)
        else:
            _stop_workers(pool)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Interrupted: end the chunks still running instead of waiting for them."""
    stop = getattr(pool, "terminate_workers", None)  # Python 3.14
    if stop is not None:
        stop()
        return
    # shutdown() forgets the processes, so take them first.
    processes: list[Any] = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(5)


def _take(it: Iterator[Chunk], n: int) -> list[Chunk]:
    out: list[Chunk] = []
    for chunk in it:
        out.append(chunk)
        if len(out) >= n:
            break
    return out


def dask_client(address: str) -> Any:
    """A `distributed.Client` connected to the scheduler at `address`; ConfigError when the cluster
    extra is missing or the scheduler does not answer."""
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError(f"--dask {CLUSTER_EXTRA}") from None
    try:
        return Client(address, timeout="20s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"--dask {address}: no Dask scheduler answered ({type(exc).__name__}: {exc})") from None


def _on_dask(address: str, chunks: Iterable[Chunk]) -> Iterator[ChunkResult]:
    client = dask_client(address)
    from distributed import as_completed

    todo = iter(chunks)
    threads = sum(w.get("nthreads", 1) for w in client.scheduler_info().get("workers", {}).values())
    window = max(64, 4 * threads)  # enough queued for workers that join later
    in_flight: set[Any] = set()
    queue = as_completed(loop=client.loop)
    try:
        for chunk in _take(todo, window):
            future = client.submit(run_chunk, chunk, pure=False)
            in_flight.add(future)
            queue.add(future)
        for future in queue:
            in_flight.discard(future)
            result: ChunkResult = future.result()
            for chunk in _take(todo, 1):
                nxt = client.submit(run_chunk, chunk, pure=False)
                in_flight.add(nxt)
                queue.add(nxt)
            yield result
    finally:
        if in_flight:
            client.cancel(list(in_flight))
        client.close()
