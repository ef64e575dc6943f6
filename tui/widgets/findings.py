"""Drift findings from tagjoin.core.view, worst first."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import Static

from tagjoin.core.view import Finding
from tagjoin.tui.style import SEVERITY_GLYPH, Palette


def findings_text(findings: Sequence[Finding], palette: Palette, *, stale: str | None = None) -> Text:
    """Worst first; while the data is `stale` (e.g. `stale 12s`), no verdict, only the last findings, dimmed."""
    t = Text()
    if stale:
        t.append(f"▲ unknown ({stale})", style=f"bold {palette.warn}")
        t.append("; last known:" if findings else "; last known: no drift", style=palette.dim)
        for f in findings:
            t.append(f"\n{SEVERITY_GLYPH[f.severity]} {f.code}  {f.message}", style=palette.dim)
        return t
    if not findings:
        return Text("✔ no drift: the tag follows the leader", style=palette.ok)
    for i, f in enumerate(findings):
        if i:
            t.append("\n")
        style = palette.severity(f.severity)
        t.append(f"{SEVERITY_GLYPH[f.severity]} {f.severity.label:<8} ", style=style)
        t.append(f"{f.code}  ", style="bold")
        t.append(f.message)
    return t


class FindingsPanel(Static):
    def show(self, findings: Sequence[Finding], palette: Palette, *, stale: str | None = None) -> None:
        self.update(findings_text(findings, palette, stale=stale))
