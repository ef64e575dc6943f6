"""The operator console: polls a SnapshotSource, renders it, and sends actions to the action layer.

Threading rule: workers (the poll, the leader probe, the Raft reads, actions) never touch widgets.
They post messages; the handlers below run on the UI thread and own every widget and every
piece of state. Each kind of worker runs one at a time: a slow cluster must not pile up threads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from functools import partial
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import events, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Input, Static
from textual.worker import Worker, get_current_worker

from tagjoin.core.discover import select_targets
from tagjoin.core.errors import TagjoinError
from tagjoin.core.model import MemberStatus
from tagjoin.core.raft_view import RaftPicture, Role
from tagjoin.core.status_text import status_json
from tagjoin.core.view import ClusterView, NodeRow, Severity
from tagjoin.tui.actions import SPECS, ActionName, ActionService, Aim, Request, Target
from tagjoin.tui.commands import ConsoleCommands, PaletteCommand
from tagjoin.tui.impact import describe
from tagjoin.tui.leader_history import History, sample_of
from tagjoin.tui.log_entries import Event, EventKind, Tracker, fmt_secs, observe, raft_events
from tagjoin.tui.messages import ActionDone, ExtrasReady, ProbeReady, RaftReady, SnapshotReady
from tagjoin.tui.screens.confirm import ConfirmScreen
from tagjoin.tui.screens.detail import DetailScreen
from tagjoin.tui.screens.help import HelpLine, HelpScreen
from tagjoin.tui.source import FactSource, LeaderProbe, NodeExtras, RaftReading, Snapshot, SnapshotSource
from tagjoin.tui.style import Palette
from tagjoin.tui.widgets.event_log import EventLog
from tagjoin.tui.widgets.findings import FindingsPanel
from tagjoin.tui.widgets.header import Freshness, StatusHeader
from tagjoin.tui.widgets.instances import InstancesTable
from tagjoin.tui.widgets.keyed_table import KeyedTable
from tagjoin.tui.widgets.leader_bar import LeaderBar, leader_text
from tagjoin.tui.widgets.members import MembersTable, roles
from tagjoin.tui.widgets.node_detail import NodeDetail, NodeFacts
from tagjoin.tui.widgets.raft_panel import QuorumBar, RaftPanel, quorum_text
from tagjoin.tui.widgets.timeline_strip import TimelineStrip

# key, action, footer label; one binding per action of the action layer.
ACTION_KEYS: tuple[tuple[str, ActionName, str], ...] = (
    ("l", ActionName.LEAVE, "Leave"),
    ("s", ActionName.REJOIN, "Rejoin"),
    ("F", ActionName.FORCE_LEAVE, "Force-leave"),
    ("P", ActionName.PRUNE, "Prune"),
    ("t", ActionName.RECONCILE, "Reconcile"),
    ("x", ActionName.CRASH, "Crash"),
    ("i", ActionName.PARTITION, "Isolate"),
    ("h", ActionName.HEAL, "Heal"),
    ("z", ActionName.PAUSE_LEADER, "Pause leader"),
    ("e", ActionName.THROTTLE, "Throttle EC2"),
)


_KEY_ACTION: dict[str, ActionName] = {key: name for key, name, _label in ACTION_KEYS}
# Detail extras are read again for a node after this long (seconds).
EXTRAS_TTL = 10.0


class ConsoleApp(App[None]):
    CSS_PATH = Path(__file__).parent / "console.tcss"
    TITLE = "tagjoin console"
    # Not "*": that picks the first focusable widget, the (closed) filter box, and keys typed
    # while the console starts would vanish into it.
    AUTO_FOCUS = "#members"
    COMMANDS = App.COMMANDS | {ConsoleCommands}
    # The screen gets one of these classes by its width; console.tcss lays the panes out for each.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-normal"), (170, "-wide")]
    # Help and quit first: the footer cuts what does not fit at the right edge.
    BINDINGS = [
        Binding("question_mark", "help", "Help", id="help"),
        Binding("q", "quit", "Quit", id="quit"),
        *(Binding(key, f"act('{name.value}')", label, id=name.value) for key, name, label in ACTION_KEYS),
        Binding("p", "pause_refresh", "Pause", id="pause"),
        Binding("p", "resume_refresh", "Resume", id="resume"),
        Binding("r", "refresh_now", "Refresh", id="refresh"),
        # Priority: handled as the key arrives, so what is typed right after `/` lands in the box.
        Binding("slash", "filter", "Filter", id="filter", priority=True),
        Binding("f", "search_events", "Find in log", id="search", priority=True),
        Binding("o", "sort", "Sort", id="sort"),
        Binding("c", "copy_join", "Copy join", id="copy-join"),
        Binding("w", "export", "Export", id="export"),
        Binding("escape", "close_boxes", "Close", show=False),
        Binding("colon", "command_palette", "Commands", show=False),
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
        export_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.actions = actions
        self.interval = interval
        self.clock = clock
        self.tz = tz
        self.export_dir = export_dir or Path.cwd()
        self.tracker = Tracker()
        self.history = History(history_seconds)
        self.last: Snapshot | None = None
        self.last_ok: Snapshot | None = None
        self.applied = 0  # snapshots applied so far; tests wait on it
        self.filter_query = ""
        self.probe: LeaderProbe | None = None
        self.raft_reading: RaftReading | None = None
        self.extras: dict[str, NodeExtras] = {}
        self._poll: Worker[None] | None = None
        self._probing: Worker[None] | None = None
        self._reading_raft: Worker[None] | None = None
        self._extras_timer: Timer | None = None
        self._indexed: ClusterView | None = None  # the view _by_name and _alive describe
        self._by_name: dict[str, NodeRow] = {}
        self._alive: tuple[Target, ...] | None = None
        self._palette: tuple[str, Palette] | None = None
        self._facts = source if isinstance(source, FactSource) else None
        self.on_quit: Callable[[], None] | None = None  # runs as the operator quits, before the app exits
        self._shown_stale = False  # the panes last drawn with a stale verdict
        self._behind_pending = False  # a refresh arrived while a dialog covered the panes
        self._join: tuple[ClusterView, str | None] | None = None

    # -- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="header")
        yield LeaderBar(id="leader")
        yield QuorumBar(id="quorum")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield Input(placeholder="filter members: name, address, status, role, instance", id="filter")
                yield MembersTable(id="members")
                yield Static(id="hint")
                yield Static(id="targets")
                yield InstancesTable(id="instances")
            yield NodeDetail(id="detail")
            with Vertical(id="right"):
                yield RaftPanel(id="raft")
                yield FindingsPanel(id="findings")
                yield TimelineStrip(id="timeline")
                yield Input(placeholder="find in the event log", id="search")
                yield EventLog(id="events")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#members").border_title = "Members"
        self.query_one("#instances").border_title = "EC2 instances"
        self.query_one("#findings").border_title = "Drift"
        self.query_one("#timeline").border_title = "Leader and tag over time"
        self.query_one("#events").border_title = "Events"
        self.query_one("#raft").border_title = "Raft"
        self.query_one(NodeDetail).show(None, self.palette)
        strip = self.query_one(TimelineStrip)
        # Minutes of history in a strip a few dozen characters wide, never finer than the polls.
        strip.bucket = min(max(self.interval, 5.0), 60.0)
        strip.max_gap = 3 * self.interval
        self._render_status()
        self.set_interval(self.interval, self._tick)
        self.set_interval(1.0, self._render_status)
        self.refresh_now()

    @property
    def wide(self) -> bool:
        return self.screen.has_class("-wide") if self.screen_stack else False

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

    @property
    def covered(self) -> bool:
        """A dialog (or the command palette) covers the main screen."""
        return len(self.screen_stack) > 1

    def push_modal(self, screen: Screen[Any], callback: Callable[[Any], None] | None = None) -> None:
        """Open a dialog; the panes behind it are drawn again as soon as it closes."""

        def closed(result: Any) -> None:
            self._uncovered()
            if callback is not None:
                callback(result)

        self.push_screen(screen, closed)

    def _uncovered(self) -> None:
        if self._behind_pending and self.view is not None and self._widgets_mounted():
            self._behind_pending = False
            self._render_view(self.view)
        self._render_status()

    def apply(self, snap: Snapshot) -> None:
        was_ok = self.last is None or self.last.ok
        if snap.ok and snap.view is not None:
            snap = replace(snap, term=self.term_for(snap.view))
        self.last = snap
        self.tracker, found = observe(self.tracker, snap)
        for event in found:
            self.record(event)
        if snap.ok and snap.view is not None:
            self.last_ok = snap
            self.history.add(sample_of(snap.fetched_at, snap.view))
            if self.covered:
                # Drawing panes no one sees would make the open dialog wait for the UI thread.
                self._behind_pending = True
            else:
                self._render_view(snap.view)
            self._read_facts(snap)
            if self.wide:
                self._extras_for_selected()
        elif was_ok:
            self.notify(snap.error or "no data", title="Refresh failed; showing the last data", severity="error")
        self._render_status()
        self.refresh_bindings()
        self.applied += 1

    # -- facts read beside the poll ----------------------------------------------------------

    def _read_facts(self, snap: Snapshot) -> None:
        if self._facts is None or snap.view is None:
            return
        if self._probing is None or self._probing.is_finished:
            self._probing = self._probe(snap.view)
        if self._reading_raft is None or self._reading_raft.is_finished:
            self._reading_raft = self._read_raft(snap.view, snap.via)

    @work(thread=True, group="probe", exit_on_error=False, description="leader probe")
    def _probe(self, view: ClusterView) -> None:
        assert self._facts is not None
        probe = self._facts.probe_leader(view)
        if probe is not None and not get_current_worker().is_cancelled:
            self.post_message(ProbeReady(probe))

    @work(thread=True, group="raft", exit_on_error=False, description="Raft and autopilot read")
    def _read_raft(self, view: ClusterView, via: str | None) -> None:
        assert self._facts is not None
        reading = self._facts.read_raft(view, via)
        if not get_current_worker().is_cancelled:
            self.post_message(RaftReady(reading))

    def on_probe_ready(self, message: ProbeReady) -> None:
        if not self._widgets_mounted():
            return
        old, new = self.probe, message.probe
        self.probe = new
        if new.answered is False and (old is None or old.node != new.node or old.answered is not False):
            self.record(
                Event(
                    new.at,
                    EventKind.LEADER_UNANSWERED,
                    f"leader {new.node}'s own agent does not answer: {new.error}",
                    Severity.WARNING,
                    new.node,
                )
            )
        elif new.answered and not new.leads and (old is None or old.node != new.node or old.leads):
            self.record(
                Event(
                    new.at,
                    EventKind.LEADER_UNANSWERED,
                    f"leader {new.node}'s own agent says {new.raft_state or 'it is not a server'}",
                    Severity.WARNING,
                    new.node,
                )
            )
        self._render_facts()

    def on_raft_ready(self, message: RaftReady) -> None:
        if not self._widgets_mounted():
            return
        old = self.raft_reading.picture if self.raft_reading else None
        self.raft_reading = message.reading
        new = message.reading.picture
        for event in raft_events(message.reading.at, old, new):
            self.record(event)
        if self.covered:
            self._behind_pending = True
        else:
            # The Role column changes with roles and health only: at 5,000 members a pass over the
            # table for each read would cost more than everything else the read draws.
            if old is None or old.known != new.known or roles(old) != roles(new):
                self._render_members()
            self._render_detail()
            self._render_facts()

    @property
    def raft(self) -> RaftPicture | None:
        return self.raft_reading.picture if self.raft_reading else None

    def term_for(self, view: ClusterView) -> int | None:
        """The term of `view`'s leader as its own agent (or else autopilot) last told it."""
        probe = self.probe
        if probe is not None and probe.node == view.leader_node and probe.leads:
            return probe.term
        raft = self.raft
        if raft is not None and raft.leader_term is not None:
            leader = next((s.node for s in raft.servers if s.role is Role.LEADER), None)
            if leader is not None and leader == view.leader_node:
                return raft.leader_term
        return None

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

    def freshness(self) -> Freshness:
        return Freshness(
            label=self.source.label,
            interval=self.interval,
            now=self.clock(),
            last_ok=self.last_ok.fetched_at if self.last_ok else None,
            error=self.last.error if self.last else None,
            paused=self.actions.refresh_paused,
            read_only=self.actions.read_only,
            demo=self.actions.demo,
            via=self.last_ok.via if self.last_ok else None,
            via_reason=self.last_ok.via_reason if self.last_ok else None,
        )

    def _render_view(self, view: ClusterView) -> None:
        palette = self.palette
        with self.batch_update():
            self._render_members(palette)
            self.query_one(InstancesTable).show(view, palette)
            self._render_findings()
            self._render_targets()
            self._render_detail()

    def _render_members(self, palette: Palette | None = None) -> None:
        view = self.view
        if view is None:
            return
        table = self.query_one(MembersTable)
        table.show(view.rows, self.filter_query, palette or self.palette, self.raft)
        shown = len(table.rows)
        title = f"Members {shown}/{len(view.rows)} · tag {view.tag_key}"
        if table.sort_column != "name" or table.sort_reverse:
            title += f" · by {table.sort_label}"
        if self.filter_query:
            title += f"  filter: {self.filter_query}"
        table.border_title = title
        self._render_hint()

    def _render_findings(self, stale: str | None = None) -> None:
        view = self.view
        if view is None:
            return
        panel = self.query_one(FindingsPanel)
        panel.show(view.findings, self.palette, stale=stale)
        panel.set_class(not stale and view.worst is Severity.CRITICAL, "-critical")

    def _render_targets(self, stale: str | None = None) -> None:
        view = self.view
        if view is None:
            return
        command = self.join_command()
        palette = self.palette
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append("join targets now: ", style="bold")
        if command:
            t.append(command.removeprefix("consul join "), style=palette.dim if stale else palette.ok)
            t.append(f"  ·  c copies: {command}", style=palette.dim)
        else:
            t.append("none: no running instance carries the tag (`tagjoin targets` exits 3)", style=palette.warn)
        if stale:
            t.append(f"  ({stale})", style=palette.warn)
        self.query_one("#targets", Static).update(t)

    def join_command(self) -> str | None:
        view = self.view
        if view is None:
            return None
        # Asked for every binding check (the footer's `c`): once per view, not per check.
        if self._join is None or self._join[0] is not view:
            targets = select_targets(view.instances, tag_key=view.tag_key)
            self._join = (view, f"consul join {' '.join(targets.addresses)}" if targets.addresses else None)
        return self._join[1]

    def _render_status(self) -> None:
        if not self._widgets_mounted():
            return
        if self.covered:
            return
        if self._behind_pending and self.view is not None:
            # A dialog this code did not open (the command palette) has closed.
            self._behind_pending = False
            self._render_view(self.view)
        palette = self.palette
        fresh = self.freshness()
        now = fresh.now
        stale = fresh.stale_text
        self.query_one(StatusHeader).show(fresh, palette)
        self._render_facts(fresh)
        self.query_one("#body").set_class(bool(stale), "-stale")
        if stale or self._shown_stale:
            self._render_findings(stale)
            self._render_targets(stale)
            self._shown_stale = bool(stale)
        self.query_one(TimelineStrip).show(self.history.samples, now, palette)

    def _render_facts(self, fresh: Freshness | None = None) -> None:
        """The leader bar, the Raft line and the Raft pane: what the probe and the Raft reads change."""
        if not self._widgets_mounted() or self.covered:
            return
        fresh = fresh or self.freshness()
        palette = self.palette
        now = fresh.now
        stale = fresh.stale_text
        tr = self.tracker
        view = self.view
        text, verdict = leader_text(
            view,
            self.term_for(view) if view else None,
            changed_ago=now - tr.leader_since if tr.leader_since is not None else None,
            known_for=now - tr.first_at if tr.first_at is not None else None,
            palette=palette,
            probe=self.probe,
            stale=stale,
            confirmed_by=self.last_ok.no_leader_confirmed_by if self.last_ok else None,
            # The configuration could only be read with ?stale: the server that answered has no leader.
            raft_finds_no_leader=self.raft is not None and self.raft.stale,
        )
        self.query_one(LeaderBar).show(text, verdict)
        quorum, q_verdict = quorum_text(self.raft, palette, stale=stale)
        self.query_one(QuorumBar).show(quorum, q_verdict)
        self.query_one(RaftPanel).show(self.raft, palette, stale=stale)

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
        text = Text(f"{selected or 'no node selected'}", style="bold", no_wrap=True, overflow="ellipsis")
        if selected:
            text.append("  enter: details", style=self.palette.accent)
        if reasons:
            text.append("  ·  " + "  ·  ".join(dict.fromkeys(reasons)), style="dim")
        self.query_one("#hint", Static).update(text)

    def facts_of(self, node: str) -> NodeFacts | None:
        view = self.view
        row = self._rows_by_name(view).get(node) if view else None
        if row is None:
            return None
        raft = self.raft
        line = raft.line(node) if raft else None
        return NodeFacts(row, line, raft is not None and raft.known, self.extras.get(node), self.clock())

    def _render_detail(self) -> None:
        if not self.wide:
            return
        selected = self.query_one(MembersTable).selected_key
        self.query_one(NodeDetail).show(self.facts_of(selected) if selected else None, self.palette)

    def record(self, event: Event) -> None:
        log = self.query_one(EventLog)
        log.add(event, self.palette, self.tz)
        if log.query_text:
            log.border_title = f"Events {log.shown}/{len(log.entries)} · find: {log.query_text}"

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "members":
            self._render_hint()
            self.refresh_bindings()
            if self.wide:
                self._render_detail()
                self._schedule_extras()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a member (or on an instance with a member): its details."""
        if event.data_table.id == "members":
            node = event.row_key.value
        elif event.data_table.id == "instances":
            iid = event.row_key.value
            rows = self.view.rows if self.view else ()
            node = next((r.name for r in rows if r.instance and r.instance.instance_id == iid), None)
        else:
            return
        if node:
            self.open_detail(node)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        table = event.data_table
        if isinstance(table, MembersTable | InstancesTable) and event.column_key.value:
            table.sort_by(event.column_key.value)
            self._resort(table)

    # -- detail -----------------------------------------------------------------------------

    def open_detail(self, node: str) -> None:
        facts = self.facts_of(node)
        if facts is None:
            return
        self.push_modal(DetailScreen(facts, self.palette))
        self._read_extras(node)

    def _schedule_extras(self) -> None:
        if self._extras_timer is not None:
            self._extras_timer.stop()
        self._extras_timer = self.set_timer(0.3, self._extras_for_selected)

    def _extras_for_selected(self) -> None:
        selected = self.query_one(MembersTable).selected_key
        if selected:
            self._read_extras(selected)

    def _read_extras(self, node: str) -> None:
        known = self.extras.get(node)
        fresh = known is not None and known.error is None and self.clock() - known.at < EXTRAS_TTL
        if self._facts is None or fresh:
            return
        self._fetch_extras(node, self.last_ok.via if self.last_ok else None)

    @work(thread=True, group="extras", exclusive=True, exit_on_error=False, description="member details")
    def _fetch_extras(self, node: str, via: str | None) -> None:
        assert self._facts is not None
        extras = self._facts.node_extras(node, via)
        if not get_current_worker().is_cancelled:
            self.post_message(ExtrasReady(extras))

    def on_extras_ready(self, message: ExtrasReady) -> None:
        extras = message.extras
        self.extras[extras.node] = extras
        for screen in self.screen_stack:
            if isinstance(screen, DetailScreen) and screen.node == extras.node:
                facts = self.facts_of(extras.node)
                if facts is not None:
                    screen.update_facts(facts)
        self._render_detail()

    # -- actions ----------------------------------------------------------------------------

    def capture(self, name: ActionName, node: str | None = None) -> Request:
        """The request as it stands now; its target never changes afterwards."""
        view = self.view
        if view is None:
            return Request(name)
        rows = self._rows_by_name(view)
        # Only force-leave goes "via any reachable agent"; the footer and the hint capture every
        # action on every refresh, so the others skip listing thousands of peers.
        peers = self._peers(view) if name in (ActionName.FORCE_LEAVE, ActionName.PRUNE) else ()
        aim = SPECS[name].aim
        if aim is Aim.CLUSTER:
            return Request(name, None, peers)
        if aim is Aim.LEADER:
            key = view.leader_node
        else:
            key = node if node is not None else self.query_one(MembersTable).selected_key
        row = rows.get(key) if key is not None else None
        return Request(name, Target.of(row) if row else None, peers)

    def with_impact(self, req: Request) -> Request:
        """The request with what it does to Raft, judged on the picture shown now."""
        t = req.target
        if t is None:
            return req
        stale = self.freshness().stale_text
        age = None
        if self.raft_reading is not None and self.clock() - self.raft_reading.at > 2 * self.interval + 1:
            age = f"read {fmt_secs(self.clock() - self.raft_reading.at)} ago"
        impact = describe(req.action.value, t.node, t.role, t.status, self.raft, stale=stale or age)
        return replace(req, impact=impact)

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
        if action in ("filter", "search_events"):
            # A `/` or `f` typed into an input (a box, the command palette) is just a character.
            return not isinstance(self.focused, Input)
        if action == "close_boxes":
            return (
                bool(self.filter_query)
                or self.query_one("#filter").has_class("-open")
                or self.query_one("#search").has_class("-open")
            )
        if action == "copy_join":
            return True if self.join_command() else None
        if action == "export":
            return True if self.view is not None else None
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
            req = self.with_impact(req)
            self.push_modal(ConfirmScreen(req, self.palette), partial(self._confirmed, req))
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

    @work(thread=True, group="actions", exit_on_error=False, description="action")
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

    async def action_quit(self) -> None:
        if self.on_quit is not None:
            on_quit, self.on_quit = self.on_quit, None
            on_quit()
        self.exit()

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

    # -- boxes: member filter, event search ---------------------------------------------------

    def action_filter(self) -> None:
        self._open_box("#filter")

    def action_search_events(self) -> None:
        self._open_box("#search")

    def _open_box(self, selector: str) -> None:
        if len(self.screen_stack) > 1:
            return  # a dialog or the help is open: the box is behind it
        box = self.query_one(selector, Input)
        box.add_class("-open")
        # At once, not deferred like Widget.focus(): keys already queued behind the key go to the box.
        self.screen.set_focus(box)

    def action_close_boxes(self) -> None:
        search = self.query_one("#search", Input)
        if search.has_class("-open") or search.value:
            search.value = ""
            search.remove_class("-open")
            log = self.query_one(EventLog)
            log.search("")
            log.border_title = "Events"
            if self.focused is search or not self.query_one("#filter").has_class("-open"):
                self.query_one(MembersTable).focus()
                return
        box = self.query_one("#filter", Input)
        box.value = ""
        box.remove_class("-open")
        self.filter_query = ""
        self._render_members()
        self.query_one(MembersTable).focus()

    def action_close_filter(self) -> None:
        self.action_close_boxes()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.filter_query = event.value
            self._render_members()
        elif event.input.id == "search":
            log = self.query_one(EventLog)
            log.search(event.value)
            found = f"Events {log.shown}/{len(log.entries)} · find: {event.value}"
            log.border_title = found if event.value else "Events"

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id in ("filter", "search"):
            if not event.value:
                event.input.remove_class("-open")
            self.query_one(MembersTable).focus()

    # -- sort, copy, export -----------------------------------------------------------------

    def action_sort(self) -> None:
        """Sort the focused table (the members unless the EC2 table has the focus) by the next column."""
        focused = self.focused
        table: MembersTable | InstancesTable = (
            focused if isinstance(focused, InstancesTable) else self.query_one(MembersTable)
        )
        columns = [c for c in table.visible_columns if c != "mark"]
        current = table.sort_column if table.sort_column in columns else columns[-1]
        nxt = columns[(columns.index(current) + 1) % len(columns)]
        table.sort_by(nxt)
        self._resort(table)
        self.notify(f"{'members' if isinstance(table, MembersTable) else 'EC2 instances'} by {table.sort_label}")

    def _resort(self, table: KeyedTable) -> None:
        if isinstance(table, MembersTable):
            self._render_members()
        elif self.view is not None:
            table_i = self.query_one(InstancesTable)
            table_i.show(self.view, self.palette)
            table_i.border_title = f"EC2 instances · by {table_i.sort_label}"

    def action_copy_join(self) -> None:
        cmd = self.join_command()
        if cmd is None:
            return
        self.copy_to_clipboard(cmd)
        self.record(Event(self.clock(), EventKind.ACTION, f"copied to the clipboard: {cmd}"))
        self.notify(f"copied: {cmd}", title="Clipboard (OSC 52; the terminal must allow it)")

    def export_document(self) -> dict[str, Any]:
        view = self.view
        now = self.clock()
        fresh = self.freshness()
        return {
            "exported_at": datetime.fromtimestamp(now, tz=UTC).isoformat(),
            "source": self.source.label,
            "fresh": not fresh.stale,
            "last_success_age_s": fresh.age,
            "status": status_json(view, self.raft, self.term_for(view)) if view else None,
            "leader_probe": None
            if self.probe is None
            else {
                "node": self.probe.node,
                "answered": self.probe.answered,
                "leads": self.probe.leads,
                "term": self.probe.term,
                "error": self.probe.error,
            },
            "join_targets": list(select_targets(view.instances, tag_key=view.tag_key).addresses) if view else [],
            "events": [
                {
                    "at": datetime.fromtimestamp(e.at, tz=UTC).isoformat(),
                    "kind": e.kind.value,
                    "severity": e.severity.label,
                    "message": e.message,
                    "subject": e.subject,
                    "took_s": e.took,
                }
                for e in self.query_one(EventLog).entries
            ],
        }

    def action_export(self) -> None:
        stamp = datetime.fromtimestamp(self.clock(), tz=UTC).strftime("%Y%m%d-%H%M%S")
        path = self.export_dir / f"tagjoin-console-{stamp}.json"
        try:
            path.write_text(json.dumps(self.export_document(), indent=2) + "\n")
        except OSError as exc:
            self.notify(f"cannot write {path}: {exc.strerror or exc}", severity="error")
            return
        self.record(Event(self.clock(), EventKind.ACTION, f"exported the view and the event log to {path}"))
        self.notify(str(path), title="Exported")

    # -- help and palette -------------------------------------------------------------------

    def action_help(self) -> None:
        self.push_modal(HelpScreen(self.help_lines()))

    def help_lines(self) -> list[HelpLine]:
        lines = [
            HelpLine("j/k ↑/↓", "move in the focused table (mouse works too)"),
            HelpLine("enter", "details of the member: Raft, EC2, checks, services, serf tags"),
            HelpLine("/", "filter members; escape clears"),
            HelpLine("f", "find in the event log; escape clears"),
            HelpLine("o", "sort the focused table by the next column (again: next); click a header to sort by it"),
            HelpLine("c", "copy the `consul join …` command for the join targets now (OSC 52)"),
            HelpLine("w", f"export the view and the event log as JSON to {self.export_dir}"),
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
            PaletteCommand("Find in the event log", "type to narrow the event log", self.action_search_events),
            PaletteCommand("Export view and events", "write them as JSON", self.action_export),
            PaletteCommand("Help", "keys and legend", self.action_help),
        ]
        if self.join_command():
            cmds.append(PaletteCommand("Copy join command", str(self.join_command()), self.action_copy_join))
        return cmds
