"""The EC2 operations through botocore: the node commands, the console, and moto in the simulator and tests.

The client is botocore's own (`botocore.session`), not boto3's wrapper around it: boto3 adds its
resource layer and s3transfer, 60 modules an EC2 client never uses, to the start-up of every
command that calls EC2. Callers holding a boto3 session may still pass it (`make_ec2_client(session=...)`).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import botocore
import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConfigParseError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
    InvalidConfigError,
    InvalidRegionError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    SSLError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from botocore.parsers import ResponseParserError

from tagjoin.core.aws.ec2_api import (
    CREATE_TAGS,
    DELETE_TAGS,
    DESCRIBE,
    DESCRIBE_TAGS,
    ApiFault,
    Filter,
    InstancePage,
    TagEntry,
    TagPage,
    TransportFault,
)
from tagjoin.core.errors import ConfigError, Ec2Error
from tagjoin.core.model import Instance
from tagjoin.core.settings import AwsSettings
from tagjoin.core.text import one_line

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.type_defs import FilterTypeDef, InstanceTypeDef

T = TypeVar("T")

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0
NO_CREDENTIALS_HINT = (
    "configure AWS credentials (instance role, AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
)


_shared_lock = threading.Lock()


def make_ec2_client(aws: AwsSettings, *, session: boto3.session.Session | None = None) -> EC2Client:
    """An EC2 client for the configured region and endpoint, with botocore's own retries off.

    botocore would sleep with `time.sleep` between retries, invisible to the simulator's virtual
    clock and to our stats; TagStore retries instead. Credentials follow botocore's standard chain
    (environment, profile, SSO, web identity, container, instance role) through `session`, by
    default one botocore session shared by this process.
    """
    region = aws.require_region()
    _check_region_known(region)
    config = Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        user_agent_extra="consul-tagjoin",
    )
    try:
        if session is not None:
            return session.client("ec2", region_name=region, endpoint_url=aws.endpoint_url, config=config)
        with _shared_lock:
            client = _shared_session().create_client(
                "ec2", region_name=region, endpoint_url=aws.endpoint_url, config=config
            )
        return cast("EC2Client", client)
    except ProfileNotFound as exc:
        raise ConfigError(f"{exc}; fix AWS_PROFILE or ~/.aws/config") from None
    except (ConfigParseError, InvalidConfigError, PartialCredentialsError) as exc:
        raise ConfigError(f"{one_line(str(exc))}; check the AWS configuration and credentials") from None
    except InvalidRegionError:
        raise ConfigError(f"AWS region {region!r} is not a valid region name; check AWS_REGION") from None
    except Exception as exc:
        # Whatever else building the client raises is the setup's: a credential_process that fails
        # or prints something other than JSON, an SSO token that cannot be read, a broken profile.
        raise ConfigError(
            f"cannot create the EC2 client: {_describe(exc)}; check the AWS configuration "
            "(AWS_PROFILE, ~/.aws/config, credential_process, SSO login)"
        ) from None


def _check_region_known(region: str) -> None:
    """A well-formed name botocore has never heard of: AWS would answer with an unresolvable host,
    and a test endpoint with an empty region."""
    if region not in _known_regions():
        raise ConfigError(
            f"AWS region {region!r} is unknown to botocore {botocore.__version__}; check AWS_REGION "
            "(or upgrade boto3 if the region is new)"
        )


@functools.cache
def _known_regions() -> frozenset[str]:
    # partitions.json is small (7 kB) and lists every region of every partition, EC2 or not.
    # A loader of its own: the session's would read the profile first, and a bad profile is reported
    # (as such) when the client is built.
    data = botocore.loaders.Loader().load_data("partitions")
    return frozenset(name for partition in data.get("partitions", []) for name in partition.get("regions", {}))


def _describe(exc: BaseException) -> str:
    text = one_line(str(exc), limit=160)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@functools.cache
def _shared_session() -> botocore.session.Session:
    """The session every default client shares: it caches the service model (~0.1 s to load) and the credentials."""
    return botocore.session.get_session()


class BotoEc2:
    """`Ec2Api` over a botocore EC2 client (from `make_ec2_client` or a boto3 session)."""

    def __init__(self, client: EC2Client, *, max_results: int | None = None) -> None:
        self.client = client
        # None leaves the page size to EC2, as every command does; the simulator asks for small
        # pages so that a read which stops after its first page shows up.
        self.max_results = max_results

    def describe_instances(
        self, filters: Sequence[Filter], instance_ids: Sequence[str] = (), next_token: str | None = None
    ) -> InstancePage:
        kwargs: dict[str, Any] = {"Filters": cast("list[FilterTypeDef]", list(filters))}
        if instance_ids:
            kwargs["InstanceIds"] = list(instance_ids)
        elif self.max_results is not None:  # EC2 refuses MaxResults beside InstanceIds
            kwargs["MaxResults"] = self.max_results
        if next_token:
            kwargs["NextToken"] = next_token
        page = _translated(DESCRIBE, lambda: self.client.describe_instances(**kwargs))
        found = [_instance(raw) for r in page.get("Reservations", []) for raw in r.get("Instances", [])]
        return InstancePage(found, _next_token(page))

    def describe_tags(self, filters: Sequence[Filter], next_token: str | None = None) -> TagPage:
        kwargs: dict[str, Any] = {"Filters": cast("list[FilterTypeDef]", list(filters))}
        if self.max_results is not None:
            kwargs["MaxResults"] = self.max_results
        if next_token:
            kwargs["NextToken"] = next_token
        page = _translated(DESCRIBE_TAGS, lambda: self.client.describe_tags(**kwargs))
        tags = [
            TagEntry(t["ResourceId"], t["Key"], t.get("Value", ""))
            for t in page.get("Tags", [])
            if "ResourceId" in t and "Key" in t
        ]
        return TagPage(tags, _next_token(page))

    def create_tags(self, instance_ids: Sequence[str], key: str, value: str) -> None:
        _translated(
            CREATE_TAGS,
            lambda: self.client.create_tags(Resources=list(instance_ids), Tags=[{"Key": key, "Value": value}]),
        )

    def delete_tags(self, instance_ids: Sequence[str], key: str, value: str) -> None:
        _translated(
            DELETE_TAGS,
            lambda: self.client.delete_tags(Resources=list(instance_ids), Tags=[{"Key": key, "Value": value}]),
        )


def _translated(action: str, fn: Callable[[], T]) -> T:
    """Call `fn`, turning botocore's exceptions into the `Ec2Api` ones."""
    try:
        result = fn()
    except ClientError as exc:
        error: Mapping[str, Any] = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        raise ApiFault(str(error.get("Code") or "Unknown"), status, str(error.get("Message") or "")) from None
    except (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError, ProfileNotFound) as exc:
        raise Ec2Error(f"EC2 {action}: {one_line(str(exc))}; {NO_CREDENTIALS_HINT}") from None
    except ConfigParseError as exc:
        raise Ec2Error(f"EC2 {action}: {one_line(str(exc))}; fix the AWS configuration files") from None
    except SSLError as exc:
        raise Ec2Error(
            f"EC2 {action}: TLS failure: {one_line(str(exc))}; check AWS_ENDPOINT_URL and AWS_CA_BUNDLE"
        ) from None
    except (BotoConnectionError, HTTPClientError, IncompleteReadError) as exc:
        raise TransportFault(one_line(str(exc))) from None
    except ResponseParserError as exc:
        # Not a BotoCoreError: a cut-off body, or a proxy's plain-text error page. The message ends
        # with the whole body, which can be a page of HTML.
        first = str(exc).split("\n", 1)[0].removesuffix(" Further retries may succeed:")
        raise TransportFault(f"unreadable answer: {one_line(first)}") from None
    except BotoCoreError as exc:
        raise Ec2Error(f"EC2 {action} failed: {one_line(str(exc))}") from None
    except Exception as exc:
        # botocore documents only the errors above; anything else (a credential provider's own
        # ValueError, a decoding error) must still end the call as a failure, not end the process.
        raise Ec2Error(f"EC2 {action} failed: {_describe(exc)}") from None
    _check_is_ec2(action, result)
    return result


