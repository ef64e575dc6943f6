"""The console's reads under faults, against simulated agents in virtual time.

core's ConsulClient talks to the simulator's agents through its in-process transport (each URL's
host picks the agent, as the default `http://{address}:8500` template yields), so every answer
comes from that agent's own local view, with Consul's shapes, and no time passes unless a test
runs the engine. EC2 plays no part here: an empty instance store stands in for it.
"""

from __future__ import annotations

from collections.abc import Callable

from tagjoin.core.consul.client import ConsulClient
from tagjoin.core.consul.settings import consul_settings_from_env
from tagjoin.core.raft_view import Role
from tagjoin.sim.consul.cluster import Cluster, ClusterConfig, build_cluster
from tagjoin.sim.consul.http_api import AgentApi
from tagjoin.tui.agents import TemplateAgents
from tagjoin.tui.source import ClusterSource, Snapshot
from tests.console_doubles import FakeStore

TAG = "consul-leader"


def boot() -> Cluster:
    cluster = build_cluster(21, servers=3, clients=2, config=ClusterConfig(raft_multiplier=1))
    cluster.engine.run_for(20_000)
    assert cluster.leader() is not None
    return cluster


def source_on(cluster: Cluster, node: str) -> ClusterSource:
    """The console's source with `node`'s agent configured, as CONSUL_HTTP_ADDR would."""
    transport = AgentApi(cluster).routing_transport()
    consul = ConsulClient(consul_settings_from_env({}, http_addr=f"{cluster.nodes[node].ip}:8500"), transport)
    return ClusterSource(consul, FakeStore(), TemplateAgents(), tag_key=TAG, label="sim")


def polls(cluster: Cluster, source: ClusterSource, seconds: float, step_ms: int = 250) -> list[Snapshot]:
    out = []
    for _ in range(int(seconds * 1000 / step_ms)):
        cluster.engine.run_for(step_ms)
        out.append(source.fetch())
    return out


def leader_of(cluster: Cluster) -> str:
    leader = cluster.leader()
    assert leader is not None
    return leader


def until(cluster: Cluster, cond: Callable[[], bool], seconds: float) -> None:
    for _ in range(int(seconds * 4)):
        if cond():
            return
        cluster.engine.run_for(250)
    raise AssertionError(f"not within {seconds}s of virtual time")


def test_an_agent_that_is_leaving_is_not_believed_when_it_sees_no_leader() -> None:
    cluster = boot()
    old = leader_of(cluster)
    source = source_on(cluster, old)
    assert source.fetch().view is not None
    cluster.leave(old)
    seen = polls(cluster, source, 12)
    raw_no_leader = 0
    for snap in seen:
        assert snap.ok and snap.view is not None
        # Every poll names the leader the cluster has, whatever the leaving agent says.
        assert snap.view.leader_node not in (None, old), snap
        assert snap.via not in (None, old)
        assert snap.via_reason in ("has left", "is leaving", "does not answer")
    # The leaving agent itself did claim there was no leader during its drain.
    cluster2 = boot()
    leaving = leader_of(cluster2)
    direct = source_on(cluster2, leaving)._consul
    cluster2.leave(leaving)
    for _ in range(40):
        cluster2.engine.run_for(250)
        try:
            raw_no_leader += direct.leader() is None
        except Exception:
            break
    assert raw_no_leader > 0


def test_no_leader_is_reported_only_once_a_second_agent_agrees() -> None:
    cluster = boot()
    leader = leader_of(cluster)
    survivor = next(s for s in cluster.servers() if s != leader)
    others = [s for s in cluster.servers() if s not in (survivor,)]
    source = source_on(cluster, survivor)
    assert source.fetch().ok
    for name in others:
        cluster.crash(name)
    until(cluster, lambda: cluster.known_leader(survivor) is None, 30)
    snap = source.fetch()
    assert snap.ok and snap.view is not None and snap.view.leader_address is None
    # The other servers are down: the confirmation came from an agent that answers, a client.
    assert snap.no_leader_confirmed_by in cluster.clients()


def test_the_probe_marks_a_crashed_leader_that_followers_still_name() -> None:
    cluster = boot()
    leader = leader_of(cluster)
    follower = next(s for s in cluster.servers() if s != leader)
    source = source_on(cluster, follower)
    first = source.fetch()
    assert first.view is not None
    probe = source.probe_leader(first.view)
    assert probe is not None and probe.answered and probe.leads and probe.term
    cluster.crash(leader)
    cluster.engine.run_for(50)
    snap = source.fetch()
    assert snap.view is not None and snap.view.leader_node == leader  # the follower has not noticed yet
    probe = source.probe_leader(snap.view)
    assert probe is not None and probe.node == leader and probe.answered is False


def test_a_rejoined_server_reads_as_non_voter_until_autopilot_promotes_it() -> None:
    cluster = boot()
    leader = leader_of(cluster)
    gone = next(s for s in cluster.servers() if s != leader)
    source = source_on(cluster, leader)
    cluster.leave(gone)
    cluster.engine.run_for(12_000)
    cluster.restart(gone)
    cluster.join(gone, cluster.nodes[leader].ip)
    roles: list[Role | None] = []
    for _ in range(30):
        cluster.engine.run_for(1000)
        snap = source.fetch()
        assert snap.view is not None
        picture = source.read_raft(snap.view, snap.via).picture
        roles.append(picture.role_of(gone))
        if roles[-1] is Role.VOTER:
            break
    assert Role.NON_VOTER in roles, roles
    assert roles[-1] is Role.VOTER, roles
    first_non_voter = roles.index(Role.NON_VOTER)
    assert all(r is Role.NON_VOTER for r in roles[first_non_voter:-1]), roles
    assert picture.summary() == "voters 3/3 · quorum 2 · tolerates 1 failure"


def test_quorum_lost_reads_the_configuration_stale_and_says_so() -> None:
    cluster = boot()
    leader = leader_of(cluster)
    survivor = next(s for s in cluster.servers() if s != leader)
    for name in cluster.servers():
        if name != survivor:
            cluster.crash(name)
    until(cluster, lambda: cluster.known_leader(survivor) is None, 30)
    cluster.engine.run_for(10_000)  # gossip marks the crashed servers failed
    source = source_on(cluster, survivor)
    snap = source.fetch()
    assert snap.view is not None
    picture = source.read_raft(snap.view, None).picture
    assert picture.known and picture.stale and not picture.has_quorum
    assert (picture.voters, picture.healthy_voters, picture.quorum) == (3, 1, 2)
    assert picture.problem("raft configuration") is not None
    assert picture.autopilot_healthy is None  # autopilot lives on the leader


def test_detail_extras_come_from_the_catalog() -> None:
    cluster = boot()
    server = cluster.servers()[0]
    source = source_on(cluster, cluster.clients()[0])
    source.fetch()
    extras = source.node_extras(server, None)
    assert extras.error is None
    assert [(c.check_id, c.status) for c in extras.checks] == [("serfHealth", "passing")]
    assert [(s.service, s.port) for s in extras.services] == [("consul", 8300)]
    assert source.node_extras(cluster.clients()[1], None).services == ()
