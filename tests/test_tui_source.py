"""One console poll: Consul + EC2 into a Snapshot; failures become a stale snapshot, not an exception."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import httpx
import pytest
from moto import mock_aws

from tagjoin.core.aws.boto_ec2 import BotoEc2, make_ec2_client
from tagjoin.core.aws.tag_store import TagStore
from tagjoin.core.clock import SystemClock
from tagjoin.core.consul.client import ConsulClient
from tagjoin.core.consul.settings import consul_settings_from_env
from tagjoin.core.errors import ConfigError
from tagjoin.core.model import AgentSelf, MemberStatus
from tagjoin.core.settings import AwsSettings, Scope
from tagjoin.tui.agents import DemoAgents, MapAgents, TemplateAgents
from tagjoin.tui.demo_control import DemoControl
from tagjoin.tui.source import ClusterSource, LeaderProbe
from tests.console_doubles import TAG_KEY, FakeConsul, FakeStore, FixedClock, instance, member
from tests.moto_world import REGION, build_world


def cluster() -> tuple[FakeConsul, FakeStore]:
    consul = FakeConsul(
        leader_addr="10.0.1.1:8300",
        member_list=[member("node-1", "10.0.1.1"), member("node-2", "10.0.1.2", MemberStatus.FAILED)],
        agents={
            "http://10.0.1.1:8500": AgentSelf("node-1", "10.0.1.1", "dc1", True, "Leader", 9),
        },
    )
    store = FakeStore(
        [
            instance("i-1", "10.0.1.1", tags={TAG_KEY: "9"}),
            instance("i-2", "10.0.1.2", "stopped"),
            instance("i-9", "10.0.9.9", "terminated", tags={TAG_KEY: "4"}),
        ]
    )
    return consul, store


def test_fetch_builds_the_view_and_the_probe_asks_the_leaders_own_agent_for_the_term() -> None:
    consul, store = cluster()
    clock = FixedClock(500.0)
    source = ClusterSource(consul, store, TemplateAgents(), tag_key=TAG_KEY, label="x", clock=clock)
    snap = source.fetch()
    assert snap.ok and snap.error is None and snap.fetched_at == 500.0
    assert snap.view is not None
    assert snap.view.leader_node == "node-1" and snap.view.tag_agrees
    # Instances in any state, so a tag left on a terminated instance is visible.
    assert [i.instance_id for i in snap.view.instances] == ["i-1", "i-2", "i-9"]
    # The poll itself never waits on the leader's agent: that is the probe's job.
    assert ("http://10.0.1.1:8500", "agent_self", "") not in consul.calls
    probe = source.probe_leader(snap.view)
    assert probe == LeaderProbe(500.0, "node-1", True, True, 9, "Leader")
    assert ("http://10.0.1.1:8500", "agent_self", "") in consul.calls


def test_an_unreachable_leader_agent_is_a_probe_without_answer() -> None:
    consul, store = cluster()
    consul.unreachable.add("http://10.0.1.1:8500")
    source = ClusterSource(consul, store, TemplateAgents(), tag_key=TAG_KEY, label="x")
    snap = source.fetch()
    assert snap.ok and snap.view is not None
    probe = source.probe_leader(snap.view)
    assert probe is not None and probe.answered is False and probe.term is None
    assert probe.error == "agent http://10.0.1.1:8500 unreachable"


def test_a_consul_failure_is_a_stale_snapshot_with_the_error() -> None:
    consul, store = cluster()
    consul.unreachable.add(consul.address)
    snap = ClusterSource(consul, store, TemplateAgents(), tag_key=TAG_KEY, label="x", clock=FixedClock(7.0)).fetch()
    assert not snap.ok and snap.view is None
    assert snap.error == "agent http://127.0.0.1:8500 unreachable"
    assert snap.fetched_at == 7.0


def test_an_unexpected_adapter_exception_is_reported_not_raised() -> None:
    consul, _ = cluster()

    class Broken:
        def instances(self, *, states: object = None) -> list[object]:
            raise KeyError("Reservations")

    snap = ClusterSource(consul, Broken(), TemplateAgents(), tag_key=TAG_KEY, label="x").fetch()  # type: ignore[arg-type]
    assert snap.error == "KeyError: 'Reservations'"


def test_demo_agents_come_from_the_control_api() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        nodes = [
            {
                "name": "node-1",
                "address": "10.0.1.1",
                "agent": "http://127.0.0.1:18501",
                "role": "server",
                "running": True,
            },
        ]
        return httpx.Response(200, json={"nodes": nodes})

    agents = DemoAgents(DemoControl("http://127.0.0.1:1", transport=httpx.MockTransport(handler)))
    consul, store = cluster()
    consul.agents["http://127.0.0.1:18501"] = consul.agents.pop("http://10.0.1.1:8500")
    source = ClusterSource(consul, store, agents, tag_key=TAG_KEY, label="demo")
    snap = source.fetch()
    assert snap.view is not None
    probe = source.probe_leader(snap.view)
    assert probe is not None and probe.term == 9
    assert agents.agent_url("node-1", "10.0.1.1") == "http://127.0.0.1:18501"
    assert agents.agent_url("node-2", "10.0.1.2") is None


def test_demo_agents_keep_the_last_map_when_the_control_api_fails() -> None:
    answers = iter(
        [
            httpx.Response(200, json={"nodes": [{"name": "a", "address": "1", "agent": "http://127.0.0.1:2"}]}),
            httpx.Response(503, json={"error": "busy"}),
        ]
    )
    agents = DemoAgents(DemoControl("http://127.0.0.1:1", transport=httpx.MockTransport(lambda _r: next(answers))))
    agents.refresh()
    agents.refresh()
    assert agents.agent_url("a", "1") == "http://127.0.0.1:2"


def test_the_real_adapters_plug_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """core's ConsulClient (on a mock transport) and TagStore (on moto) behind ClusterSource."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")

    def agent(request: httpx.Request) -> httpx.Response:
        m1 = {"Name": "node-1", "Addr": "10.0.1.10", "Port": 8301, "Status": 1, "Tags": {"role": "consul"}}
        m2 = {"Name": "node-2", "Addr": "10.0.1.11", "Port": 8301, "Status": 4, "Tags": {"role": "consul"}}
        match request.url.path:
            case "/v1/status/leader":
                return httpx.Response(200, json="10.0.1.10:8300")
            case "/v1/agent/members":
                return httpx.Response(200, json=[m1, m2])
            case "/v1/agent/self":
                # The leader's own agent, from the template; the configured one is a client.
                leader = request.url.host == "10.0.1.10"
                body = {
                    "Config": {"NodeName": "node-1" if leader else "web", "Datacenter": "dc1", "Server": leader},
                    "Member": m1,
                    "Stats": {"raft": {"state": "Leader", "term": "12"}} if leader else {},
                }
                return httpx.Response(200, json=body)
        return httpx.Response(404, text="not found")

    with mock_aws():
        world = build_world(make_ec2_client(AwsSettings(region=REGION)))
        world.launch("10.0.1.10", cluster="c1", tags={TAG_KEY: "12"})
        stopped = world.launch("10.0.1.11", cluster="c1")
        world.stop(stopped)
        world.launch("10.0.1.50", cluster="c2", tags={TAG_KEY: "3"})  # another cluster: out of scope
        store = TagStore(BotoEc2(world.client), Scope(cluster="c1"), clock=SystemClock(), rng=random.Random(1))
        consul = ConsulClient(consul_settings_from_env({}, http_addr="127.0.0.1:8500"), httpx.MockTransport(agent))
        with consul:
            source = ClusterSource(consul, store, TemplateAgents(), tag_key=TAG_KEY, label="real")
            snap = source.fetch()
            assert snap.view is not None
            probe = source.probe_leader(snap.view)
            source.close()
    assert snap.error is None and snap.view is not None
    assert probe is not None and probe.term == 12 and snap.view.tag_agrees
    assert [(r.name, r.instance.state if r.instance else None) for r in snap.view.rows] == [
        ("node-1", "running"),
        ("node-2", "stopped"),
    ]


