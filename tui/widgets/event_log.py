"""The durable record: every detected change and operator action, timestamped."""

from __future__ import annotations

from datetime import tzinfo

from rich.text import Text
from textual.events import Resize
from textual.widgets import RichLog

from tagjoin.tui.log_entries import Event
from tagjoin.tui.style import SEVERITY_GLYPH, Palette, clock_text

MAX_ENTRIES = 2000


class EventLog(RichLog):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=MAX_ENTRIES * 3, min_width=20, wrap=True, markup=False)
        self.entries: list[Event] = []  # what was logged, for tests and for re-wrapping
        self._palette = Palette()
        self._tz: tzinfo | None = None
        self._wrapped_at = 0

    def add(self, event: Event, palette: Palette, tz: tzinfo | None) -> None:
        self._palette, self._tz = palette, tz
        self.entries.append(event)
        del self.entries[:-MAX_ENTRIES]
        self.write(self._line(event))

    def on_resize(self, event: Resize) -> None:
        # RichLog wraps once, at write time; re-wrap everything when the width changes.
        width = self.scrollable_content_region.width
        if width != self._wrapped_at and self.entries:
            self._wrapped_at = width
            self.clear()
            for entry in self.entries:
                self.write(self._line(entry))

    def _line(self, event: Event) -> Text:
        line = Text()
        line.append(clock_text(event.at, self._tz), style=self._palette.dim)
        line.append(f" {SEVERITY_GLYPH[event.severity]} ", style=self._palette.severity(event.severity))
        line.append(event.message)
        return line
