"""Run the discrete-event engine paced to the wall clock, for `sim serve` and the console demo.

The engine itself never reads the wall clock; only this driver does, through injected functions, to
decide how far virtual time may advance: `virtual = v0 + (wall - w0) * speed * 1000`. It runs in a
background thread and holds `lock` while it advances the engine; anything else touching the
simulation from another thread (HTTP handler threads, a control API) must hold the same lock, e.g.
`driver.call(lambda: cluster.crash(name))`. `changed` (a Condition on that lock) is notified after
every advance and every `call`, which is what blocking HTTP queries wait on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from tagjoin.sim.kernel.engine import Engine

T = TypeVar("T")


class PacedDriver:
    def __init__(
        self,
        engine: Engine,
        *,
        speed: float = 1.0,
        wall: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        tick_s: float = 0.05,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.engine = engine
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._stop = threading.Event()
        self._wall = wall
        # Waiting on the stop event instead of time.sleep lets stop() interrupt a tick at once.
        self._sleep: Callable[[float], object] = sleep or self._stop.wait
        self._tick_s = tick_s
        self._speed = speed
        self._anchor: tuple[float, int] | None = None
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    @property
    def speed(self) -> float:
        return self._speed

    def set_speed(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        with self.lock:
            self._speed = speed
            self._anchor = (self._wall(), self.engine.now)

    def wall(self) -> float:
        return self._wall()

    def target(self) -> int:
        """The virtual ms the engine should have reached by now."""
        if self._anchor is None:
            self._anchor = (self._wall(), self.engine.now)
        w0, v0 = self._anchor
        return v0 + max(0, int((self._wall() - w0) * self._speed * 1000))

    def tick(self) -> float:
        """Advance to the current target; return how long to sleep before the next tick (s)."""
        with self.lock:
            target = self.target()
            if target > self.engine.now:
                self.engine.run_until(target)
            self.changed.notify_all()
            nxt = self.engine.peek()
        if nxt is None:
            return self._tick_s
        return min(self._tick_s, max(0.0, (nxt - target) / (self._speed * 1000)))

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` under the simulation lock at the current virtual time, then wake waiters."""
        with self.lock:
            target = self.target()
            if target > self.engine.now:
                self.engine.run_until(target)
            try:
                return fn()
            finally:
                self.changed.notify_all()

    def start(self) -> PacedDriver:
        if self._thread is not None:
            raise RuntimeError("driver already started")
        self._stop.clear()
        with self.lock:
            self._anchor = (self._wall(), self.engine.now)
        self._thread = threading.Thread(target=self._run, name="sim-paced-driver", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                delay = self.tick()
                if delay > 0 and not self._stop.is_set():
                    self._sleep(delay)
        except BaseException as exc:  # surfaced by stop(); a dead driver must not fail silently
            self.error = exc
            with self.lock:
                self.changed.notify_all()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise RuntimeError("paced driver did not stop in time")
        with self.lock:
            self.changed.notify_all()
        if self.error is not None:
            error, self.error = self.error, None
            raise RuntimeError("paced driver failed") from error

    def __enter__(self) -> PacedDriver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
