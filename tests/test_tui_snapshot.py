"""Snapshot tests of the console layout with fixed data and a fixed clock.

Regenerate after a deliberate UI change (or a Textual bump) with `pytest --snapshot-update`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC
from typing import Any

import httpx
from textual.pilot import Pilot

from tagjoin.core.model import (
    AutopilotHealth,
    HealthCheck,
    MemberStatus,
    NodeService,
    RaftConfiguration,
    RaftServer,
    ServerHealth,
)
from tagjoin.core.raft_view import Problem, RaftPicture, build_raft
from tagjoin.tui.actions import ActionService
from tagjoin.tui.agents import TemplateAgents
from tagjoin.tui.app import ConsoleApp
from tagjoin.tui.demo_control import DemoControl
from tagjoin.tui.source import LeaderProbe, NodeExtras, Snapshot
from tests.console_doubles import TAG_KEY, FakeConsul, FixedClock, ScriptedCluster, failed, instance, member, snapshot

T0 = 1_700_000_000.0
SIZE = (130, 36)
IPS = {"consul-1": "10.0.1.11", "consul-2": "10.0.1.12", "consul-3": "10.0.1.13"}


def state(at: float, leader: str | None, term: int, tagged: dict[str, str], **status: MemberStatus) -> Snapshot:
    members = [member(n, ip, status.get(n.replace("-", "_"), MemberStatus.ALIVE)) for n, ip in IPS.items()]
    members += [member("web-1", "10.0.2.21", server=False), member("web-2", "10.0.2.22", server=False)]
    insts = [
        instance(
            f"i-0{n[-1]}aa",
            ip,
            "stopped" if status.get(n.replace("-", "_")) == MemberStatus.FAILED else "running",
            {"consul-cluster": "prod", **({TAG_KEY: tagged[n]} if n in tagged else {})},
        )
        for n, ip in IPS.items()
    ]
    insts += [instance("i-0w1bb", "10.0.2.21"), instance("i-0w2bb", "10.0.2.22")]
    if "stray" in tagged:
        insts.append(instance("i-0ffcc", "10.0.9.9", "running", {TAG_KEY: tagged["stray"]}))
    return snapshot(T0 + at, IPS[leader] if leader else None, members, insts, term=term)


def raft(
    snap: Snapshot,
    *,
    sick: dict[str, float] | None = None,
    non_voters: tuple[str, ...] = (),
    leader: str = "consul-1",
    failed_nodes: tuple[str, ...] = (),
) -> RaftPicture:
    """What autopilot on `leader` would report for the three servers of `state`."""
    assert snap.view is not None
    sick = dict(sick or {}) | {n: 30.0 for n in failed_nodes}
    cfg = RaftConfiguration(
        tuple(RaftServer(f"id-{n}", n, f"{ip}:8300", n == leader, n not in non_voters, 1290) for n, ip in IPS.items()),
        12,
    )
    servers = tuple(
        ServerHealth(
            f"id-{n}", n, f"{ip}:8300", "failed" if n in failed_nodes else "alive", "1.20.1", n == leader,
            n not in non_voters, n not in sick, sick.get(n, 0.012), 8, 1290, "2023-11-14T22:00:00Z",
        )
        for n, ip in IPS.items()
    )  # fmt: skip
    voters = [n for n in IPS if n not in non_voters]
    healthy = sum(1 for n in voters if n not in sick)
    tolerance = max(0, healthy - (len(voters) // 2 + 1))
    return build_raft(cfg, AutopilotHealth(not sick, tolerance, servers), None, snap.view.rows)


def console(
    history: Sequence[Snapshot],
    clock: FixedClock,
    picture: RaftPicture | None = None,
    *,
    probe: LeaderProbe | None = None,
    demo: DemoControl | None = None,
) -> tuple[ConsoleApp, ScriptedCluster]:
    extras = {
        "consul-2": NodeExtras(
            T0,
            "consul-2",
            (HealthCheck("consul-2", "serfHealth", "Serf Health Status", "passing", "Agent alive and reachable"),),
            (NodeService("consul", "consul", 8300),),
        )
    }
    source = ScriptedCluster(
        history[:1],
        label="consul http://127.0.0.1:8500  ec2 eu-west-1 cluster=prod",
        raft=picture or raft(history[-1], leader=_leader_of(history[-1])),
        probe=probe,
        extras=extras,
    )
    actions = ActionService(FakeConsul(), TemplateAgents(), demo=demo)
    return ConsoleApp(source, actions, interval=5, clock=clock, tz=UTC), source


def _leader_of(snap: Snapshot) -> str:
    return (snap.view.leader_node if snap.view else None) or "consul-1"


def replay(
    app: ConsoleApp, source: ScriptedCluster, history: Sequence[Snapshot], clock: FixedClock, keys: Sequence[str] = ()
) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run_before(pilot: Pilot[Any]) -> None:
        # The mount's poll takes history[0]; each later one is one refresh at its own time.
        for rounds, snap in enumerate(history, start=1):
            if rounds > 1:
                clock.t = snap.fetched_at
                source.push(snap)
                for _ in range(50):
                    if app.refresh_now():
                        break
                    await app.workers.wait_for_complete()
            for _ in range(200):
                await app.workers.wait_for_complete()
                await pilot.pause()
                if app.applied >= rounds and app.raft is not None:
                    break
        if keys:
            await pilot.press(*keys)
        # Panes re-measure their height on the next frame after new content.
        for _ in range(3):
            await app.workers.wait_for_complete()
            await pilot.pause()

    return run_before


def failover() -> list[Snapshot]:
    healthy = [state(t, "consul-1", 7, {"consul-1": "7"}) for t in range(0, 240, 5)]
    lost = [state(240 + t, "consul-2", 8, {"consul-1": "7"}, consul_1=MemberStatus.FAILED) for t in (0, 5)]
    moved = [state(250 + t, "consul-2", 8, {"consul-2": "8"}, consul_1=MemberStatus.FAILED) for t in range(0, 50, 5)]
    return healthy + lost + moved


def test_main_layout_after_a_failover(snap_compare: Any) -> None:
    history, clock = failover(), FixedClock(T0)
    app, source = console(history, clock, raft(history[-1], leader="consul-2", failed_nodes=("consul-1",)))
    assert snap_compare(app, terminal_size=SIZE, run_before=replay(app, source, history, clock))


def test_drift_findings_and_tag_disagreement(snap_compare: Any) -> None:
    history = [
        state(0, "consul-1", 7, {"consul-1": "7"}),
        state(
            5,
            "consul-3",
            8,
            {"consul-1": "7", "stray": "3"},
            consul_1=MemberStatus.FAILED,
            consul_2=MemberStatus.LEAVING,
        ),
    ]
    clock = FixedClock(T0)
    app, source = console(history, clock, raft(history[-1], leader="consul-3", failed_nodes=("consul-1",)))
    assert snap_compare(app, terminal_size=SIZE, run_before=replay(app, source, history, clock))


def test_confirm_dialog_names_the_node(snap_compare: Any) -> None:
    history, clock = [state(0, "consul-1", 7, {"consul-1": "7"})], FixedClock(T0)
    app, source = console(history, clock)
    assert snap_compare(app, terminal_size=SIZE, run_before=replay(app, source, history, clock, keys=("j", "l")))


def test_raft_pane_shows_a_non_voter_and_an_unhealthy_server(snap_compare: Any) -> None:
    history, clock = [state(0, "consul-1", 7, {"consul-1": "7"})], FixedClock(T0)
    picture = raft(history[0], sick={"consul-2": 3.4}, non_voters=("consul-3",))
    app, source = console(history, clock, picture)
    assert snap_compare(app, terminal_size=SIZE, run_before=replay(app, source, history, clock))


def test_quorum_lost(snap_compare: Any) -> None:
    down = {"consul_2": MemberStatus.FAILED, "consul_3": MemberStatus.FAILED}
    healthy = state(0, "consul-1", 7, {"consul-1": "7"})
    lost = replace(state(5, None, 7, {"consul-1": "7"}, **down), no_leader_confirmed_by="web-1")
    assert lost.view is not None
    history, clock = [healthy, lost], FixedClock(T0)
    rows = lost.view.rows
    cfg = RaftConfiguration(
        tuple(RaftServer(f"id-{n}", n, f"{ip}:8300", False, True) for n, ip in IPS.items()),
        12,
    )
    stale_config = build_raft(
        cfg, None, None, rows, stale=True, problems=(Problem("raft configuration", "no cluster leader", ""),)
    )
    app, source = console(history, clock, stale_config)
    assert snap_compare(app, terminal_size=SIZE, run_before=replay(app, source, history, clock))


def test_stale_data_is_dimmed_and_says_unknown(snap_compare: Any) -> None:
    history = [state(0, "consul-1", 7, {"consul-1": "7"}), failed(T0 + 12, "cannot reach the Consul agent")]
    clock = FixedClock(T0)
    app, source = console(history, clock, raft(history[0]))
    assert snap_compare(app, terminal_size=SIZE, run_before=replay(app, source, history, clock))


def test_a_leader_whose_agent_does_not_answer(snap_compare: Any) -> None:
    history, clock = [state(0, "consul-1", 7, {"consul-1": "7"})], FixedClock(T0)
    probe = LeaderProbe(T0, "consul-1", False, error="connection refused")
    app, source = console(history, clock, raft(history[0]), probe=probe)
    assert snap_compare(app, terminal_size=SIZE, run_before=replay(app, source, history, clock))


def test_quorum_breaking_confirm_asks_for_the_name(snap_compare: Any) -> None:
    history, clock = [state(0, "consul-1", 7, {"consul-1": "7"})], FixedClock(T0)
    demo = DemoControl("http://127.0.0.1:1", transport=httpx.MockTransport(lambda _r: httpx.Response(200, json={})))
    app, source = console(history, clock, raft(history[0], sick={"consul-3": 5.0}), demo=demo)
    assert snap_compare(app, terminal_size=SIZE, run_before=replay(app, source, history, clock, keys=("x",)))


def test_detail_dialog(snap_compare: Any) -> None:
    history, clock = [state(0, "consul-1", 7, {"consul-1": "7"})], FixedClock(T0)
    app, source = console(history, clock, raft(history[0]))
    keys = ("j", "enter")
    assert snap_compare(app, terminal_size=SIZE, run_before=replay(app, source, history, clock, keys=keys))


def test_narrow_terminal_80x24(snap_compare: Any) -> None:
    history, clock = failover()[-3:], FixedClock(T0)
    app, source = console(history, clock, raft(history[-1], leader="consul-2", failed_nodes=("consul-1",)))
    assert snap_compare(app, terminal_size=(80, 24), run_before=replay(app, source, history, clock))


def test_wide_terminal_200x50_with_the_detail_pane(snap_compare: Any) -> None:
    history, clock = failover()[-3:], FixedClock(T0)
    app, source = console(history, clock, raft(history[-1], leader="consul-2", failed_nodes=("consul-1",)))
    keys = ("j",)
    assert snap_compare(app, terminal_size=(200, 50), run_before=replay(app, source, history, clock, keys=keys))
