"""The durable record: every detected change and operator action, timestamped."""

from __future__ import annotations

from datetime import tzinfo

from rich.text import Text
from textual.widgets import RichLog

from tui.events import Event
from tui.style import SEVERITY_GLYPH, Palette, clock_text


class EventLog(RichLog):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=2000, wrap=True, markup=False, auto_scroll=True)
        self.entries: list[Event] = []  # what was logged, for tests and the help screen

    def add(self, event: Event, palette: Palette, tz: tzinfo | None) -> None:
        self.entries.append(event)
        del self.entries[:-2000]
        line = Text()
        line.append(clock_text(event.at, tz), style=palette.dim)
        line.append(f" {SEVERITY_GLYPH[event.severity]} ", style=palette.severity(event.severity))
        line.append(event.message)
        self.write(line)
