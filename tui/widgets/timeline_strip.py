"""The timeline strip: one character per time bucket, one row per node that led or held the tag."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.text import Text
from textual.events import Resize
from textual.widgets import Static

from tagjoin.tui.leader_history import Cell, Sample, buckets
from tagjoin.tui.log_entries import fmt_secs
from tagjoin.tui.style import Palette

_GLYPH = {Cell.BOTH: "█", Cell.LEADER: "▓", Cell.TAG: "░", Cell.NONE: "·", Cell.UNKNOWN: "?", Cell.BEFORE: " "}
LEGEND = "█ led+tag  ▓ led, no tag  ░ tag only  ? no data"
_MIN_NAME, _MAX_NAME = 10, 24


def timeline_text(
    samples: Sequence[Sample], *, now: float, width: int, bucket: float, max_gap: float, palette: Palette
) -> Text:
    names = {n for s in samples for n in (*s.holders, s.leader) if n is not None}
    name_width = min(name_column(names), max(4, width // 2))  # a narrow strip still shows some time
    cols = max(0, width - name_width - 1)
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
        t.append(f"{_fit(row.name, name_width):<{name_width}} ")
        for cell in row.cells:
            t.append(_GLYPH[cell], style=style[cell])
    return t


def name_column(names: Iterable[str]) -> int:
    """Wide enough for whole node names (ip-10-0-1-10 and ip-10-0-1-100 must stay apart), capped."""
    return min(max((len(n) for n in names), default=_MIN_NAME), _MAX_NAME)


def _fit(name: str, width: int) -> str:
    # Names of one fleet share their start (ip-10-0-…): keep the distinguishing end.
    return name if len(name) <= width else "…" + name[-(width - 1) :]


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
        width = self.content_size.width
        if width <= 0:
            # Not laid out yet: a guessed width would make the lines longer than the strip, and
            # its auto height would count the wrapped lines. on_resize draws once the width is known.
            return
        names = {n for s in self._samples for n in (*s.holders, s.leader) if n is not None}
        span = max(0, width - min(name_column(names), max(4, width // 2)) - 1) * self.bucket
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
