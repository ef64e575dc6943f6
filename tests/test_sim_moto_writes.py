"""moto's write count: every path that changes an instance moves it, and a reader that trusts it
answers as a full look at moto would (tagjoin.sim.aws.moto_writes)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends

from tagjoin.core.aws.ec2_api import Filter
from tagjoin.sim.aws import moto_writes
from tagjoin.sim.aws.ec2_account import Ec2World
from tagjoin.sim.aws.moto_direct import MotoDirectEc2
from tagjoin.sim.aws.moto_writes import write_count
from tagjoin.sim.harness.scenario import FAULT_KINDS, ScenarioConfig, run_scenario

LEADER = "consul-leader"


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(moto_writes, "CHECK", True)
    yield


@pytest.fixture
def world() -> Iterator[Ec2World]:
    with Ec2World(3, "c1") as w:
        yield w


def _backend(world: Ec2World) -> object:
    return ec2_backends[DEFAULT_ACCOUNT_ID][world.region]


@pytest.mark.parametrize("fault", FAULT_KINDS)
def test_every_fault_kind_changes_moto_only_through_counted_writes(fault: str, checked: None) -> None:
    # With CHECK on, every describe and lag sync that trusts the count looks at moto in full as
    # well, and fails on any difference; lag on, so the lag plane's syncs and stagings are in play.
    lag = "adversarial" if FAULT_KINDS.index(fault) % 2 else "default"
    rec = run_scenario(ScenarioConfig(seed=2, faults=(fault,), clients=3, joiners=1, ec2_lag=lag))
    assert rec.ec2_calls, "the handlers should have called EC2"


def test_the_botocore_path_changes_moto_only_through_counted_writes(checked: None) -> None:
    rec = run_scenario(ScenarioConfig(seed=2, faults=("asg-replace",), ec2="boto3", ec2_lag="default"))
    assert rec.ec2_calls


def test_writes_by_every_path_move_the_count_and_reads_do_not(world: Ec2World) -> None:
    count = write_count(_backend(world))
    iid = world.launch("n1", "10.0.1.10")
    direct = MotoDirectEc2(world.region)
    client = world.client()
    steps: list[tuple[str, Callable[[], object]]] = [
        ("the world's launch", lambda: world.launch("n2", "10.0.1.11")),
        ("the direct adapter's CreateTags", lambda: direct.create_tags([iid], LEADER, "3")),
        ("botocore's DeleteTags", lambda: client.delete_tags(Resources=[iid], Tags=[{"Key": LEADER}])),
        ("the world's stop", lambda: world.stop(iid)),
        ("the world's start", lambda: world.start(iid)),
        ("the world's terminate", lambda: world.terminate(iid)),
    ]
    for what, step in steps:
        before = count.writes
        step()
        assert count.writes > before, what
    state = count.state
    direct.describe_instances([])
    direct.describe_tags([])
    client.describe_instances()
    assert count.state == state


def test_an_uncounted_change_is_caught_by_the_check(world: Ec2World, checked: None) -> None:
    iid = world.launch("n1", "10.0.1.10")
    direct = MotoDirectEc2(world.region)
    held: list[Filter] = [{"Name": f"tag:{LEADER}", "Values": ["*"]}]
    assert direct.describe_instances(held).instances == []
    by_key: list[Filter] = [{"Name": "key", "Values": [LEADER]}]
    assert direct.describe_tags(by_key).tags == []
    # A change made behind moto's methods: the count cannot see it, so a trusting describe would
    # answer from before it; the check looks in full and says so.
    _backend(world).tags[iid][LEADER] = "4"  # type: ignore[attr-defined]
    with pytest.raises(AssertionError, match="without a counted write"):
        direct.describe_instances(held)
    with pytest.raises(AssertionError, match="without a counted write"):
        direct.describe_tags(by_key)


def test_a_trusting_describe_answers_from_its_last_look(world: Ec2World) -> None:
    # Why every write must be counted: without the check, the uncounted change above goes unseen.
    iid = world.launch("n1", "10.0.1.10")
    direct = MotoDirectEc2(world.region)
    held: list[Filter] = [{"Name": f"tag:{LEADER}", "Values": ["*"]}]
    assert direct.describe_instances(held).instances == []
    _backend(world).tags[iid][LEADER] = "4"  # type: ignore[attr-defined]
    assert direct.describe_instances(held).instances == []
    direct.create_tags([iid], LEADER, "5")
    assert [i.tags[LEADER] for i in direct.describe_instances(held).instances] == ["5"]


def test_moto_reset_starts_a_new_count_with_its_wrappers(world: Ec2World, checked: None) -> None:
    # moto's reset empties the backend's attributes: wrappers, count and memos go together, and the
    # next look starts afresh (served endpoints reach it through POST /moto-api/reset).
    backend = _backend(world)
    vpc = world.vpc_id
    direct = MotoDirectEc2(world.region)
    first = write_count(backend)
    assert direct.describe_tags([{"Name": "key", "Values": ["k"]}]).tags == []
    backend.reset()  # type: ignore[attr-defined]
    second = write_count(backend)
    assert second is not first
    before = second.writes
    backend.create_tags([vpc], {"k": "v"})  # type: ignore[attr-defined]
    assert second.writes > before
    assert [t.value for t in direct.describe_tags([{"Name": "key", "Values": ["k"]}]).tags] == ["v"]
