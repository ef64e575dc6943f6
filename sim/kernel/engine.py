"""Deterministic discrete-event engine: virtual milliseconds, seeded streams, a hashed trace.

Everything the simulator does happens inside callbacks that this engine runs one at a time, in
`(time, sequence)` order. Nothing here reads the wall clock or the global `random` module, so a run is
a pure function of its seed and of the calls made into it.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Callable, Iterable, Iterator

Callback = Callable[[], None]

# A run that executes this many events inside one run_* call is almost certainly a livelock
# (a timer re-arming itself with zero delay); failing loudly beats hanging a test suite.
DEFAULT_MAX_EVENTS = 5_000_000


class SimulationRunaway(RuntimeError):
    """Too many events in one run call: some timer keeps re-arming without advancing time."""


class Timer:
    """Handle of one scheduled callback; `cancel()` leaves a tombstone the engine skips."""

    __slots__ = ("_engine", "callback", "cancelled", "label", "node", "seq", "t")

    def __init__(self, engine: Engine, t: int, seq: int, callback: Callback, label: str, node: str) -> None:
        self._engine = engine
        self.t = t
        self.seq = seq
        self.callback = callback
        self.label = label
        self.node = node
        self.cancelled = False

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self._engine._tombstones += 1

    def __repr__(self) -> str:
        state = " cancelled" if self.cancelled else ""
        return f"<Timer t={self.t} seq={self.seq} {self.node}:{self.label}{state}>"


class Streams:
    """Named random streams derived from one master seed.

    Each stream is seeded from SHA-256 of the master seed and the stream's names, so adding draws to
    one subsystem never shifts the numbers another subsystem sees, and the result does not depend on
    PYTHONHASHSEED (Python's `hash()` of a str is salted per process).
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._streams: dict[tuple[str, ...], random.Random] = {}

    def seed_for(self, *names: str) -> int:
        material = "\x00".join((str(self.seed), *names)).encode()
        return int.from_bytes(hashlib.sha256(material).digest()[:16], "big")

    def get(self, *names: str) -> random.Random:
        """The stream for `names` (e.g. `("raft.timer", "node-1")`); the same object on every call."""
        stream = self._streams.get(names)
        if stream is None:
            stream = random.Random(self.seed_for(*names))
            self._streams[names] = stream
        return stream


class Trace:
    """Recorder of `(t, node, event)` lines with a running SHA-256.

    The hash covers every line ever recorded; `keep` bounds only how many lines stay in memory for
    reports (the tail), so long runs cost constant memory.
    """

    # SHA-256 over the lines joined is the same as over each line in turn; a large pool writes
    # millions of lines, and one update per batch costs less than one per line.
    _BATCH = 4096

    def __init__(self, keep: int | None = 100_000) -> None:
        self._hash = hashlib.sha256()
        self._unhashed: list[str] = []
        # The tail keeps each line as it was hashed, one string, and is split again only when read.
        self._lines: deque[str] = deque(maxlen=keep)
        self.count = 0

    def record(self, t: int, node: str, event: str) -> None:
        line = f"{t}\t{node}\t{event}\n"
        unhashed = self._unhashed
        unhashed.append(line)
        if len(unhashed) >= self._BATCH:
            self._flush()
        self._lines.append(line)
        self.count += 1

    def _flush(self) -> None:
        self._hash.update("".join(self._unhashed).encode())
        self._unhashed.clear()

    def lines(self) -> list[tuple[int, str, str]]:
        """The kept tail as (t, node, event)."""
        return self._split(self._lines)

    def tail(self, n: int = 50) -> list[str]:
        kept = self._split(itertools.islice(self._lines, max(len(self._lines) - n, 0), None)) if n > 0 else []
        return [f"{t:>10} {node:<20} {event}" for t, node, event in kept]

    @staticmethod
    def _split(lines: Iterable[str]) -> list[tuple[int, str, str]]:
        out = []
        for line in lines:
            t, node, event = line.split("\t", 2)  # a node name has no tab; an event may
            out.append((int(t), node, event[:-1]))
        return out

    def hexdigest(self) -> str:
        self._flush()
        return self._hash.copy().hexdigest()


class Engine:
    """Heap of `(t, seq, Timer)`: time in integer ms, ties broken by scheduling order."""

    def __init__(self, seed: int = 0, *, trace_keep: int | None = 100_000) -> None:
        self.now = 0
        self.seed = seed
        self.streams = Streams(seed)
        self.trace = Trace(trace_keep)
        self._heap: list[tuple[int, int, Timer]] = []
        self._seq = itertools.count()
        self._tombstones = 0
        self.events_run = 0

    # scheduling -----------------------------------------------------------------------------

    def schedule(self, delay_ms: int, callback: Callback, label: str = "", node: str = "") -> Timer:
        """Run `callback` `delay_ms` from now (0 = after everything already due now)."""
        if delay_ms < 0:
            raise ValueError(f"negative delay {delay_ms} ms for {label or callback!r}")
        # `schedule_at` less its check, which a delay of 0 or more always passes: most events of
        # a run are scheduled here.
        t_ms = self.now + int(delay_ms)
        timer = Timer(self, t_ms, next(self._seq), callback, label, node)
        heapq.heappush(self._heap, (t_ms, timer.seq, timer))
        return timer

    def schedule_at(self, t_ms: int, callback: Callback, label: str = "", node: str = "") -> Timer:
        if t_ms < self.now:
            raise ValueError(f"cannot schedule in the past: {t_ms} < now {self.now}")
        timer = Timer(self, int(t_ms), next(self._seq), callback, label, node)
        heapq.heappush(self._heap, (timer.t, timer.seq, timer))
        return timer

    def record(self, node: str, event: str) -> None:
        self.trace.record(self.now, node, event)

    def trace_hash(self) -> str:
        return self.trace.hexdigest()

    # running --------------------------------------------------------------------------------

    def _pop_live(self) -> Timer | None:
        heap = self._heap
        while heap:
            timer = heap[0][2]
            if not timer.cancelled:
                return timer
            heapq.heappop(heap)
            self._tombstones -= 1
        return None

    def peek(self) -> int | None:
        """Time of the next live event, or None when nothing is scheduled."""
        timer = self._pop_live()
        return None if timer is None else timer.t

    def step(self) -> bool:
        """Run the next live event (advancing `now` to it); False when the heap is empty."""
        timer = self._pop_live()
        if timer is None:
            return False
        heapq.heappop(self._heap)
        self.now = timer.t
        self.events_run += 1
        timer.cancelled = True  # a handle cancelled after it ran must not count as a tombstone
        timer.callback()
        self._maybe_compact()
        return True

    def run_until(self, t_ms: int, *, max_events: int = DEFAULT_MAX_EVENTS) -> int:
        """Run every event due at or before `t_ms`, then set `now = t_ms`; returns events run."""
        ran = 0
        while True:
            # `_pop_live` written out: a call less for every event of a run.
            heap = self._heap
            while heap and heap[0][2].cancelled:
                heapq.heappop(heap)
                self._tombstones -= 1
            if not heap or heap[0][0] > t_ms:
                break
            timer = heapq.heappop(heap)[2]
            self.now = timer.t
            timer.cancelled = True
            timer.callback()
            ran += 1
            if ran >= max_events:
                raise SimulationRunaway(f"{ran} events before t={t_ms} ms (now {self.now}); livelock?")
        self.events_run += ran
        self.now = max(self.now, int(t_ms))
        self._maybe_compact()
        return ran

    def run_for(self, ms: int, *, max_events: int = DEFAULT_MAX_EVENTS) -> int:
        return self.run_until(self.now + int(ms), max_events=max_events)

    def run_until_true(
        self, predicate: Callable[[], bool], *, timeout_ms: int, max_events: int = DEFAULT_MAX_EVENTS
    ) -> bool:
        """Step until `predicate()` holds or `timeout_ms` of virtual time passed; True if it held."""
        deadline = self.now + timeout_ms
        ran = 0
        while not predicate():
            nxt = self.peek()
            if nxt is None or nxt > deadline:
                self.now = max(self.now, deadline)
                return predicate()
            self.step()
            ran += 1
            if ran >= max_events:
                raise SimulationRunaway(f"{ran} events waiting for a predicate")
        return True

    def pending(self) -> Iterator[Timer]:
        """Live timers in firing order (for debugging and reports)."""
        live = [t for _, _, t in self._heap if not t.cancelled]
        return iter(sorted(live, key=lambda t: (t.t, t.seq)))

    def _maybe_compact(self) -> None:
        # Tombstones of cancelled timers would otherwise pile up in the heap of long runs.
        if self._tombstones > 1024 and self._tombstones * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if not entry[2].cancelled]
            heapq.heapify(self._heap)
            self._tombstones = 0


class SimClock:
    """`tagjoin.core.clock.Clock` in virtual time, for core code driven by the simulator.

    `monotonic()` is the engine's `now` in seconds plus this caller's outstanding sleep debt.
    `sleep(s)` cannot block a discrete-event simulation, so it adds `s` to that debt and returns at
    once; the caller's own view of time moves forward as if it had slept. The driver that runs the
    caller must then call `take_debt()` and schedule the caller's next step that many ms later, which
    turns the sleep into real virtual time for the rest of the simulation. Give each simulated caller
    (one handler on one node) its own SimClock so debts do not mix. `monotonic()` never goes
    backwards, even across `take_debt()`.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._debt_ms = 0
        self._last = 0.0

    def monotonic(self) -> float:
        value = (self._engine.now + self._debt_ms) / 1000.0
        if value < self._last:
            value = self._last
        self._last = value
        return value

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._debt_ms += math.ceil(seconds * 1000)

    @property
    def debt_ms(self) -> int:
        return self._debt_ms

    def take_debt(self) -> int:
        """The virtual ms slept since the last call; resets the debt to zero."""
        debt, self._debt_ms = self._debt_ms, 0
        return debt
