"""Confirmation for destructive actions: names the node, says what happens to Raft, Cancel has the focus.

The request (and so its target and its impact) is fixed when the dialog opens; the table may
refresh and re-sort behind it without changing what will be acted on. An action that would take
the quorum away asks for the node's name to be typed: `y` alone does not do it.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from tagjoin.core.view import Severity
from tagjoin.tui.actions import Aim, Request
from tagjoin.tui.style import SEVERITY_GLYPH, Palette


class ConfirmScreen(ModalScreen[bool]):
    AUTO_FOCUS = None  # on_mount picks Cancel, or the name box
    BINDINGS = [
        Binding("escape", "dismiss(False)", "Cancel"),
        Binding("n", "dismiss(False)", "Cancel"),
        Binding("y", "dismiss(True)", "Confirm"),
        Binding("left", "app.focus_previous", "Previous", show=False),
        Binding("right", "app.focus_next", "Next", show=False),
    ]

    def __init__(self, request: Request, palette: Palette | None = None) -> None:
        super().__init__()
        self.request = request
        self._palette = palette or Palette()
        impact = request.impact
        self.type_to_confirm = impact.type_to_confirm if impact is not None else None

    def on_mount(self) -> None:
        self.set_focus(self.query_one("#confirm-name" if self.type_to_confirm else "#cancel"))

    def compose(self) -> ComposeResult:
        spec, t = self.request.spec, self.request.target
        impact = self.request.impact
        with Vertical(id="dialog"):
            yield Static(f"{spec.title}?", id="confirm-title")
            if t is not None and spec.aim is not Aim.CLUSTER:
                detail = f"{t.node}  {t.address}  {t.instance_id or 'no instance'}  ({t.role}, {t.status.label})"
                question = self.request.describe()
                yield Static(f"{question[0].upper()}{question[1:]}?", id="confirm-question")
                yield Static(detail, id="confirm-target")
            yield Static(spec.explain, id="confirm-explain")
            if impact is not None and impact.lines:
                yield Static(self._impact_text(), id="confirm-impact")
            if self.type_to_confirm:
                yield Static(f"This breaks the quorum. Type {self.type_to_confirm} to confirm:", id="confirm-prompt")
                yield Input(placeholder=self.type_to_confirm, id="confirm-name")
            with Horizontal(id="confirm-buttons"):
                yield Button("Cancel", id="cancel", variant="primary")
                label = f"{spec.title} {t.node}" if t is not None else spec.title
                yield Button(label, id="confirm", variant="error", disabled=bool(self.type_to_confirm))
            keys = (
                "type the name, then enter  ·  escape cancels"
                if self.type_to_confirm
                else "y confirms  ·  n or escape cancels  ·  ←/→ and enter pick a button"
            )
            yield Static(keys, id="confirm-keys")

    def _impact_text(self) -> Text:
        impact = self.request.impact
        assert impact is not None
        t = Text()
        for i, (sev, line) in enumerate(impact.lines):
            if i:
                t.append("\n")
            style = self._palette.severity(sev) if sev is not Severity.INFO else ""
            t.append(f"{SEVERITY_GLYPH[sev]} {line}", style=style)
        return t

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # A quorum-breaking action is confirmed by its name only, never by `y`. Letters typed
        # into the name box go to the box (Input consumes them before any binding sees them).
        if action == "dismiss" and parameters and parameters[0] is True:
            return not self.type_to_confirm
        return True

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "confirm-name":
            self.query_one("#confirm", Button).disabled = event.value.strip() != self.type_to_confirm

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "confirm-name" and event.value.strip() == self.type_to_confirm:
            self.dismiss(True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm" and not event.button.disabled)
