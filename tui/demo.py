"""The embedded demo cluster behind `tagjoin console --demo`.

The console needs only three endpoints from it; the simulator provides the cluster itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tagjoin.sim.live.live_cluster import LiveSim


@dataclass(frozen=True)
class DemoEndpoints:
    consul_address: str  # any agent's HTTP API, e.g. http://127.0.0.1:18500
    ec2_endpoint: str  # the moto EC2 endpoint, e.g. http://127.0.0.1:15000
    control_url: str  # the control API (tagjoin.tui.demo_control), e.g. http://127.0.0.1:18400
    region: str = "us-east-1"
    cluster: str | None = None
    tag_key: str | None = None
    stop: Callable[[], None] = field(default=lambda: None)


def start_embedded(servers: int, clients: int) -> DemoEndpoints:
    """Start a simulated cluster on 127.0.0.1, paced to the wall clock, and say where it listens.

    raft_multiplier 1 (Consul's production recommendation) so a failover takes a second or two.
    """
    from tagjoin.sim.live.live_cluster import start_live

    return endpoints_of(start_live(servers=servers, clients=clients, raft_multiplier=1))


def endpoints_of(live: LiveSim, *, consul_address: str | None = None) -> DemoEndpoints:
    """Where a running simulated cluster listens; `consul_address` picks another agent than the default."""
    env = live.environment()
    return DemoEndpoints(
        consul_address=consul_address or live.consul_address,
        ec2_endpoint=live.ec2_endpoint,
        control_url=live.control_url,
        region=live.region,
        cluster=env["TAGJOIN_CLUSTER"],
        tag_key=env["TAGJOIN_TAG_KEY"],
        stop=live.stop,
    )
