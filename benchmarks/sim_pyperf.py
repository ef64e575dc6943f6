"""pyperf worker for benchmark 4: one failover scenario (3 servers + 2 clients, 60 virtual s, leader
crash) per loop, seeds 0, 1, 2, … in order. Run by benchmarks/simspeed.py:

    python benchmarks/sim_pyperf.py -o OUT.json --processes 4 --values 3 --warmups 1 --loops 5
"""

from __future__ import annotations

import pyperf

from tagjoin.sim.harness.scenario import ScenarioConfig, run_scenario

SERVERS, CLIENTS, DURATION_MS = 3, 2, 60_000


def config(seed: int, strategy: str) -> ScenarioConfig:
    return ScenarioConfig(
        seed=seed, strategy=strategy, servers=SERVERS, clients=CLIENTS, duration_ms=DURATION_MS, faults=("crash",)
    )


def scenarios(loops: int, strategy: str) -> float:
    started: float = pyperf.perf_counter()
    for seed in range(loops):
        run_scenario(config(seed, strategy))
    elapsed: float = pyperf.perf_counter() - started
    return elapsed


def main() -> None:
    runner = pyperf.Runner()
    runner.metadata["description"] = "one simulated failover scenario (3 servers + 2 clients, 60 s, leader crash)"
    for strategy in ("fenced", "naive"):
        runner.bench_time_func(f"scenario-{strategy}", scenarios, strategy)


if __name__ == "__main__":
    main()
