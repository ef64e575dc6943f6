"""Project and AWS settings from env vars and flags (flags win). Consul's own live in consul_settings.

Every value is checked here, against the limits of the system it ends up in, before any call is
made: a tag key EC2 would refuse (or, with a control character, one that breaks an XML answer
for every later reader) fails the command at once, with one line, instead of at the first write.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from tagjoin.core.aws.ec2_api import Filter
from tagjoin.core.errors import ConfigError

DEFAULT_TAG_KEY = "consul-leader"
DEFAULT_CLUSTER_TAG_KEY = "consul-cluster"

# EC2's limits for tags (ec2 CreateTags: key 1-128 Unicode characters, value 0-256; `aws:` is reserved).
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
# Partition, then area words, then a number: us-east-1, us-gov-west-1, eu-isoe-west-1, cn-north-1.
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}", re.ASCII)
_INSTANCE_ID = re.compile(r"i-[0-9a-f]{8}(?:[0-9a-f]{9})?", re.ASCII)
MAX_EC2_ATTEMPTS = 10
# Characters that are not text: controls, format characters (zero-width spaces), surrogates,
# private use, unassigned, and line or paragraph separators.
_NOT_TEXT = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def describe_bad_text(text: str) -> str | None:
    """What makes `text` unfit for a tag or a header, without repeating it; None when it is fine."""
    for ch in text:
        if ch in "\r\n":
            return "a line break"
        category = unicodedata.category(ch)
        if category in _NOT_TEXT:
            return (
                f"a control character (U+{ord(ch):04X})"
                if category == "Cc"
                else f"an invisible character (U+{ord(ch):04X})"
            )
    return None


def check_tag_key(key: str, source: str) -> str:
    """`key` if EC2 accepts it as a tag key, else a ConfigError naming `source`."""
    if not key:
        raise ConfigError(f"{source} is empty; a tag key has 1 to {MAX_TAG_KEY} characters")
    if len(key) > MAX_TAG_KEY:
        raise ConfigError(f"{source} has {len(key)} characters; EC2 allows at most {MAX_TAG_KEY} in a tag key")
    bad = describe_bad_text(key)
    if bad is not None:
        raise ConfigError(f"{source} contains {bad}; a tag key is printable text")
    if key != key.strip():
        raise ConfigError(f"{source} {key!r} starts or ends with whitespace; remove it")
    if key.lower().startswith("aws:"):
        raise ConfigError(f"{source} {key!r} uses the reserved aws: prefix; choose another key")
    return key


def check_tag_value(value: str, source: str, *, empty_ok: bool = True) -> str:
    """`value` if EC2 accepts it as a tag value (at most 256 characters of text)."""
    if not value and not empty_ok:
        raise ConfigError(f"{source} is empty; give a name or leave it unset")
    if len(value) > MAX_TAG_VALUE:
        raise ConfigError(f"{source} has {len(value)} characters; EC2 allows at most {MAX_TAG_VALUE} in a tag value")
    bad = describe_bad_text(value)
    if bad is not None:
        raise ConfigError(f"{source} contains {bad}; a tag value is printable text")
    if value != value.strip():
        raise ConfigError(f"{source} {value!r} starts or ends with whitespace; remove it")
    return value


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
        check_tag_key(self.tag_key, "the leader tag key (TAGJOIN_TAG_KEY or --tag-key)")
        check_tag_key(self.cluster_tag_key, "the cluster tag key (TAGJOIN_CLUSTER_TAG_KEY)")
        if self.cluster is not None:
            check_tag_value(self.cluster, "the cluster name (TAGJOIN_CLUSTER or --cluster)", empty_ok=False)
        if self.tag_key == self.cluster_tag_key:
            # Writing the leader tag would overwrite the cluster tag and take the leader out of its own scope.
            raise ConfigError(f"the leader tag key and the cluster tag key are both {self.tag_key!r}; they must differ")

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

    def __post_init__(self) -> None:
        if self.region is not None:
            check_region(self.region)
        if self.endpoint_url is not None:
            check_endpoint(self.endpoint_url)
        if self.instance_id is not None and not _INSTANCE_ID.fullmatch(self.instance_id):
            raise ConfigError(
                f"instance id {_shown(self.instance_id)} is not an EC2 instance id (i- and 8 or 17 hex digits); "
                "check TAGJOIN_INSTANCE_ID or --instance-id"
            )
        if not 1 <= self.max_attempts <= MAX_EC2_ATTEMPTS:
            raise ConfigError(
                f"EC2 max attempts must be 1 to {MAX_EC2_ATTEMPTS}, got {self.max_attempts}; "
                "check TAGJOIN_EC2_MAX_ATTEMPTS"
            )

    def require_region(self) -> str:
        if not self.region:
            raise ConfigError("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION) or pass --region")
        return self.region


def check_region(region: str) -> str:
    """A region name as AWS spells them; whether botocore knows it is checked where the client is built."""
    if not _REGION.fullmatch(region):
        raise ConfigError(
            f"AWS region {_shown(region)} is not a valid region name (like eu-west-1); "
            "check AWS_REGION, AWS_DEFAULT_REGION or --region"
        )
    return region


def check_endpoint(url: str) -> str:
    """What botocore would only find out at the first request, and then as a retried fault or a traceback."""
    bad = describe_bad_text(url)
    if bad is not None or any(ch.isspace() for ch in url):
        what = bad or "whitespace"
        raise ConfigError(f"the EC2 endpoint URL contains {what}; check AWS_ENDPOINT_URL or --endpoint-url")
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 -- parsing the port is the check
    except ValueError as exc:
        raise ConfigError(f"bad EC2 endpoint {_shown(url)}: {exc}; check AWS_ENDPOINT_URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"bad EC2 endpoint {_shown(url)}: not an http or https URL; check AWS_ENDPOINT_URL")
    return url


def _shown(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


def scope_from_env(env: Mapping[str, str], *, tag_key: str | None = None, cluster: str | None = None) -> Scope:
    """Flags win; an empty flag is a mistake (refused), an empty variable means unset, as in Consul."""
    return Scope(
        tag_key=tag_key if tag_key is not None else env.get("TAGJOIN_TAG_KEY") or DEFAULT_TAG_KEY,
        cluster=cluster if cluster is not None else env.get("TAGJOIN_CLUSTER") or None,
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
    return AwsSettings(
        region=_flag_or_env(region, "--region", env, "AWS_REGION", "AWS_DEFAULT_REGION"),
        endpoint_url=_flag_or_env(endpoint_url, "--endpoint-url", env, "AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL"),
        instance_id=_flag_or_env(instance_id, "--instance-id", env, "TAGJOIN_INSTANCE_ID"),
        max_attempts=attempts,
    )


def _flag_or_env(flag: str | None, flag_name: str, env: Mapping[str, str], *names: str) -> str | None:
    if flag is not None:
        if not flag:
            raise ConfigError(f"{flag_name} is empty; give a value or leave the flag out")
        return flag
    for name in names:
        value = env.get(name)
        if value:
            return value
    return None


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise ConfigError(f"{name}={_shown(raw)} is not a whole number")
    return int(text)
