"""The tag store through botocore against moto over real HTTP: paging, error codes, throttling, broken answers.

test_ec2_store.py covers the same store in process, with faults injected below botocore's parser;
here every request crosses a socket, as on a node, and faults come from the served endpoint.
"""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from tagjoin.core.aws.boto_ec2 import BotoEc2, make_ec2_client
from tagjoin.core.aws.ec2_api import ApiFault, TransportFault
from tagjoin.core.aws.tag_store import TagStore
from tagjoin.core.errors import ConfigError, Ec2Error, Ec2Throttled, InstanceNotFound
from tagjoin.core.settings import AwsSettings, Scope
from tagjoin.sim.aws.ec2_faults import Ec2Faults
from tagjoin.sim.aws.moto_endpoint import MotoServer
from tests.moto_world import FakeClock, World, build_world, ids

REGION = "sa-east-1"
LEADER = "consul-leader"


@dataclass
class Rig:
    server: MotoServer
    world: World
    api: BotoEc2
    instances: dict[str, str]  # name -> id

    def store(self, cluster: str | None = "c1", **kwargs: Any) -> TagStore:
        return TagStore(self.api, Scope(cluster=cluster), clock=FakeClock(), rng=random.Random(1), **kwargs)


@pytest.fixture(scope="module")
def node_env() -> Iterator[None]:
    """What a node's environment would hold: keys in the environment, no profile, no instance metadata."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CA_BUNDLE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2"):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield


@pytest.fixture(scope="module")
def rig(node_env: None) -> Iterator[Rig]:
    with MotoServer(faults=Ec2Faults()) as server:
        client = boto3.client(
            "ec2",
            region_name=REGION,
            endpoint_url=server.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        world = build_world(client)
        names = {
            "a1": world.launch("10.0.1.10", cluster="c1"),
            "a2": world.launch("10.0.1.11", cluster="c1", tags={LEADER: "5", "Name": "server <2> & 'co'"}),
            "a3": world.launch("10.0.1.12", cluster="c1", tags={LEADER: "4", "empty": ""}),
            "b1": world.launch("10.0.1.10", cluster="c2", other_vpc=True, tags={LEADER: "9"}),
        }
        world.stop(names["a3"])
        names.update({f"noise{n}": i for n, i in enumerate(world.launch_many(140))})  # more than one page
        api = BotoEc2(make_ec2_client(AwsSettings(region=REGION, endpoint_url=server.url)))
        yield Rig(server, world, api, names)


def test_pages_and_odd_tag_values_survive(rig: Rig) -> None:
    store = rig.store(cluster=None)
    found = store.instances(states=None)
    assert store.stats.calls == {"DescribeInstances": 2}  # moto answers 100 reservations a page
    assert len(found) == 144
    by_id = {i.instance_id: i for i in found}
    assert by_id[rig.instances["a2"]].tags["Name"] == "server <2> & 'co'"
    assert by_id[rig.instances["a3"]].tags["empty"] == ""
    assert by_id[rig.instances["a3"]].state == "stopped"


def test_tag_index_lookup(rig: Rig) -> None:
    store = rig.store()
    (leader,) = store.tagged_instances()
    assert leader.instance_id == rig.instances["a2"]
    assert store.tagged_instances_by_tag_index() == [leader]
    assert store.tagged_instances_by_tag_index(value="5") == [leader]
    assert store.tagged_instances_by_tag_index(value="6") == []
    assert ids(store.tagged_instances_by_tag_index(states=None)) == {rig.instances["a2"], rig.instances["a3"]}
    assert store.stats.calls == {"DescribeInstances": 4, "DescribeTags": 4}
    with pytest.raises(InstanceNotFound, match="i-0000000000000dead"):
        store.instance_by_id("i-0000000000000dead")


def test_tag_index_lookup_reads_nothing_more_when_nobody_holds_the_tag(rig: Rig) -> None:
    store = rig.store()
    assert store.tagged_instances_by_tag_index(key="nobody-has-this") == []
    assert store.stats.calls == {"DescribeTags": 1}


def test_tag_writes_are_value_conditional(rig: Rig) -> None:
    a1 = rig.instances["a1"]
    store = rig.store()
    store.create_tag(a1, "probe", "x y")
    assert rig.world.tags_of(a1)["probe"] == "x y"
    store.delete_tag_if(a1, "probe", "other")  # no match, no delete
    assert rig.world.tags_of(a1)["probe"] == "x y"
    store.delete_tag_if(a1, "probe", "x y")
    assert "probe" not in rig.world.tags_of(a1)


def test_errors_come_back_as_codes(rig: Rig) -> None:
    with pytest.raises(ApiFault) as caught:
        rig.api.describe_instances([], ["i-0000000000000dead"])
    assert caught.value.code == "InvalidInstanceID.NotFound"
    assert caught.value.status == 400


def test_throttling_and_denial_through_the_store(rig: Rig) -> None:
    faults = rig.server.faults
    store = rig.store(max_attempts=3)
    try:
        faults.arm("DescribeInstances", 2)
        assert len(store.tagged_instances()) == 1
        assert store.stats.throttled == 2
        faults.arm("DescribeInstances", 3)
        with pytest.raises(Ec2Throttled, match="RequestLimitExceeded"):
            store.tagged_instances()
        faults.arm("CreateTags", 1, code="UnauthorizedOperation")
        with pytest.raises(Ec2Error, match=r"denied.*ec2:CreateTags"):
            store.create_tag(rig.instances["a1"], "probe", "1")
        assert "probe" not in rig.world.tags_of(rig.instances["a1"])
    finally:
        faults.disarm()


def test_a_role_without_describe_tags_still_finds_the_leader(rig: Rig) -> None:
    store = rig.store()
    rig.server.faults.arm("DescribeTags", 1, code="UnauthorizedOperation")
    try:
        (leader,) = store.tagged_instances_by_tag_index()
        assert leader.instance_id == rig.instances["a2"]
        assert store.tag_index_denied
        store.tagged_instances_by_tag_index()  # asks DescribeInstances alone from then on
        assert store.stats.calls == {"DescribeTags": 1, "DescribeInstances": 2}
    finally:
        rig.server.faults.disarm()


def test_invalid_credentials_do_not_fall_back_to_the_single_lookup(rig: Rig) -> None:
    store = rig.store()
    rig.server.faults.arm("DescribeTags", 1, code="AuthFailure")
    try:
        with pytest.raises(Ec2Error, match="AuthFailure"):
            store.tagged_instances_by_tag_index()
        assert not store.tag_index_denied and store.stats.calls == {"DescribeTags": 1}
    finally:
        rig.server.faults.disarm()


def test_many_holders_are_asked_for_within_the_filter_value_limit(rig: Rig) -> None:
    """EC2 refuses more than 200 filter values in one request; moto does not, so count them at the endpoint."""
    region = "eu-north-1"  # its own moto backend: the 450 holders stay out of the other tests
    client = boto3.client(
        "ec2", region_name=region, endpoint_url=rig.server.url, aws_access_key_id="t", aws_secret_access_key="t"
    )

    def launch(count: int, cluster: str) -> list[str]:
        tags = [{"Key": "consul-cluster", "Value": cluster}, {"Key": LEADER, "Value": "3"}]
        spec: Any = {"ResourceType": "instance", "Tags": tags}
        done = client.run_instances(ImageId="ami-12c6146b", MinCount=count, MaxCount=count, TagSpecifications=[spec])
        return [i["InstanceId"] for i in done["Instances"]]

    others = launch(450, "other")  # stale holders of other clusters in the same account
    ours = launch(2, "c1")
    values_per_call: list[int] = []

    def count(call: Any) -> None:
        if call.action == "DescribeInstances":
            values_per_call.append(sum(len(v) for v in call.filters.values()))

    api = BotoEc2(make_ec2_client(AwsSettings(region=region, endpoint_url=rig.server.url)))
    store = TagStore(api, Scope(cluster="c1"), clock=FakeClock(), rng=random.Random(1))
    rig.server.faults.add_observer(count)
    try:
        assert ids(store.tagged_instances_by_tag_index()) == set(ours)
    finally:
        rig.server.faults.remove_observer(count)
    assert len(values_per_call) == 3 and max(values_per_call) == 200
    assert store.stats.calls == {"DescribeTags": 1, "DescribeInstances": 3}
    assert len(others) == 450


# -- no endpoint, or a broken one ------------------------------------------------------------------


def _api(url: str) -> BotoEc2:
    return BotoEc2(make_ec2_client(AwsSettings(region=REGION, endpoint_url=url)))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_unreachable_endpoint_is_a_transport_fault(node_env: None) -> None:
    api = _api(f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(TransportFault, match=r"127\.0\.0\.1"):
        api.describe_tags([])
    store = TagStore(api, Scope(), clock=FakeClock(), rng=random.Random(1), max_attempts=2)
    with pytest.raises(Ec2Throttled, match="failing after 2 attempts"):
        store.tagged_instances()


class OneShotServer:
    """Answers each connection's first request with `answer`, then closes it without a word.

    That is what a server does to an idle kept-alive connection, and what a broken proxy does.
    """

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.connections = 0
        # One release per connection the server has closed: a test idles on it the way `keep`
        # idles past EC2's keep-alive, so the client never races the close.
        self.closed = threading.Semaphore(0)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                while len(body) < length:
                    body += conn.recv(65536)
                conn.sendall(self.answer)
            self.closed.release()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def one_shot(request: pytest.FixtureRequest) -> Iterator[OneShotServer]:
    server = OneShotServer(request.param)
    yield server
    server.close()


def http_answer(status: str, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: text/xml\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


TAGS_XML = (
    b'<DescribeTagsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId>'
    b"<tagSet><item><resourceId>i-1</resourceId><resourceType>instance</resourceType><key>k</key>"
    b"<value>7</value></item></tagSet></DescribeTagsResponse>"
)


@pytest.mark.parametrize("one_shot", [http_answer("200 OK", TAGS_XML)], indirect=True)
def test_a_closed_kept_alive_connection_is_reopened(node_env: None, one_shot: OneShotServer) -> None:
    """`keep` idles between passes for longer than EC2 keeps a connection open."""
    store = TagStore(_api(one_shot.url), Scope(), clock=FakeClock(), rng=random.Random(1))
    for _ in range(3):
        assert [t.value for t in store.api.describe_tags([]).tags] == ["7"]
        assert one_shot.closed.acquire(timeout=10)
    assert one_shot.connections == 3
    assert store.stats.attempts == 0  # the adapter, not the store's retries, found the new connection


@pytest.mark.parametrize(
    ("one_shot", "raised", "match"),
    [
        (http_answer("200 OK", b"<DescribeTagsResp"), TransportFault, "unreadable answer"),
        (http_answer("503 Service Unavailable", b"busy"), TransportFault, "unreadable answer"),
        (http_answer("403 Forbidden", b"<html>no</html>"), ApiFault, r"\(HTTP 403\)"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n<short", TransportFault, "unreadable answer"),
        (b"garbage\r\n\r\n", TransportFault, "."),
    ],
    ids=["truncated-xml", "503-text", "403-html", "short-body", "not-http"],
    indirect=["one_shot"],
)
def test_broken_answers(node_env: None, one_shot: OneShotServer, raised: type[Exception], match: str) -> None:
    with pytest.raises(raised, match=match) as caught:
        _api(one_shot.url).describe_tags([])
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("one_shot", [http_answer("200 OK", TAGS_XML)], indirect=True)
def test_a_missing_ca_bundle_is_one_clear_error_and_not_retried(
    node_env: None, one_shot: OneShotServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", "/nonexistent/ca.pem")
    api = _api(one_shot.url.replace("http://", "https://"))
    store = TagStore(api, Scope(), clock=FakeClock(), rng=random.Random(1))
    with pytest.raises(Ec2Error, match="AWS_CA_BUNDLE") as err:
        store.tagged_instances()
    assert "\n" not in str(err.value)
    assert store.stats.attempts == 1


@pytest.mark.parametrize(
    ("endpoint", "match"),
    [
        ("ftp://x", "not an http or https URL"),
        ("http://127.0.0.1:99999", "Port out of range"),
        ("not a url", "AWS_ENDPOINT_URL"),
    ],
)
def test_bad_endpoints_are_config_errors(endpoint: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make_ec2_client(AwsSettings(region=REGION, endpoint_url=endpoint))


def test_bad_region_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a valid region name"):
        make_ec2_client(AwsSettings(region="eu central"))
