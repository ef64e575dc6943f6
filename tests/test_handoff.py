"""The fenced handoff against a Consul agent over real HTTP and EC2 in moto."""

from __future__ import annotations

import copy
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from tagjoin.core.aws.boto_ec2 import BotoEc2, make_ec2_client
from tagjoin.core.aws.tag_store import TagStore
from tagjoin.core.consul.client import ConsulClient
from tagjoin.core.consul.settings import consul_settings_from_env
from tagjoin.core.errors import ConfigError, Ec2Throttled, InstanceNotFound
from tagjoin.core.handoff import Checkpoint, Decision, Report, handoff_pass, plan, run_pass
from tagjoin.core.model import AgentSelf, Instance
from tagjoin.core.pass_lock import FileLock, lock_from_env
from tagjoin.core.settings import AwsSettings, Scope
from tests.fake_agent import SELF_SERVER, FakeAgent, Reply, serve_tcp
from tests.moto_world import REGION, Ec2Faults, FakeClock, World, build_world

KEY = "consul-leader"
LEADER_IP = "10.0.1.10"  # the fake agent's own address; it is the leader in term 3


@dataclass
class Env:
    agent: FakeAgent
    consul: ConsulClient
    world: World
    store: TagStore
    faults: Ec2Faults
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def set_raft(self, state: str, term: int) -> None:
        doc = copy.deepcopy(SELF_SERVER)
        doc["Stats"]["raft"].update(state=state, term=str(term))
        self.agent.self_doc = doc

    def writes(self) -> list[tuple[str, str, str]]:
        out = []
        for op, params in self.calls:
            if op in ("CreateTags", "DeleteTags"):
                tag = params["Tags"][0]
                out.append((op, params["Resources"][0], tag.get("Value", "")))
        return out

    def ec2_ops(self) -> list[str]:
        return [op for op, _ in self.calls]

    def pass_(self, **kwargs: Any) -> Report:
        return run_pass(self.consul, self.store, FakeClock(), **kwargs)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    agent = FakeAgent()
    with mock_aws(), serve_tcp(agent) as url:
        client = make_ec2_client(AwsSettings(region=REGION))
        world = build_world(client)
        faults = Ec2Faults().install(client)
        store = TagStore(BotoEc2(client), Scope(cluster="c1"), clock=FakeClock(), rng=random.Random(1), max_attempts=3)
        consul = ConsulClient(consul_settings_from_env({}, http_addr=url))
        e = Env(agent, consul, world, store, faults)

        def record(model: Any, params: dict[str, Any], **_kw: Any) -> None:
            e.calls.append((model.name, params))

        client.meta.events.register("provide-client-params.ec2.*", lambda params, model, **kw: record(model, params))
        yield e
        consul.close()


def launch(e: Env, ip: str, tag: str | None = None) -> str:
    tags = {KEY: tag} if tag is not None else {}
    iid = e.world.launch(ip, cluster="c1", tags=tags)
    e.calls.clear()
    return iid


def test_new_leader_is_tagged_before_the_old_tag_is_removed(env: Env) -> None:
    old = launch(env, "10.0.1.20", "2")
    new = launch(env, LEADER_IP)
    report = env.pass_()
    assert report.decision is Decision.HANDOFF
    assert env.writes() == [("CreateTags", new, "3"), ("DeleteTags", old, "2")]
    assert env.world.tags_of(new)[KEY] == "3"
    assert KEY not in env.world.tags_of(old)
    assert report.ec2_calls == {"DescribeInstances": 2, "CreateTags": 1, "DeleteTags": 1}


def test_non_leader_makes_zero_ec2_calls(env: Env) -> None:
    launch(env, "10.0.1.20", "2")
    env.set_raft("Follower", 3)
    report = env.pass_()
    assert report.decision is Decision.NOT_LEADER
    assert env.calls == []
    assert report.ec2_calls == {}


def test_no_change_pass_makes_zero_writes(env: Env) -> None:
    launch(env, LEADER_IP, "3")
    report = env.pass_()
    assert report.decision is Decision.NO_CHANGE
    assert env.ec2_ops() == ["DescribeInstances"]


def test_stale_node_that_sees_a_higher_term_writes_nothing(env: Env) -> None:
    newer = launch(env, "10.0.1.20", "7")  # a real leader of term 7: a quorum now refuses term 3
    mine = launch(env, LEADER_IP, "2")
    steps, _ = _steps_until_confirm_after_read(env)
    env.agent.overrides[HEALTH] = Reply(500, "No cluster leader")
    report = _finish(steps)
    assert report.decision is Decision.STALE
    assert env.writes() == []
    assert env.world.tags_of(newer)[KEY] == "7"
    assert env.world.tags_of(mine)[KEY] == "2"


def test_unconfirmed_leadership_makes_zero_ec2_calls(env: Env) -> None:
    launch(env, "10.0.1.20", "2")
    env.agent.overrides[("GET", "/v1/health/node/ip-10-0-1-10")] = Reply(500, "No cluster leader")
    report = env.pass_()
    assert report.decision is Decision.UNCONFIRMED
    assert env.calls == []


