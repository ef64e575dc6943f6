"""The top line: where the console looks, how often, how fresh the data is, and its modes."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static

from tagjoin.tui.log_entries import fmt_secs
from tagjoin.tui.style import Palette


@dataclass(frozen=True)
class Freshness:
    label: str  # endpoints
    interval: float
    now: float
    last_ok: float | None  # fetched_at of the last successful refresh
    error: str | None  # the last refresh's error, if it failed
    paused: bool
    read_only: bool
    demo: bool
    via: str | None = None  # the member whose agent answers while the configured one does not

    @property
    def stale(self) -> bool:
        """The last refresh failed, or none succeeded for two intervals (a hung poll)."""
        if self.error is not None:
            return True
        if self.last_ok is None or self.paused:
            return False
        return self.now - self.last_ok > 2 * self.interval + 1


def header_text(f: Freshness, palette: Palette) -> Text:
    t = Text()
    t.append(" tagjoin ", style="bold reverse")
    t.append(f" {f.label}  every {fmt_secs(f.interval)}  ")
    age = f"{fmt_secs(f.now - f.last_ok)} ago" if f.last_ok is not None else "never"
    if f.stale:
        t.append(f" ⚠ STALE  last success {age} ", style=f"bold reverse {palette.err}")
        if f.error:
            t.append(f" {f.error}", style=palette.err)
    elif f.paused:
        t.append(f" ⏸ paused  updated {age} ", style=f"bold reverse {palette.warn}")
    elif f.last_ok is None:
        t.append(" connecting… ", style=palette.dim)
    else:
        t.append(f" ● live  updated {age} ", style=palette.ok)
    if f.via is not None and not f.stale:
        t.append(f"  via {f.via}'s agent (the configured one does not answer)", style=f"bold {palette.warn}")
    if f.read_only:
        t.append("  READ-ONLY", style=f"bold {palette.warn}")
    if f.demo:
        t.append("  DEMO", style=f"bold {palette.accent}")
    return t


class StatusHeader(Static):
    text = Text()

    def show(self, f: Freshness, palette: Palette) -> None:
        self.text = header_text(f, palette)
        self.set_class(f.stale, "-stale")
        self.update(self.text)
