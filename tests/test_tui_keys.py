"""The console's newer keys and verdicts under Textual's Pilot, on scripted snapshots and Raft facts."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC
from pathlib import Path

import httpx
from textual.pilot import Pilot
from textual.widgets import Button, Input

from tagjoin.core.model import (
    AutopilotHealth,
    HealthCheck,
    MemberStatus,
    NodeService,
    RaftConfiguration,
    RaftServer,
    ServerHealth,
)
from tagjoin.core.raft_view import RaftPicture, build_raft
from tagjoin.tui.actions import ActionService
from tagjoin.tui.agents import TemplateAgents
from tagjoin.tui.app import ConsoleApp
from tagjoin.tui.demo_control import DemoControl
from tagjoin.tui.screens.confirm import ConfirmScreen
from tagjoin.tui.screens.detail import DetailScreen
from tagjoin.tui.source import LeaderProbe, NodeExtras, Snapshot
from tagjoin.tui.widgets.event_log import EventLog
from tagjoin.tui.widgets.findings import FindingsPanel
from tagjoin.tui.widgets.instances import InstancesTable
from tagjoin.tui.widgets.leader_bar import LeaderBar
from tagjoin.tui.widgets.members import MembersTable
from tagjoin.tui.widgets.node_detail import NodeDetail
from tagjoin.tui.widgets.raft_panel import QuorumBar
from tests.console_doubles import TAG_KEY, FakeConsul, FixedClock, ScriptedCluster, failed, instance, member, snapshot

T0 = 1_700_000_000.0
SIZE = (130, 36)
# Names sort one way, addresses the other: sorting by address visibly reorders the table.
IPS = {"node-a": "10.0.1.3", "node-b": "10.0.1.2", "node-c": "10.0.1.1"}


def state(at: float = T0, **status: MemberStatus) -> Snapshot:
    members = [member(n, ip, status.get(n.replace("-", "_"), MemberStatus.ALIVE)) for n, ip in IPS.items()]
    members.append(member("web", "10.0.2.1", server=False))
    insts = [instance(f"i-{n[-1]}", ip, tags={TAG_KEY: "4"} if n == "node-a" else {}) for n, ip in IPS.items()]
    insts.append(instance("i-w", "10.0.2.1"))
    return snapshot(at, IPS["node-a"], members, insts, term=4)


def raft_of(snap: Snapshot, *, sick: tuple[str, ...] = (), non_voters: tuple[str, ...] = ()) -> RaftPicture:
    assert snap.view is not None
    cfg = RaftConfiguration(
        tuple(RaftServer(f"id-{n}", n, f"{ip}:8300", n == "node-a", n not in non_voters, 40) for n, ip in IPS.items()),
        9,
    )
    servers = tuple(
        ServerHealth(
            f"id-{n}", n, f"{ip}:8300", "alive", "1.20.1", n == "node-a", n not in non_voters,
            n not in sick, 3.5 if n in sick else 0.02, 4, 40, "2023-11-14T22:00:00Z",
        )
        for n, ip in IPS.items()
    )  # fmt: skip
    voters = [n for n in IPS if n not in non_voters]
    healthy = sum(1 for n in voters if n not in sick)
    health = AutopilotHealth(not sick, max(0, healthy - (len(voters) // 2 + 1)), servers)
    return build_raft(cfg, health, None, snap.view.rows)


def make(
    snaps: list[Snapshot],
    *,
    raft: RaftPicture | None = None,
    probe: LeaderProbe | None = None,
    demo: DemoControl | None = None,
    export_dir: Path | None = None,
    clock: FixedClock | None = None,
) -> tuple[ConsoleApp, ScriptedCluster, FakeConsul]:
    extras = {
        "node-b": NodeExtras(
            T0,
            "node-b",
            (HealthCheck("node-b", "serfHealth", "Serf Health Status", "passing", "Agent alive and reachable"),),
            (NodeService("consul", "consul", 8300),),
        )
    }
    source = ScriptedCluster(snaps, raft=raft or raft_of(snaps[0]), probe=probe, extras=extras)
    consul = FakeConsul()
    actions = ActionService(consul, TemplateAgents(), demo=demo)
    app = ConsoleApp(source, actions, interval=3600, clock=clock or FixedClock(T0), tz=UTC, export_dir=export_dir)
    return app, source, consul


async def settle(pilot: Pilot[None], done: Callable[[], bool], what: str) -> None:
    for _ in range(200):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if done():
            return
    raise AssertionError(f"timed out waiting for {what}")


async def ready(pilot: Pilot[None], app: ConsoleApp) -> None:
    await settle(pilot, lambda: app.applied >= 1 and app.raft is not None, "the first refresh and Raft read")


def plain(app: ConsoleApp, widget: type[LeaderBar] | type[QuorumBar] | type[FindingsPanel]) -> str:
    return str(app.query_one(widget).render())


async def test_enter_opens_the_detail_with_checks_and_services() -> None:
    app, _, _ = make([state()])
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("j", "enter")
        await settle(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail")
        screen = app.screen
        assert isinstance(screen, DetailScreen) and screen.node == "node-b"
        await settle(pilot, lambda: "serfHealth" in str(screen.query_one(NodeDetail).render()), "the checks")
        text = str(screen.query_one(NodeDetail).render())
        assert "voter · healthy" in text and "consul :8300" in text and "i-b · running" in text
        await pilot.press("escape")
        await settle(pilot, lambda: not isinstance(app.screen, DetailScreen), "the detail to close")


async def test_o_sorts_the_members_and_a_header_click_reverses() -> None:
    app, _, _ = make([state()])
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        table = app.query_one(MembersTable)
        assert [r.key.value for r in table.ordered_rows] == ["node-a", "node-b", "node-c", "web"]
        await pilot.press("o")  # name → address
        await settle(pilot, lambda: table.sort_column == "address", "the sort")
        assert [r.key.value for r in table.ordered_rows] == ["node-c", "node-b", "node-a", "web"]
        assert "by Address ↑" in str(table.border_title)
        await pilot.click(MembersTable, offset=(15, 1))  # the Address header: same column, reversed
        await settle(pilot, lambda: table.sort_reverse, "the reverse sort")
        assert [r.key.value for r in table.ordered_rows] == ["web", "node-a", "node-b", "node-c"]


async def test_c_copies_the_join_command_for_the_targets_now() -> None:
    app, _, _ = make([state()])
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        assert "join targets now: 10.0.1.3" in str(app.query_one("#targets").render())
        await pilot.press("c")
        await pilot.pause()
        assert app.clipboard == "consul join 10.0.1.3"
        assert any("copied to the clipboard" in e.message for e in app.query_one(EventLog).entries)


async def test_w_exports_the_view_and_the_event_log(tmp_path: Path) -> None:
    app, _, _ = make([state()], export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("w")
        await pilot.pause()
        (path,) = tmp_path.glob("tagjoin-console-*.json")
        doc = json.loads(path.read_text())
        assert doc["status"]["leader"]["node"] == "node-a"
        assert doc["status"]["raft"]["voters"] == 3 and doc["join_targets"] == ["10.0.1.3"]
        assert [e["kind"] for e in doc["events"]][:1] == ["first-look"]


async def test_f_finds_in_the_event_log_and_escape_clears(tmp_path: Path) -> None:
    app, _, _ = make([state()], export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        log = app.query_one(EventLog)
        await pilot.press("w")  # one more entry that does not match
        await pilot.press("f", *"leader")
        await pilot.pause()
        assert isinstance(app.focused, Input) and log.query_text == "leader"
        assert 0 < log.shown < len(log.entries)
        await pilot.press("escape")
        await pilot.pause()
        assert log.query_text == "" and log.shown == len(log.entries)


async def test_prune_force_leaves_a_left_member_with_prune() -> None:
    app, _, consul = make([state(node_c=MemberStatus.LEFT)])
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("j", "j", "P")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirm dialog")
        await pilot.press("y")
        await settle(pilot, lambda: ("http://127.0.0.1:8500", "force_leave", "node-c prune") in consul.calls, "prune")


async def test_a_quorum_breaking_crash_needs_the_node_name_typed() -> None:
    posted: list[str] = []

    def control_api(request: httpx.Request) -> httpx.Response:
        posted.append(request.url.path)
        return httpx.Response(200, json={"ok": True})

    demo = DemoControl("http://127.0.0.1:1", transport=httpx.MockTransport(control_api))
    snap = state()
    app, _, _ = make([snap], raft=raft_of(snap, sick=("node-c",)), demo=demo)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("j", "x")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirm dialog")
        screen = app.screen
        assert isinstance(screen, ConfirmScreen) and screen.type_to_confirm == "node-b"
        impact = screen.request.impact
        assert impact is not None and any("loses quorum" in line for _, line in impact.lines)
        assert isinstance(app.focused, Input)
        await pilot.press("y")  # typed into the box, not a confirmation
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and posted == []
        assert screen.query_one("#confirm", Button).disabled
        await pilot.press("backspace", *"node-b")
        await pilot.pause()
        assert not screen.query_one("#confirm", Button).disabled
        await pilot.press("enter")
        await settle(pilot, lambda: posted == ["/control/crash/node-b"], "the crash")


async def test_stale_data_has_no_green_verdict() -> None:
    clock = FixedClock(T0)
    app, source, _ = make([state()], clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        assert "tag agrees" in plain(app, LeaderBar) and "✔ no drift" in plain(app, FindingsPanel)
        clock.t = T0 + 12
        source.push(failed(clock.t, "cannot reach the Consul agent"))
        applied = app.applied
        app.refresh_now()
        await settle(pilot, lambda: app.applied > applied, "the failed refresh")
        bar, drift, quorum = plain(app, LeaderBar), plain(app, FindingsPanel), plain(app, QuorumBar)
        assert "tag agrees" not in bar and "unknown (stale 12s)" in bar
        assert drift.startswith("▲ unknown (stale 12s)") and "✔" not in drift
        assert "unknown (stale 12s)" in quorum
        assert app.query_one("#body").has_class("-stale")


async def test_a_leader_whose_agent_does_not_answer_is_marked() -> None:
    probe = LeaderProbe(T0, "node-a", False, error="connection refused")
    app, _, _ = make([state()], probe=probe)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await settle(pilot, lambda: app.probe is not None, "the probe")
        bar = plain(app, LeaderBar)
        assert "its agent does not answer" in bar and "tag agrees" not in bar
        assert app.query_one(LeaderBar).has_class("-unknown")


async def test_at_80_columns_help_quit_and_the_tag_column_stay() -> None:
    app, _, _ = make([state()])
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        assert app.screen.has_class("-narrow")
        assert "tag" in app.query_one(MembersTable).visible_columns
        assert not app.query_one(InstancesTable).display or not app.query_one(InstancesTable).region.width
        keys = [key for key, active in app.screen.active_bindings.items() if active.binding.show][:2]
        assert keys == ["question_mark", "q"]
