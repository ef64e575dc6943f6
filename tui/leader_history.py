"""Who led and who held the tag, bucketed over time, for the timeline strip. Pure."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from tagjoin.core.view import ClusterView


class Cell(Enum):
    BOTH = "both"  # led and held the tag: the healthy state
    LEADER = "leader"  # led without the tag
    TAG = "tag"  # held the tag without leading
    NONE = "none"
    UNKNOWN = "unknown"  # refreshes were failing: no recent sample covers this bucket
    BEFORE = "before"  # before the first sample: the console was not watching yet


@dataclass(frozen=True)
class Sample:
    at: float
    leader: str | None
    holders: frozenset[str]  # node names, or instance ids of tagged non-members


def sample_of(at: float, view: ClusterView) -> Sample:
    names = {r.instance.instance_id: r.name for r in view.rows if r.instance is not None}
    holders = frozenset(names.get(i.instance_id, i.instance_id) for i in view.tag_holders if i.running)
    return Sample(at, view.leader_node or view.leader_address, holders)


class History:
    """Samples of the last `keep` seconds, oldest first."""

    def __init__(self, keep: float = 900.0) -> None:
        self.keep = keep
        self._samples: list[Sample] = []

    def add(self, sample: Sample) -> None:
        self._samples.append(sample)
        cutoff = sample.at - self.keep
        drop = bisect.bisect_left([s.at for s in self._samples], cutoff)
        # Keep the last sample before the window: it says what held at the window's start.
        if drop > 1:
            del self._samples[: drop - 1]

    @property
    def samples(self) -> Sequence[Sample]:
        return tuple(self._samples)


@dataclass(frozen=True)
class TimelineRow:
    name: str
    cells: tuple[Cell, ...]


def buckets(samples: Sequence[Sample], *, now: float, width: int, bucket: float, max_gap: float) -> list[TimelineRow]:
    """One row per node that led or held the tag in the window; the last column ends at `now`.

    A bucket shows the state of the latest sample at or before its end; if that sample is older
    than `max_gap`, refreshes were failing and the bucket is UNKNOWN.
    """
    if width <= 0 or not samples:
        return []
    # Bucket ends sit on multiples of `bucket` (the last one is cut at `now`), so a finished
    # bucket never changes as time passes: the strip shifts by whole columns instead of shimmering.
    last_end = math.ceil(now / bucket) * bucket
    times = [s.at for s in samples]
    states: list[Sample | Cell] = []
    for col in range(width):
        end = min(now, last_end - (width - 1 - col) * bucket)
        idx = bisect.bisect_right(times, end) - 1
        if idx < 0:
            states.append(Cell.BEFORE)
        elif end - samples[idx].at > max(max_gap, bucket):
            states.append(Cell.UNKNOWN)
        else:
            states.append(samples[idx])
    seen = {n for s in states if isinstance(s, Sample) for n in (*s.holders, s.leader) if n is not None}
    return [TimelineRow(name, tuple(_cell(s, name) for s in states)) for name in sorted(seen)]


def _cell(sample: Sample | Cell, name: str) -> Cell:
    if isinstance(sample, Cell):
        return sample
    led, held = sample.leader == name, name in sample.holders
    if led and held:
        return Cell.BOTH
    if led:
        return Cell.LEADER
    return Cell.TAG if held else Cell.NONE
