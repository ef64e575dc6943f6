"""`tagjoin sim serve`: run a live simulated cluster until interrupted, and say how to reach it."""

from __future__ import annotations

import shlex
import signal
import threading

from tagjoin.sim.live.live_cluster import LiveSim, start_live


def describe(live: LiveSim) -> str:
    lines = ["# consul-tagjoin simulated cluster — paste into a shell to use it:"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in live.environment().items()]
    lines.append("")
    lines.append("# agents (each answers the Consul HTTP API from its own local view):")
    cluster = live.scenario.cluster
    for name, url in live.agent_urls.items():
        node = cluster.nodes[name]
        lines.append(f"#   {name:<16} {node.ip:<12} {'server' if node.server else 'client':<7} {url}")
    lines.append(f"# control API: {live.control_url}/control/nodes  (crash, restart, partition, heal, pause, throttle)")
    lines.append("# Ctrl-C stops the cluster.")
    return "\n".join(lines)


def serve_forever(*, servers: int, clients: int, raft_multiplier: int, seed: int, speed: float) -> int:
    live = start_live(servers=servers, clients=clients, raft_multiplier=raft_multiplier, seed=seed, speed=speed)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(describe(live), flush=True)
        while not stop.wait(0.5):
            if live.driver.error is not None or not live.driver.running:
                print("tagjoin sim serve: the simulation stopped unexpectedly", flush=True)
                return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        live.stop()
    print("tagjoin sim serve: stopped", flush=True)
    return 0
