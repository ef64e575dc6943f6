"""The Raft picture: a one-line quorum verdict under the leader bar, and a pane with every server.

What `consul operator raft list-peers` and `consul operator autopilot state` would say: each
server's role (leader / voter / non-voter / not in the configuration), autopilot's health with its
reason, the voters, the quorum and how many failures the cluster tolerates.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tagjoin.core.model import MemberStatus
from tagjoin.core.raft_view import RaftPicture, Role, ServerLine
from tagjoin.tui.style import LEADER_MARK, Palette
from tagjoin.tui.widgets.leader_bar import Verdict


def quorum_text(picture: RaftPicture | None, palette: Palette, *, stale: str | None = None) -> tuple[Text, Verdict]:
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(" Raft ", style="bold")
    if picture is None:
        t.append(" reading the configuration…", style=palette.dim)
        return t, Verdict.UNKNOWN
    if stale:
        t.append(f" unknown ({stale})", style=f"bold {palette.warn}")
        if picture.known:
            t.append(f" · last known: {picture.summary()}", style=palette.dim)
        return t, Verdict.UNKNOWN
    if not picture.known:
        reason = picture.problems[0].reason if picture.problems else "not read"
        t.append(f" configuration unknown ({reason})", style=f"bold {palette.warn}")
        return t, Verdict.UNKNOWN
    if picture.voters == 0:
        t.append(" ▲ no voter in the configuration: a new cluster, not bootstrapped yet", style=f"bold {palette.warn}")
        return t, Verdict.UNKNOWN
    if picture.stale:
        alive, q = picture.alive_voters, picture.quorum
        if not picture.has_quorum:
            t.append(" ✖ QUORUM LOST ", style=f"bold reverse {palette.err}")
            missing = q - alive
            t.append(
                f"  voters {alive}/{picture.voters} alive · quorum {q}: no leader can be elected until "
                + (f"{missing} more voters return" if missing != 1 else "1 more voter returns"),
                style=palette.err,
            )
            return t, Verdict.BAD
        t.append(f" ▲ no leader yet · voters {alive}/{picture.voters} alive · quorum {q}", style=palette.warn)
        t.append(" · an election can succeed", style=palette.dim)
        return t, Verdict.UNKNOWN
    verdict = Verdict.GOOD
    if not picture.has_quorum:
        t.append(" ✖ QUORUM LOST ", style=f"bold reverse {palette.err}")
        t.append(f"  {picture.summary()}", style=palette.err)
        verdict = Verdict.BAD
    elif picture.at_risk:
        t.append(" ▲ QUORUM AT RISK ", style=f"bold reverse {palette.warn}")
        t.append(f"  {picture.summary()}", style=f"bold {palette.warn}")
        verdict = Verdict.UNKNOWN
    elif picture.tolerance == 0:
        t.append(f" ▲ {picture.summary()}", style=f"bold {palette.warn}")
    else:
        t.append(f" ✔ {picture.summary()}", style=palette.ok)
    if picture.by_gossip:
        problem = picture.problem("autopilot health")
        t.append(f" · autopilot unknown ({problem.reason if problem else 'not read'})", style=palette.dim)
    elif picture.autopilot_healthy:
        t.append(" · autopilot healthy", style=palette.ok)
    else:
        sick = next((s for s in picture.servers if s.healthy is False), None)
        why = f": {sick.node} {sick.reason}" if sick else ""
        t.append(f" · autopilot unhealthy{why}", style=f"bold {palette.err}")
        if verdict is Verdict.GOOD:
            verdict = Verdict.UNKNOWN
    waiting = [s.node for s in picture.servers if s.role in (Role.NON_VOTER, Role.STAGING, Role.NOT_IN_CONFIG)]
    if waiting:
        t.append(f" · not voting: {', '.join(waiting)}", style=f"bold {palette.warn}")
    return t, verdict


def raft_text(picture: RaftPicture | None, palette: Palette, *, stale: str | None = None) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    if picture is None:
        t.append("reading the Raft configuration…", style=palette.dim)
        return t
    if not picture.known:
        for i, p in enumerate(picture.problems):
            if i:
                t.append("\n")
            t.append(f"{p.what}: {p.reason}", style=palette.warn)
        return t
    if stale:
        t.append(f"last known, {stale}\n", style=f"bold {palette.warn}")
    elif picture.stale:
        t.append("read with ?stale: no leader stands behind this configuration\n", style=palette.warn)
    width = max((len(s.node) for s in picture.servers), default=4)
    for i, s in enumerate(picture.servers):
        if i:
            t.append("\n")
        _server_line(t, s, width, palette, dim=bool(stale))
    return t


def _server_line(t: Text, s: ServerLine, width: int, palette: Palette, *, dim: bool) -> None:
    base = palette.dim if dim else ""
    t.append(f"{LEADER_MARK if s.role is Role.LEADER else ' '} ", style=f"bold {palette.accent}")
    t.append(f"{s.node:<{width}} ", style=f"bold {base}".strip() if s.role is Role.LEADER else base)
    role_style = base
    if s.role in (Role.NON_VOTER, Role.STAGING, Role.NOT_IN_CONFIG):
        role_style = f"bold {palette.warn}"
    t.append(f"{s.role.value:<11}", style=role_style)
    if s.healthy is None:
        serf_ok = s.serf_status == MemberStatus.ALIVE.label
        t.append(f"{s.serf_status or '?':<7}", style=palette.dim if serf_ok else palette.err)
    elif s.healthy:
        t.append("✔", style=palette.dim if dim else palette.ok)
    else:
        t.append("✖", style=f"bold {palette.err}")
    if s.last_index is not None:
        t.append(f" idx {s.last_index}", style=palette.dim)
    if s.last_contact is not None:
        contact = f"{s.last_contact * 1000:.0f}ms" if s.last_contact < 1 else f"{s.last_contact:.1f}s"
        t.append(f" {contact}", style=palette.dim)
    if s.reason:
        t.append(f"\n    {s.reason}", style=palette.err if s.healthy is False else palette.warn)


class QuorumBar(Static):
    def show(self, text: Text, verdict: Verdict) -> None:
        self.set_class(verdict is Verdict.BAD, "-bad")
        self.set_class(verdict is Verdict.UNKNOWN, "-unknown")
        self.update(text)


MAX_LINES = 12


class RaftPanel(Static):
    def show(self, picture: RaftPicture | None, palette: Palette, *, stale: str | None = None) -> None:
        text = raft_text(picture, palette, stale=stale)
        self.update(text)
        # An explicit height: an auto height measured before the first reading (one line) was
        # not always measured again when the lines arrived.
        self.styles.height = min(text.plain.count("\n") + 1, MAX_LINES) + 2
        if picture is not None and picture.known and not stale:
            self.border_title = f"Raft · {picture.voters} voters · quorum {picture.quorum}"
        else:
            self.border_title = "Raft"
