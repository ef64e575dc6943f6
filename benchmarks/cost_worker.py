"""One membership change in the simulator, counted: run in its own process by benchmarks/cost.py.

    python benchmarks/cost_worker.py NODES STRATEGY SEED CHANGE [--plain-moto]

Prints one JSON object: the EC2 calls of every simulated node between the change and the end of
the window, by action, and whether the tag ended on the leader. CHANGE is `leader-leave` (the
leader leaves gracefully: a membership change that is also a leader change) or `member-leave` (a
client — or a follower server when there is no client — leaves).

Speed only: unless --plain-moto, moto's per-resource tag lookup (`TaggedEC2Resource.get_tags`, which
scans every tag in the region for each instance it describes) is replaced by a dict lookup with the
same result, so a 500-node naive run takes minutes instead of an hour. Call counts do not depend on
it; cost.py checks that on the 50-node runs.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

SETTLE_MS = 30_000  # the cluster has formed, the first leader's tag is in place
WINDOW_MS = 30_000  # after the change; ends before the leader's 60 s anti-entropy pass
STEP_MS = 1_000


def index_moto_tags() -> None:
    from moto.ec2.models.core import TaggedEC2Resource
    from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

    def get_tags(self: Any) -> list[dict[str, str]]:
        rid = self.id
        tags = self.ec2_backend.tags.get(rid) if rid else None
        if not tags:
            return []
        kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(rid), "")
        return [{"resource_id": rid, "key": k, "value": v, "resource_type": kind} for k, v in tags.items()]

    TaggedEC2Resource.get_tags = get_tags  # type: ignore[method-assign]


def measure(nodes: int, strategy: str, seed: int, change: str) -> dict[str, Any]:
    from tagjoin.sim.aws.ec2_account import Ec2World
    from tagjoin.sim.harness.scenario import CLUSTER, TAG_KEY, ScenarioConfig, build

    servers = min(3, nodes)
    config = ScenarioConfig(
        seed=seed,
        strategy=strategy,
        servers=servers,
        clients=nodes - servers,
        duration_ms=SETTLE_MS + WINDOW_MS + 60_000,
        joiners=0,
        inject_faults=False,
    )
    started = time.perf_counter()
    with Ec2World(seed, CLUSTER) as world:
        s = build(config, world)
        cluster, engine = s.cluster, s.cluster.engine
        engine.run_until(SETTLE_MS)
        leader = cluster.leader()
        settled = leader is not None and set(world.tag_values(TAG_KEY)) == {s.node_instance[leader]}
        last_call: list[int] = []
        s.faults.add_observer(lambda _call: last_call.append(engine.now))
        before = s.faults.snapshot()
        change_at = engine.now
        if change == "leader-leave":
            target = leader
        else:
            clients = [n for n in sorted(cluster.nodes) if n not in cluster.servers()]
            target = clients[-1] if clients else next(n for n in cluster.servers() if n != leader)
        assert target is not None
        cluster.leave(target)
        engine.run_until(change_at + WINDOW_MS)
        after = s.faults.snapshot()
        new_leader = cluster.leader()
        converged = new_leader is not None and set(world.tag_values(TAG_KEY)) == {s.node_instance[new_leader]}
    calls = {a: after.calls.get(a, 0) - before.calls.get(a, 0) for a in after.calls}
    return {
        "nodes": nodes,
        "strategy": strategy,
        "seed": seed,
        "change": change,
        "settled_before": settled,
        "calls": {a: n for a, n in sorted(calls.items()) if n},
        "converged": converged,
        "leader_changed": new_leader != leader,
        "last_call_after_ms": (last_call[-1] - change_at) if last_call else None,
        "wall_s": round(time.perf_counter() - started, 2),
    }


def main(argv: list[str]) -> int:
    plain = "--plain-moto" in argv
    args = [a for a in argv if a != "--plain-moto"]
    nodes, strategy, seed, change = int(args[0]), args[1], int(args[2]), args[3]
    if not plain:
        index_moto_tags()
    print(json.dumps(measure(nodes, strategy, seed, change)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
