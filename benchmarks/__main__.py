"""Run every benchmark against local endpoints only and write benchmarks/RESULTS.md.

.venv/bin/python -m benchmarks                 # everything (about 15 minutes on 2 CPUs)
.venv/bin/python -m benchmarks --only join,startup --out /tmp/r.md
.venv/bin/python -m benchmarks --quick         # fewer runs, smaller sizes: a smoke test of the runner
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import BENCH, Section, ensure_tools, load_average, machine

NAMES = ("handoff", "join", "cost", "sim", "console", "startup", "serve", "sigterm", "sweep", "mutants", "scaling")
# Named with --only, never run by default: a mutation sweep takes far longer than the rest together,
# and the scaling table runs clusters of thousands of agents.
OPT_IN = ("mutants", "scaling")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        default=",".join(n for n in NAMES if n not in OPT_IN),
        help=f"comma-separated subset of {', '.join(NAMES)} (mutants only when named)",
    )
    parser.add_argument("--quick", action="store_true", help="few runs and small sizes (checks the runner)")
    parser.add_argument("--out", type=Path, default=BENCH / "RESULTS.md", help="where to write the results")
    parser.add_argument("--raw", type=Path, help="keep raw outputs (hyperfine/pyperf JSON, logs) here")
    args = parser.parse_args(argv)
    chosen = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in NAMES]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(NAMES)}")

    tools = ensure_tools()
    raw = args.raw or Path(tempfile.mkdtemp(prefix="tagjoin-bench-"))
    raw.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    load_before = load_average()
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    sections: list[Section] = []
    timings: list[tuple[str, float]] = []
    for name in chosen:
        print(f"benchmarks: {name} …", flush=True)
        t0 = time.monotonic()
        try:
            sections.append(_runner(name)(raw / name, args.quick))
        except Exception:
            detail = traceback.format_exc()
            print(detail, file=sys.stderr, flush=True)
            failed = Section(f"{name}: FAILED")
            failed.text("```\n" + detail.strip()[-3000:] + "\n```")
            sections.append(failed)
        timings.append((name, time.monotonic() - t0))
        print(f"benchmarks: {name} done in {timings[-1][1]:.0f} s", flush=True)
    total = time.monotonic() - started
    text = render(sections, tools, date, total, timings, load_before, load_average(), args.quick)
    args.out.write_text(text)
    print(f"benchmarks: wrote {args.out} in {total:.0f} s (raw outputs in {raw})", flush=True)
    return 0


# The module behind each benchmark name, where the two differ. Imported only when chosen: each
# pulls in its own heavy parts (moto, Textual, hyperfine runs).
MODULES = {"sim": "simspeed", "serve": "serve_load"}


def _runner(name: str) -> Callable[[Path, bool], Section]:
    module = importlib.import_module(f"benchmarks.{MODULES.get(name, name)}")
    run: Callable[..., Section] = module.run
    return lambda out, quick: run(out, quick=quick)


def render(
    sections: list[Section],
    tools: dict[str, str],
    date: str,
    total_s: float,
    timings: list[tuple[str, float]],
    load_before: str,
    load_after: str,
    quick: bool,
) -> str:
    m = machine()
    lines = [
        "# Benchmark results",
        "",
        "Written by `.venv/bin/python -m benchmarks` (see README.md here); every endpoint is on 127.0.0.1"
        + (" — **quick mode: few runs, not for comparison**" if quick else "")
        + ".",
        "",
        f"- date: {date}; total run time {total_s / 60:.1f} min ("
        + ", ".join(f"{n} {s:.0f} s" for n, s in timings)
        + ")",
        f"- machine: {m['cpus']} CPUs ({m['cpu']}), Python {m['python']}, {m['os']}",
        f"- load average (1/5/15 min) at start {load_before}, at end {load_after}",
        f"- tools: hyperfine {tools['hyperfine']}, pyperf {tools['pyperf']}, {tools['aws']}",
        "- tables give median / min / max over repeated runs; a ratio is the alternative's median ÷ ours,"
        " measured in the same run (above 1: ours is faster or cheaper)",
        "",
    ]
    aims = [(s.title, aim) for s in sections for aim in s.aims]
    if aims:
        lines += ["## Aims", "", "| benchmark | aim | met | figure |", "|---|---|---|---|"]
        for title, (aim, met, figure) in aims:
            mark = "-" if met is None else ("yes" if met else "**no**")
            lines.append(f"| {title.split(':')[0]} | {aim} | {mark} | {figure} |")
        lines.append("")
    for section in sections:
        lines += [section.markdown(), ""]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.exit(main())
