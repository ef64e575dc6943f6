"""Project and AWS settings from env vars and flags (flags win). Consul's own live in consul_settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tagjoin.core.aws.ec2_api import Filter
from tagjoin.core.errors import ConfigError

DEFAULT_TAG_KEY = "consul-leader"
DEFAULT_CLUSTER_TAG_KEY = "consul-cluster"


@dataclass(frozen=True)
class Scope:
    """Which instances belong to this cluster, and which tag carries the join target.

    With a cluster name, every EC2 read and write is limited to instances tagged
    `cluster_tag_key=cluster`; without one, the whole region of the account is the scope.
    """

    tag_key: str = DEFAULT_TAG_KEY
    cluster: str | None = None
    cluster_tag_key: str = DEFAULT_CLUSTER_TAG_KEY

    def __post_init__(self) -> None:
        if not self.tag_key.strip():
            raise ConfigError("the leader tag key is empty; set TAGJOIN_TAG_KEY or --tag-key")
        if self.tag_key.lower().startswith("aws:"):
            raise ConfigError(f"tag key {self.tag_key!r} uses the reserved aws: prefix; choose another key")

    def filters(self) -> list[Filter]:
        """DescribeInstances filters that restrict a query to this cluster."""
        if self.cluster is None:
            return []
        return [{"Name": f"tag:{self.cluster_tag_key}", "Values": [self.cluster]}]


@dataclass(frozen=True)
class AwsSettings:
    region: str | None = None
    endpoint_url: str | None = None
    instance_id: str | None = None  # this node's instance, when looking it up by IP is not wanted
    max_attempts: int = 4

    def require_region(self) -> str:
        if not self.region:
            raise ConfigError("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION) or pass --region")
        return self.region


def scope_from_env(env: Mapping[str, str], *, tag_key: str | None = None, cluster: str | None = None) -> Scope:
    return Scope(
        tag_key=tag_key or env.get("TAGJOIN_TAG_KEY") or DEFAULT_TAG_KEY,
        cluster=cluster or env.get("TAGJOIN_CLUSTER") or None,
        cluster_tag_key=env.get("TAGJOIN_CLUSTER_TAG_KEY") or DEFAULT_CLUSTER_TAG_KEY,
    )


def aws_from_env(
    env: Mapping[str, str],
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
    instance_id: str | None = None,
    max_attempts: int | None = None,
) -> AwsSettings:
    attempts = max_attempts if max_attempts is not None else _int_env(env, "TAGJOIN_EC2_MAX_ATTEMPTS", 4)
    if attempts < 1:
        raise ConfigError(f"EC2 max attempts must be at least 1, got {attempts}")
    return AwsSettings(
        region=region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        endpoint_url=endpoint_url or env.get("AWS_ENDPOINT_URL_EC2") or env.get("AWS_ENDPOINT_URL") or None,
        instance_id=instance_id or env.get("TAGJOIN_INSTANCE_ID") or None,
        max_attempts=attempts,
    )


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
