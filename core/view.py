"""The cluster view: leader, members, instances and tags joined by address, plus drift findings.

Pure functions over plain data, shared by `tagjoin status` and the console.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any

from tagjoin.core.model import Instance, Member, MemberStatus, leader_address


class Severity(IntEnum):
    INFO = 0
    WARNING = 1
    CRITICAL = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Finding:
    severity: Severity
    code: str
    message: str
    subject: str | None = None  # node name or instance id the finding is about
    remedy: str = ""  # what an operator does about it

    def to_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity.label,
            "code": self.code,
            "message": self.message,
            "subject": self.subject,
            "remedy": self.remedy,
        }


@dataclass(frozen=True)
class NodeRow:
    """One member, with the instance that has its address (if any)."""

    name: str
    address: str
    status: MemberStatus
    role: str  # server / client
    instance: Instance | None
    tag_value: str | None
    is_leader: bool
    serf_tags: tuple[tuple[str, str], ...] = ()  # the member's gossip tags, sorted by key

    def serf_tag(self, key: str) -> str | None:
        return next((v for k, v in self.serf_tags if k == key), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "status": self.status.label,
            "role": self.role,
            "instance_id": self.instance.instance_id if self.instance else None,
            "instance_state": self.instance.state if self.instance else None,
            "tag": self.tag_value,
            "leader": self.is_leader,
        }


@dataclass(frozen=True)
class ClusterView:
    leader_address: str | None
    leader_node: str | None
    leader_instance: Instance | None
    rows: tuple[NodeRow, ...]
    instances: tuple[Instance, ...]
    tag_holders: tuple[Instance, ...]
    findings: tuple[Finding, ...]
    tag_key: str

    @property
    def tag_agrees(self) -> bool:
        """The leader's instance holds the tag, and no running instance else does."""
        if self.leader_instance is None:
            return False
        running = [i for i in self.tag_holders if i.running]
        return [i.instance_id for i in running] == [self.leader_instance.instance_id]

    @property
    def worst(self) -> Severity | None:
        return self.findings[0].severity if self.findings else None

    def to_json(self) -> dict[str, Any]:
        return {
            "leader": {
                "address": self.leader_address,
                "node": self.leader_node,
                "instance_id": self.leader_instance.instance_id if self.leader_instance else None,
                "tag_agrees": self.tag_agrees,
            },
            "members": [r.to_json() for r in self.rows],
            "instances": [
                {
                    "instance_id": i.instance_id,
                    "private_ip": i.private_ip,
                    "state": i.state,
                    "tag": i.tags.get(self.tag_key),
                }
                for i in self.instances
            ],
            "findings": [f.to_json() for f in self.findings],
        }


def build_view(
    leader: str | None,
    members: Sequence[Member],
    instances: Sequence[Instance],
    tag_key: str,
) -> ClusterView:
    """Join members and instances by private address and list the drift, worst first.

    `leader` is the raft address from status/leader (None when there is none); `instances`
    are the cluster's instances in any state, so tags on stopped instances show up too.
    """
    leader_ip = leader_address(leader) if leader else None
    by_ip: dict[str, Instance] = {}
    for inst in sorted(instances, key=lambda i: (i.state == "terminated", i.instance_id)):
        if inst.private_ip and inst.private_ip not in by_ip:
            by_ip[inst.private_ip] = inst
    rows = tuple(
        NodeRow(
            name=m.name,
            address=m.addr,
            status=m.status,
            role="server" if m.is_server else "client",
            instance=by_ip.get(m.addr),
            tag_value=by_ip[m.addr].tags.get(tag_key) if m.addr in by_ip else None,
            is_leader=m.addr == leader_ip,
            serf_tags=tuple(sorted(m.tags.items())),
        )
        for m in sorted(members, key=lambda m: m.name)
    )
    leader_row = next((r for r in rows if r.is_leader), None)
    leader_instance = by_ip.get(leader_ip) if leader_ip else None
    holders = tuple(sorted((i for i in instances if tag_key in i.tags), key=lambda i: i.instance_id))
    findings = _findings(leader_ip, leader_row, leader_instance, rows, holders, tag_key)
    return ClusterView(
        leader_address=leader_ip,
        leader_node=leader_row.name if leader_row else None,
        leader_instance=leader_instance,
        rows=rows,
        instances=tuple(sorted(instances, key=lambda i: i.instance_id)),
        tag_holders=holders,
        findings=findings,
        tag_key=tag_key,
    )