def _check_is_ec2(action: str, result: object) -> None:
    """EC2 names every answer with a request id. A 2xx answer without one came from something else
    (a captive portal, a proxy's page, a wrong endpoint): botocore reads any XML and would report
    an empty, successful page, so that a lookup finds "no instance" and a boot joins nothing."""
    meta = result.get("ResponseMetadata") if isinstance(result, Mapping) else None
    if not isinstance(meta, Mapping) or not meta.get("RequestId"):
        raise TransportFault(f"the answer to {action} is not from EC2 (no request id); check AWS_ENDPOINT_URL")


def _next_token(page: Mapping[str, Any]) -> str | None:
    token = page.get("NextToken")
    return token if isinstance(token, str) and token else None


def _instance(raw: InstanceTypeDef) -> Instance:
    instance_id = raw.get("InstanceId")
    if not instance_id:
        # The model makes every field optional; an instance without its id cannot be tagged or told apart.
        raise TransportFault("unreadable answer: DescribeInstances listed an instance without an InstanceId")
    state = raw.get("State") or {}
    return Instance(
        instance_id=instance_id,
        private_ip=raw.get("PrivateIpAddress") or None,
        public_ip=raw.get("PublicIpAddress") or None,
        state=state.get("Name") or "unknown",
        tags={t["Key"]: t.get("Value", "") for t in raw.get("Tags", []) if "Key" in t},
        zone=(raw.get("Placement") or {}).get("AvailabilityZone") or None,
        instance_type=raw.get("InstanceType") or None,
        launch_time=launched.isoformat() if (launched := raw.get("LaunchTime")) is not None else None,
    )
