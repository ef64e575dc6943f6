"""The keeper loop against a Consul agent over real HTTP and EC2 in moto."""

from __future__ import annotations

import copy
import logging
import random
from collections.abc import Iterator

import pytest
from moto import mock_aws

from tagjoin.core.aws.boto_ec2 import BotoEc2, make_ec2_client
from tagjoin.core.aws.tag_store import TagStore
from tagjoin.core.consul.client import ConsulClient
from tagjoin.core.consul.settings import consul_settings_from_env
from tagjoin.core.handoff import Decision
from tagjoin.core.keeper import KeepConfig, Keeper
from tagjoin.core.settings import AwsSettings, Scope
from tests.fake_agent import CHECKS, SELF_SERVER, FakeAgent, closed_port, serve_tcp
from tests.moto_world import REGION, FakeClock, build_world

KEY = "consul-leader"


class _Lines(logging.Handler):
    """The keeper's log lines, as the operator reads them."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def setup(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Keeper, FakeAgent, list[str], FakeClock]]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    agent = FakeAgent()
    with mock_aws(), serve_tcp(agent) as url:
        client = make_ec2_client(AwsSettings(region=REGION))
        world = build_world(client)
        world.launch("10.0.1.10", cluster="c1")
        clock = FakeClock()
        store = TagStore(BotoEc2(client), Scope(cluster="c1"), clock=clock, rng=random.Random(1))
        lines: list[str] = []
        logger = logging.getLogger(f"tests.keeper.{id(lines)}")
        logger.setLevel(logging.DEBUG)
        logger.addHandler(_Lines(lines))
        with ConsulClient(consul_settings_from_env({}, http_addr=url)) as consul:
            keeper = Keeper(consul, store, clock, KeepConfig(interval=0.05, anti_entropy=60), logger=logger)
            yield keeper, agent, lines, clock


def test_first_loop_reconciles_then_idles(setup: tuple[Keeper, FakeAgent, list[str], FakeClock]) -> None:
    keeper, _agent, _lines, _clock = setup
    keeper.run(lambda: False, max_iterations=3)
    assert [p.decision for p in keeper.passes] == [Decision.HANDOFF]


def test_health_change_triggers_a_pass_and_anti_entropy_repeats(
    setup: tuple[Keeper, FakeAgent, list[str], FakeClock],
) -> None:
    keeper, agent, lines, clock = setup
    keeper.run(lambda: False, max_iterations=1)
    agent.checks = [*CHECKS, {**CHECKS[0], "Node": "ip-10-0-9-9", "Status": "critical"}]
    agent.bump(agent.index + 1)
    keeper.run(lambda: False, max_iterations=1)
    assert "health changed" in lines[-1]
    clock.now += 61
    keeper.run(lambda: False, max_iterations=1)
    assert "anti-entropy" in lines[-1]
    assert [p.decision for p in keeper.passes] == [Decision.HANDOFF, Decision.NO_CHANGE, Decision.NO_CHANGE]


def test_follower_never_passes_and_errors_back_off(
    setup: tuple[Keeper, FakeAgent, list[str], FakeClock],
) -> None:
    keeper, agent, lines, clock = setup
    doc = copy.deepcopy(SELF_SERVER)
    doc["Stats"]["raft"]["state"] = "Follower"
    agent.self_doc = doc
    keeper.run(lambda: False, max_iterations=2)
    assert keeper.passes == []
    agent.leader = ""  # leader-bound reads now answer 500 No cluster leader
    keeper.run(lambda: False, max_iterations=1)
    health = agent.last("/v1/health/state/critical")
    assert "stale" in health.query, "the keeper's trigger query must not need a leader"
    assert not any("health query failed" in line for line in lines)
    # Were it a default read, an election would fail it at once, and the raft state (which
    # names the next leader) would still be looked at in the same loop, one interval later.
    keeper.config = KeepConfig(interval=0.05, anti_entropy=60, health_consistency=None)
    looks = len([r for r in agent.requests if r.path == "/v1/agent/self"])
    keeper.run(lambda: False, max_iterations=1)
    # An election fails the health query at once, but the raft state still names the next
    # leader: the keeper looks at it in the same loop and waits one interval, not a backoff.
    assert "health query failed" in lines[-1]
    assert len([r for r in agent.requests if r.path == "/v1/agent/self"]) == looks + 1
    assert clock.sleeps[-1] == 0.05
    assert keeper.passes == []


def test_an_agent_that_does_not_answer_backs_off(
    setup: tuple[Keeper, FakeAgent, list[str], FakeClock],
) -> None:
    keeper, _agent, lines, clock = setup
    with ConsulClient(consul_settings_from_env({}, http_addr=f"127.0.0.1:{closed_port()}")) as gone:
        keeper.consul = gone
        keeper.run(lambda: False, max_iterations=1)
    # Jittered, so keepers that lost their agents together do not come back in lockstep.
    assert "; retrying in " in lines[-1]
    assert 2.5 <= clock.sleeps[-1] <= 5.0
    assert keeper.passes == []


def test_keeper_remembers_its_instance_so_a_later_handoff_costs_one_read(
    setup: tuple[Keeper, FakeAgent, list[str], FakeClock],
) -> None:
    keeper, agent, _lines, _clock = setup
    keeper.run(lambda: False, max_iterations=1)
    assert keeper.passes[0].ec2_calls == {"DescribeInstances": 2, "CreateTags": 1}
    own = keeper.passes[0].created[0].instance_id
    keeper.store.delete_tag_if(own, KEY, "3")  # someone removed our tag; leadership moves on to term 4
    doc = copy.deepcopy(SELF_SERVER)
    doc["Stats"]["raft"]["term"] = "4"
    agent.self_doc = doc
    keeper.run(lambda: False, max_iterations=1)
    assert keeper.passes[-1].decision is Decision.HANDOFF
    assert keeper.passes[-1].ec2_calls == {"DescribeInstances": 1, "CreateTags": 1}
