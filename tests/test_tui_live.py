"""The console end to end on the embedded cluster: real HTTP agents, moto EC2, the control API.

The app is built exactly as `tagjoin console --demo` builds it (tagjoin.tui.wiring), on a simulated
cluster paced to the wall clock (tagjoin.sim.live.live_cluster). Every wait polls a condition, bounded in rounds
and wall time; the cluster's ground truth (sim's Raft leader, the EC2 tag) is the referee.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from textual.pilot import Pilot

from tagjoin.core.model import MemberStatus
from tagjoin.sim.live.live_cluster import LiveSim, start_live
from tagjoin.tui.actions import SPECS, ActionName, ReadOnlyError, Request
from tagjoin.tui.app import ACTION_KEYS, ConsoleApp
from tagjoin.tui.demo import endpoints_of
from tagjoin.tui.log_entries import EventKind
from tagjoin.tui.screens.confirm import ConfirmScreen
from tagjoin.tui.widgets.event_log import EventLog
from tagjoin.tui.widgets.header import StatusHeader
from tagjoin.tui.widgets.leader_bar import LeaderBar
from tagjoin.tui.widgets.members import MembersTable
from tagjoin.tui.wiring import Console, ConsoleOptions, build_console, demo_settings

SIZE = (160, 48)
SPEED = 2.0  # virtual seconds per wall second: a leave's 8 s drain takes 4 s
INTERVAL = 0.4  # the console's refresh, wall seconds
TAG = "consul-leader"


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveSim]:
    # demo_settings fills in dummy AWS credentials with setdefault; keep them out of other tests.
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "demo")
    sim = start_live(servers=3, clients=2, raft_multiplier=1, speed=SPEED)
    try:
        yield sim
    finally:
        sim.stop()


def console(live: LiveSim, *, read_only: bool = False, agent: str | None = None) -> Console:
    """What `tagjoin console --demo` builds; `agent` points it at another agent than the default."""
    consul, aws, scope = demo_settings(endpoints_of(live, consul_address=agent))
    options = ConsoleOptions(interval=INTERVAL, read_only=read_only)
    return build_console(consul, aws, scope, options, control_url=live.control_url)


# -- ground truth and console state ---------------------------------------------------------


def truth_leader(live: LiveSim) -> str | None:
    return live.driver.call(live.scenario.cluster.leader)


def truth_tag_on(live: LiveSim) -> set[str]:
    """Nodes whose running instance carries the leader tag, as EC2 (moto) holds it."""

    def read() -> set[str]:
        by_iid = {iid: node for node, iid in live.scenario.node_instance.items()}
        return {by_iid.get(iid, iid) for iid in live.scenario.world.tag_values(TAG)}

    return live.driver.call(read)


def settled(live: LiveSim) -> str | None:
    """The leader, once the tag is on it and on nothing else."""
    leader = truth_leader(live)
    return leader if leader is not None and truth_tag_on(live) == {leader} else None


def leader(app: ConsoleApp) -> str | None:
    return app.view.leader_node if app.view else None


def status(app: ConsoleApp, node: str) -> MemberStatus | None:
    view = app.view
    row = next((r for r in view.rows if r.name == node), None) if view else None
    return row.status if row else None


def agrees_with(app: ConsoleApp, live: LiveSim, node: str) -> bool:
    """The console shows `node` leading with the tag, and the cluster and EC2 say the same."""
    view = app.view
    return (
        view is not None
        and view.leader_node == node
        and view.tag_agrees
        and app.last is not None
        and app.last.ok
        and settled(live) == node
    )


def events(app: ConsoleApp) -> list[tuple[EventKind, str]]:
    return [(e.kind, e.message) for e in app.query_one(EventLog).entries]


def plain(widget: LeaderBar | StatusHeader) -> str:
    return str(widget.render())


async def until(pilot: Pilot[None], what: str, cond: Callable[[], bool], timeout: float = 20.0) -> None:
    """Let the app run until `cond`, at most `timeout` wall seconds (and that many 50 ms rounds)."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.05) + 1):
        if cond():
            return
        if time.monotonic() > deadline:
            break
        await pilot.pause(0.05)
    app = pilot.app
    tail = "\n".join(f"  {k}: {m}" for k, m in events(app)[-12:]) if isinstance(app, ConsoleApp) else ""
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last events:\n{tail}")


