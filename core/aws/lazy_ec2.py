"""An `Ec2Api` that builds its botocore client on the first call.

Loading botocore and its EC2 model is most of a node command's start-up, and most runs never call
EC2: a follower's handoff pass stops after asking its local agent. So the node commands hold this
instead of a client, and only a pass that reaches EC2 pays for botocore, once per process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from tagjoin.core.aws.ec2_api import Ec2Api, Filter, InstancePage, TagPage
from tagjoin.core.settings import AwsSettings


def _botocore_api(aws: AwsSettings) -> Ec2Api:
    from tagjoin.core.aws.boto_ec2 import BotoEc2, make_ec2_client

    return BotoEc2(make_ec2_client(aws))


class LazyEc2:
    """`Ec2Api` for `aws`, built by `build` on the first call and kept for every later one.

    A missing region is reported at once, on every node, rather than on the day a node first
    leads; what only botocore can judge (profile, region name, endpoint) is reported at the first
    call as a `ConfigError`, which the store passes through unretried.
    """

    def __init__(self, aws: AwsSettings, build: Callable[[AwsSettings], Ec2Api] = _botocore_api) -> None:
        aws.require_region()
        self.aws = aws
        self._build = build
        self._api: Ec2Api | None = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        return self._api is not None

    def _client(self) -> Ec2Api:
        api = self._api
        if api is None:
            with self._lock:
                if self._api is None:
                    self._api = self._build(self.aws)
                api = self._api
        return api

    def describe_instances(
        self, filters: Sequence[Filter], instance_ids: Sequence[str] = (), next_token: str | None = None
    ) -> InstancePage:
        return self._client().describe_instances(filters, instance_ids, next_token)

    def describe_tags(self, filters: Sequence[Filter], next_token: str | None = None) -> TagPage:
        return self._client().describe_tags(filters, next_token)

    def create_tags(self, instance_ids: Sequence[str], key: str, value: str) -> None:
        self._client().create_tags(instance_ids, key, value)

    def delete_tags(self, instance_ids: Sequence[str], key: str, value: str) -> None:
        self._client().delete_tags(instance_ids, key, value)
