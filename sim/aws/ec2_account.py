"""An EC2 account for one simulation: moto in process, seeded, with the cluster's VPC.

Seeding and reset (measured against moto 5: moto/core/models.py `BaseMockAWS.start` resets the
backends, moto/moto_api/_internal `mock_random` is the seeded stream): `mock_aws` start resets moto's backends,
and building a region backend consumes moto's random stream (default VPC, AMIs…). So a world
starts the mock, resets explicitly (a start nested in another active mock does not reset), makes
one warm-up call that builds every backend the first real call would build, and only then seeds
`mock_random`. From there the ids and IPs are a pure function of the seed and the sequence of
calls. Reads done here go to moto's backend directly, so invariant checks neither appear in the
handlers' call counts nor move moto's random stream.

moto's state is process-global: one world is live at a time. Opening a world supersedes the one
before (its methods then raise); `tagjoin.sim.aws.moto_endpoint.MotoServer` serves whichever world is live.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import boto3
from botocore.config import Config
from moto import mock_aws, settings
from moto.core.base_backend import BackendDict
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends
from moto.moto_api._internal import mock_random

from tagjoin.sim.aws.ec2_faults import MOTO_LOCK, bind_to_moto

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import TagSpecificationTypeDef, TagTypeDef

DEFAULT_REGION = "ap-northeast-1"
DEFAULT_CLUSTER_TAG = "consul-cluster"
AMI = "ami-12c6146b"  # in moto's built-in list (not loaded here, see _without_default_amis)
INSTANCE_TYPE = "t3.micro"
DUMMY_KEY = "testing"

VPC_CIDR = "10.0.0.0/16"
# A /20 (4091 usable): 500+ nodes plus their replacements, since moto never frees a terminated
# instance's address.
CLUSTER_SUBNET_CIDR = "10.0.0.0/20"
NOISE_SUBNET_CIDR = "10.0.64.0/18"  # other workloads of the account, same VPC
# The out-of-scope VPC reuses the cluster's CIDRs on purpose: its addresses collide with ours.
OUTSIDE_VPC_CIDR = VPC_CIDR
OUTSIDE_SUBNET_CIDR = CLUSTER_SUBNET_CIDR

Scope = Literal["cluster", "noise", "outside", "other"]


def retries_off() -> Config:
    """Like production's client: botocore never retries (the tag store does, in injected time)."""
    return Config(retries={"mode": "standard", "total_max_attempts": 1})


@contextmanager
def _without_default_amis() -> Iterator[None]:
    """Build EC2 backends without moto's 1,347 built-in AMIs (call under MOTO_LOCK).

    Loading them costs ~50 ms per region backend, and every launch then filters the whole list
    (~5 ms per instance). Nothing here describes images and AMI validation stays off, so
    instances launch from `AMI` all the same.
    """
    original = settings.ec2_load_default_amis
    settings.ec2_load_default_amis = _false
    try:
        yield
    finally:
        settings.ec2_load_default_amis = original


def _false() -> bool:
    return False


_session_lock = threading.Lock()
_session: boto3.session.Session | None = None


def _shared_session() -> boto3.session.Session:
    # One session for every world: its service-model cache makes later clients cost ms, not 100+ ms.
    global _session
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session


def make_client(region: str = DEFAULT_REGION, endpoint_url: str | None = None) -> EC2Client:
    """A boto3 EC2 client with dummy credentials and retries off, bound to moto under its lock."""
    session = _shared_session()
    # An explicit AWS endpoint, so an exported AWS_ENDPOINT_URL (e.g. from `sim serve`) cannot
    # divert an in-process client away from the mock.
    endpoint = endpoint_url or f"https://ec2.{region}.amazonaws.com"
    with _session_lock:
        client: EC2Client = session.client(
            "ec2",
            region_name=region,
            endpoint_url=endpoint,
            aws_access_key_id=DUMMY_KEY,
            aws_secret_access_key=DUMMY_KEY,
            config=retries_off(),
        )
    return bind_to_moto(client)


