"""The simulated agents' autopilot and catalog-node endpoints: Consul's shapes, status codes and headers."""

from __future__ import annotations

import httpx

from tagjoin.core.consul.client import ConsulClient
from tagjoin.core.consul.settings import consul_settings_from_env
from tagjoin.sim.consul.cluster import Cluster, ClusterConfig, build_cluster
from tagjoin.sim.consul.http_api import AgentApi


def boot() -> Cluster:
    cluster = build_cluster(21, servers=3, clients=1, config=ClusterConfig(raft_multiplier=1))
    cluster.engine.run_for(20_000)
    assert cluster.leader() is not None
    return cluster


def leader_of(cluster: Cluster) -> str:
    leader = cluster.leader()
    assert leader is not None
    return leader


def get(cluster: Cluster, node: str, path: str) -> httpx.Response:
    with httpx.Client(transport=AgentApi(cluster).transport_for(node), base_url="http://127.0.0.1:8500") as http:
        return http.get(path)


def test_autopilot_health_shape_from_any_agent() -> None:
    cluster = boot()
    leader = leader_of(cluster)
    response = get(cluster, cluster.clients()[0], "/v1/operator/autopilot/health")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"Healthy", "FailureTolerance", "Servers"}
    assert body["Healthy"] is True and body["FailureTolerance"] == 1
    servers = {s["Name"]: s for s in body["Servers"]}
    assert set(servers) == set(cluster.servers())
    one = servers[leader]
    assert set(one) == {
        "ID", "Name", "Address", "SerfStatus", "Version", "Leader", "LastContact",
        "LastTerm", "LastIndex", "Healthy", "Voter", "StableSince",
    }  # fmt: skip
    assert one["Leader"] is True and one["LastContact"] == "0s" and one["SerfStatus"] == "alive"
    assert one["StableSince"].endswith("Z") and one["Version"] == "1.20.1"
    # Like Consul's handler (no setMeta): no X-Consul-Index on operator endpoints.
    assert "X-Consul-Index" not in response.headers
    assert response.headers["X-Consul-Default-ACL-Policy"] == "allow"


def test_unhealthy_is_429_with_the_same_body_and_the_client_reads_it() -> None:
    cluster = boot()
    leader = leader_of(cluster)
    victim = next(s for s in cluster.servers() if s != leader)
    cluster.crash(victim)
    cluster.engine.run_for(1000)
    response = get(cluster, leader, "/v1/operator/autopilot/health")
    assert response.status_code == 429
    body = response.json()
    assert body["Healthy"] is False and body["FailureTolerance"] == 0
    sick = [s for s in body["Servers"] if not s["Healthy"]]
    assert [s["Name"] for s in sick] == [victim]
    client = ConsulClient(
        consul_settings_from_env({}, http_addr="127.0.0.1:8500"), AgentApi(cluster).transport_for(leader)
    )
    health = client.autopilot_health()
    assert not health.healthy and [s.name for s in health.servers if not s.healthy] == [victim]


def test_autopilot_state_and_no_leader() -> None:
    cluster = boot()
    leader = leader_of(cluster)
    body = get(cluster, leader, "/v1/operator/autopilot/state").json()
    assert set(body) == {"Healthy", "FailureTolerance", "OptimisticFailureTolerance", "Servers", "Leader", "Voters"}
    ids = {s["Name"]: sid for sid, s in body["Servers"].items()}
    assert body["Leader"] == ids[leader] and sorted(body["Voters"]) == sorted(ids.values())
    assert {s["Status"] for s in body["Servers"].values()} == {"leader", "voter"}
    for name in cluster.servers():
        cluster.crash(name)
    cluster.restart(cluster.servers()[0])
    response = get(cluster, cluster.servers()[0], "/v1/operator/autopilot/health")
    assert (response.status_code, response.text) == (500, "No cluster leader")


def test_a_rejoined_server_is_a_non_voter_until_promoted() -> None:
    cluster = boot()
    leader = leader_of(cluster)
    gone = next(s for s in cluster.servers() if s != leader)
    cluster.leave(gone)
    cluster.engine.run_for(12_000)
    cluster.restart(gone)
    cluster.join(gone, cluster.nodes[leader].ip)
    cluster.engine.run_for(2000)
    body = get(cluster, leader, "/v1/operator/autopilot/state").json()
    status = {s["Name"]: s["Status"] for s in body["Servers"].values()}
    assert status[gone] == "non-voter"
    cluster.engine.run_for(20_000)
    body = get(cluster, leader, "/v1/operator/autopilot/state").json()
    assert {s["Name"]: s["Status"] for s in body["Servers"].values()}[gone] == "voter"


def test_catalog_node_services() -> None:
    cluster = boot()
    server, client = cluster.servers()[0], cluster.clients()[0]
    response = get(cluster, client, f"/v1/catalog/node/{server}")
    assert response.status_code == 200 and int(response.headers["X-Consul-Index"]) >= 1
    body = response.json()
    assert body["Node"]["Node"] == server and list(body["Services"]) == ["consul"]
    assert body["Services"]["consul"]["Port"] == 8300
    assert get(cluster, client, f"/v1/catalog/node/{client}").json()["Services"] == {}
    assert get(cluster, client, "/v1/catalog/node/nobody").json() is None
