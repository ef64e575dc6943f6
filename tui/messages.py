"""What the console's workers tell the UI thread: workers never touch widgets, they post these."""

from __future__ import annotations

from textual.message import Message

from tagjoin.tui.actions import Request
from tagjoin.tui.source import LeaderProbe, NodeExtras, RaftReading, Snapshot


class SnapshotReady(Message):
    """A poll finished: the snapshot the screen should show next."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class ProbeReady(Message):
    """The leader's own agent answered, or did not."""

    def __init__(self, probe: LeaderProbe) -> None:
        super().__init__()
        self.probe = probe


class RaftReady(Message):
    """The Raft configuration and autopilot's health were read (or why not)."""

    def __init__(self, reading: RaftReading) -> None:
        super().__init__()
        self.reading = reading


class ExtrasReady(Message):
    """A member's checks and services, for the detail pane."""

    def __init__(self, extras: NodeExtras) -> None:
        super().__init__()
        self.extras = extras


class ActionDone(Message):
    """An action the operator confirmed has finished, well or not; `text` says how."""

    def __init__(self, request: Request, ok: bool, text: str) -> None:
        super().__init__()
        self.request = request
        self.ok = ok
        self.text = text
