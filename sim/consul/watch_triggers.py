"""When a `consul watch` on each agent would run its handler.

`-type=nodes` is a blocking `/v1/catalog/nodes`, `-type=checks` a blocking `/v1/health/state/any`;
both are forwarded to the leader. A watch fires on its first result and afterwards only when the
result changed (api/watch/plan.go: new index and not DeepEqual). Since each Raft cluster has one
committed history, "(cluster, table index)" identifies the content exactly. A crash changes only the
checks table, so only `checks` watches fire for it — why `tagjoin keep` watches health, not nodes
(docs/design.md §2).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from tagjoin.sim.consul.cluster_events import EventBus, WatchFired
from tagjoin.sim.consul.raft import RaftServer
from tagjoin.sim.kernel.engine import Engine
from tagjoin.sim.kernel.machine import Node

KINDS = ("nodes", "checks")


class WatchHost(Protocol):
    """What the watches need of the cluster that owns them; the cluster imports this module."""

    engine: Engine
    bus: EventBus

    @property
    def nodes(self) -> Mapping[str, Node]: ...

    def read_source(self, name: str, mode: str) -> tuple[RaftServer | None, str]: ...


class WatchTracker:
    def __init__(self, host: WatchHost) -> None:
        self._host = host
        self._last: dict[tuple[str, str], tuple[str, int]] = {}
        self._pending = False

    def poke(self) -> None:
        """Something may have changed what some agent's watch sees; evaluate once, a tick later."""
        if self._pending:
            return
        self._pending = True
        self._host.engine.schedule(1, self._evaluate, "watch.eval")

    def forget(self, node: str) -> None:
        """The agent restarted: its watches start over and fire on their first result."""
        for kind in KINDS:
            self._last.pop((node, kind), None)

    def _evaluate(self) -> None:
        self._pending = False
        host = self._host
        for name in sorted(host.nodes):
            node = host.nodes[name]
            if not node.responsive:
                continue
            source, _error = host.read_source(name, "default")
            if source is None or source.group is None:
                continue  # the watch errors and backs off; no handler run
            gid = source.group.gid
            for kind, index in (("nodes", source.fsm.nodes_index), ("checks", source.fsm.checks_index)):
                signature = (gid, index)
                if self._last.get((name, kind)) == signature:
                    continue
                self._last[(name, kind)] = signature
                host.bus.publish(WatchFired(host.engine.now, name, kind, max(index, 1)))
