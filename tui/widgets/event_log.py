"""The durable record: every detected change and operator action, timestamped, searchable."""

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
        self.entries: list[Event] = []  # what was logged, for tests, export and re-wrapping
        self.query_text = ""  # the search: only entries containing it are shown
        self._palette = Palette()
        self._tz: tzinfo | None = None
        self._wrapped_at = 0

    def add(self, event: Event, palette: Palette, tz: tzinfo | None) -> None:
        self._palette, self._tz = palette, tz
        self.entries.append(event)
        del self.entries[:-MAX_ENTRIES]
        if self.shows(event):
            self.write(self._line(event))

    def shows(self, event: Event) -> bool:
        q = self.query_text.strip().lower()
        if not q:
            return True
        return q in event.message.lower() or q in event.kind.value or q in clock_text(event.at, self._tz)

    @property
    def shown(self) -> int:
        return sum(1 for e in self.entries if self.shows(e))

    def search(self, query: str) -> None:
        self.query_text = query
        self._rewrite()

    def on_resize(self, event: Resize) -> None:
        # RichLog wraps once, at write time; re-wrap everything when the width changes.
        width = self.scrollable_content_region.width
        if width != self._wrapped_at and self.entries:
            self._wrapped_at = width
            self._rewrite()

    def _rewrite(self) -> None:
        self.clear()
        for entry in self.entries:
            if self.shows(entry):
                self.write(self._line(entry))

    def _line(self, event: Event) -> Text:
        line = Text()
        line.append(clock_text(event.at, self._tz), style=self._palette.dim)
        line.append(f" {SEVERITY_GLYPH[event.severity]} ", style=self._palette.severity(event.severity))
        q = self.query_text.strip()
        message = Text(event.message)
        if q:
            message.highlight_words([q], style="reverse", case_sensitive=False)
        line.append_text(message)
        return line
