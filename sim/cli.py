"""`tagjoin sim run` (seed sweeps) and `tagjoin sim serve` (a live simulated cluster)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tagjoin.core.argtypes import count, number_between, positive
from tagjoin.core.errors import ConfigError

# `sim run --preset`: (servers, clients) of clusters the size operators run.
PRESETS = {"5x500": (5, 500), "7x5000": (7, 5000)}
MAX_SERVERS, MAX_CLIENTS = 700, 12_700


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
    run.add_argument("--servers", type=positive, help="server agents (default 3)")
    run.add_argument("--clients", type=count, help="client agents (default 2)")
    run.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="a cluster of a real size instead of --servers and --clients: 5x500 = 5 servers and 500 clients "
        "(~1.3 s a seed), 7x5000 = 7 servers and 5,000 clients (2-3 minutes a seed; see benchmarks/RESULTS.md)",
    )
    run.add_argument(
        "--auto-join",
        choices=("cluster", "servers"),
        help="what the kit's retry-join.hcl auto-joins: every instance of the cluster (the kit's default), or the "
        "servers alone (deploy-kit --auto-join-tag); default: servers with --preset, else cluster",
    )
    run.add_argument("--raft-multiplier", type=positive, default=5, help="Consul's raft_multiplier (default 5)")
    run.add_argument("--duration", type=positive, default=90, help="virtual seconds per scenario (default 90)")
    run.add_argument(
        "--ec2",
        choices=("direct", "boto3"),
        default="direct",
        help="how the handlers reach moto: direct on its EC2 models (default, fast) or boto3 through botocore "
        "(the reference path of sim serve); the same seed gives the same trace on either",
    )
    run.add_argument(
        "--raft-profile",
        choices=("pre-vote", "no-pre-vote", "both"),
        default="pre-vote",
        help="pre-vote: Consul >= 1.20 (default); no-pre-vote: Consul <= 1.19, where a server that rejoins with "
        "an inflated term deposes the leader; both: every seed under each, reported side by side",
    )
    run.add_argument(
        "--ec2-lag",
        type=_ec2_lag,
        default="default",
        metavar="{strong,default,adversarial,SPEC}",
        help="EC2's eventual consistency: each reader sees a write late, by a lognormal lag. strong: none; "
        "default: p50=200ms,p99=2s,max=20s; adversarial: default, and deletes are seen before earlier creates; "
        "SPEC: p50=DUR,p99=DUR,max=DUR[,adversarial], DUR like 150ms or 1.5s",
    )
    run.add_argument("--json", action="store_true", help="print the report as JSON")
    run.add_argument("--svg", metavar="PATH", help="write a timeline picture of one run (see --svg-seed)")
    run.add_argument("--svg-seed", type=int, help="seed to draw (default: the first violation, else the first seed)")
    run.add_argument(
        "--quiet", action="store_true", help="no progress on stderr (there is none unless it is a terminal)"
    )
    run.add_argument(
        "--jobs",
        type=positive,
        metavar="N",
        help="worker processes (default: every core; 1 runs in this process); the report is the same for any N",
    )
    run.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run on the Dask cluster whose scheduler is at ADDRESS (tcp://host:8786; needs the cluster extra)",
    )
    run.add_argument(
        "--chunk", type=positive, metavar="SEEDS", help="seeds per task for --jobs/--dask (default: sized)"
    )
    run.add_argument(
        "--out", metavar="DIR", help="write report.json, violations.jsonl and the first failure's timeline SVG to DIR"
    )
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

    replay = sub.add_parser(
        "replay",
        help="re-run one seed of `sim run` and print its schedule, trace and invariant verdicts",
        description="Takes the scenario options of `sim run`. Exit status 1 when an invariant is violated.",
    )
    replay.add_argument("seed", type=int, metavar="SEED")
    _share_scenario_options(run, replay)
    replay.set_defaults(handler=cmd_replay)


# `sim run`'s options that choose seeds or say what to do with a sweep; all others describe the
# scenario and are `sim replay`'s too (new ones included: replay takes whatever run has).
_SWEEP_ONLY = frozenset(
    {"help", "seeds", "seed_start", "seed", "svg", "svg_seed", "quiet", "jobs", "dask", "chunk", "out"}
)


def _share_scenario_options(run: argparse.ArgumentParser, replay: argparse.ArgumentParser) -> None:
    for action in run._actions:
        if action.dest not in _SWEEP_ONLY:
            replay._add_action(action)


def _ec2_lag(text: str) -> str:
    """`--ec2-lag`, checked before any seed runs; scenarios parse it again (it travels as text)."""
    from tagjoin.sim.aws.ec2_lag import parse_lag

    try:
        parse_lag(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text.strip()


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
    from tagjoin.sim.harness.sweep_pool import SweepPlan, chunk_size_for, default_jobs, run_sweep, start_pool_early
    from tagjoin.sim.harness.sweep_progress import NoBar, ProgressBar, wanted
    from tagjoin.sim.harness.sweep_report import render_text, render_violations, to_json
    from tagjoin.sim.harness.timeline_svg import render_svg

    strategies = _strategies(args.strategy)
    seeds = _seeds(args)
    if args.dask is None and args.jobs != 1 and len(seeds) * len(strategies) > 2:
        start_pool_early()  # workers import the simulator while this process does
    configs = [
        _scenario_config(args, seeds.start, strategy, profile)
        for strategy in strategies
        for profile in _profiles(args.raft_profile)
    ]
    if args.dask is not None and args.jobs is not None:
        raise ConfigError("--dask runs seeds on the cluster's workers; it does not combine with --jobs")
    out = _out_dir(args.out) if args.out else None
    runs = len(seeds) * len(configs)
    jobs = args.jobs if args.jobs is not None else (default_jobs() if runs > 2 else 1)
    chunk = args.chunk or chunk_size_for(len(seeds), len(configs), jobs, dask=args.dask is not None)
    plan = SweepPlan.of(configs, seeds, chunk, draw_seed=args.svg_seed)
    label = f"{'+'.join(strategies)} seeds {seeds.start}-{seeds.stop - 1}"
    bar: ProgressBar | NoBar = ProgressBar(runs, label) if wanted(args.quiet) else NoBar()
    with bar:
        outcome = run_sweep(plan, jobs=jobs, dask=args.dask, on_progress=bar.update)
    report = to_json(outcome.summaries, outcome.violating)
    report["raft_profiles"] = list(_profiles(args.raft_profile))
    done, asked = outcome.done, outcome.requested
    if outcome.partial:
        report["partial"] = {
            "seed_start": asked.start,
            "seeds_done": len(done),
            "seeds_requested": len(asked),
            "resume": {"seed_start": done.stop, "seeds": asked.stop - done.stop},
        }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        if outcome.partial:
            shown = f"seeds {done.start}-{done.stop - 1}" if done else "no seed"
            print(f"PARTIAL REPORT (interrupted): {shown} of {asked.start}-{asked.stop - 1}")
        sys.stdout.write(render_text(outcome.summaries))
        violations = render_violations(outcome.violating)
        if violations:
            sys.stdout.write("\nfirst violations (seed, invariant, schedule):\n" + violations)
    if args.svg and outcome.picture is not None:
        chosen = outcome.picture
        Path(args.svg).write_text(render_svg(chosen))
        if not args.json:
            print(f"\ntimeline of {chosen.strategy} seed {chosen.seed} written to {args.svg}")
    if out is not None:
        written = _write_out(out, report, outcome, plan)
        if not args.json:
            print(f"\nwritten to {out}: {', '.join(written)}")
    if outcome.partial:
        remaining = asked.stop - done.stop
        print(
            f"tagjoin sim run: interrupted after {len(done)} of {len(asked)} seeds; resume with"
            f" --seed-start {done.stop} --seeds {remaining} (and the same other options)",
            file=sys.stderr,
        )
        return 130
    return 1 if outcome.violating else 0


def _strategies(choice: str) -> tuple[str, ...]:
    return {"both": ("fenced", "naive"), "all": ("fenced", "watch", "naive")}.get(choice, (choice,))


def _profiles(choice: str) -> tuple[str, ...]:
    return ("pre-vote", "no-pre-vote") if choice == "both" else (choice,)


def _scenario_config(args: argparse.Namespace, seed: int, strategy: str, profile: str = "pre-vote") -> Any:
    """The ScenarioConfig of `sim run` and `sim replay` from their shared options. Runs under both
    raft profiles are reported apart, as "<strategy>/<profile>"."""
    from tagjoin.sim.harness.scenario import ScenarioConfig

    both = len(_profiles(getattr(args, "raft_profile", "pre-vote"))) > 1
    servers, clients = _cluster_size(args)
    return ScenarioConfig(
        raft_profile=profile,
        label=f"{strategy}/{profile}" if both else "",
        seed=seed,
        strategy=strategy,
        servers=servers,
        clients=clients,
        raft_multiplier=args.raft_multiplier,
        duration_ms=args.duration * 1000,
        faults=_fault_kinds(args.faults),
        fault_window_ms=_fault_window(args.duration * 1000),
        ec2=getattr(args, "ec2", "direct"),
        ec2_lag=getattr(args, "ec2_lag", "strong"),
        auto_join=_auto_join(args),
    )


def _auto_join(args: argparse.Namespace) -> str:
    """A fleet the size of a preset runs the kit with its auto-join on the servers' tag: over the
    whole cluster, every boot would push-pull with every instance."""
    chosen: str | None = getattr(args, "auto_join", None)
    if chosen is not None:
        return chosen
    return "servers" if getattr(args, "preset", None) is not None else "cluster"


def _cluster_size(args: argparse.Namespace) -> tuple[int, int]:
    """(servers, clients) from `--preset`, or `--servers` and `--clients` (3 and 2 when not given)."""
    preset = getattr(args, "preset", None)
    if preset is None:
        servers, clients = args.servers, args.clients
        servers, clients = (3 if servers is None else servers), (2 if clients is None else clients)
    elif args.servers is not None or args.clients is not None:
        raise ConfigError(f"--preset {preset} sets the cluster's size; leave out --servers and --clients")
    else:
        servers, clients = PRESETS[preset]
    # Where the scenario's address plan runs out (sim/harness/scenario.py `client_ip`, servers at .10-.59).
    if servers > MAX_SERVERS or clients > MAX_CLIENTS:
        raise ConfigError(
            f"at most {MAX_SERVERS} servers and {MAX_CLIENTS:,} clients (asked {servers} and {clients:,})"
        )
    return servers, clients


def _out_dir(text: str) -> Path:
    """`--out DIR`, made if missing and checked before any seed runs."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {text}: not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".tagjoin-write-check"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"--out {text}: {exc.strerror or exc}") from None
    return path


