"""What the simulated cluster tells its drivers, and the bus that carries it.

Callbacks run synchronously, at the virtual time of the change, once the model is consistent again.
They may read anything; to inject a fault in reaction to an event, schedule it with
`engine.schedule(0, ...)` rather than calling the fault directly from inside the callback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol, TypeVar

from tagjoin.core.model import MemberStatus


@dataclass(frozen=True, slots=True)
class SimEvent:
    t: int  # virtual ms

    @property
    def node(self) -> str:
        return ""

    def describe(self) -> str:
        kind = type(self)
        shown = _SHOWN.get(kind)
        if shown is None:
            shown = _SHOWN[kind] = tuple(f.name for f in fields(self) if f.name not in ("t", "node_name"))
        return f"{kind.__name__} " + " ".join([f"{name}={getattr(self, name)}" for name in shown])


# Per event class, the fields its trace line shows: a pool of n agents logs n x n membership changes.
_SHOWN: dict[type[SimEvent], tuple[str, ...]] = {}


@dataclass(frozen=True, slots=True)
class NodeAdded(SimEvent):
    node_name: str
    ip: str
    server: bool

    @property
    def node(self) -> str:
        return self.node_name


@dataclass(frozen=True, slots=True)
class LeaderElected(SimEvent):
    node_name: str
    term: int
    group: str  # the Raft cluster (bootstrap identity) it leads

    @property
    def node(self) -> str:
        return self.node_name


@dataclass(frozen=True, slots=True)
class LeadershipLost(SimEvent):
    node_name: str
    term: int
    reason: str

    @property
    def node(self) -> str:
        return self.node_name


@dataclass(frozen=True, slots=True)
class MemberChanged(SimEvent):
    """`observer`'s gossip view of `subject` changed; `status` None means pruned from the list."""

    observer: str
    subject: str
    status: MemberStatus | None
    addr: str

    @property
    def node(self) -> str:
        return self.observer

    def describe(self) -> str:
        return self.line(self.observer, self.subject, self.status, self.addr)

    @staticmethod
    def line(observer: str, subject: str, status: MemberStatus | None, addr: str) -> str:
        """The generic line, written out: a pool of n agents logs n x n of these."""
        return f"MemberChanged observer={observer} subject={subject} status={_STATUS_TEXT[status]} addr={addr}"

    @staticmethod
    def batch_line(changes: Sequence[tuple[Named, str, Any]]) -> str:
        """The line of a batch of client view changes `(observer, subject, entry)`: how many, and
        the first and last of them."""
        (first, first_subject, _), (last, last_subject, _) = changes[0], changes[-1]
        return (
            f"MemberChanged clients changes={len(changes)} "
            f"first={first.name}:{first_subject} last={last.name}:{last_subject}"
        )


class Named(Protocol):
    @property
    def name(self) -> str: ...


# What an f-string makes of each status, looked up: formatting an enum member costs more than the
# rest of the line, and MemberChanged lines are most of a large pool's trace.
_STATUS_TEXT: dict[MemberStatus | None, str] = {status: f"{status}" for status in MemberStatus} | {None: "None"}


@dataclass(frozen=True, slots=True)
class NodeCrashed(SimEvent):
    node_name: str

    @property
    def node(self) -> str:
        return self.node_name


@dataclass(frozen=True, slots=True)
class NodeRestarted(SimEvent):
    node_name: str
    ip: str
    old_ip: str

    @property
    def node(self) -> str:
        return self.node_name


@dataclass(frozen=True, slots=True)
class NodePaused(SimEvent):
    node_name: str
    duration_ms: int

    @property
    def node(self) -> str:
        return self.node_name


@dataclass(frozen=True, slots=True)
class NodeResumed(SimEvent):
    node_name: str

    @property
    def node(self) -> str:
        return self.node_name


@dataclass(frozen=True, slots=True)
class NodeLeaving(SimEvent):
    """A graceful leave started (`consul leave` / PUT /v1/agent/leave)."""

    node_name: str

    @property
    def node(self) -> str:
        return self.node_name


@dataclass(frozen=True, slots=True)
class NodeShutdown(SimEvent):
    """The agent process exited after its graceful leave; its API stops answering."""

    node_name: str

    @property
    def node(self) -> str:
        return self.node_name


@dataclass(frozen=True, slots=True)
class NetworkChanged(SimEvent):
    groups: tuple[tuple[str, ...], ...]  # () once healed


@dataclass(frozen=True, slots=True)
class Committed(SimEvent):
    """A Raft entry committed by `leader`; table indexes after it applied."""

    leader: str
    group: str
    index: int
    kind: str
    nodes_index: int
    checks_index: int

    @property
    def node(self) -> str:
        return self.leader


@dataclass(frozen=True, slots=True)
class WatchFired(SimEvent):
    """A `consul watch` on `node_name` would run its handler: `kind` is `nodes` or `checks`."""

    node_name: str
    kind: str
    index: int

    @property
    def node(self) -> str:
        return self.node_name


E = TypeVar("E", bound=SimEvent)


class EventBus:
    """Typed publish/subscribe; every event is also written to the engine's trace."""

    def __init__(self, record: Callable[[str, str], None]) -> None:
        self._record = record
        self._by_type: dict[type[SimEvent], list[Callable[[Any], None]]] = {}
        self._all: list[Callable[[SimEvent], None]] = []
        self.traced: set[type[SimEvent]] | None = None  # None = trace every type

    def subscribe(self, kind: type[E], callback: Callable[[E], None]) -> Callable[[], None]:
        """Call `callback` for every event of `kind`; returns a function that unsubscribes."""
        subs = self._by_type.setdefault(kind, [])
        subs.append(callback)
        return lambda: subs.remove(callback) if callback in subs else None

    def subscribe_all(self, callback: Callable[[SimEvent], None]) -> Callable[[], None]:
        self._all.append(callback)
        return lambda: self._all.remove(callback) if callback in self._all else None

    def heard(self, kind: type[SimEvent]) -> bool:
        """Whether an event of `kind` has a subscriber (else `record` its line, and skip building it)."""
        return bool(self._all or self._by_type.get(kind))

    def traces(self, kind: type[SimEvent]) -> bool:
        return self.traced is None or kind in self.traced

    def record(self, node: str, line: str) -> None:
        """The trace line of an event nobody hears (`heard`): what `publish` would write."""
        self._record(node, line)

    def publish(self, event: SimEvent) -> None:
        if self.traced is None or type(event) in self.traced:
            self._record(event.node, event.describe())
        self.notify(event)

    def notify(self, event: SimEvent) -> None:
        """`publish` without the trace line: for events whose trace is written another way."""
        subs = self._by_type.get(type(event))
        if subs:
            for callback in list(subs):
                callback(event)
        if self._all:
            for callback_all in list(self._all):
                callback_all(event)
