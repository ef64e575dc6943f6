"""Command palette (`:` or ctrl+p): every available action, for every node it applies to."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from textual.command import DiscoveryHit, Hit, Hits, Provider


@dataclass(frozen=True)
class PaletteCommand:
    title: str  # e.g. "Leave node-2"
    help: str
    run: Callable[[], None]


@runtime_checkable
class PaletteHost(Protocol):
    def palette_commands(self) -> Sequence[PaletteCommand]: ...


class ConsoleCommands(Provider):
    def _commands(self) -> Sequence[PaletteCommand]:
        host = self.app
        # Only what the action layer allows right now: read-only hides every change here too.
        return host.palette_commands() if isinstance(host, PaletteHost) else ()

    async def discover(self) -> Hits:
        for cmd in self._commands():
            yield DiscoveryHit(cmd.title, cmd.run, help=cmd.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for cmd in self._commands():
            score = matcher.match(cmd.title)
            if score > 0:
                yield Hit(score, matcher.highlight(cmd.title), cmd.run, help=cmd.help)
