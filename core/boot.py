"""What a booting agent joins, decided once for `boot-join.sh` and for the simulator's booting nodes.

The one rule that matters: Consul always starts. A brand-new cluster has no leader tag, and a
boot step that gave up there would keep the cluster from ever forming (no agent, no leader, no
tag). So the plan falls from the leader tag's holders, to any other member of the cluster, to
nothing at all; in that last case the agent starts on its own `retry_join` (retry-join.hcl) and,
on a server, `bootstrap_expect` forms the cluster once enough servers are up.

The lookups are injected callables, so the decision itself reads no clock, no network and no
environment: the CLI passes the EC2 tag store, the simulator passes its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from tagjoin.core.discover import select_targets, why_no_targets
from tagjoin.core.errors import ConfigError, TagjoinError
from tagjoin.core.model import Instance

Lookup = Callable[[], Sequence[Instance]]


class BootMode(StrEnum):
    JOIN_LEADER = "join-leader"  # the leader tag points at a running instance other than this one
    JOIN_MEMBER = "join-member"  # no usable tag: any other running member of the cluster
    FORM = "form"  # nothing to join yet: start, retry_join from the config dir, bootstrap_expect forms it


@dataclass(frozen=True)
class BootPlan:
    mode: BootMode
    join: tuple[str, ...]
    server: bool
    bootstrap_expect: int | None
    reasons: tuple[str, ...]  # why the plan fell past the leader tag (empty when it joins the leader)

    def agent_args(self) -> list[str]:
        """Arguments for `consul agent`, after the operator's own `-config-dir`."""
        args = [f"-retry-join={addr}" for addr in self.join]
        if self.server:
            args.append("-server")
        if self.bootstrap_expect is not None:
            # Given on every server whatever the mode: Consul wants the same value on all servers, and
            # ignores it on a server with Raft data or one that finds existing peers.
            args.append(f"-bootstrap-expect={self.bootstrap_expect}")
        return args

    def to_json(self) -> dict[str, object]:
        return {
            "mode": self.mode.value,
            "join": list(self.join),
            "server": self.server,
            "bootstrap_expect": self.bootstrap_expect,
            "args": self.agent_args(),
            "reasons": list(self.reasons),
        }

    def render(self, fmt: str) -> str:
        if fmt == "flags":
            return " ".join(self.agent_args()) + "\n"
        if fmt == "json":
            return json.dumps(self.to_json()) + "\n"
        raise ConfigError(f"unknown output format {fmt!r}; use flags or json")


def plan_boot(
    leader_holders: Lookup,
    cluster_members: Lookup | None,
    *,
    tag_key: str,
    own_addresses: Iterable[str] = (),
    addr_type: str = "private_v4",
    server: bool = False,
    bootstrap_expect: int | None = None,
) -> BootPlan:
    """Join the leader tag's holder, else any other cluster member, else form: never "don't start".

    A failed lookup (EC2 throttled, denied, unreachable) is a reason, not an error: the
    agent must still start, and its own retry_join keeps looking. Bad configuration (ConfigError)
    is not caught; it fails the command, and boot-join.sh starts Consul anyway.
    """
    if bootstrap_expect is not None and bootstrap_expect < 1:
        raise ConfigError(f"bootstrap_expect must be 1 or more, got {bootstrap_expect}")
    is_server = server or bootstrap_expect is not None
    own = set(own_addresses)
    reasons: list[str] = []

    holders = _looked_up(leader_holders, f"the {tag_key} tag", reasons)
    picked = select_targets(holders, tag_key=tag_key, own_addresses=own, addr_type=addr_type)
    if picked.addresses:
        return BootPlan(BootMode.JOIN_LEADER, picked.addresses, is_server, bootstrap_expect, ())
    if holders:
        reasons.append(why_no_targets(holders, tag_key=tag_key, own_addresses=own, addr_type=addr_type))
    elif not reasons:
        reasons.append(f"no running instance carries tag {tag_key}")

    if cluster_members is not None:
        members = _looked_up(cluster_members, "the cluster's members", reasons)
        spare = select_targets((), tag_key=tag_key, own_addresses=own, addr_type=addr_type, fallback=members)
        if spare.addresses:
            return BootPlan(BootMode.JOIN_MEMBER, spare.addresses, is_server, bootstrap_expect, tuple(reasons))
        reasons.append("no other running member of the cluster has an address")
    return BootPlan(BootMode.FORM, (), is_server, bootstrap_expect, tuple(reasons))


def _looked_up(lookup: Lookup, what: str, reasons: list[str]) -> list[Instance]:
    try:
        return list(lookup())
    except ConfigError:
        raise
    except TagjoinError as exc:
        reasons.append(f"could not read {what}: {exc}")
        return []
