"""How often one moto EC2 backend has been written to, so that a reader can tell at once that
nothing changed since it last looked.

moto keeps no change feed: knowing whether an instance's state or tags moved meant comparing every
instance, which made each describe cost the size of the fleet. The changes the simulator makes or
lets in are made by methods of the region's backend (moto/ec2/models/__init__.py `EC2Backend` and
its mixins), whichever way the call came in: moto's EC2 response layer, the direct adapter, the
world's own launches, autoscaling's notifications. So each backend gets its methods wrapped, once,
on the instance (moto's classes are left as they are): a call to any method that is not a read adds
one to the count, before and after it runs. A count that did not move means that no such method ran.

Not every change of moto goes through those methods: a CloudFormation stack deleted through moto
terminates its instances directly (`Instance.delete`). The simulator never does that, and the
readers that trust the count (the lag plane, the direct adapter) serve only scenarios; `sim serve`
reads moto afresh on every call.

The count, its wrappers and the readers' memos (`memo`) live in the backend's own attributes, so
moto's `reset` (which empties them and runs `__init__` again) drops all three together, and a
dropped backend takes them with it.

`staged` counts the other source of difference: the lag plane swapping a reader's view into moto
for the length of one call (tagjoin.sim.aws.ec2_lag `Ec2Lag.staged`).

`CHECK` turns on a check of every skip: a reader that would skip its scan makes it anyway and
fails if anything differs (tests/test_sim_moto_writes.py runs scenarios with it on).
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable
from typing import Any

# Method names of EC2Backend that only read (moto 5.2): everything else counts as a write.
READS = (
    "describe_",
    "get_",
    "list_",
    "all_",
    "address_by_",
    "do_resources_exist",
    "iter_",
    "matches_filters",
    "owns_arn",
    "raise_",
    "search_",
    "validate_",
    "default_vpc_endpoint_service",
)

CHECK = False  # tests: verify every skipped scan

_COUNT = "_tagjoin_write_count"  # the backend attribute that holds its WriteCount
_MEMO = "_tagjoin_memo_"  # prefix of the backend attributes that hold readers' memos


class WriteCount:
    """Writes made through the backend's methods, and views staged into it by the lag plane."""

    __slots__ = ("staged", "writes")

    def __init__(self) -> None:
        self.writes = 0
        self.staged = 0

    @property
    def state(self) -> tuple[int, int]:
        """Equal to an earlier value of the same count only if moto's state is what it was then."""
        return self.writes, self.staged


def write_count(backend: Any) -> WriteCount:
    """The count of `backend`, which is watched from now on (a first look must scan anyway)."""
    count: WriteCount | None = backend.__dict__.get(_COUNT)
    if count is None:
        count = WriteCount()
        for name, function in _writes_of(type(backend)):
            setattr(backend, name, _counted(function, weakref.ref(backend), count))
        setattr(backend, _COUNT, count)
    return count


def memo(backend: Any, name: str) -> dict[str, Any]:
    """A reader's memo for `backend`: emptied by moto's `reset`, dropped with the backend."""
    key = _MEMO + name
    found: dict[str, Any] | None = backend.__dict__.get(key)
    if found is None:
        found = {}
        setattr(backend, key, found)
    return found


_WRITES: dict[type, tuple[tuple[str, Callable[..., Any]], ...]] = {}


def _writes_of(kind: type) -> tuple[tuple[str, Callable[..., Any]], ...]:
    """The methods of a backend class that may write (once a class: looking costs milliseconds)."""
    found = _WRITES.get(kind)
    if found is None:
        found = _WRITES[kind] = tuple(
            (name, function)
            for name, function in inspect.getmembers(kind, inspect.isfunction)
            if not name.startswith(("_", *READS)) and not isinstance(inspect.getattr_static(kind, name), staticmethod)
        )
    return found


def _counted(function: Callable[..., Any], backend: weakref.ref[Any], count: WriteCount) -> Callable[..., Any]:
    # The backend is held weakly: it holds its wrappers, and a cycle would keep a dropped world's
    # moto state alive until the collector ran.
    def counted(*args: Any, **kwargs: Any) -> Any:
        count.writes += 1
        try:
            return function(backend(), *args, **kwargs)
        finally:
            count.writes += 1

    # A world wraps some 190 methods of each backend it starts; `functools.wraps` copying every
    # attribute cost more than the wrapping. The names are what a traceback or a debugger shows.
    counted.__name__, counted.__qualname__ = function.__name__, function.__qualname__
    return counted