def test_an_unreachable_configured_agent_is_read_through_another_member() -> None:
    consul, store = cluster()
    source = ClusterSource(consul, store, TemplateAgents(), tag_key=TAG_KEY, label="x")
    assert source.fetch().via is None  # learns who is alive
    consul.unreachable.add(consul.address)
    snap = source.fetch()
    assert snap.ok and snap.via == "node-1"  # node-2 is failed: not tried
    assert ("http://10.0.1.1:8500", "members", "") in consul.calls

    consul.unreachable.add("http://10.0.1.1:8500")
    snap = source.fetch()
    assert not snap.ok
    assert snap.error == "agent http://127.0.0.1:8500 unreachable; no other agent answered either"

    consul.unreachable.clear()
    assert source.fetch().via is None
    source.close()


def test_a_silent_configured_agent_is_not_waited_for_on_every_poll() -> None:
    """A paused agent holds a request for the client's whole timeout: after the first miss, the
    poll reads through the member that answered and asks the configured agent in the background."""
    consul, store = cluster()
    source = ClusterSource(consul, store, TemplateAgents(), tag_key=TAG_KEY, label="x")
    try:
        assert source.fetch().via is None
        consul.unreachable.add(consul.address)
        assert source.fetch().via == "node-1"
        consul.calls.clear()
        for _ in range(3):
            assert source.fetch().via == "node-1"
            pending = source.recheck
            assert pending is not None and pending.result(timeout=30) is False
        asked = [(agent, call) for agent, call, _ in consul.calls if agent == consul.address]
        assert asked and set(asked) == {(consul.address, "leader")}  # only the background question

        consul.unreachable.clear()
        assert source.fetch().via == "node-1"  # the answer to this poll's question is not in yet
        pending = source.recheck
        assert pending is not None and pending.result(timeout=30) is True
        assert source.fetch().via is None
        assert ("http://127.0.0.1:8500", "members", "") in consul.calls
    finally:
        source.close()


