"""Enter on a member: its details in a dialog (checks and services are read when it opens)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tagjoin.tui.style import Palette
from tagjoin.tui.widgets.node_detail import NodeDetail, NodeFacts


class DetailScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,enter,q", "dismiss", "Close")]

    def __init__(self, facts: NodeFacts, palette: Palette) -> None:
        super().__init__()
        self.facts = facts
        self._palette = palette

    @property
    def node(self) -> str:
        return self.facts.row.name

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail-box"):
            yield NodeDetail(id="detail-body")
            yield Static("escape or enter closes", id="detail-keys")

    def on_mount(self) -> None:
        self.query_one("#detail-box").border_title = f"{self.node}"
        self.query_one(NodeDetail).show(self.facts, self._palette)

    def update_facts(self, facts: NodeFacts) -> None:
        self.facts = facts
        if self.is_mounted:
            self.query_one(NodeDetail).show(facts, self._palette)
