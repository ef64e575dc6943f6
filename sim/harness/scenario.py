"""One failover scenario: a seeded cluster on moto, one fault, handlers, joiners, invariants.

    rec = run_scenario(ScenarioConfig(seed=7, strategy="fenced", faults=("crash",)))

Everything random comes from the engine's named streams and moto's seeded generator, so the
same config gives the same recording, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tagjoin.core.discover import select_targets
from tagjoin.core.errors import TagjoinError
from tagjoin.core.model import MemberStatus
from tagjoin.core.settings import Scope
from tagjoin.sim.aws.ec2_account import Ec2World
from tagjoin.sim.aws.ec2_faults import Ec2Call, Ec2Faults, TokenBucket
from tagjoin.sim.consul.cluster import Cluster, ClusterConfig, node_name_for
from tagjoin.sim.consul.cluster_events import (
    LeaderElected,
    LeadershipLost,
    NodeCrashed,
    NodeRestarted,
    NodeShutdown,
)
from tagjoin.sim.consul.http_api import AgentApi
from tagjoin.sim.consul.serf import JoinFailed
from tagjoin.sim.consul.server_duties import ConsulTimings
from tagjoin.sim.harness.invariants.observations import NewLeader, Observation, RunEnd, TagWrite
from tagjoin.sim.harness.invariants.suite import InvariantSuite
from tagjoin.sim.harness.recording import FaultSpan, Joiner, LeaderSpan, Recording, TagSample, Write
from tagjoin.sim.harness.tag_runners import HandlerConfig, HandlerFleet

FAULT_KINDS = (
    "leave",
    "crash",
    "partition",
    "pause",
    "throttle",
    "ec2-5xx",
    "handler-crash",
    "terminate",
    "replace",
    "restart",
)
# fenced: `tagjoin keep` on every server; watch: `consul watch -type=checks` running `tagjoin
# watch-handler` on every server; naive: the scheme as first described, a `nodes` watch on every
# node running a handler that moves a `true` tag, unfenced.
STRATEGIES = ("fenced", "watch", "naive")
TAG_KEY = "consul-leader"
CLUSTER = "sim"


@dataclass(frozen=True)
class ScenarioConfig:
    seed: int
    strategy: str = "fenced"
    servers: int = 3
    clients: int = 2
    raft_multiplier: int = 5
    duration_ms: int = 90_000
    faults: tuple[str, ...] = FAULT_KINDS  # one of these per seed
    fault_window_ms: tuple[int, int] = (15_000, 25_000)
    joiners: int = 3
    join_deadline_ms: int = 30_000
    join_retry_ms: int = 5_000
    settle_ms: int = 30_000  # L1/L2: converged this long after the last fault healed
    inject_faults: bool = True  # off for a live cluster, whose faults come from its operator
    # Off: no simulated node moves the tag (no keepers, watches trigger nothing), so a handler run
    # from outside (a benchmark driving `tagjoin watch-handler` against `sim serve`) is the only writer.
    handlers: bool = True
    cleanup_dead_servers: bool = True  # autopilot's default; it force-leaves a crashed server
    keep_health_consistency: str | None = "stale"  # KeepConfig.health_consistency of every keeper


@dataclass
class _Fault:
    kind: str
    at: int
    duration: int
    target: str = ""


@dataclass
class Scenario:
    config: ScenarioConfig
    world: Ec2World
    cluster: Cluster
    api: AgentApi
    fleet: HandlerFleet
    faults: Ec2Faults
    rec: Recording
    invariants: InvariantSuite
    log_lines: list[str] = field(default_factory=list)
    node_instance: dict[str, str] = field(default_factory=dict)
    known_instances: set[str] = field(default_factory=set)
    _top: LeaderSpan | None = None
    _last_tags: dict[str, str] | None = None
    _newest_term: int = 0
    healed_at: int = 0  # when the last fault was over (a permanent one counts from its start)


def run_scenario(config: ScenarioConfig, *, keep_log: bool = False) -> Recording:
    with Ec2World(config.seed, CLUSTER) as world:
        scenario = build(config, world)
        scenario.cluster.engine.run_until(config.duration_ms)
        finish(scenario)
        if keep_log:
            scenario.rec.schedule.extend(scenario.log_lines)
        return scenario.rec


def build(config: ScenarioConfig, world: Ec2World) -> Scenario:
    if config.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {config.strategy!r}; use one of {', '.join(STRATEGIES)}")
    timings = ConsulTimings(cleanup_dead_servers=config.cleanup_dead_servers)
    cluster = Cluster(config.seed, ClusterConfig(raft_multiplier=config.raft_multiplier, consul=timings))
    engine = cluster.engine
    api = AgentApi(cluster)
    faults = Ec2Faults(clock=lambda: engine.now / 1000.0)
    client = faults.attach(world.client(), "handlers")
    scope = Scope(tag_key=TAG_KEY, cluster=CLUSTER)
    rec = Recording(config.seed, config.strategy, config.duration_ms)
    holder: list[Scenario] = []

    def log(node: str, text: str) -> None:
        if holder:
            holder[0].log_lines.append(f"{engine.now:>7} {node}: {text}")

    fleet = HandlerFleet(
        cluster,
        api,
        client,
        HandlerConfig(config.strategy, scope, health_consistency=config.keep_health_consistency),
        on_step=lambda _node: _sample_tags(holder[0]),
        log=log,
    )
    s = Scenario(config, world, cluster, api, fleet, faults, rec, InvariantSuite.standard(config.settle_ms))
    holder.append(s)
    faults.add_observer(lambda call: _observe_write(s, call))
    _populate(s)
    _subscribe(s)
    if config.inject_faults:
        _schedule_fault(s)
    _schedule_joiners(s)
    return s


def _populate(s: Scenario) -> None:
    cfg, cluster = s.config, s.cluster
    for i in range(cfg.servers):
        ip = f"10.0.{i % 14 + 1}.{10 + i // 14}"
        name = node_name_for(ip)
        _launch(s, name, ip)
        cluster.add_server(name, ip, bootstrap_expect=min(cfg.servers, 3) if cfg.servers >= 3 else cfg.servers)
        s.fleet.add(name)
    for k in range(cfg.clients):
        ip = f"10.0.{k % 14 + 1}.{100 + k // 14}"
        name = node_name_for(ip)
        _launch(s, name, ip)
        cluster.add_client(name, ip)
        if cfg.strategy == "naive":
            s.fleet.add(name)  # the naive scheme puts a `nodes` watch on every node, clients too
    first = cluster.servers()[0]
    first_ip = cluster.nodes[first].ip
    for name in sorted(cluster.nodes):
        if name != first:
            cluster.join(name, first_ip)
    if cfg.handlers:
        for name in sorted(s.fleet.handlers):
            _start_tag_process(s, name)


def _launch(s: Scenario, name: str, ip: str) -> None:
    iid = s.world.launch(name, ip)
    s.node_instance[name] = iid
    s.known_instances.add(iid)


def _start_tag_process(s: Scenario, node: str) -> None:
    """What the strategy runs on `node` starts with the agent: `tagjoin keep`, at a random phase of
    its poll interval, or `consul watch` with its handler."""
    if s.config.strategy == "fenced":
        interval = s.fleet.config.keep_interval_ms
        s.fleet.start_keeper(node, after_ms=s.cluster.engine.streams.get("keeper.phase", node).randint(0, interval))
    else:
        s.fleet.start_watch(node)


def _subscribe(s: Scenario) -> None:
    cluster, fleet = s.cluster, s.fleet

    def elected(ev: LeaderElected) -> None:
        s._newest_term = max(s._newest_term, ev.term)
        if s._top is not None and ev.term <= s._top.term:
            return
        _close_top(s, ev.t)
        if s.rec.leaders:
            s.rec.failovers += 1
        s._top = LeaderSpan(ev.t, None, ev.node_name, ev.term)
        _observe(s, NewLeader(ev.t, ev.node_name, ev.term, frozenset(li.group for li in cluster.leaders())))

    def lost(ev: LeadershipLost) -> None:
        if s._top is not None and s._top.node == ev.node_name and s._top.term == ev.term:
            _close_top(s, ev.t)

    def down(ev: NodeCrashed | NodeShutdown) -> None:
        fleet.stop(ev.node_name)
        if s._top is not None and s._top.node == ev.node_name:
            _close_top(s, ev.t)

    def restarted(ev: NodeRestarted) -> None:
        if ev.node_name in fleet.handlers and s.config.handlers:
            _start_tag_process(s, ev.node_name)

    cluster.subscribe(LeaderElected, elected)
    cluster.subscribe(LeadershipLost, lost)
    cluster.subscribe(NodeCrashed, down)
    cluster.subscribe(NodeShutdown, down)
    cluster.subscribe(NodeRestarted, restarted)


def _close_top(s: Scenario, t: int) -> None:
    if s._top is not None:
        s.rec.leaders.append(LeaderSpan(s._top.start, t, s._top.node, s._top.term))
        s._top = None


# tags and invariants ---------------------------------------------------------------------------


def _observe(s: Scenario, event: Observation) -> None:
    s.rec.violations.extend(s.invariants.observe(event))


def _sample_tags(s: Scenario) -> None:
    values = s.world.tag_values(TAG_KEY)
    holders = {s.world.node_of(iid): v for iid, v in sorted(values.items())}
    if holders != s._last_tags:
        s._last_tags = holders
        s.rec.tags.append(TagSample(s.cluster.engine.now, holders))


def _observe_write(s: Scenario, call: Ec2Call) -> None:
    if call.action not in ("CreateTags", "DeleteTags") or call.fault is not None:
        return
    now = s.cluster.engine.now
    writer = s.fleet.current or "?"
    top = s._top
    leader_iid = s.node_instance.get(top.node) if top is not None else None
    values = s.world.tag_values(TAG_KEY)  # running instances of the cluster, before this write
    live = frozenset(i for i in values if _live_server(s, i))
    for iid in call.resource_ids:
        known = iid in s.known_instances
        target_node = s.world.node_of(iid) if known else "?"
        running = known and s.world.state_of(iid) == "running"
        in_scope = known and s.world.in_cluster(iid)
        for key, value in call.tags:
            if key != TAG_KEY:
                continue
            current = values.get(iid)
            removes = call.action == "DeleteTags" and current is not None and value in (None, current)
            write = Write(
                now, writer, call.action, target_node, value or "", 0, s._newest_term, running, in_scope, removes
            )
            s.rec.writes.append(write)
            observed = TagWrite(
                t=now,
                writer=writer,
                action=call.action,
                instance=iid,
                target=target_node,
                value=value,
                target_running=running,
                target_in_scope=in_scope,
                removes=removes,
                tags_before=values,
                live_servers_before=live,
                leader=top,
                leader_instance=leader_iid,
            )
            _observe(s, observed)


def _live_server(s: Scenario, iid: str) -> bool:
    node = s.world.node_of(iid)
    return node in s.cluster.servers() and s.cluster.is_up(node)


# faults ----------------------------------------------------------------------------------------


def _schedule_fault(s: Scenario) -> None:
    cfg, engine = s.config, s.cluster.engine
    rng = engine.streams.get("scenario.fault")
    kind = cfg.faults[rng.randrange(len(cfg.faults))]
    at = rng.randint(*cfg.fault_window_ms)
    scale = cfg.raft_multiplier / 5
    duration = int(rng.randint(5_000, 20_000) * max(scale, 0.2))
    fault = _Fault(kind, at, duration)
    engine.schedule_at(at, lambda: _inject(s, fault, rng.randint(0, 6)), f"fault.{kind}")


def _inject(s: Scenario, f: _Fault, k: int) -> None:
    cluster, engine = s.cluster, s.cluster.engine
    leader = cluster.leader()
    servers = cluster.servers()
    f.target = leader or servers[0]
    end = engine.now + f.duration

    def span(kind: str = f.kind, until: int = end) -> None:
        s.healed_at = max(s.healed_at, engine.now if until >= s.config.duration_ms else until)
        s.rec.faults.append(FaultSpan(engine.now, until, kind, f.target))
        s.rec.schedule.append(f"t={engine.now}ms {kind} {f.target} for {until - engine.now}ms")

    def later(fn: Callable[[], None]) -> None:
        engine.schedule_at(end, fn, f"fault.{f.kind}.end")

    if f.kind == "leave":
        span()
        _safe(lambda: cluster.leave(f.target))
        later(lambda: reboot(s, f.target))
    elif f.kind == "crash":
        span(until=s.config.duration_ms)  # stays down: does the tag leave the dead leader?
        cluster.crash(f.target)
    elif f.kind == "restart":
        span()
        cluster.crash(f.target)
        later(lambda: reboot(s, f.target))
    elif f.kind == "partition":
        span()
        minority = [f.target, *[n for n in servers if n != f.target][: (len(servers) - 1) // 2 - 1]]
        cluster.partition([minority])
        later(cluster.heal)
    elif f.kind == "pause":
        # The old leader stops the world in the middle of a handler pass, after `k` API calls,
        # and later resumes it with what it saw before the pause.
        span()
        s.fleet.interrupt_next_pass(f.target, 1 + k % 3, lambda: _safe(lambda: cluster.pause(f.target, f.duration)))
    elif f.kind in ("throttle", "ec2-5xx"):
        span()
        if f.kind == "throttle":
            s.faults.throttle(TokenBucket(2, 0.5, lambda: engine.now / 1000.0))
        else:
            s.faults.arm_rate("*", 0.5, code="InternalError", rng=engine.streams.get("scenario.ec2-5xx"))
        cluster.crash(f.target)  # the failover whose handoff must get through the faults

        def recover() -> None:
            s.faults.throttle(None)
            s.faults.disarm()
            reboot(s, f.target)

        later(recover)
    elif f.kind == "handler-crash":
        span()
        for node in servers:
            if node != f.target:
                s.fleet.interrupt_next_pass(node, k)
        _safe(lambda: cluster.leave(f.target))
        later(lambda: reboot(s, f.target))
    elif f.kind == "terminate":
        span(until=s.config.duration_ms)
        cluster.crash(f.target)
        s.world.terminate(s.node_instance[f.target])
        _sample_tags(s)
    elif f.kind == "replace":
        span()
        cluster.crash(f.target)
        later(lambda: _replace(s, f.target))
    else:
        raise ValueError(f"unknown fault {f.kind!r}; known: {', '.join(FAULT_KINDS)}")


def _safe(action: Callable[[], None]) -> None:
    try:
        action()
    except Exception as exc:  # the target may already be down: the fault becomes a no-op
        if type(exc).__name__ not in ("NodeDown",):
            raise


def _replace(s: Scenario, node: str) -> None:
    new_iid, new_ip = s.world.replace(node)
    s.node_instance[node] = new_iid
    s.known_instances.add(new_iid)
    _sample_tags(s)
    s.cluster.restart(node, ip=new_ip)
    _boot_join(s, node, s.config.join_deadline_ms, record=False)


def reboot(s: Scenario, node: str) -> None:
    """The agent starts again and, like a booting node, joins what the tag points to."""
    n = s.cluster.node(node)
    if n is None or n.up:
        return
    s.cluster.restart(node)
    _boot_join(s, node, s.config.join_deadline_ms, record=False)


# joiners ---------------------------------------------------------------------------------------


def _schedule_joiners(s: Scenario) -> None:
    cfg, engine = s.config, s.cluster.engine
    rng = engine.streams.get("scenario.joiners")
    for j in range(cfg.joiners):
        at = rng.randint(5_000, max(5_001, cfg.duration_ms - cfg.join_deadline_ms))
        ip = f"10.0.{j % 14 + 1}.{200 + j // 14}"
        engine.schedule_at(at, lambda ip=ip: _new_joiner(s, ip), "joiner.boot")  # type: ignore[misc]


def _new_joiner(s: Scenario, ip: str) -> None:
    name = node_name_for(ip)
    _launch(s, name, ip)
    s.cluster.add_client(name, ip)
    if s.config.strategy == "naive":
        s.fleet.add(name)
        if s.config.handlers:
            _start_tag_process(s, name)
    _boot_join(s, name, s.config.join_deadline_ms, record=True)


def _boot_join(s: Scenario, node: str, deadline_ms: int, *, record: bool) -> None:
    """`tagjoin targets` then `consul agent -retry-join …`: retry until joined or the deadline."""
    engine = s.cluster.engine
    arrive = engine.now
    store = s.fleet.handlers[node].store if node in s.fleet.handlers else s.fleet.store_for(node)

    def attempt() -> None:
        n = s.cluster.node(node)
        if n is None or not n.up:
            return
        via = None
        try:
            tagged = store.tagged_instances()
        except TagjoinError:
            tagged = []
        targets = select_targets(tagged, tag_key=TAG_KEY, own_addresses={n.ip})
        for addr in targets.addresses:
            try:
                s.cluster.join(node, addr)
            except JoinFailed:
                continue
            via = addr
            break
        if via is not None and _member_of_leader(s, node):
            if record:
                s.rec.joiners.append(Joiner(arrive, engine.now, via))
            return
        if engine.now - arrive + s.config.join_retry_ms > deadline_ms:
            if record:
                s.rec.joiners.append(Joiner(arrive, None, None))
            return
        engine.schedule(s.config.join_retry_ms, attempt, "joiner.retry", node)

    attempt()


def _member_of_leader(s: Scenario, node: str) -> bool:
    leader = s.cluster.leader()
    return leader is not None and s.cluster.member_status(leader, node) == MemberStatus.ALIVE


# end of run --------------------------------------------------------------------------------------


def finish(s: Scenario) -> None:
    now = s.cluster.engine.now
    _close_top(s, now)
    s.rec.leaders.sort(key=lambda span: span.start)
    stats = s.faults.snapshot()
    s.rec.ec2_calls = {k: v for k, v in sorted(stats.calls.items()) if v}
    s.rec.throttled = sum(stats.faults.values())
    leader = s.cluster.leader()
    holders = tuple(sorted(s.world.node_of(i) for i in s.world.tag_values(TAG_KEY)))
    membership = {} if leader is None else _membership(s, leader)
    s.rec.violations.extend(s.invariants.finish(RunEnd(now, s.healed_at, leader, holders, membership)))


def _membership(s: Scenario, leader: str) -> dict[str, MemberStatus | None]:
    """Each agent that is up, as the leader's member list sees it."""
    return {n: s.cluster.member_status(leader, n) for n in sorted(s.cluster.nodes) if s.cluster.is_up(n)}
