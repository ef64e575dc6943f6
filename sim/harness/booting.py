"""Booting nodes run the deploy kit's boot logic: `tagjoin boot-plan`, then `consul agent` with its flags.

A node boots the way the kit's `boot-join.sh` (core/deploy_kit.py `boot_snippet`) boots it:

1. `tagjoin boot-plan` decides through `tagjoin.core.boot.plan_boot`, its lookups made through the
   scenario's EC2 API (the handlers' fault plane: throttling, 5xx and latency apply). Its backoff
   sleeps delay the agent's start by as much virtual time. A failed command (ConfigError) makes
   the script start Consul with bootstrap_expect alone, and so does the simulator.
2. `consul agent -retry-join=<plan's addresses> [-server -bootstrap-expect=N]` starts, with the
   kit's `retry-join.hcl` (cloud auto-join over the cluster tag) in its config dir.
3. The agent's retry_join runs until one join succeeds (see `_retry_join`).

The simulator decides nothing of its own: no select_targets, no "tag or else" logic here. A
policy other than plan_boot is only ever given by a test that proves the simulator catches it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from tagjoin.core.aws.ec2_api import Ec2Api
from tagjoin.core.aws.tag_store import TagStore
from tagjoin.core.boot import BootMode, BootPlan, Lookup, plan_boot
from tagjoin.core.errors import TagjoinError
from tagjoin.core.model import Instance, MemberStatus
from tagjoin.sim.aws.ec2_lag import reader_api
from tagjoin.sim.harness.recording import FaultSpan, Joiner, Recording
from tagjoin.sim.kernel.engine import SimClock

if TYPE_CHECKING:
    from tagjoin.sim.consul.cluster import Cluster
    from tagjoin.sim.harness.tag_runners import HandlerFleet

# agent/config/default.go: retry_interval = "30s", retry_max = 0 (retry forever); the kit's
# retry-join.hcl sets neither.
RETRY_INTERVAL_MS = 30_000
COLD_START_WINDOW_MS = 20_000  # cold-start: every instance of the new cluster boots within this
RESTART_ALL_SPREAD_MS = 5_000  # restart-all: the servers come back this far apart at most


class BootPolicy(Protocol):
    """What `tagjoin boot-plan` runs: `plan_boot`'s signature; None means "Consul is not started"."""

    def __call__(
        self,
        leader_holders: Lookup,
        cluster_members: Lookup | None,
        *,
        tag_key: str,
        own_addresses: Iterable[str] = (),
        addr_type: str = "private_v4",
        server: bool = False,
        bootstrap_expect: int | None = None,
    ) -> BootPlan | None: ...


class BootConfig(Protocol):
    """The parts of a scenario's config that booting reads."""

    @property
    def servers(self) -> int: ...
    @property
    def handlers(self) -> bool: ...
    @property
    def strategy(self) -> str: ...
    @property
    def boot_policy(self) -> BootPolicy | None: ...
    @property
    def join_deadline_ms(self) -> int: ...
    @property
    def join_retry_ms(self) -> int: ...
    @property
    def auto_join(self) -> str: ...


class Scenario(Protocol):
    """What booting needs of a scenario (tagjoin.sim.harness.scenario.Scenario, which imports this)."""

    @property
    def config(self) -> BootConfig: ...
    @property
    def cluster(self) -> Cluster: ...
    @property
    def fleet(self) -> HandlerFleet: ...
    @property
    def rec(self) -> Recording: ...
    @property
    def boot_ec2(self) -> Ec2Api | None: ...

    healed_at: int
    log_lines: list[str]


def bootstrap_expect(servers: int) -> int:
    return min(servers, 3)


def boot(s: Scenario, node: str, ip: str, *, server: bool, start: Callable[[], None], record: bool = False) -> None:
    """boot-join.sh on `node` at `ip`: plan, then `start` the agent (after the plan's own delay) and join."""
    engine = s.cluster.engine
    arrive = engine.now
    clock = SimClock(engine)
    store = _store(s, node, clock)
    plan = _plan(s, store, ip, server=server)
    if plan is None:
        _log(s, node, "boot-plan: no leader tag; boot-join.sh exits and Consul never starts")
        if record:
            s.rec.joiners.append(Joiner(arrive, None, None))
        return
    _log(s, node, f"boot-plan: {plan.mode.value} {' '.join(plan.agent_args())}".rstrip())

    joined: list[str] = []

    def go() -> None:
        start()
        n = s.cluster.node(node)
        if n is None or not n.up:
            return
        _retry_join(s, node, plan, store, clock, n.epoch, joined.extend)
        if record:
            _watch_membership(s, node, arrive, joined)

    delay = clock.take_debt()
    if delay:
        engine.schedule(delay, go, "boot.start", node)
    else:
        go()


