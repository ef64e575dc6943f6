"""How often Python's cyclic garbage collector runs while a scenario runs.

A scenario allocates in bursts (a boot burst builds n member views of n entries each) and keeps
most of it to the end. The collector's default pacing (a full collection after every 10 collections
of the middle generation) then walks every view again and again: in a pool of 1,000 agents, 8
full collections took about 1.2 s of a 6 s scenario, and their number and their cost both grow
with the pool. Full collections 10 times rarer keep that near 0.2 s; the young generations still
collect every few hundred allocations, so short-lived cycles (timers, closures) go as soon as
before, and a full collection still comes once some 700,000 allocations have survived.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# gen0 and gen1 as CPython sets them; gen2 ten times its default.
SCENARIO_THRESHOLDS = (700, 10, 100)


@contextmanager
def paced_collector() -> Iterator[None]:
    """Run the block with `SCENARIO_THRESHOLDS`, then put back whatever was set before."""
    before = gc.get_threshold()
    gc.set_threshold(*SCENARIO_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
