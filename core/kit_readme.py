"""The README written beside the deploy kit's files: how to install them, and what was not checked."""

from __future__ import annotations

from tagjoin.core.settings import Scope


def kit_readme(scope: Scope, *, region: str, with_watches: bool) -> str:
    cluster = scope.cluster or "(none: pass --cluster)"
    watches = (
        "- `consul-watches.json`: written because `--with-watches` was given. Use it *instead of* the keep\n"
        "  unit on a node, never beside it (see below). Each handler gets `--region` and `--token-file` on\n"
        "  its command line: it runs with Consul's environment, not the unit's.\n"
        if with_watches
        else ""
    )
    return f"""# consul-tagjoin deploy kit

Cluster `{cluster}`, region `{region}`, leader tag `{scope.tag_key}`, cluster tag `{scope.cluster_tag_key}`.

## Files

- `boot-join.sh` (executable): run it in place of `consul agent`. It asks `tagjoin boot-plan` what to
  join (the leader tag's holder, else any other member of the cluster) and starts Consul with that.
  When nothing answers yet (a brand-new cluster) or tagjoin fails, Consul still starts: its own
  `retry_join` (`retry-join.hcl`) keeps looking, and on servers `BOOTSTRAP_EXPECT` forms the cluster.
  Set `BOOTSTRAP_EXPECT` to the number of servers on servers, and to empty on clients.
- `retry-join.hcl`: copy into Consul's config directory (`/etc/consul.d`). Consul's own discovery
  lists this node too, and Consul counts joining itself as success; boot-plan's explicit
  `-retry-join` addresses, which never include this node, are what make the first join real.
  Consul's retry_join exchanges the whole member list with every address the auto-join finds, on
  every boot: with hundreds of clients, write the kit with `--auto-join-tag KEY=VALUE` naming a
  tag only the servers carry.
- `tagjoin-keep.service`: the keeper, for servers only (clients never lead). Put the Consul ACL
  token in `/etc/tagjoin/consul-token` (owner root, mode 0600); systemd hands the service a private
  copy (`LoadCredential=`), so the service's dynamic user never needs to own it. A configuration
  error exits 2 and is not restarted: `journalctl -u tagjoin-keep` shows the one line.
- `iam-policy-server.json`: servers read and move the leader tag, only on instances of this cluster.
- `iam-policy-client.json`: clients only read.
- `cloudformation.json`: both roles and their instance profiles, with the same policies; the stack
  fills in its own region and account.
{watches}
## One writer per node

The kit ships `tagjoin keep` and leaves the consul watch config out unless asked: a node running
both would have two writers of the same tag, racing each other, doubling the EC2 calls and the
moments where the tag points at a node that is no longer leader. `keep` is the one shipped because it
also catches what a watch misses (a leader change with no membership or check change) and retries
on its own, while a watch handler that exits non-zero stops `consul watch` for good.

## What the IAM policy grants, and what was checked

The writes are allowed only for the leader tag key, only on instances tagged
`{scope.cluster_tag_key}={cluster}`, only in this region and account. A DeleteTags that names no tag
(which EC2 takes as "every tag") is refused by the `Null` condition on `aws:TagKeys`. The tag's value
is not constrained: IAM cannot know the Raft term, so a server could write any number; the fence
(`tagjoin keep` compares terms) is what keeps a stale value out.

The project's tests run parliament over both policies and cfn-lint over the template, and evaluate
each condition against allowed and refused requests. They run against moto, which **does not check
IAM conditions** (nor resource ARNs for EC2): a request that the real policy refuses succeeds there.
Before relying on the policy, try it once in a real account, e.g. with the IAM policy simulator or a
DeleteTags without tags from a server instance, which must fail with UnauthorizedOperation.
"""