@dataclass(frozen=True)
class WorldInstance:
    """An instance as the simulator sees it (read from moto's backend, not via the API)."""

    instance_id: str
    node: str  # the Name tag
    private_ip: str | None
    state: str
    vpc_id: str | None
    subnet_id: str | None
    scope: Scope
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.state == "running"


class Ec2World:
    """One seeded EC2 account on moto, with the cluster VPC/subnet and the cluster tag."""

    _live: ClassVar[Ec2World | None] = None
    _live_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        seed: int,
        cluster: str = "sim",
        *,
        region: str = DEFAULT_REGION,
        cluster_tag_key: str = DEFAULT_CLUSTER_TAG,
    ) -> None:
        self.seed = seed
        self.cluster = cluster
        self.region = region
        self.cluster_tag_key = cluster_tag_key
        self._closed = False
        self._superseded = False
        self._mock: Any = mock_aws()
        self._node_instance: dict[str, str] = {}
        self._provisioning: dict[str, dict[str, str]] = {}  # node → extra tags, for replace()
        self._noise: set[str] = set()
        self._raw: dict[str, Any] = {}  # instance id → moto's Instance, to avoid O(n) lookups
        self._outside_vpc: str | None = None
        self._outside_subnet: str | None = None
        with Ec2World._live_lock, MOTO_LOCK:
            previous = Ec2World._live
            if previous is not None and not previous._closed:
                previous._superseded = True
            with _without_default_amis():
                self._mock.start()
                try:
                    self._setup()
                except BaseException:
                    self._mock.stop()
                    raise
            Ec2World._live = self

    def _setup(self) -> None:
        BackendDict.reset()
        self._ec2 = make_client(self.region)
        # The first call builds the region backend and the one moto's dispatcher consults (us-east-1);
        # both draw from mock_random, so they must exist before the seed is set.
        self._ec2.describe_vpcs()
        mock_random.seed(self.seed)
        self.zone = f"{self.region}a"
        self.vpc_id, self.subnet_id = self._vpc(VPC_CIDR, CLUSTER_SUBNET_CIDR, "cluster")
        self.noise_subnet_id = self._ec2.create_subnet(
            VpcId=self.vpc_id, CidrBlock=NOISE_SUBNET_CIDR, AvailabilityZone=self.zone
        )["Subnet"]["SubnetId"]

    def _vpc(self, cidr: str, subnet_cidr: str, name: str) -> tuple[str, str]:
        vpc_id = self._ec2.create_vpc(CidrBlock=cidr, TagSpecifications=[_tag_spec("vpc", {"Name": name})])["Vpc"][
            "VpcId"
        ]
        subnet = self._ec2.create_subnet(VpcId=vpc_id, CidrBlock=subnet_cidr, AvailabilityZone=self.zone)
        return vpc_id, subnet["Subnet"]["SubnetId"]

    # -- life cycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the mock; the account's data goes with the last active mock."""
        with Ec2World._live_lock, MOTO_LOCK:
            if self._closed:
                return
            self._closed = True
            if Ec2World._live is self:
                Ec2World._live = None
            with _without_default_amis():  # moto's reset rebuilds every backend before dropping it
                self._mock.stop()

    def __enter__(self) -> Ec2World:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _check(self) -> None:
        if self._closed:
            raise RuntimeError("this EC2 world is closed")
        if self._superseded:
            raise RuntimeError("this EC2 world was superseded by a newer one (moto state is process-global)")

    @property
    def _backend(self) -> Any:
        return ec2_backends[DEFAULT_ACCOUNT_ID][self.region]

    # -- clients ----------------------------------------------------------------------------------

    def client(self, endpoint_url: str | None = None) -> EC2Client:
        """A boto3 EC2 client on this account: in process, or via a served endpoint's URL."""
        self._check()
        return make_client(self.region, endpoint_url)

    # -- instances --------------------------------------------------------------------------------

    def launch(self, node_name: str, private_ip: str | None = None, extra_tags: Mapping[str, str] | None = None) -> str:
        """A cluster instance tagged Name=node and the cluster tag; returns its id."""
        tags = {"Name": node_name, **(extra_tags or {}), self.cluster_tag_key: self.cluster}
        with MOTO_LOCK:
            self._check()
            instance_id = self._run(self.subnet_id, CLUSTER_SUBNET_CIDR, private_ip, tags)
            self._node_instance[node_name] = instance_id
            self._provisioning[node_name] = dict(extra_tags or {})
        return instance_id

    def launch_outside(
        self, node_name: str, private_ip: str | None = None, tags: Mapping[str, str] | None = None
    ) -> str:
        """An instance in a second VPC with the cluster's CIDRs but outside the cluster scope.

        It gets only Name=node plus `tags` (pass another cluster's tag to model a neighbour).
        """
        with MOTO_LOCK:
            self._check()
            if self._outside_subnet is None:
                self._outside_vpc, self._outside_subnet = self._vpc(OUTSIDE_VPC_CIDR, OUTSIDE_SUBNET_CIDR, "outside")
            return self._run(self._outside_subnet, OUTSIDE_SUBNET_CIDR, private_ip, {"Name": node_name, **(tags or {})})

    def _run(self, subnet_id: str, cidr: str, private_ip: str | None, tags: Mapping[str, str]) -> str:
        kwargs: dict[str, Any] = {
            "ImageId": AMI,
            "InstanceType": INSTANCE_TYPE,
            "MinCount": 1,
            "MaxCount": 1,
            "SubnetId": subnet_id,
            "TagSpecifications": [_tag_spec("instance", tags)],
        }
        if private_ip is not None:
            self._check_free_ip(subnet_id, cidr, private_ip)
            kwargs["PrivateIpAddress"] = private_ip
        reservation = self._ec2.run_instances(**kwargs)
        for raw in self._backend.reservations[reservation["ReservationId"]].instances:
            self._raw[raw.id] = raw
        return reservation["Instances"][0]["InstanceId"]

    def _check_free_ip(self, subnet_id: str, cidr: str, ip: str) -> None:
        # moto reports these as bare Exceptions (HTML 500 over HTTP); say it plainly instead.
        network = ipaddress.ip_network(cidr)
        address = ipaddress.ip_address(ip)
        if address not in network:
            raise ValueError(f"{ip} is outside the subnet {cidr}")
        subnet = self._backend.get_subnet(subnet_id)
        if address in subnet.aws_reserved_ips or address in (
            network.network_address,
            network.broadcast_address,
        ):
            raise ValueError(f"{ip} is reserved by AWS in {cidr}")
        if ip in subnet._subnet_ips:
            raise ValueError(f"{ip} is already in use (moto keeps a terminated instance's address)")

    def terminate(self, instance_id: str) -> None:
        with MOTO_LOCK:
            self._check()
            self._ec2.terminate_instances(InstanceIds=[instance_id])

    def stop(self, instance_id: str) -> None:
        with MOTO_LOCK:
            self._check()
            self._ec2.stop_instances(InstanceIds=[instance_id])

    def start(self, instance_id: str) -> None:
        with MOTO_LOCK:
            self._check()
            self._ec2.start_instances(InstanceIds=[instance_id])

    def replace(self, node: str) -> tuple[str, str]:
        """Terminate the node's instance and launch a fresh one (new id, new IP, provisioning tags only)."""
        with MOTO_LOCK:
            self._check()
            old = self.instance_of(node)
            self.terminate(old)
            new = self.launch(node, extra_tags=self._provisioning.get(node))
            ip = self._instance(new).private_ip
            assert ip is not None  # launched into a subnet, so it always has one
            return new, ip

    def add_noise(self, n: int, tags: Mapping[str, str] | None = None) -> list[str]:
        """n running instances of other workloads, in one batch, outside the cluster scope.

        Untagged by default: moto's tag filters cost O(instances x tags in the region), so 5,000
        tagged noise instances would make each filtered describe take seconds (moto/ec2/utils.py
        `passes_filter_dict` evaluates a tag filter against every instance's tag list).
        """
        if n <= 0:
            return []
        with MOTO_LOCK:
            self._check()
            # Directly on the backend: the API path spends ~2 ms per instance serialising the answer.
            reservation = self._backend.run_instances(
                AMI,
                n,
                None,
                [],
                instance_type=INSTANCE_TYPE,
                is_instance_type_default=False,
                region_name=self.region,
                subnet_id=self.noise_subnet_id,
                tags={"instance": dict(tags)} if tags else {},
            )
            ids = [instance.id for instance in reservation.instances]
            self._raw.update((instance.id, instance) for instance in reservation.instances)
            self._noise.update(ids)
            return ids

    # -- reads (backend, uncounted) ---------------------------------------------------------------

    def instance_of(self, node: str) -> str:
        """The node's current instance id (the latest launch under that name)."""
        try:
            return self._node_instance[node]
        except KeyError:
            raise KeyError(f"no instance launched for node {node!r}") from None

    def node_of(self, instance_id: str) -> str:
        return self.tags_of(instance_id).get("Name", "")

    def ip_of(self, instance_id: str) -> str | None:
        with MOTO_LOCK:
            self._check()
            ip: str | None = self._instance(instance_id).private_ip
            return ip

    def state_of(self, instance_id: str) -> str:
        with MOTO_LOCK:
            self._check()
            state: str = self._instance(instance_id).state
            return state

    def tags_of(self, instance_id: str) -> dict[str, str]:
        with MOTO_LOCK:
            self._check()
            return dict(self._backend.tags.get(instance_id, {}))

    def in_cluster(self, instance_id: str) -> bool:
        """In scope = carries this cluster's tag (what the handler's filters select on)."""
        return self.tags_of(instance_id).get(self.cluster_tag_key) == self.cluster

    def instances(self, *, include_terminated: bool = True) -> list[WorldInstance]:
        """Every instance of the account (noise included), in launch order."""
        with MOTO_LOCK:
            self._check()
            out = [self._view(i) for i in self._all_raw()]
        return [i for i in out if include_terminated or i.state != "terminated"]

    def running_instances(self, *, cluster_only: bool = True) -> list[WorldInstance]:
        with MOTO_LOCK:
            self._check()
            out: list[WorldInstance] = []
            for raw in self._all_raw():
                if raw.state != "running":
                    continue
                view = self._view(raw)
                if cluster_only and view.scope != "cluster":
                    continue
                out.append(view)
            return out

    def tag_values(self, key: str, *, running_only: bool = True, cluster_only: bool = True) -> dict[str, str]:
        """instance id → value of tag `key`, for instances carrying it (launch order).

        The invariant checks' view of the tag; O(instances) dict lookups, no API call.
        """
        with MOTO_LOCK:
            self._check()
            tags_by_id = self._backend.tags
            out: dict[str, str] = {}
            for raw in self._all_raw():
                tags = tags_by_id.get(raw.id)
                if not tags or key not in tags:
                    continue
                if running_only and raw.state != "running":
                    continue
                if cluster_only and tags.get(self.cluster_tag_key) != self.cluster:
                    continue
                out[raw.id] = tags[key]
            return out

    def _all_raw(self) -> Iterable[Any]:
        for reservation in self._backend.reservations.values():
            yield from reservation.instances

    def _instance(self, instance_id: str) -> Any:
        known = self._raw.get(instance_id)
        if known is not None:
            return known
        for raw in self._all_raw():  # launched by someone else through the API
            if raw.id == instance_id:
                return raw
        raise KeyError(f"no instance {instance_id} in this world")

    def _view(self, raw: Any) -> WorldInstance:
        tags = dict(self._backend.tags.get(raw.id, {}))
        scope: Scope
        if tags.get(self.cluster_tag_key) == self.cluster:
            scope = "cluster"
        elif raw.id in self._noise:
            scope = "noise"
        elif self._outside_subnet is not None and raw.subnet_id == self._outside_subnet:
            scope = "outside"
        else:
            scope = "other"
        return WorldInstance(
            instance_id=raw.id,
            node=tags.get("Name", ""),
            private_ip=raw.private_ip,
            state=raw.state,
            vpc_id=raw.vpc_id,
            subnet_id=raw.subnet_id,
            scope=scope,
            tags=tags,
        )


def _tag_spec(resource_type: Any, tags: Mapping[str, str]) -> TagSpecificationTypeDef:
    tag_list: list[TagTypeDef] = [{"Key": k, "Value": v} for k, v in tags.items()]
    return {"ResourceType": resource_type, "Tags": tag_list}
