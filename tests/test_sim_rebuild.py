"""Fault kind `rebuild`: the cluster is rebuilt from empty data dirs while a high-term tag stays."""

from __future__ import annotations

import pytest

from tagjoin.core.model import parse_term
from tagjoin.sim.consul.cluster import build_cluster
from tagjoin.sim.consul.data_dir import wipe_server
from tagjoin.sim.harness.scenario import FAULT_KINDS, ScenarioConfig, run_scenario


def test_an_emptied_data_dir_starts_a_new_raft_cluster_at_term_one() -> None:
    cluster = build_cluster(seed=4, servers=3)
    cluster.engine.run_for(60_000)
    old = cluster.raft[cluster.servers()[0]].group
    assert old is not None and cluster.term(cluster.servers()[0]) >= 1
    with pytest.raises(ValueError, match="running"):
        wipe_server(cluster, cluster.servers()[0])
    for name in cluster.servers():
        cluster.crash(name)
    for name in cluster.servers():
        wipe_server(cluster, name)
        assert cluster.term(name) == 0 and cluster.group_of(name) is None
    first, *rest = cluster.servers()
    for name in cluster.servers():
        cluster.restart(name)
    for name in rest:
        cluster.join(name, cluster.nodes[first].ip)
    cluster.engine.run_for(60_000)
    leader = cluster.leader()
    assert leader is not None
    new = {id(cluster.raft[n].group) for n in cluster.servers()}
    assert new == {id(cluster.raft[leader].group)} and cluster.raft[leader].group is not old


@pytest.mark.parametrize(("seed", "how"), [(6, "overwritten"), (1, "deleted"), (3, "deleted")])
def test_fenced_clears_the_debris_and_settles_on_the_rebuilt_leader(seed: int, how: str) -> None:
    assert "rebuild" in FAULT_KINDS
    rec = run_scenario(ScenarioConfig(seed=seed, strategy="fenced", faults=("rebuild",)))
    assert rec.violations == []
    rebuilt_at = rec.faults[0].start
    assert any((parse_term(v) or 0) >= 90 for t in rec.tags if t.t >= rebuilt_at for v in t.holders.values())
    leaders_after = [span for span in rec.leaders if span.start >= rebuilt_at]
    assert leaders_after and all(span.term < 90 for span in leaders_after)
    last = leaders_after[-1]
    assert rec.tags[-1].holders == {last.node: str(last.term)}
    deleted = [w for w in rec.writes if w.action == "DeleteTags" and (parse_term(w.value) or 0) >= 90]
    assert {w.writer for w in deleted} <= {span.node for span in leaders_after}
    # On the leader's own instance the debris goes by the create, which overwrites it.
    assert ("deleted" if deleted and all(w.removed for w in deleted) else "overwritten") == how
