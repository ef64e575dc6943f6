"""The deployment kit: least-privilege IAM policy, consul watch config, systemd unit, retry_join."""

from __future__ import annotations

import json

from tagjoin.core.settings import Scope


def iam_policy(scope: Scope) -> dict[str, object]:
    """The reads cannot be scoped to resources; the writes are, by cluster tag and tag key.

    DescribeTags is what `tagjoin targets` asks first; without it, targets falls back to the slower
    single DescribeInstances lookup.
    """
    write: dict[str, object] = {
        "Sid": "MoveLeaderTagWithinCluster",
        "Effect": "Allow",
        "Action": ["ec2:CreateTags", "ec2:DeleteTags"],
        "Resource": "arn:aws:ec2:*:*:instance/*",
        "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": [scope.tag_key]}},
    }
    if scope.cluster is not None:
        write["Condition"] = {
            "StringEquals": {f"aws:ResourceTag/{scope.cluster_tag_key}": scope.cluster},
            "ForAllValues:StringEquals": {"aws:TagKeys": [scope.tag_key]},
        }
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "FindJoinTargets",
                "Effect": "Allow",
                "Action": ["ec2:DescribeInstances", "ec2:DescribeTags"],
                "Resource": "*",
            },
            write,
        ],
    }


def watch_config(scope: Scope) -> dict[str, object]:
    """Both watch types: `nodes` misses crashes, `checks` on critical catches them."""
    env = _env_args(scope)
    return {
        "watches": [
            {"type": "nodes", "handler_type": "script", "args": ["tagjoin", "watch-handler", *env]},
            {
                "type": "checks",
                "state": "critical",
                "handler_type": "script",
                "args": ["tagjoin", "watch-handler", *env],
            },
        ]
    }


def _env_args(scope: Scope) -> list[str]:
    args = ["--tag-key", scope.tag_key]
    if scope.cluster is not None:
        args += ["--cluster", scope.cluster]
    return args


def systemd_unit(scope: Scope, region: str | None) -> str:
    env = [f"Environment=TAGJOIN_TAG_KEY={scope.tag_key}"]
    if scope.cluster is not None:
        env.append(f"Environment=TAGJOIN_CLUSTER={scope.cluster}")
    if region:
        env.append(f"Environment=AWS_REGION={region}")
    lines = [
        "[Unit]",
        "Description=consul-tagjoin keeper: moves the leader tag with Raft leadership",
        "After=consul.service network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        *env,
        "# The ACL token belongs in a file readable only by this service, never in the unit.",
        "Environment=CONSUL_HTTP_TOKEN_FILE=/etc/tagjoin/consul-token",
        "ExecStart=/usr/local/bin/tagjoin keep --interval 1s --anti-entropy 60s",
        "Restart=always",
        "RestartSec=5",
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def retry_join_line(scope: Scope, region: str | None) -> str:
    """Consul's native auto-join matches one exact tag value, so it cannot follow a term-valued
    leader tag; it serves as the fallback over every instance of the cluster, after the
    addresses `tagjoin targets --format flags` puts first on the command line."""
    where = f" region={region}" if region else ""
    if scope.cluster is None:
        return (
            "# Set --cluster to get a fallback over every instance of the cluster; meanwhile join\n"
            "# with the flags from `tagjoin targets --format flags` (see boot-join.sh).\n"
        )
    return (
        "# Leader first (boot-join.sh passes tagjoin's targets as -retry-join), then any cluster member:\n"
        f'retry_join = ["provider=aws tag_key={scope.cluster_tag_key} tag_value={scope.cluster}'
        f'{where} addr_type=private_v4"]\n'
    )


def boot_snippet(scope: Scope) -> str:
    cluster = f" --cluster {scope.cluster}" if scope.cluster else ""
    return (
        "#!/bin/sh\n"
        "# Boot: join whatever the leader tag points to; exit 3 means nothing to join yet.\n"
        f"targets=$(tagjoin targets --format flags --tag-key {scope.tag_key}{cluster}) || exit $?\n"
        "exec consul agent -config-dir=/etc/consul.d $targets\n"
    )


def build_kit(scope: Scope, *, region: str | None) -> dict[str, str]:
    return {
        "iam-policy.json": json.dumps(iam_policy(scope), indent=2) + "\n",
        "consul-watches.json": json.dumps(watch_config(scope), indent=2) + "\n",
        "tagjoin-keep.service": systemd_unit(scope, region),
        "retry-join.hcl": retry_join_line(scope, region),
        "boot-join.sh": boot_snippet(scope),
    }
