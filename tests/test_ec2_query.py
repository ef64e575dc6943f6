"""The standard-library EC2 client against moto over real HTTP, side by side with boto3 on the same endpoint."""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from tagjoin.core.aws.boto_ec2 import BotoEc2
from tagjoin.core.aws.ec2_api import ApiFault, Ec2Api, Filter, TransportFault
from tagjoin.core.aws.tag_store import TagStore
from tagjoin.core.aws_credentials import Credentials
from tagjoin.core.ec2_query import QueryEc2, default_endpoint
from tagjoin.core.errors import ConfigError, Ec2Error, Ec2Throttled, InstanceNotFound
from tagjoin.core.settings import Scope
from tagjoin.sim.aws.ec2_faults import Ec2Faults
from tagjoin.sim.aws.moto_endpoint import MotoServer
from tests.moto_world import FakeClock, World, build_world, ids

REGION = "sa-east-1"
LEADER = "consul-leader"
KEYS = Credentials("testing", "testing", None, None, "test")


@dataclass
class Rig:
    server: MotoServer
    world: World
    query: QueryEc2
    boto: BotoEc2
    instances: dict[str, str]  # name -> id


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
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
        query = QueryEc2(server.url, REGION, lambda: KEYS)
        yield Rig(server, world, query, BotoEc2(client), names)
        query.close()


FILTER_SETS: list[list[Filter]] = [
    [],
    [{"Name": "tag:consul-cluster", "Values": ["c1"]}],
    [{"Name": "tag-key", "Values": [LEADER]}, {"Name": "instance-state-name", "Values": ["running", "stopped"]}],
    [{"Name": "private-ip-address", "Values": ["10.0.1.10"]}],
]


def all_pages(api: Ec2Api, filters: list[Filter]) -> tuple[list[object], int]:
    found: list[object] = []
    token: str | None = None
    pages = 0
    while True:
        page = api.describe_instances(filters, (), token)
        pages += 1
        found.extend(page.instances)
        token = page.next_token
        if token is None:
            return found, pages


@pytest.mark.parametrize("filters", FILTER_SETS, ids=["all", "cluster", "leader-tag", "ip"])
def test_describe_instances_reads_what_boto3_reads(rig: Rig, filters: list[Filter]) -> None:
    ours, our_pages = all_pages(rig.query, filters)
    theirs, their_pages = all_pages(rig.boto, filters)
    assert ours == theirs  # same ids, addresses, states and tags, in the same order
    assert our_pages == their_pages
    assert ours


def test_pages_and_odd_tag_values_survive(rig: Rig) -> None:
    found, pages = all_pages(rig.query, [])
    assert pages == 2  # moto answers 100 reservations a page
    by_id = {i.instance_id: i for i in found}  # type: ignore[attr-defined]
    assert by_id[rig.instances["a2"]].tags["Name"] == "server <2> & 'co'"
    assert by_id[rig.instances["a3"]].tags["empty"] == ""
    assert by_id[rig.instances["a3"]].state == "stopped"


def test_describe_tags_reads_what_boto3_reads(rig: Rig) -> None:
    filters: list[Filter] = [
        {"Name": "resource-type", "Values": ["instance"]},
        {"Name": "key", "Values": [LEADER]},
    ]
    ours = rig.query.describe_tags(filters)
    assert ours == rig.boto.describe_tags(filters)
    assert {t.resource_id for t in ours.tags} == {rig.instances[n] for n in ("a2", "a3", "b1")}


def test_tag_writes_are_seen_by_boto3(rig: Rig) -> None:
    a1 = rig.instances["a1"]
    rig.query.create_tags([a1], "probe", "x y")
    assert rig.world.tags_of(a1)["probe"] == "x y"
    rig.query.delete_tags([a1], "probe", "other")  # value-conditional: no match, no delete
    assert rig.world.tags_of(a1)["probe"] == "x y"
    rig.query.delete_tags([a1], "probe", "x y")
    assert "probe" not in rig.world.tags_of(a1)


def test_errors_come_back_as_codes(rig: Rig) -> None:
    with pytest.raises(ApiFault) as caught:
        rig.query.describe_instances([], ["i-0000000000000dead"])
    assert caught.value.code == "InvalidInstanceID.NotFound"
    assert caught.value.status == 400


def test_store_on_the_query_client(rig: Rig) -> None:
    store = TagStore(rig.query, Scope(cluster="c1"), clock=FakeClock(), rng=random.Random(1))
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
    store = TagStore(rig.query, Scope(cluster="c1"), clock=FakeClock(), rng=random.Random(1))
    assert store.tagged_instances_by_tag_index(key="nobody-has-this") == []
    assert store.stats.calls == {"DescribeTags": 1}


def test_throttling_and_denial_through_the_store(rig: Rig) -> None:
    faults = rig.server.faults
    clock = FakeClock()
    store = TagStore(rig.query, Scope(cluster="c1"), clock=clock, rng=random.Random(1), max_attempts=3)
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
    faults.disarm()


def test_unreachable_endpoint_is_a_transport_fault() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = QueryEc2(f"http://127.0.0.1:{port}", REGION, lambda: KEYS)
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
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(
                    next(
                        line.split(b":")[1]
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    )
                )
                while len(body) < length:
                    body += conn.recv(65536)
                conn.sendall(self.answer)

    def close(self) -> None:
        self.sock.close()


