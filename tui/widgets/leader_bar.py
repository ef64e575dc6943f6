"""The leader at a glance: who, where, which instance, which term, since when, and the tag."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tagjoin.core.view import ClusterView
from tagjoin.tui.log_entries import fmt_secs
from tagjoin.tui.style import LEADER_MARK, TAG_MARK, Palette


def leader_text(
    view: ClusterView | None,
    term: int | None,
    *,
    changed_ago: float | None,
    known_for: float | None,
    palette: Palette,
) -> Text:
    """`changed_ago` when the change was seen; otherwise it led at least `known_for` seconds."""
    t = Text()
    if view is None:
        t.append(" waiting for the first refresh…", style=palette.dim)
        return t
    if view.leader_address is None:
        t.append(" ✖ NO LEADER ", style=f"bold reverse {palette.err}")
        t.append(f"  {view.findings[0].message if view.findings else ''}", style=palette.err)
        return t
    t.append(f" {LEADER_MARK} ", style=f"bold {palette.accent}")
    t.append(view.leader_node or "(not a member)", style="bold")
    inst = view.leader_instance
    t.append(f"  {view.leader_address}  {inst.instance_id if inst else 'no instance'}")
    t.append(f"  term {term}" if term is not None else "  term ?")
    if changed_ago is not None:
        t.append(f"  since {fmt_secs(changed_ago)}")
    elif known_for is not None:
        t.append(f"  since ≥{fmt_secs(known_for)}", style="")
    t.append("  ")
    if view.tag_agrees:
        t.append(f" {TAG_MARK} tag agrees ", style=f"bold reverse {palette.ok}")
    else:
        holders = ", ".join(f"{i.instance_id}={i.tags.get(view.tag_key, '')}" for i in view.tag_holders if i.running)
        t.append(f" {TAG_MARK} tag disagrees ", style=f"bold reverse {palette.err}")
        t.append(f"  held by {holders}" if holders else "  no running instance holds it", style=palette.err)
    return t


class LeaderBar(Static):
    def show(self, text: Text, healthy: bool) -> None:
        self.set_class(not healthy, "-bad")
        self.update(text)
