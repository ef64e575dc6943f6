"""Test helpers: a small EC2 world in moto, and faults injected where real botocore sees them.

The world must be built while `mock_aws` is active (or against a moto server). Faults are a
botocore `before-send` handler on one client: it answers instead of moto, with EC2's own error
XML, so botocore's real parser and error classes are exercised.

botocore calls *every* `before-send` handler and only then takes the first response, so a fault
handler merely registered next to moto's would still let moto apply the request: a "throttled"
CreateTags would write the tag. `Ec2Faults.install` therefore takes moto's handler off that
client and calls it itself, only for requests it lets through.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.exceptions import EndpointConnectionError, NoCredentialsError
from moto.core.models import botocore_stubber

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import TagTypeDef

REGION = "ap-northeast-1"
AMI = "ami-12c6146b"  # one of moto's built-in AMIs, valid even with AMI validation on
CLUSTER_TAG = "consul-cluster"

_ERROR_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
    "<RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>"
)


@dataclass
class World:
    """A cluster VPC and a second VPC with the same CIDR, so private IPs can collide."""

    client: EC2Client
    vpc_id: str
    subnet_id: str
    other_vpc_id: str
    other_subnet_id: str

    def launch(
        self,
        ip: str | None = None,
        *,
        tags: Mapping[str, str] | None = None,
        cluster: str | None = None,
        other_vpc: bool = False,
    ) -> str:
        """One instance in its own reservation; `cluster` adds the cluster tag."""
        all_tags = dict(tags or {})
        if cluster is not None:
            all_tags[CLUSTER_TAG] = cluster
        kwargs: dict[str, Any] = {
            "ImageId": AMI,
            "MinCount": 1,
            "MaxCount": 1,
            "InstanceType": "t3.micro",
            # Without a subnet moto hands out random IPs outside any CIDR.
            "SubnetId": self.other_subnet_id if other_vpc else self.subnet_id,
        }
        if ip is not None:
            kwargs["PrivateIpAddress"] = ip
        if all_tags:
            tag_list: list[TagTypeDef] = [{"Key": k, "Value": v} for k, v in all_tags.items()]
            kwargs["TagSpecifications"] = [{"ResourceType": "instance", "Tags": tag_list}]
        reservation = self.client.run_instances(**kwargs)
        return reservation["Instances"][0]["InstanceId"]

    def launch_many(self, count: int, *, cluster: str | None = None) -> list[str]:
        return [self.launch(cluster=cluster) for _ in range(count)]

    def tags_of(self, instance_id: str) -> dict[str, str]:
        described = self.client.describe_instances(InstanceIds=[instance_id])
        raw = described["Reservations"][0]["Instances"][0]
        return {t["Key"]: t["Value"] for t in raw.get("Tags", [])}

    def stop(self, instance_id: str) -> None:
        self.client.stop_instances(InstanceIds=[instance_id])

    def terminate(self, instance_id: str) -> None:
        self.client.terminate_instances(InstanceIds=[instance_id])


def build_world(client: EC2Client, *, cidr: str = "10.0.0.0/16", subnet_cidr: str = "10.0.1.0/24") -> World:
    vpc_id, subnet_id = _vpc(client, cidr, subnet_cidr)
    other_vpc_id, other_subnet_id = _vpc(client, cidr, subnet_cidr)
    return World(client, vpc_id, subnet_id, other_vpc_id, other_subnet_id)


def _vpc(client: EC2Client, cidr: str, subnet_cidr: str) -> tuple[str, str]:
    vpc_id = client.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    zone = client.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    subnet = client.create_subnet(VpcId=vpc_id, CidrBlock=subnet_cidr, AvailabilityZone=zone)
    return vpc_id, subnet["Subnet"]["SubnetId"]


class _Body:
    """The raw-stream interface AWSResponse reads a body from."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_kwargs: Any) -> Iterator[bytes]:
        yield self._data


@dataclass
class _Armed:
    count: int
    kind: str  # "error", "connect" or "credentials"
    code: str
    status: int
    after: int = 0  # requests of the action to let through before failing


@dataclass
class Ec2Faults:
    """Arms failures per API action; every request, failed or not, is counted in `seen`.

    Install on a client with `faults.install(client)`; arming is then done with `arm(...)` and
    disarming with `clear()`.
    """

    seen: Counter[str] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)
    _armed: dict[str, list[_Armed]] = field(default_factory=dict)

    def install(self, client: EC2Client) -> Ec2Faults:
        events: Any = client.meta.events  # the stubs type handlers as returning None
        events.unregister("before-send", botocore_stubber)
        events.register("before-send", self)
        return self

    def uninstall(self, client: EC2Client) -> None:
        events: Any = client.meta.events
        events.unregister("before-send", self)
        events.register("before-send", botocore_stubber)

    def arm(
        self,
        action: str,
        count: int = 1,
        *,
        code: str = "RequestLimitExceeded",
        status: int = 503,
        after: int = 0,
    ) -> None:
        """After `after` good requests, the next `count` of `action` fail with `code`/`status`."""
        self._armed.setdefault(action, []).append(_Armed(count, "error", code, status, after))

    def throttle(self, action: str, count: int = 1, *, after: int = 0) -> None:
        # EC2 sends RequestLimitExceeded with 503; legacy botocore retries it only with that status.
        self.arm(action, count, code="RequestLimitExceeded", status=503, after=after)

    def internal_error(self, action: str, count: int = 1) -> None:
        self.arm(action, count, code="InternalError", status=500)

    def deny(self, action: str, code: str = "UnauthorizedOperation", count: int = 1) -> None:
        self.arm(action, count, code=code, status=403)

    def unreachable(self, action: str, count: int = 1) -> None:
        self._armed.setdefault(action, []).append(_Armed(count, "connect", "", 0))

    def no_credentials(self, action: str, count: int = 1) -> None:
        self._armed.setdefault(action, []).append(_Armed(count, "credentials", "", 0))

    def clear(self) -> None:
        self._armed.clear()

    def __call__(self, request: Any, event_name: str = "", **_kwargs: Any) -> AWSResponse | None:
        action = event_name.rsplit(".", 1)[-1]
        self.seen[action] += 1
        queue = self._armed.get(action)
        if not queue or queue[0].after > 0:
            if queue:
                queue[0].after -= 1
            # None from moto (mock inactive) means a real send, e.g. to a loopback moto server.
            passed: AWSResponse | None = botocore_stubber(event_name=event_name, request=request)
            return passed
        fault = queue[0]
        fault.count -= 1
        if fault.count <= 0:
            queue.pop(0)
        self.injected[action] += 1
        if fault.kind == "connect":
            raise EndpointConnectionError(endpoint_url=request.url)
        if fault.kind == "credentials":
            raise NoCredentialsError()
        body = _ERROR_XML.format(code=fault.code, message=f"injected {fault.code}").encode()
        headers = HTTPHeaders()
        headers["Content-Type"] = "text/xml;charset=UTF-8"
        headers["Content-Length"] = str(len(body))
        return AWSResponse(request.url, fault.status, headers, _Body(body))


class FakeClock:
    """Virtual time that records every sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def ids(instances: Sequence[Any]) -> set[str]:
    return {i.instance_id for i in instances}
