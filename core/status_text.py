"""Plain-text rendering of the cluster view for `tagjoin status`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tagjoin.core.raft_view import RaftPicture
from tagjoin.core.view import ClusterView


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in [headers, *rows]]
    return "\n".join(lines) + "\n"


def status_json(view: ClusterView, raft: RaftPicture | None = None, term: int | None = None) -> dict[str, Any]:
    out = view.to_json()
    out["leader"]["term"] = term
    if raft is not None:
        out["raft"] = raft.to_json()
    return out


def render_raft(raft: RaftPicture) -> str:
    if not raft.known:
        why = "; ".join(f"{p.what}: {p.reason}" for p in raft.problems) or "not read"
        return f"raft: configuration unknown ({why})\n"
    if raft.autopilot_healthy is None:
        problem = raft.problem("autopilot health")
        autopilot = f"autopilot unknown ({problem.reason})" if problem else "autopilot not read"
    else:
        autopilot = "autopilot healthy" if raft.autopilot_healthy else "AUTOPILOT UNHEALTHY"
    head = f"raft: {raft.summary()} · {autopilot}"
    if raft.stale:
        head += " (configuration read with ?stale: no leader confirms it)"
    elif not raft.has_quorum:
        head += " · QUORUM LOST"
    rows = table(
        ["SERVER", "ROLE", "SERF", "HEALTH", "LAST CONTACT", "LAST INDEX", "NOTE"],
        [
            [
                s.node,
                s.role.value,
                s.serf_status or "-",
                "-" if s.healthy is None else "healthy" if s.healthy else "UNHEALTHY",
                "-" if s.last_contact is None else f"{s.last_contact * 1000:.0f}ms",
                "-" if s.last_index is None else str(s.last_index),
                s.reason,
            ]
            for s in raft.servers
        ],
    )
    return f"{head}\n\n{rows}"


def render_status(view: ClusterView, raft: RaftPicture | None = None, term: int | None = None) -> str:
    if view.leader_address is None:
        head = "leader: none"
    else:
        inst = view.leader_instance.instance_id if view.leader_instance else "no instance"
        agrees = "tag agrees" if view.tag_agrees else "TAG DISAGREES"
        term_text = f" term {term}" if term is not None else ""
        head = f"leader: {view.leader_node or '?'} {view.leader_address} {inst}{term_text} ({agrees})"
    if raft is not None:
        head += "\n" + render_raft(raft).rstrip("\n")
    members = table(
        ["NODE", "ADDRESS", "STATUS", "ROLE", "INSTANCE", "STATE", view.tag_key.upper()],
        [
            [
                r.name + (" *" if r.is_leader else ""),
                r.address,
                r.status.label,
                r.role,
                r.instance.instance_id if r.instance else "-",
                r.instance.state if r.instance else "-",
                r.tag_value or "-",
            ]
            for r in view.rows
        ],
    )
    holders = ", ".join(f"{i.instance_id}={i.tags[view.tag_key]} ({i.state})" for i in view.tag_holders) or "none"
    findings = (
        "".join(f"  {f.severity.label.upper():8} {f.message}\n  {'':8} remedy: {f.remedy}\n" for f in view.findings)
        or "  none\n"
    )
    return f"{head}\n\n{members}\ntagged instances: {holders}\n\ndrift:\n{findings}"
