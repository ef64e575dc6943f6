"""The members table: one row per Consul member, keyed by node name, with each server's Raft role."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text

from tagjoin.core.model import MemberStatus, parse_term
from tagjoin.core.raft_view import RaftPicture, Role, ServerLine
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


@dataclass(frozen=True)
class MemberLine:
    """Everything one row shows; equal lines render equal cells."""

    row: NodeRow
    role: str  # leader / voter / non-voter / staging / not in raft, server (unknown), client
    healthy: bool | None = None  # autopilot's verdict for a server


def role_of(row: NodeRow, raft: ServerLine | None, raft_known: bool) -> str:
    if row.role != "server":
        return "client"
    if raft is not None:
        return raft.role.value
    # A server that left is out of the configuration as it should be: nothing to flag.
    gone = row.status in (MemberStatus.LEFT, MemberStatus.NONE)
    return Role.NOT_IN_CONFIG.value if raft_known and not gone else "server"


def roles(raft: RaftPicture | None) -> dict[str, tuple[str, bool | None]]:
    """What the Role column takes from the Raft picture; last index and contact stay out of it."""
    return {s.node: (s.role.value, s.healthy) for s in raft.servers} if raft is not None else {}


def member_lines(rows: Sequence[NodeRow], raft: RaftPicture | None) -> list[MemberLine]:
    lines = {s.node: s for s in raft.servers} if raft is not None else {}
    known = raft is not None and raft.known
    out = []
    for r in rows:
        line = lines.get(r.name)
        out.append(MemberLine(r, role_of(r, line, known), line.healthy if line else None))
    return out


def role_text(line: MemberLine, palette: Palette) -> Text:
    role = line.role
    if line.healthy is False:
        return Text(f"{role} ✖", style=f"bold {palette.err}")
    if role in (Role.NON_VOTER.value, Role.STAGING.value, Role.NOT_IN_CONFIG.value):
        return Text(role, style=f"bold {palette.warn}")
    if role == Role.LEADER.value:
        return Text(role, style=f"bold {palette.accent}")
    return Text(role, style=palette.dim if role == "client" else "")


def member_cells(line: MemberLine, palette: Palette) -> Cells:
    row = line.row
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
        role_text(line, palette),
        Text(inst.instance_id if inst else "—", style="" if inst else palette.dim),
        Text(inst.state if inst else "—", style=state_style if inst else palette.dim),
        tag,
    )


def _ip(text: str) -> tuple[int, int | str]:
    try:
        return (0, int(ipaddress.ip_address(text)))
    except ValueError:
        return (1, text)


_ROLE_ORDER = {"leader": 0, "voter": 1, "staging": 2, "non-voter": 3, "not in raft": 4, "server": 5, "client": 6}

# Sort keys per column; every one ends with the name, so equal values keep a stable order.
SORTS: dict[str, Callable[[MemberLine], Any]] = {
    "name": lambda m: m.row.name,
    "address": lambda m: (_ip(m.row.address), m.row.name),
    "status": lambda m: (m.row.status.label, m.row.name),
    "role": lambda m: (_ROLE_ORDER.get(m.role, 9), m.row.name),
    "instance": lambda m: (m.row.instance.instance_id if m.row.instance else "~", m.row.name),
    "state": lambda m: (m.row.instance.state if m.row.instance else "~", m.row.name),
    "tag": lambda m: (-(parse_term(m.row.tag_value) or -1), m.row.name),
    "mark": lambda m: (not m.row.is_leader, m.row.tag_value is None, m.row.name),
}


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
    # The Tag column is what the console is about; the instance's state and the address repeat
    # what the EC2 table and the node name say.
    DROP_ORDER = ("state", "address", "instance")

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.sort_column = "name"
        self.sort_reverse = False

    def sort_by(self, column: str) -> None:
        """Sort by `column`; the same column again reverses the order."""
        if column not in SORTS:
            return
        if column == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column, False

    @property
    def sort_label(self) -> str:
        label = dict(self.COLUMNS).get(self.sort_column, self.sort_column).strip() or "leader/tag"
        return f"{label} {'↓' if self.sort_reverse else '↑'}"

    def show(self, rows: Sequence[NodeRow], query: str, palette: Palette, raft: RaftPicture | None) -> None:
        lines = [m for m in member_lines(rows, raft) if matches(m.row, query)]
        if self.sort_column != "name" or self.sort_reverse:
            lines.sort(key=SORTS[self.sort_column], reverse=self.sort_reverse)
        self.sync_sources([(m.row.name, m) for m in lines], lambda m: member_cells(m, palette), style=palette)
