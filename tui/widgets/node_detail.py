"""Everything known about one member: gossip, Raft, EC2, and its checks and services on demand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rich.text import Text
from textual.widgets import Static

from tagjoin.core.raft_view import ServerLine
from tagjoin.core.view import NodeRow
from tagjoin.tui.log_entries import fmt_secs
from tagjoin.tui.source import NodeExtras
from tagjoin.tui.style import LEADER_MARK, TAG_MARK, Palette, status_text


@dataclass(frozen=True)
class NodeFacts:
    row: NodeRow
    raft: ServerLine | None
    raft_known: bool
    extras: NodeExtras | None  # None: not read (yet)
    now: float  # wall clock, for ages


def detail_text(f: NodeFacts, palette: Palette) -> Text:
    row = f.row
    t = Text()
    t.append(row.name, style="bold")
    t.append("  ")
    t.append_text(status_text(row.status, palette))
    t.append(f"  {row.role}")
    if row.is_leader:
        t.append(f"  {LEADER_MARK} raft leader", style=f"bold {palette.accent}")
    if row.tag_value is not None:
        t.append(f"  {TAG_MARK} {row.tag_value}", style=palette.ok if row.is_leader else palette.warn)
    version = (row.serf_tag("build") or "").split(":")[0] or "?"
    t.append(f"\naddress {row.address} · datacenter {row.serf_tag('dc') or '?'} · consul {version}")
    if row.role == "server":
        t.append("\n\nRaft  ", style="bold")
        raft = f.raft
        if raft is None:
            t.append("not in the configuration" if f.raft_known else "unknown", style=palette.warn)
        else:
            t.append(raft.role.value, style=f"bold {palette.warn}" if not raft.votes else "bold")
            if raft.healthy is not None:
                t.append(
                    " · healthy" if raft.healthy else " · UNHEALTHY",
                    style=palette.ok if raft.healthy else f"bold {palette.err}",
                )
            if raft.last_contact is not None:
                t.append(f" · last contact {raft.last_contact * 1000:.0f}ms")
            if raft.last_index is not None:
                t.append(f" · last index {raft.last_index}")
            if raft.last_term is not None:
                t.append(f" · term {raft.last_term}")
            if raft.reason:
                t.append(f"\n      {raft.reason}", style=palette.warn)
    t.append("\n\nEC2   ", style="bold")
    inst = row.instance
    if inst is None:
        t.append("no instance in scope has its address", style=palette.dim)
    else:
        t.append(f"{inst.instance_id} · {inst.state}", style=palette.ok if inst.running else palette.warn)
        t.append(f" · {inst.zone or 'zone ?'} · {inst.instance_type or 'type ?'}")
        if inst.launch_time:
            t.append(f" · launched {inst.launch_time}{_age(inst.launch_time, f.now)}")
        tags = ", ".join(f"{k}={v}" for k, v in sorted(inst.tags.items()))
        t.append(f"\n      tags: {tags or '—'}", style=palette.dim)
    extras = f.extras
    t.append("\n\nChecks  ", style="bold")
    if extras is None:
        t.append("reading…", style=palette.dim)
    elif extras.error:
        t.append(f"could not read: {extras.error}", style=palette.warn)
    elif not extras.checks:
        t.append("none", style=palette.dim)
    else:
        for c in extras.checks:
            style = {"passing": palette.ok, "warning": palette.warn}.get(c.status, f"bold {palette.err}")
            t.append(f"\n  {c.status:<8}", style=style)
            t.append(f" {c.check_id}  {c.name}")
            if c.output:
                t.append(f"  {c.output}", style=palette.dim)
    t.append("\n\nServices  ", style="bold")
    if extras is None:
        t.append("reading…", style=palette.dim)
    elif extras.error:
        t.append("—", style=palette.dim)
    elif not extras.services:
        t.append("none", style=palette.dim)
    else:
        listed = (f"{s.service} :{s.port}" + (f" [{', '.join(s.tags)}]" if s.tags else "") for s in extras.services)
        t.append(", ".join(listed))
    t.append("\n\nSerf tags  ", style="bold")
    t.append(" ".join(f"{k}={v}" for k, v in row.serf_tags) or "—", style=palette.dim)
    return t


def _age(stamp: str, now: float) -> str:
    try:
        at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return ""
    return f" ({fmt_secs(now - at)} ago)" if now >= at else ""


class NodeDetail(Static):
    def show(self, facts: NodeFacts | None, palette: Palette) -> None:
        if facts is None:
            self.update(Text("select a member to see its details", style=palette.dim))
            self.border_title = "Detail"
            return
        self.update(detail_text(facts, palette))
        self.border_title = f"Detail · {facts.row.name}"
