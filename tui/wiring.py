"""Build a ConsoleApp from settings: the real adapters for a cluster, or the demo's endpoints."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from tagjoin.core.aws.boto_ec2 import BotoEc2, make_ec2_client
from tagjoin.core.aws.tag_store import TagStore
from tagjoin.core.clock import SystemClock, system_random
from tagjoin.core.consul.client import ConsulClient
from tagjoin.core.consul.settings import ConsulSettings
from tagjoin.core.handoff import Report, run_pass
from tagjoin.core.settings import AwsSettings, Scope
from tagjoin.tui.actions import ActionService
from tagjoin.tui.agents import DEFAULT_AGENT_TEMPLATE, DemoAgents, MapAgents, TemplateAgents
from tagjoin.tui.app import ConsoleApp
from tagjoin.tui.demo import DemoEndpoints
from tagjoin.tui.demo_control import DemoControl
from tagjoin.tui.ports import AgentResolver
from tagjoin.tui.rejoin import RejoinCommand
from tagjoin.tui.source import ClusterSource

# The poll's reads give up on one agent after this long (seconds) and read through another; an
# action keeps the configured timeout, since it must not give up half-way.
POLL_TIMEOUT = 3.0


@dataclass(frozen=True)
class ConsoleOptions:
    interval: float = 2.0
    read_only: bool = False
    agent_template: str = DEFAULT_AGENT_TEMPLATE
    agent_map: str | None = None  # a JSON file of agent URLs per node (`tagjoin sim serve --agent-map`)
    rejoin_command: str | None = None
    export_dir: Path | None = None


@dataclass
class Console:
    """The app plus what must be closed after it exits."""

    app: ConsoleApp
    closers: list[Callable[[], None]] = field(default_factory=list)

    def run(self) -> None:
        settle_heap()
        try:
            self.app.run()
        finally:
            for close in reversed(self.closers):
                close()


def settle_heap() -> None:
    """Exclude everything built so far from the cyclic GC's full passes.

    Modules, the EC2 service model and, in the demo, the simulated cluster live as long as the
    process; a full collection scanned them all again on the UI thread, 100-300 ms each time, a
    few times during the first fill of 5,000-row tables. Objects freed by reference counting
    still go at once.
    """
    gc.collect()
    gc.freeze()


def build_console(
    consul_settings: ConsulSettings,
    aws: AwsSettings,
    scope: Scope,
    options: ConsoleOptions,
    *,
    control_url: str | None = None,
) -> Console:
    """`control_url` set enables the simulator's faults: its control API restarts nodes and lists agents."""
    consul = ConsulClient(consul_settings)
    poll_consul = ConsulClient(replace(consul_settings, timeout=min(consul_settings.timeout, POLL_TIMEOUT)))
    closers: list[Callable[[], None]] = [consul.close, poll_consul.close]
    # boto3 here: its clients are made for the console's several worker threads, start-up time
    # does not matter, and it serves every credential setup.
    store = TagStore(
        BotoEc2(make_ec2_client(aws)), scope, clock=SystemClock(), rng=system_random(), max_attempts=aws.max_attempts
    )
    demo: DemoControl | None = None
    agents: AgentResolver
    if control_url is not None:
        demo = DemoControl(control_url)
        closers.append(demo.close)
    if options.agent_map is not None:
        agents = MapAgents(options.agent_map)
    elif demo is not None:
        agents = DemoAgents(demo)
    else:
        agents = TemplateAgents(options.agent_template)
    rejoin = RejoinCommand(options.rejoin_command) if options.rejoin_command else None

    def reconcile(agent_url: str) -> Report:
        with consul.with_address(agent_url) as leader_agent:
            return run_pass(leader_agent, store, SystemClock(), instance_id=aws.instance_id)

    where = f"ec2 {aws.endpoint_url or aws.region}"
    if scope.cluster:
        where += f" cluster={scope.cluster}"
    label = f"consul {consul.address}  {where}"
    source = ClusterSource(poll_consul, store, agents, tag_key=scope.tag_key, label=label)
    closers.append(source.close)
    actions = ActionService(consul, agents, read_only=options.read_only, rejoin=rejoin, demo=demo, reconcile=reconcile)
    app = ConsoleApp(source, actions, interval=options.interval, export_dir=options.export_dir)
    return Console(app, closers)


def demo_settings(endpoints: DemoEndpoints) -> tuple[ConsulSettings, AwsSettings, Scope]:
    """Settings for the embedded cluster; the operator's own CONSUL_* and AWS_* do not apply to it."""
    from tagjoin.core.consul.settings import consul_settings_from_env
    from tagjoin.core.settings import scope_from_env

    # moto accepts any credentials, but botocore refuses to sign without some.
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(key, "demo")
    consul = consul_settings_from_env({}, http_addr=endpoints.consul_address)
    aws = AwsSettings(region=endpoints.region, endpoint_url=endpoints.ec2_endpoint)
    scope = scope_from_env({}, tag_key=endpoints.tag_key, cluster=endpoints.cluster)
    return consul, aws, scope
