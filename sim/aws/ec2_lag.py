"""EC2's eventual consistency: each reader sees a tag write or an instance state change late.

AWS documents it in "Eventual consistency in the Amazon EC2 API"
(https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html): the result of a
command that affects a resource "might not be immediately visible to all subsequent commands",
and a describe right after a change may answer with the state before it. AWS publishes no
figures, so the lag is a parameter: a lognormal (a long tail) set by its median and 99th
percentile, capped.

The plane sits above either EC2 path (`MotoDirectEc2`, botocore over moto) and below core:

- moto stays the authority. Every write is applied at once, and EC2's own condition (DeleteTags
  with a value) is judged on moto's instant state, as EC2 judges it on its own.
- `Ec2Lag.sync` notes each change of moto's state (a tag key's value on an instance, an instance's
  state) as a version stamped with the virtual time it was noted at: around every write made
  through the plane, before every describe, and whenever the scenario samples the tags (after
  every step of a tag process and every fault that touches EC2). It looks at every instance only
  when moto has been written to since its last look (tagjoin.sim.aws.moto_writes).
- Reader `r` sees version `v` from `v.t + lag(r, v)` on, each lag drawn from the seeded stream
  `("ec2.lag", r)`. A describe by `r` at time T answers from the newest version of each
  attribute that `r` can see: for the length of the call the plane stages that view into moto and
  puts moto's own state back afterwards, so moto's filter, pagination and error code judges the
  answer exactly as it judges a strongly consistent one.

What is modelled, and what is not:

- Readers are nodes (every process of a node shares its view; a booting node is its own reader).
- Reads are monotone per reader and attribute: once `r` sees a version it never again sees an
  older one of the same attribute. Real EC2 promises no such thing across requests (two requests
  may reach two replicas); this is the weaker adversary, kept so that a node's reads do not flap.
  Across attributes there is no order at all: a reader may see B's new tag before or after A's
  old tag goes, whichever lag is shorter.
- `adversarial` makes every tag removal visible to every reader at once while creates and state
  changes keep their lag: the delete of a handoff is seen before the create that preceded it,
  the widest "no tag anywhere" window a reader can meet.
- An instance's launch (its existence, state and launch tags) is visible to every reader at
  once: a node boots and reads tens of seconds after RunInstances, far beyond the lag's tail.
- No read-your-writes: a writer is a reader like any other.
"""

from __future__ import annotations

import bisect
import copy
import math
import random
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from moto.core.models import DEFAULT_ACCOUNT_ID

from tagjoin.core.aws.ec2_api import Ec2Api, Filter, InstancePage, TagPage
from tagjoin.sim.aws import moto_writes
from tagjoin.sim.aws.ec2_faults import MOTO_LOCK
from tagjoin.sim.aws.moto_direct import region_backend
from tagjoin.sim.aws.moto_writes import WriteCount, write_count

T = TypeVar("T")

STRONG = "strong"
DEFAULT = "default"
ADVERSARIAL = "adversarial"
SPEC_HELP = (
    "strong (no lag), default (p50=200ms,p99=2s,max=20s), adversarial (default + deletes seen first), "
    "or comma-separated p50=DUR,p99=DUR,max=DUR[,adversarial] with DUR like 150ms or 1.5s"
)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)$")


@dataclass(frozen=True)
class LagSpec:
    """A lognormal lag with median `p50_ms` and 99th percentile `p99_ms`, never above `max_ms`."""

    p50_ms: float = 200.0
    p99_ms: float = 2_000.0
    max_ms: float = 20_000.0
    adversarial: bool = False

    @property
    def sigma(self) -> float:
        # The 99th percentile of a lognormal is exp(mu + z99 * sigma), z99 = 2.3263.
        return math.log(self.p99_ms / self.p50_ms) / 2.326348

    def draw(self, rng: random.Random) -> int:
        lag = rng.lognormvariate(math.log(self.p50_ms), self.sigma)
        return round(min(lag, self.max_ms))


def parse_lag(text: str) -> LagSpec | None:
    """`--ec2-lag`'s value; None for `strong`. Raises ValueError with a one-line reason."""
    text = text.strip()
    if text == STRONG:
        return None
    if text == DEFAULT:
        return LagSpec()
    items = [item.strip() for item in text.split(",")]
    values: dict[str, float] = {}
    adversarial = False
    for item in items:
        if item == ADVERSARIAL:
            adversarial = True
            continue
        key, eq, raw = item.partition("=")
        if not eq or key not in ("p50", "p99", "max"):
            raise ValueError(f"bad EC2 lag {text!r} at {item!r}; use {SPEC_HELP}")
        if key in values:
            raise ValueError(f"bad EC2 lag {text!r}: {key} given twice")
        values[key] = _duration_ms(text, raw.strip())
    # An omitted bound takes its default, raised to the bound below it if that is higher.
    p50 = values.get("p50", LagSpec.p50_ms)
    p99 = values.get("p99", max(p50, LagSpec.p99_ms))
    cap = values.get("max", max(p99, LagSpec.max_ms))
    if p50 <= 0:
        raise ValueError(f"bad EC2 lag {text!r}: p50 must be above 0 (use strong for no lag)")
    if not p50 <= p99 <= cap:
        raise ValueError(f"bad EC2 lag {text!r}: needs p50 <= p99 <= max")
    return LagSpec(p50, p99, cap, adversarial)


