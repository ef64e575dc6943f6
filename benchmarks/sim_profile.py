"""Worker for benchmark 4: simulated scenarios timed, or under cProfile, on one EC2 path.

    python benchmarks/sim_profile.py OUT.prof SEEDS [--ec2 direct|boto3] [--matrix default|crash]
    python benchmarks/sim_profile.py --time SEEDS [--ec2 direct|boto3] [--matrix default|crash] [--start N]

`default` is the sweep's default matrix (`tagjoin sim run`: fenced, 3 servers + 2 clients, 90
virtual s, one fault a seed drawn from every kind); `crash` the older 60 s leader-crash scenario.
Worlds share one started moto mock (`kept_running`). `--time` prints one
JSON line: scenarios, wall and CPU seconds, after a warm-up scenario (imports and first-use costs
stay out).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import time

from tagjoin.sim.aws.ec2_account import kept_running
from tagjoin.sim.harness.scenario import ScenarioConfig, run_scenario


def config(seed: int, ec2: str, matrix: str) -> ScenarioConfig:
    if matrix == "crash":
        return ScenarioConfig(seed=seed, duration_ms=60_000, faults=("crash",), ec2=ec2)
    # As `tagjoin sim run` builds it for its defaults (sim/cli.py _scenario_config, _fault_window).
    return ScenarioConfig(seed=seed, duration_ms=90_000, fault_window_ms=(15_000, 25_000), ec2=ec2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", nargs="?")
    parser.add_argument("seeds", type=int)
    parser.add_argument("--time", action="store_true")
    parser.add_argument("--ec2", choices=("direct", "boto3"), default="direct")
    parser.add_argument("--matrix", choices=("default", "crash"), default="crash")
    parser.add_argument("--start", type=int, default=0)
    args = parser.parse_args()
    seeds = range(args.start, args.start + args.seeds)
    with kept_running():
        run_scenario(ScenarioConfig(seed=999, duration_ms=1_000, ec2=args.ec2))
        if args.time:
            wall, cpu = time.perf_counter(), time.process_time()
            for seed in seeds:
                run_scenario(config(seed, args.ec2, args.matrix))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(json.dumps({"ec2": args.ec2, "scenarios": len(seeds), "wall_s": wall, "cpu_s": cpu}), flush=True)
            return
        profile = cProfile.Profile()
        profile.enable()
        for seed in seeds:
            run_scenario(config(seed, args.ec2, args.matrix))
        profile.disable()
        profile.dump_stats(args.out)


if __name__ == "__main__":
    main()
