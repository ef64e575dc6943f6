"""The discrete-event engine, seeded streams, trace hash, virtual clock and paced driver."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import pytest

from tagjoin.core.clock import Clock
from tagjoin.sim.consul.cluster import build_cluster
from tagjoin.sim.kernel.engine import Engine, SimClock, SimulationRunaway, Streams
from tagjoin.sim.live.paced_driver import PacedDriver

ROOT = Path(__file__).resolve().parents[1]


def test_events_run_in_time_order_and_fifo_on_ties() -> None:
    engine = Engine()
    seen: list[str] = []
    engine.schedule(30, lambda: seen.append("c"))
    engine.schedule(10, lambda: seen.append("a1"))
    engine.schedule(10, lambda: seen.append("a2"))
    engine.schedule(20, lambda: seen.append("b"))
    engine.schedule(10, lambda: seen.append("a3"))
    assert engine.run_until(100) == 5
    assert seen == ["a1", "a2", "a3", "b", "c"]
    assert engine.now == 100


def test_zero_delay_runs_after_everything_already_due() -> None:
    engine = Engine()
    seen: list[str] = []

    def first() -> None:
        seen.append("first")
        engine.schedule(0, lambda: seen.append("spawned"))

    engine.schedule(5, first)
    engine.schedule(5, lambda: seen.append("second"))
    engine.run_for(5)
    assert seen == ["first", "second", "spawned"]


def test_step_peek_and_run_until_stop_at_the_boundary() -> None:
    engine = Engine()
    seen: list[int] = []
    for t in (5, 10, 15):
        engine.schedule(t, partial(seen.append, t))
    assert engine.peek() == 5
    assert engine.step() and engine.now == 5
    engine.run_until(10)
    assert seen == [5, 10] and engine.now == 10
    engine.run_until(12)
    assert seen == [5, 10] and engine.now == 12
    assert engine.step() and seen == [5, 10, 15]
    assert not engine.step()
    assert engine.peek() is None


def test_cancelled_timers_never_fire_and_tombstones_are_compacted() -> None:
    engine = Engine()
    fired: list[int] = []
    timers = [engine.schedule(i, partial(fired.append, i)) for i in range(5000)]
    for timer in timers:
        if timer.seq % 2:
            timer.cancel()
    timers[0].cancel()
    timers[0].cancel()  # idempotent
    engine.run_until(10_000)
    assert fired == [i for i in range(5000) if i % 2 == 0 and i != 0]
    assert len(engine._heap) == 0


def test_cancel_after_run_is_harmless() -> None:
    engine = Engine()
    timer = engine.schedule(1, lambda: None)
    engine.run_for(1)
    timer.cancel()
    assert engine._tombstones == 0


def test_bad_schedules_are_rejected() -> None:
    engine = Engine()
    engine.run_for(10)
    with pytest.raises(ValueError):
        engine.schedule(-1, lambda: None)
    with pytest.raises(ValueError):
        engine.schedule_at(5, lambda: None)


def test_a_livelock_is_reported_not_hung() -> None:
    engine = Engine()

    def again() -> None:
        engine.schedule(0, again)

    engine.schedule(0, again)
    with pytest.raises(SimulationRunaway):
        engine.run_for(1, max_events=1000)


def test_run_until_true_stops_on_predicate_or_timeout() -> None:
    engine = Engine()
    box = {"n": 0}
    for t in range(1, 50):
        engine.schedule(t * 10, lambda: box.__setitem__("n", box["n"] + 1))
    assert engine.run_until_true(lambda: box["n"] == 3, timeout_ms=1000)
    assert engine.now == 30
    assert not engine.run_until_true(lambda: box["n"] == 100, timeout_ms=100)
    assert engine.now == 130


def test_streams_are_independent_and_reproducible() -> None:
    a = Streams(42)
    b = Streams(42)
    first = [a.get("raft.timer", "n1").random() for _ in range(5)]
    # Drawing from an unrelated stream first must not shift n1's numbers.
    for _ in range(100):
        b.get("serf.detect", "n2").random()
    assert [b.get("raft.timer", "n1").random() for _ in range(5)] == first
    assert a.get("raft.timer", "n1") is a.get("raft.timer", "n1")
    assert Streams(43).get("raft.timer", "n1").random() != first[0]
    assert a.seed_for("raft.timer", "n1") != a.seed_for("raft.timer", "n2")
    # Name boundaries matter: ("ab", "c") is not ("a", "bc").
    assert a.seed_for("ab", "c") != a.seed_for("a", "bc")


def test_stream_seeds_do_not_depend_on_python_hash_salt() -> None:
    code = "from tagjoin.sim.kernel.engine import Streams; print(Streams(7).seed_for('raft.timer', 'node-1'))"
    outputs = set()
    for salt in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": salt, "PYTHONPATH": str(ROOT)}
        run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        outputs.add(run.stdout.strip())
    assert outputs == {str(Streams(7).seed_for("raft.timer", "node-1"))}


def _scenario_hash(seed: int) -> str:
    cluster = build_cluster(seed, servers=3, clients=2)
    cluster.engine.run_for(30_000)
    leader = cluster.leader()
    assert leader is not None
    cluster.crash(leader)
    cluster.engine.run_for(30_000)
    cluster.restart(leader)
    cluster.engine.run_for(30_000)
    return cluster.engine.trace_hash()


def test_same_seed_same_trace_hash_different_seed_different() -> None:
    assert _scenario_hash(11) == _scenario_hash(11)
    assert _scenario_hash(11) != _scenario_hash(12)


def test_trace_hash_is_the_same_in_processes_with_different_hash_salts() -> None:
    code = "from tests.test_sim_engine import _scenario_hash; print(_scenario_hash(5))"
    hashes = set()
    for salt in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": salt, "PYTHONPATH": str(ROOT)}
        run = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
        )
        hashes.add(run.stdout.strip())
    assert hashes == {_scenario_hash(5)}


def test_trace_keeps_a_bounded_tail_but_hashes_everything() -> None:
    short, full = Engine(trace_keep=3), Engine(trace_keep=None)
    for engine in (short, full):
        for i in range(10):
            engine.record("n", f"e{i}")
    assert short.trace_hash() == full.trace_hash()
    assert [event for _, _, event in short.trace.lines()] == ["e7", "e8", "e9"]
    assert short.trace.count == 10
    assert len(short.trace.tail(2)) == 2
    assert short.trace.tail(2)[-1].split() == ["0", "n", "e9"]
    assert short.trace.tail(50) == short.trace.tail(3) and short.trace.tail(0) == []
    full.record("n", "an event\twith a tab")
    assert full.trace.lines()[-1] == (0, "n", "an event\twith a tab")


def test_sim_clock_turns_sleeps_into_debt() -> None:
    engine = Engine()
    clock: Clock = SimClock(engine)
    assert clock.monotonic() == 0.0
    clock.sleep(1.5)
    clock.sleep(0)
    assert clock.monotonic() == 1.5
    sim_clock = clock
    assert isinstance(sim_clock, SimClock)
    assert sim_clock.take_debt() == 1500
    assert sim_clock.debt_ms == 0
    # The debt is gone but the engine has not moved yet: time must not run backwards.
    assert clock.monotonic() == 1.5
    engine.run_for(2000)
    assert clock.monotonic() == 2.0


class FakeWall:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def test_paced_driver_follows_the_injected_wall_clock() -> None:
    engine = Engine()
    fired: list[int] = []
    for t in (100, 900, 2500):
        engine.schedule(t, partial(fired.append, t))
    wall = FakeWall()
    driver = PacedDriver(engine, speed=2.0, wall=wall, sleep=wall.sleep, tick_s=1.0)
    assert driver.tick() == pytest.approx(0.05)  # next event at 100 ms virtual = 50 ms wall
    wall.t += 0.5  # 1000 virtual ms at speed 2
    driver.tick()
    assert engine.now == 1000 and fired == [100, 900]
    assert driver.call(lambda: engine.now) == 1000
    driver.set_speed(1.0)
    wall.t += 2.0
    driver.tick()
    assert engine.now == 3000 and fired == [100, 900, 2500]
    with pytest.raises(ValueError):
        driver.set_speed(0)


def test_paced_driver_thread_starts_notifies_and_stops() -> None:
    engine = Engine()
    ran = threading.Event()
    engine.schedule(20, ran.set)
    driver = PacedDriver(engine, speed=10.0, tick_s=0.01)
    with driver:
        assert driver.running
        assert ran.wait(5.0)
        with driver.changed:
            assert driver.changed.wait(2.0)
    assert not driver.running
    assert engine.now >= 20


def test_the_trace_hash_is_sha256_of_every_line_whenever_it_is_read() -> None:
    # Lines are hashed in batches: a hash read between batches, or after several, must still be
    # the digest of every line so far.
    engine = Engine(trace_keep=10)
    expected = hashlib.sha256()
    for i in range(10_000):
        engine.record(f"n{i % 7}", f"e{i}")
        expected.update(f"0\tn{i % 7}\te{i}\n".encode())
        if i in (0, 4095, 4096, 9000):
            assert engine.trace_hash() == expected.hexdigest()
    assert engine.trace_hash() == expected.hexdigest()
    assert engine.trace.count == 10_000