def test_leader_named_elsewhere_is_unconfirmed(env: Env) -> None:
    env.agent.leader = "10.0.3.10:8300"
    report = env.pass_()
    assert report.decision is Decision.UNCONFIRMED
    assert env.calls == []


def test_crash_between_create_and_delete_leaves_two_tags_then_next_pass_cleans_up(env: Env) -> None:
    old = launch(env, "10.0.1.20", "2")
    new = launch(env, LEADER_IP)
    steps = handoff_pass(env.consul, env.store, FakeClock())
    seen: list[str] = []
    for checkpoint in steps:
        assert isinstance(checkpoint, Checkpoint)
        seen.append(checkpoint.call)
        if checkpoint.call.startswith("ec2:DeleteTags"):
            steps.close()  # the process dies right before the delete
            break
    assert seen[-2].startswith("ec2:CreateTags")
    assert env.world.tags_of(new)[KEY] == "3"
    assert env.world.tags_of(old)[KEY] == "2"  # two tags, never zero
    report = env.pass_()
    assert report.decision is Decision.HANDOFF
    assert report.created == []
    assert KEY not in env.world.tags_of(old)
    assert env.world.tags_of(new)[KEY] == "3"


def test_dry_run_plans_but_writes_nothing(env: Env) -> None:
    launch(env, "10.0.1.20", "2")
    launch(env, LEADER_IP)
    report = env.pass_(dry_run=True)
    assert report.decision is Decision.HANDOFF
    assert report.plan.create is not None and report.plan.deletes
    assert env.writes() == []


def test_leader_without_instance_fails_and_removes_nothing(env: Env) -> None:
    old = launch(env, "10.0.1.20", "2")
    with pytest.raises(InstanceNotFound) as err:
        env.pass_()
    assert "10.0.1.10" in str(err.value)
    assert env.writes() == []
    assert env.world.tags_of(old)[KEY] == "2"


def test_same_ip_outside_the_scope_does_not_confuse_the_lookup(env: Env) -> None:
    env.world.launch(LEADER_IP, other_vpc=True, tags={KEY: "1"})  # another cluster's node
    mine = launch(env, LEADER_IP)
    report = env.pass_()
    assert report.created[0].instance_id == mine


def test_throttling_beyond_the_budget_keeps_the_old_tag(env: Env) -> None:
    old = launch(env, "10.0.1.20", "2")
    launch(env, LEADER_IP)
    env.faults.throttle("CreateTags", count=10)
    with pytest.raises(Ec2Throttled) as err:
        env.pass_()
    assert "\n" not in str(err.value)
    assert env.world.tags_of(old)[KEY] == "2"
    assert [op for op in env.ec2_ops() if op == "DeleteTags"] == []


def test_plan_is_pure_and_deletes_only_with_the_value_seen() -> None:
    me = AgentSelf("n1", "10.0.1.4", "dc1", True, "Leader", 9)
    own = Instance("i-own", "10.0.1.4", None, "running", {})
    others = (
        Instance("i-a", "10.0.1.5", None, "running", {KEY: "8"}),
        Instance("i-b", "10.0.1.6", None, "running", {KEY: "true"}),
    )
    from tagjoin.core.handoff import Observation

    obs = Observation(me, confirmed=True, own=own, tagged=others)
    p = plan(obs, KEY)
    assert p == plan(obs, KEY)
    assert p.create is not None and p.create.value == "9"
    assert [(d.instance_id, d.value) for d in p.deletes] == [("i-a", "8"), ("i-b", "true")]
    stopped = Instance("i-own", "10.0.1.4", None, "stopped", {})
    assert plan(Observation(me, True, stopped, ()), KEY).decision is Decision.SELF_NOT_RUNNING


def test_a_pass_that_stalled_writes_nothing_once_leadership_moved(env: Env) -> None:
    old = launch(env, "10.0.1.20", "2")
    launch(env, LEADER_IP)
    steps = handoff_pass(env.consul, env.store, FakeClock())
    seen = [next(steps).call]
    while seen.count("consul:agent/self") < 2:  # observed everything; the last look comes next
        seen.append(next(steps).call)
    assert seen[-2].startswith("ec2:DescribeInstances")
    env.set_raft("Follower", 4)  # the pause: meanwhile another server won term 4
    with pytest.raises(StopIteration) as done:
        next(steps)
    report: Report = done.value.value
    assert report.decision is Decision.SUPERSEDED
    assert "now Follower at term 4" in report.plan.reason
    assert env.writes() == []
    assert env.world.tags_of(old)[KEY] == "2"


def test_one_pass_at_a_time_on_a_node(env: Env, tmp_path: Path) -> None:
    launch(env, "10.0.1.20", "2")
    new = launch(env, LEADER_IP)
    holder, other = FileLock(tmp_path / "pass.lock"), FileLock(tmp_path / "pass.lock")
    assert holder.try_acquire()
    busy = env.pass_(lock=other)
    assert busy.decision is Decision.BUSY
    assert busy.ec2_calls == {} and env.ec2_ops() == []
    holder.release()
    assert env.pass_(lock=other).decision is Decision.HANDOFF
    assert env.world.tags_of(new)[KEY] == "3"
    assert other.try_acquire(), "a finished pass releases the lock"
    other.release()


