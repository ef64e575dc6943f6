"""`tagjoin sim run` (seed sweeps) and `tagjoin sim serve` (a live simulated cluster)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tagjoin.core.argtypes import count, number_between, positive
from tagjoin.core.errors import ConfigError


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "sim", help="failover simulator: seed sweeps (run) and a live simulated cluster (serve)"
    )
    sub = p.add_subparsers(dest="sim_command", metavar="SIM_COMMAND", required=True)

    run = sub.add_parser(
        "run",
        help="run failover scenarios over many seeds and check the invariants",
        description="Exit status 1 when any invariant is violated, so scripts can gate on it.",
    )
    run.add_argument("--seeds", type=positive, help="number of seeds (default 20)")
    run.add_argument("--seed-start", type=int, help="first seed (default 0)")
    run.add_argument("--seed", type=int, metavar="N", help="run seed N only (--seed-start N --seeds 1)")
    run.add_argument(
        "--strategy",
        choices=("fenced", "watch", "naive", "both", "all"),
        default="fenced",
        help="fenced (tagjoin keep), watch (consul watch + tagjoin watch-handler), naive; both = fenced and naive",
    )
    run.add_argument("--faults", default="all", help="comma-separated fault kinds, or all (default)")
    run.add_argument("--servers", type=positive, default=3)
    run.add_argument("--clients", type=count, default=2)
    run.add_argument("--raft-multiplier", type=positive, default=5, help="Consul's raft_multiplier (default 5)")
    run.add_argument("--duration", type=positive, default=90, help="virtual seconds per scenario (default 90)")
    run.add_argument("--json", action="store_true", help="print the report as JSON")
    run.add_argument("--svg", metavar="PATH", help="write a timeline picture of one run (see --svg-seed)")
    run.add_argument("--svg-seed", type=int, help="seed to draw (default: the first violation, else the first seed)")
    run.add_argument("--quiet", action="store_true", help="no progress on stderr")
    run.set_defaults(handler=cmd_run)

    serve = sub.add_parser("serve", help="a live simulated cluster over real HTTP on 127.0.0.1")
    serve.add_argument("--servers", type=positive, default=3)
    serve.add_argument("--clients", type=count, default=2)
    serve.add_argument("--raft-multiplier", type=positive, default=1)
    serve.add_argument("--seed", type=int, default=0)
    serve.add_argument(
        "--speed", type=number_between(0.01, 1000.0), default=1.0, help="virtual seconds per wall second (default 1)"
    )
    serve.add_argument(
        "--port-base",
        type=positive,
        metavar="N",
        help="fixed ports: control API on N, EC2 on N+1, agents from N+2 (default: the OS picks)",
    )
    serve.add_argument(
        "--agent-map",
        metavar="FILE",
        help="keep every agent's URL in FILE for `tagjoin console --agent-map` (default: a temporary file)",
    )
    serve.set_defaults(handler=cmd_serve)


def _fault_kinds(text: str) -> tuple[str, ...]:
    from tagjoin.sim.harness.scenario import FAULT_KINDS

    if text == "all":
        return FAULT_KINDS
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown or not kinds:
        raise ConfigError(f"unknown fault kind {', '.join(unknown) or '(none)'}; known: {', '.join(FAULT_KINDS)}")
    return kinds


def cmd_run(args: argparse.Namespace) -> int:
    from tagjoin.sim.harness.metrics import summarise
    from tagjoin.sim.harness.recording import Recording
    from tagjoin.sim.harness.scenario import ScenarioConfig, run_scenario
    from tagjoin.sim.harness.sweep_report import render_text, render_violations, to_json
    from tagjoin.sim.harness.timeline_svg import render_svg

    faults = _fault_kinds(args.faults)
    strategies = {"both": ("fenced", "naive"), "all": ("fenced", "watch", "naive")}.get(args.strategy, (args.strategy,))
    seeds = _seeds(args)
    recordings: dict[str, list[Recording]] = {s: [] for s in strategies}
    total = len(seeds) * len(strategies)
    done = 0
    for strategy in strategies:
        for seed in seeds:
            config = ScenarioConfig(
                seed=seed,
                strategy=strategy,
                servers=args.servers,
                clients=args.clients,
                raft_multiplier=args.raft_multiplier,
                duration_ms=args.duration * 1000,
                faults=faults,
                fault_window_ms=_fault_window(args.duration * 1000),
            )
            recordings[strategy].append(run_scenario(config))
            done += 1
            if not args.quiet and sys.stderr.isatty():
                print(f"\r{strategy} seed {seed} ({done}/{total})", end="", file=sys.stderr, flush=True)
    if not args.quiet and sys.stderr.isatty():
        print("\r" + " " * 40 + "\r", end="", file=sys.stderr)
    summaries = {s: summarise(recs) for s, recs in recordings.items()}
    everything = [r for recs in recordings.values() for r in recs]
    if args.json:
        print(json.dumps(to_json(summaries, everything), indent=2))
    else:
        sys.stdout.write(render_text(summaries))
        violations = render_violations(everything)
        if violations:
            sys.stdout.write("\nfirst violations (seed, invariant, schedule):\n" + violations)
    if args.svg:
        chosen = _pick_for_svg(everything, args.svg_seed)
        Path(args.svg).write_text(render_svg(chosen))
        if not args.json:
            print(f"\ntimeline of {chosen.strategy} seed {chosen.seed} written to {args.svg}")
    return 1 if any(r.violations for r in everything) else 0


def _seeds(args: argparse.Namespace) -> range:
    if args.seed is not None:
        if args.seeds is not None or args.seed_start is not None:
            raise ConfigError("--seed runs one seed; it does not combine with --seeds or --seed-start")
        return range(args.seed, args.seed + 1)
    start = 0 if args.seed_start is None else args.seed_start
    return range(start, start + (20 if args.seeds is None else args.seeds))


def _fault_window(duration_ms: int) -> tuple[int, int]:
    """Faults land after the cluster formed and early enough to heal and settle."""
    start = min(15_000, duration_ms // 6)
    return start, max(start, min(25_000, duration_ms // 3))


def _pick_for_svg(recordings: list[Any], seed: int | None) -> Any:
    if seed is not None:
        for rec in recordings:
            if rec.seed == seed:
                return rec
        raise ConfigError(f"seed {seed} was not part of this run")
    return next((r for r in recordings if r.violations), recordings[0])


def cmd_serve(args: argparse.Namespace) -> int:
    from tagjoin.sim.live.serve import serve_forever

    return serve_forever(
        servers=args.servers,
        clients=args.clients,
        raft_multiplier=args.raft_multiplier,
        seed=args.seed,
        speed=args.speed,
        port_base=args.port_base,
        agent_map=Path(args.agent_map) if args.agent_map else None,
    )
