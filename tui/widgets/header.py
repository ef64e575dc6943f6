"""The top line: how fresh the data is, the console's modes, then where it looks.

One line whatever the width: the freshness verdict comes first, and the endpoints, the longest
and least urgent part, are what an ellipsis cuts.
"""

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
    via: str | None = None  # the member whose agent answers while the configured one is not used
    via_reason: str | None = None

    @property
    def stale(self) -> bool:
        """The last refresh failed, or none succeeded for two intervals (a hung poll)."""
        if self.error is not None:
            return True
        if self.last_ok is None or self.paused:
            return False
        return self.now - self.last_ok > 2 * self.interval + 1

    @property
    def age(self) -> float | None:
        return None if self.last_ok is None else max(0.0, self.now - self.last_ok)

    @property
    def stale_text(self) -> str | None:
        """`stale 12s` while the data is stale, else None."""
        if not self.stale:
            return None
        return f"stale {fmt_secs(self.age)}" if self.age is not None else "no data yet"


def header_text(f: Freshness, palette: Palette) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(" tagjoin ", style="bold reverse")
    t.append(" ")
    age = f"{fmt_secs(f.age)} ago" if f.age is not None else "never"
    if f.stale:
        t.append(f" ⚠ STALE · last success {age} ", style=f"bold reverse {palette.err}")
    elif f.paused:
        t.append(f" ⏸ paused · updated {age} ", style=f"bold reverse {palette.warn}")
    elif f.last_ok is None:
        t.append(" connecting… ", style=palette.dim)
    else:
        t.append(f"● live · updated {age}", style=palette.ok)
    t.append(f" · every {fmt_secs(f.interval)}", style=palette.dim)
    if f.read_only:
        t.append("  READ-ONLY", style=f"bold {palette.warn}")
    if f.demo:
        # `--demo` and `--control-url` both mean a simulated cluster whose faults the keys inject.
        t.append("  SIMULATED", style=f"bold {palette.accent}")
    if f.via is not None and not f.stale:
        why = f.via_reason or "does not answer"
        t.append(f"  via {f.via}'s agent (the configured one {why})", style=f"bold {palette.warn}")
    if f.stale and f.error:
        t.append(f"  {f.error}", style=palette.err)
    t.append(f"   {f.label}", style=palette.dim)
    return t


class StatusHeader(Static):
    text = Text()

    def show(self, f: Freshness, palette: Palette) -> None:
        self.text = header_text(f, palette)
        self.set_class(f.stale, "-stale")
        self.update(self.text)
