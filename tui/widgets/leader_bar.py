"""The leader at a glance: who, where, which instance, which term, since when, and the tag.

A green verdict needs fresh data and a leader whose own agent confirms it leads: a follower's
idea of the leader outlives a crashed one by a heartbeat timeout, and stale data proves nothing.
"""

from __future__ import annotations

from enum import Enum

from rich.text import Text
from textual.widgets import Static

from tagjoin.core.view import ClusterView
from tagjoin.tui.log_entries import fmt_secs
from tagjoin.tui.source import LeaderProbe
from tagjoin.tui.style import LEADER_MARK, TAG_MARK, Palette


class Verdict(Enum):
    GOOD = "good"
    BAD = "bad"
    UNKNOWN = "unknown"


def leader_text(
    view: ClusterView | None,
    term: int | None,
    *,
    changed_ago: float | None,
    known_for: float | None,
    palette: Palette,
    probe: LeaderProbe | None = None,
    stale: str | None = None,
    confirmed_by: str | None = None,
    raft_finds_no_leader: bool = False,
) -> tuple[Text, Verdict]:
    """`changed_ago` when the change was seen; otherwise it led at least `known_for` seconds.

    `probe` is the latest answer of the leader's own agent; `stale` (e.g. `stale 12s`) is set while
    the data is stale; `confirmed_by` names the second agent that saw no leader either.
    """
    t = Text(no_wrap=True, overflow="ellipsis")
    if view is None:
        if stale:
            t.append(f" leader unknown ({stale})", style=palette.warn)
            return t, Verdict.UNKNOWN
        t.append(" waiting for the first refresh…", style=palette.dim)
        return t, Verdict.UNKNOWN
    if view.leader_address is None:
        if stale:
            t.append(f" ✖ no leader when last seen · unknown now ({stale})", style=palette.warn)
            return t, Verdict.UNKNOWN
        t.append(" ✖ NO LEADER ", style=f"bold reverse {palette.err}")
        seen = f"confirmed by {confirmed_by}'s agent" if confirmed_by else "no second agent could confirm it"
        t.append(f"  {seen}", style=palette.err)
        return t, Verdict.BAD
    dim = palette.dim if stale else ""
    t.append(f" {LEADER_MARK} ", style=f"bold {palette.accent}" if not stale else dim)
    t.append(view.leader_node or "(not a member)", style=f"bold {dim}".strip())
    inst = view.leader_instance
    t.append(f"  {view.leader_address}  {inst.instance_id if inst else 'no instance'}", style=dim)
    t.append(f"  term {term}" if term is not None else "  term ?", style=dim)
    if changed_ago is not None:
        t.append(f"  since {fmt_secs(changed_ago)}", style=dim)
    elif known_for is not None:
        t.append(f"  since ≥{fmt_secs(known_for)}", style=dim)
    t.append("  ")
    if stale:
        t.append(f" {TAG_MARK} tag: unknown ({stale}) ", style=f"bold reverse {palette.warn}")
        return t, Verdict.UNKNOWN
    doubt = _doubt(view, probe) or ("the Raft reads find no leader" if raft_finds_no_leader else None)
    if doubt is not None:
        t.append(f" ⚠ {doubt} ", style=f"bold reverse {palette.err}")
        t.append(f"  {TAG_MARK} tag verdict unknown until a leader confirms", style=palette.warn)
        return t, Verdict.UNKNOWN
    if view.tag_agrees:
        t.append(f" {TAG_MARK} tag agrees ", style=f"bold reverse {palette.ok}")
        return t, Verdict.GOOD
    holders = ", ".join(f"{i.instance_id}={i.tags.get(view.tag_key, '')}" for i in view.tag_holders if i.running)
    t.append(f" {TAG_MARK} tag disagrees ", style=f"bold reverse {palette.err}")
    t.append(f"  held by {holders}" if holders else "  no running instance holds it", style=palette.err)
    return t, Verdict.BAD


def _doubt(view: ClusterView, probe: LeaderProbe | None) -> str | None:
    """Why the named leader may no longer lead, from its own agent's latest answer."""
    if probe is None or probe.node != view.leader_node or probe.answered is None:
        return None
    if not probe.answered:
        return "its agent does not answer"
    if not probe.leads:
        state = probe.raft_state or "not a server"
        return f"its agent says {state}" + (f" (term {probe.term})" if probe.term else "")
    return None


class LeaderBar(Static):
    def show(self, text: Text, verdict: Verdict) -> None:
        self.set_class(verdict is Verdict.BAD, "-bad")
        self.set_class(verdict is Verdict.UNKNOWN, "-unknown")
        self.update(text)