def _write_out(out: Path, report: dict[str, Any], outcome: Any, plan: Any) -> list[str]:
    """report.json, violations.jsonl (one violating run a line, its schedule and its whole config)
    and first-failure.svg (when a run failed)."""
    from dataclasses import asdict, replace

    from tagjoin.sim.harness.timeline_svg import render_svg

    configs = {c.run_label: c for c in plan.configs}
    lines = []
    for rec in outcome.violating:
        config = asdict(replace(configs[rec.strategy], seed=rec.seed))
        violations = [{"invariant": v.invariant, "t_ms": v.t, "detail": v.detail} for v in rec.violations]
        line = {"strategy": rec.strategy, "seed": rec.seed, "violations": violations, "schedule": rec.schedule}
        lines.append(json.dumps({**line, "config": config}, default=str) + "\n")
    written = ["report.json", "violations.jsonl"]
    try:
        (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / "violations.jsonl").write_text("".join(lines))
        failure = outcome.first_failure
        if failure is not None:
            (out / "first-failure.svg").write_text(render_svg(failure))
            written.append(f"first-failure.svg ({failure.strategy} seed {failure.seed})")
    except OSError as exc:
        raise ConfigError(f"--out {out}: {exc.strerror or exc}") from None
    return written


def cmd_replay(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from tagjoin.sim.harness.scenario import run_scenario
    from tagjoin.sim.harness.sweep_report import INVARIANTS

    runs: list[dict[str, Any]] = []
    for strategy, profile in [(s, p) for s in _strategies(args.strategy) for p in _profiles(args.raft_profile)]:
        config = _scenario_config(args, args.seed, strategy, profile)
        rec = run_scenario(config, keep_log=True)
        # run_scenario(keep_log=True) puts the handlers' log after the fault schedule; schedule
        # lines start "t=<ms>ms", log lines with the time right-aligned.
        schedule = [line for line in rec.schedule if line.startswith("t=")]
        log = [line for line in rec.schedule if not line.startswith("t=")]
        trace = _trace(rec, log)
        names = [*INVARIANTS, *sorted({v.invariant for v in rec.violations} - set(INVARIANTS))]
        runs.append(
            {
                "strategy": config.run_label,
                "seed": args.seed,
                "config": asdict(config),
                "schedule": schedule,
                "trace": trace,
                "verdicts": {
                    name: "violated" if any(v.invariant == name for v in rec.violations) else "ok" for name in names
                },
                "violations": [{"invariant": v.invariant, "t_ms": v.t, "detail": v.detail} for v in rec.violations],
            }
        )
    if args.json:
        print(json.dumps({"runs": runs}, indent=2, default=str))
    else:
        for i, run in enumerate(runs):
            sys.stdout.write(("\n" if i else "") + _replay_text(run))
    return 1 if any(run["violations"] for run in runs) else 0


def _trace(rec: Any, log: list[str]) -> list[str]:
    """One run's events in virtual time: leaders, tag holders, tag writes, faults, joiners, and the
    handlers' own log lines (`run_scenario(keep_log=True)`), each as `<ms> <what>`."""
    events: list[tuple[int, int, str]] = []
    for span in rec.leaders:
        events.append((span.start, 0, f"leader: {span.node} (term {span.term})"))
        if span.end is not None:
            events.append((span.end, 0, f"leader: {span.node} no longer leads (term {span.term})"))
    for fault in rec.faults:
        events.append((fault.start, 1, f"fault: {fault.kind} {fault.target} until {fault.end}ms"))
    for w in rec.writes:
        what = f"{w.action} {w.target} {w.value!r}".rstrip() + ("" if w.target_running else " (not running)")
        events.append((w.t, 2, f"write: {w.writer} {what}"))
    for sample in rec.tags:
        events.append(
            (sample.t, 3, f"tag: on {', '.join(sorted(sample.holders)) or 'no running instance of the cluster'}")
        )
    for joiner in rec.joiners:
        joined = "never joined" if joiner.joined is None else f"joined at {joiner.joined}ms via {joiner.via}"
        events.append((joiner.arrive, 4, f"joiner: boots, {joined}"))
    for line in log:
        head, _, rest = line.strip().partition(" ")
        events.append((int(head), 5, rest) if head.isdigit() else (rec.duration_ms, 5, line))
    for v in rec.violations:
        events.append((v.t, 6, f"VIOLATION {v.invariant}: {v.detail}"))
    return [f"{t:>7} {text}" for t, _, text in sorted(events, key=lambda e: (e[0], e[1]))]


def _replay_text(run: dict[str, Any]) -> str:
    c = run["config"]
    out = [
        f"{run['strategy']} seed {run['seed']}: {c['servers']} servers, {c['clients']} clients,"
        f" raft_multiplier {c['raft_multiplier']}, {c['duration_ms'] // 1000} virtual s",
        "schedule:",
        *(f"  {line}" for line in run["schedule"] or ["no faults"]),
        f"trace ({len(run['trace'])} lines):",
        *(f"  {line}" for line in run["trace"]),
        "verdicts:",
    ]
    for name in run["verdicts"]:
        found = [v for v in run["violations"] if v["invariant"] == name]
        if not found:
            out.append(f"  {name} ok")
            continue
        first = found[0]
        more = f" ({len(found)} violations)" if len(found) > 1 else ""
        out.append(f"  {name} VIOLATED at {first['t_ms']}ms: {first['detail']}{more}")
    return "\n".join(out) + "\n"


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