def test_demo_agents_know_which_agents_run() -> None:
    nodes = [
        {"name": "a", "address": "1", "agent": "http://127.0.0.1:2", "running": True},
        {"name": "b", "address": "2", "agent": "http://127.0.0.1:3", "running": False},
    ]
    agents = DemoAgents(
        DemoControl(
            "http://127.0.0.1:1", transport=httpx.MockTransport(lambda _r: httpx.Response(200, json={"nodes": nodes}))
        )
    )
    assert agents.running("a") is None  # nothing read yet
    agents.refresh()
    assert (agents.running("a"), agents.running("b"), agents.running("c")) == (True, False, None)
    assert TemplateAgents().running("a") is None


def test_map_agents_follow_the_file_and_keep_the_last_good_map(tmp_path: Path) -> None:
    path = tmp_path / "agents.json"
    path.write_text(json.dumps({"agents": {"a": "http://127.0.0.1:2"}}))
    agents = MapAgents(path)
    assert agents.agent_url("a", "10.0.0.1") == "http://127.0.0.1:2" and agents.agent_url("b", "x") is None
    path.write_text(json.dumps({"agents": {"a": "http://127.0.0.1:3", "b": "http://127.0.0.1:4"}}))
    os.utime(path, ns=(1, 1))  # a new stamp even within the filesystem's time resolution
    agents.refresh()
    assert agents.agent_url("a", "") == "http://127.0.0.1:3" and agents.agent_url("b", "") == "http://127.0.0.1:4"
    path.write_text("{half-written")
    os.utime(path, ns=(2, 2))
    agents.refresh()
    assert agents.agent_url("a", "") == "http://127.0.0.1:3"
    with pytest.raises(ConfigError, match="not JSON"):
        MapAgents(path)
    with pytest.raises(ConfigError, match="expected"):
        path.write_text(json.dumps({"a": "http://127.0.0.1:2"}))
        MapAgents(path)
    with pytest.raises(ConfigError, match="No such file"):
        MapAgents(tmp_path / "missing.json")
