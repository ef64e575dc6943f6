"""`tagjoin sim serve`: run a live simulated cluster until interrupted, and say how to reach it."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import tempfile
import threading
from pathlib import Path

from tagjoin.sim.live.live_cluster import LiveSim, start_live


def write_agent_map(path: Path, urls: dict[str, str]) -> None:
    """`{"agents": {node: url}}` for `tagjoin console --agent-map`; replaced whole, never half-written."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as out:
        json.dump({"agents": urls}, out, indent=2, sort_keys=True)
        out.write("\n")
    os.replace(tmp, path)


def describe(live: LiveSim, agent_map: Path | None = None) -> str:
    lines = ["# consul-tagjoin simulated cluster — paste into a shell to use it:"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in live.environment().items()]
    lines.append("")
    lines.append("# agents (each answers the Consul HTTP API from its own local view):")
    cluster = live.scenario.cluster
    for name, url in live.agent_urls.items():
        node = cluster.nodes[name]
        lines.append(f"#   {name:<16} {node.ip:<12} {'server' if node.server else 'client':<7} {url}")
    lines.append(f"# control API: {live.control_url}/control/nodes  (crash, restart, partition, heal, pause, throttle)")
    if agent_map is not None:
        lines.append(f"# agent map: {agent_map}")
        console = f"tagjoin console --agent-map {shlex.quote(str(agent_map))} --control-url {live.control_url}"
        lines.append(f"# the console, with the exports above: {console}")
    lines.append("# Ctrl-C stops the cluster.")
    return "\n".join(lines)


def serve_forever(
    *,
    servers: int,
    clients: int,
    raft_multiplier: int,
    seed: int,
    speed: float,
    port_base: int | None = None,
    agent_map: Path | None = None,
) -> int:
    """`agent_map`: where to keep the agent URLs (default: a file in the temp dir, removed on exit)."""
    live = start_live(
        servers=servers, clients=clients, raft_multiplier=raft_multiplier, seed=seed, speed=speed, port_base=port_base
    )
    own_map = agent_map is None
    map_path = agent_map or Path(tempfile.gettempdir()) / f"tagjoin-sim-{os.getpid()}-agents.json"
    urls = live.agent_urls
    write_agent_map(map_path, urls)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        _say(describe(live, map_path))
        while not stop.wait(0.5):
            if live.driver.error is not None or not live.driver.running:
                _say("tagjoin sim serve: the simulation stopped unexpectedly")
                return 1
            if live.agent_urls != urls:  # a node was added, or a restart found its port taken
                urls = live.agent_urls
                write_agent_map(map_path, urls)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        live.stop()
        if own_map:
            map_path.unlink(missing_ok=True)
    _say("tagjoin sim serve: stopped")
    return 0


def _say(text: str) -> None:
    """Print, and keep serving when stdout has gone (`tagjoin sim serve | head`, a closed terminal)."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Nowhere to write from now on; the interpreter's own flush at exit goes nowhere too
        # (the recipe of the `signal` module's documentation).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
