"""EC2 instances of the cluster in any state, keyed by instance id, tagged non-members included."""

from __future__ import annotations

from rich.text import Text

from core.model import MemberStatus
from core.view import ClusterView
from tui.style import TAG_MARK, Palette
from tui.widgets.keyed_table import Cells, KeyedTable


def instance_rows(view: ClusterView, palette: Palette) -> list[tuple[str, Cells]]:
    members = {r.instance.instance_id: r for r in view.rows if r.instance is not None}
    leader_id = view.leader_instance.instance_id if view.leader_instance else None
    out: list[tuple[str, Cells]] = []
    for inst in view.instances:
        value = inst.tags.get(view.tag_key)
        row = members.get(inst.instance_id)
        if value is None:
            tag = Text("—", style=palette.dim)
        elif inst.instance_id == leader_id and inst.running:
            tag = Text(f"{TAG_MARK} {value}", style=palette.ok)
        else:
            tag = Text(f"{TAG_MARK} {value}", style=palette.err if inst.running else palette.warn)
        if row is None:
            member = Text("not a member", style=palette.warn if value is not None else palette.dim)
        elif row.status in (MemberStatus.ALIVE, MemberStatus.LEAVING):
            member = Text(row.name)
        else:
            member = Text(f"{row.name} ({row.status.label})", style=palette.dim)
        others = ", ".join(f"{k}={v}" for k, v in sorted(inst.tags.items()) if k != view.tag_key)
        out.append(
            (
                inst.instance_id,
                (
                    Text(inst.instance_id),
                    Text(inst.private_ip or "—"),
                    Text(inst.state, style=palette.ok if inst.running else palette.warn),
                    tag,
                    member,
                    Text(others, style=palette.dim),
                ),
            )
        )
    return out


class InstancesTable(KeyedTable):
    COLUMNS = (
        ("instance", "Instance"),
        ("ip", "Private IP"),
        ("state", "State"),
        ("tag", "Tag"),
        ("member", "Member"),
        ("tags", "Other tags"),
    )
    KEY_COLUMN = "instance"

    def show(self, view: ClusterView, palette: Palette) -> None:
        self.sync(instance_rows(view, palette))
