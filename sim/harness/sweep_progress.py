"""The progress of a seed sweep on stderr: runs done, rate, time left, violating runs so far.

Only on a terminal: piped or redirected, stderr gets nothing (a log file is no place for a bar that
redraws itself). The bar is transient: once the sweep ends it is gone and the report stands alone.
"""

from __future__ import annotations

import sys
from typing import IO

from tagjoin.sim.harness.sweep_pool import Progress


def wanted(quiet: bool, stream: IO[str] | None = None) -> bool:
    stream = sys.stderr if stream is None else stream
    return not quiet and stream.isatty()


class ProgressBar:
    def __init__(self, total_runs: int, label: str, stream: IO[str] | None = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("runs · {task.fields[rate]}/s ·"),
            TimeElapsedColumn(),
            TextColumn("elapsed ·"),
            TimeRemainingColumn(),
            TextColumn("left · {task.fields[violating]}"),
            console=Console(file=sys.stderr if stream is None else stream),
            transient=True,
        )
        self._task = self._bar.add_task(label, total=total_runs, rate="-", violating="no violating run")

    def __enter__(self) -> ProgressBar:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def update(self, progress: Progress) -> None:
        n = progress.violating_runs
        violating = "no violating run" if n == 0 else f"[red]{n} violating run{'s' if n != 1 else ''}"
        self._bar.update(self._task, completed=progress.runs_done, rate=f"{progress.rate:.1f}", violating=violating)


class NoBar:
    def __enter__(self) -> NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, progress: Progress) -> None:
        return None
