"""The EC2 tag store: the only code in core that talks to EC2.

Reads and writes are always limited to the cluster scope (DESIGN §2). Retrying is ours, not
botocore's: the simulator runs this code in virtual time, so every backoff has to go through the
injected clock and draw its jitter from the injected random stream.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    InvalidRegionError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    SSLError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from botocore.paginate import TokenEncoder

from core.clock import Clock
from core.errors import ConfigError, Ec2Error, Ec2Throttled, InstanceNotFound
from core.model import Instance
from core.settings import AwsSettings, Scope

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import (
        DescribeInstancesResultTypeDef,
        FilterTypeDef,
        InstanceTypeDef,
        PaginatorConfigTypeDef,
    )

log = logging.getLogger(__name__)

T = TypeVar("T")

DESCRIBE = "DescribeInstances"
CREATE_TAGS = "CreateTags"
DELETE_TAGS = "DeleteTags"

THROTTLING_CODES = frozenset(
    {"RequestLimitExceeded", "Throttling", "ThrottlingException", "EC2ThrottledException", "RequestThrottled"}
)
# Server-side failures that EC2 itself documents as safe to retry.
TRANSIENT_CODES = frozenset({"InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable", "RequestTimeout"})
DENIED_CODES = frozenset(
    {
        "UnauthorizedOperation",
        "AccessDenied",
        "AccessDeniedException",
        "AuthFailure",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "RequestExpired",
        "OptInRequired",
    }
)
# Every state but terminated: a stopped or pending instance still owns its private IP.
LIVE_STATES = ("pending", "running", "shutting-down", "stopping", "stopped")

_CONNECT_TIMEOUT = 5.0
_READ_TIMEOUT = 15.0
_MAX_MESSAGE = 200


def make_ec2_client(aws: AwsSettings, *, session: boto3.session.Session | None = None) -> EC2Client:
    """An EC2 client for the configured region and endpoint, with botocore's own retries off.

    botocore would sleep with `time.sleep` between retries, invisible to the simulator's virtual
    clock and to our stats; TagStore retries instead. Credentials follow boto3's standard chain
    through `session`, by default boto3's shared session.
    """
    region = aws.require_region()
    config = Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=_CONNECT_TIMEOUT,
        read_timeout=_READ_TIMEOUT,
        user_agent_extra="consul-tagjoin",
    )
    try:
        # The shared default session caches the service model: a fresh session per client costs
        # ~0.1 s, which adds up when the simulator builds one client per node.
        if session is None:
            return boto3.client("ec2", region_name=region, endpoint_url=aws.endpoint_url, config=config)
        return session.client("ec2", region_name=region, endpoint_url=aws.endpoint_url, config=config)
    except ProfileNotFound as exc:
        raise ConfigError(f"{exc}; fix AWS_PROFILE or ~/.aws/config") from None
    except InvalidRegionError:
        raise ConfigError(f"AWS region {region!r} is not a valid region name; check AWS_REGION") from None
    except ValueError as exc:
        raise ConfigError(f"bad EC2 endpoint {aws.endpoint_url!r}: {exc}; check AWS_ENDPOINT_URL") from None


@dataclass
class Ec2Stats:
    """What this store asked of EC2.

    `calls` counts logical requests (one per page or write) by API action; `attempts` counts
    every HTTP attempt including retries, which is what EC2's throttling buckets see.
    """

    calls: Counter[str] = field(default_factory=Counter)
    attempts: int = 0
    throttled: int = 0
    server_errors: int = 0  # 5xx and connection failures that were retried or gave up
    errors: int = 0  # logical requests that ended in an exception

    def snapshot(self) -> Ec2Stats:
        return Ec2Stats(
            calls=Counter(self.calls),
            attempts=self.attempts,
            throttled=self.throttled,
            server_errors=self.server_errors,
            errors=self.errors,
        )

    def since(self, earlier: Ec2Stats) -> Ec2Stats:
        """What happened after `earlier` was snapshotted, e.g. the calls of one handoff pass."""
        calls = Counter(self.calls)
        calls.subtract(earlier.calls)
        return Ec2Stats(
            calls=+calls,  # unary plus drops actions with no new calls
            attempts=self.attempts - earlier.attempts,
            throttled=self.throttled - earlier.throttled,
            server_errors=self.server_errors - earlier.server_errors,
            errors=self.errors - earlier.errors,
        )

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "calls": dict(sorted(self.calls.items())),
            "attempts": self.attempts,
            "throttled": self.throttled,
            "server_errors": self.server_errors,
            "errors": self.errors,
        }


class _Retryable(Exception):
    """An attempt failed in a way that may succeed later."""

    def __init__(self, reason: str, *, throttled: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.throttled = throttled


class TagStore:
    """Reads instances and writes leader tags, always within `scope`.

    Writes take instance ids that came out of this store's scoped reads; the store does not
    re-read before writing, because that would double the EC2 calls of every handoff.
    """

    def __init__(
        self,
        client: EC2Client,
        scope: Scope,
        *,
        clock: Clock,
        rng: random.Random,
        max_attempts: int = 4,
        base_delay: float = 0.2,
        max_delay: float = 5.0,
    ) -> None:
        if max_attempts < 1:
            raise ConfigError(f"EC2 max attempts must be at least 1, got {max_attempts}")
        self._client = client
        self.scope = scope
        self._clock = clock
        self._rng = rng
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.stats = Ec2Stats()

    # -- reads -------------------------------------------------------------------------------

    def instances(
        self,
        extra_filters: Iterable[FilterTypeDef] = (),
        states: Sequence[str] | None = ("running",),
    ) -> list[Instance]:
        """Instances in scope matching `extra_filters`; `states=None` means any state."""
        filters = [*self._scope_filters(), *extra_filters]
        if states is not None:
            filters.append({"Name": "instance-state-name", "Values": list(states)})
        return self._describe(filters=filters)

    def tagged_instances(
        self,
        *,
        key: str | None = None,
        value: str | None = None,
        states: Sequence[str] | None = ("running",),
    ) -> list[Instance]:
        """Instances in scope carrying tag `key` (the leader tag by default), optionally `=value`."""
        tag_key = key or self.scope.tag_key
        tag_filter: FilterTypeDef
        if value is None:
            tag_filter = {"Name": "tag-key", "Values": [tag_key]}
        else:
            tag_filter = {"Name": f"tag:{tag_key}", "Values": [value]}
        return self.instances([tag_filter], states=states)

    def instance_by_ip(self, ip: str) -> Instance:
        """This cluster's one non-terminated instance with private IP `ip`.

        Private IPs are unique only within a VPC, so the scope is what makes the answer unique;
        when it does not, we refuse to guess rather than tag the wrong machine.
        """
        found = self.instances([{"Name": "private-ip-address", "Values": [ip]}], states=LIVE_STATES)
        if not found:
            raise InstanceNotFound(
                f"no instance of {self._scope_name()} has private IP {ip}; "
                "set TAGJOIN_INSTANCE_ID or check the cluster tag"
            )
        if len(found) > 1:
            ids = ", ".join(sorted(i.instance_id for i in found))
            raise Ec2Error(
                f"{len(found)} instances of {self._scope_name()} have private IP {ip} ({ids}); "
                "set TAGJOIN_INSTANCE_ID to say which one is this node"
            )
        return found[0]

    def instance_by_id(self, instance_id: str) -> Instance:
        """The instance `instance_id` in any state, provided it is inside the scope."""
        try:
            found = self._describe(instance_ids=[instance_id], filters=self._scope_filters())
        except InstanceNotFound:
            found = []
        if not found:
            raise InstanceNotFound(
                f"instance {instance_id} is unknown or not part of {self._scope_name()}; "
                "check TAGJOIN_INSTANCE_ID and the cluster tag"
            )
        return found[0]

    # -- writes ------------------------------------------------------------------------------

    def create_tag(self, instance_id: str, key: str, value: str) -> None:
        """Set `key=value` on the instance (EC2 overwrites an existing value of the key)."""
        self._call(
            CREATE_TAGS,
            lambda: self._client.create_tags(Resources=[instance_id], Tags=[{"Key": key, "Value": value}]),
        )

    def delete_tag_if(self, instance_id: str, key: str, value: str) -> None:
        """Delete `key` only if it still has `value`.

        This is the one conditional write EC2 offers; it keeps a stale writer from removing a
        tag that a newer leader has rewritten in the meantime.
        """
        self._call(
            DELETE_TAGS,
            lambda: self._client.delete_tags(Resources=[instance_id], Tags=[{"Key": key, "Value": value}]),
        )

    # -- plumbing ----------------------------------------------------------------------------

    def _scope_filters(self) -> list[FilterTypeDef]:
        return cast("list[FilterTypeDef]", self.scope.filters())

    def _scope_name(self) -> str:
        if self.scope.cluster is None:
            return "this account and region"
        return f"cluster {self.scope.cluster}"

    def _describe(self, *, filters: Sequence[FilterTypeDef], instance_ids: Sequence[str] = ()) -> list[Instance]:
        """Every page of DescribeInstances, each page retried on its own.

        A failed page kills botocore's page iterator; after the backoff a new one resumes from
        the last token we saw, so a throttle on page 3 does not re-read pages 1 and 2.
        """
        paginator = self._client.get_paginator("describe_instances")
        kwargs: dict[str, Any] = {"Filters": list(filters)}
        if instance_ids:
            kwargs["InstanceIds"] = list(instance_ids)
        resume: str | None = None
        pages: Iterator[DescribeInstancesResultTypeDef] | None = None

        def next_page() -> DescribeInstancesResultTypeDef | None:
            nonlocal pages
            if pages is None:
                config: PaginatorConfigTypeDef = {}
                if resume:
                    config["StartingToken"] = TokenEncoder().encode({"NextToken": resume})
                pages = iter(paginator.paginate(**kwargs, PaginationConfig=config))
            try:
                return next(pages, None)
            except BaseException:
                pages = None
                raise

        found: list[Instance] = []
        while True:
            page = self._call(DESCRIBE, next_page)
            if page is None:
                return found
            for reservation in page.get("Reservations", []):
                found.extend(_instance(raw) for raw in reservation.get("Instances", []))
            resume = page.get("NextToken") or None
            if resume is None:
                return found

    def _call(self, action: str, fn: Callable[[], T]) -> T:
        """Run one EC2 request with bounded, jittered retries on throttling and transient faults."""
        self.stats.calls[action] += 1
        failure: _Retryable | None = None
        for attempt in range(self.max_attempts):
            if attempt:
                cap = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
                delay = self._rng.uniform(0, cap)
                log.debug("EC2 %s: %s; retry %d in %.3fs", action, failure, attempt, delay)
                self._clock.sleep(delay)
            self.stats.attempts += 1
            try:
                return _classified(action, fn)
            except _Retryable as exc:
                failure = exc
                if exc.throttled:
                    self.stats.throttled += 1
                else:
                    self.stats.server_errors += 1
            except Ec2Error:
                self.stats.errors += 1
                raise
        self.stats.errors += 1
        assert failure is not None
        what = "throttled" if failure.throttled else "failing"
        raise Ec2Throttled(
            f"EC2 {action} still {what} after {self.max_attempts} attempts (last: {failure.reason}); "
            "try again later or raise TAGJOIN_EC2_MAX_ATTEMPTS"
        )


def _classified(action: str, fn: Callable[[], T]) -> T:
    """Call `fn`, turning every failure into _Retryable or a one-line Ec2Error."""
    try:
        return fn()
    except ClientError as exc:
        error: Mapping[str, Any] = exc.response.get("Error", {})
        code = str(error.get("Code") or "Unknown")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        message = _one_line(str(error.get("Message") or ""))
        reason = f"{code} (HTTP {status}): {message}" if message else f"{code} (HTTP {status})"
        if code in THROTTLING_CODES:
            raise _Retryable(reason, throttled=True) from None
        if code in TRANSIENT_CODES or status >= 500:
            raise _Retryable(reason, throttled=False) from None
        if code.startswith("InvalidInstanceID") or code == "InvalidID":
            raise InstanceNotFound(f"EC2 {action}: {reason}") from None
        if code in DENIED_CODES or status in (401, 403):
            raise Ec2Error(
                f"EC2 {action} denied: {reason}; grant ec2:{action} to this node's IAM role "
                "and check its credentials (see `tagjoin deploy-kit`)"
            ) from None
        raise Ec2Error(f"EC2 {action} failed: {reason}") from None
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise Ec2Error(
            f"EC2 {action}: {_one_line(str(exc))}; configure AWS credentials "
            "(instance role, AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
        ) from None
    except SSLError as exc:
        raise Ec2Error(f"EC2 {action}: TLS failure: {_one_line(str(exc))}; check AWS_ENDPOINT_URL") from None
    except (BotoConnectionError, HTTPClientError, IncompleteReadError) as exc:
        raise _Retryable(_one_line(str(exc)), throttled=False) from None
    except BotoCoreError as exc:
        raise Ec2Error(f"EC2 {action} failed: {_one_line(str(exc))}") from None


def _one_line(text: str) -> str:
    # EC2's UnauthorizedOperation carries a kilobyte-long encoded policy message; the CLI
    # contract is one readable line.
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_MESSAGE else flat[: _MAX_MESSAGE - 1] + "…"


def _instance(raw: InstanceTypeDef) -> Instance:
    return Instance(
        instance_id=raw["InstanceId"],
        private_ip=raw.get("PrivateIpAddress") or None,
        public_ip=raw.get("PublicIpAddress") or None,
        state=raw.get("State", {}).get("Name", "unknown"),
        tags={t["Key"]: t.get("Value", "") for t in raw.get("Tags", []) if "Key" in t},
    )
