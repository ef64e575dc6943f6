"""EC2 instances of the cluster in any state, keyed by instance id, tagged non-members included."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.text import Text

from tagjoin.core.model import Instance, MemberStatus, parse_term
from tagjoin.core.view import ClusterView
from tagjoin.tui.style import TAG_MARK, Palette
from tagjoin.tui.widgets.keyed_table import Cells, KeyedTable


@dataclass(frozen=True)
class InstanceLine:
    """Everything one row shows; equal lines render equal cells."""

    inst: Instance
    tag_key: str
    leads: bool  # the raft leader's instance
    member: str | None  # the member with its address
    status: MemberStatus | None


def instance_lines(view: ClusterView) -> list[tuple[str, InstanceLine]]:
    members = {r.instance.instance_id: r for r in view.rows if r.instance is not None}
    leader_id = view.leader_instance.instance_id if view.leader_instance else None
    out: list[tuple[str, InstanceLine]] = []
    for inst in view.instances:
        row = members.get(inst.instance_id)
        line = InstanceLine(
            inst,
            view.tag_key,
            inst.instance_id == leader_id,
            row.name if row else None,
            row.status if row else None,
        )
        out.append((inst.instance_id, line))
    return out


def instance_cells(line: InstanceLine, palette: Palette) -> Cells:
    inst = line.inst
    value = inst.tags.get(line.tag_key)
    if value is None:
        tag = Text("—", style=palette.dim)
    elif line.leads and inst.running:
        tag = Text(f"{TAG_MARK} {value}", style=palette.ok)
    else:
        tag = Text(f"{TAG_MARK} {value}", style=palette.err if inst.running else palette.warn)
    if line.member is None or line.status is None:
        member = Text("not a member", style=palette.warn if value is not None else palette.dim)
    elif line.status in (MemberStatus.ALIVE, MemberStatus.LEAVING):
        member = Text(line.member)
    else:
        member = Text(f"{line.member} ({line.status.label})", style=palette.dim)
    others = ", ".join(f"{k}={v}" for k, v in sorted(inst.tags.items()) if k != line.tag_key)
    return (
        Text(inst.instance_id),
        Text(inst.private_ip or "—"),
        Text(inst.state, style=palette.ok if inst.running else palette.warn),
        tag,
        member,
        Text(others, style=palette.dim),
    )


def instance_rows(view: ClusterView, palette: Palette) -> list[tuple[str, Cells]]:
    return [(key, instance_cells(line, palette)) for key, line in instance_lines(view)]


SORTS: dict[str, Callable[[InstanceLine], Any]] = {
    "instance": lambda line: line.inst.instance_id,
    "ip": lambda line: (line.inst.private_ip or "~", line.inst.instance_id),
    "state": lambda line: (line.inst.state, line.inst.instance_id),
    "tag": lambda line: (-(parse_term(line.inst.tags.get(line.tag_key)) or -1), line.inst.instance_id),
    "member": lambda line: (line.member or "~", line.inst.instance_id),
    "tags": lambda line: (sorted(line.inst.tags.items()), line.inst.instance_id),
}


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
    DROP_ORDER = ("tags", "ip", "member")

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.sort_column = "instance"
        self.sort_reverse = False

    def sort_by(self, column: str) -> None:
        if column not in SORTS:
            return
        if column == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column, False

    @property
    def sort_label(self) -> str:
        return f"{dict(self.COLUMNS).get(self.sort_column, self.sort_column)} {'↓' if self.sort_reverse else '↑'}"

    def show(self, view: ClusterView, palette: Palette) -> None:
        lines = instance_lines(view)
        if self.sort_column != "instance" or self.sort_reverse:
            lines.sort(key=lambda kv: SORTS[self.sort_column](kv[1]), reverse=self.sort_reverse)
        self.sync_sources(lines, lambda line: instance_cells(line, palette), style=palette)
