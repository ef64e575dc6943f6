"""Glyphs and colours shared by the widgets.

Colours come from the running theme, so light terminals and the ansi themes stay readable;
a glyph always goes with the colour, so colour is never the only signal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from rich.text import Text
from textual.app import App

from tagjoin.core.model import MemberStatus
from tagjoin.core.view import Severity

STATUS_GLYPH: dict[MemberStatus, str] = {
    MemberStatus.ALIVE: "●",
    MemberStatus.LEAVING: "◐",
    MemberStatus.LEFT: "○",
    MemberStatus.FAILED: "✖",
    MemberStatus.NONE: "?",
}
SEVERITY_GLYPH: dict[Severity, str] = {Severity.CRITICAL: "✖", Severity.WARNING: "▲", Severity.INFO: "•"}
LEADER_MARK = "★"
TAG_MARK = "⚑"


@dataclass(frozen=True)
class Palette:
    ok: str = "green"
    warn: str = "yellow"
    err: str = "red"
    accent: str = "cyan"
    dim: str = "dim"

    @classmethod
    def of(cls, app: App[Any]) -> Palette:
        v = app.get_css_variables()
        return cls(
            ok=v.get("text-success", cls.ok),
            warn=v.get("text-warning", cls.warn),
            err=v.get("text-error", cls.err),
            accent=v.get("text-primary", v.get("primary", cls.accent)),
        )

    def status(self, status: MemberStatus) -> str:
        return {
            MemberStatus.ALIVE: self.ok,
            MemberStatus.LEAVING: self.warn,
            MemberStatus.LEFT: self.dim,
            MemberStatus.FAILED: f"bold {self.err}",
        }.get(status, self.dim)

    def severity(self, severity: Severity) -> str:
        return {Severity.CRITICAL: f"bold {self.err}", Severity.WARNING: self.warn}.get(severity, self.dim)


def status_text(status: MemberStatus, palette: Palette) -> Text:
    return Text(f"{STATUS_GLYPH.get(status, '?')} {status.label}", style=palette.status(status))


def clock_text(at: float, tz: tzinfo | None) -> str:
    """Wall-clock time of day, local unless a zone is given (tests pin UTC)."""
    return datetime.fromtimestamp(at, tz=tz).strftime("%H:%M:%S")
