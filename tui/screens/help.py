"""`?`: every key, what it does, and why an action is unavailable right now."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tagjoin.tui.style import LEADER_MARK, TAG_MARK


@dataclass(frozen=True)
class HelpLine:
    keys: str
    description: str
    unavailable: str = ""  # the reason, when the action cannot run now


LEGEND = (
    "● alive   ◐ leaving   ○ left   ✖ failed      "
    f"{LEADER_MARK} raft leader   {TAG_MARK} carries the leader tag\n"
    "Timeline: █ led and held the tag   ▓ led without the tag   ░ held the tag without leading   ? no data"
)


def help_text(lines: Sequence[HelpLine]) -> Text:
    t = Text()
    width = max((len(line.keys) for line in lines), default=4)
    for line in lines:
        t.append(f"{line.keys:>{width}}  ", style="bold")
        t.append(line.description, style="dim" if line.unavailable else "")
        if line.unavailable:
            t.append(f"  — unavailable: {line.unavailable}", style="dim italic")
        t.append("\n")
    t.append("\n")
    t.append(LEGEND)
    return t


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, lines: Sequence[HelpLine]) -> None:
        super().__init__()
        self.lines = tuple(lines)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static("Keys  (escape closes)", id="help-title")
            yield Static(help_text(self.lines), id="help-body")
