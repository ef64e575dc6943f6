"""When a `consul watch` on each agent would run its handler.

`-type=nodes` is a blocking `/v1/catalog/nodes`, `-type=checks` a blocking `/v1/health/state/any`;
both are forwarded to the leader. A watch fires on its first result and afterwards only when the
result changed (api/watch/plan.go: new index and not DeepEqual). Since each Raft cluster has one
committed history, "(cluster, table index)" identifies the content exactly. A crash changes only the
checks table, so only `checks` watches fire for it — why `tagjoin keep` watches health, not nodes
(docs/design.md §2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tagjoin.sim.consul.cluster_events import WatchFired

if TYPE_CHECKING:
    from tagjoin.sim.consul.cluster import Cluster

KINDS = ("nodes", "checks")


class WatchTracker:
    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._last: dict[tuple[str, str], tuple[str, int]] = {}
        self._pending = False

    def poke(self) -> None:
        """Something may have changed what some agent's watch sees; evaluate once, a tick later."""
        if self._pending:
            return
        self._pending = True
        self._cluster.engine.schedule(1, self._evaluate, "watch.eval")

    def forget(self, node: str) -> None:
        """The agent restarted: its watches start over and fire on their first result."""
        for kind in KINDS:
            self._last.pop((node, kind), None)

    def _evaluate(self) -> None:
        self._pending = False
        cluster = self._cluster
        for name in sorted(cluster.nodes):
            node = cluster.nodes[name]
            if not node.responsive:
                continue
            source, _error = cluster.read_source(name, "default")
            if source is None or source.group is None:
                continue  # the watch errors and backs off; no handler run
            gid = source.group.gid
            for kind, index in (("nodes", source.fsm.nodes_index), ("checks", source.fsm.checks_index)):
                signature = (gid, index)
                if self._last.get((name, kind)) == signature:
                    continue
                self._last[(name, kind)] = signature
                cluster.bus.publish(WatchFired(cluster.engine.now, name, kind, max(index, 1)))
