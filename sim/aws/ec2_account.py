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

import functools
import ipaddress
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import boto3
from botocore.config import Config
from moto import mock_aws, settings
from moto.autoscaling.models import autoscaling_backends
from moto.core.base_backend import AccountSpecificBackend, BackendDict, backend_lock
from moto.core.model_instances import reset_model_data
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.ec2.exceptions import InvalidInstanceIdError
from moto.ec2.models import ec2_backends, validate_resource_ids
from moto.ec2.models.instance_types import INSTANCE_TYPE_OFFERINGS, InstanceTypeOfferingBackend
from moto.ec2.models.subnets import Subnet
from moto.elbv2.models import elbv2_backends
from moto.moto_api._internal import mock_random

from tagjoin.sim.aws.ec2_faults import MOTO_LOCK, bind_to_moto
from tagjoin.sim.aws.moto_direct import answered, drawn_in_batches

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

DEFAULT_REGION = "ap-northeast-1"
DEFAULT_CLUSTER_TAG = "consul-cluster"
AMI = "ami-12c6146b"  # in moto's built-in list (not loaded here, see _without_default_amis)
INSTANCE_TYPE = "t3.micro"
DUMMY_KEY = "testing"

VPC_CIDR = "10.0.0.0/16"
# A /18 (16,379 usable): thousands of agents plus their replacements, since moto never frees a
# terminated instance's address.
CLUSTER_SUBNET_CIDR = "10.0.0.0/18"
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


_kept_mock: list[Any] = []  # the started mock of `kept_running()`, while one is open


@contextmanager
def kept_running() -> Iterator[None]:
    """Worlds opened inside share one started moto mock instead of starting and stopping their own.

    A world still starts from moto's reset backends and its seed (`Ec2World._setup` resets them
    explicitly), so what it does is the same; what is saved is moto's patching set up and torn down
    per world, and the reset (which rebuilds every backend) that stopping a mock does. For sweeps:
    while it is open, moto's patches and its fake credentials stay in the process environment
    between worlds too, so code in the same process that expects neither must run outside it.
    Re-entrant; the mock stops when the outermost exits.
    """
    with Ec2World._live_lock, MOTO_LOCK:
        outermost = not _kept_mock
        if outermost:
            mock = mock_aws()
            with _without_default_amis():
                mock.start()
            _kept_mock.append(mock)
    try:
        # A sweep's worlds make their ids with `resource_id`: moto's ids, drawn a batch at a time.
        with drawn_in_batches() if outermost else nullcontext():
            yield
    finally:
        if outermost:
            with Ec2World._live_lock, MOTO_LOCK:
                mock = _kept_mock.pop()
                with _without_default_amis():
                    mock.stop()


