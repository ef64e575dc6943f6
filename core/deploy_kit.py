"""The deployment kit: IAM policies and roles, systemd unit, boot script, retry_join (watch config opt-in).

One writer per node: the kit's keeper is `tagjoin keep` (a systemd unit). The consul watch config
is written only on request (`--with-watches`), to run *instead of* the keeper, never beside it:
two writers on one node would race each other for the same tag, doubling the EC2 calls and the
moments where the tag is briefly wrong.
"""

from __future__ import annotations

import shlex

from tagjoin.core.kit_iam import client_policy, cloudformation_template, dumps, server_policy
from tagjoin.core.kit_readme import kit_readme
from tagjoin.core.kit_systemd import TOKEN_SOURCE, check_bin, systemd_unit
from tagjoin.core.settings import Scope

DEFAULT_BIN = "/usr/local/bin/tagjoin"


def iam_policy(scope: Scope, *, region: str | None = None, account: str | None = None) -> dict[str, object]:
    """The servers' policy (see kit_iam for why each condition is there)."""
    return server_policy(scope, region=region, account=account)


def watch_config(scope: Scope, *, region: str | None = None, bin_path: str = DEFAULT_BIN) -> dict[str, object]:
    """Both watch types: `nodes` misses crashes, `checks` on critical catches them.

    The handler runs as Consul's user with Consul's environment, so everything it needs is on its
    command line: without a region it exits 2 on every event (and a non-zero exit stops
    `consul watch`); without a token every pass meets a 403 once ACLs are on.
    """
    args = [bin_path, "watch-handler", *_env_args(scope, region)]
    return {
        "watches": [
            {"type": "nodes", "handler_type": "script", "args": args},
            {"type": "checks", "state": "critical", "handler_type": "script", "args": list(args)},
        ]
    }


def _env_args(scope: Scope, region: str | None) -> list[str]:
    args = ["--tag-key", scope.tag_key]
    if scope.cluster is not None:
        args += ["--cluster", scope.cluster]
    if region is not None:
        args += ["--region", region]
    return [*args, "--token-file", TOKEN_SOURCE]


def retry_join_line(scope: Scope, region: str | None, auto_join_tag: tuple[str, str] | None = None) -> str:
    """Consul's native auto-join matches one exact tag value, so it cannot follow a term-valued
    leader tag; it serves as the fallback after the addresses `tagjoin targets --format flags`
    puts first on the command line. By default it matches every instance of the cluster;
    `auto_join_tag` narrows it to a tag the servers alone carry, which a fleet of hundreds of
    clients needs: Consul's retry_join push-pulls the whole member list with every address the
    auto-join finds, on every boot."""
    where = f" region={region}" if region else ""
    if auto_join_tag is not None:
        key, value = auto_join_tag
        return (
            "# Leader first (boot-join.sh passes tagjoin's targets as -retry-join), then the instances\n"
            f"# tagged {key}={value}:\n"
            f'retry_join = ["provider=aws tag_key={key} tag_value={value}{where} addr_type=private_v4"]\n'
        )
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


def boot_snippet(scope: Scope, *, region: str | None, bin_path: str, bootstrap_expect: int | None) -> str:
    """Consul starts whatever tagjoin says or fails to say: a new cluster has nothing to join."""
    args = [bin_path, "boot-plan", "--tag-key", scope.tag_key]
    if scope.cluster is not None:
        args += ["--cluster", scope.cluster, "--fallback-tag", f"{scope.cluster_tag_key}={scope.cluster}"]
    if region is not None:
        args += ["--region", region]
    expect = "" if bootstrap_expect is None else str(bootstrap_expect)
    return (
        "#!/bin/sh\n"
        "# Boot: join the leader tag's holder, else any other member of the cluster, else start anyway and\n"
        "# let retry_join (retry-join.hcl) and bootstrap_expect form the cluster. Consul always starts.\n"
        "# Servers: BOOTSTRAP_EXPECT=<number of servers>; clients: BOOTSTRAP_EXPECT= (empty).\n"
        f'BOOTSTRAP_EXPECT="${{BOOTSTRAP_EXPECT-{expect}}}"\n'
        'server_flags=""\n'
        'fallback=""\n'
        'if [ -n "$BOOTSTRAP_EXPECT" ]; then\n'
        '    server_flags="--bootstrap-expect $BOOTSTRAP_EXPECT"\n'
        '    fallback="-server -bootstrap-expect=$BOOTSTRAP_EXPECT"\n'
        "fi\n"
        f"if ! args=$({shlex.join(args)} $server_flags); then\n"
        '    echo "boot-join: tagjoin boot-plan failed; starting Consul on its own retry_join" >&2\n'
        '    args="$fallback"\n'
        "fi\n"
        "exec consul agent -config-dir=/etc/consul.d $args\n"
    )


def build_kit(
    scope: Scope,
    *,
    region: str,
    account: str | None = None,
    bin_path: str = DEFAULT_BIN,
    bootstrap_expect: int | None = None,
    with_watches: bool = False,
    auto_join_tag: tuple[str, str] | None = None,
) -> dict[str, str]:
    """The kit's files by name. `boot-join.sh` is the one to be written executable."""
    check_bin(bin_path)
    kit = {
        "iam-policy-server.json": dumps(server_policy(scope, region=region, account=account)),
        "iam-policy-client.json": dumps(client_policy(region)),
        "cloudformation.json": dumps(cloudformation_template(scope)),
        "tagjoin-keep.service": systemd_unit(scope, region, bin_path),
        "retry-join.hcl": retry_join_line(scope, region, auto_join_tag),
        "boot-join.sh": boot_snippet(scope, region=region, bin_path=bin_path, bootstrap_expect=bootstrap_expect),
    }
    if with_watches:
        kit["consul-watches.json"] = dumps(watch_config(scope, region=region, bin_path=bin_path))
    kit["README.md"] = kit_readme(scope, region=region, with_watches=with_watches)
    return kit
