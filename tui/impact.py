"""What a confirmed action will do to Raft, in the words the confirm dialog shows. Pure.

The arithmetic is core's (tagjoin.core.raft_view.impact); this module only phrases it and decides
when the operator must type the node's name: for an action that takes away the quorum the
cluster has now, or stops its last server.
"""

from __future__ import annotations

from dataclasses import dataclass

from tagjoin.core.model import MemberStatus
from tagjoin.core.raft_view import SERVER_STABILIZATION_S, Change, RaftPicture, Role, impact, quorum_of
from tagjoin.core.view import Severity

# Actions that take a server out of the voting, and how: a leave shrinks the configuration, the
# faults leave the voter in it, silent.
_CHANGES = {
    "leave": Change.LEAVE,
    "crash": Change.STOP,
    "partition": Change.STOP,
    "pause-leader": Change.STOP,
}


@dataclass(frozen=True)
class Impact:
    lines: tuple[tuple[Severity, str], ...]
    type_to_confirm: str | None = None  # the node name the operator must type, for a quorum-breaking action

    @property
    def worst(self) -> Severity:
        return max((sev for sev, _ in self.lines), default=Severity.INFO)


def describe(
    action: str, node: str, role: str, status: MemberStatus, picture: RaftPicture | None, *, stale: str | None = None
) -> Impact:
    """`action` is an ActionName value; `stale` says how old the picture is when it may be out of date."""
    lines: list[tuple[Severity, str]] = []
    type_name: str | None = None
    change = _CHANGES.get(action)
    if role != "server":
        if change is not None:
            lines.append((Severity.INFO, "a client agent: Raft and the quorum are not affected"))
        return Impact(tuple(lines))
    if picture is None or not picture.known:
        if change is not None or action in ("force-leave", "rejoin"):
            why = _unknown_reason(picture)
            lines.append((Severity.WARNING, f"the Raft configuration is unknown ({why}): the effect on the quorum"))
            lines.append((Severity.WARNING, "cannot be shown; check `consul operator raft list-peers` first"))
        return Impact(tuple(lines))
    if stale:
        lines.append((Severity.WARNING, f"the Raft picture is not current ({stale}): what follows may be out of date"))
    if change is not None:
        what = impact(picture, node, change)
        if what.role is None or what.role is Role.NOT_IN_CONFIG:
            lines.append((Severity.INFO, "not in the Raft configuration: the quorum does not change"))
        elif not what.voter:
            lines.append((Severity.INFO, "a non-voter: the quorum does not change"))
        else:
            if what.leader:
                how = "it hands leadership over first" if change is Change.LEAVE else "once the followers time out"
                lines.append((Severity.WARNING, f"this is the Raft leader: an election follows ({how})"))
                lines.append((Severity.INFO, "the leader tag then moves to the new leader"))
            if picture.has_quorum:
                lines.append(_quorum_line(what.healthy_after, what.voters_after, what.quorum_after, change, picture))
            else:
                alive = f"{picture.alive_voters} of {picture.voters} voters alive, quorum {picture.quorum}"
                lines.append((Severity.CRITICAL, f"the cluster has no quorum already ({alive})"))
        if what.servers_after == 0:
            lines.append((Severity.CRITICAL, "this is the last server answering: the cluster stops"))
        if what.breaks_quorum:
            type_name = node
    elif action == "force-leave":
        line = picture.line(node)
        if line is not None and line.votes:
            voters = picture.voters - 1
            lines.append(
                (
                    Severity.INFO,
                    f"removes a failed voter: the configuration shrinks to {voters} voters, quorum "
                    f"{quorum_of(voters) if voters else 0} (now {picture.quorum})",
                )
            )
        else:
            lines.append((Severity.INFO, "not a voter: the quorum does not change"))
    elif action == "rejoin":
        lines.append(
            (
                Severity.INFO,
                f"it rejoins as a non-voter; autopilot promotes it after {SERVER_STABILIZATION_S}s healthy",
            )
        )
    elif action == "prune" and status == MemberStatus.FAILED:
        lines.append((Severity.INFO, "a failed server is force-left first: Raft drops it from the configuration"))
    return Impact(tuple(lines), type_name)


def _quorum_line(healthy: int, voters: int, quorum: int, change: Change, picture: RaftPicture) -> tuple[Severity, str]:
    if voters == 0:
        return Severity.CRITICAL, "no voter remains: the cluster loses quorum"
    if change is Change.LEAVE and voters != picture.voters:
        remain = f"{healthy} of {voters} voters remain ({picture.voters} now)"
    else:
        remain = f"{healthy} of {voters} voters remain"
    if healthy < quorum:
        return Severity.CRITICAL, f"{remain}: the cluster loses quorum ({quorum} needed)"
    spare = healthy - quorum
    if spare == 0:
        return Severity.WARNING, f"{remain}: quorum holds, no failure tolerated"
    failures = "failure" if spare == 1 else "failures"
    return Severity.INFO, f"{remain}: quorum holds, tolerates {spare} {failures}"


def _unknown_reason(picture: RaftPicture | None) -> str:
    if picture is None:
        return "not read yet"
    return picture.problems[0].reason if picture.problems else "not read"
