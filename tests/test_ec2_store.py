"""The EC2 tag store against moto in process, with faults injected below botocore's parser."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from moto import mock_aws

from tagjoin.core.aws.boto_ec2 import BotoEc2, make_ec2_client
from tagjoin.core.aws.tag_store import Ec2Stats, TagStore
from tagjoin.core.errors import ConfigError, Ec2Error, Ec2Throttled, InstanceNotFound
from tagjoin.core.settings import AwsSettings, Scope
from tests.moto_world import CLUSTER_TAG, REGION, Ec2Faults, FakeClock, World, build_world, ids

LEADER = "consul-leader"
PAGING_REGION = "eu-west-1"  # its own moto backend, so the 150 instances stay out of the main world


@pytest.fixture(scope="module")
def aws() -> Iterator[None]:
    # A leaked AWS_ENDPOINT_URL would send these "mocked" calls to a real endpoint.
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        with mock_aws():
            yield


@dataclass
class Cluster:
    world: World
    a1: str  # c1, 10.0.1.10, running
    a2: str  # c1, 10.0.1.11, running, leader tag "5"
    a3: str  # c1, 10.0.1.12, stopped
    b1: str  # c2 in the other VPC, 10.0.1.10 like a1
    untagged: str  # no cluster tag, 10.0.1.30
    dup_a: str  # c1, 10.0.1.20
    dup_b: str  # c1 in the other VPC, 10.0.1.20 too
    gone: str  # c1, 10.0.1.40, terminated


@pytest.fixture(scope="module")
def cluster(aws: None) -> Cluster:
    world = build_world(make_ec2_client(AwsSettings(region=REGION)))
    c = Cluster(
        world=world,
        a1=world.launch("10.0.1.10", cluster="c1"),
        a2=world.launch("10.0.1.11", cluster="c1", tags={LEADER: "5", "Name": "server-2"}),
        a3=world.launch("10.0.1.12", cluster="c1"),
        b1=world.launch("10.0.1.10", cluster="c2", other_vpc=True, tags={LEADER: "9"}),
        untagged=world.launch("10.0.1.30", tags={LEADER: "true"}),
        dup_a=world.launch("10.0.1.20", cluster="c1"),
        dup_b=world.launch("10.0.1.20", cluster="c1", other_vpc=True),
        gone=world.launch("10.0.1.40", cluster="c1"),
    )
    world.stop(c.a3)
    world.terminate(c.gone)
    return c


@pytest.fixture(scope="module")
def paging_world(aws: None) -> tuple[World, list[str]]:
    world = build_world(make_ec2_client(AwsSettings(region=PAGING_REGION)))
    # No cluster tag: moto's tag filters scan every tag, and the region holds nothing else anyway.
    launched = world.launch_many(150)
    world.client.create_tags(Resources=[launched[-1]], Tags=[{"Key": LEADER, "Value": "3"}])
    return world, launched


def store_for(world: World, cluster: str | None = "c1", **kwargs: object) -> tuple[TagStore, FakeClock]:
    clock = FakeClock()
    store = TagStore(BotoEc2(world.client), Scope(cluster=cluster), clock=clock, rng=random.Random(7), **kwargs)  # type: ignore[arg-type]
    return store, clock


@pytest.fixture
def faulty(cluster: Cluster) -> Iterator[tuple[TagStore, FakeClock, Ec2Faults]]:
    """A store on its own client, so armed faults never reach other tests."""
    client = make_ec2_client(AwsSettings(region=REGION))
    faults = Ec2Faults().install(client)
    clock = FakeClock()
    yield TagStore(BotoEc2(client), Scope(cluster="c1"), clock=clock, rng=random.Random(7)), clock, faults
    faults.uninstall(client)


# -- client ------------------------------------------------------------------------------------


def test_missing_region_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="region"):
        make_ec2_client(AwsSettings(region=None))


def test_client_leaves_retrying_to_the_store(aws: None) -> None:
    client = make_ec2_client(AwsSettings(region=REGION, endpoint_url="http://127.0.0.1:9"))
    assert client.meta.endpoint_url == "http://127.0.0.1:9"
    assert client.meta.region_name == REGION
    config: Any = client.meta.config  # the stubs omit Config's attributes
    assert config.retries == {"mode": "standard", "total_max_attempts": 1}
    assert config.connect_timeout and config.read_timeout


# -- reads -------------------------------------------------------------------------------------


def test_pagination_reads_every_page(paging_world: tuple[World, list[str]]) -> None:
    world, launched = paging_world
    store, _ = store_for(world, cluster=None)
    found = store.instances()
    assert ids(found) == set(launched)
    assert len(found) == 150
    assert store.stats.calls["DescribeInstances"] == 2  # moto pages by 100 reservations
    assert [i.instance_id for i in store.tagged_instances()] == [launched[-1]]


def test_throttled_second_page_resumes_instead_of_restarting(paging_world: tuple[World, list[str]]) -> None:
    _, launched = paging_world
    client = make_ec2_client(AwsSettings(region=PAGING_REGION))
    faults = Ec2Faults().install(client)
    faults.throttle("DescribeInstances", after=1)
    store = TagStore(BotoEc2(client), Scope(), clock=FakeClock(), rng=random.Random(1))
    assert ids(store.instances()) == set(launched)
    assert faults.seen["DescribeInstances"] == 3  # page 1, page 2 throttled, page 2 again
    assert store.stats.throttled == 1


def test_scope_limits_reads_to_the_cluster(cluster: Cluster) -> None:
    store, _ = store_for(cluster.world)
    assert ids(store.instances()) == {cluster.a1, cluster.a2, cluster.dup_a, cluster.dup_b}
    assert ids(store.instances(states=None)) == {
        cluster.a1,
        cluster.a2,
        cluster.a3,
        cluster.dup_a,
        cluster.dup_b,
        cluster.gone,
    }
    unscoped, _ = store_for(cluster.world, cluster=None)
    assert {cluster.b1, cluster.untagged} <= ids(unscoped.instances())


def test_tagged_instances(cluster: Cluster) -> None:
    store, _ = store_for(cluster.world)
    (leader,) = store.tagged_instances()
    assert leader.instance_id == cluster.a2
    assert leader.private_ip == "10.0.1.11"
    assert leader.state == "running"
    assert leader.tags == {CLUSTER_TAG: "c1", LEADER: "5", "Name": "server-2"}
    assert store.tagged_instances(value="5") == [leader]
    assert store.tagged_instances(value="4") == []
    assert ids(store.tagged_instances(key="Name")) == {cluster.a2}
    # The other cluster's and the unscoped leader tags stay invisible.
    assert ids(store_for(cluster.world, cluster="c2")[0].tagged_instances()) == {cluster.b1}


def test_instance_by_ip_ignores_the_same_ip_outside_the_scope(cluster: Cluster) -> None:
    store, _ = store_for(cluster.world)
    me = store.instance_by_ip("10.0.1.10")
    assert me.instance_id == cluster.a1
    assert me.private_ip == "10.0.1.10"
    assert store_for(cluster.world, cluster="c2")[0].instance_by_ip("10.0.1.10").instance_id == cluster.b1


def test_instance_by_ip_finds_stopped_but_not_terminated(cluster: Cluster) -> None:
    store, _ = store_for(cluster.world)
    assert store.instance_by_ip("10.0.1.12").state == "stopped"
    with pytest.raises(InstanceNotFound) as err:
        store.instance_by_ip("10.0.1.40")
    assert str(err.value) == (
        "no instance of cluster c1 has private IP 10.0.1.40; set TAGJOIN_INSTANCE_ID or check the cluster tag"
    )


def test_instance_by_ip_refuses_to_guess(cluster: Cluster) -> None:
    store, _ = store_for(cluster.world)
    with pytest.raises(Ec2Error) as err:
        store.instance_by_ip("10.0.1.20")
    assert not isinstance(err.value, InstanceNotFound)
    message = str(err.value)
    assert cluster.dup_a in message and cluster.dup_b in message
    assert "TAGJOIN_INSTANCE_ID" in message and "\n" not in message


def test_instance_by_ip_outside_any_cluster(cluster: Cluster) -> None:
    store, _ = store_for(cluster.world)
    with pytest.raises(InstanceNotFound, match=r"no instance of cluster c1 has private IP 10\.0\.1\.30"):
        store.instance_by_ip("10.0.1.30")


def test_instance_by_id(cluster: Cluster) -> None:
    store, _ = store_for(cluster.world)
    assert store.instance_by_id(cluster.a2).tags[LEADER] == "5"
    assert store.instance_by_id(cluster.a3).state == "stopped"
    for outside in (cluster.b1, cluster.untagged, "i-0123456789abcdef0", "not-an-id"):
        with pytest.raises(InstanceNotFound, match=f"instance {outside} is unknown or not part of cluster c1"):
            store.instance_by_id(outside)


# -- writes ------------------------------------------------------------------------------------


def test_value_conditional_delete_keeps_a_changed_tag(cluster: Cluster) -> None:
    world = cluster.world
    target = world.launch("10.0.1.50", cluster="c-writes")
    store, _ = store_for(world, cluster="c-writes")
    store.create_tag(target, LEADER, "5")
    store.create_tag(target, LEADER, "6")  # a newer leader took over meanwhile
    store.delete_tag_if(target, LEADER, "5")  # the stale writer's delete
    assert world.tags_of(target)[LEADER] == "6"
    store.delete_tag_if(target, LEADER, "6")
    assert LEADER not in world.tags_of(target)
    assert store.stats.calls == {"CreateTags": 2, "DeleteTags": 2}
    assert store.stats.attempts == 4


# -- faults ------------------------------------------------------------------------------------


def test_two_throttles_then_success(faulty: tuple[TagStore, FakeClock, Ec2Faults], cluster: Cluster) -> None:
    store, clock, faults = faulty
    before = store.stats.snapshot()
    faults.throttle("DescribeInstances", 2)
    assert [i.instance_id for i in store.tagged_instances()] == [cluster.a2]
    expected = random.Random(7)
    assert clock.sleeps == [expected.uniform(0, 0.2), expected.uniform(0, 0.4)]
    assert all(s > 0 for s in clock.sleeps)
    assert faults.seen["DescribeInstances"] == 3  # botocore itself did not retry
    one_pass = store.stats.since(before)
    assert one_pass == Ec2Stats(
        calls=one_pass.calls, attempts=3, throttled=2, server_errors=0, errors=0
    ) and one_pass.calls == {"DescribeInstances": 1}
    assert before.attempts == 0  # the snapshot is a copy


def test_throttling_beyond_the_budget(faulty: tuple[TagStore, FakeClock, Ec2Faults], cluster: Cluster) -> None:
    store, clock, faults = faulty
    faults.throttle("CreateTags", 10)
    with pytest.raises(Ec2Throttled) as err:
        store.create_tag(cluster.a1, "unused", "x")
    message = str(err.value)
    assert "\n" not in message
    assert "CreateTags" in message and "4 attempts" in message and "RequestLimitExceeded" in message
    assert faults.seen["CreateTags"] == 4
    assert len(clock.sleeps) == 3
    assert [s <= cap for s, cap in zip(clock.sleeps, (0.2, 0.4, 0.8), strict=True)] == [True] * 3
    assert store.stats.throttled == 4 and store.stats.errors == 1
    assert "unused" not in cluster.world.tags_of(cluster.a1)


def test_backoff_is_capped(cluster: Cluster) -> None:
    client = make_ec2_client(AwsSettings(region=REGION))
    faults = Ec2Faults().install(client)
    faults.throttle("DescribeInstances", 20)
    clock = FakeClock()
    store = TagStore(
        BotoEc2(client), Scope(cluster="c1"), clock=clock, rng=random.Random(3), max_attempts=8, max_delay=1.0
    )
    with pytest.raises(Ec2Throttled, match="8 attempts"):
        store.instances()
    assert len(clock.sleeps) == 7 and max(clock.sleeps) <= 1.0


def test_internal_error_is_retried(faulty: tuple[TagStore, FakeClock, Ec2Faults], cluster: Cluster) -> None:
    store, clock, faults = faulty
    faults.internal_error("DeleteTags")
    store.delete_tag_if(cluster.a1, "absent", "x")
    assert faults.seen["DeleteTags"] == 2
    assert store.stats.attempts == 2 and store.stats.server_errors == 1 and store.stats.throttled == 0
    assert len(clock.sleeps) == 1


def test_unreachable_endpoint_is_retried_then_reported(faulty: tuple[TagStore, FakeClock, Ec2Faults]) -> None:
    store, clock, faults = faulty
    faults.unreachable("DescribeInstances", 10)
    with pytest.raises(Ec2Error) as err:
        store.instances()
    assert "DescribeInstances" in str(err.value) and "Could not connect" in str(err.value)
    assert faults.seen["DescribeInstances"] == 4 and len(clock.sleeps) == 3


@pytest.mark.parametrize(
    ("code", "remedy"),
    [
        ("UnauthorizedOperation", "grant ec2:CreateTags"),
        ("AccessDenied", "grant ec2:CreateTags"),
        ("AuthFailure", "credentials are not valid"),
        ("RequestExpired", "fix the clock"),
    ],
)
def test_denied_is_not_retried(
    faulty: tuple[TagStore, FakeClock, Ec2Faults], cluster: Cluster, code: str, remedy: str
) -> None:
    store, clock, faults = faulty
    faults.deny("CreateTags", code=code)
    with pytest.raises(Ec2Error) as err:
        store.create_tag(cluster.a1, "unused", "x")
    assert not isinstance(err.value, Ec2Throttled)
    message = str(err.value)
    assert message.startswith(f"EC2 CreateTags denied: {code} (HTTP 403)")
    assert remedy in message and "\n" not in message
    assert faults.seen["CreateTags"] == 1 and clock.sleeps == []
    assert store.stats.attempts == 1 and store.stats.errors == 1


def test_missing_credentials_is_one_line(faulty: tuple[TagStore, FakeClock, Ec2Faults]) -> None:
    store, clock, faults = faulty
    faults.no_credentials("DescribeInstances")
    with pytest.raises(Ec2Error) as err:
        store.instances()
    assert not isinstance(err.value, Ec2Throttled)
    assert "Unable to locate credentials" in str(err.value) and "\n" not in str(err.value)
    assert clock.sleeps == []