def _findings(
    leader_ip: str | None,
    leader_row: NodeRow | None,
    leader_instance: Instance | None,
    rows: tuple[NodeRow, ...],
    holders: tuple[Instance, ...],
    tag_key: str,
) -> tuple[Finding, ...]:
    found: list[Finding] = []
    alive_ips = {r.address for r in rows if r.status == MemberStatus.ALIVE}
    member_ips = {r.address for r in rows if r.status in (MemberStatus.ALIVE, MemberStatus.FAILED)}
    running_holders = [i for i in holders if i.running]
    if leader_ip is None:
        found.append(Finding(Severity.CRITICAL, "no-leader", "the cluster has no leader"))
    elif leader_instance is None:
        name = leader_row.name if leader_row else leader_ip
        found.append(
            Finding(
                Severity.WARNING,
                "leader-no-instance",
                f"no instance has the leader's address {leader_ip}",
                name,
            )
        )
    elif tag_key not in leader_instance.tags:
        sev = Severity.CRITICAL if not any(i.private_ip in alive_ips for i in running_holders) else Severity.WARNING
        found.append(
            Finding(
                sev,
                "leader-untagged",
                f"leader {leader_instance.instance_id} does not carry {tag_key}",
                leader_instance.instance_id,
            )
        )
    for inst in holders:
        value = inst.tags[tag_key]
        if not inst.running:
            found.append(
                Finding(
                    Severity.WARNING,
                    "tag-not-running",
                    f"{inst.instance_id} is {inst.state} but carries {tag_key}={value}",
                    inst.instance_id,
                )
            )
            continue
        if leader_instance is not None and inst.instance_id != leader_instance.instance_id:
            sev = Severity.WARNING if inst.private_ip in alive_ips else Severity.CRITICAL
            found.append(
                Finding(
                    sev,
                    "tag-on-non-leader",
                    f"{inst.instance_id} carries {tag_key}={value} but does not lead",
                    inst.instance_id,
                )
            )
        if inst.private_ip not in member_ips:
            found.append(
                Finding(
                    Severity.WARNING,
                    "tagged-not-member",
                    f"{inst.instance_id} carries {tag_key}={value} but is not a cluster member",
                    inst.instance_id,
                )
            )
    if len(running_holders) > 1:
        terms = ", ".join(f"{i.instance_id}={i.tags[tag_key]}" for i in running_holders)
        found.append(
            Finding(
                Severity.WARNING,
                "several-tags",
                f"{len(running_holders)} running instances carry {tag_key}: {terms}",
            )
        )
    for r in rows:
        if r.instance is None and r.status in (MemberStatus.ALIVE, MemberStatus.FAILED):
            found.append(
                Finding(
                    Severity.INFO,
                    "member-no-instance",
                    f"member {r.name} ({r.address}) has no instance in scope",
                    r.name,
                )
            )
    found.sort(key=lambda f: (-f.severity, f.code, f.subject or ""))
    values = {i.instance_id: i.tags[tag_key] for i in holders}
    return tuple(replace(f, remedy=remedy_for(f, tag_key, values)) for f in found)


def remedy_for(finding: Finding, tag_key: str, values: dict[str, str]) -> str:
    """The operator's next step for a finding; every code `_findings` reports has one."""
    subject = finding.subject or ""
    delete = f"aws ec2 delete-tags --resources {subject} --tags Key={tag_key},Value={values.get(subject, '')}"
    match finding.code:
        case "no-leader":
            return (
                "restore quorum: start the servers that are down; with a majority lost for good, "
                "follow Consul's outage recovery (peers.json). `tagjoin keep` moves the tag once a leader is elected"
            )
        case "leader-no-instance":
            return (
                "check the scope: --cluster/TAGJOIN_CLUSTER and the region must match, "
                "and the leader's instance must carry the cluster tag"
            )
        case "leader-untagged":
            return "run `tagjoin reconcile` on the leader; if the tag stays off, check that `tagjoin keep` runs there"
        case "tag-not-running":
            return f"joiners skip it, but remove it: {delete}"
        case "tag-on-non-leader":
            return (
                "run `tagjoin reconcile` on the leader: it removes the tag, a value above its term too once a quorum "
                f"confirms it after reading the tags; if the tag stays, remove it by hand: {delete}"
            )
        case "tagged-not-member":
            return f"if {subject} is no node of this cluster, remove its tag ({delete}) and check its cluster tag"
        case "several-tags":
            return "normal for a moment during a handoff; if it lasts, run `tagjoin reconcile` on the leader"
        case "member-no-instance":
            return "tag the member's instance with the cluster tag, or check --cluster/TAGJOIN_CLUSTER and the region"
    return "see docs/design.md §2"