def join_started(s: Scenario, node: str, *, record: bool = False) -> None:
    """boot-join.sh for an agent its caller has started already (the same instant): plan, then join."""
    n = s.cluster.node(node)
    if n is None or not n.up:
        return
    boot(s, node, n.ip, server=node in s.cluster.raft, start=lambda: None, record=record)


def restart(s: Scenario, node: str, ip: str | None = None) -> None:
    """A server or client agent that was down boots again (same Raft data), through boot-join.sh."""
    n = s.cluster.node(node)
    if n is None or n.up:
        return
    boot(s, node, ip or n.ip, server=node in s.cluster.raft, start=lambda: _restart_agent(s, node, ip))


def _restart_agent(s: Scenario, node: str, ip: str | None) -> None:
    n = s.cluster.node(node)
    if n is not None and not n.up:
        s.cluster.restart(node, ip=ip)


def _store(s: Scenario, node: str, clock: SimClock) -> TagStore:
    """A TagStore on the handlers' EC2 API, as `tagjoin boot-plan` builds one on `node`."""
    cfg = s.fleet.config
    rng = s.cluster.engine.streams.get("boot.backoff", node)
    # The node reads EC2 as itself: with EC2's lag on, what it has seen so far (sim/aws/ec2_lag.py).
    ec2 = reader_api(s.boot_ec2 or s.fleet.ec2, node)
    return TagStore(ec2, cfg.scope, clock=clock, rng=rng, max_attempts=cfg.max_attempts)


def _plan(s: Scenario, store: TagStore, ip: str, *, server: bool) -> BootPlan | None:
    """`tagjoin boot-plan --fallback-tag <cluster tag>` (core/cli.py cmd_boot_plan), same lookups."""
    scope = store.scope
    policy: BootPolicy = s.config.boot_policy or plan_boot
    expect = bootstrap_expect(s.config.servers) if server else None

    def holders() -> list[Instance]:
        return store.tagged_instances_by_tag_index(key=scope.tag_key)

    def members() -> list[Instance]:
        return store.tagged_instances(key=scope.cluster_tag_key, value=scope.cluster)

    try:
        return policy(
            holders,
            members if scope.cluster is not None else None,
            tag_key=scope.tag_key,
            own_addresses={ip},
            addr_type="private_v4",
            server=server,
            bootstrap_expect=expect,
        )
    except TagjoinError as exc:
        # boot-join.sh: "tagjoin boot-plan failed; starting Consul on its own retry_join".
        return BootPlan(BootMode.FORM, (), server, expect, (f"boot-plan failed: {exc}",))


# What the kit's retry-join.hcl auto-joins (core.deploy_kit.retry_join_line): "cluster", every
# instance of the cluster (the kit's default); "servers", the instances carrying SERVER_TAG_KEY
# (`deploy-kit --auto-join-tag consul-server=<cluster>`), as a fleet of hundreds of clients runs it.
AUTO_JOINS = ("cluster", "servers")
SERVER_TAG_KEY = "consul-server"


def _auto_join(s: Scenario, store: TagStore) -> list[str]:
    """The kit's retry-join.hcl entry `provider=aws tag_key=<key> tag_value=<value>`, over the
    cluster tag or, with `auto_join="servers"`, the servers' tag: go-discover's aws provider
    (provider/aws/aws_discover.go Addrs) lists the running instances carrying the tag, this node's
    own included, and returns their private IPs. A failed call yields no address for this attempt
    (agent/retry_join.go logs it and goes on)."""
    scope = store.scope
    if scope.cluster is None:
        return []
    key = SERVER_TAG_KEY if s.config.auto_join == "servers" else scope.cluster_tag_key
    value = scope.cluster
    try:
        found = store.tagged_instances(key=key, value=value)
    except TagjoinError:
        return []
    return [i.private_ip for i in found if i.private_ip]


def _retry_join(
    s: Scenario,
    node: str,
    plan: BootPlan,
    store: TagStore,
    clock: SimClock,
    epoch: int,
    on_joined: Callable[[list[str]], None],
) -> None:
    """The agent's retry_join, after agent/retry_join.go `retryJoiner.retryJoin`: every attempt
    resolves all entries afresh (the plan's `-retry-join` flags and the config dir's cloud
    auto-join), joins them all at once (memberlist.Join counts successes and fails only when none
    succeeded), stops at the first attempt that joined anyone, and otherwise waits retry_interval.
    Joining its own address counts as a success (hashicorp/memberlist memberlist.go Join), so a
    node that finds only itself stops there and waits to be joined by the next one to boot."""
    engine = s.cluster.engine

    def attempt() -> None:
        n = s.cluster.node(node)
        if n is None or not n.up or n.epoch != epoch:
            return  # the agent stopped; a new boot runs its own retry_join
        addrs = list(dict.fromkeys([*plan.join, *_auto_join(s, store)]))
        joined: list[str] = []
        if n.responsive:
            joined = [addr for addr in addrs if s.cluster.joined(node, addr)]
        if joined:
            _log(s, node, f"retry_join: joined {', '.join(joined)}")
            on_joined(joined)
            return
        engine.schedule(RETRY_INTERVAL_MS + clock.take_debt(), attempt, "boot.retry-join", node)

    attempt()


