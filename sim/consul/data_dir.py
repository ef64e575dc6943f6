"""Emptying a stopped agent's data dir: the cluster rebuilt from nothing while its instances stay.

Consul keeps in `data_dir` the Raft stable store, log and snapshots (`raft/`), Serf's snapshot
(`serf/local.snapshot`, which a restart rejoins from: agent/consul/server_serf.go `setupSerf`
sets `SnapshotPath`, and serf/snapshot.go replays it) and the node id. An operator who rebuilds a
cluster empties it on every server and starts them again with `bootstrap_expect`: the servers
bootstrap a new Raft cluster whose terms start again at 1 (hashicorp/raft api.go
`BootstrapCluster` writes term 1), while tags the old cluster wrote stay on running instances.

The node id is kept: Consul would make a new random one (agent/config/builder.go `makeNodeID`
with the default `disable_host_node_id = true`), but the new catalog starts empty, so no
registration can conflict with the old id, and the scenario follows nodes by name.
"""

from __future__ import annotations

from tagjoin.sim.consul.cluster import Cluster


def wipe_server(cluster: Cluster, name: str) -> None:
    """Empty the data dir of the stopped server `name`; start it with `cluster.restart`."""
    node = cluster.nodes[name]
    if node.up:
        raise ValueError(f"{name} is running; crash or leave it first")
    srv = cluster.raft[name]
    old = srv.group
    srv.wipe()
    # Bootstrap names a Raft cluster by its servers; the same servers bootstrapping again must
    # get a new cluster (empty log, term 1), not the old one, once no server holds the old one.
    retired = old is not None and not any(s.group is old for s in cluster.raft.values())
    if old is not None and retired and cluster.duties.groups.get(old.gid) is old:
        del cluster.duties.groups[old.gid]
    cluster.duties.register(node)  # bootstrap_expect counts again
    node.has_left = True  # no Serf snapshot: the restart rejoins no one on its own
