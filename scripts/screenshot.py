"""Regenerate docs/console.svg: the console on the embedded cluster, just after a leader left.

    .venv/bin/python scripts/screenshot.py [--out docs/console.svg] [--size 160x44]

Runs what `tagjoin console --demo` runs (tagjoin.sim.live.live_cluster + tagjoin.tui.wiring) headless under Textual's
pilot: waits for a leader holding the tag, makes the leader leave through the confirm dialog,
waits for the new leader and the tag handoff, then saves Textual's SVG screenshot. Takes
about 20 s; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot

from tagjoin.core.model import MemberStatus
from tagjoin.sim.live.live_cluster import start_live
from tagjoin.tui.app import ConsoleApp
from tagjoin.tui.demo import endpoints_of
from tagjoin.tui.screens.confirm import ConfirmScreen
from tagjoin.tui.widgets.members import MembersTable
from tagjoin.tui.wiring import ConsoleOptions, build_console, demo_settings

ROOT = Path(__file__).resolve().parents[1]


async def until(pilot: Pilot[None], what: str, cond: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        await pilot.pause(0.05)
    raise SystemExit(f"screenshot: timed out after {timeout:g}s waiting for {what}")


def leader(app: ConsoleApp) -> str | None:
    return app.view.leader_node if app.view else None


def status(app: ConsoleApp, node: str) -> MemberStatus | None:
    rows = app.view.rows if app.view else ()
    return next((r.status for r in rows if r.name == node), None)


async def select(pilot: Pilot[None], app: ConsoleApp, node: str) -> None:
    table = app.query_one(MembersTable)
    await pilot.press("g", *["j"] * table.get_row_index(node))
    await until(pilot, f"{node} selected", lambda: table.selected_key == node, 5)


async def scene(app: ConsoleApp, size: tuple[int, int]) -> str:
    async with app.run_test(size=size) as pilot:
        await until(
            pilot,
            "a leader holding the tag",
            lambda: leader(app) is not None and bool(app.view and app.view.tag_agrees),
        )
        old = leader(app)
        assert old is not None
        applied = app.applied
        await until(pilot, "a few refreshes", lambda: app.applied >= applied + 3)
        await select(pilot, app, old)
        await pilot.press("l")
        await until(pilot, "the confirm dialog", lambda: isinstance(app.screen, ConfirmScreen), 5)
        await pilot.press("y")
        await until(
            pilot,
            "the new leader with the tag",
            lambda: leader(app) not in (None, old) and bool(app.view and app.view.tag_agrees),
        )
        await until(pilot, f"{old} left", lambda: status(app, old) == MemberStatus.LEFT)
        new = leader(app)
        assert new is not None
        await select(pilot, app, new)
        applied = app.applied
        await until(pilot, "two more refreshes", lambda: app.applied >= applied + 2)
        await pilot.pause()
        return app.export_screenshot(title="tagjoin console --demo")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console.svg")
    parser.add_argument("--size", default="160x44", help="terminal columns x rows (default %(default)s)")
    args = parser.parse_args(argv)
    cols, rows = (int(n) for n in args.size.lower().split("x"))

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(key, "demo")
    live = start_live(servers=3, clients=2, raft_multiplier=1)
    try:
        consul, aws, scope = demo_settings(endpoints_of(live))
        built = build_console(consul, aws, scope, ConsoleOptions(interval=1.0), control_url=live.control_url)
        try:
            svg = asyncio.run(scene(built.app, (cols, rows)))
        finally:
            for close in reversed(built.closers):
                close()
    finally:
        live.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(svg, encoding="utf-8")
    print(f"wrote {args.out} ({len(svg):,} bytes, {cols}x{rows})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
