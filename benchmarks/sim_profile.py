"""Worker for benchmark 4: simulated scenarios timed, or under cProfile, on one EC2 path.

    python benchmarks/sim_profile.py OUT.prof SEEDS [--ec2 direct|boto3] [--matrix default|crash]
    python benchmarks/sim_profile.py --time SEEDS [--ec2 direct|boto3] [--matrix default|crash] [--start N]
    python benchmarks/sim_profile.py --calls ROUNDS

`default` is the sweep's default matrix (`tagjoin sim run`: fenced, 3 servers + 2 clients, 90
virtual s, one fault a seed drawn from every kind); `crash` the older 60 s leader-crash scenario.
Worlds share one started moto mock (`kept_running`). `--time` prints one
JSON line: scenarios, wall and CPU seconds, after a warm-up scenario (imports and first-use costs
stay out). `--calls` prints one JSON line of what a keeper's two calls cost (`keeper_calls`).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import statistics
import time
from collections.abc import Callable

from tagjoin.core.consul.client import ConsulClient
from tagjoin.core.consul.settings import ConsulSettings
from tagjoin.sim.aws.ec2_account import Ec2World, kept_running
from tagjoin.sim.consul.http_api import ApiRequest, ApiResponse
from tagjoin.sim.consul.in_process import InProcessHttp, _response
from tagjoin.sim.harness.scenario import CLUSTER, ScenarioConfig, build, run_scenario


def config(seed: int, ec2: str, matrix: str) -> ScenarioConfig:
    if matrix == "crash":
        return ScenarioConfig(seed=seed, duration_ms=60_000, faults=("crash",), ec2=ec2)
    # As `tagjoin sim run` builds it for its defaults (sim/cli.py _scenario_config, _fault_window).
    return ScenarioConfig(seed=seed, duration_ms=90_000, fault_window_ms=(15_000, 25_000), ec2=ec2)


def keeper_calls(rounds: int, calls: int = 2_000) -> dict[str, float]:
    """What each of a keeper's two calls a loop costs, in µs (median of `rounds` rounds of `calls`):
    the whole call as the keeper makes it (`ConsulClient` on the in-process agent), the simulated
    agent's answer alone (`AgentApi.handle`) and the response object it is handed back as. The
    rest of the whole call is production code and its libraries (core's client, httpx's response,
    json), which no speed-up of the simulator can remove. A settled default cluster, 20 virtual s
    in, asked on a follower server's agent with `?stale`, as the keepers ask."""
    with Ec2World(1, CLUSTER) as world:
        s = build(ScenarioConfig(seed=1), world)
        s.cluster.engine.run_until(20_000)
        api = s.fleet.api
        leader = s.cluster.leader()
        node = next(name for name in sorted(s.cluster.raft) if name != leader)
        settings = ConsulSettings()
        http = InProcessHttp(api, node, settings)
        client = ConsulClient(settings, transport=api.transport_for(node), http=http)
        headers = {k.lower(): v for k, v in dict(http.build_request("GET", "/").headers).items()}
        self_req = ApiRequest("GET", "/v1/agent/self", {}, headers)
        health_req = ApiRequest("GET", "/v1/health/state/critical", {"stale": [""], "index": ["0"]}, headers)
        self_answer, health_answer = api.handle(node, self_req), api.handle(node, health_req)
        assert isinstance(self_answer, ApiResponse) and isinstance(health_answer, ApiResponse)
        work: dict[str, Callable[[], object]] = {
            "agent_self_call": client.agent_self,
            "agent_self_answer": lambda: api.handle(node, self_req),
            "agent_self_response": lambda: _response(self_answer),
            "health_call": lambda: client.health_state("critical", index=0, wait=1.0, consistency="stale"),
            "health_answer": lambda: api.handle(node, health_req),
            "health_response": lambda: _response(health_answer),
        }
        got: dict[str, list[float]] = {name: [] for name in work}
        for _ in range(rounds):
            for name, fn in work.items():
                t0 = time.perf_counter()
                for _ in range(calls):
                    fn()
                got[name].append((time.perf_counter() - t0) / calls * 1e6)
        return {name: statistics.median(values) for name, values in got.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", nargs="?")
    parser.add_argument("seeds", type=int)
    parser.add_argument("--time", action="store_true")
    parser.add_argument("--calls", action="store_true", help="SEEDS is the number of rounds; see keeper_calls")
    parser.add_argument("--ec2", choices=("direct", "boto3"), default="direct")
    parser.add_argument("--matrix", choices=("default", "crash"), default="crash")
    parser.add_argument("--start", type=int, default=0)
    args = parser.parse_args()
    seeds = range(args.start, args.start + args.seeds)
    if args.calls:
        print(json.dumps(keeper_calls(args.seeds)), flush=True)
        return
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