async def select(pilot: Pilot[None], app: ConsoleApp, node: str) -> None:
    """Move the cursor to `node` with the keys an operator would use."""
    table = app.query_one(MembersTable)
    table.focus()
    await pilot.press("g", *["j"] * table.get_row_index(node))
    await until(pilot, f"{node} selected", lambda: table.selected_key == node, timeout=5)


async def confirm(pilot: Pilot[None], app: ConsoleApp, key: str, node: str) -> Request:
    await pilot.press(key)
    await until(pilot, "the confirm dialog", lambda: isinstance(app.screen, ConfirmScreen), timeout=5)
    screen = app.screen
    assert isinstance(screen, ConfirmScreen)
    assert screen.request.target is not None and screen.request.target.node == node
    await pilot.press("y")
    await until(pilot, "the dialog to close", lambda: not isinstance(app.screen, ConfirmScreen), timeout=5)
    return screen.request


async def until_tagged_leader(pilot: Pilot[None], app: ConsoleApp, live: LiveSim) -> None:
    await until(pilot, "a leader with the tag", lambda: agrees_with(app, live, leader(app) or ""))


# -- tests ----------------------------------------------------------------------------------


@pytest.mark.slow
async def test_leave_the_leader_then_rejoin_it(live: LiveSim) -> None:
    built = console(live)
    app = built.app
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until_tagged_leader(pilot, app, live)
            old = leader(app)
            assert old is not None
            await select(pilot, app, old)
            await confirm(pilot, app, "l", old)

            await until(
                pilot,
                "a new leader holding the tag",
                lambda: leader(app) not in (None, old) and agrees_with(app, live, leader(app) or ""),
            )
            new = leader(app)
            assert new is not None
            log = events(app)
            assert (EventKind.ACTION, f"{old} is leaving (agent {live.agent_urls[old]})") in log
            assert any(k is EventKind.LEADER_CHANGED and f"{old} → {new}" in m for k, m in log), log
            assert any(k is EventKind.TAG_HANDOFF and f"agrees with leader {new}" in m for k, m in log), log
            bar = plain(app.query_one(LeaderBar))
            assert new in bar and "tag agrees" in bar
            assert app.query_one(MembersTable).get_cell(new, "mark").plain == "★⚑"

            # The member reads `left` seconds before its agent has drained and exited; rejoin
            # is offered only once the agent is down (the control API refuses a running one).
            def can_rejoin() -> bool:
                return app.actions.availability(app.capture(ActionName.REJOIN, old)).ok

            await until(pilot, f"{old} left and its agent stopped", lambda: status(app, old) == MemberStatus.LEFT)
            await until(pilot, f"rejoin offered for {old}", can_rejoin)
            await select(pilot, app, old)
            await confirm(pilot, app, "s", old)
            await until(pilot, f"{old} alive again", lambda: status(app, old) == MemberStatus.ALIVE)
            log = events(app)
            assert not [m for k, m in log if k is EventKind.ACTION_FAILED], log
            assert any(k is EventKind.MEMBER_ALIVE and old in m for k, m in log), log
            assert live.driver.call(lambda: live.scenario.cluster.member_status(new, old)) == MemberStatus.ALIVE
            # The old leader came back as a follower; leader and tag stayed put.
            assert agrees_with(app, live, new)
    finally:
        for close in built.closers:
            close()


