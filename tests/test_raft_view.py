"""The Raft picture and what an action does to the quorum (pure)."""

from __future__ import annotations

from tagjoin.core.model import AutopilotHealth, MemberStatus, RaftConfiguration, RaftServer, ServerHealth
from tagjoin.core.raft_view import UNKNOWN, Change, Role, build_raft, impact
from tagjoin.core.view import NodeRow, build_view
from tests.console_doubles import member

IPS = {"s1": "10.0.1.1", "s2": "10.0.1.2", "s3": "10.0.1.3"}


def rows(**status: MemberStatus) -> tuple[NodeRow, ...]:
    members = [member(n, ip, status.get(n, MemberStatus.ALIVE)) for n, ip in IPS.items()]
    members.append(member("web", "10.0.2.1", server=False))
    return build_view("10.0.1.1:8300", members, [], "k").rows


def config(*voters: str, non_voters: tuple[str, ...] = ()) -> RaftConfiguration:
    servers = [
        RaftServer(f"id-{n}", n, f"{IPS[n]}:8300", leader=n == "s1", voter=n in voters, last_index=40)
        for n in (*voters, *non_voters)
    ]
    return RaftConfiguration(tuple(servers), 9)


def health(unhealthy: dict[str, float] | None = None, *, tolerance: int = 1) -> AutopilotHealth:
    sick = unhealthy or {}
    servers = tuple(
        ServerHealth(
            f"id-{n}", n, f"{ip}:8300", "alive", "1.20.1", n == "s1", True, n not in sick, sick.get(n, 0.01), 5, 40, ""
        )
        for n, ip in IPS.items()
    )
    return AutopilotHealth(not sick, tolerance, servers)


def test_roles_quorum_and_tolerance() -> None:
    picture = build_raft(config("s1", "s2", "s3"), health(), None, rows())
    assert [(s.node, s.role) for s in picture.servers] == [("s1", Role.LEADER), ("s2", Role.VOTER), ("s3", Role.VOTER)]
    assert picture.summary() == "voters 3/3 · quorum 2 · tolerates 1 failure"
    assert picture.has_quorum and picture.autopilot_healthy and picture.leader_term == 5
    assert picture.role_of("web") is None


def test_a_non_voter_and_a_server_missing_from_the_configuration() -> None:
    picture = build_raft(config("s1", "s2", non_voters=("s3",)), None, None, rows())
    assert picture.role_of("s3") is Role.NON_VOTER
    line = picture.line("s3")
    assert line is not None and "does not vote" in line.reason
    assert picture.summary() == "voters 2/2 · quorum 2 · tolerates 0 failures"
    assert picture.by_gossip
    missing = build_raft(config("s1", "s2"), None, None, rows())
    assert missing.role_of("s3") is Role.NOT_IN_CONFIG
    gone = build_raft(config("s1", "s2"), None, None, rows(s3=MemberStatus.LEFT))
    assert gone.role_of("s3") is None  # left servers belong out of the configuration


def test_unhealthy_reasons_follow_autopilots_rule() -> None:
    picture = build_raft(config("s1", "s2", "s3"), health({"s3": 3.2}, tolerance=0), None, rows())
    line = picture.line("s3")
    assert line is not None and line.healthy is False
    assert line.reason == "last contact 3.2s > 200ms"
    assert picture.healthy_voters == 2 and picture.tolerance == 0


def test_impact_of_stopping_and_of_leaving() -> None:
    picture = build_raft(config("s1", "s2", "s3"), health(), None, rows())
    crash = impact(picture, "s1", Change.STOP)
    assert crash.leader and crash.holds and (crash.healthy_after, crash.voters_after) == (2, 3)
    assert crash.tolerance_after == 0 and not crash.breaks_quorum
    leave = impact(picture, "s2", Change.LEAVE)
    assert (leave.voters_after, leave.quorum_after, leave.holds) == (2, 2, True)
    weak = build_raft(config("s1", "s2", "s3"), health({"s3": 5.0}, tolerance=0), None, rows())
    assert impact(weak, "s2", Change.STOP).breaks_quorum
    assert impact(weak, "s2", Change.LEAVE).breaks_quorum  # 2 voters left, one unhealthy
    assert not impact(weak, "web", Change.STOP).breaks_quorum
    assert not impact(UNKNOWN, "s1", Change.STOP).known


def test_the_last_server() -> None:
    members = [member("s1", "10.0.1.1")]
    view = build_view("10.0.1.1:8300", members, [], "k")
    cfg = RaftConfiguration((RaftServer("id-s1", "s1", "10.0.1.1:8300", True, True),), 1)
    picture = build_raft(cfg, None, None, view.rows)
    assert impact(picture, "s1", Change.STOP).breaks_quorum
    assert impact(picture, "s1", Change.LEAVE).servers_after == 0