def _drop_backends() -> None:
    """moto's `BackendDict.reset`, less the rebuild of every backend it does before dropping it:
    the next lookup builds a fresh one either way (moto/core/base_backend.py). An EC2 backend
    builds a default VPC and subnets, so the rebuild was a third of a small world's set-up.

    The account's dict of regions stays, emptied: building a new one asks botocore for every
    partition's regions (`AccountSpecificBackend._generate_regions`, cached per object only),
    which was a twentieth of a small scenario."""
    with backend_lock:
        instances: list[BackendDict[Any]] = BackendDict._instances  # type: ignore[misc]
        for backend in instances:
            for regions in backend.values():
                regions.clear()
        instances.clear()
        AccountSpecificBackend._generate_regions.cache_clear()
        # moto caches each subnet's address iterator on the class (moto/ec2/models/subnets.py
        # `_base_avail_ip_iterator`, functools.cache), and each subnet holds its backend: without
        # this, every dropped world stayed in memory whole.
        Subnet._base_avail_ip_iterator.cache_clear()
    reset_model_data()  # moto's list of every model object it made (for its dashboard), as its reset does


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
        dispatched: bool = True,
    ) -> None:
        """`dispatched=False`: nothing reaches this world through moto's request dispatcher (a sweep
        on the direct path), whose us-east-1 backend is then built only if `client()` is called."""
        self.seed = seed
        self._dispatched = dispatched
        self.cluster = cluster
        self.region = region
        self.cluster_tag_key = cluster_tag_key
        self._closed = False
        self._superseded = False
        # Launches, stops, starts, terminations and every write of its clients (`client()`), so
        # that a reader can tell cheaply that nothing changed since it last looked; the handlers'
        # own tag writes are calls the fault plane shows it.
        self.changes = 0
        # Inside `kept_running()` the process's one started mock serves every world in turn.
        self._mock: Any = None if _kept_mock else mock_aws()
        self._node_instance: dict[str, str] = {}
        self._provisioning: dict[str, dict[str, str]] = {}  # node → extra tags, for replace()
        self._noise: set[str] = set()
        self._raw: dict[str, Any] = {}  # instance id → moto's Instance, to avoid O(n) lookups
        self._outside_vpc: str | None = None
        self._outside_subnet: str | None = None
        self._backend_now: Any = None
        with Ec2World._live_lock, MOTO_LOCK:
            previous = Ec2World._live
            if previous is not None and not previous._closed:
                previous._superseded = True
            with _without_default_amis():
                if self._mock is not None:
                    self._mock.start()
                try:
                    self._setup()
                except BaseException:
                    if self._mock is not None:
                        self._mock.stop()
                    raise
            Ec2World._live = self

    def _setup(self) -> None:
        _drop_backends()
        self._backend_now = None
        # The region backend and the one moto's dispatcher consults for any in-process request
        # (us-east-1) both draw from mock_random when built, so they must exist before the seed is set.
        _ = ec2_backends[DEFAULT_ACCOUNT_ID][self.region]
        if self._dispatched:
            _ = ec2_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
        mock_random.seed(self.seed)
        self.zone = f"{self.region}a"
        self.vpc_id, self.subnet_id = self._vpc(VPC_CIDR, CLUSTER_SUBNET_CIDR, "cluster")
        self.noise_subnet_id = self._subnet(self.vpc_id, NOISE_SUBNET_CIDR)

    # The world's own set-up and life-cycle calls go to moto's backend directly, with the arguments
    # moto's response layer would pass for the same API call (moto/ec2/responses/vpcs.py, subnets.py,
    # instances.py) and the request id it would draw: ids and IPs are what the API would give.
    # Nothing here is seen by the fault plane or counted, as before (the world's own client was
    # never attached to it).

    def _vpc(self, cidr: str, subnet_cidr: str, name: str) -> tuple[str, str]:
        vpc = self._backend.create_vpc(
            cidr,
            "default",
            amazon_provided_ipv6_cidr_block=False,
            ipv6_cidr_block_network_border_group=self.region,
            tags=[{"Key": "Name", "Value": name}],
        )
        _answered()
        return vpc.id, self._subnet(vpc.id, subnet_cidr)

    def _subnet(self, vpc_id: str, cidr: str) -> str:
        subnet = self._backend.create_subnet(vpc_id, cidr, None, self.zone, None, ipv6_native=False, tags={})
        _answered()
        subnet_id: str = subnet.id
        return subnet_id

    # -- life cycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the mock; the account's data goes with the last active mock."""
        with Ec2World._live_lock, MOTO_LOCK:
            if self._closed:
                return
            self._closed = True
            if Ec2World._live is self:
                Ec2World._live = None
            if self._mock is not None:
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
        # Looked up once a world: moto's BackendDict lookups cost more than the reads made through
        # them, and the backend only changes when a newer world resets moto (this one is then superseded).
        if self._backend_now is None:
            self._backend_now = ec2_backends[DEFAULT_ACCOUNT_ID][self.region]
        return self._backend_now

    # -- clients ----------------------------------------------------------------------------------

    def client(self, endpoint_url: str | None = None) -> EC2Client:
        """A boto3 EC2 client on this account: in process, or via a served endpoint's URL."""
        self._check()
        if not self._dispatched:
            # Built now for the dispatcher, as set-up would have built it: with its draws taken
            # outside the seeded sequence, which goes on where it was.
            self._dispatched = True
            state = mock_random.getstate()
            _ = ec2_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
            mock_random.setstate(state)
        client = make_client(self.region, endpoint_url)
        client.meta.events.register("after-call.ec2", self._count_write)
        return client

    def _count_write(self, model: Any, **_: Any) -> None:
        """botocore's after-call event: whatever a client of this world changes is a change too."""
        if not model.name.startswith(("Describe", "Get", "List")):
            self.changes += 1

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
        if private_ip is not None:
            self._check_free_ip(subnet_id, cidr, private_ip)
        reservation = self._launch(1, subnet_id, private_ip, tags)
        _answered()
        self._raw.update((raw.id, raw) for raw in reservation.instances)
        instance_id: str = reservation.instances[0].id
        return instance_id

    def _launch(self, count: int, subnet_id: str, private_ip: str | None, tags: Mapping[str, str] | None) -> Any:
        """RunInstances (ImageId=AMI, InstanceType=INSTANCE_TYPE, SubnetId, PrivateIpAddress,
        TagSpecifications) as moto/ec2/responses/instances.py `run_instances` hands it to the backend.

        One difference, for speed: moto checks the instance type against every offering of the
        region on each launch (~1,100 filter matches) and ignores the outcome unless its
        validation is switched on. The check is made once per region and type here
        (`_known_instance_type`); a known type launches as the backend's "type not given" case,
        which skips the scan and changes nothing else (moto/ec2/models/instances.py).
        """
        self.changes += 1
        with _newest_first(self._backend):
            return self._run_instances(count, subnet_id, private_ip, tags)

    def _run_instances(self, count: int, subnet_id: str, private_ip: str | None, tags: Mapping[str, str] | None) -> Any:
        return self._backend.run_instances(
            AMI,
            count,
            None,
            [],
            instance_type=INSTANCE_TYPE,
            is_instance_type_default=_known_instance_type(self.region, INSTANCE_TYPE),
            placement=None,
            placement_hostid=None,
            region_name=self.region,
            subnet_id=subnet_id,
            key_name=None,
            security_group_ids=[],
            nics=[],
            private_ip=private_ip,
            associate_public_ip=None,
            tags={"instance": dict(tags)} if tags else {},
            ebs_optimized=False,
            disable_api_stop=False,
            instance_market_options={},
            instance_initiated_shutdown_behavior=None,
            launch_template={},
            hibernation_options={},
            iam_instance_profile_name=None,
            iam_instance_profile_arn=None,
            monitoring_state="disabled",
            ipv6_address_count=None,
            metadata_options={},
            client_token="ABCDE",
        )

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
            self.changes += 1
            self._backend.terminate_instances([instance_id])
            # what moto/ec2/responses/instances.py `terminate_instances` tells the other services
            autoscaling_backends[DEFAULT_ACCOUNT_ID][self.region].notify_terminate_instances([instance_id])
            elbv2_backends[DEFAULT_ACCOUNT_ID][self.region].notify_terminate_instances([instance_id])
            _answered()

    def create_tags(self, instance_ids: Iterable[str], key: str, value: str) -> None:
        """CreateTags as a client of this account makes it (moto/ec2/responses/tags.py
        `create_tags`), without building a botocore client: the simulator's own writes (debris,
        stale tags) are one call each, and a client took longer to build than a scenario to run."""
        ids = list(instance_ids)
        with MOTO_LOCK:
            self._check()
            validate_resource_ids(ids)
            self._backend.do_resources_exist(ids)
            self._backend.create_tags(ids, {key: value})
            self.changes += 1
            _answered()

    def stop(self, instance_id: str) -> None:
        with MOTO_LOCK:
            self._check()
            self.changes += 1
            self._backend.stop_instances([instance_id])
            _answered()

    def start(self, instance_id: str) -> None:
        with MOTO_LOCK:
            self._check()
            self.changes += 1
            self._backend.start_instances([instance_id])
            _answered()

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
            # Directly on the backend, without a request id: the noise was never an API call.
            reservation = self._launch(n, self.noise_subnet_id, None, tags)
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


