"""Drift findings from tagjoin.core.view, worst first."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import Static

from tagjoin.core.view import Finding
from tagjoin.tui.style import SEVERITY_GLYPH, Palette


def findings_text(findings: Sequence[Finding], palette: Palette) -> Text:
    if not findings:
        return Text("✔ no drift: the tag follows the leader", style=palette.ok)
    t = Text()
    for i, f in enumerate(findings):
        if i:
            t.append("\n")
        style = palette.severity(f.severity)
        t.append(f"{SEVERITY_GLYPH[f.severity]} {f.severity.label:<8} ", style=style)
        t.append(f"{f.code}  ", style="bold")
        t.append(f.message)
    return t


class FindingsPanel(Static):
    def show(self, findings: Sequence[Finding], palette: Palette) -> None:
        self.update(findings_text(findings, palette))