def test_the_lock_holds_across_processes_and_dies_with_its_holder(tmp_path: Path) -> None:
    path = tmp_path / "pass.lock"
    code = (
        "import sys; from pathlib import Path; from tagjoin.core.pass_lock import FileLock\n"
        f"assert FileLock(Path({str(path)!r})).try_acquire()\n"
        "print('held', flush=True); sys.stdin.readline()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        assert not FileLock(path).try_acquire()
    finally:
        proc.kill()
        proc.wait(timeout=10)
    mine = FileLock(path)
    assert mine.try_acquire(), "the kernel drops a dead holder's flock"
    mine.release()


def test_an_unusable_lock_path_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot open the handoff lock .*TAGJOIN_LOCK_FILE"):
        FileLock(tmp_path / "missing" / "pass.lock").try_acquire()
    assert lock_from_env({"TAGJOIN_LOCK_FILE": str(tmp_path / "x.lock")}).path == tmp_path / "x.lock"


# debris: a tag above our term that is no newer leader's (docs/design.md §2.1) ------------------

HEALTH = ("GET", "/v1/health/node/ip-10-0-1-10")


def _steps_until_confirm_after_read(env: Env) -> tuple[Any, list[str]]:
    """A pass stopped right before its quorum read after the tag read; returns it and the calls so far."""
    steps = handoff_pass(env.consul, env.store, FakeClock())
    seen = [next(steps).call]
    while not (seen[-1] == "consul:health/node?consistent" and "ec2:DescribeInstances" in seen):
        seen.append(next(steps).call)
    return steps, seen


def _finish(steps: Any) -> Report:
    with pytest.raises(StopIteration) as done:
        while True:
            next(steps)
    report: Report = done.value.value
    return report


def test_debris_above_our_term_is_removed_once_a_quorum_confirms_us_after_the_read(env: Env) -> None:
    debris = launch(env, "10.0.1.20", "99")  # left by a cluster rebuilt from empty data dirs
    mine = launch(env, LEADER_IP)
    steps, seen = _steps_until_confirm_after_read(env)
    assert seen.index("ec2:DescribeInstances") < len(seen) - 1, "the quorum read comes after the tag read"
    report = _finish(steps)
    assert report.decision is Decision.HANDOFF
    assert env.writes() == [("CreateTags", mine, "3"), ("DeleteTags", debris, "99")]
    assert KEY not in env.world.tags_of(debris)
    assert env.world.tags_of(mine)[KEY] == "3"
    assert [(d.instance_id, d.value) for d in report.plan.debris] == [(debris, "99")]
    assert report.to_json()["debris"] == [{"instance_id": debris, "key": KEY, "value": "99"}]
    assert "debris above term 3" in report.plan.reason


def test_debris_on_our_own_instance_is_overwritten_not_deleted(env: Env) -> None:
    mine = launch(env, LEADER_IP, "99")
    report = env.pass_()
    assert report.decision is Decision.HANDOFF
    assert env.writes() == [("CreateTags", mine, "3")]
    assert env.world.tags_of(mine)[KEY] == "3"


@pytest.mark.parametrize(("state", "term"), [("Follower", 7), ("Leader", 8), ("Candidate", 3)])
def test_a_newer_leaders_tag_stays_when_the_term_moved_around_the_quorum_read(env: Env, state: str, term: int) -> None:
    # The consistent read succeeded, but it may have been forwarded to (and verified by) the
    # newer leader: only the same term on both sides of it proves that we were the one confirmed.
    newer = launch(env, "10.0.1.20", "7")
    launch(env, LEADER_IP)
    steps, _ = _steps_until_confirm_after_read(env)
    env.set_raft(state, term)
    report = _finish(steps)
    assert report.decision is Decision.STALE
    assert env.writes() == []
    assert env.world.tags_of(newer)[KEY] == "7"


def test_plan_calls_a_higher_tag_debris_only_when_confirmed_after_the_read() -> None:
    from tagjoin.core.handoff import Observation

    me = AgentSelf("n1", "10.0.1.4", "dc1", True, "Leader", 2)
    own = Instance("i-own", "10.0.1.4", None, "running", {})
    high = (Instance("i-a", "10.0.1.5", None, "running", {KEY: "99"}),)
    before = plan(Observation(me, True, own, high), KEY)
    assert before.decision is Decision.STALE and not before.writes
    after = plan(Observation(me, True, own, high, confirmed_after_read=True), KEY)
    assert after.decision is Decision.HANDOFF
    assert after.create is not None and after.create.value == "2"
    assert [(d.instance_id, d.value) for d in after.deletes] == [("i-a", "99")]
    assert after.debris == after.deletes
