"""The in-process Consul client (`InProcessHttp`) against httpx's own client on the agent's transport.

core's ConsulClient must not be able to tell them apart: the same answers (status, headers, body),
the same exceptions and messages for a crashed or a paused agent, and so the same trace of a whole
scenario, byte for byte.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tagjoin.core.consul.client import ConsulClient
from tagjoin.core.consul.settings import ConsulSettings
from tagjoin.core.errors import ConsulError
from tagjoin.sim.aws.ec2_account import Ec2World
from tagjoin.sim.consul.in_process import InProcessHttp
from tagjoin.sim.harness.recording import Recording
from tagjoin.sim.harness.scenario import CLUSTER, Scenario, ScenarioConfig, build, run_scenario


def fingerprint(rec: Recording) -> str:
    return hashlib.sha256(repr(rec).encode()).hexdigest()  # as tests/test_sim_scenario.py compares runs


@pytest.mark.parametrize(("seed", "fault"), [(2, "pause"), (3, "partition"), (6, "restart")])
def test_the_same_seed_gives_the_same_trace_on_either_consul_client(seed: int, fault: str) -> None:
    fast = run_scenario(ScenarioConfig(seed=seed, faults=(fault,)), keep_log=True)
    reference = run_scenario(ScenarioConfig(seed=seed, faults=(fault,), consul_http="httpx"), keep_log=True)
    assert fast.schedule, "the run should have logged something"
    assert fingerprint(fast) == fingerprint(reference)


@pytest.fixture
def settled() -> Iterator[Scenario]:
    with Ec2World(0, CLUSTER) as world:
        s = build(ScenarioConfig(seed=0, inject_faults=False, joiners=0), world)
        s.cluster.engine.run_until(20_000)
        yield s


def _clients(s: Scenario, node: str) -> tuple[ConsulClient, ConsulClient]:
    settings = ConsulSettings(address=f"{node}.agent:8500", timeout=5.0)
    transport = s.api.transport_for(node)
    return (
        ConsulClient(settings, transport, http=InProcessHttp(s.api, node, settings)),
        ConsulClient(settings, transport),
    )


def _answer(client: ConsulClient, path: str, params: dict[str, Any] | None) -> tuple[int, dict[str, str], bytes]:
    response = client._http.request("GET", path, params=params)
    return response.status_code, dict(response.headers), response.content


def test_answers_are_the_same(settled: Scenario) -> None:
    node = settled.cluster.servers()[0]
    fast, reference = _clients(settled, node)
    for path, params in [
        ("/v1/agent/self", None),
        ("/v1/health/state/critical", {"stale": "", "index": "1", "wait": "1000ms"}),
        ("/v1/catalog/nodes", {"consistent": ""}),
        ("/v1/agent/members", None),
        ("/v1/status/leader", None),
        ("/v1/nothing/here", None),
        ("/v1/health/state/any", {"stale": "", "consistent": ""}),
    ]:
        assert _answer(fast, path, params) == _answer(reference, path, params), path
    assert fast.agent_self() == reference.agent_self()


def test_parameters_that_are_not_strings_are_written_as_httpx_writes_them(settled: Scenario) -> None:
    # 1 and True are equal keys to a dict: asked one after the other, each must still be answered
    # as httpx sends it (index=1, index=true), not as the other was.
    node = settled.cluster.servers()[0]
    fast, reference = _clients(settled, node)
    path = "/v1/health/state/critical"
    asked: list[dict[str, Any]] = [{"index": 1}, {"index": True}, {"index": "1"}, {"wait": 1.5}, {"index": None}]
    for params in asked:
        assert _answer(fast, path, params) == _answer(reference, path, params), params


@pytest.mark.parametrize("how", ["crash", "pause"])
def test_an_agent_that_cannot_answer_fails_the_same(settled: Scenario, how: str) -> None:
    node = settled.cluster.servers()[1]
    fast, reference = _clients(settled, node)
    if how == "crash":
        settled.cluster.crash(node)
    else:
        settled.cluster.pause(node, 60_000)
    failures = []
    for client in (fast, reference):
        with pytest.raises(ConsulError) as caught:
            client.agent_self()
        cause = caught.value.__cause__
        failures.append((type(caught.value), str(caught.value), type(cause), str(cause)))
    assert failures[0] == failures[1]
    assert failures[0][2] is (httpx.ConnectError if how == "crash" else httpx.ReadTimeout)


def test_what_it_cannot_shortcut_goes_through_httpx(settled: Scenario) -> None:
    node = settled.cluster.servers()[0]
    fast, reference = _clients(settled, node)
    assert _answer(fast, "/v1/agent/self?pretty", None) == _answer(reference, "/v1/agent/self?pretty", None)
    put = fast._http.request("PUT", "/v1/agent/join/10.9.9.9", headers={"X-Extra": "1"})
    assert put.status_code == reference._http.request("PUT", "/v1/agent/join/10.9.9.9").status_code
