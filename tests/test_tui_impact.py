"""What the confirm dialog says an action does to Raft (pure)."""

from __future__ import annotations

from tagjoin.core.model import AutopilotHealth, MemberStatus, RaftConfiguration, RaftServer, ServerHealth
from tagjoin.core.raft_view import RaftPicture, build_raft
from tagjoin.core.view import Severity, build_view
from tagjoin.tui.impact import Impact, describe
from tests.console_doubles import member

IPS = {"s1": "10.0.1.1", "s2": "10.0.1.2", "s3": "10.0.1.3"}


def picture(sick: tuple[str, ...] = ()) -> RaftPicture:
    view = build_view("10.0.1.1:8300", [member(n, ip) for n, ip in IPS.items()], [], "k")
    cfg = RaftConfiguration(tuple(RaftServer(f"id-{n}", n, f"{ip}:8300", n == "s1", True) for n, ip in IPS.items()), 3)
    servers = tuple(
        ServerHealth(f"id-{n}", n, ip, "alive", "1", n == "s1", True, n not in sick, 0.01, 2, 9, "")
        for n, ip in IPS.items()
    )
    healthy = 3 - len(sick)
    return build_raft(cfg, AutopilotHealth(not sick, max(0, healthy - 2), servers), None, view.rows)


def texts(impact: Impact) -> list[str]:
    return [line for _sev, line in impact.lines]


def test_crashing_the_leader_names_the_election_and_what_remains() -> None:
    said = describe("crash", "s1", "server", MemberStatus.ALIVE, picture())
    assert texts(said)[0] == "this is the Raft leader: an election follows (once the followers time out)"
    assert "2 of 3 voters remain: quorum holds, no failure tolerated" in texts(said)
    assert said.type_to_confirm is None and said.worst is Severity.WARNING


def test_leaving_shrinks_the_configuration() -> None:
    said = describe("leave", "s2", "server", MemberStatus.ALIVE, picture())
    assert texts(said) == ["2 of 2 voters remain (3 now): quorum holds, no failure tolerated"]


def test_a_quorum_breaking_action_asks_for_the_name() -> None:
    said = describe("crash", "s2", "server", MemberStatus.ALIVE, picture(sick=("s3",)))
    assert "1 of 3 voters remain: the cluster loses quorum (2 needed)" in texts(said)
    assert said.type_to_confirm == "s2" and said.worst is Severity.CRITICAL


def test_clients_unknown_pictures_and_stale_pictures() -> None:
    assert texts(describe("leave", "web", "client", MemberStatus.ALIVE, picture())) == [
        "a client agent: Raft and the quorum are not affected"
    ]
    unknown = describe("crash", "s1", "server", MemberStatus.ALIVE, None)
    assert unknown.type_to_confirm is None
    assert texts(unknown)[0].startswith("the Raft configuration is unknown (not read yet)")
    stale = describe("crash", "s3", "server", MemberStatus.ALIVE, picture(), stale="stale 12s")
    assert texts(stale)[0] == "the Raft picture is not current (stale 12s): what follows may be out of date"


def test_rejoin_and_force_leave() -> None:
    assert "non-voter" in texts(describe("rejoin", "s3", "server", MemberStatus.LEFT, picture()))[0]
    said = texts(describe("force-leave", "s3", "server", MemberStatus.FAILED, picture()))
    assert said == ["removes a failed voter: the configuration shrinks to 2 voters, quorum 2 (now 2)"]