async def test_crashing_the_leader_fails_over_while_the_console_reads_through_another_agent(live: LiveSim) -> None:
    deadline = time.monotonic() + 20
    while settled(live) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    old = settled(live)
    assert old is not None, "no leader holding the tag"
    # The worst case: the console's own agent is the leader's, and the leader is crashed.
    built = console(live, agent=live.agent_urls[old])
    app = built.app
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, f"{old} leading with the tag", lambda: agrees_with(app, live, old))
            assert app.last is not None and app.last.via is None
            await select(pilot, app, old)
            await confirm(pilot, app, "x", old)

            await until(
                pilot,
                "failover and tag handoff",
                lambda: leader(app) not in (None, old) and agrees_with(app, live, leader(app) or ""),
            )
            new = leader(app)
            log = events(app)
            assert (EventKind.ACTION, f"crashed {old}") in log
            assert any(k is EventKind.AGENT_FALLBACK for k, _ in log), log
            assert any(k is EventKind.TAG_HANDOFF and f"agrees with leader {new}" in m for k, m in log), log
            assert app.last is not None and app.last.via is not None and app.last.via != old
            assert f"via {app.last.via}'s agent" in plain(app.query_one(StatusHeader))
            assert new is not None and new in plain(app.query_one(LeaderBar))
    finally:
        for close in built.closers:
            close()


async def test_read_only_refuses_every_action(live: LiveSim) -> None:
    built = console(live, read_only=True)
    app = built.app
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until_tagged_leader(pilot, app, live)
            before = leader(app)
            assert before is not None
            assert "READ-ONLY" in plain(app.query_one(StatusHeader))
            await select(pilot, app, before)
            applied = app.applied
            for key, _name, _label in ACTION_KEYS:
                await pilot.press(key)
                await pilot.pause()
                assert not isinstance(app.screen, ConfirmScreen), key
            # Nothing was asked of the cluster: no action logged, no palette entry to run one.
            titles = {spec.title for spec in SPECS.values()}
            assert not [c.title for c in app.palette_commands() if c.title.split(" ")[0] in titles]
            for name in ActionName:
                assert app.check_action("act", (name.value,)) is not True, name
                with pytest.raises(ReadOnlyError):
                    app.actions.perform(app.capture(name, before))
            await until(pilot, "two more refreshes", lambda: app.applied >= applied + 2)
            assert not [k for k, _ in events(app) if k in (EventKind.ACTION, EventKind.ACTION_FAILED)]
            nodes = live.driver.call(lambda: {n: (x.up, x.paused) for n, x in live.scenario.cluster.nodes.items()})
            assert all(up and not paused for up, paused in nodes.values()), nodes
            assert len(live.driver.call(live.scenario.cluster.connected_groups)) == 1
            assert agrees_with(app, live, before)
    finally:
        for close in built.closers:
            close()


async def test_confirm_acts_on_the_node_captured_when_the_dialog_opened(live: LiveSim) -> None:
    built = console(live)
    app = built.app
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until_tagged_leader(pilot, app, live)
            table = app.query_one(MembersTable)
            target = live.scenario.cluster.clients()[0]
            await select(pilot, app, target)
            await pilot.press("l")
            await until(pilot, "the confirm dialog", lambda: isinstance(app.screen, ConfirmScreen), timeout=5)

            # Behind the dialog the table re-sorts and the cursor lands on another node, while
            # refreshes keep arriving.
            table.sort("name", key=str, reverse=True)
            table.move_cursor(row=0)
            under_cursor = table.selected_key
            assert under_cursor is not None and under_cursor != target
            applied = app.applied
            await until(pilot, "refreshes behind the dialog", lambda: app.applied >= applied + 2)
            assert table.selected_key == under_cursor

            await pilot.press("y")
            await until(
                pilot,
                f"{target} leaving",
                lambda: status(app, target) in (MemberStatus.LEAVING, MemberStatus.LEFT),
            )
            log = events(app)
            assert (EventKind.ACTION, f"{target} is leaving (agent {live.agent_urls[target]})") in log
            assert status(app, under_cursor) == MemberStatus.ALIVE
            observer = truth_leader(live)
            assert observer is not None
            truth = live.driver.call(lambda: live.scenario.cluster.member_status(observer, target))
            assert truth in (MemberStatus.LEAVING, MemberStatus.LEFT)
            assert live.driver.call(lambda: live.scenario.cluster.member_status(observer, under_cursor)) == (
                MemberStatus.ALIVE
            )
    finally:
        for close in built.closers:
            close()
