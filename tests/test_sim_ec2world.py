"""The simulator's EC2 side: seeded moto world, fault plane, served endpoint."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from moto.ec2.exceptions import InvalidID
from moto.moto_api._internal import mock_random

from tagjoin.sim.aws.ec2_account import CLUSTER_SUBNET_CIDR, Ec2World
from tagjoin.sim.aws.ec2_faults import Ec2Call, Ec2Faults, TokenBucket
from tagjoin.sim.aws.moto_endpoint import MotoServer

LEADER = "consul-leader"
AWS_CLI = Path(sys.executable).with_name("aws")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world() -> Iterator[Ec2World]:
    w = Ec2World(1, "c1")
    yield w
    w.close()


def _script(seed: int) -> list[object]:
    """A fixed sequence of world operations; what it observes must depend on the seed only."""
    with Ec2World(seed, "c1") as w:
        ids = [w.launch(f"s{i}") for i in range(3)]
        pinned = w.launch("s9", private_ip="10.0.1.50")
        w.add_noise(4)
        new_id, new_ip = w.replace("s1")
        w.launch_outside("x1", private_ip=w.ip_of(ids[0]))
        seen: list[object] = [w.vpc_id, w.subnet_id, pinned, new_id, new_ip]
        seen += [(i.instance_id, i.private_ip) for i in w.instances()]
        return seen + ids


def test_same_seed_gives_identical_ids_and_ips_in_one_process() -> None:
    first = _script(42)
    assert _script(42) == first
    assert _script(43) != first


def _launched_around_a_client(dispatched: bool) -> list[str | None]:
    with Ec2World(7, "c1", dispatched=dispatched) as w:
        before = [w.launch(f"s{i}") for i in range(2)]
        reservations = w.client().describe_instances()["Reservations"]
        assert sorted(i["InstanceId"] for r in reservations for i in r["Instances"]) == sorted(before)
        after = w.launch("s2")
        return [w.vpc_id, w.subnet_id, *before, after, w.ip_of(after)]


def test_a_world_not_built_for_the_dispatcher_draws_the_same_when_a_client_comes_late() -> None:
    # A direct-path sweep skips the backend moto's dispatcher consults; a client asked for later
    # builds it then, and every id and address drawn before and after is the one a world built
    # with it from the start draws.
    assert _launched_around_a_client(dispatched=False) == _launched_around_a_client(dispatched=True)


def test_launch_tags_and_explicit_ip(world: Ec2World) -> None:
    auto = world.launch("s0", extra_tags={"role": "consul-server"})
    pinned = world.launch("s1", private_ip="10.0.3.7")
    assert world.ip_of(pinned) == "10.0.3.7"
    assert world.tags_of(auto) == {"Name": "s0", "role": "consul-server", "consul-cluster": "c1"}
    assert world.instance_of("s1") == pinned and world.node_of(pinned) == "s1"
    assert [i.instance_id for i in world.running_instances()] == [auto, pinned]
    with pytest.raises(ValueError, match="in use"):
        world.launch("s2", private_ip="10.0.3.7")
    with pytest.raises(ValueError, match="outside"):
        world.launch("s2", private_ip="10.9.0.1")


def test_replace_gives_new_instance_and_ip_and_terminates_the_old(world: Ec2World) -> None:
    old = world.launch("s0", extra_tags={"role": "consul-server"})
    world.client().create_tags(Resources=[old], Tags=[{"Key": LEADER, "Value": "4"}])
    old_ip = world.ip_of(old)
    new, new_ip = world.replace("s0")
    assert new != old and new_ip != old_ip
    assert world.state_of(old) == "terminated" and world.state_of(new) == "running"
    assert world.instance_of("s0") == new
    # A fresh instance carries provisioning tags only, never the old leader tag.
    assert world.tags_of(new) == {"Name": "s0", "role": "consul-server", "consul-cluster": "c1"}
    assert world.tag_values(LEADER) == {}
    assert world.tag_values(LEADER, running_only=False) == {old: "4"}


def test_the_worlds_own_create_tags_is_a_clients_create_tags() -> None:
    # Same tags, one counted change each, and moto's seeded stream moved on as by an answer.
    outcomes = []
    for direct in (True, False):
        with Ec2World(3, "c1") as w:
            ids = [w.launch("s0"), w.launch("s1")]
            before = w.changes
            if direct:
                w.create_tags(ids, LEADER, "7")
            else:
                w.client().create_tags(Resources=ids, Tags=[{"Key": LEADER, "Value": "7"}])
            outcomes.append((w.tag_values(LEADER), w.changes - before, mock_random.getstate()))
    assert outcomes[0][0] == outcomes[1][0] != {}
    assert outcomes[0][1] == outcomes[1][1] == 1
    assert outcomes[0][2] == outcomes[1][2]


def test_the_worlds_create_tags_refuses_a_malformed_id_and_writes_nothing(world: Ec2World) -> None:
    # moto's CreateTags checks the ids' form, not that the instances exist, for clients too.
    iid = world.launch("s0")
    before = world.changes
    with pytest.raises(InvalidID):
        world.create_tags([iid, "bogus-1"], LEADER, "7")
    assert world.tag_values(LEADER) == {}
    assert world.changes == before


def test_stop_and_start(world: Ec2World) -> None:
    iid = world.launch("s0")
    world.stop(iid)
    assert world.state_of(iid) == "stopped" and world.running_instances() == []
    world.start(iid)
    assert world.state_of(iid) == "running"


def test_noise_is_outside_the_cluster(world: Ec2World) -> None:
    members = [world.launch(f"s{i}") for i in range(2)]
    noise = world.add_noise(30)
    tagged_noise = world.add_noise(2, tags={"consul-cluster": "other", LEADER: "9"})
    assert len(noise) == 30 and len(set(noise)) == 30
    assert all(world.tags_of(i) == {} for i in noise)
    assert [i.instance_id for i in world.running_instances()] == members
    assert len(world.running_instances(cluster_only=False)) == 34
    assert world.tag_values(LEADER) == {}
    assert world.tag_values(LEADER, cluster_only=False) == dict.fromkeys(tagged_noise, "9")
    described = world.client().describe_instances(
        Filters=[
            {"Name": "tag:consul-cluster", "Values": ["c1"]},
            {"Name": "instance-state-name", "Values": ["running"]},
        ]
    )
    assert sorted(i["InstanceId"] for r in described["Reservations"] for i in r["Instances"]) == sorted(members)


def test_outside_vpc_overlaps_addresses_but_not_scope(world: Ec2World) -> None:
    ours = world.launch("s0")
    ip = world.ip_of(ours)
    theirs = world.launch_outside("s0", private_ip=ip)
    assert world.ip_of(theirs) == ip and theirs != ours
    scopes = {i.instance_id: i.scope for i in world.instances()}
    assert scopes[ours] == "cluster" and scopes[theirs] == "outside"
    assert not world.in_cluster(theirs)
    by_ip = world.client().describe_instances(Filters=[{"Name": "private-ip-address", "Values": [str(ip)]}])
    assert len([i for r in by_ip["Reservations"] for i in r["Instances"]]) == 2


def test_a_new_world_supersedes_and_resets() -> None:
    old = Ec2World(5, "c1")
    old.launch("s0")
    new = Ec2World(5, "c1")
    try:
        with pytest.raises(RuntimeError, match="superseded"):
            old.launch("s1")
        assert new.running_instances() == []
    finally:
        old.close()
        new.close()
    with pytest.raises(RuntimeError, match="closed"):
        new.running_instances()


def test_exported_endpoint_does_not_divert_in_process_clients(world: Ec2World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    world.launch("s0")
    assert len(world.client().describe_instances()["Reservations"]) == 1


# -- faults ---------------------------------------------------------------------------------------


def test_armed_throttles_then_success_with_retries_off(world: Ec2World) -> None:
    world.launch("s0")
    faults = Ec2Faults()
    client = faults.attach(world.client(), "s0")
    faults.arm("DescribeInstances", 2)
    for _ in range(2):
        with pytest.raises(ClientError) as caught:
            client.describe_instances()
        assert caught.value.response["Error"]["Code"] == "RequestLimitExceeded"
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert caught.value.response["ResponseMetadata"].get("RetryAttempts", 0) == 0
    assert len(client.describe_instances()["Reservations"]) == 1
    stats = faults.snapshot()
    assert stats.calls == {"DescribeInstances": 3}
    assert stats.faults == {"DescribeInstances": 2} and stats.fault_codes == {"RequestLimitExceeded": 2}


def test_a_faulted_write_is_not_applied(world: Ec2World) -> None:
    iid = world.launch("s0")
    faults = Ec2Faults()
    client = faults.attach(world.client())
    faults.arm("CreateTags", 1, code="InternalError")
    with pytest.raises(ClientError) as caught:
        client.create_tags(Resources=[iid], Tags=[{"Key": LEADER, "Value": "3"}])
    assert caught.value.response["Error"]["Code"] == "InternalError"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert world.tag_values(LEADER) == {}
    client.create_tags(Resources=[iid], Tags=[{"Key": LEADER, "Value": "3"}])
    assert world.tag_values(LEADER) == {iid: "3"}


def test_rate_faults_are_deterministic_per_stream(world: Ec2World) -> None:
    def pattern(seed: int) -> list[bool]:
        faults = Ec2Faults(rng=random.Random(seed))
        faults.arm_rate("DescribeInstances", 0.5)
        return [faults.intercept("DescribeInstances", {}) is not None for _ in range(40)]

    assert pattern(3) == pattern(3)
    assert 5 < sum(pattern(3)) < 35
    with pytest.raises(ValueError, match="random stream"):
        Ec2Faults().arm_rate("CreateTags", 0.1)


def test_token_bucket_throttles_when_empty_and_refills_with_the_clock(world: Ec2World) -> None:
    clock = FakeClock()
    faults = Ec2Faults(clock=clock)
    faults.throttle(TokenBucket(2, 0.5, clock), actions=["DescribeInstances"])
    client = faults.attach(world.client())
    client.describe_instances()
    client.describe_instances()
    with pytest.raises(ClientError, match="RequestLimitExceeded"):
        client.describe_instances()
    clock.now = 1.0  # half a token: still empty
    with pytest.raises(ClientError, match="RequestLimitExceeded"):
        client.describe_instances()
    clock.now = 2.0
    client.describe_instances()
    client.create_tags(Resources=[world.launch("s0")], Tags=[{"Key": "k", "Value": "v"}])  # unbucketed
    assert faults.snapshot().calls == {"DescribeInstances": 5, "CreateTags": 1}
    assert faults.snapshot().faults == {"DescribeInstances": 2}


def test_observer_sees_writes_and_counts_are_per_action(world: Ec2World) -> None:
    a, b = world.launch("s0"), world.launch("s1")
    seen: list[Ec2Call] = []
    clock = FakeClock()
    faults = Ec2Faults(clock=clock, on_call=seen.append)
    client = faults.attach(world.client(), "s1")
    before = faults.snapshot()
    clock.now = 7.5
    client.create_tags(Resources=[b], Tags=[{"Key": LEADER, "Value": "12"}])
    client.delete_tags(Resources=[a], Tags=[{"Key": LEADER, "Value": "11"}])
    client.delete_tags(Resources=[a, b], Tags=[{"Key": "other"}])
    client.describe_instances(
        Filters=[{"Name": "tag-key", "Values": [LEADER]}, {"Name": "instance-state-name", "Values": ["running"]}]
    )
    world.launch("s2")  # the world's own calls are not the handler's
    assert [c.action for c in seen] == ["CreateTags", "DeleteTags", "DeleteTags", "DescribeInstances"]
    assert seen[0].resource_ids == (b,) and seen[0].tags == ((LEADER, "12"),)
    assert seen[0].client == "s1" and seen[0].at == 7.5 and seen[0].fault is None
    assert seen[1].tags == ((LEADER, "11"),)
    assert seen[2].resource_ids == (a, b) and seen[2].tags == (("other", None),)
    assert seen[3].filters == {"tag-key": (LEADER,), "instance-state-name": ("running",)}
    delta = faults.snapshot().since(before)
    assert delta.calls == {"CreateTags": 1, "DeleteTags": 2, "DescribeInstances": 1}
    assert delta.total_calls == 4 and delta.total_faults == 0
    faults.reset_counts()
    assert faults.snapshot().total_calls == 0


# -- served endpoint ------------------------------------------------------------------------------


def _aws(server: MotoServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        **server.env(max_attempts=1),
    }
    return subprocess.run([str(AWS_CLI), *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_aws_cli_against_the_served_world_and_an_http_fault(world: Ec2World) -> None:
    leader = world.launch("s0")
    world.launch("s1")
    world.add_noise(3)
    world.client().create_tags(Resources=[leader], Tags=[{"Key": LEADER, "Value": "2"}])
    with MotoServer() as server:
        assert server.url.startswith("http://127.0.0.1:")
        query = [
            "ec2",
            "describe-instances",
            "--filters",
            f"Name=tag-key,Values={LEADER}",
            "Name=instance-state-name,Values=running",
            "--query",
            "Reservations[].Instances[].PrivateIpAddress",
            "--output",
            "text",
        ]
        done = _aws(server, *query)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == [world.ip_of(leader)]

        arm = urllib.request.Request(f"{server.url}/_fault/DescribeInstances?count=1&status=503", method="POST")
        with urllib.request.urlopen(arm, timeout=10) as reply:
            assert json.load(reply)["armed"] == 1
        failed = _aws(server, *query)
        assert failed.returncode != 0 and "RequestLimitExceeded" in failed.stderr
        with urllib.request.urlopen(f"{server.url}/_fault", timeout=10) as reply:
            state = json.load(reply)
        assert state["stats"]["calls"] == {"DescribeInstances": 2}
        assert state["stats"]["faults"] == {"DescribeInstances": 1}


def test_served_boto3_client_shares_state_and_fault_plane(world: Ec2World) -> None:
    seen: list[Ec2Call] = []
    faults = Ec2Faults(on_call=seen.append)
    iid = world.launch("s0")
    with MotoServer(faults=faults) as server:
        remote = world.client(server.url)
        remote.create_tags(Resources=[iid], Tags=[{"Key": LEADER, "Value": "5"}])
        assert world.tag_values(LEADER) == {iid: "5"}  # written over HTTP, read in process
        faults.arm("DeleteTags", 1)
        with pytest.raises(ClientError, match="RequestLimitExceeded"):
            remote.delete_tags(Resources=[iid], Tags=[{"Key": LEADER, "Value": "5"}])
        assert world.tag_values(LEADER) == {iid: "5"}
        assert [(c.action, c.client, c.resource_ids, c.fault) for c in seen] == [
            ("CreateTags", "http", (iid,), None),
            ("DeleteTags", "http", (iid,), "RequestLimitExceeded"),
        ]
    with pytest.raises(ValueError, match="loopback"):
        MotoServer("0.0.0.0")


def test_concurrent_in_process_and_http_callers(world: Ec2World) -> None:
    ids = [world.launch(f"s{i}") for i in range(4)]
    errors: list[BaseException] = []
    with MotoServer() as server:
        clients = [world.client(), world.client(), world.client(server.url), world.client(server.url)]

        def churn(n: int) -> None:
            client, iid = clients[n], ids[n]
            try:
                for k in range(15):
                    client.create_tags(Resources=[iid], Tags=[{"Key": LEADER, "Value": str(k)}])
                    client.describe_instances(Filters=[{"Name": "tag-key", "Values": [LEADER]}])
                    client.delete_tags(Resources=[iid], Tags=[{"Key": LEADER, "Value": str(k)}])
            except BaseException as exc:  # collected: an assertion in a thread would be lost
                errors.append(exc)

        threads = [threading.Thread(target=churn, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert world.tag_values(LEADER) == {}


def test_cluster_subnet_is_big_enough() -> None:
    import ipaddress

    assert ipaddress.ip_network(CLUSTER_SUBNET_CIDR).num_addresses - 5 >= 1000


def test_worlds_sharing_a_mock_leave_nothing_of_themselves_behind() -> None:
    # A sweep chunk opens world after world inside one started mock; moto must not keep the old ones.
    import gc
    import weakref

    from tagjoin.sim.aws.ec2_account import kept_running
    from tagjoin.sim.aws.moto_direct import MotoDirectEc2

    launched: list[weakref.ref[object]] = []
    with kept_running():
        for seed in range(4):
            with Ec2World(seed, "sim") as world:
                for k in range(20):
                    world.launch(f"node-{k}")
                # The direct adapter's memos of what moto judged hold its reservations.
                direct = MotoDirectEc2(world.region)
                direct.describe_instances([{"Name": "tag:Name", "Values": ["node-1"]}])
                direct.describe_instances([])
                direct.describe_tags([{"Name": "key", "Values": ["Name"]}])
                launched += [weakref.ref(r) for res in world._backend.reservations.values() for r in res.instances]
        del world
        gc.collect()
        alive = sum(1 for ref in launched if ref() is not None)
    assert alive <= 20, f"{alive} moto instances of earlier worlds are still alive"