def http_answer(status: str, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: text/xml\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


TAGS_XML = (
    b'<DescribeTagsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId>'
    b"<tagSet><item><resourceId>i-1</resourceId><resourceType>instance</resourceType><key>k</key>"
    b"<value>7</value></item></tagSet></DescribeTagsResponse>"
)


def test_a_closed_kept_alive_connection_is_reopened_once() -> None:
    server = OneShotServer(http_answer("200 OK", TAGS_XML))
    try:
        api = QueryEc2(server.url, REGION, lambda: KEYS)
        for _ in range(3):
            assert [t.value for t in api.describe_tags([]).tags] == ["7"]
        assert server.connections == 3
    finally:
        server.close()


@pytest.mark.parametrize(
    ("answer", "raised", "match"),
    [
        (http_answer("200 OK", b"<DescribeTagsResp"), TransportFault, "unreadable answer"),
        (http_answer("503 Service Unavailable", b"busy"), ApiFault, "HTTP503"),
        (http_answer("403 Forbidden", b"<html>no</html>"), ApiFault, "HTTP403"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n<short", TransportFault, "IncompleteRead"),
        (b"garbage\r\n\r\n", TransportFault, "BadStatusLine"),
    ],
    ids=["truncated-xml", "503-text", "403-html", "short-body", "not-http"],
)
def test_broken_answers(answer: bytes, raised: type[Exception], match: str) -> None:
    server = OneShotServer(answer)
    try:
        with pytest.raises(raised, match=match):
            QueryEc2(server.url, REGION, lambda: KEYS).describe_tags([])
    finally:
        server.close()


def test_endpoints_and_bad_settings() -> None:
    assert default_endpoint("eu-central-1") == "https://ec2.eu-central-1.amazonaws.com"
    assert default_endpoint("cn-north-1") == "https://ec2.cn-north-1.amazonaws.com.cn"
    assert default_endpoint("us-gov-west-1") == "https://ec2.us-gov-west-1.amazonaws.com"
    assert default_endpoint("us-iso-east-1") is None  # other partitions go to boto3
    assert default_endpoint("eusc-de-east-1") is None
    with pytest.raises(ConfigError, match="not a valid region"):
        default_endpoint("eu central")
    with pytest.raises(ConfigError, match="AWS_ENDPOINT_URL"):
        QueryEc2("ftp://x", REGION, lambda: KEYS)
    with pytest.raises(ConfigError, match="port"):
        QueryEc2("http://127.0.0.1:99999", REGION, lambda: KEYS)


def test_a_role_without_describe_tags_still_finds_the_leader(rig: Rig) -> None:
    store = TagStore(rig.query, Scope(cluster="c1"), clock=FakeClock(), rng=random.Random(1))
    rig.server.faults.arm("DescribeTags", 1, code="UnauthorizedOperation")
    try:
        (leader,) = store.tagged_instances_by_tag_index()
        assert leader.instance_id == rig.instances["a2"]
        assert store.tag_index_denied
        store.tagged_instances_by_tag_index()  # asks DescribeInstances alone from then on
        assert store.stats.calls == {"DescribeTags": 1, "DescribeInstances": 2}
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
        done = client.run_instances(
            ImageId="ami-12c6146b",
            MinCount=count,
            MaxCount=count,
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],  # type: ignore[list-item]
        )
        return [i["InstanceId"] for i in done["Instances"]]

    others = launch(450, "other")  # stale holders of other clusters in the same account
    ours = launch(2, "c1")
    values_per_call: list[int] = []

    def count(call: Any) -> None:
        if call.action == "DescribeInstances":
            values_per_call.append(sum(len(v) for v in call.filters.values()))

    store = TagStore(
        QueryEc2(rig.server.url, region, lambda: KEYS), Scope(cluster="c1"), clock=FakeClock(), rng=random.Random(1)
    )
    rig.server.faults.add_observer(count)
    try:
        assert ids(store.tagged_instances_by_tag_index()) == set(ours)
    finally:
        rig.server.faults.remove_observer(count)
    assert len(values_per_call) == 3 and max(values_per_call) == 200
    assert store.stats.calls == {"DescribeTags": 1, "DescribeInstances": 3}
    assert len(others) == 450


def test_a_missing_ca_bundle_is_one_clear_error_and_not_retried() -> None:
    api = QueryEc2("https://127.0.0.1:9", REGION, lambda: KEYS, ca_bundle="/nonexistent/ca.pem")
    store = TagStore(api, Scope(), clock=FakeClock(), rng=random.Random(1))
    with pytest.raises(Ec2Error, match=r"cannot load the CA bundle /nonexistent/ca\.pem"):
        store.tagged_instances()
    assert store.stats.attempts == 1


def test_invalid_credentials_do_not_fall_back_to_the_single_lookup(rig: Rig) -> None:
    store = TagStore(rig.query, Scope(cluster="c1"), clock=FakeClock(), rng=random.Random(1))
    rig.server.faults.arm("DescribeTags", 1, code="AuthFailure")
    try:
        with pytest.raises(Ec2Error, match="AuthFailure"):
            store.tagged_instances_by_tag_index()
        assert not store.tag_index_denied and store.stats.calls == {"DescribeTags": 1}
    finally:
        rig.server.faults.disarm()
