from __future__ import annotations

import json

from tagjoin.core.deploy_kit import build_kit, iam_policy, watch_config
from tagjoin.core.settings import Scope


def test_iam_policy_scopes_writes_to_cluster_and_tag_key() -> None:
    policy = iam_policy(Scope(cluster="prod"))
    statements = policy["Statement"]
    assert isinstance(statements, list)
    describe, write = statements
    assert describe["Action"] == ["ec2:DescribeInstances", "ec2:DescribeTags"]
    assert write["Action"] == ["ec2:CreateTags", "ec2:DeleteTags"]
    assert write["Condition"]["StringEquals"] == {"aws:ResourceTag/consul-cluster": "prod"}
    assert write["Condition"]["ForAllValues:StringEquals"] == {"aws:TagKeys": ["consul-leader"]}


def test_watch_config_uses_args_for_both_watch_types() -> None:
    watches = watch_config(Scope(cluster="prod"))["watches"]
    assert isinstance(watches, list)
    assert [w["type"] for w in watches] == ["nodes", "checks"]
    assert all(w["args"][:2] == ["tagjoin", "watch-handler"] and "handler" not in w for w in watches)


def test_kit_files_parse_and_name_the_cluster() -> None:
    kit = build_kit(Scope(cluster="prod"), region="eu-west-1")
    json.loads(kit["iam-policy.json"])
    json.loads(kit["consul-watches.json"])
    assert "ExecStart=/usr/local/bin/tagjoin keep" in kit["tagjoin-keep.service"]
    assert "Environment=TAGJOIN_CLUSTER=prod" in kit["tagjoin-keep.service"]
    assert "tag_value=prod region=eu-west-1" in kit["retry-join.hcl"]
    assert "tagjoin targets --format flags" in kit["boot-join.sh"]
