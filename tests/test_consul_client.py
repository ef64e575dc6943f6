"""ConsulClient against a fake agent over real HTTP, a unix socket, TLS, and dead endpoints."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tagjoin.core.consul.client import ConsulClient, next_index
from tagjoin.core.consul.settings import ConsulSettings, consul_settings_from_env
from tagjoin.core.errors import (
    AclDenied,
    BadResponse,
    ConsulRateLimited,
    ConsulUnreachable,
    NoLeader,
)
from tagjoin.core.model import AgentSelf, CatalogNode, HealthCheck, Member, MemberStatus
from tests.fake_agent import (
    CATALOG_NODES,
    LEADER_ADDR,
    SELF_CLIENT,
    SELF_SERVER,
    FakeAgent,
    Reply,
    closed_port,
    make_tls_files,
    serve_tcp,
    serve_unix,
)

SECRET = "6a1f3c2e-7d4b-4e8a-b0c9-not-for-logs"


@pytest.fixture
def agent() -> FakeAgent:
    return FakeAgent()


@pytest.fixture
def address(agent: FakeAgent) -> Iterator[str]:
    with serve_tcp(agent) as addr:
        yield addr


def connect(address: str, **env: str) -> ConsulClient:
    return ConsulClient(consul_settings_from_env({"CONSUL_HTTP_ADDR": address, **env}))


@pytest.fixture
def client(address: str) -> Iterator[ConsulClient]:
    with connect(address) as c:
        yield c


def assert_one_line(message: str, address: str) -> None:
    assert "\n" not in message
    assert address in message


# -- status and agent endpoints --


def test_leader(client: ConsulClient) -> None:
    assert client.leader() == LEADER_ADDR


def test_leader_empty_string_is_none_not_an_error(client: ConsulClient, agent: FakeAgent) -> None:
    agent.leader = ""
    assert client.leader() is None


def test_peers(client: ConsulClient) -> None:
    assert client.peers() == [LEADER_ADDR, "10.0.2.10:8300", "10.0.3.10:8300"]


def test_agent_self_server(client: ConsulClient) -> None:
    me = client.agent_self()
    assert isinstance(me, AgentSelf)
    assert (me.node_name, me.address, me.datacenter, me.server) == ("ip-10-0-1-10", "10.0.1.10", "dc1", True)
    assert (me.raft_state, me.term, me.is_leader) == ("Leader", 3, True)
    assert me.member is not None
    assert me.member.is_server
    assert me.member.status is MemberStatus.ALIVE


def test_agent_self_client_has_no_raft(client: ConsulClient, agent: FakeAgent) -> None:
    agent.self_doc = SELF_CLIENT
    me = client.agent_self()
    assert (me.node_name, me.server, me.raft_state, me.term, me.is_leader) == (
        "ip-10-0-1-20",
        False,
        "",
        0,
        False,
    )


def test_agent_self_term_zero(client: ConsulClient, agent: FakeAgent) -> None:
    doc = json.loads(json.dumps(SELF_SERVER))
    doc["Stats"]["raft"] |= {"state": "Follower", "term": "0"}
    agent.self_doc = doc
    assert (client.agent_self().raft_state, client.agent_self().term) == ("Follower", 0)


def test_members(client: ConsulClient) -> None:
    members = client.members()
    assert [(m.name, m.addr, m.port, m.status, m.is_server) for m in members] == [
        ("ip-10-0-1-10", "10.0.1.10", 8301, MemberStatus.ALIVE, True),
        ("ip-10-0-2-10", "10.0.2.10", 8301, MemberStatus.FAILED, True),
        ("ip-10-0-1-20", "10.0.1.20", 8301, MemberStatus.ALIVE, False),
    ]
    assert isinstance(members[0], Member)
    assert members[0].tags["raft_vsn"] == "3"


def test_members_null_tags(client: ConsulClient, agent: FakeAgent) -> None:
    agent.members = [{**agent.members[0], "Tags": None}]
    assert client.members()[0].tags == {}


def test_raft_configuration(client: ConsulClient, agent: FakeAgent) -> None:
    config = client.raft_configuration()
    assert config.index == 1201
    assert [(s.node, s.address, s.leader, s.voter) for s in config.servers] == [
        ("ip-10-0-1-10", LEADER_ADDR, True, True),
        ("ip-10-0-2-10", "10.0.2.10:8300", False, True),
        ("ip-10-0-3-10", "10.0.3.10:8300", False, True),
    ]
    assert config.servers[0].id == "40e4a748-2192-161a-0510-9bf59fe950b5"
    assert "stale" not in agent.last("/v1/operator/raft/configuration").query


def test_raft_configuration_stale_without_leader(client: ConsulClient, agent: FakeAgent) -> None:
    agent.leader = ""
    with pytest.raises(NoLeader):
        client.raft_configuration()
    assert len(client.raft_configuration(stale=True).servers) == 3
    assert agent.last("/v1/operator/raft/configuration").query == {"stale": ["1"]}


def test_join_leave_force_leave(client: ConsulClient, agent: FakeAgent) -> None:
    client.join("10.0.2.10")
    client.join("10.0.2.10:8301")
    client.leave()
    client.force_leave("ip-10-0-2-10")
    client.force_leave("ip-10-0-2-10", prune=True)
    puts = [(r.method, r.path, r.query) for r in agent.requests]
    assert puts == [
        ("PUT", "/v1/agent/join/10.0.2.10", {}),
        ("PUT", "/v1/agent/join/10.0.2.10:8301", {}),
        ("PUT", "/v1/agent/leave", {}),
        ("PUT", "/v1/agent/force-leave/ip-10-0-2-10", {}),
        ("PUT", "/v1/agent/force-leave/ip-10-0-2-10", {"prune": ["1"]}),
    ]


def test_join_failure_is_one_line(client: ConsulClient, address: str) -> None:
    with pytest.raises(BadResponse) as info:
        client.join("10.0.9.9")
    message = str(info.value)
    assert_one_line(message, address)
    assert "Unexpected response code: 500 (1 error occurred: * Failed to join 10.0.9.9:8301:" in message


def test_force_leave_unknown_node(client: ConsulClient) -> None:
    with pytest.raises(BadResponse, match=r"Unexpected response code: 500 \(agent: No node found with name 'x/y'\)"):
        client.force_leave("x/y")


# -- blocking queries and consistency --


def test_catalog_nodes_with_query_meta(client: ConsulClient, agent: FakeAgent) -> None:
    agent.last_contact_ms = 12
    result = client.catalog_nodes()
    assert result.value == [
        CatalogNode(id=n["ID"], node=n["Node"], address=n["Address"], datacenter="dc1") for n in CATALOG_NODES
    ]
    assert (result.index, result.known_leader, result.last_contact_ms) == (1294, True, 12)
    assert agent.last("/v1/catalog/nodes").query == {}


def test_blocking_query_params(client: ConsulClient, agent: FakeAgent) -> None:
    client.catalog_nodes(index=1200, wait=30)
    assert agent.last("/v1/catalog/nodes").query == {"index": ["1200"], "wait": ["30000ms"]}
    client.health_state("critical", index=1200, wait=0.0004)
    assert agent.last("/v1/health/state/critical").query == {"index": ["1200"], "wait": ["1ms"]}


def test_blocking_query_waits_for_a_change(client: ConsulClient, agent: FakeAgent) -> None:
    timer = threading.Timer(0.1, agent.bump, args=(1300,))
    timer.start()
    started = time.monotonic()
    result = client.catalog_nodes(index=1294, wait=5)
    timer.join()
    assert result.index == 1300
    assert 0.05 < time.monotonic() - started < 4


def test_blocking_query_times_out_with_same_index(client: ConsulClient) -> None:
    started = time.monotonic()
    result = client.catalog_nodes(index=1294, wait=0.15)
    assert result.index == 1294
    assert time.monotonic() - started >= 0.1


def test_index_going_backwards_resets_to_zero(client: ConsulClient, agent: FakeAgent) -> None:
    agent.index = 900
    assert client.catalog_nodes(index=1294, wait=0.05).index == 0


def test_index_zero_is_treated_as_one(client: ConsulClient, agent: FakeAgent) -> None:
    agent.index = 0
    assert client.catalog_nodes().index == 1


@pytest.mark.parametrize(
    ("previous", "returned", "expected"),
    [(0, 5, 5), (5, 5, 5), (5, 9, 9), (9, 5, 0), (0, 0, 1), (0, -3, 1), (7, 0, 0), (1, 1, 1)],
)
def test_next_index(previous: int, returned: int, expected: int) -> None:
    assert next_index(previous, returned) == expected


def test_next_index_is_idempotent() -> None:
    for previous in range(4):
        for returned in range(-1, 5):
            once = next_index(previous, returned)
            assert next_index(previous, once) == once


def test_consistency_modes(client: ConsulClient, agent: FakeAgent) -> None:
    client.catalog_nodes(consistency="consistent")
    assert agent.last("/v1/catalog/nodes").query == {"consistent": ["1"]}
    client.health_state(consistency="stale")
    assert agent.last("/v1/health/state/any").query == {"stale": ["1"]}
    with pytest.raises(ValueError, match="consistency"):
        client.catalog_nodes(consistency="leader")


def test_health_state(client: ConsulClient) -> None:
    result = client.health_state("critical")
    assert result.value == [
        HealthCheck(
            node="ip-10-0-2-10",
            check_id="serfHealth",
            name="Serf Health Status",
            status="critical",
            output="Agent not live or unreachable",
        )
    ]
    assert result.index == 1294
    assert len(client.health_state().value) == 3


def test_health_node_is_a_consistent_read(client: ConsulClient, agent: FakeAgent) -> None:
    result = client.health_node("ip-10-0-1-10")
    assert [c.status for c in result.value] == ["passing"]
    assert agent.last("/v1/health/node/ip-10-0-1-10").query == {"consistent": ["1"]}
    client.health_node("ip-10-0-1-10", consistency=None)
    assert agent.last("/v1/health/node/ip-10-0-1-10").query == {}


def test_no_leader(client: ConsulClient, agent: FakeAgent, address: str) -> None:
    agent.leader = ""
    with pytest.raises(NoLeader) as info:
        client.catalog_nodes()
    assert "Unexpected response code: 500 (No cluster leader)" in str(info.value)
    assert_one_line(str(info.value), address)
    with pytest.raises(NoLeader):
        client.health_node("ip-10-0-1-10")
    stale = client.catalog_nodes(consistency="stale")
    assert stale.known_leader is False
    assert len(stale.value) == 2


def test_old_style_rpc_error_is_no_leader(client: ConsulClient, agent: FakeAgent) -> None:
    agent.overrides["GET", "/v1/catalog/nodes"] = Reply(500, "rpc error: No cluster leader")
    with pytest.raises(NoLeader):
        client.catalog_nodes()


def test_missing_index_header(client: ConsulClient, agent: FakeAgent, address: str) -> None:
    agent.overrides["GET", "/v1/catalog/nodes"] = Reply(200, "[]", {"Content-Type": "application/json"})
    with pytest.raises(BadResponse, match="X-Consul-Index") as info:
        client.catalog_nodes()
    assert_one_line(str(info.value), address)


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Consul-Index": "abc"},
        {"X-Consul-Index": "-4"},
        {"X-Consul-Index": "5", "X-Consul-Lastcontact": "x"},
    ],
)
def test_garbled_query_meta(client: ConsulClient, agent: FakeAgent, headers: dict[str, str]) -> None:
    agent.overrides["GET", "/v1/catalog/nodes"] = Reply(200, "[]", headers)
    with pytest.raises(BadResponse):
        client.catalog_nodes()


def test_query_meta_header_names_are_case_insensitive(client: ConsulClient, agent: FakeAgent) -> None:
    headers = {"x-consul-index": "77", "X-CONSUL-KNOWNLEADER": "false", "x-consul-lastcontact": "250"}
    agent.overrides["GET", "/v1/catalog/nodes"] = Reply(200, "[]", headers)
    result = client.catalog_nodes()
    assert (result.index, result.known_leader, result.last_contact_ms) == (77, False, 250)


def test_blocking_rejects_negative_arguments(client: ConsulClient) -> None:
    with pytest.raises(ValueError, match="index"):
        client.catalog_nodes(index=-1)


# -- errors --


def test_acl_anonymous_denied(client: ConsulClient, agent: FakeAgent, address: str) -> None:
    agent.required_token = SECRET
    with pytest.raises(AclDenied) as info:
        client.members()
    message = str(info.value)
    assert "Unexpected response code: 403 (Permission denied: anonymous token lacks permission" in message
    assert "CONSUL_HTTP_TOKEN" in message
    assert_one_line(message, address)
    assert "x-consul-token" not in agent.last("/v1/agent/members").headers


def test_acl_wrong_token_never_in_message(agent: FakeAgent, address: str) -> None:
    agent.required_token = "the-right-one"
    with connect(address, CONSUL_HTTP_TOKEN=SECRET) as c:
        with pytest.raises(AclDenied, match=r"\(ACL not found\)") as info:
            c.leader()
        assert SECRET not in str(info.value)
        assert SECRET not in repr(info.value)
        assert SECRET not in repr(c)
    assert agent.last("/v1/status/leader").headers["x-consul-token"] == SECRET


def test_token_header_sent(agent: FakeAgent, address: str) -> None:
    agent.required_token = SECRET
    with connect(address, CONSUL_HTTP_TOKEN=SECRET) as c:
        assert c.leader() == LEADER_ADDR
        c.join("10.0.2.10")
    assert {r.headers["x-consul-token"] for r in agent.requests} == {SECRET}


def test_token_echoed_by_agent_is_redacted(agent: FakeAgent, address: str) -> None:
    agent.overrides["GET", "/v1/agent/self"] = Reply(500, f"bad token {SECRET}")
    with connect(address, CONSUL_HTTP_TOKEN=SECRET) as c, pytest.raises(BadResponse) as info:
        c.agent_self()
    assert SECRET not in str(info.value)
    assert "<redacted>" in str(info.value)


def test_rate_limited(client: ConsulClient, agent: FakeAgent, address: str) -> None:
    agent.overrides["GET", "/v1/agent/members"] = Reply(429, "")
    with pytest.raises(ConsulRateLimited, match=r"Unexpected response code: 429 \(\)") as info:
        client.members()
    assert_one_line(str(info.value), address)
    agent.overrides["GET", "/v1/agent/members"] = Reply(429, "Rate limit reached, try again later")
    with pytest.raises(ConsulRateLimited, match="Rate limit reached"):
        client.members()


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, "No known Consul servers"),
        (404, "Invalid URL path: not a recognized HTTP API endpoint"),
        (400, "Invalid wait time"),
        (502, "  upstream\r\n  went away  \n"),
    ],
)
def test_other_status_codes(client: ConsulClient, agent: FakeAgent, address: str, status: int, body: str) -> None:
    agent.overrides["GET", "/v1/status/leader"] = Reply(status, body)
    with pytest.raises(BadResponse) as info:
        client.leader()
    one_line_body = " ".join(body.split())
    assert f"Unexpected response code: {status} ({one_line_body})" in str(info.value)
    assert_one_line(str(info.value), address)


def test_long_error_body_is_bounded(client: ConsulClient, agent: FakeAgent) -> None:
    agent.overrides["GET", "/v1/status/leader"] = Reply(500, "x" * 5000)
    with pytest.raises(BadResponse) as info:
        client.leader()
    assert len(str(info.value)) < 600


@pytest.mark.parametrize("body", ["<html>Bad Gateway</html>", "", '{"Config": ', "\xff"])
def test_garbage_json(client: ConsulClient, agent: FakeAgent, address: str, body: str) -> None:
    agent.overrides["GET", "/v1/agent/self"] = Reply(200, body, {"Content-Type": "application/json"})
    with pytest.raises(BadResponse, match="not JSON") as info:
        client.agent_self()
    assert_one_line(str(info.value), address)


def test_json_nested_too_deeply_is_named_as_such(client: ConsulClient, agent: FakeAgent, address: str) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    agent.overrides["GET", "/v1/agent/self"] = Reply(200, deep, {"Content-Type": "application/json"})
    with pytest.raises(BadResponse, match="nested too deeply") as info:
        client.agent_self()
    assert_one_line(str(info.value), address)


WRONG_SHAPES: list[tuple[str, object, str]] = [
    ("/v1/status/leader", 42, "leader"),
    ("/v1/status/leader", None, "leader"),
    ("/v1/status/peers", {"a": 1}, "peers"),
    ("/v1/status/peers", [1, 2], "peers"),
    ("/v1/agent/members", {}, "members"),
    ("/v1/agent/members", [{"Name": "n"}], "members"),
    ("/v1/agent/members", [{**SELF_SERVER["Member"], "Status": 9}], "members"),
    ("/v1/agent/members", [{**SELF_SERVER["Member"], "Port": True}], "members"),
    ("/v1/agent/members", [{**SELF_SERVER["Member"], "Port": "8301"}], "members"),
    ("/v1/agent/members", [{**SELF_SERVER["Member"], "Tags": {"role": 1}}], "members"),
    ("/v1/agent/members", [{**SELF_SERVER["Member"], "Tags": []}], "members"),
    ("/v1/agent/members", ["x"], "members"),
    ("/v1/agent/self", [], "agent_self"),
    ("/v1/agent/self", {"Member": SELF_SERVER["Member"]}, "agent_self"),
    ("/v1/agent/self", {**SELF_SERVER, "Config": {"NodeName": "n"}}, "agent_self"),
    ("/v1/agent/self", {**SELF_SERVER, "Config": {**SELF_SERVER["Config"], "Server": "true"}}, "agent_self"),
    ("/v1/agent/self", {**SELF_SERVER, "Stats": {"raft": {"state": "Leader", "term": "x"}}}, "agent_self"),
    ("/v1/agent/self", {**SELF_SERVER, "Stats": {"raft": {"state": "Leader", "term": 3}}}, "agent_self"),
    ("/v1/agent/self", {**SELF_SERVER, "Stats": {"raft": "Leader"}}, "agent_self"),
    ("/v1/agent/self", {**SELF_SERVER, "Member": None}, "agent_self"),
    ("/v1/operator/raft/configuration", {"Servers": []}, "raft_configuration"),
    ("/v1/operator/raft/configuration", {"Servers": {}, "Index": 1}, "raft_configuration"),
    ("/v1/operator/raft/configuration", {"Servers": [{"ID": "a"}], "Index": 1}, "raft_configuration"),
    ("/v1/operator/raft/configuration", {"Servers": [], "Index": "1"}, "raft_configuration"),
    ("/v1/catalog/nodes", {"Node": "n"}, "catalog_nodes"),
    ("/v1/catalog/nodes", [{"Node": "n"}], "catalog_nodes"),
    ("/v1/catalog/nodes", [{"Node": 1, "Address": "10.0.1.10"}], "catalog_nodes"),
    ("/v1/health/state/any", [{"Node": "n", "CheckID": "serfHealth"}], "health_state"),
    ("/v1/health/state/any", [None], "health_state"),
]


@pytest.mark.parametrize(("path", "doc", "method"), WRONG_SHAPES)
def test_wrong_shape(client: ConsulClient, agent: FakeAgent, address: str, path: str, doc: object, method: str) -> None:
    headers = {"Content-Type": "application/json", "X-Consul-Index": "5"}
    agent.overrides["GET", path] = Reply(200, json.dumps(doc), headers)
    with pytest.raises(BadResponse, match="unexpected shape") as info:
        getattr(client, method)()
    assert_one_line(str(info.value), address)


def test_a_bad_tag_value_is_named_with_its_member_and_key(client: ConsulClient, agent: FakeAgent) -> None:
    good = SELF_SERVER["Member"]
    doc = [good, {**good, "Tags": {**good["Tags"], "role": "consul", "vsn": 2}}]
    headers = {"Content-Type": "application/json", "X-Consul-Index": "5"}
    agent.overrides["GET", "/v1/agent/members"] = Reply(200, json.dumps(doc), headers)
    with pytest.raises(BadResponse, match=r"\(member 1\.Tags\.vsn is a number, expected a string\)"):
        client.members()


# -- transports: dead ports, timeouts, unix sockets, TLS, injected --


def test_connection_refused() -> None:
    address = f"127.0.0.1:{closed_port()}"
    with connect(address) as c, pytest.raises(ConsulUnreachable) as info:
        c.leader()
    message = str(info.value)
    assert "connection refused" in message
    assert "CONSUL_HTTP_ADDR" in message
    assert_one_line(message, address)


def test_timeout(agent: FakeAgent, address: str) -> None:
    agent.overrides["GET", "/v1/agent/self"] = Reply(200, "{}", delay=0.6)
    settings = consul_settings_from_env({"CONSUL_HTTP_ADDR": address}, timeout=0.2)
    started = time.monotonic()
    with (
        ConsulClient(settings) as c,
        pytest.raises(ConsulUnreachable, match=r"no answer within 0\.2 s") as info,
    ):
        c.agent_self()
    assert time.monotonic() - started < 0.55
    assert_one_line(str(info.value), address)


def test_unix_socket(agent: FakeAgent) -> None:
    with serve_unix(agent) as path, connect(f"unix://{path}", CONSUL_HTTP_TOKEN=SECRET) as c:
        assert c.leader() == LEADER_ADDR
        assert c.catalog_nodes().index == 1294
        assert c.address == f"unix://{path}"
    assert agent.last("/v1/status/leader").headers["x-consul-token"] == SECRET


def test_missing_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "nothing.sock"
    with (
        connect(f"unix://{path}") as c,
        pytest.raises(ConsulUnreachable, match="no such unix socket") as info,
    ):
        c.leader()
    assert_one_line(str(info.value), f"unix://{path}")


def test_path_prefix(agent: FakeAgent, address: str) -> None:
    with connect(f"http://{address}/consul/") as c, pytest.raises(BadResponse, match="404"):
        c.leader()
    assert agent.requests[-1].path == "/consul/v1/status/leader"


def test_with_address_reaches_the_other_agent(agent: FakeAgent, address: str) -> None:
    other = FakeAgent(leader="10.0.2.10:8300", required_token=SECRET)
    with serve_tcp(other) as other_address, connect(address, CONSUL_HTTP_TOKEN=SECRET) as c:
        with c.with_address(other_address) as d:
            assert d.leader() == "10.0.2.10:8300"
            assert d.address == f"http://{other_address}"
        assert c.leader() == LEADER_ADDR
    assert other.last("/v1/status/leader").headers["x-consul-token"] == SECRET


def test_injected_transport_is_shared_and_not_closed() -> None:
    seen: list[str] = []

    def route(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.url.host}:{request.url.port} {request.url.path}")
        return httpx.Response(200, json=f"{request.url.host}:8300")

    transport = httpx.MockTransport(route)
    with ConsulClient(ConsulSettings(address="10.0.1.10:8500"), transport) as c:
        with c.with_address("10.0.2.10:8500") as d:
            assert d.leader() == "10.0.2.10:8300"
        assert c.leader() == "10.0.1.10:8300"
    assert seen == ["10.0.2.10:8500 /v1/status/leader", "10.0.1.10:8500 /v1/status/leader"]


def test_dns_failure_is_unreachable() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except socket.gaierror as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc

    settings = ConsulSettings(address="consul.invalid:8500")
    with ConsulClient(settings, httpx.MockTransport(fail)) as c, pytest.raises(ConsulUnreachable) as info:
        c.members()
    assert "does not resolve" in str(info.value)
    assert_one_line(str(info.value), "http://consul.invalid:8500")


def test_client_repr_never_shows_token() -> None:
    c = ConsulClient(ConsulSettings(token=SECRET))
    assert SECRET not in repr(c)
    assert SECRET not in repr(c.settings)
    c.close()


def test_tls_with_ca_and_server_name(agent: FakeAgent, tmp_path: Path) -> None:
    files = make_tls_files(tmp_path)
    with serve_tcp(agent, files.server_context()) as address:
        env = {"CONSUL_CACERT": files.ca_file, "CONSUL_TLS_SERVER_NAME": "server.dc1.consul:8501"}
        with connect(f"https://{address}", **env) as c:
            assert c.leader() == LEADER_ADDR
        # The certificate names server.dc1.consul, not 127.0.0.1: without a server name it must fail.
        with connect(f"https://{address}", CONSUL_CACERT=files.ca_file) as c:
            with pytest.raises(ConsulUnreachable, match="TLS certificate verification failed") as info:
                c.leader()
            assert_one_line(str(info.value), f"https://{address}")
            assert "CONSUL_CACERT" in str(info.value)


def test_tls_unknown_ca_and_no_verify(agent: FakeAgent, tmp_path: Path) -> None:
    files = make_tls_files(tmp_path)
    with serve_tcp(agent, files.server_context()) as address:
        with connect(address, CONSUL_HTTP_SSL="true") as c, pytest.raises(ConsulUnreachable, match="TLS"):
            c.leader()
        with connect(address, CONSUL_HTTP_SSL="true", CONSUL_HTTP_SSL_VERIFY="false") as c:
            assert c.leader() == LEADER_ADDR


def test_tls_client_certificate(agent: FakeAgent, tmp_path: Path) -> None:
    files = make_tls_files(tmp_path)
    env = {"CONSUL_CACERT": files.ca_file, "CONSUL_TLS_SERVER_NAME": "server.dc1.consul"}
    with serve_tcp(agent, files.server_context(require_client_cert=True)) as address:
        cert = {"CONSUL_CLIENT_CERT": files.client_cert, "CONSUL_CLIENT_KEY": files.client_key}
        with connect(f"https://{address}", **env, **cert) as c:
            assert c.members()[0].name == "ip-10-0-1-10"
        with connect(f"https://{address}", **env) as c, pytest.raises(ConsulUnreachable):
            c.members()
