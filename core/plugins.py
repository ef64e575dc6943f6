"""Subcommands contributed through the `tagjoin.commands` entry-point group, and what to say when one
cannot run.

`console` and `sim` need the `console` extra (Textual, moto); the node-side commands need neither.
Each entry point names the extras it needs (`tagjoin.tui.cli:register [console]`). A plugin whose
extras are not installed, or that fails to load in any other way (any exception from its import or
its `register`), must not take `tagjoin --help` or the node-side commands down with it: its command
stays listed, and running it prints one line saying why, with exit status 2.
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib.metadata import EntryPoint
from typing import Any

from tagjoin.core.errors import EXIT_USAGE

GROUP = "tagjoin.commands"

# `textual<9,>=8.2; extra == "console"`: the requirement's name and the extra that asks for it.
_EXTRA_REQUIREMENT = re.compile(
    r"""^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)[^;]*;.*\bextra\s*==\s*["'](?P<extra>[^"']+)["']"""
)


def load_plugins(sub: Any) -> None:
    """Let every installed plugin register its subcommand into `sub` (argparse's subparsers)."""
    from importlib.metadata import entry_points

    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        needs = missing_extras(ep)
        if needs:
            add_unavailable(sub, ep.name, needs)
            continue
        before = set(sub.choices)
        try:
            ep.load()(sub)
        except Exception as exc:  # any failure: a broken plugin is reported, never fatal
            _forget(sub, set(sub.choices) - before)
            add_unavailable(sub, ep.name, f"{type(exc).__name__}: {' '.join(str(exc).split())}")


def add_unavailable(sub: Any, name: str, reason: str) -> None:
    """A stand-in command that accepts any arguments and prints `tagjoin NAME: REASON` (exit 2)."""

    def handler(_args: argparse.Namespace) -> int:
        print(f"tagjoin {name}: {reason}", file=sys.stderr)
        return EXIT_USAGE

    # No option prefix: `tagjoin console --demo` or `tagjoin sim run --seed 0` reach the handler
    # and its one line instead of an argparse error about options nobody could register.
    p = sub.add_parser(name, help=f"unavailable: {reason}", add_help=False, prefix_chars="\0")
    p.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    p.set_defaults(handler=handler)


def missing_extras(ep: EntryPoint) -> str | None:
    """`needs the console extra: pip install 'consul-tagjoin[console]'` when an extra the entry point
    names has a requirement that is not installed; None when all are (or it names none)."""
    from importlib.metadata import PackageNotFoundError, distribution

    dist = ep.dist
    if dist is None or not ep.extras:
        return None
    wanted = set(ep.extras)
    missing: list[str] = []
    for line in dist.requires or []:
        match = _EXTRA_REQUIREMENT.match(line)
        if match is None or match["extra"] not in wanted or match["extra"] in missing:
            continue
        try:
            distribution(match["name"])
        except PackageNotFoundError:
            missing.append(match["extra"])
    if not missing:
        return None
    which = f"the {missing[0]} extra" if len(missing) == 1 else f"the {', '.join(missing)} extras"
    return f"needs {which}: pip install '{dist.metadata['Name']}[{','.join(missing)}]'"


def _forget(sub: Any, names: set[str]) -> None:
    """Drop commands a failed `register` added before it raised, so its stand-in can take the name."""
    for name in names:
        del sub.choices[name]
    sub._choices_actions[:] = [a for a in sub._choices_actions if a.dest not in names]
