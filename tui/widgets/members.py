"""The members table: one row per Consul member, keyed by node name."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from tagjoin.core.view import NodeRow
from tagjoin.tui.style import LEADER_MARK, TAG_MARK, Palette, status_text
from tagjoin.tui.widgets.keyed_table import Cells, KeyedTable


def matches(row: NodeRow, query: str) -> bool:
    """Case-insensitive substring over what an operator would type: name, address, status, role, instance."""
    q = query.strip().lower()
    if not q:
        return True
    fields = [row.name, row.address, row.status.label, row.role]
    if row.instance is not None:
        fields += [row.instance.instance_id, row.instance.state]
    return any(q in f.lower() for f in fields)


def member_cells(row: NodeRow, palette: Palette) -> Cells:
    inst = row.instance
    holds = inst is not None and row.tag_value is not None and inst.running
    mark = (LEADER_MARK if row.is_leader else " ") + (TAG_MARK if holds else " ")
    mark_style = palette.ok if row.is_leader == holds else palette.err
    if row.tag_value is None:
        tag = Text("—", style=palette.dim)
    else:
        # A tag on anything but the leader's running instance is drift.
        tag = Text(row.tag_value, style=palette.ok if row.is_leader and holds else palette.warn)
    state_style = palette.ok if inst is not None and inst.running else palette.warn
    return (
        Text(mark, style=f"bold {mark_style}"),
        Text(row.name, style="bold" if row.is_leader else ""),
        Text(row.address),
        status_text(row.status, palette),
        Text(row.role),
        Text(inst.instance_id if inst else "—", style="" if inst else palette.dim),
        Text(inst.state if inst else "—", style=state_style if inst else palette.dim),
        tag,
    )


class MembersTable(KeyedTable):
    COLUMNS = (
        ("mark", "  "),
        ("name", "Node"),
        ("address", "Address"),
        ("status", "Status"),
        ("role", "Role"),
        ("instance", "Instance"),
        ("state", "State"),
        ("tag", "Tag"),
    )
    KEY_COLUMN = "name"

    def show(self, rows: Sequence[NodeRow], query: str, palette: Palette, tag_key: str) -> None:
        shown = [(r.name, r) for r in rows if matches(r, query)]
        self.sync_sources(shown, lambda row: member_cells(row, palette), style=palette)
