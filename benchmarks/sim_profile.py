"""cProfile worker for benchmark 4: the same scenarios as sim_pyperf.py, fenced, under cProfile.

python benchmarks/sim_profile.py OUT.prof SEEDS
"""

from __future__ import annotations

import cProfile
import sys

from tagjoin.sim.harness.scenario import ScenarioConfig, run_scenario

if __name__ == "__main__":
    out, seeds = sys.argv[1], int(sys.argv[2])
    run_scenario(ScenarioConfig(seed=999, duration_ms=1_000))  # imports and first-use costs stay out
    profile = cProfile.Profile()
    profile.enable()
    for seed in range(seeds):
        run_scenario(
            ScenarioConfig(seed=seed, strategy="fenced", servers=3, clients=2, duration_ms=60_000, faults=("crash",))
        )
    profile.disable()
    profile.dump_stats(out)
