"""The boot decision against moto: cold start, tag present, fallback to members, nothing reachable."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from moto import mock_aws

from tagjoin.core.aws.boto_ec2 import BotoEc2, make_ec2_client
from tagjoin.core.aws.tag_store import TagStore
from tagjoin.core.boot import BootMode, BootPlan, plan_boot
from tagjoin.core.discover import why_no_targets
from tagjoin.core.errors import ConfigError
from tagjoin.core.model import Instance
from tagjoin.core.settings import AwsSettings, Scope
from tests.moto_world import CLUSTER_TAG, REGION, Ec2Faults, FakeClock, World, build_world

LEADER = "consul-leader"
SELF = "10.0.1.10"


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    # A leaked AWS_ENDPOINT_URL would send these "mocked" calls to a real endpoint.
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with mock_aws():
        yield build_world(make_ec2_client(AwsSettings(region=REGION)))


def boot(world: World, *, faults: Ec2Faults | None = None, **kwargs: object) -> BootPlan:
    client = world.client
    if faults is not None:
        client = make_ec2_client(AwsSettings(region=REGION))
        faults.install(client)
    store = TagStore(BotoEc2(client), Scope(cluster="c1"), clock=FakeClock(), rng=random.Random(3))
    return plan_boot(
        lambda: store.tagged_instances_by_tag_index(key=LEADER),
        lambda: store.tagged_instances(key=CLUSTER_TAG, value="c1"),
        tag_key=LEADER,
        own_addresses={SELF},
        **kwargs,  # type: ignore[arg-type]
    )


def test_cold_start_first_server_forms_the_cluster_with_bootstrap_expect(world: World) -> None:
    world.launch(SELF, cluster="c1")  # this node, alone: no tag anywhere, nobody else yet
    plan = boot(world, bootstrap_expect=3)
    assert plan.mode is BootMode.FORM
    assert plan.agent_args() == ["-server", "-bootstrap-expect=3"]
    assert any("no running instance carries tag consul-leader" in r for r in plan.reasons)


def test_cold_start_with_other_servers_booting_joins_them_not_itself(world: World) -> None:
    world.launch(SELF, cluster="c1")
    world.launch("10.0.1.11", cluster="c1")
    world.launch("10.0.1.12", cluster="c1")
    world.launch("10.0.1.13", cluster="c2")  # another cluster: never a target
    plan = boot(world, bootstrap_expect=3)
    assert plan.mode is BootMode.JOIN_MEMBER
    assert plan.join == ("10.0.1.11", "10.0.1.12")
    assert plan.agent_args() == [
        "-retry-join=10.0.1.11",
        "-retry-join=10.0.1.12",
        "-server",
        "-bootstrap-expect=3",
    ]


def test_tag_present_joins_the_holder_highest_term_first(world: World) -> None:
    world.launch(SELF, cluster="c1")
    world.launch("10.0.1.11", cluster="c1", tags={LEADER: "4"})
    world.launch("10.0.1.12", cluster="c1", tags={LEADER: "7"})
    world.launch("10.0.1.13", cluster="c1")
    plan = boot(world)
    assert plan.mode is BootMode.JOIN_LEADER
    assert plan.join == ("10.0.1.12", "10.0.1.11")
    assert plan.reasons == ()
    assert plan.agent_args() == ["-retry-join=10.0.1.12", "-retry-join=10.0.1.11"]


def test_own_stale_tag_falls_back_to_members_and_says_why(world: World) -> None:
    """A restarting former leader must not join itself (Consul counts that as success: an island)."""
    world.launch(SELF, cluster="c1", tags={LEADER: "5"})
    world.launch("10.0.1.11", cluster="c1")
    plan = boot(world, server=True)
    assert plan.mode is BootMode.JOIN_MEMBER
    assert plan.join == ("10.0.1.11",)
    assert any("1 holder (" in r and "=5) is this node" in r for r in plan.reasons)
    assert plan.agent_args() == ["-retry-join=10.0.1.11", "-server"]


def test_holder_without_the_wanted_address_is_named(world: World) -> None:
    holder = world.launch("10.0.1.11", cluster="c1", tags={LEADER: "2"})
    plan = boot(world, addr_type="public_v4")
    public = world.client.describe_instances(InstanceIds=[holder])["Reservations"][0]["Instances"][0]
    if public.get("PublicIpAddress"):
        pytest.skip("this moto release gives instances in a subnet a public IPv4")
    assert plan.mode is BootMode.FORM
    assert f"1 holder ({holder}=2) has no public IPv4" in plan.reasons


def test_nothing_reachable_still_starts_consul(world: World) -> None:
    world.launch("10.0.1.11", cluster="c1", tags={LEADER: "4"})
    faults = Ec2Faults()
    faults.unreachable("DescribeTags", count=50)
    faults.unreachable("DescribeInstances", count=50)
    plan = boot(world, faults=faults, bootstrap_expect=3)
    assert faults.injected["DescribeTags"] >= 1 and faults.injected["DescribeInstances"] >= 1
    assert plan.mode is BootMode.FORM
    assert plan.agent_args() == ["-server", "-bootstrap-expect=3"]
    assert [r.split(":")[0] for r in plan.reasons[:1]] == ["could not read the consul-leader tag"]
    assert any(r.startswith("could not read the cluster's members") for r in plan.reasons)


def test_a_client_with_nothing_to_join_starts_on_its_retry_join(world: World) -> None:
    plan = boot(world)
    assert plan.mode is BootMode.FORM
    assert plan.agent_args() == []
    assert plan.render("flags") == "\n"


def test_bad_bootstrap_expect_is_a_config_error(world: World) -> None:
    with pytest.raises(ConfigError, match="bootstrap_expect must be 1 or more"):
        boot(world, bootstrap_expect=0)


def test_why_no_targets_groups_the_holders_by_reason() -> None:
    tagged = [
        Instance("i-a", "10.0.1.1", None, "running", {LEADER: "2"}),
        Instance("i-b", "10.0.1.2", None, "running", {LEADER: "3"}),
        Instance("i-c", SELF, "54.0.0.1", "running", {LEADER: "4"}),
    ]
    assert why_no_targets(tagged, tag_key=LEADER, own_addresses={"54.0.0.1"}, addr_type="public_v4") == (
        "2 holders (i-a=2, i-b=3) have no public IPv4; 1 holder (i-c=4) is this node"
    )
    assert why_no_targets([], tag_key=LEADER) == "no running instance carries tag consul-leader"