def _duration_ms(text: str, raw: str) -> float:
    m = _DURATION.match(raw)
    if m is None:
        raise ValueError(f"bad EC2 lag {text!r}: {raw!r} is not a duration such as 150ms or 1.5s")
    number = float(m.group(1))
    return number * 1000 if m.group(2) == "s" else number


# -- the plane ------------------------------------------------------------------------------------

STATE = "state"  # an attribute: the instance's state; any other attribute name is a tag key
Attr = tuple[str, str]  # (instance id, STATE or tag key)
Value = str | tuple[str, int] | None  # tag value, (state name, state code), None = no such tag


@dataclass(frozen=True)
class Version:
    seq: int
    t: int  # virtual ms when the change was noted
    value: Value
    initial: bool = False  # what the instance launched with: visible to every reader at once


@dataclass(frozen=True)
class InstanceView:
    """One instance as a reader sees it."""

    state: str
    tags: dict[str, str]


@dataclass
class Ec2Lag:
    """The versions of every attribute of every instance, and each reader's lag for each."""

    spec: LagSpec
    now: Callable[[], int]  # the engine's virtual ms
    stream: Callable[[str], random.Random]  # reader → its seeded lag stream
    region: str
    account_id: str = DEFAULT_ACCOUNT_ID
    history: dict[Attr, list[Version]] = field(default_factory=dict)
    _seen: dict[str, tuple[tuple[str, int], dict[str, str]]] = field(default_factory=dict)
    _raw: dict[str, Any] = field(default_factory=dict)
    _visible_at: dict[tuple[str, int], float] = field(default_factory=dict)
    _seq: int = 0
    _synced: tuple[WriteCount, int] | None = None  # the backend's write count at the last scan
    _order: dict[Attr, int] = field(default_factory=dict)  # attribute → its place in `history`
    _moving: list[tuple[int, Attr]] = field(default_factory=list)  # attributes with two versions or more

    @property
    def backend(self) -> Any:
        return region_backend(self.account_id, self.region)

    def api(self, inner: Ec2Api, reader: Callable[[], str]) -> LaggedEc2:
        """`inner` as seen by whichever reader `reader()` names at the time of each call."""
        return LaggedEc2(inner, self, reader)

    # -- versions -----------------------------------------------------------------------------

    def sync(self) -> None:
        """Note every change of moto's state since the last look, at the current virtual time."""
        with MOTO_LOCK:
            backend = self.backend
            count = write_count(backend)
            if (count, count.writes) == self._synced:
                if moto_writes.CHECK:
                    self._scan(backend, check=True)
                return
            self._scan(backend)
            self._synced = (count, count.writes)

    def _scan(self, backend: Any, *, check: bool = False) -> None:
        now = self.now()
        for reservation in backend.reservations.values():
            for raw in reservation.instances:
                state = (raw._state.name, raw._state.code)
                tags = backend.tags.get(raw.id) or {}
                seen = self._seen.get(raw.id)
                if seen is not None and seen[0] == state and seen[1] == tags:
                    continue
                if check:
                    raise AssertionError(f"moto changed {raw.id} without a counted write")
                if seen is None:
                    self._raw[raw.id] = raw
                    self._seen[raw.id] = (state, dict(tags))
                    self._add((raw.id, STATE), now, state, initial=True)
                    for key, value in tags.items():
                        self._add((raw.id, key), now, value, initial=True)
                    continue
                old_state, old_tags = seen
                if old_state != state:
                    self._add((raw.id, STATE), now, state)
                for key in [*old_tags, *(k for k in tags if k not in old_tags)]:
                    if old_tags.get(key) != tags.get(key):
                        self._add((raw.id, key), now, tags.get(key))
                self._seen[raw.id] = (state, dict(tags))

    def _add(self, attr: Attr, t: int, value: Value, *, initial: bool = False) -> None:
        versions = self.history.get(attr)
        if versions is None:
            versions = self.history[attr] = []
            self._order[attr] = len(self._order)
        if len(versions) == 1 or (not versions and not initial):
            # Its second version: a reader may now see another than the newest (kept in history's order).
            bisect.insort(self._moving, (self._order[attr], attr))
        if not versions and not initial:
            # A tag key an instance did not launch with: before its first write, it was absent.
            versions.append(Version(self._next(), t, None, initial=True))
        versions.append(Version(self._next(), t, value, initial=initial))

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def visible_at(self, reader: str, v: Version) -> float:
        """When `reader` first sees version `v` (its lag is drawn on first need, then kept)."""
        if v.initial:
            return -math.inf
        key = (reader, v.seq)
        at = self._visible_at.get(key)
        if at is None:
            if self.spec.adversarial and v.value is None:
                at = float(v.t)  # a removal: seen at once, before any create still in flight
            else:
                at = float(v.t + self.spec.draw(self.stream(reader)))
            self._visible_at[key] = at
        return at

    def seen(self, reader: str, attr: Attr, t: int) -> Version:
        """The newest version of `attr` that `reader` sees at `t`: monotone in `t`, since the set
        of versions a reader sees only grows and the newest of a growing set never goes back."""
        versions = self.history[attr]
        for v in reversed(versions):
            if self.visible_at(reader, v) <= t:
                return v
        return versions[0]

    def view(self, reader: str, t: int) -> dict[str, InstanceView]:
        """Every instance as `reader` sees it at `t` (for judges that ask what a reader would see)."""
        states: dict[str, str] = {}
        tags: dict[str, dict[str, str]] = {}
        for (iid, name), _versions in self.history.items():
            value = self.seen(reader, (iid, name), t).value
            if name == STATE:
                assert isinstance(value, tuple)
                states[iid] = value[0]
            elif isinstance(value, str):
                tags.setdefault(iid, {})[name] = value
        return {iid: InstanceView(state, tags.get(iid, {})) for iid, state in states.items()}

    def change_times(self, reader: str, until: int) -> list[int]:
        """Every instant up to `until` at which something `reader` sees may change, in order."""
        times = {0}
        for versions in self.history.values():
            for v in versions:
                at = self.visible_at(reader, v)
                if 0 <= at <= until:
                    times.add(int(at))
        return sorted(times)

    # -- a reader's describe --------------------------------------------------------------------

    def as_seen(self, reader: str, read: Callable[[], T]) -> T:
        """`read()` while moto holds what `reader` sees (`staged`). Most reads find no attribute
        with a version that is not the newest, and then moto is read as it is."""
        with MOTO_LOCK:
            self.sync()
            if not self._moving:
                return read()
            with self.staged(reader):
                return read()

    @contextmanager
    def staged(self, reader: str) -> Iterator[None]:
        """moto holds what `reader` sees for the length of one call, then its own state again.

        Only attributes whose visible version is not the newest are staged; each instance's tag
        dict is swapped whole and the original object put back, so moto's own order survives."""
        self.sync()
        now = self.now()
        with MOTO_LOCK:
            backend = self.backend
            tags_saved: dict[str, dict[str, str] | None] = {}
            states_saved: dict[str, Any] = {}
            staged_tags: dict[str, dict[str, str]] = {}
            for _, attr in self._moving:
                versions = self.history[attr]
                v = self.seen(reader, attr, now)
                if v is versions[-1]:
                    continue
                iid, name = attr
                if name == STATE:
                    raw = self._raw[iid]
                    assert isinstance(v.value, tuple)
                    states_saved.setdefault(iid, raw._state)
                    state = copy.copy(raw._state)
                    state.name, state.code = v.value
                    raw._state = state
                    continue
                if iid not in staged_tags:
                    original = backend.tags.get(iid)
                    tags_saved[iid] = original
                    staged_tags[iid] = dict(original or {})
                if isinstance(v.value, str):
                    staged_tags[iid][name] = v.value
                else:
                    staged_tags[iid].pop(name, None)
            for iid, staged in staged_tags.items():
                backend.tags[iid] = staged
            count = write_count(backend)
            if staged_tags or states_saved:
                count.staged += 1
            try:
                yield
            finally:
                if staged_tags or states_saved:
                    count.staged += 1
                for iid, original in tags_saved.items():
                    if original is None:
                        backend.tags.pop(iid, None)
                    else:
                        backend.tags[iid] = original
                for iid, state in states_saved.items():
                    self._raw[iid]._state = state


