from __future__ import annotations

import json
import re

from tagjoin.core.deploy_kit import build_kit, iam_policy, watch_config
from tagjoin.core.discover import parse_discover
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
    assert all(w["args"][:2] == ["/usr/local/bin/tagjoin", "watch-handler"] and "handler" not in w for w in watches)


def test_watch_config_carries_region_and_token_file() -> None:
    """The handler gets Consul's environment, not ours: without these it exits 2 or meets a 403."""
    watches = watch_config(Scope(cluster="prod"), region="eu-west-1")["watches"]
    assert isinstance(watches, list) and len(watches) == 2
    for watch in watches:
        args = watch["args"]
        assert args[args.index("--region") + 1] == "eu-west-1"
        assert args[args.index("--token-file") + 1] == "/etc/tagjoin/consul-token"


def test_one_writer_per_node_the_watches_are_opt_in() -> None:
    assert "consul-watches.json" not in build_kit(Scope(cluster="prod"), region="eu-west-1")
    assert "consul-watches.json" in build_kit(Scope(cluster="prod"), region="eu-west-1", with_watches=True)


def test_kit_files_parse_and_name_the_cluster() -> None:
    kit = build_kit(Scope(cluster="prod"), region="eu-west-1", with_watches=True)
    json.loads(kit["iam-policy-server.json"])
    json.loads(kit["iam-policy-client.json"])
    json.loads(kit["consul-watches.json"])
    assert "AWSTemplateFormatVersion" in json.loads(kit["cloudformation.json"])
    assert "ExecStart=/usr/local/bin/tagjoin keep" in kit["tagjoin-keep.service"]
    assert "Environment=TAGJOIN_CLUSTER=prod" in kit["tagjoin-keep.service"]
    assert "tag_value=prod region=eu-west-1" in kit["retry-join.hcl"]
    assert "/usr/local/bin/tagjoin boot-plan --tag-key consul-leader --cluster prod" in kit["boot-join.sh"]
    assert kit["boot-join.sh"].rstrip().endswith("exec consul agent -config-dir=/etc/consul.d $args")


def test_the_auto_join_can_be_narrowed_to_a_tag_the_servers_carry() -> None:
    default = build_kit(Scope(cluster="prod"), region="eu-west-1")["retry-join.hcl"]
    narrowed = build_kit(Scope(cluster="prod"), region="eu-west-1", auto_join_tag=("consul-server", "prod"))
    for hcl, key in ((default, "consul-cluster"), (narrowed["retry-join.hcl"], "consul-server")):
        [entry] = re.findall(r'retry_join = \["([^"]*)"\]', hcl)
        spec = parse_discover(entry)
        assert (spec.tag_key, spec.tag_value, spec.region) == (key, "prod", "eu-west-1")
    assert "--auto-join-tag" in narrowed["README.md"]
