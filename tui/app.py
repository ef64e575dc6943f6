"""The operator console: polls a SnapshotSource, renders it, and sends actions to the action layer.

Threading rule: workers (polling, actions) never touch widgets. They post messages; the
handlers below run on the UI thread and own every widget and every piece of state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import tzinfo
from functools import partial
from pathlib import Path

from rich.text import Text
from textual import events, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Input, Static
from textual.worker import Worker, get_current_worker

from tagjoin.core.errors import TagjoinError
from tagjoin.core.model import MemberStatus
from tagjoin.core.view import ClusterView, NodeRow, Severity
from tagjoin.tui.actions import SPECS, ActionName, ActionService, Aim, Request, Target
from tagjoin.tui.commands import ConsoleCommands, PaletteCommand
from tagjoin.tui.leader_history import History, sample_of
from tagjoin.tui.log_entries import Event, EventKind, Tracker, observe
from tagjoin.tui.messages import ActionDone, SnapshotReady
from tagjoin.tui.screens.confirm import ConfirmScreen
from tagjoin.tui.screens.help import HelpLine, HelpScreen
from tagjoin.tui.source import Snapshot, SnapshotSource
from tagjoin.tui.style import Palette
from tagjoin.tui.widgets.event_log import EventLog
from tagjoin.tui.widgets.findings import FindingsPanel
from tagjoin.tui.widgets.header import Freshness, StatusHeader
from tagjoin.tui.widgets.instances import InstancesTable
from tagjoin.tui.widgets.leader_bar import LeaderBar, leader_text
from tagjoin.tui.widgets.members import MembersTable
from tagjoin.tui.widgets.timeline_strip import TimelineStrip

# key, action, footer label; one binding per action of the action layer.
ACTION_KEYS: tuple[tuple[str, ActionName, str], ...] = (
    ("l", ActionName.LEAVE, "Leave"),
    ("s", ActionName.REJOIN, "Rejoin"),
    ("F", ActionName.FORCE_LEAVE, "Force-leave"),
    ("t", ActionName.RECONCILE, "Reconcile"),
    ("x", ActionName.CRASH, "Crash"),
    ("i", ActionName.PARTITION, "Isolate"),
    ("h", ActionName.HEAL, "Heal"),
    ("z", ActionName.PAUSE_LEADER, "Pause leader"),
    ("e", ActionName.THROTTLE, "Throttle EC2"),
)


_KEY_ACTION: dict[str, ActionName] = {key: name for key, name, _label in ACTION_KEYS}


class ConsoleApp(App[None]):
    CSS_PATH = Path(__file__).parent / "console.tcss"
    TITLE = "tagjoin console"
    # Not "*": that picks the first focusable widget, the (closed) filter box, and keys typed
    # while the console starts would vanish into it.
    AUTO_FOCUS = "#members"
    COMMANDS = App.COMMANDS | {ConsoleCommands}
    BINDINGS = [
        *(Binding(key, f"act('{name.value}')", label, id=name.value) for key, name, label in ACTION_KEYS),
        Binding("p", "pause_refresh", "Pause", id="pause"),
        Binding("p", "resume_refresh", "Resume", id="resume"),
        Binding("r", "refresh_now", "Refresh", id="refresh"),
        # Priority: handled as the key arrives, so what is typed right after `/` lands in the box.
        Binding("slash", "filter", "Filter", id="filter", priority=True),
        Binding("escape", "close_filter", "Clear filter", show=False),
        Binding("colon", "command_palette", "Commands", show=False),
        Binding("question_mark", "help", "Help", id="help"),
        Binding("q", "quit", "Quit", id="quit"),
    ]

    def __init__(
        self,
        source: SnapshotSource,
        actions: ActionService,
        *,
        interval: float = 2.0,
        clock: Callable[[], float] = time.time,
        tz: tzinfo | None = None,
        history_seconds: float = 900.0,
    ) -> None:
        super().__init__()
        self.source = source
        self.actions = actions
        self.interval = interval
        self.clock = clock
        self.tz = tz
        self.tracker = Tracker()
        self.history = History(history_seconds)
        self.last: Snapshot | None = None
        self.last_ok: Snapshot | None = None
        self.applied = 0  # snapshots applied so far; tests wait on it
        self.filter_query = ""
        self._poll: Worker[None] | None = None
        self._indexed: ClusterView | None = None  # the view _by_name and _alive describe
        self._by_name: dict[str, NodeRow] = {}
        self._alive: tuple[Target, ...] | None = None
        self._palette: tuple[str, Palette] | None = None

    # -- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="header")
        yield LeaderBar(id="leader")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield Input(placeholder="filter members: name, address, status, role, instance", id="filter")
                yield MembersTable(id="members")
                yield Static(id="hint")
                yield InstancesTable(id="instances")
            with Vertical(id="right"):
                yield FindingsPanel(id="findings")
                yield TimelineStrip(id="timeline")
                yield EventLog(id="events")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#members").border_title = "Members"
        self.query_one("#instances").border_title = "EC2 instances"
        self.query_one("#findings").border_title = "Drift"
        self.query_one("#timeline").border_title = "Leader and tag over time"
        self.query_one("#events").border_title = "Events"
        strip = self.query_one(TimelineStrip)
        # Minutes of history in a strip a few dozen characters wide, never finer than the polls.
        strip.bucket = min(max(self.interval, 5.0), 60.0)
        strip.max_gap = 3 * self.interval
        self._render_status()
        self.set_interval(self.interval, self._tick)
        self.set_interval(1.0, self._render_status)
        self.refresh_now()

    # -- polling ----------------------------------------------------------------------------

    def _tick(self) -> None:
        if not self.actions.refresh_paused:
            self.refresh_now()

    def refresh_now(self) -> bool:
        """Start a poll unless one is in flight: a slow cluster must not pile up threads."""
        if self._poll is not None and not self._poll.is_finished:
            return False
        self._poll = self._fetch()
        return True

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def _fetch(self) -> None:
        try:
            snap = self.source.fetch()
        except Exception as exc:  # the source should not raise; if it does, show it as stale
            snap = Snapshot(fetched_at=self.clock(), error=f"{type(exc).__name__}: {exc}")
        if not get_current_worker().is_cancelled:
            self.post_message(SnapshotReady(snap))

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        if self._widgets_mounted():
            self.apply(message.snapshot)

    def _widgets_mounted(self) -> bool:
        # While the app shuts down, Textual removes the widgets before it stops delivering timer
        # ticks and worker messages; a late poll result or clock tick then has nothing to draw on.
        return bool(self.query(StatusHeader))

    def apply(self, snap: Snapshot) -> None:
        was_ok = self.last is None or self.last.ok
        self.last = snap
        self.tracker, events = observe(self.tracker, snap)
        for event in events:
            self.record(event)
        if snap.ok and snap.view is not None:
            self.last_ok = snap
            self.history.add(sample_of(snap.fetched_at, snap.view))
            self._render_view(snap.view)
        elif was_ok:
            self.notify(snap.error or "no data", title="Refresh failed; showing the last data", severity="error")
        self._render_status()
        self.refresh_bindings()
        self.applied += 1

    # -- rendering --------------------------------------------------------------------------

    @property
    def palette(self) -> Palette:
        """The theme's colours; reading Textual's CSS variables costs milliseconds, so once per theme."""
        if self._palette is None or self._palette[0] != self.theme:
            self._palette = (self.theme, Palette.of(self))
        return self._palette[1]

    @property
    def view(self) -> ClusterView | None:
        return self.last_ok.view if self.last_ok else None

    def _render_view(self, view: ClusterView) -> None:
        palette = self.palette
        with self.batch_update():
            self._render_members(palette)
            self.query_one(InstancesTable).show(view, palette)
            self.query_one(FindingsPanel).show(view.findings, palette)
            worst = view.worst
            self.query_one(FindingsPanel).set_class(worst is Severity.CRITICAL, "-critical")

    def _render_members(self, palette: Palette | None = None) -> None:
        view = self.view
        if view is None:
            return
        table = self.query_one(MembersTable)
        table.show(view.rows, self.filter_query, palette or self.palette, view.tag_key)
        shown = len(table.rows)
        title = f"Members {shown}/{len(view.rows)} · tag {view.tag_key}"
        if self.filter_query:
            title += f"  filter: {self.filter_query}"
        table.border_title = title
        self._render_hint()

    def _render_status(self) -> None:
        if not self._widgets_mounted():
            return
        palette = self.palette
        now = self.clock()
        fresh = Freshness(
            label=self.source.label,
            interval=self.interval,
            now=now,
            last_ok=self.last_ok.fetched_at if self.last_ok else None,
            error=self.last.error if self.last else None,
            paused=self.actions.refresh_paused,
            read_only=self.actions.read_only,
            demo=self.actions.demo,
            via=self.last_ok.via if self.last_ok else None,
        )
        self.query_one(StatusHeader).show(fresh, palette)
        tr = self.tracker
        view = self.view
        text = leader_text(
            view,
            self.last_ok.term if self.last_ok else None,
            changed_ago=now - tr.leader_since if tr.leader_since is not None else None,
            known_for=now - tr.first_at if tr.first_at is not None else None,
            palette=palette,
        )
        self.query_one(LeaderBar).show(text, healthy=view is not None and view.tag_agrees)
        self.query_one(TimelineStrip).show(self.history.samples, now, palette)

    def _render_hint(self) -> None:
        """Why the selected node's actions are unavailable: the footer can only dim them."""
        reasons: list[str] = []
        for _key, name, label in ACTION_KEYS:
            spec = SPECS[name]
            if spec.aim is not Aim.SELECTED or (spec.demo_only and not self.actions.demo):
                continue
            avail = self.actions.availability(self.capture(name))
            if not avail.ok:
                reasons.append(f"{label.lower()}: {avail.reason}")
        selected = self.query_one(MembersTable).selected_key
        text = Text(f"{selected or 'no node selected'}", style="bold")
        if reasons:
            text.append("  ·  " + "  ·  ".join(dict.fromkeys(reasons)), style="dim")
        self.query_one("#hint", Static).update(text)

    def record(self, event: Event) -> None:
        self.query_one(EventLog).add(event, self.palette, self.tz)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "members":
            self._render_hint()
            self.refresh_bindings()

    # -- actions ----------------------------------------------------------------------------

    def capture(self, name: ActionName, node: str | None = None) -> Request:
        """The request as it stands now; its target never changes afterwards."""
        view = self.view
        if view is None:
            return Request(name)
        rows = self._rows_by_name(view)
        # Only force-leave goes "via any reachable agent"; the footer and the hint capture every
        # action on every refresh, so the others skip listing thousands of peers.
        peers = self._peers(view) if name is ActionName.FORCE_LEAVE else ()
        aim = SPECS[name].aim
        if aim is Aim.CLUSTER:
            return Request(name, None, peers)
        if aim is Aim.LEADER:
            key = view.leader_node
        else:
            key = node if node is not None else self.query_one(MembersTable).selected_key
        row = rows.get(key) if key is not None else None
        return Request(name, Target.of(row) if row else None, peers)

    def _rows_by_name(self, view: ClusterView) -> dict[str, NodeRow]:
        if self._indexed is not view:
            self._indexed, self._by_name, self._alive = view, {r.name: r for r in view.rows}, None
        return self._by_name

    def _peers(self, view: ClusterView) -> tuple[Target, ...]:
        self._rows_by_name(view)
        if self._alive is None:
            self._alive = tuple(Target.of(r) for r in view.rows if r.status == MemberStatus.ALIVE)
        return self._alive

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "act" and parameters:
            name = ActionName(str(parameters[0]))
            if SPECS[name].demo_only and not self.actions.demo:
                return False  # hidden: there is no demo to act on
            # None: shown dimmed and blocked, so the operator sees the key exists.
            return True if self.actions.availability(self.capture(name)).ok else None
        if action == "pause_refresh":
            return not self.actions.refresh_paused
        if action == "resume_refresh":
            return self.actions.refresh_paused
        if action == "filter":
            # A `/` typed into an input (the filter box, the command palette) is just a character.
            return not isinstance(self.focused, Input)
        if action == "close_filter":
            return bool(self.filter_query) or self.query_one("#filter").has_class("-open")
        return True

    def action_act(self, name: str) -> None:
        self.request(ActionName(name))

    def on_key(self, event: events.Key) -> None:
        """A dimmed action key is blocked by its binding and would do nothing: say why instead."""
        name = _KEY_ACTION.get(event.character or event.key)
        if name is None or len(self.screen_stack) > 1 or isinstance(self.focused, Input):
            return
        if self.check_action("act", (name.value,)) is None:
            req = self.capture(name)
            self.notify(f"cannot {req.describe()}: {self.actions.availability(req).reason}", severity="warning")

    def request(self, name: ActionName, node: str | None = None) -> None:
        """Ask for an action: confirm it if destructive, then run it in a worker."""
        req = self.capture(name, node)
        available = self.actions.availability(req)
        if not available.ok:
            self._refused(req, available.reason)
            return
        if req.spec.destructive:
            self.push_screen(ConfirmScreen(req), partial(self._confirmed, req))
        else:
            self._perform(req)

    def _confirmed(self, req: Request, ok: bool | None) -> None:
        if ok:
            self._perform(req)

    def _refused(self, req: Request, reason: str) -> None:
        text = f"cannot {req.describe()}: {reason}"
        self.record(
            Event(
                self.clock(), EventKind.ACTION_FAILED, text, Severity.WARNING, req.target.node if req.target else None
            )
        )
        self.notify(text, severity="warning")

    @work(thread=True, group="actions", exit_on_error=False)
    def _perform(self, req: Request) -> None:
        try:
            text, ok = self.actions.perform(req), True
        except TagjoinError as exc:
            text, ok = str(exc), False
        except Exception as exc:  # report, never crash the console over one action
            text, ok = f"{req.describe()} failed: {type(exc).__name__}: {exc}", False
        self.post_message(ActionDone(req, ok, text))

    def on_action_done(self, message: ActionDone) -> None:
        req = message.request
        kind = EventKind.ACTION if message.ok else EventKind.ACTION_FAILED
        sev = Severity.INFO if message.ok else Severity.CRITICAL
        self.record(Event(self.clock(), kind, message.text, sev, req.target.node if req.target else None))
        self.notify(message.text, severity="information" if message.ok else "error")
        self.refresh_now()

    def action_pause_refresh(self) -> None:
        self._set_paused(True)

    def action_resume_refresh(self) -> None:
        self._set_paused(False)
        self.refresh_now()

    def _set_paused(self, paused: bool) -> None:
        self.actions.set_refresh_paused(paused)
        kind = EventKind.REFRESH_PAUSED if paused else EventKind.REFRESH_RESUMED
        self.record(Event(self.clock(), kind, "refresh paused" if paused else "refresh resumed"))
        self._render_status()
        self.refresh_bindings()

    def action_refresh_now(self) -> None:
        self.refresh_now()

    def action_filter(self) -> None:
        if len(self.screen_stack) > 1:
            return  # a dialog or the help is open: the box is behind it
        box = self.query_one("#filter", Input)
        box.add_class("-open")
        # At once, not deferred like Widget.focus(): keys already queued behind `/` go to the box.
        self.screen.set_focus(box)

    def action_close_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.remove_class("-open")
        self.filter_query = ""
        self._render_members()
        self.query_one(MembersTable).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.filter_query = event.value
            self._render_members()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            if not event.value:
                event.input.remove_class("-open")
            self.query_one(MembersTable).focus()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.help_lines()))

    def help_lines(self) -> list[HelpLine]:
        lines = [
            HelpLine("j/k ↑/↓", "move in the focused table (mouse works too)"),
            HelpLine("/", "filter members; escape clears"),
            HelpLine(": ctrl+p", "command palette: every action, for every node"),
            HelpLine("r", "refresh now"),
            HelpLine("p", "pause / resume the refresh"),
        ]
        for key, name, label in ACTION_KEYS:
            spec = SPECS[name]
            if spec.demo_only and not self.actions.demo:
                continue
            avail = self.actions.availability(self.capture(name))
            lines.append(HelpLine(key, f"{label}: {spec.explain}", "" if avail.ok else avail.reason))
        lines += [HelpLine("?", "this help"), HelpLine("q", "quit")]
        return lines

    def palette_commands(self) -> Sequence[PaletteCommand]:
        cmds: list[PaletteCommand] = []
        view = self.view
        for name, spec in SPECS.items():
            if spec.aim is Aim.SELECTED:
                for row in view.rows if view else ():
                    if self.actions.availability(self.capture(name, row.name)).ok:
                        cmds.append(
                            PaletteCommand(
                                f"{spec.title} {row.name}", spec.explain, partial(self.request, name, row.name)
                            )
                        )
            else:
                req = self.capture(name)
                if self.actions.availability(req).ok:
                    title = f"{spec.title} {req.target.node}" if req.target else spec.title
                    cmds.append(PaletteCommand(title, spec.explain, partial(self.request, name)))
        paused = self.actions.refresh_paused
        cmds += [
            PaletteCommand("Refresh now", "poll the cluster once", self.action_refresh_now),
            PaletteCommand(
                "Resume refresh" if paused else "Pause refresh",
                "stop or restart polling",
                self.action_resume_refresh if paused else self.action_pause_refresh,
            ),
            PaletteCommand("Filter members", "type to narrow the members table", self.action_filter),
            PaletteCommand("Help", "keys and legend", self.action_help),
        ]
        return cmds
