"""A live simulated cluster in real time over real HTTP on 127.0.0.1.

The same scenario machinery as `sim run` (servers running core's keeper, moto for EC2), paced
to the wall clock: one Consul HTTP API per agent, a moto EC2 endpoint sharing the in-process
state, and a small control API for faults. Used by `tagjoin sim serve`, the console's `--demo`
and tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tagjoin.core.errors import ConfigError
from tagjoin.sim.aws.ec2_account import DUMMY_KEY, Ec2World
from tagjoin.sim.aws.moto_endpoint import MotoServer
from tagjoin.sim.harness.scenario import CLUSTER, TAG_KEY, Scenario, ScenarioConfig, build
from tagjoin.sim.live.agent_servers import ClusterHttp, serve_cluster
from tagjoin.sim.live.control_api import ControlServer
from tagjoin.sim.live.paced_driver import PacedDriver

# Virtual time never ends on its own for a live cluster; the operator stops it.
FOREVER_MS = 10 * 365 * 24 * 3600 * 1000


@dataclass
class LiveSim:
    scenario: Scenario
    driver: PacedDriver
    http: ClusterHttp
    moto: MotoServer
    control: ControlServer
    _stopped: bool = field(default=False)

    @property
    def agent_urls(self) -> dict[str, str]:
        return self.http.urls

    @property
    def consul_address(self) -> str:
        first_server = self.scenario.cluster.servers()[0]
        return self.http.urls[first_server]

    @property
    def ec2_endpoint(self) -> str:
        return self.moto.url

    @property
    def control_url(self) -> str:
        return self.control.url

    @property
    def region(self) -> str:
        return self.scenario.world.region

    def environment(self) -> dict[str, str]:
        """What to export so tagjoin, the aws CLI and consul clients talk to this cluster."""
        return {
            "CONSUL_HTTP_ADDR": self.consul_address,
            "AWS_ENDPOINT_URL": self.ec2_endpoint,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": DUMMY_KEY,
            "AWS_SECRET_ACCESS_KEY": DUMMY_KEY,
            "TAGJOIN_CLUSTER": CLUSTER,
            "TAGJOIN_TAG_KEY": TAG_KEY,
        }

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.control.stop()
        self.http.close()
        self.moto.stop()
        try:
            self.driver.stop()
        finally:
            self.scenario.world.close()


class PortTaken(ConfigError):
    """`port_base` asked for ports another process holds."""


def start_live(
    *,
    servers: int = 3,
    clients: int = 3,
    raft_multiplier: int = 1,
    seed: int = 0,
    speed: float = 1.0,
    handlers: bool = True,
    port_base: int | None = None,
) -> LiveSim:
    """`handlers=False`: the servers run no keeper, so only outside callers move the tag.

    `port_base` N fixes every port: the control API on N, moto's EC2 on N+1, the agents from N+2
    in name order. A cluster restarted with the same N and seed is reachable where it was.
    """
    base = port_base or 0
    world = Ec2World(seed, CLUSTER)
    http: ClusterHttp | None = None
    try:
        config = ScenarioConfig(
            seed=seed,
            strategy="fenced",
            servers=servers,
            clients=clients,
            raft_multiplier=raft_multiplier,
            duration_ms=FOREVER_MS,
            joiners=0,
            inject_faults=False,
            handlers=handlers,
            # The reference paths (paced to the wall clock, speed is no concern): the keepers' EC2 calls
            # go through botocore like the served endpoint's, their Consul calls through httpx's client.
            ec2="boto3",
            consul_http="httpx",
            # The sweeps' adversarial EC2 (decoys of other clusters, one-item pages) is for finding
            # bugs; the cluster an operator looks at is one plain cluster with EC2's own paging.
            decoys=0,
            ec2_page_size=None,
        )
        scenario = build(config, world)
        driver = PacedDriver(scenario.cluster.engine, speed=speed)
        http = serve_cluster(scenario.cluster, driver, api=scenario.api, first_port=base + 2 if base else 0)
        if base:
            wanted = {name: base + 2 + i for i, name in enumerate(sorted(scenario.cluster.nodes))}
            taken = [f"{p} ({n})" for n, p in wanted.items() if http.servers[n].port != p]
            if taken:
                raise PortTaken(f"ports in use: {', '.join(taken)}; pick another --port-base")
        moto = MotoServer(port=base + 1 if base else 0, faults=scenario.faults)
        control = ControlServer(scenario, driver, http, port=base)
        moto.start()
        control.start()
        driver.start()
    except BaseException as exc:
        if http is not None:
            http.close()
        world.close()
        if base and isinstance(exc, OSError):
            raise PortTaken(f"{exc.strerror or exc}: port {base} or {base + 1}; pick another --port-base") from None
        raise
    return LiveSim(scenario, driver, http, moto, control)
