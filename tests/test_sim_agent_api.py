"""Each simulated agent's Consul HTTP API: in process over httpx, and over real loopback HTTP."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import consul
import httpx
import orjson
import pytest

from tagjoin.sim.consul.cluster import Cluster, ClusterConfig, build_cluster
from tagjoin.sim.consul.go_duration import format_ms, parse_duration_ns
from tagjoin.sim.consul.http_api import RPC_HOLD_TIMEOUT_MS, AclConfig, AgentApi, ApiRequest, Block, HeldRequest
from tagjoin.sim.live.agent_servers import ClusterHttp, serve_cluster
from tagjoin.sim.live.paced_driver import PacedDriver

BOOT_MS = 30_000


def boot(seed: int = 21, clients: int = 1) -> Cluster:
    cluster = build_cluster(seed, servers=3, clients=clients)
    cluster.engine.run_for(BOOT_MS)
    assert cluster.leader() is not None
    return cluster


def leader_of(cluster: Cluster) -> str:
    leader = cluster.leader()
    assert leader is not None
    return leader


def follower_of(cluster: Cluster) -> str:
    return next(n for n in cluster.servers() if n != leader_of(cluster))


class Agents:
    """httpx clients bound to simulated agents through the in-process transport."""

    def __init__(self, cluster: Cluster, acl: AclConfig | None = None) -> None:
        self.cluster = cluster
        self.api = AgentApi(cluster, acl=acl)

    def client(self, node: str) -> httpx.Client:
        return httpx.Client(transport=self.api.transport_for(node), base_url="http://127.0.0.1:8500")

    def get(self, node: str, path: str, **kwargs: object) -> httpx.Response:
        with self.client(node) as http:
            return http.get(path, **kwargs)  # type: ignore[arg-type]

    def put(self, node: str, path: str, **kwargs: object) -> httpx.Response:
        with self.client(node) as http:
            return http.put(path, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def agents() -> Agents:
    return Agents(boot())


# in process -------------------------------------------------------------------------------------


def test_status_leader_and_peers_from_each_agents_view(agents: Agents) -> None:
    cluster = agents.cluster
    leader = leader_of(cluster)
    expected = f"{cluster.nodes[leader].ip}:8300"
    for name in cluster.nodes:
        response = agents.get(name, "/v1/status/leader")
        assert response.status_code == 200
        assert response.json() == expected
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["X-Consul-Default-ACL-Policy"] == "allow"
        assert "X-Consul-Index" not in response.headers
    peers = agents.get(cluster.clients()[0], "/v1/status/peers").json()
    assert sorted(peers) == sorted(f"{cluster.nodes[s].ip}:8300" for s in cluster.servers())


def test_an_isolated_old_leader_names_itself_until_it_steps_down() -> None:
    agents = Agents(boot())
    cluster = agents.cluster
    old = leader_of(cluster)
    cluster.isolate(old)
    cluster.engine.run_for(1000)
    assert agents.get(old, "/v1/status/leader").json() == f"{cluster.nodes[old].ip}:8300"
    # A quorum-verified read is the one that tells the truth: the deposed leader cannot serve it.
    response = agents.get(old, "/v1/health/node/" + old, params={"consistent": ""})
    assert response.status_code == 500
    assert response.text == "leadership lost while committing log"
    assert agents.get(old, "/v1/catalog/nodes").status_code == 200  # default mode: its lease still holds
    cluster.engine.run_for(30_000)
    assert agents.get(old, "/v1/status/leader").json() == ""
    response = agents.get(old, "/v1/catalog/nodes")
    assert (response.status_code, response.text) == (500, "No cluster leader")
    response = agents.get(old, "/v1/catalog/nodes", params={"stale": ""})
    assert response.status_code == 200
    assert response.headers["X-Consul-KnownLeader"] == "false"
    assert int(response.headers["X-Consul-LastContact"]) > 0
    assert response.headers["X-Consul-Effective-Consistency"] == "stale"


def test_agent_self_on_a_server_and_on_a_client(agents: Agents) -> None:
    cluster = agents.cluster
    leader = leader_of(cluster)
    body = agents.get(leader, "/v1/agent/self").json()
    assert set(body) >= {"Config", "DebugConfig", "Coord", "Member", "Stats", "Meta"}
    config = body["Config"]
    assert config["NodeName"] == leader and config["Server"] is True and config["Datacenter"] == "dc1"
    assert config["NodeID"] == cluster.nodes[leader].node_id
    assert body["Member"]["Name"] == leader and body["Member"]["Status"] == 1
    raft = body["Stats"]["raft"]
    assert raft["state"] == "Leader" and raft["term"] == str(cluster.term(leader))
    assert raft["num_peers"] == "2" and raft["last_contact"] == "0"
    assert all(isinstance(v, str) for v in raft.values())
    assert body["Stats"]["consul"]["leader"] == "true"
    assert body["Stats"]["consul"]["leader_addr"] == f"{cluster.nodes[leader].ip}:8300"
    follower = agents.get(follower_of(cluster), "/v1/agent/self").json()
    assert follower["Stats"]["raft"]["state"] == "Follower"
    assert follower["Stats"]["raft"]["last_contact"].endswith("s")
    client = agents.get(cluster.clients()[0], "/v1/agent/self").json()
    assert client["Config"]["Server"] is False
    assert "raft" not in client["Stats"]
    assert client["Stats"]["consul"] == {"acl": "disabled", "known_servers": "3", "server": "false"}


def test_agent_self_is_one_compact_json_document_in_consuls_key_order(agents: Agents) -> None:
    # The answer is spliced from parts rendered once; it must read as what rendering it whole gives.
    cluster = agents.cluster
    for name in (leader_of(cluster), follower_of(cluster), cluster.clients()[0]):
        response = agents.get(name, "/v1/agent/self")
        body = response.json()
        assert list(body) == ["Config", "DebugConfig", "Coord", "Member", "Stats", "Meta"]
        assert response.content == orjson.dumps(body)
        pretty = agents.get(name, "/v1/agent/self", params={"pretty": ""})
        assert pretty.text == json.dumps(body, indent=4, ensure_ascii=False) + "\n"


def test_agent_members_shape_and_status_codes(agents: Agents) -> None:
    cluster = agents.cluster
    client = cluster.clients()[0]
    cluster.crash(client)
    cluster.engine.run_for(30_000)
    members = agents.get(leader_of(cluster), "/v1/agent/members").json()
    assert [m["Name"] for m in members] == sorted(cluster.nodes)
    by_name = {m["Name"]: m for m in members}
    assert by_name[client]["Status"] == 4
    server = by_name[leader_of(cluster)]
    assert server["Port"] == 8301 and server["Addr"] == cluster.nodes[server["Name"]].ip
    assert server["Tags"]["role"] == "consul" and server["Tags"]["expect"] == "3"
    assert server["Tags"]["port"] == "8300" and server["Tags"]["id"] == cluster.nodes[server["Name"]].node_id
    assert by_name[client]["Tags"]["role"] == "node"
    assert {"ProtocolMin", "ProtocolMax", "ProtocolCur", "DelegateMin", "DelegateMax", "DelegateCur"} <= set(server)
    pretty = agents.get(leader_of(cluster), "/v1/agent/members", params={"pretty": ""})
    assert pretty.text.endswith("\n") and json.loads(pretty.text) == members


def test_catalog_nodes_with_headers_and_blocking_returning_at_once(agents: Agents) -> None:
    cluster = agents.cluster
    client = cluster.clients()[0]
    response = agents.get(client, "/v1/catalog/nodes")
    assert response.status_code == 200
    index = int(response.headers["X-Consul-Index"])
    assert index >= 1
    assert response.headers["X-Consul-KnownLeader"] == "true"
    assert response.headers["X-Consul-LastContact"] == "0"
    assert response.headers["X-Consul-Effective-Consistency"] == "leader"
    nodes = response.json()
    assert [n["Node"] for n in nodes] == sorted(cluster.nodes)
    first = nodes[0]
    assert set(first) == {
        "ID",
        "Node",
        "Address",
        "Datacenter",
        "TaggedAddresses",
        "Meta",
        "CreateIndex",
        "ModifyIndex",
    }
    assert first["TaggedAddresses"]["lan"] == first["Address"]
    # Virtual time cannot block: the current state comes back at once, same index.
    again = agents.get(client, "/v1/catalog/nodes", params={"index": str(index), "wait": "5m"})
    assert int(again.headers["X-Consul-Index"]) == index
    stale = agents.get(follower_of(cluster), "/v1/catalog/nodes", params={"stale": "1"})
    assert stale.headers["X-Consul-KnownLeader"] == "true"
    assert stale.json() == nodes


def test_crash_changes_health_index_not_catalog_index(agents: Agents) -> None:
    cluster = agents.cluster
    leader = leader_of(cluster)
    client = cluster.clients()[0]
    nodes_before = agents.get(leader, "/v1/catalog/nodes")
    health_before = agents.get(leader, "/v1/health/state/any")
    assert [c["Status"] for c in health_before.json()] == ["passing"] * len(cluster.nodes)
    cluster.crash(client)
    cluster.engine.run_for(30_000)
    nodes_after = agents.get(leader, "/v1/catalog/nodes")
    assert nodes_after.json() == nodes_before.json()
    assert nodes_after.headers["X-Consul-Index"] == nodes_before.headers["X-Consul-Index"]
    critical = agents.get(leader, "/v1/health/state/critical")
    assert int(critical.headers["X-Consul-Index"]) > int(health_before.headers["X-Consul-Index"])
    [check] = critical.json()
    assert check["Node"] == client and check["CheckID"] == "serfHealth"
    assert check["Name"] == "Serf Health Status" and check["Output"] == "Agent not live or unreachable"
    assert check["ServiceTags"] == [] and check["ModifyIndex"] > check["CreateIndex"]
    node_checks = agents.get(leader, f"/v1/health/node/{client}").json()
    assert [c["Status"] for c in node_checks] == ["critical"]
    assert agents.get(leader, "/v1/health/state/passing").json()
    assert agents.get(leader, "/v1/health/state/warning").json() == []
    assert agents.get(leader, "/v1/health/node/nobody").json() == []


def test_bad_query_parameters_are_400(agents: Agents) -> None:
    leader = leader_of(agents.cluster)
    cases = [
        ({"stale": "", "consistent": ""}, "Cannot specify ?stale with ?consistent, conflicting semantics."),
        ({"index": "abc"}, "Invalid index"),
        ({"index": "-1"}, "Invalid index"),
        ({"index": "5", "wait": "soon"}, "Invalid wait time"),
    ]
    for params, text in cases:
        response = agents.get(leader, "/v1/catalog/nodes", params=params)
        assert (response.status_code, response.text) == (400, text)
    response = agents.get(leader, "/v1/health/state/")
    assert (response.status_code, response.text) == (400, "Missing check state")


def test_unknown_paths_and_wrong_methods(agents: Agents) -> None:
    leader = leader_of(agents.cluster)
    response = agents.get(leader, "/v1/agent/nope")
    assert (response.status_code, response.text) == (404, "Invalid URL path: not a recognized HTTP API endpoint")
    assert agents.get(leader, "/").status_code == 404
    response = agents.put(leader, "/v1/status/leader")
    assert (response.status_code, response.text) == (405, "method PUT not allowed")
    assert response.headers["Allow"] == "OPTIONS,GET"
    response = agents.get(leader, "/v1/agent/leave")
    assert response.status_code == 405 and response.headers["Allow"] == "OPTIONS,PUT"
    with agents.client(leader) as http:
        assert http.options("/v1/catalog/nodes").headers["Allow"] == "OPTIONS,GET"


def test_join_leave_and_force_leave(agents: Agents) -> None:
    cluster = agents.cluster
    leader = leader_of(cluster)
    cluster.add_client("newbie", "10.0.9.9")
    response = agents.put("newbie", f"/v1/agent/join/{cluster.nodes[follower_of(cluster)].ip}")
    assert (response.status_code, response.content) == (200, b"")
    cluster.engine.run_for(5000)
    assert "newbie" in [n["Node"] for n in agents.get(leader, "/v1/catalog/nodes").json()]
    failed = agents.put("newbie", "/v1/agent/join/10.9.9.9")
    assert failed.status_code == 500
    assert failed.text.startswith("1 error occurred:\n\t* Failed to join 10.9.9.9:8301: dial tcp")
    missing = agents.put(leader, "/v1/agent/force-leave/ghost")
    assert (missing.status_code, missing.text) == (500, "agent: No node found with name 'ghost'")
    cluster.crash("newbie")
    cluster.engine.run_for(30_000)
    assert agents.put(leader, "/v1/agent/force-leave/newbie", params={"prune": ""}).status_code == 200
    cluster.engine.run_for(5000)
    assert "newbie" not in [m["Name"] for m in agents.get(leader, "/v1/agent/members").json()]
    follower = follower_of(cluster)
    assert agents.put(follower, "/v1/agent/leave").status_code == 200
    cluster.engine.run_for(20_000)
    with pytest.raises(httpx.ConnectError):
        agents.get(follower, "/v1/status/leader")
    statuses = {m["Name"]: m["Status"] for m in agents.get(leader, "/v1/agent/members").json()}
    assert statuses[follower] == 3


def test_raft_configuration_default_and_stale(agents: Agents) -> None:
    cluster = agents.cluster
    leader = leader_of(cluster)
    body = agents.get(cluster.clients()[0], "/v1/operator/raft/configuration").json()
    assert body["Index"] >= 1
    servers = {s["Node"]: s for s in body["Servers"]}
    assert set(servers) == set(cluster.servers())
    assert [n for n, s in servers.items() if s["Leader"]] == [leader]
    one = servers[leader]
    assert one["Address"] == f"{cluster.nodes[leader].ip}:8300" and one["Voter"] is True
    assert one["ProtocolVersion"] == "3" and one["ID"] == cluster.nodes[leader].node_id
    response = agents.get(leader, "/v1/operator/raft/configuration")
    assert "X-Consul-Index" not in response.headers
    lonely = Agents(Cluster(seed=3))
    lonely.cluster.add_server("solo", "10.0.1.10", bootstrap_expect=3)
    response = lonely.get("solo", "/v1/operator/raft/configuration")
    assert (response.status_code, response.text) == (500, "No cluster leader")
    stale = lonely.get("solo", "/v1/operator/raft/configuration", params={"stale": ""}).json()
    assert stale == {"Servers": [], "Index": 0}
    assert lonely.get("solo", "/v1/status/leader").json() == ""


def test_a_client_without_servers(agents: Agents) -> None:
    cluster = agents.cluster
    cluster.add_client("alone", "10.0.9.1")
    response = agents.get("alone", "/v1/status/leader")
    assert (response.status_code, response.text) == (500, "No known Consul servers")
    assert agents.get("alone", "/v1/catalog/nodes").status_code == 500


def test_crashed_agent_refuses_and_paused_agent_times_out(agents: Agents) -> None:
    cluster = agents.cluster
    follower = follower_of(cluster)
    client = cluster.clients()[0]
    cluster.crash(follower)
    with pytest.raises(httpx.ConnectError):
        agents.get(follower, "/v1/status/leader")
    cluster.pause(client, 10_000)
    with pytest.raises(httpx.ReadTimeout):
        agents.get(client, "/v1/agent/self")
    cluster.engine.run_for(10_000)
    assert agents.get(client, "/v1/agent/self").status_code == 200


def test_routing_transport_picks_the_agent_by_host(agents: Agents) -> None:
    cluster = agents.cluster
    leader = leader_of(cluster)
    with httpx.Client(transport=agents.api.routing_transport()) as http:
        for name, node in cluster.nodes.items():
            body = http.get(f"http://{node.ip}:8500/v1/agent/self").json()
            assert body["Config"]["NodeName"] == name
        assert http.get(f"http://{leader}:8500/v1/agent/self").json()["Config"]["NodeName"] == leader
        with pytest.raises(httpx.ConnectError):
            http.get("http://10.99.99.99:8500/v1/status/leader")


def test_acl_mode() -> None:
    agents = Agents(boot(), acl=AclConfig(token="s3cr3t"))
    leader = leader_of(agents.cluster)
    anonymous = agents.get(leader, "/v1/agent/self")
    assert anonymous.status_code == 403
    assert anonymous.text.startswith("Permission denied: anonymous token lacks permission 'agent:read'.")
    assert anonymous.headers["X-Consul-Default-ACL-Policy"] == "deny"
    wrong = agents.get(leader, "/v1/agent/self", headers={"X-Consul-Token": "nope"})
    assert (wrong.status_code, wrong.text) == (403, "ACL not found")
    assert agents.get(leader, "/v1/agent/members").json() == []  # list endpoints filter
    filtered = agents.get(leader, "/v1/catalog/nodes")
    assert filtered.json() == [] and int(filtered.headers["X-Consul-Index"]) >= 1
    assert agents.put(leader, "/v1/agent/force-leave/x").status_code == 403
    for headers, params in (
        ({"X-Consul-Token": "s3cr3t"}, {}),
        ({"Authorization": "Bearer s3cr3t"}, {}),
        ({}, {"token": "s3cr3t"}),
    ):
        ok = agents.get(leader, "/v1/agent/self", headers=headers, params=params)
        assert ok.status_code == 200 and ok.json()["Stats"]["consul"]["acl"] == "enabled"
    members = agents.get(leader, "/v1/agent/members", headers={"X-Consul-Token": "s3cr3t"}).json()
    assert members and members[0]["Tags"]["acls"] == "1"
    assert agents.get(leader, "/v1/status/leader").status_code == 200  # status needs no token


def test_handle_returns_block_only_when_asked_and_nothing_changed(agents: Agents) -> None:
    leader = leader_of(agents.cluster)
    current = agents.get(leader, "/v1/catalog/nodes").headers["X-Consul-Index"]
    req = ApiRequest.build("GET", f"/v1/catalog/nodes?index={current}&wait=2s")
    blocked = agents.api.handle(leader, req, may_block=True)
    assert isinstance(blocked, Block)
    assert blocked.min_index == int(current) and 2000 <= blocked.wait_ms <= 2000 + 2000 // 16
    older = ApiRequest.build("GET", "/v1/catalog/nodes?index=1")
    assert not isinstance(agents.api.handle(leader, older, may_block=True), Block)
    huge = ApiRequest.build("GET", f"/v1/catalog/nodes?index={current}&wait=1h")
    capped = agents.api.handle(leader, huge, may_block=True)
    assert isinstance(capped, Block) and capped.wait_ms <= 600_000 + 600_000 // 16


def _held_until_answered(agents: Agents, node: str, target: str, limit_ms: int = 30_000) -> tuple[int, httpx.Response]:
    """Step virtual time while agent `node` holds `target`; then make the call. Bounded by `limit_ms`."""
    cluster, req = agents.cluster, ApiRequest.build("GET", target)
    held = HeldRequest(since=cluster.engine.now)
    while (hold := agents.api.hold(node, req, held)) is not None:
        assert cluster.engine.now - held.since < limit_ms, "held past the limit"
        cluster.engine.run_for(hold.retry_ms)
    return cluster.engine.now - held.since, agents.get(node, target)


def test_a_leader_bound_read_is_held_through_an_election_and_answered_by_the_new_leader() -> None:
    # raft_multiplier 1: the election (about 1-2 s) ends well inside rpc_hold_timeout.
    cluster = build_cluster(21, servers=3, clients=1, config=ClusterConfig(raft_multiplier=1))
    cluster.engine.run_for(BOOT_MS)
    agents = Agents(cluster)
    old = leader_of(cluster)
    follower = follower_of(cluster)
    cluster.crash(old)
    cluster.engine.run_for(1)
    assert cluster.leader() is None
    waited, response = _held_until_answered(agents, follower, "/v1/health/state/any")
    assert response.status_code == 200, response.text
    assert 0 < waited < RPC_HOLD_TIMEOUT_MS
    assert cluster.leader() not in (None, old)
    # A stale read needs no leader and is never held.
    assert agents.api.hold(follower, ApiRequest.build("GET", "/v1/health/state/any?stale"), HeldRequest(0)) is None


def test_without_a_leader_for_rpc_hold_timeout_the_read_fails_with_consuls_error() -> None:
    cluster = boot()
    agents = Agents(cluster)
    servers = cluster.servers()
    for name in servers[1:]:
        cluster.crash(name)  # quorum gone: no election can succeed
    cluster.engine.run_for(30_000)
    assert cluster.leader() is None
    waited, response = _held_until_answered(agents, servers[0], "/v1/catalog/nodes")
    assert RPC_HOLD_TIMEOUT_MS <= waited < RPC_HOLD_TIMEOUT_MS + RPC_HOLD_TIMEOUT_MS // 16 + 2
    assert (response.status_code, response.text) == (500, "No cluster leader")


def test_a_leaving_server_fails_fast(agents: Agents) -> None:
    cluster = agents.cluster
    old = leader_of(cluster)
    leaver = follower_of(cluster)
    cluster.crash(old)
    cluster.engine.run_for(1)
    cluster.leave(leaver)
    assert cluster.leader() is None
    assert agents.api.hold(leaver, ApiRequest.build("GET", "/v1/catalog/nodes"), HeldRequest(0)) is None


def test_a_new_leader_holds_consistent_reads_until_its_barrier_is_done(agents: Agents) -> None:
    cluster = agents.cluster
    cluster.crash(leader_of(cluster))
    for _ in range(6_000):  # bounded (30 virtual s): an election takes 5-15 s at raft_multiplier 5
        cluster.engine.run_for(5)
        if cluster.leader() is not None:
            break
    new = cluster.raft[leader_of(cluster)]
    assert new.consistent_ready_at is not None and cluster.engine.now < new.consistent_ready_at
    assert agents.get(new.name, "/v1/health/node/x?consistent").text == "Not ready to serve consistent reads"
    waited, response = _held_until_answered(agents, new.name, "/v1/health/node/x?consistent")
    assert response.status_code == 200
    assert cluster.engine.now >= new.consistent_ready_at and waited > 0


def test_a_consistent_read_on_a_cut_off_leader_waits_for_its_lease_then_fails(agents: Agents) -> None:
    cluster = agents.cluster
    leader = leader_of(cluster)
    cluster.partition([[leader]])
    waited, response = _held_until_answered(agents, leader, "/v1/health/node/x?consistent")
    assert (response.status_code, response.text) == (500, "leadership lost while committing log")
    assert waited > 0 and cluster.raft[leader].state != "Leader"


def test_wait_zero_is_the_default_query_time(agents: Agents) -> None:
    assert agents.api.blocking_params(ApiRequest.build("GET", "/v1/catalog/nodes?index=5&wait=0s")) == (5, 300_000)


def test_go_durations() -> None:
    assert parse_duration_ns("10s") == 10_000_000_000
    assert parse_duration_ns("1m30s") == 90_000_000_000
    assert parse_duration_ns("1.5h") == 5_400_000_000_000
    assert parse_duration_ns("250ms") == 250_000_000
    assert parse_duration_ns("0") == 0
    for bad in ("", "10", "s", "1x", "--1s"):
        with pytest.raises(ValueError):
            parse_duration_ns(bad)
    assert [format_ms(ms) for ms in (0, 57, 1500, 60_000, 3_661_001)] == ["0s", "57ms", "1.5s", "1m0s", "1h1m1.001s"]


# real HTTP on loopback ----------------------------------------------------------------------------


@dataclass
class Served:
    cluster: Cluster
    driver: PacedDriver
    http: ClusterHttp

    def url(self, node: str) -> str:
        return self.http.urls[node]

    def port(self, node: str) -> int:
        return int(self.url(node).rsplit(":", 1)[1])


@pytest.fixture
def served() -> Iterator[Served]:
    cluster = boot(seed=22)
    driver = PacedDriver(cluster.engine, speed=20.0, tick_s=0.01)
    http = serve_cluster(cluster, driver)
    driver.start()
    try:
        yield Served(cluster, driver, http)
    finally:
        http.close()
        driver.stop()


def curl(url: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("curl")
    if binary is None:
        pytest.skip("curl is not installed")
    return subprocess.run([binary, "-sS", "--max-time", "10", url], capture_output=True, text=True, timeout=20)


def test_curl_status_leader_and_members(served: Served) -> None:
    cluster = served.cluster
    leader = served.driver.call(lambda: leader_of(cluster))
    for name in cluster.nodes:
        assert served.url(name).startswith("http://127.0.0.1:")
        run = curl(served.url(name) + "/v1/status/leader")
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout) == f"{cluster.nodes[leader].ip}:8300"
    run = curl(served.url(leader) + "/v1/agent/members")
    members = json.loads(run.stdout)
    assert {m["Name"] for m in members} == set(cluster.nodes)
    assert {m["Status"] for m in members} == {1}


def test_py_consul_against_a_served_agent(served: Served) -> None:
    cluster = served.cluster
    leader = served.driver.call(lambda: leader_of(cluster))
    client = cluster.clients()[0]
    c = consul.Consul(host="127.0.0.1", port=served.port(client))
    assert c.status.leader() == f"{cluster.nodes[leader].ip}:8300"
    me = c.agent.self()
    assert me["Config"]["NodeName"] == client and me["Member"]["Status"] == 1
    index, nodes = c.catalog.nodes()
    assert int(index) >= 1 and {n["Node"] for n in nodes} == set(cluster.nodes)
    served.driver.call(lambda: cluster.add_client("late", "10.0.9.7"))
    late = consul.Consul(host="127.0.0.1", port=served.port("late"))
    assert late.agent.join(cluster.nodes[leader].ip) is True
    served.driver.call(lambda: cluster.crash("late"))
    deadline = time.monotonic() + 10
    while served.driver.call(lambda: cluster.member_status(leader, "late")) != 4:
        assert time.monotonic() < deadline, "the crash was never detected"
        time.sleep(0.05)
    assert consul.Consul(host="127.0.0.1", port=served.port(leader)).agent.force_leave("late") is True


def test_blocking_query_over_http_returns_when_a_node_joins(served: Served) -> None:
    cluster = served.cluster
    leader = served.driver.call(lambda: leader_of(cluster))
    url = served.url(leader) + "/v1/catalog/nodes"
    first = httpx.get(url, timeout=10)
    index = int(first.headers["X-Consul-Index"])
    result: dict[str, object] = {}

    def block() -> None:
        started = time.monotonic()
        response = httpx.get(url, params={"index": str(index), "wait": "10m"}, timeout=30)
        result["elapsed"] = time.monotonic() - started
        result["response"] = response

    thread = threading.Thread(target=block)
    thread.start()
    time.sleep(0.3)
    assert thread.is_alive(), "the blocking query returned before anything changed"

    def join() -> None:
        cluster.add_client("joiner", "10.0.9.8")
        cluster.join("joiner", cluster.nodes[leader].ip)

    served.driver.call(join)
    thread.join(20)
    assert not thread.is_alive()
    response = result["response"]
    assert isinstance(response, httpx.Response)
    assert int(response.headers["X-Consul-Index"]) > index
    assert "joiner" in {n["Node"] for n in response.json()}
    assert isinstance(result["elapsed"], float) and result["elapsed"] >= 0.3


def test_crashed_agent_refuses_connections_and_restart_reopens_the_port(served: Served) -> None:
    cluster = served.cluster
    client = cluster.clients()[0]
    url = served.url(client) + "/v1/status/leader"
    assert httpx.get(url, timeout=5).status_code == 200
    served.driver.call(lambda: cluster.crash(client))
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=5)
    run = curl(url)
    assert run.returncode == 7  # curl: failed to connect
    served.driver.call(lambda: cluster.restart(client))
    assert served.url(client) + "/v1/status/leader" == url
    assert httpx.get(url, timeout=5).status_code == 200


def test_paused_agent_over_http_does_not_answer(served: Served) -> None:
    cluster = served.cluster
    client = cluster.clients()[0]
    served.driver.call(lambda: cluster.pause(client, 600_000))
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(served.url(client) + "/v1/agent/self", timeout=0.3)
    served.driver.call(lambda: cluster.resume(client))
    assert httpx.get(served.url(client) + "/v1/agent/self", timeout=5).status_code == 200


def test_only_short_request_targets_are_kept_parsed() -> None:
    # A served agent reads request lines of up to 64 KiB; keeping each parsed would let a client
    # hold the process's memory.
    short = "/v1/health/state/critical?index=7&wait=1000ms"
    kept = ApiRequest.build("GET", short)
    assert ApiRequest.build("GET", short) is kept
    assert kept.get("index") == "7" and kept.has("wait")
    with pytest.raises(TypeError):
        kept.query["index"] = ["8"]  # type: ignore[index]  # one caller must not change another's
    long_target = "/v1/agent/self?" + "x" * 20_000
    first, again = ApiRequest.build("GET", long_target), ApiRequest.build("GET", long_target)
    assert first is not again and first == again
    assert first.has("x" * 20_000)
