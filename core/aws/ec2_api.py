"""The four EC2 operations the tag store uses, whatever client library sends them.

Two implementations: `tagjoin.core.ec2_query.QueryEc2` (standard library only, fast to start; what the
node commands use) and `tagjoin.core.aws.boto_ec2.BotoEc2` (boto3; the simulator's in-process moto, the
console, and every credential or endpoint setup the lean client does not implement).

Both raise only `ApiFault` (EC2 answered with an error), `TransportFault` (no answer; may work
later) or an `Ec2Error` whose message is already one readable line.
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