def _watch_membership(s: Scenario, node: str, arrive: int, joined: list[str]) -> None:
    """Record a joiner: when the leader first lists it alive, within the join deadline. Observation
    only; what the node does is its retry_join's business."""
    engine = s.cluster.engine
    cfg = s.config
    own_ip = s.cluster.nodes[node].ip

    def check() -> None:
        if member_of_leader(s, node):
            # The address it reached the cluster through: the first other agent its join reached.
            via = next((a for a in joined if a != own_ip), own_ip)
            s.rec.joiners.append(Joiner(arrive, engine.now, via))
            return
        if engine.now - arrive + cfg.join_retry_ms > cfg.join_deadline_ms:
            s.rec.joiners.append(Joiner(arrive, None, None))
            return
        engine.schedule(cfg.join_retry_ms, check, "joiner.check", node)

    check()


def member_of_leader(s: Scenario, node: str) -> bool:
    leader = s.cluster.leader()
    return leader is not None and s.cluster.member_status(leader, node) == MemberStatus.ALIVE


def _log(s: Scenario, node: str, text: str) -> None:
    s.log_lines.append(f"{s.cluster.engine.now:>7} {node}: {text}")


# scenarios -----------------------------------------------------------------------------------------


def boot_initial(
    s: Scenario,
    nodes: list[tuple[str, str, bool]],
    *,
    cold: bool,
    launch: Callable[[str, str, bool], None],
    start_tag_process: Callable[[str], None],
) -> None:
    """The scenario's first servers and clients, `(name, ip, server)` in start order.

    Normal runs: every instance is running at t=0 and each node boots at t=0 in that order, so each
    one's plan names the others (join-member) and the cluster forms at once. Cold start: a brand-new
    cluster, no tag anywhere; each instance launches and boots at its own seeded time within
    COLD_START_WINDOW_MS, so early nodes find nothing to join and must start anyway (form).
    `launch` and `start_tag_process` come from the scenario, which imports this module."""

    engine = s.cluster.engine

    def start(name: str, ip: str, server: bool, tag_process: bool) -> Callable[[], None]:
        def go() -> None:
            if server:
                s.cluster.add_server(name, ip, bootstrap_expect=bootstrap_expect(s.config.servers))
            else:
                s.cluster.add_client(name, ip)
            if server or s.config.strategy == "naive":
                s.fleet.add(name)  # the naive scheme puts a `nodes` watch on every node, clients too
                if tag_process and s.config.handlers:
                    start_tag_process(name)

        return go

    if not cold:
        for name, ip, server in nodes:
            launch(name, ip, server)
        for name, ip, server in nodes:
            boot(s, name, ip, server=server, start=start(name, ip, server, tag_process=False))
        if s.config.handlers:
            for name in sorted(s.fleet.handlers):
                start_tag_process(name)
        return
    rng = engine.streams.get("scenario.cold-start")
    times = sorted(rng.randint(0, COLD_START_WINDOW_MS) for _ in nodes)
    order = list(nodes)
    rng.shuffle(order)
    for at, (name, ip, server) in zip(times, order, strict=True):

        def launch_and_boot(name: str = name, ip: str = ip, server: bool = server) -> None:
            launch(name, ip, server)
            boot(s, name, ip, server=server, start=start(name, ip, server, tag_process=True))

        engine.schedule_at(at, launch_and_boot, "boot.cold-start")
    last = times[-1] if times else 0
    s.healed_at = max(s.healed_at, last)
    s.rec.faults.append(FaultSpan(0, last, "cold-start", "all"))
    s.rec.schedule.append(f"t=0ms cold-start all for {last}ms")


def restart_all(s: Scenario, servers: list[str], down_ms: int) -> int:
    """Every server's agent is killed at once and boots again after `down_ms`, in a seeded order a
    few seconds apart, each through boot-join.sh with its Raft data. Returns when the last is back."""
    engine = s.cluster.engine
    rng = engine.streams.get("scenario.restart-all")
    for node in servers:
        s.cluster.crash(node)
    last = 0
    for node in servers:
        delay = down_ms + rng.randint(0, RESTART_ALL_SPREAD_MS)
        last = max(last, delay)
        engine.schedule(delay, lambda node=node: restart(s, node), "fault.restart-all.boot")  # type: ignore[misc]
    return engine.now + last
