"""The console against a `tagjoin sim serve` cluster, without --demo: real HTTP agents on fixed ports.

The console is built as `tagjoin console --agent-map FILE --control-url URL` builds it, from the
environment `sim serve` prints; the cluster is `sim serve`'s (tagjoin.sim.live), started with
`--port-base` so that a restarted one listens where the first did.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot

from tagjoin.core.cli import aws_settings, build_parser, consul_settings, scope_settings
from tagjoin.core.model import MemberStatus
from tagjoin.core.raft_view import Role
from tagjoin.sim.live.live_cluster import LiveSim, PortTaken, start_live
from tagjoin.sim.live.serve import describe, write_agent_map
from tagjoin.tui.actions import ActionName
from tagjoin.tui.app import ConsoleApp
from tagjoin.tui.log_entries import EventKind
from tagjoin.tui.screens.confirm import ConfirmScreen
from tagjoin.tui.widgets.event_log import EventLog
from tagjoin.tui.widgets.members import MembersTable
from tagjoin.tui.wiring import Console, ConsoleOptions, build_console

SIZE = (160, 48)
SPEED = 2.0
INTERVAL = 0.4


def free_base(span: int = 12) -> int:
    """A port base with `span` free ports after it (checked, not reserved)."""
    for base in range(28_400, 40_000, 97):
        sockets = []
        try:
            for port in range(base, base + span):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free port range on loopback")


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[LiveSim, int, Path]]:
    base = free_base()
    live = start_live(servers=3, clients=2, raft_multiplier=1, speed=SPEED, port_base=base)
    agents = tmp_path / "agents.json"
    write_agent_map(agents, live.agent_urls)
    for key, value in live.environment().items():
        monkeypatch.setenv(key, value)
    try:
        yield live, base, agents
    finally:
        live.stop()


def console_for(live: LiveSim, agents: Path) -> Console:
    """What `tagjoin console --agent-map FILE --control-url URL` builds from `sim serve`'s environment."""
    args = build_parser().parse_args(
        ["console", "--agent-map", str(agents), "--control-url", live.control_url, "--interval", f"{INTERVAL}s"]
    )
    options = ConsoleOptions(interval=args.interval, agent_map=args.agent_map)
    return build_console(
        consul_settings(args), aws_settings(args), scope_settings(args), options, control_url=args.control_url
    )


async def until(pilot: Pilot[None], what: str, cond: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.05) + 1):
        if cond():
            return
        if time.monotonic() > deadline:
            break
        await pilot.pause(0.05)
    app = pilot.app
    tail = [e.message for e in app.query_one(EventLog).entries[-10:]] if isinstance(app, ConsoleApp) else []
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last events: {tail}")


def leader(app: ConsoleApp) -> str | None:
    return app.view.leader_node if app.view else None


def status(app: ConsoleApp, node: str) -> MemberStatus | None:
    row = next((r for r in app.view.rows if r.name == node), None) if app.view else None
    return row.status if row else None


def settled(app: ConsoleApp) -> bool:
    return app.view is not None and app.view.tag_agrees and app.last is not None and app.last.ok


async def act(pilot: Pilot[None], app: ConsoleApp, key: str, node: str | None = None) -> None:
    if node is not None:
        table = app.query_one(MembersTable)
        table.focus()
        await pilot.press("g", *["j"] * table.get_row_index(node))
        await until(pilot, f"{node} selected", lambda: table.selected_key == node, timeout=5)
    await pilot.press(key)
    if node is not None:
        await until(pilot, "the confirm dialog", lambda: isinstance(app.screen, ConfirmScreen), timeout=5)
        await pilot.press("y")
        await until(pilot, "the dialog to close", lambda: not isinstance(app.screen, ConfirmScreen), timeout=5)


def logged(app: ConsoleApp, kind: EventKind, text: str) -> bool:
    return any(e.kind is kind and text in e.message for e in app.query_one(EventLog).entries)


