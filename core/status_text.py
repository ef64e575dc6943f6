"""Plain-text rendering of the cluster view for `tagjoin status`."""

from __future__ import annotations

from collections.abc import Sequence

from tagjoin.core.view import ClusterView


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in [headers, *rows]]
    return "\n".join(lines) + "\n"


def render_status(view: ClusterView) -> str:
    if view.leader_address is None:
        head = "leader: none"
    else:
        inst = view.leader_instance.instance_id if view.leader_instance else "no instance"
        agrees = "tag agrees" if view.tag_agrees else "TAG DISAGREES"
        head = f"leader: {view.leader_node or '?'} {view.leader_address} {inst} ({agrees})"
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
    findings = "".join(f"  {f.severity.label.upper():8} {f.message}\n" for f in view.findings) or "  none\n"
    return f"{head}\n\n{members}\ntagged instances: {holders}\n\ndrift:\n{findings}"
