"""The timeline strip: one character per time bucket, one row per node that led or held the tag."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.events import Resize
from textual.widgets import Static

from tui.events import fmt_secs
from tui.style import Palette
from tui.timeline import Cell, Sample, buckets

_GLYPH = {Cell.BOTH: "█", Cell.LEADER: "▓", Cell.TAG: "░", Cell.NONE: "·", Cell.UNKNOWN: "?", Cell.BEFORE: " "}
LEGEND = "█ led+tag  ▓ led, no tag  ░ tag only  ? no data"
_NAME_WIDTH = 10


def timeline_text(
    samples: Sequence[Sample], *, now: float, width: int, bucket: float, max_gap: float, palette: Palette
) -> Text:
    cols = max(0, width - _NAME_WIDTH - 1)
    rows = buckets(samples, now=now, width=cols, bucket=bucket, max_gap=max_gap)
    style = {
        Cell.BOTH: palette.ok,
        Cell.LEADER: palette.err,
        Cell.TAG: palette.warn,
        Cell.NONE: palette.dim,
        Cell.UNKNOWN: palette.dim,
        Cell.BEFORE: palette.dim,
    }
    t = Text(no_wrap=True, overflow="crop")
    if not rows:
        t.append("no history yet", style=palette.dim)
    for i, row in enumerate(rows):
        if i:
            t.append("\n")
        t.append(f"{row.name[:_NAME_WIDTH]:<{_NAME_WIDTH}} ")
        for cell in row.cells:
            t.append(_GLYPH[cell], style=style[cell])
    return t


class TimelineStrip(Static):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._samples: Sequence[Sample] = ()
        self._now = 0.0
        self._palette = Palette()
        self.bucket = 5.0
        self.max_gap = 15.0

    def show(self, samples: Sequence[Sample], now: float, palette: Palette) -> None:
        self._samples, self._now, self._palette = samples, now, palette
        self._draw()

    def on_resize(self, _event: Resize) -> None:
        self._draw()

    def _draw(self) -> None:
        width = self.content_size.width or 80
        span = max(0, width - _NAME_WIDTH - 1) * self.bucket
        self.border_subtitle = f"{LEGEND}  ·  {self.bucket:g}s/char, {fmt_secs(span)}"
        self.update(
            timeline_text(
                self._samples,
                now=self._now,
                width=width,
                bucket=self.bucket,
                max_gap=self.max_gap,
                palette=self._palette,
            )
        )
