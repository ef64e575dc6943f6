"""The console under Textual's Pilot, fed deterministic snapshots (no network, no sleeps)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC
from typing import Any

import httpx
import pytest
from rich.text import Text
from textual.app import App, ComposeResult
from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Input
from textual.widgets.data_table import ColumnKey

from tagjoin.core.model import Member, MemberStatus
from tagjoin.tui.actions import SPECS, ActionName, ActionService, ReadOnlyError
from tagjoin.tui.agents import TemplateAgents
from tagjoin.tui.app import ConsoleApp
from tagjoin.tui.demo_control import DemoControl
from tagjoin.tui.log_entries import EventKind
from tagjoin.tui.screens.confirm import ConfirmScreen
from tagjoin.tui.screens.help import HelpScreen
from tagjoin.tui.source import Snapshot
from tagjoin.tui.widgets.event_log import EventLog
from tagjoin.tui.widgets.header import StatusHeader
from tagjoin.tui.widgets.keyed_table import ROWS_PER_STEP, KeyedTable
from tagjoin.tui.widgets.members import MembersTable
from tests.console_doubles import TAG_KEY, FakeConsul, FixedClock, ScriptedSource, failed, instance, member, snapshot

T0 = 1_700_000_000.0
SIZE = (130, 36)


def members(**status: MemberStatus) -> list[Member]:
    names = {"node-a": "10.0.1.1", "node-b": "10.0.1.2", "node-c": "10.0.1.3"}
    return [member(n, ip, status.get(n.replace("-", "_"), MemberStatus.ALIVE)) for n, ip in names.items()]


def healthy(at: float = T0, **status: MemberStatus) -> Snapshot:
    insts = [
        instance("i-a", "10.0.1.1", tags={TAG_KEY: "4"}),
        instance("i-b", "10.0.1.2"),
        instance("i-c", "10.0.1.3"),
    ]
    return snapshot(at, "10.0.1.1", members(**status), insts, term=4)


def make_app(
    source: ScriptedSource,
    *,
    read_only: bool = False,
    consul: FakeConsul | None = None,
    demo: DemoControl | None = None,
) -> tuple[ConsoleApp, FakeConsul]:
    consul = consul or FakeConsul()
    actions = ActionService(consul, TemplateAgents(), read_only=read_only, demo=demo)
    # A huge interval: the timer never fires, refreshes happen when a test asks for them.
    return ConsoleApp(source, actions, interval=3600, clock=FixedClock(T0), tz=UTC), consul


async def settle(pilot: Pilot[None], done: Callable[[], bool], what: str) -> None:
    """Wait for workers and the message queue until `done`, a bounded number of rounds."""
    for _ in range(200):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if done():
            return
    raise AssertionError(f"timed out waiting for {what}")


async def refreshed(pilot: Pilot[None], app: ConsoleApp) -> None:
    before = app.applied
    assert app.refresh_now()
    await settle(pilot, lambda: app.applied > before, "a refresh")


def table(app: ConsoleApp) -> MembersTable:
    return app.query_one(MembersTable)


def keys(app: ConsoleApp) -> list[str | None]:
    return [r.key.value for r in table(app).ordered_rows]


async def test_rows_are_diffed_by_key_never_cleared() -> None:
    source = ScriptedSource([healthy()])
    app, _ = make_app(source)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.applied == 1, "the first refresh")
        t = table(app)
        assert keys(app) == ["node-a", "node-b", "node-c"]

        cleared: list[bool] = []

        def no_clear(columns: bool = False) -> MembersTable:
            cleared.append(columns)
            return t

        t.clear = no_clear  # type: ignore[method-assign]
        updates: list[tuple[object, object]] = []
        real_update = t.update_cell

        def spy(row_key: object, column_key: object, value: object, **kw: bool) -> None:
            updates.append((row_key, column_key))
            real_update(row_key, column_key, value, **kw)  # type: ignore[arg-type]

        t.update_cell = spy  # type: ignore[method-assign]
        t.move_cursor(row=2)  # node-c selected

        source.push(healthy(T0 + 2, node_b=MemberStatus.FAILED))
        await refreshed(pilot, app)
        assert cleared == []
        assert keys(app) == ["node-a", "node-b", "node-c"]
        assert t.get_cell("node-b", "status").plain == "✖ failed"
        assert updates == [("node-b", "status")]  # only the changed cell
        assert t.selected_key == "node-c"

        # A member appears that sorts first, another one goes: rows move, the cursor follows its node.
        gone = [m for m in members(node_b=MemberStatus.FAILED) if m.name != "node-a"]
        source.push(snapshot(T0 + 4, "10.0.1.2", [member("node-0", "10.0.1.9"), *gone], [instance("i-b", "10.0.1.2")]))
        await refreshed(pilot, app)
        assert cleared == []
        assert keys(app) == ["node-0", "node-b", "node-c"]
        assert t.selected_key == "node-c"
        logged = {(e.kind, e.subject) for e in app.query_one(EventLog).entries}
        assert {(EventKind.MEMBER_JOINED, "node-0"), (EventKind.MEMBER_REMOVED, "node-a")} <= logged


async def test_confirm_has_cancel_focused_and_acts_on_the_captured_node() -> None:
    source = ScriptedSource([healthy()])
    app, consul = make_app(source)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.applied == 1, "the first refresh")
        table(app).move_cursor(row=1)
        await pilot.press("l")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirm dialog")
        dialog = app.screen
        assert isinstance(dialog, ConfirmScreen)
        assert isinstance(app.focused, Button) and app.focused.id == "cancel"
        assert dialog.request.target is not None and dialog.request.target.node == "node-b"
        question = str(dialog.query_one("#confirm-question").render())
        assert "node-b" in question

        # A refresh arrives under the dialog (the panes behind wait until it closes) and the
        # cursor ends on another node: neither changes the captured target.
        source.push(snapshot(T0 + 2, "10.0.1.1", [member("node-0", "10.0.1.9"), *members()], []))
        await refreshed(pilot, app)
        assert keys(app) == ["node-a", "node-b", "node-c"]
        table(app).move_cursor(row=0)
        assert table(app).selected_key == "node-a"

        await pilot.press("tab", "enter")  # from Cancel to the confirm button
        await settle(pilot, lambda: any(c[1] == "leave" for c in consul.calls), "the leave call")
        assert [c for c in consul.calls if c[1] == "leave"] == [("http://10.0.1.2:8500", "leave", "")]
        await settle(pilot, lambda: keys(app) == ["node-0", "node-a", "node-b", "node-c"], "the deferred redraw")
        await settle(
            pilot,
            lambda: any(e.kind is EventKind.ACTION for e in app.query_one(EventLog).entries),
            "the action in the event log",
        )


async def test_cancel_does_nothing() -> None:
    app, consul = make_app(ScriptedSource([healthy()]))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.applied == 1, "the first refresh")
        await pilot.press("l")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirm dialog")
        await pilot.press("enter")  # Cancel has the focus
        await settle(pilot, lambda: not isinstance(app.screen, ConfirmScreen), "the dialog to close")
        assert [c for c in consul.calls if c[1] == "leave"] == []


async def test_read_only_dims_every_action_and_the_service_refuses() -> None:
    posted: list[httpx.Request] = []

    def control_api(request: httpx.Request) -> httpx.Response:
        posted.append(request)
        return httpx.Response(200, json={"ok": True})

    control = DemoControl("http://127.0.0.1:1", transport=httpx.MockTransport(control_api))
    app, consul = make_app(ScriptedSource([healthy(node_c=MemberStatus.FAILED)]), read_only=True, demo=control)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.applied == 1, "the first refresh")
        active = app.screen.active_bindings
        for key in ("l", "s", "F", "t", "x", "i", "h", "z", "e"):
            assert key in active, key
            assert active[key].enabled is False, key  # shown dimmed, blocked
        assert active["p"].enabled and active["q"].enabled

        for key in ("l", "F", "x", "t"):
            await pilot.press(key)
            await pilot.pause()
            assert not isinstance(app.screen, ConfirmScreen)
        # Straight to the action layer, past every UI check: it refuses on its own.
        for name in ActionName:
            with pytest.raises(ReadOnlyError):
                app.actions.perform(app.capture(name, "node-c"))
        app.request(ActionName.LEAVE, "node-a")
        await pilot.pause()
        assert all(c[1] in ("leader", "members", "agent_self") for c in consul.calls)
        assert posted == []
        offered = [c.title for c in app.palette_commands()]
        assert not [t for t in offered if any(t.startswith(spec.title) for spec in SPECS.values())], offered
        assert {"Refresh now", "Pause refresh", "Filter members", "Help"} <= set(offered)
        assert "READ-ONLY" in app.query_one(StatusHeader).text.plain


async def test_unavailable_action_keys_are_dimmed_for_the_selected_node() -> None:
    app, _ = make_app(ScriptedSource([healthy(node_c=MemberStatus.FAILED)]))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.applied == 1, "the first refresh")
        active = app.screen.active_bindings
        assert active["l"].enabled and not active["F"].enabled
        assert "x" not in active  # demo-only keys are hidden outside the demo
        await pilot.press("j", "j")
        assert table(app).selected_key == "node-c"
        active = app.screen.active_bindings
        assert not active["l"].enabled and active["F"].enabled
        assert not active["s"].enabled  # no demo and no --rejoin-command
        hint = str(app.query_one("#hint").render())
        assert "--rejoin-command" in hint
        await pilot.press("F")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the force-leave dialog")
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.request.describe() == "force-leave node-c"


async def test_a_dimmed_action_key_says_why_instead_of_doing_nothing() -> None:
    app, consul = make_app(ScriptedSource([healthy(node_c=MemberStatus.FAILED)]))
    said: list[str] = []

    def notify(message: str, **_kw: object) -> None:
        said.append(message)

    app.notify = notify  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.applied == 1, "the first refresh")
        await pilot.press("F")  # node-a is alive: force-leave is dimmed
        await pilot.press("j", "j", "l")  # node-c is failed: leave is dimmed
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("F")  # available on node-c: the dialog, no complaint
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the force-leave dialog")
        await pilot.press("l", "slash")  # inside the dialog, keys belong to the dialog
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert not app.query_one("#filter", Input).has_class("-open")
    assert said == [
        "cannot force-leave node-a: it is alive; only failed members can be force-left",
        "cannot make node-c leave: it is failed; only an alive member can leave",
    ]
    assert all(c[1] in ("leader", "members", "agent_self") for c in consul.calls)


async def test_stale_state_on_fetch_error_keeps_the_last_view() -> None:
    source = ScriptedSource([healthy()])
    app, _ = make_app(source)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.applied == 1, "the first refresh")
        clock = app.clock
        assert isinstance(clock, FixedClock)
        clock.advance(12)
        source.push(failed(clock.t, "GET /v1/status/leader: agent http://127.0.0.1:8500 unreachable"))
        await refreshed(pilot, app)
        header = app.query_one(StatusHeader)
        assert header.has_class("-stale")
        text = header.text.plain
        assert "STALE" in text and "last success 12s ago" in text
        assert "agent http://127.0.0.1:8500 unreachable" in text
        assert keys(app) == ["node-a", "node-b", "node-c"]  # the last view stays
        assert app.is_running
        assert app.query_one(EventLog).entries[-1].kind is EventKind.FETCH_FAILED

        clock.advance(2)
        source.push(healthy(clock.t))
        await refreshed(pilot, app)
        assert not header.has_class("-stale")
        assert "STALE" not in header.text.plain
        assert app.query_one(EventLog).entries[-1].kind is EventKind.FETCH_RECOVERED


async def test_only_one_poll_in_flight() -> None:
    release = threading.Event()

    class Slow(ScriptedSource):
        def fetch(self) -> Snapshot:
            release.wait(timeout=30)
            return super().fetch()

    source = Slow([healthy()])
    app, _ = make_app(source)
    async with app.run_test(size=SIZE) as pilot:
        assert not app.refresh_now()  # the mount's poll is still running
        await pilot.press("r")
        assert app.applied == 0
        release.set()
        await settle(pilot, lambda: app.applied == 1, "the first refresh")
        assert source.fetches == 1


async def test_help_screen_opens_and_closes() -> None:
    app, _ = make_app(ScriptedSource([healthy()]))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.applied == 1, "the first refresh")
        await pilot.press("question_mark")
        await settle(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
        body = str(app.screen.query_one("#help-body").render())
        assert "Force-leave" in body and "unavailable" in body
        await pilot.press("escape")
        await settle(pilot, lambda: not isinstance(app.screen, HelpScreen), "help to close")


async def test_filter_narrows_members_and_escape_clears_it() -> None:
    snap = snapshot(T0, "10.0.1.1", [*members(), member("web-1", "10.0.2.1", server=False)], [])
    app, _ = make_app(ScriptedSource([snap]))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.applied == 1, "the first refresh")
        await pilot.press("slash")
        assert isinstance(app.focused, Input) and app.focused.id == "filter"
        await pilot.press(*"client")
        await settle(pilot, lambda: keys(app) == ["web-1"], "the filtered table")
        assert "filter: client" in str(table(app).border_title)
        await pilot.press("enter")
        assert isinstance(app.focused, MembersTable)
        await pilot.press("escape")
        await settle(pilot, lambda: keys(app) == ["node-a", "node-b", "node-c", "web-1"], "the whole table")


async def test_command_palette_offers_actions_per_node() -> None:
    app, _ = make_app(ScriptedSource([healthy()]))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.applied == 1, "the first refresh")
        titles = [c.title for c in app.palette_commands()]
        assert {"Leave node-a", "Leave node-b", "Leave node-c"} <= set(titles)
        assert "Force-leave node-a" not in titles  # only what the action layer allows now
        await pilot.press("colon")
        await settle(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
        await pilot.press(*"leave node-c")
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirm dialog")
        assert isinstance(app.screen, ConfirmScreen)
        req = app.screen.request
        assert req.action is ActionName.LEAVE and req.target is not None and req.target.node == "node-c"


async def test_pause_stops_polling_and_shows_it() -> None:
    source = ScriptedSource([healthy()])
    app, _ = make_app(source)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.applied == 1, "the first refresh")
        await pilot.press("p")
        assert app.actions.refresh_paused
        assert "paused" in app.query_one(StatusHeader).text.plain
        app._tick()  # what the interval timer would do
        await pilot.pause()
        assert source.fetches == 1
        assert app.screen.active_bindings["p"].binding.action == "resume_refresh"
        await pilot.press("p")
        await settle(pilot, lambda: app.applied == 2, "the refresh after resume")
        assert not app.actions.refresh_paused


async def test_failed_action_is_reported_in_the_log() -> None:
    consul = FakeConsul(unreachable={"http://10.0.1.1:8500"})
    app, _ = make_app(ScriptedSource([healthy()]), consul=consul)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.applied == 1, "the first refresh")
        await pilot.press("l", "y")
        await settle(
            pilot,
            lambda: any(e.kind is EventKind.ACTION_FAILED for e in app.query_one(EventLog).entries),
            "the failure in the log",
        )
        entry = next(e for e in app.query_one(EventLog).entries if e.kind is EventKind.ACTION_FAILED)
        assert "unreachable" in entry.message and entry.subject == "node-a"


async def test_mouse_selects_a_member_row() -> None:
    app, _ = make_app(ScriptedSource([healthy()]))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.applied == 1, "the first refresh")
        # Border, header row, then node-a, node-b, node-c.
        assert await pilot.click(MembersTable, offset=(12, 4))
        await pilot.pause()
        assert table(app).selected_key == "node-c"


class Two(KeyedTable):
    COLUMNS = (("name", "Name"), ("value", "Value"))
    KEY_COLUMN = "name"


class TableHost(App[None]):
    def compose(self) -> ComposeResult:
        yield Two(id="t")


async def test_keyed_table_row_order_caches_follow_adds_removes_and_sorts() -> None:

    def row(name: str, value: str) -> tuple[str, tuple[Text, Text]]:
        return name, (Text(name), Text(value))

    def truth(t: Two) -> list[object]:
        return [r.key for r in DataTable.ordered_rows.fget(t)]  # type: ignore[attr-defined]

    async with TableHost().run_test() as pilot:
        t = pilot.app.query_one(Two)
        t.sync([row("b", "1"), row("d", "1")])
        t.sync([row("a", "1"), row("b", "2"), row("c", "1"), row("d", "1")])
        assert [r.key for r in t.ordered_rows] == truth(t) and [k for k, _ in t._y_offsets] == truth(t)
        assert [k.value for k, _ in t._y_offsets] == ["a", "b", "c", "d"]
        t.sync([row("a", "1"), row("d", "3")])
        t.sort("name", key=str, reverse=True)
        assert [r.key.value for r in t.ordered_rows] == ["d", "a"] and [k for k, _ in t._y_offsets] == truth(t)
        t.clear()
        assert t.ordered_rows == [] and t._y_offsets == []
        # Widths follow the widest cell, also when it narrows again.
        t.sync([row("x", "a long value"), row("y", "s")])
        await pilot.pause()  # Textual measures added rows on idle
        assert t.columns[ColumnKey("value")].content_width == len("a long value")
        t.sync([row("x", "s"), row("y", "s")])
        assert t.columns[ColumnKey("value")].content_width == len("Value")
        t.sync([row("x", "s"), row("y", "wider value")])
        assert t.columns[ColumnKey("value")].content_width == len("wider value")


async def test_keyed_table_fills_large_tables_in_steps_and_a_newer_sync_wins() -> None:

    def rows(names: list[str], value: str) -> list[tuple[str, tuple[Text, Text]]]:
        return [(n, (Text(n), Text(value))) for n in names]

    def keys(t: Two) -> list[str | None]:
        return [r.key.value for r in t.ordered_rows]

    async def settle(pilot: Any, t: Two) -> None:
        for _ in range(20):
            if not t.filling:
                return
            await pilot.pause()
        raise AssertionError("the fill did not finish")

    names = [f"n{i:05d}" for i in range(int(ROWS_PER_STEP * 2.5))]
    async with TableHost().run_test() as pilot:
        t = pilot.app.query_one(Two)
        t.sync(rows(names, "1"))
        assert len(t.rows) == ROWS_PER_STEP and t.filling
        await settle(pilot, t)
        assert keys(t) == names
        # Interleaved new names must be sorted in; a newer sync during a fill replaces its rest.
        more = sorted(names + [f"{n}x" for n in names])
        t.sync(rows(more, "2"))
        assert t.filling
        newest = more[::3]
        t.sync(rows(newest, "3"))
        await settle(pilot, t)
        assert keys(t) == newest
        assert {str(t.get_row(k)[1]) for k in newest} == {"3"}
        # Re-rendering changed rows is budgeted too; clearing drops what is still pending.
        t.clear()
        t.sync(rows(names, "4"))
        await settle(pilot, t)
        t.sync(rows(names, "5"))
        assert [str(t.get_row(k)[1]) for k in names].count("5") == ROWS_PER_STEP and t.filling
        await settle(pilot, t)
        assert {str(t.get_row(k)[1]) for k in names} == {"5"}
        t.sync(rows(more, "6"))
        t.clear()
        await pilot.pause()
        await pilot.pause()
        assert len(t.rows) == 0 and not t.filling
