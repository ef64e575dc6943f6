"""Change detection between console snapshots (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from tagjoin.core.model import Instance, Member, MemberStatus
from tagjoin.core.view import Severity
from tagjoin.tui.log_entries import Event, EventKind, Tracker, fmt_secs, observe
from tagjoin.tui.source import Snapshot
from tests.console_doubles import TAG_KEY, failed, instance, member, snapshot

T0 = 1_000.0
IPS = {"node-1": "10.0.1.1", "node-2": "10.0.1.2", "node-3": "10.0.1.3"}


def servers(**status: MemberStatus) -> list[Member]:
    return [member(name, ip, status.get(name.replace("-", "_"), MemberStatus.ALIVE)) for name, ip in IPS.items()]


def instances(tags: dict[str, str]) -> list[Instance]:
    """`tags` maps node name → leader tag value."""
    return [instance(f"i-{name}", ip, tags={TAG_KEY: tags[name]} if name in tags else {}) for name, ip in IPS.items()]


def snap(
    at: float, leader: str | None, tags: dict[str, str], term: int | None = None, **status: MemberStatus
) -> Snapshot:
    return snapshot(T0 + at, IPS[leader] if leader else None, servers(**status), instances(tags), term=term)


def run(snaps: Sequence[Snapshot]) -> tuple[Tracker, list[list[Event]]]:
    state = Tracker()
    out = []
    for s in snaps:
        state, events = observe(state, s)
        out.append(events)
    return state, out


def kinds(events: list[Event]) -> list[EventKind]:
    return [e.kind for e in events]


def test_first_look_is_one_summary_event() -> None:
    state, (events,) = run([snap(0, "node-1", {"node-1": "5"}, term=5)])
    assert kinds(events) == [EventKind.FIRST_LOOK]
    assert "leader node-1 (term 5)" in events[0].message and "tag agrees" in events[0].message
    assert state.leader == "node-1" and state.leader_since is None and state.first_at == T0


def test_nothing_changes_nothing_logged() -> None:
    _, (_, again) = run([snap(0, "node-1", {"node-1": "5"}, 5), snap(2, "node-1", {"node-1": "5"}, 5)])
    assert again == []


def test_leader_change_then_tag_handoff_reports_the_lag() -> None:
    _, (_, change, between, handoff) = run(
        [
            snap(0, "node-1", {"node-1": "5"}, 5),
            snap(10, "node-2", {"node-1": "5"}, 6),
            snap(12, "node-2", {"node-1": "5", "node-2": "6"}, 6),  # made, not yet broken
            snap(13.5, "node-2", {"node-2": "6"}, 6),
        ]
    )
    assert kinds(change) == [EventKind.LEADER_CHANGED]
    assert change[0].message == "leader node-1 → node-2 (term 6)"
    assert kinds(between) == [EventKind.TAG_MOVED]
    assert kinds(handoff) == [EventKind.TAG_HANDOFF]
    assert handoff[0].took == 3.5
    assert handoff[0].subject == "node-2"
    assert "3.5s after the leader change" in handoff[0].message


def test_handoff_within_one_refresh_takes_zero() -> None:
    _, (_, events) = run([snap(0, "node-1", {"node-1": "5"}, 5), snap(2, "node-2", {"node-2": "6"}, 6)])
    assert kinds(events) == [EventKind.LEADER_CHANGED, EventKind.TAG_HANDOFF]
    assert events[1].took == 0.0


def test_lag_counts_from_the_loss_of_the_old_leader() -> None:
    _, (_, lost, elected, agreed) = run(
        [
            snap(0, "node-1", {"node-1": "5"}, 5),
            snap(4, None, {"node-1": "5"}, node_1=MemberStatus.FAILED),
            snap(9, "node-2", {"node-1": "5"}, 6, node_1=MemberStatus.FAILED),
            snap(11, "node-2", {"node-2": "6"}, 6, node_1=MemberStatus.FAILED),
        ]
    )
    assert kinds(lost) == [EventKind.MEMBER_FAILED, EventKind.LEADER_LOST]
    assert lost[1].severity is Severity.CRITICAL
    assert kinds(elected) == [EventKind.LEADER_CHANGED]
    assert elected[0].message == "node-2 elected (term 6)"
    assert kinds(agreed) == [EventKind.TAG_HANDOFF]
    assert agreed[0].took == 7.0


def test_reelection_of_the_same_node_is_a_leader_change() -> None:
    _, (_, events, handoff) = run(
        [
            snap(0, "node-1", {"node-1": "5"}, 5),
            snap(2, "node-1", {"node-1": "5"}, 6),
            snap(3, "node-1", {"node-1": "6"}, 6),
        ]
    )
    # The tag still agrees (same instance), so the handoff is immediate.
    assert kinds(events) == [EventKind.LEADER_CHANGED, EventKind.TAG_HANDOFF]
    assert "re-elected (term 6)" in events[0].message
    assert handoff == []  # the value change alone is not a move of the tag


def test_tag_moving_away_from_a_steady_leader_is_a_warning() -> None:
    _, (_, events) = run([snap(0, "node-1", {"node-1": "5"}, 5), snap(2, "node-1", {"node-3": "5"}, 5)])
    assert kinds(events) == [EventKind.TAG_MOVED]
    assert events[0].severity is Severity.WARNING
    assert events[0].message == f"tag {TAG_KEY} moved: -i-node-1 +i-node-3"


def test_member_transitions() -> None:
    first = snap(0, "node-1", {"node-1": "5"}, 5)
    leaving = snap(2, "node-1", {"node-1": "5"}, 5, node_2=MemberStatus.LEAVING, node_3=MemberStatus.FAILED)
    left = snap(4, "node-1", {"node-1": "5"}, 5, node_2=MemberStatus.LEFT)
    _, (_, a, b) = run([first, leaving, left])
    assert [(e.kind, e.subject) for e in a] == [
        (EventKind.MEMBER_LEAVING, "node-2"),
        (EventKind.MEMBER_FAILED, "node-3"),
    ]
    assert [(e.kind, e.subject) for e in b] == [(EventKind.MEMBER_LEFT, "node-2"), (EventKind.MEMBER_ALIVE, "node-3")]
    assert b[1].message == "server node-3 is alive again (was failed)"


def test_members_appearing_and_disappearing() -> None:
    base = [member("node-1", "10.0.1.1")]
    grown = [*base, member("web-1", "10.0.2.1", server=False)]
    insts = [instance("i-1", "10.0.1.1", tags={TAG_KEY: "3"})]
    _, (_, joined, removed) = run(
        [
            snapshot(T0, "10.0.1.1", base, insts),
            snapshot(T0 + 1, "10.0.1.1", grown, insts),
            snapshot(T0 + 2, "10.0.1.1", base, insts),
        ]
    )
    assert [(e.kind, e.message) for e in joined] == [(EventKind.MEMBER_JOINED, "client web-1 joined")]
    assert [(e.kind, e.subject) for e in removed] == [(EventKind.MEMBER_REMOVED, "web-1")]


def test_failures_are_logged_once_and_recovery_says_how_long() -> None:
    ok = snap(0, "node-1", {"node-1": "5"}, 5)
    state, (_, f1, f2, f3, back) = run(
        [ok, failed(T0 + 2, "agent down"), failed(T0 + 4, "agent down"), failed(T0 + 6, "timeout"), ok]
    )
    assert kinds(f1) == [EventKind.FETCH_FAILED] and f1[0].message == "refresh failed: agent down"
    assert f2 == []  # the same error again is not news
    assert kinds(f3) == [EventKind.FETCH_FAILED]
    assert kinds(back) == [EventKind.FETCH_RECOVERED]
    assert state.failing_since is None and state.view is not None


def test_failure_keeps_the_last_view() -> None:
    ok = snap(0, "node-1", {"node-1": "5"}, 5)
    state, _ = run([ok, failed(T0 + 2, "agent down")])
    assert state.view is ok.view
    assert state.failing_since == T0 + 2 and state.last_error == "agent down"


def test_fmt_secs() -> None:
    assert [fmt_secs(s) for s in (0.04, 9.96, 12, 65, 3600 + 600, -3)] == [
        "0.0s",
        "10.0s",
        "12s",
        "1m05s",
        "1h10m",
        "0.0s",
    ]


def test_leader_change_and_tag_seen_in_one_refresh_give_a_bound_not_zero() -> None:
    _, (_, both) = run([snap(0, None, {}), snap(2, "node-2", {"node-2": "6"}, 6)])
    (handoff,) = [e for e in both if e.kind is EventKind.TAG_HANDOFF]
    assert handoff.took == 0
    assert "within 2.0s of the leader change (both seen in one refresh)" in handoff.message


def test_reading_through_another_agent_is_logged_once_each_way() -> None:
    base = [snap(t, "node-1", {"node-1": "5"}, 5) for t in (0, 2, 4, 6)]
    fallback = [base[0], replace(base[1], via="node-2"), replace(base[2], via="node-2"), base[3]]
    state, (_, away, same, back) = run(fallback)
    assert [(e.kind, e.severity, e.message) for e in away] == [
        (
            EventKind.AGENT_FALLBACK,
            Severity.WARNING,
            "the configured Consul agent does not answer; reading through node-2's agent",
        )
    ]
    assert same == []
    assert [(e.kind, e.message) for e in back] == [
        (EventKind.AGENT_FALLBACK, "reading through the configured Consul agent again")
    ]
    assert state.via is None


def test_a_left_configured_agent_and_a_confirmed_no_leader_say_so() -> None:
    base = [snap(0, "node-1", {"node-1": "5"}, 5), snap(2, "node-1", {"node-1": "5"}, 5)]
    _, (_, away) = run([base[0], replace(base[1], via="node-2", via_reason="has left")])
    assert [e.message for e in away] == ["the configured Consul agent has left; reading through node-2's agent"]
    lost = replace(snap(4, None, {"node-1": "5"}), no_leader_confirmed_by="node-3")
    _, (_, gone) = run([base[0], lost])
    assert [(e.kind, e.message) for e in gone] == [
        (EventKind.LEADER_LOST, "no leader (was node-1); node-3's agent sees none either")
    ]
