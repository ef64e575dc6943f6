"""The four EC2 operations the tag store uses, as a protocol the store can be tested against.

`tagjoin.core.aws.boto_ec2.BotoEc2` implements them over botocore, the one EC2 client (node commands,
console, the simulator's moto); `tagjoin.core.aws.lazy_ec2.LazyEc2` defers building it to the first call.

They raise only `ApiFault` (EC2 answered with an error), `TransportFault` (no answer; may work
later) or an `Ec2Error` whose message is already one readable line; building the client on first
use may also raise a `ConfigError` (bad profile, region name or endpoint).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypedDict

from tagjoin.core.model import Instance

DESCRIBE = "DescribeInstances"
DESCRIBE_TAGS = "DescribeTags"
CREATE_TAGS = "CreateTags"
DELETE_TAGS = "DeleteTags"


class Filter(TypedDict):
    """One EC2 filter, in boto3's shape."""

    Name: str
    Values: list[str]


@dataclass(frozen=True)
class InstancePage:
    instances: list[Instance]
    next_token: str | None


@dataclass(frozen=True)
class TagEntry:
    resource_id: str
    key: str
    value: str


@dataclass(frozen=True)
class TagPage:
    tags: list[TagEntry]
    next_token: str | None


class ApiFault(Exception):
    """EC2 answered with an error code."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(f"{code} (HTTP {status}): {message}" if message else f"{code} (HTTP {status})")
        self.code = code
        self.status = status
        self.message = message


class TransportFault(Exception):
    """No usable answer (connection refused or reset, timeout, truncated body); may work later."""


class Ec2Api(Protocol):
    def describe_instances(
        self, filters: Sequence[Filter], instance_ids: Sequence[str] = (), next_token: str | None = None
    ) -> InstancePage: ...

    def describe_tags(self, filters: Sequence[Filter], next_token: str | None = None) -> TagPage: ...

    def create_tags(self, instance_ids: Sequence[str], key: str, value: str) -> None: ...

    def delete_tags(self, instance_ids: Sequence[str], key: str, value: str) -> None:
        """Delete `key` only where it still has `value` (EC2's one conditional write)."""
        ...
