"""Confirmation for destructive actions: names the node, Cancel has the focus.

The request (and so its target) is fixed when the dialog opens; the table may refresh and
re-sort behind it without changing what will be acted on.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from tagjoin.tui.actions import Aim, Request


class ConfirmScreen(ModalScreen[bool]):
    AUTO_FOCUS = "#cancel"
    BINDINGS = [
        Binding("escape,n", "dismiss(False)", "Cancel"),
        Binding("y", "dismiss(True)", "Confirm"),
        Binding("left", "app.focus_previous", "Previous", show=False),
        Binding("right", "app.focus_next", "Next", show=False),
    ]

    def __init__(self, request: Request) -> None:
        super().__init__()
        self.request = request

    def compose(self) -> ComposeResult:
        spec, t = self.request.spec, self.request.target
        with Vertical(id="dialog"):
            yield Static(f"{spec.title}?", id="confirm-title")
            if t is not None and spec.aim is not Aim.CLUSTER:
                detail = f"{t.node}  {t.address}  {t.instance_id or 'no instance'}  ({t.role}, {t.status.label})"
                question = self.request.describe()
                yield Static(f"{question[0].upper()}{question[1:]}?", id="confirm-question")
                yield Static(detail, id="confirm-target")
            yield Static(spec.explain, id="confirm-explain")
            with Horizontal(id="confirm-buttons"):
                yield Button("Cancel", id="cancel", variant="primary")
                label = f"{spec.title} {t.node}" if t is not None else spec.title
                yield Button(label, id="confirm", variant="error")
            yield Static("y confirms  ·  n or escape cancels  ·  ←/→ and enter pick a button", id="confirm-keys")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm")