@contextmanager
def _newest_first(backend: Any) -> Iterator[None]:
    """While moto launches: its `get_instance` looks through the newest reservation first.

    Each launch attaches a root volume, and moto finds the instance it attaches to by scanning
    a copy of every reservation (moto/ec2/models/instances.py `get_instance`, called from
    elastic_block_store.py `attach_volume`): a fleet of n costs n² to launch. Ids are unique, so
    searching from the newest end finds the same instance, the one just made, at once. Only
    under `MOTO_LOCK`, on this backend alone, and moto's own method is back when the launch returns.
    """

    def get_instance(instance_id: str) -> Any:
        for reservation in reversed(backend.reservations.values()):
            for instance in reservation.instances:
                if instance.id == instance_id:
                    return instance
        raise InvalidInstanceIdError(instance_id)

    backend.get_instance = get_instance
    try:
        yield
    finally:
        del backend.get_instance


def _answered() -> None:
    """The request id moto's response layer draws from its seeded stream for every answer
    (moto/core/responses.py `_enrich_response`), as the direct EC2 path draws it."""
    answered()


@functools.cache
def _known_instance_type(region: str, instance_type: str) -> bool:
    """moto's per-launch instance-type check (moto/ec2/models/instances.py `run_instances`), once."""
    offerings = INSTANCE_TYPE_OFFERINGS["region"].get(region, {})
    match = InstanceTypeOfferingBackend().matches_filters
    return any(match(offering, {"instance-type": instance_type}, "region") for offering in offerings)