@pytest.mark.sweep  # a minute of real time on fixed loopback ports: run on demand (-m sweep)
async def test_leave_rejoin_reconcile_a_fault_and_a_restarted_sim_serve(served: tuple[LiveSim, int, Path]) -> None:
    live, base, agents = served
    built = console_for(live, agents)
    app = built.app
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(
                pilot,
                "a leader with the tag",
                lambda: settled(app) and app.view is not None and app.term_for(app.view) is not None,
            )
            old = leader(app)
            assert old is not None
            # Each node's own agent through the map file: the term, and fault keys through --control-url.
            assert app.actions.demo and app.probe is not None and app.probe.leads

            await act(pilot, app, "l", old)
            await until(pilot, "a new leader with the tag", lambda: leader(app) not in (None, old) and settled(app))
            assert logged(app, EventKind.ACTION, f"{old} is leaving (agent {live.agent_urls[old]})")

            def can_rejoin() -> bool:
                return app.actions.availability(app.capture(ActionName.REJOIN, old)).ok

            await until(pilot, f"rejoin offered for {old}", can_rejoin)
            roles: list[Role | None] = []
            await act(pilot, app, "s", old)

            def promoted() -> bool:
                raft = app.raft
                roles.append(raft.role_of(old) if raft else None)
                return roles[-1] is Role.VOTER and status(app, old) == MemberStatus.ALIVE

            await until(pilot, f"{old} a voter again", promoted, timeout=60)
            # The rejoined server showed as a non-voter until autopilot promoted it.
            assert Role.NON_VOTER in roles, roles
            assert MembersTable.COLUMNS[4][0] == "role"

            await act(pilot, app, "t")  # reconcile: no dialog
            reconciled = f"{leader(app)}: no-change"  # the leader already carries the tag of its term
            await until(pilot, "the reconcile pass", lambda: logged(app, EventKind.ACTION, reconciled), timeout=20)
            await act(pilot, app, "h")  # a fault key: heal every partition
            await until(pilot, "the heal", lambda: logged(app, EventKind.ACTION, "healed every partition"))
            assert not [e.message for e in app.query_one(EventLog).entries if e.kind is EventKind.ACTION_FAILED]

            # sim serve stops; the console says so; it starts again on the same ports and the console recovers.
            live.stop()
            await until(
                pilot, "the leader bar to say stale", lambda: "unknown (stale" in str(app.query_one("#leader").render())
            )
            assert app.freshness().stale
            try:
                again = start_live(servers=3, clients=2, raft_multiplier=1, speed=SPEED, port_base=base)
            except PortTaken as exc:
                pytest.skip(f"the ports were taken meanwhile: {exc}")
            try:
                write_agent_map(agents, again.agent_urls)
                await until(pilot, "the console back on the new cluster", lambda: not app.freshness().stale)
                await until(pilot, "a leader with the tag again", lambda: settled(app) and leader(app) is not None)
                assert logged(app, EventKind.FETCH_RECOVERED, "refresh works again")
            finally:
                again.stop()
    finally:
        for close in built.closers:
            close()


def test_port_base_fixes_every_port_and_refuses_taken_ones(tmp_path: Path) -> None:
    base = free_base()
    live = start_live(servers=3, clients=1, raft_multiplier=1, port_base=base)
    try:
        assert live.control_url == f"http://127.0.0.1:{base}"
        assert live.ec2_endpoint == f"http://127.0.0.1:{base + 1}"
        assert list(live.agent_urls.values()) == [f"http://127.0.0.1:{base + 2 + i}" for i in range(4)]
        path = tmp_path / "agents.json"
        write_agent_map(path, live.agent_urls)
        assert json.loads(path.read_text()) == {"agents": live.agent_urls}
        assert f"--agent-map {path} --control-url {live.control_url}" in describe(live, path)
    finally:
        live.stop()
    with socket.socket() as holder:  # another process on one agent's port
        holder.bind(("127.0.0.1", base + 3))
        holder.listen()
        with pytest.raises(PortTaken, match=f"ports in use: {base + 3}"):
            start_live(servers=3, clients=1, raft_multiplier=1, port_base=base)
