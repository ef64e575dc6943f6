"""The LAN between simulated nodes: partitions as groups, per-message latency from a stream."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from tagjoin.sim.kernel.engine import Engine
from tagjoin.sim.kernel.machine import Node

# Nodes not named in a partition share this implicit group.
REST = -1


class Network:
    """Who can talk to whom, and how long a message takes.

    A partition is a list of groups; nodes in the same group reach each other, nodes in different
    groups do not. Messages are delivered only if the link holds both when sent and on arrival, and
    only to a responsive node of the same incarnation (a paused node's kernel would buffer, but the
    sender's RPC times out long before the pause ends, so dropping is the faithful outcome).
    """

    def __init__(self, engine: Engine, latency_ms: tuple[int, int] = (1, 5)) -> None:
        self._engine = engine
        self._rng = engine.streams.get("net.latency")
        self._lo, self._hi = latency_ms
        self._group: dict[str, int] = {}
        self.groups: tuple[tuple[str, ...], ...] = ()
        self.messages_sent = 0

    def connected(self, a: str, b: str) -> bool:
        if not self._group:
            return True
        return self._group.get(a, REST) == self._group.get(b, REST)

    def group_of(self, name: str) -> int:
        return self._group.get(name, REST) if self._group else 0

    def partition(self, groups: Sequence[Iterable[str]]) -> tuple[tuple[str, ...], ...]:
        assignment: dict[str, int] = {}
        normalised: list[tuple[str, ...]] = []
        for i, group in enumerate(groups):
            members = tuple(sorted(set(group)))
            for name in members:
                if name in assignment:
                    raise ValueError(f"node {name!r} is in two partition groups")
                assignment[name] = i
            normalised.append(members)
        self._group = assignment
        self.groups = tuple(normalised)
        return self.groups

    def heal(self) -> None:
        self._group = {}
        self.groups = ()

    @property
    def partitioned(self) -> bool:
        return bool(self._group)

    def latency(self) -> int:
        return self._rng.randint(self._lo, self._hi)

    def send(self, src: Node, dst: Node, deliver: Callable[[], None], label: str) -> bool:
        """Deliver `deliver()` at `dst` after a drawn latency; False if dropped at once."""
        if not (src.responsive and self.connected(src.name, dst.name)):
            return False
        self.messages_sent += 1
        epoch = dst.epoch

        def arrive() -> None:
            if dst.epoch == epoch and dst.responsive and self.connected(src.name, dst.name):
                deliver()

        self._engine.schedule(self.latency(), arrive, label, dst.name)
        return True
