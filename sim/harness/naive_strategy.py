"""The naive strategy, the scheme as first described: a `nodes` watch on every node whose handler
reads /v1/status/leader and moves a `consul-leader=true` tag — delete the old, create the new —
with no fencing. It uses core's adapters, so only the decisions differ from the fenced handoff.
"""

from __future__ import annotations

from collections.abc import Generator

from tagjoin.core.aws.tag_store import TagStore
from tagjoin.core.consul.client import ConsulClient
from tagjoin.core.handoff import Checkpoint
from tagjoin.core.model import leader_address

NAIVE_VALUE = "true"


def naive_pass(consul: ConsulClient, store: TagStore) -> Generator[Checkpoint, None, str]:
    """One handler run; returns what it did, for the trace."""
    key = store.scope.tag_key
    yield Checkpoint("consul:status/leader")
    leader = consul.leader()
    if leader is None:
        return "no leader"
    address = leader_address(leader)
    yield Checkpoint("ec2:DescribeInstances")
    holders = store.tagged_instances(key=key, value=NAIVE_VALUE)
    if [i.private_ip for i in holders] == [address]:
        return "in sync"
    for old in holders:
        if old.private_ip != address:
            yield Checkpoint(f"ec2:DeleteTags {old.instance_id}")
            store.delete_tag_if(old.instance_id, key, NAIVE_VALUE)
    if any(i.private_ip == address for i in holders):
        return "removed extra tags"
    yield Checkpoint("ec2:DescribeInstances")
    target = store.instance_by_ip(address)
    yield Checkpoint(f"ec2:CreateTags {target.instance_id}")
    store.create_tag(target.instance_id, key, NAIVE_VALUE)
    return f"moved tag to {target.instance_id}"