class LaggedEc2:
    """core's `Ec2Api` as one reader sees EC2: describes answer from its view, writes go through."""

    def __init__(self, inner: Ec2Api, lag: Ec2Lag, reader: Callable[[], str]) -> None:
        self.inner = inner
        self.lag = lag
        self.reader = reader

    def for_reader(self, name: str) -> LaggedEc2:
        """The same EC2 as node `name` sees it, whoever is calling (a booting node's lookups)."""
        return LaggedEc2(self.inner, self.lag, lambda: name)

    def describe_instances(
        self, filters: Sequence[Filter], instance_ids: Sequence[str] = (), next_token: str | None = None
    ) -> InstancePage:
        return self.lag.as_seen(self.reader(), lambda: self.inner.describe_instances(filters, instance_ids, next_token))

    def describe_tags(self, filters: Sequence[Filter], next_token: str | None = None) -> TagPage:
        return self.lag.as_seen(self.reader(), lambda: self.inner.describe_tags(filters, next_token))

    def create_tags(self, instance_ids: Sequence[str], key: str, value: str) -> None:
        self.lag.sync()
        try:
            self.inner.create_tags(instance_ids, key, value)
        finally:
            self.lag.sync()

    def delete_tags(self, instance_ids: Sequence[str], key: str, value: str) -> None:
        self.lag.sync()
        try:
            self.inner.delete_tags(instance_ids, key, value)
        finally:
            self.lag.sync()


def reader_api(api: Ec2Api, reader: str) -> Ec2Api:
    """`api` as node `reader` sees it: its own view when the plane is on, `api` itself otherwise."""
    return api.for_reader(reader) if isinstance(api, LaggedEc2) else api
