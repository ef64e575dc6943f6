"""Turn consecutive snapshots into event-log entries. Pure: state in, state and events out.

The one number operators care about most is how long the tag lagged behind a leader change,
so the tracker remembers when leadership last moved until the tag agrees again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from tagjoin.core.model import MemberStatus
from tagjoin.core.raft_view import RaftPicture, Role
from tagjoin.core.view import ClusterView, NodeRow, Severity
from tagjoin.tui.source import Snapshot


class EventKind(StrEnum):
    FIRST_LOOK = "first-look"
    LEADER_CHANGED = "leader-changed"
    LEADER_LOST = "leader-lost"
    TAG_HANDOFF = "tag-handoff"  # the tag agrees with a new leader; `took` says how long after the change
    TAG_MOVED = "tag-moved"  # the set of tag holders changed while no leader change was pending
    TAG_DRIFT = "tag-drift"  # the tag stopped agreeing with an unchanged leader
    MEMBER_JOINED = "member-joined"
    MEMBER_ALIVE = "member-alive"
    MEMBER_LEAVING = "member-leaving"
    MEMBER_LEFT = "member-left"
    MEMBER_FAILED = "member-failed"
    MEMBER_REMOVED = "member-removed"
    FETCH_FAILED = "fetch-failed"
    FETCH_RECOVERED = "fetch-recovered"
    AGENT_FALLBACK = "agent-fallback"  # the configured agent stopped (or started again) answering
    LEADER_UNANSWERED = "leader-unanswered"  # the leader's own agent does not answer, or denies leading
    RAFT_ROLE = "raft-role"  # a server's Raft role changed (added, promoted, removed)
    QUORUM = "quorum"  # quorum lost or back, failure tolerance changed
    AUTOPILOT = "autopilot"  # a server turned unhealthy or healthy in autopilot's eyes
    # Not detected from snapshots: the console logs what the operator did, in the same log.
    ACTION = "action"
    ACTION_FAILED = "action-failed"
    REFRESH_PAUSED = "refresh-paused"
    REFRESH_RESUMED = "refresh-resumed"


@dataclass(frozen=True)
class Event:
    at: float
    kind: EventKind
    message: str
    severity: Severity = Severity.INFO
    subject: str | None = None
    took: float | None = None  # TAG_HANDOFF: seconds from the leader change to the tag agreeing


@dataclass(frozen=True)
class Tracker:
    view: ClusterView | None = None
    term: int | None = None
    leader: str | None = None  # node name, or the raft address when no member has it
    leader_since: float | None = None  # None: it already led when the console started
    change_at: float | None = None  # leadership moved here and the tag has not agreed since
    holders: frozenset[str] = frozenset()  # running tag holders (instance ids)
    failing_since: float | None = None
    last_error: str | None = None
    first_at: float | None = None  # the first successful refresh
    last_at: float | None = None  # the latest successful refresh
    via: str | None = None  # the member whose agent answered instead of the configured one


def observe(state: Tracker, snap: Snapshot) -> tuple[Tracker, list[Event]]:
    if snap.error is not None or snap.view is None:
        return _failed(state, snap)
    events: list[Event] = []
    at = snap.fetched_at
    if state.failing_since is not None:
        events.append(
            Event(at, EventKind.FETCH_RECOVERED, f"refresh works again after {fmt_secs(at - state.failing_since)}")
        )
    view = snap.view
    leader = view.leader_node or view.leader_address
    holders = frozenset(i.instance_id for i in view.tag_holders if i.running)
    if state.view is None:
        events.append(_first_look(at, view, snap.term))
        return (
            Tracker(view=view, term=snap.term, leader=leader, holders=holders, first_at=at, last_at=at, via=snap.via),
            events,
        )
    if snap.via != state.via:
        events.append(_via_event(at, snap.via, snap.via_reason))
    events.extend(_member_events(at, state.view, view))
    new = replace(
        state,
        view=view,
        term=snap.term,
        holders=holders,
        failing_since=None,
        last_error=None,
        last_at=at,
        via=snap.via,
    )
    term_rose = snap.term is not None and state.term is not None and snap.term > state.term
    if leader != state.leader or (term_rose and leader is not None):
        pending = state.change_at if state.change_at is not None else at
        new = replace(new, leader=leader, leader_since=at, change_at=pending)
        events.append(_leader_event(at, state, leader, snap.term, snap.no_leader_confirmed_by))
    agrees = view.tag_agrees
    if agrees and new.change_at is not None:
        took = at - new.change_at
        if took > 0 or state.last_at is None:
            when = f"{fmt_secs(took)} after the leader change"
        else:
            # Both happened since the previous refresh: only that bound is known, not 0 s.
            when = f"within {fmt_secs(at - state.last_at)} of the leader change (both seen in one refresh)"
        events.append(
            Event(
                at,
                EventKind.TAG_HANDOFF,
                f"tag {view.tag_key} agrees with leader {leader} ({_holder_text(view)}) {when}",
                subject=leader,
                took=took,
            )
        )
        new = replace(new, change_at=None)
    elif holders != state.holders:
        events.append(_tag_moved(at, view, state.holders, holders))
    elif state.view.tag_agrees and not agrees and leader == state.leader:
        events.append(
            Event(
                at,
                EventKind.TAG_DRIFT,
                f"tag {view.tag_key} no longer agrees with leader {leader}: {_holder_text(view)}",
                Severity.WARNING,
                subject=leader,
            )
        )
    return new, events


def _failed(state: Tracker, snap: Snapshot) -> tuple[Tracker, list[Event]]:
    error = snap.error or "no data"
    if state.failing_since is not None and error == state.last_error:
        return state, []
    since = state.failing_since if state.failing_since is not None else snap.fetched_at
    ev = Event(snap.fetched_at, EventKind.FETCH_FAILED, f"refresh failed: {error}", Severity.WARNING)
    return replace(state, failing_since=since, last_error=error), [ev]


def _via_event(at: float, via: str | None, reason: str | None = None) -> Event:
    if via is None:
        return Event(at, EventKind.AGENT_FALLBACK, "reading through the configured Consul agent again")
    return Event(
        at,
        EventKind.AGENT_FALLBACK,
        f"the configured Consul agent {reason or 'does not answer'}; reading through {via}'s agent",
        Severity.WARNING,
        subject=via,
    )


def _first_look(at: float, view: ClusterView, term: int | None) -> Event:
    alive = sum(1 for r in view.rows if r.status == MemberStatus.ALIVE)
    if view.leader_node or view.leader_address:
        who = f"leader {view.leader_node or view.leader_address}" + (f" (term {term})" if term else "")
        tag = "tag agrees" if view.tag_agrees else f"tag does not agree ({_holder_text(view)})"
        text = f"{who}; {tag}; {alive}/{len(view.rows)} members alive"
    else:
        text = f"no leader; {alive}/{len(view.rows)} members alive"
    sev = Severity.INFO if view.tag_agrees else Severity.WARNING
    return Event(at, EventKind.FIRST_LOOK, text, sev, subject=view.leader_node)


def _leader_event(
    at: float, old: Tracker, leader: str | None, term: int | None, confirmed_by: str | None = None
) -> Event:
    if leader is None:
        seen = f"; {confirmed_by}'s agent sees none either" if confirmed_by else ""
        return Event(at, EventKind.LEADER_LOST, f"no leader (was {old.leader}){seen}", Severity.CRITICAL, old.leader)
    term_text = f" (term {term})" if term is not None else ""
    if leader == old.leader:
        return Event(at, EventKind.LEADER_CHANGED, f"{leader} re-elected{term_text}", Severity.WARNING, leader)
    if old.leader is None:
        return Event(at, EventKind.LEADER_CHANGED, f"{leader} elected{term_text}", Severity.WARNING, leader)
    text = f"leader {old.leader} → {leader}{term_text}"
    return Event(at, EventKind.LEADER_CHANGED, text, Severity.WARNING, leader)


def _tag_moved(at: float, view: ClusterView, old: frozenset[str], new: frozenset[str]) -> Event:
    gone = ", ".join(sorted(old - new)) or "—"
    came = ", ".join(sorted(new - old)) or "—"
    sev = Severity.INFO if view.tag_agrees else Severity.WARNING
    return Event(at, EventKind.TAG_MOVED, f"tag {view.tag_key} moved: -{gone} +{came}", sev)


def _holder_text(view: ClusterView) -> str:
    names = {r.instance.instance_id: r.name for r in view.rows if r.instance is not None}
    running = [i for i in view.tag_holders if i.running]
    if not running:
        return "no running instance carries it"
    return ", ".join(
        f"{i.instance_id}={i.tags.get(view.tag_key, '')}"
        + (f" on {names[i.instance_id]}" if i.instance_id in names else "")
        for i in running
    )


_STATUS_EVENTS: dict[MemberStatus, tuple[EventKind, str, Severity]] = {
    MemberStatus.ALIVE: (EventKind.MEMBER_ALIVE, "is alive again", Severity.INFO),
    MemberStatus.LEAVING: (EventKind.MEMBER_LEAVING, "is leaving", Severity.INFO),
    MemberStatus.LEFT: (EventKind.MEMBER_LEFT, "left", Severity.INFO),
    MemberStatus.FAILED: (EventKind.MEMBER_FAILED, "failed", Severity.CRITICAL),
}


def _member_events(at: float, old: ClusterView, new: ClusterView) -> list[Event]:
    before: dict[str, NodeRow] = {r.name: r for r in old.rows}
    after: dict[str, NodeRow] = {r.name: r for r in new.rows}
    events: list[Event] = []
    for name, row in after.items():
        prev = before.get(name)
        if prev is None:
            verb = "joined" if row.status == MemberStatus.ALIVE else f"appeared ({row.status.label})"
            sev = Severity.CRITICAL if row.status == MemberStatus.FAILED else Severity.INFO
            events.append(Event(at, EventKind.MEMBER_JOINED, f"{row.role} {name} {verb}", sev, name))
        elif prev.status != row.status and row.status in _STATUS_EVENTS:
            kind, verb, sev = _STATUS_EVENTS[row.status]
            events.append(Event(at, kind, f"{row.role} {name} {verb} (was {prev.status.label})", sev, name))
    for name in before.keys() - after.keys():
        events.append(Event(at, EventKind.MEMBER_REMOVED, f"{name} is no longer listed", Severity.INFO, name))
    return events


def fmt_secs(seconds: float) -> str:
    """`0.4s`, `12s`, `3m05s`, `2h10m`: short enough for a log line and a header."""
    s = max(0.0, seconds)
    if s < 10:
        return f"{s:.1f}s"
    whole = int(s)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{(whole % 3600) // 60:02d}m"


def raft_events(at: float, old: RaftPicture | None, new: RaftPicture) -> list[Event]:
    """What changed in the Raft picture worth a line: roles, quorum, tolerance, autopilot health."""
    if not new.known or old is None or not old.known:
        return []
    events: list[Event] = []
    before = {s.node: s for s in old.servers}
    after = {s.node: s for s in new.servers}
    for name, line in after.items():
        prev = before.get(name)
        if prev is None:
            events.append(
                Event(at, EventKind.RAFT_ROLE, f"server {name} appears in Raft as {line.role.value}", subject=name)
            )
        elif prev.role is not line.role and Role.LEADER not in (prev.role, line.role):
            sev = Severity.WARNING if not line.votes else Severity.INFO
            if prev.role is Role.NOT_IN_CONFIG:
                verb = f"joined the Raft configuration as {line.role.value}"
            elif line.role is Role.VOTER:
                verb = f"promoted to voter (was {prev.role.value})"
            else:
                verb = f"is now {line.role.value} (was {prev.role.value})"
            events.append(Event(at, EventKind.RAFT_ROLE, f"server {name} {verb}", sev, name))
        elif prev is not None and prev.healthy is not False and line.healthy is False:
            events.append(
                Event(at, EventKind.AUTOPILOT, f"autopilot: {name} unhealthy ({line.reason})", Severity.WARNING, name)
            )
        elif prev is not None and prev.healthy is False and line.healthy:
            events.append(Event(at, EventKind.AUTOPILOT, f"autopilot: {name} healthy again", subject=name))
    for name in before.keys() - after.keys():
        events.append(Event(at, EventKind.RAFT_ROLE, f"server {name} left the Raft configuration", subject=name))
    if old.voters == 0:
        if new.voters:
            events.append(Event(at, EventKind.QUORUM, f"Raft configuration: {new.summary()}"))
    elif new.voters == 0:
        events.append(Event(at, EventKind.QUORUM, "the Raft configuration is empty: a new cluster", Severity.WARNING))
    elif old.has_quorum and not new.has_quorum:
        events.append(
            Event(
                at,
                EventKind.QUORUM,
                f"quorum lost: {new.alive_voters} of {new.voters} voters alive, quorum {new.quorum}",
                Severity.CRITICAL,
            )
        )
    elif new.has_quorum and not old.has_quorum:
        events.append(Event(at, EventKind.QUORUM, f"quorum back: {new.summary()}"))
    elif new.has_quorum and new.tolerance != old.tolerance:
        sev = Severity.WARNING if new.tolerance < old.tolerance else Severity.INFO
        events.append(
            Event(at, EventKind.QUORUM, f"failure tolerance {old.tolerance} → {new.tolerance}: {new.summary()}", sev)
        )
    return events
