"""One failover scenario: a seeded cluster on moto, one fault, handlers, joiners, invariants.

    rec = run_scenario(ScenarioConfig(seed=7, strategy="fenced", faults=("crash",)))

Everything random comes from the engine's named streams and moto's seeded generator, so the
same config gives the same recording, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tagjoin.core.aws.boto_ec2 import BotoEc2
from tagjoin.core.aws.ec2_api import Ec2Api
from tagjoin.core.model import MemberStatus
from tagjoin.core.settings import Scope
from tagjoin.sim.aws.ec2_account import Ec2World
from tagjoin.sim.aws.ec2_faults import Ec2Call, Ec2Faults, TokenBucket
from tagjoin.sim.aws.ec2_lag import Ec2Lag, parse_lag
from tagjoin.sim.aws.moto_direct import MotoDirectEc2
from tagjoin.sim.consul.cluster import Cluster, ClusterConfig, node_name_for
from tagjoin.sim.consul.cluster_events import (
    LeaderElected,
    LeadershipLost,
    NodeCrashed,
    NodeRestarted,
    NodeShutdown,
)
from tagjoin.sim.consul.data_dir import wipe_server
from tagjoin.sim.consul.http_api import AgentApi
from tagjoin.sim.consul.server_duties import ConsulTimings
from tagjoin.sim.harness import booting
from tagjoin.sim.harness.invariants.observations import Ec2Request, NewLeader, Observation, RunEnd, TagWrite
from tagjoin.sim.harness.invariants.suite import InvariantSuite
from tagjoin.sim.harness.recording import FaultSpan, LeaderSpan, Recording, TagSample, Write
from tagjoin.sim.harness.tag_runners import BEFORE_WRITE, HandlerConfig, HandlerFleet
from tagjoin.sim.kernel.collector import paced_collector

# The kinds seeds were kept as regression tests under: FAULT_KINDS only ever appends to them, so
# that those seeds (and most others: the draw is by rejection sampling over the same bits) keep
# drawing the fault and schedule they were found with.
EARLIER_FAULT_KINDS = (
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
    "rebuild",
    "one-way-partition",
    "agent-pause",
    "stop-start",
    "two-writers",
    "ip-reuse",
    "asg-replace",
    "cold-start",
    "restart-all",
)
FAULT_KINDS = (*EARLIER_FAULT_KINDS, "partial-partition", "link-loss", "keeper-stall")
# fenced: `tagjoin keep` on every server; watch: `consul watch -type=checks` running `tagjoin
# watch-handler` on every server; naive: the scheme as first described, a `nodes` watch on every
# node running a handler that moves a `true` tag, unfenced.
STRATEGIES = ("fenced", "watch", "naive")
EC2_PATHS = ("direct", "boto3")
# pre-vote: Consul >= 1.20 (hashicorp/raft v1.7.0 added the pre-vote round); no-pre-vote: Consul
# <= 1.19, where a server that campaigned alone bumped its term and deposes the leader on return.
RAFT_PROFILES = ("pre-vote", "no-pre-vote")
TAG_KEY = "consul-leader"
SEEN_BY = "booting-node"  # the EC2 reader whose view the tag metrics and L1 judge (EC2 lag on)
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
    # How the handlers reach moto: "direct" on its EC2 models (tagjoin.sim.aws.moto_direct, sweeps),
    # "boto3" through botocore and moto's HTTP layer (the reference path: sim serve, the console demo).
    ec2: str = "direct"
    # EC2's eventual consistency (tagjoin.sim.aws.ec2_lag): "strong", "default", "adversarial" or a
    # spec. `sim run` turns it on; unit tests and `sim serve` keep EC2 strongly consistent, so that
    # the seeds they pin keep their schedules.
    ec2_lag: str = "strong"
    consul_http: str = "in-process"  # or "httpx": HandlerConfig.consul_http
    raft_profile: str = "pre-vote"  # one of RAFT_PROFILES
    auto_join: str = "cluster"  # one of booting.AUTO_JOINS: what the kit's retry-join.hcl matches
    # Adversarial schedules, so that a wrong decision in core fails a sweep (benchmarks/mutants.py).
    decoys: int = 2  # instances outside the cluster scope carrying the leader tag key, with high terms
    ec2_page_size: int | None = 1  # MaxResults of the handlers' reads; None leaves EC2's (no paging here)
    # Further faults per seed while the first is on: the leader paused mid-pass (not naive). Off by
    # default, since it changes every seed's schedule; benchmarks/mutants.py sweeps with it on.
    extra_faults: int = 0
    # Leadership moved on to another server whose handoff pass is then paused part way, so that
    # a third server usually leads meanwhile and the paused pass resumes with a stale plan (not naive).
    flip_faults: int = 0
    # Every tag process stalls once mid-pass while leadership moves A → B → A → B (not naive).
    stall_flips: int = 0
    # With each flip, this many running clients carry a lower-term tag, as a pass that crashed
    # between its create and its deletes leaves them: a leader must page through every holder.
    stale_tags: int = 0
    # Every server runs both tag processes the kit can ship (`keep` and the watch handler), as
    # the `two-writers` fault does, in every seed (not naive). Off by default, since it changes
    # every seed's schedule; benchmarks/mutants.py sweeps with it on.
    second_writers: bool = False
    # What a sweep reports these runs under (Recording.strategy); the strategy when empty. A sweep
    # that runs one strategy under two raft profiles names them apart: "fenced/no-pre-vote".
    label: str = ""
    # What booting nodes run as `tagjoin boot-plan`: core.boot.plan_boot unless a test proves the
    # simulator catches a broken one (sim/harness/booting.py).
    boot_policy: booting.BootPolicy | None = None

    @property
    def run_label(self) -> str:
        return self.label or self.strategy


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
    fault_kind: str = ""  # this seed's fault, drawn before the nodes boot (cold-start changes the boot)
    leading: dict[str, int] = field(default_factory=dict)  # node → since when it leads (C1)
    led_until: dict[str, int] = field(default_factory=dict)  # node → when it last stopped leading (C1)
    lag: Ec2Lag | None = None  # EC2's eventual consistency; None: every reader sees moto at once
    boot_ec2: Ec2Api | None = None  # what booting nodes read EC2 through (EC2's own page size)
    ec2_writes: int = 0  # calls other than reads seen by the fault plane, with `world.changes`: when to sample
    _sampled_at: tuple[int, int] | None = None


def run_scenario(config: ScenarioConfig, *, keep_log: bool = False) -> Recording:
    with paced_collector(), Ec2World(config.seed, CLUSTER, dispatched=config.ec2 != "direct") as world:
        scenario = build(config, world)
        scenario.cluster.engine.run_until(config.duration_ms)
        finish(scenario)
        if keep_log:
            scenario.rec.schedule.extend(scenario.log_lines)
        return scenario.rec


def build(config: ScenarioConfig, world: Ec2World) -> Scenario:
    if config.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {config.strategy!r}; use one of {', '.join(STRATEGIES)}")
    if config.raft_profile not in RAFT_PROFILES:
        raise ValueError(f"unknown raft profile {config.raft_profile!r}; use one of {', '.join(RAFT_PROFILES)}")
    if config.auto_join not in booting.AUTO_JOINS:
        raise ValueError(f"unknown auto-join {config.auto_join!r}; use one of {', '.join(booting.AUTO_JOINS)}")
    timings = ConsulTimings(cleanup_dead_servers=config.cleanup_dead_servers)
    pre_vote = config.raft_profile == "pre-vote"
    cluster = Cluster(
        config.seed, ClusterConfig(raft_multiplier=config.raft_multiplier, pre_vote=pre_vote, consul=timings)
    )
    engine = cluster.engine
    api = AgentApi(cluster)
    faults = Ec2Faults(clock=lambda: engine.now / 1000.0)
    ec2 = ec2_api(config.ec2, world, faults, "handlers", page_size=config.ec2_page_size)
    # A booting node's `tagjoin boot-plan` and the agent's cloud auto-join (go-discover's aws
    # provider) ask EC2 for its default page size; the adversarial paging is for the tag processes.
    boot_ec2 = ec2_api(config.ec2, world, faults, "handlers")
    lag = _lag_plane(config.ec2_lag, cluster, world)
    if lag is not None:
        ec2 = lag.api(ec2, lambda: fleet.current or "?")  # a tag process reads as its node
        boot_ec2 = lag.api(boot_ec2, lambda: "?")  # booting reads name their node (reader_api)
    scope = Scope(tag_key=TAG_KEY, cluster=CLUSTER)
    rec = Recording(config.seed, config.run_label, config.duration_ms)
    holder: list[Scenario] = []

    def log(node: str, text: str) -> None:
        if holder:
            holder[0].log_lines.append(f"{engine.now:>7} {node}: {text}")

    fleet = HandlerFleet(
        cluster,
        api,
        ec2,
        HandlerConfig(
            config.strategy, scope, health_consistency=config.keep_health_consistency, consul_http=config.consul_http
        ),
        on_step=lambda _node: _sample_tags(holder[0]),
        log=log,
    )
    # C1 applies where followers must not call EC2: the naive scheme calls it from every node.
    suite = InvariantSuite.standard(config.settle_ms, ec2_cost=config.strategy != "naive")
    s = Scenario(config, world, cluster, api, fleet, faults, rec, suite, lag=lag, boot_ec2=boot_ec2)
    holder.append(s)
    faults.add_observer(lambda call: _observe_write(s, call))
    if config.strategy != "naive":
        faults.add_observer(lambda call: _observe_call(s, call))
    if config.inject_faults:
        s.fault_kind = config.faults[cluster.engine.streams.get("scenario.fault").randrange(len(config.faults))]
    _populate(s)
    _launch_decoys(s)
    _subscribe(s)
    if config.inject_faults:
        _schedule_fault(s)
        # A pause in the middle of core's pass; the naive handler (no pass, no fence) keeps its one fault.
        for n in range(config.extra_faults if config.strategy != "naive" else 0):
            _schedule_paused_pass(s, n)
        for n in range(config.flip_faults if config.strategy != "naive" else 0):
            _schedule_flip_during_pass(s, n)
        for n in range(config.stall_flips if config.strategy != "naive" else 0):
            _schedule_stall_flip(s, n)
    _schedule_joiners(s)
    return s


def ec2_api(path: str, world: Ec2World, faults: Ec2Faults, label: str, *, page_size: int | None = None) -> Ec2Api:
    """The handlers' `Ec2Api` on `world`, behind the fault plane `faults`: both paths end in moto.

    `page_size` asks EC2 for pages of that many reservations, so the store's paging is exercised."""
    if path == "direct":
        return MotoDirectEc2(world.region, faults, label, max_results=page_size)
    if path == "boto3":
        return BotoEc2(faults.attach(world.client(), label), max_results=page_size)
    raise ValueError(f"unknown EC2 path {path!r}; use one of {', '.join(EC2_PATHS)}")


def _lag_plane(text: str, cluster: Cluster, world: Ec2World) -> Ec2Lag | None:
    spec = parse_lag(text)
    if spec is None:
        return None
    engine = cluster.engine
    return Ec2Lag(spec, lambda: engine.now, lambda reader: engine.streams.get("ec2.lag", reader), world.region)


# Clients fill 10.0.1-14.100-149 first (the addresses every seed of a small cluster has always had),
# then 250 a /24 from 10.0.16.1: joiners take .200 and up of the first range, decoys .150 and up.
_CLIENTS_IN_FIRST_RANGE = 14 * 50


def client_ip(k: int) -> str:
    """The private IP of the scenario's k-th client (0-based); room for 12,700 clients."""
    if k < _CLIENTS_IN_FIRST_RANGE:
        return f"10.0.{k % 14 + 1}.{100 + k // 14}"
    j = k - _CLIENTS_IN_FIRST_RANGE
    if j >= 48 * 250:
        raise ValueError(f"{k + 1} clients: the cluster subnet has room for {_CLIENTS_IN_FIRST_RANGE + 48 * 250}")
    return f"10.0.{16 + j // 250}.{1 + j % 250}"


def _populate(s: Scenario) -> None:
    cfg, cluster = s.config, s.cluster
    # Servers come up in a seeded order: which server bootstraps, and so usually leads first,
    # differs from seed to seed. Each node boots through the deploy kit's boot logic.
    order = list(range(cfg.servers))
    cluster.engine.streams.get("scenario.boot-order").shuffle(order)
    nodes: list[tuple[str, str, bool]] = []
    for i in order:
        ip = f"10.0.{i % 14 + 1}.{10 + i // 14}"
        nodes.append((node_name_for(ip), ip, True))
    for k in range(cfg.clients):
        ip = client_ip(k)
        nodes.append((node_name_for(ip), ip, False))
    booting.boot_initial(
        s,
        nodes,
        cold=s.fault_kind == "cold-start",
        launch=lambda name, ip, server: _launch(s, name, ip, server=server),
        start_tag_process=lambda name: _start_tag_process(s, name),
    )


def _launch(s: Scenario, name: str, ip: str, *, server: bool = False) -> None:
    tags = {booting.SERVER_TAG_KEY: CLUSTER} if server and s.config.auto_join == "servers" else None
    iid = s.world.launch(name, ip, extra_tags=tags)
    s.node_instance[name] = iid
    s.known_instances.add(iid)


def _launch_decoys(s: Scenario) -> None:
    """Other workloads of the account carrying the leader tag key with terms above any this run
    reaches: only the cluster scope keeps them out of every read, write and join target."""
    for j in range(s.config.decoys):
        tags = {TAG_KEY: str(900 + j), s.world.cluster_tag_key: "other"}
        s.world.launch_outside(f"decoy-{j}", f"10.0.{j % 14 + 1}.{150 + j // 14}", tags)


def _schedule_paused_pass(s: Scenario, n: int) -> None:
    """A further fault while the first is on: the leader of that moment is stopped in the middle of
    its next pass, at a call drawn anywhere in it (after its quorum read, after its read of the tags,
    after its last look), and a client's crash wakes every keeper so that the pass comes at once.
    Meanwhile another server usually takes over; the paused one resumes with what it saw before."""
    cfg, engine = s.config, s.cluster.engine
    rng = engine.streams.get("scenario.extra-fault", str(n))
    at = rng.randint(cfg.fault_window_ms[0], cfg.fault_window_ms[1] + 10_000)
    after_calls, pause_ms = rng.randint(1, 7), rng.randint(4_000, 15_000)

    def inject() -> None:
        leader = s.cluster.leader()
        if leader is None:
            return

        what = f"paused-pass {leader} after {after_calls} calls for {pause_ms}ms"
        pause = _pause_when_taken(s, "paused-pass", leader, pause_ms, what)
        s.fleet.interrupt_next_pass(leader, after_calls, pause, one_pass=True)
        clients = [c for c in s.cluster.clients() if s.cluster.is_up(c)]
        if clients:
            victim = clients[rng.randrange(len(clients))]
            s.healed_at = max(s.healed_at, engine.now + 5_000)
            s.cluster.crash(victim)
            engine.schedule(5_000, lambda: reboot(s, victim), "fault.paused-pass.end")

    engine.schedule_at(at, inject, "fault.paused-pass")


def _pause_when_taken(s: Scenario, kind: str, node: str, pause_ms: int, what: str) -> Callable[[], None]:
    """The interrupt that pauses `node` mid-pass, recording the fault when the pass takes it."""

    def pause() -> None:
        now = s.cluster.engine.now
        s.healed_at = max(s.healed_at, now + pause_ms)
        s.rec.faults.append(FaultSpan(now, now + pause_ms, kind, node))
        s.rec.schedule.append(f"t={now}ms {what}")
        _safe(lambda: s.cluster.pause(node, pause_ms))

    return pause


def _schedule_flip_during_pass(s: Scenario, n: int) -> None:
    """Leadership moves from the leader of that moment to another server, whose next pass (its
    handoff: tag itself, untag the old holder) is paused at a call drawn anywhere in it. A third
    server or the old leader usually wins the election meanwhile and writes its own tag; the
    paused pass then resumes with what it read and planned before, and its writes land after the
    successor's. A client's crash a little later wakes `consul watch` handlers, which a transfer
    alone does not."""
    cfg, engine = s.config, s.cluster.engine
    rng = engine.streams.get("scenario.flip-pass", str(n))
    at = rng.randint(cfg.fault_window_ms[0], cfg.fault_window_ms[1] + 10_000)
    after_calls, pause_ms, pick = rng.randint(1, 8), rng.randint(4_000, 15_000), rng.randrange(1 << 16)
    wake_ms = rng.randint(500, 3_000)

    def inject() -> None:
        leader = s.cluster.leader()
        others = [x for x in s.cluster.servers() if x != leader and s.cluster.is_up(x)]
        # Not with a fault that terminates an instance: the paused pass's conditional delete of the
        # old holder's tag then lands on a terminated instance, which S2 counts as a write outside
        # the running scope although no reader sees a terminated instance's tags (seed 128).
        if leader is None or not others or s.fault_kind in _TERMINATING:
            return
        to = others[pick % len(others)]
        _leave_stale_tags(s, pick)

        what = f"flip-pass {to} paused after {after_calls} calls for {pause_ms}ms"
        pause = _pause_when_taken(s, "flip-pass", to, pause_ms, what)
        s.fleet.interrupt_next_pass(to, after_calls, pause, one_pass=True)
        s.rec.schedule.append(f"t={engine.now}ms transfer-leader {leader} -> {to}")
        s.cluster.transfer_leader(leader, to)

        def wake() -> None:
            clients = [c for c in s.cluster.clients() if s.cluster.is_up(c)]
            if clients:
                victim = clients[pick % len(clients)]
                s.healed_at = max(s.healed_at, engine.now + 5_000)
                s.cluster.crash(victim)
                engine.schedule(5_000, lambda: reboot(s, victim), "fault.flip-pass.end")

        engine.schedule(wake_ms, wake, "fault.flip-pass.wake")

    engine.schedule_at(at, inject, "fault.flip-pass")


_TERMINATING = ("terminate", "ip-reuse", "asg-replace", "replace")


def _leave_stale_tags(s: Scenario, pick: int) -> None:
    """`stale_tags` running clients of the cluster carry term 0, below any leader's: what a pass
    that died between its create and its deletes leaves. Put there by no keeper, so no invariant
    judges the write itself; L1 sees whether the leader clears them all."""
    clients = [
        n for n in s.cluster.clients() if n in s.node_instance and s.world.state_of(s.node_instance[n]) == "running"
    ]
    start = pick % len(clients) if clients else 0
    chosen = (clients[start:] + clients[:start])[: s.config.stale_tags]
    if not chosen:
        return
    ids = [s.node_instance[n] for n in chosen]
    s.world.create_tags(ids, TAG_KEY, "0")
    s.rec.schedule.append(f"t={s.cluster.engine.now}ms stale tags on {', '.join(chosen)}")
    _sample_tags(s)


def _start_tag_process(s: Scenario, node: str) -> None:
    """What the strategy runs on `node` starts with the agent: `tagjoin keep`, at a random phase of
    its poll interval, or `consul watch` with its handler. A second process on a node is keyed
    "<node>/keep" or "<node>/watch" (see add_second_writers)."""
    role = node.partition("/")[2] or ("keep" if s.config.strategy == "fenced" else "watch")
    if role == "keep":
        interval = s.fleet.config.keep_interval_ms
        s.fleet.start_keeper(node, after_ms=s.cluster.engine.streams.get("keeper.phase", node).randint(0, interval))
    else:
        s.fleet.start_watch(node)
    # second_writers: a server's first tag process brings the kit's other one along.
    if s.config.second_writers and s.config.strategy != "naive" and node in s.cluster.servers():
        _add_second_writer(s, node, start=True)


def _subscribe(s: Scenario) -> None:
    cluster, fleet = s.cluster, s.fleet

    def elected(ev: LeaderElected) -> None:
        s.leading.setdefault(ev.node_name, ev.t)
        s._newest_term = max(s._newest_term, ev.term)
        if s._top is not None and ev.term <= s._top.term:
            return
        _close_top(s, ev.t)
        if s.rec.leaders:
            s.rec.failovers += 1
        s._top = LeaderSpan(ev.t, None, ev.node_name, ev.term)
        _observe(s, NewLeader(ev.t, ev.node_name, ev.term, frozenset(li.group for li in cluster.leaders())))

    def lost(ev: LeadershipLost) -> None:
        _stops_leading(s, ev.node_name, ev.t)
        if s._top is not None and s._top.node == ev.node_name and s._top.term == ev.term:
            _close_top(s, ev.t)

    def down(ev: NodeCrashed | NodeShutdown) -> None:
        _stops_leading(s, ev.node_name, ev.t)
        fleet.stop(ev.node_name)
        if s._top is not None and s._top.node == ev.node_name:
            _close_top(s, ev.t)

    def restarted(ev: NodeRestarted) -> None:
        for key in sorted(fleet.handlers):
            if fleet.handlers[key].host == ev.node_name and s.config.handlers:
                _start_tag_process(s, key)

    cluster.subscribe(LeaderElected, elected)
    cluster.subscribe(LeadershipLost, lost)
    cluster.subscribe(NodeCrashed, down)
    cluster.subscribe(NodeShutdown, down)
    cluster.subscribe(NodeRestarted, restarted)


def _stops_leading(s: Scenario, node: str, t: int) -> None:
    if s.leading.pop(node, None) is not None:
        s.led_until[node] = t


def _close_top(s: Scenario, t: int) -> None:
    if s._top is not None:
        s.rec.leaders.append(LeaderSpan(s._top.start, t, s._top.node, s._top.term))
        s._top = None


# tags and invariants ---------------------------------------------------------------------------


def _observe(s: Scenario, event: Observation) -> None:
    s.rec.violations.extend(s.invariants.observe(event))


def _sample_tags(s: Scenario) -> None:
    # Called after every step of every tag process: EC2's state moves only with a call through the
    # fault plane or a change the world makes, so a sample between two such is the last one again.
    moved = (s.world.changes, s.ec2_writes)
    if moved == s._sampled_at:
        return
    s._sampled_at = moved
    if s.lag is not None:
        s.lag.sync()  # a change is stamped when it happened, not at the next read through the plane
    values = s.world.tag_values(TAG_KEY)
    holders = {s.world.node_of(iid): v for iid, v in sorted(values.items())}
    if holders != s._last_tags:
        s._last_tags = holders
        s.rec.tags.append(TagSample(s.cluster.engine.now, holders))


def _observe_write(s: Scenario, call: Ec2Call) -> None:
    if not call.action.startswith(("Describe", "Get", "List")):
        # Any change through the plane (a `sim serve` caller may stop or launch instances too), and
        # failed calls as well: a sample after one costs little, a missed change a lot.
        s.ec2_writes += 1
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


def _observe_call(s: Scenario, call: Ec2Call) -> None:
    """C1's view of an EC2 request attempt by a core tag process; boot lookups have no process."""
    h = s.fleet.current_process
    if h is None:
        return
    now = s.cluster.engine.now
    started = h.pass_started if h.in_pass else None
    led = started is not None and (h.host in s.leading or s.led_until.get(h.host, -1) >= started)
    if started is not None:
        h.pass_calls += 1
    # Two paged reads (the tagged instances, our own), one create, one delete per other holder;
    # each request retried at most max_attempts times. Every instance of the scope may hold a tag.
    scope = len(s.known_instances)
    page = s.config.ec2_page_size or 1000
    pages = max(1, -(-scope // page))
    budget = s.fleet.config.max_attempts * (2 * pages + 1 + scope)
    _observe(s, Ec2Request(now, h.node, call.action, started, led, h.pass_calls, budget))


def _live_server(s: Scenario, iid: str) -> bool:
    node = s.world.node_of(iid)
    return node in s.cluster.servers() and s.cluster.is_up(node)


# faults ----------------------------------------------------------------------------------------


def _schedule_fault(s: Scenario) -> None:
    cfg, engine = s.config, s.cluster.engine
    rng = engine.streams.get("scenario.fault")  # its first draw picked s.fault_kind (build)
    kind = s.fault_kind
    if kind == "cold-start":
        return  # the whole run is the fault: the nodes boot a new cluster (booting.boot_initial)
    if kind == "two-writers":
        add_second_writers(s)  # the kit ships both from the start
    at = rng.randint(*cfg.fault_window_ms)
    scale = cfg.raft_multiplier / 5
    duration = int(rng.randint(5_000, 20_000) * max(scale, 0.2))
    fault = _Fault(kind, at, duration)
    engine.schedule_at(at, lambda: _inject(s, fault, rng.randint(0, 6)), f"fault.{kind}")


def _inject(s: Scenario, f: _Fault, k: int) -> None:
    cluster, engine = s.cluster, s.cluster.engine
    leader = cluster.leader()
    servers = cluster.servers()
    if not servers:
        return  # no server agent ever started (a boot that never starts Consul): nothing to fault
    f.target = leader or servers[0]
    end = engine.now + f.duration

    def span(kind: str = f.kind, until: int = end, what: str = "") -> None:
        s.healed_at = max(s.healed_at, engine.now if until >= s.config.duration_ms else until)
        s.rec.faults.append(FaultSpan(engine.now, until, kind, f.target))
        s.rec.schedule.append(f"t={engine.now}ms {what or f'{kind} {f.target}'} for {until - engine.now}ms")

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
    elif f.kind == "restart-all":
        f.target = "all"
        span(until=booting.restart_all(s, servers, f.duration))
    elif f.kind == "partition":
        span()
        minority = [f.target, *[n for n in servers if n != f.target][: (len(servers) - 1) // 2 - 1]]
        cluster.partition([minority])
        later(cluster.heal)
    elif f.kind == "pause":
        # The old leader stops the world in the middle of a handler pass, after `k` API calls,
        # and later resumes it with what it saw before the pause.

        def pause_mid_pass() -> None:
            # The keeper's next pass may come as late as its anti-entropy tick (60 s): the fault
            # starts, and L1/L2's settle time counts, from there (seeds 380, 367).
            span(until=engine.now + f.duration)
            _safe(lambda: cluster.pause(f.target, f.duration))

        s.fleet.interrupt_next_pass(f.target, 1 + k % 3, pause_mid_pass)
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
    elif f.kind == "rebuild":
        span()
        for node in servers:
            cluster.crash(node)
        _leave_debris(s, k)
        later(lambda: _rebuild(s, servers))
    elif f.kind == "one-way-partition":
        # Even k: the leader hears no other server while they still hear it. Odd k: one follower
        # stops hearing the leader, campaigns alone and, without pre-vote, inflates its term.
        others = [n for n in servers if n != f.target]
        deaf, speakers = (others[k // 2 % len(others)], [f.target]) if k % 2 and others else (f.target, others)
        f.target = deaf
        span()
        cluster.one_way_partition(deaf, speakers)
        later(cluster.heal)
    elif f.kind == "agent-pause":
        # The Consul agent alone is stopped (SIGSTOP): the keeper runs on and its calls to the
        # agent hang; odd k pauses it between two calls of the keeper's next pass, which may come
        # a minute later: the fault is recorded when it starts (seed 663).

        def pause_agent() -> None:
            span(until=engine.now + f.duration)
            _safe(lambda: cluster.pause(f.target, f.duration, alone=True))

        if k % 2:
            s.fleet.interrupt_next_pass(f.target, 1 + k % 3, pause_agent)
        else:
            pause_agent()
    elif f.kind == "stop-start":
        span()
        stop_start(s, f.target, f.duration)
    elif f.kind == "two-writers":
        # Every tag process on every server stalls once mid-pass, and leadership moves meanwhile:
        # the leader crashes, leaves, or (k % 3 == 2) is moved away, back and away again a few
        # seconds apart, so passes of several terms are in flight on one node at once.
        span()
        _stall_every_process(s, "scenario.stall")
        if k % 3 == 2:
            other = [n for n in servers if n != f.target][k % (len(servers) - 1)] if len(servers) > 1 else f.target
            gap = engine.streams.get("scenario.flip").randint(1_000, 4_000)
            _flip_flop(s, (other, f.target, other), gap)
        else:
            if k % 3:
                _safe(lambda: cluster.leave(f.target))
            else:
                cluster.crash(f.target)
            later(lambda: reboot(s, f.target))
    elif f.kind == "partial-partition":
        # The leader and one follower lose each other while both still reach the rest: the leader
        # keeps its quorum through them, the cut follower campaigns (and, without pre-vote, comes
        # back with a higher term). Gossip routes around it (memberlist indirect probes).
        others = [n for n in servers if n != f.target and cluster.is_up(n)]
        if others:
            span()
            cluster.cut(f.target, others[k % len(others)])
            later(cluster.heal)
    elif f.kind == "link-loss":
        # The leader's links to every other server fail each Raft heartbeat and vote at a drawn rate
        # (30-90%): at low rates nothing happens; at high ones its lease lapses between writes and
        # elections flap.
        rate = (30 + 10 * k) / 100
        span(what=f"{f.kind} {f.target} at {rate:.0%}")
        cluster.lossy(f.target, [n for n in servers if n != f.target], rate)
        later(cluster.heal)
    elif f.kind == "keeper-stall":
        # The leader's tag process alone stalls (CPU starvation, a slow disk, a SIGSTOP of the keeper)
        # in its next pass while its agent runs on; the fault starts when the stall does (the pass may
        # come late). A client's crash gives that pass a reason to come once Serf notices it. For
        # odd k, leadership moves away once the stall began: the pass resumes for a term the node
        # no longer leads.
        leader = f.target

        def stalled() -> None:
            span(until=engine.now + f.duration)
            others = [n for n in cluster.servers() if n != leader and cluster.is_up(n)]
            if k % 2 and others:
                to = others[k % len(others)]
                engine.schedule(1_000 + 250 * k, lambda: _flip_flop(s, (to,), 0), "fault.keeper-stall.move")

        s.fleet.stall_next_pass(leader, k % 4, f.duration, on_taken=stalled, one_pass=True)
        clients = [c for c in cluster.clients() if cluster.is_up(c)]
        if clients:
            victim = clients[k % len(clients)]
            s.healed_at = max(s.healed_at, engine.now + 5_000)
            cluster.crash(victim)
            engine.schedule(5_000, lambda: reboot(s, victim), "fault.keeper-stall.wake-end")
    elif f.kind in ("ip-reuse", "asg-replace"):
        # The leader's instance is terminated. ip-reuse: another cluster's instance comes up on its
        # private IP, carrying that cluster's own leader tag. asg-replace: the group launches a
        # new server with a new name, node ID and empty Raft data.
        span(until=s.config.duration_ms if f.kind == "ip-reuse" else end)
        ip = cluster.nodes[f.target].ip
        cluster.crash(f.target)
        s.world.terminate(s.node_instance[f.target])
        _sample_tags(s)
        if f.kind == "ip-reuse":
            decoy = {TAG_KEY: str(1000 + k), s.world.cluster_tag_key: "other"}
            later(lambda: _reuse_ip(s, ip, decoy))
        else:
            later(lambda: asg_replacement(s, f"10.0.{k % 14 + 1}.60"))
    else:
        raise ValueError(f"unknown fault {f.kind!r}; known: {', '.join(FAULT_KINDS)}")


def _safe(action: Callable[[], None]) -> None:
    try:
        action()
    except Exception as exc:  # the target may already be down: the fault becomes a no-op
        if type(exc).__name__ not in ("NodeDown",):
            raise


def _leave_debris(s: Scenario, k: int) -> None:
    """The old cluster ran long: a tag with a term the rebuilt cluster will not reach for a long
    time stays on one of its running instances (a follower's, a client's), beside the tag its last
    leader left. Put there by no keeper, so no invariant judges the write itself."""
    nodes = sorted(n for n, iid in s.node_instance.items() if s.world.state_of(iid) == "running")
    iid = s.node_instance[nodes[k % len(nodes)]]
    s.world.create_tags([iid], TAG_KEY, str(90 + k))
    _sample_tags(s)


def _rebuild(s: Scenario, servers: list[str]) -> None:
    """Every server starts again from an empty data dir and joins through the tags, as at boot.

    No invariant needs to know of the new incarnation: every server crashed first, so the followed
    leader's span is closed and the rebuilt cluster's term-1 leader is followed afresh (`elected`
    compares terms only with a leader still in office), and S3 compares writes only with the tag
    of the leader in office, never terms across the rebuild.
    """
    for node in servers:
        wipe_server(s.cluster, node)
    for node in servers:
        s.cluster.restart(node)
    for node in servers:
        _boot_join(s, node, s.config.join_deadline_ms, record=False)


def _stall_every_process(s: Scenario, stream: str, *, before_write: bool = False) -> None:
    """Every tag process stalls once, alone, part way into its next pass (0-6 calls in, 0.5-10 s).

    With `before_write` (stall-flip), half of them stall right before their pass's first tag write
    instead, each stall lapses with the pass it was meant for, and one that is taken extends the
    time the faults heal by. Without it (two-writers, whose seeds are kept as tests), a stall waits
    for a pass long enough to take it."""
    engine = s.cluster.engine
    for key in sorted(s.fleet.handlers):
        stall = engine.streams.get(stream, key)
        after = stall.randint(0, 6)
        ms = stall.randint(500, 10_000)
        if not before_write:
            s.fleet.stall_next_pass(key, after, ms)
            continue
        if stall.random() < 0.5:
            after = BEFORE_WRITE

        def taken(ms: int = ms) -> None:
            s.healed_at = max(s.healed_at, engine.now + ms)

        s.fleet.stall_next_pass(key, after, ms, on_taken=taken, one_pass=True)


def _schedule_stall_flip(s: Scenario, n: int) -> None:
    """A further fault: every tag process stalls in its next pass while leadership moves from the
    leader A to another server B, back to A and to B again, a few seconds apart, so that passes of
    several terms are in flight on one node at once (the `two-writers` fault's schedule). With no
    leader at the drawn time it tries again a little later, a few times."""
    cfg, engine = s.config, s.cluster.engine
    rng = engine.streams.get("scenario.stall-flip", str(n))
    at = rng.randint(cfg.fault_window_ms[0], cfg.fault_window_ms[1] + 10_000)
    gap, pick = rng.randint(1_000, 4_000), rng.randrange(1 << 16)

    def inject(tries: int) -> None:
        leader = s.cluster.leader()
        others = [x for x in s.cluster.servers() if x != leader and s.cluster.is_up(x)]
        if leader is None or not others:
            if tries > 1:
                engine.schedule(STALL_FLIP_RETRY_MS, lambda: inject(tries - 1), "fault.stall-flip")
            return
        other = others[pick % len(others)]
        now = engine.now
        s.healed_at = max(s.healed_at, now + 3 * gap)
        s.rec.faults.append(FaultSpan(now, now + 3 * gap, "stall-flip", leader))
        s.rec.schedule.append(f"t={now}ms stall-flip {leader} -> {other} -> {leader} -> {other}, {gap}ms apart")
        _stall_every_process(s, f"scenario.stall-flip.{n}", before_write=True)
        _flip_flop(s, (other, leader, other), gap)

    engine.schedule_at(at, lambda: inject(STALL_FLIP_TRIES), "fault.stall-flip")


STALL_FLIP_TRIES, STALL_FLIP_RETRY_MS = 5, 2_000


def _flip_flop(s: Scenario, targets: tuple[str, ...], gap_ms: int) -> None:
    """An operator moves leadership to each of `targets` in turn, `gap_ms` apart."""
    cluster = s.cluster
    for i, to in enumerate(targets):

        def move(to: str = to) -> None:
            leader = cluster.leader()
            if leader is not None and leader != to:
                cluster.transfer_leader(leader, to)

        cluster.engine.schedule(i * gap_ms, move, "fault.transfer-leader")


def add_second_writers(s: Scenario) -> None:
    """Both mechanisms the kit ships on every server: `tagjoin keep` and a `consul watch` running
    `tagjoin watch-handler`, sharing the node's handoff lock (core/pass_lock.py). The naive
    baseline gets a second `nodes` watch of its own."""
    for node in s.cluster.servers():
        _add_second_writer(s, node, start=s.config.handlers and s.cluster.is_up(node))


def _add_second_writer(s: Scenario, node: str, *, start: bool) -> None:
    """The other of the kit's two tag processes on server `node`, unless it runs one already."""
    key = f"{node}/{'keep' if s.config.strategy == 'watch' else 'watch'}"
    if key not in s.fleet.handlers:
        s.fleet.add(node, key=key)
        if start:
            _start_tag_process(s, key)


def _reuse_ip(s: Scenario, ip: str, tags: dict[str, str]) -> None:
    s.world.launch_outside(f"other-{ip.replace('.', '-')}", ip, tags)
    _sample_tags(s)


def asg_replacement(s: Scenario, ip: str) -> None:
    """A new server instance the Auto Scaling group launched: new name, node ID, empty Raft data.
    It joins through the tags; Consul adds it to Raft as a non-voter that autopilot promotes once
    stable, and autopilot removes the dead server (ServerDuties models both)."""
    name = node_name_for(ip)
    _launch(s, name, ip, server=True)
    s.cluster.add_server(name, ip, bootstrap_expect=min(s.config.servers, 3))
    s.fleet.add(name)
    if s.config.handlers:
        _start_tag_process(s, name)
    _boot_join(s, name, s.config.join_deadline_ms, record=False)


def stop_start(s: Scenario, node: str, duration_ms: int) -> None:
    """EC2 StopInstances then StartInstances: the same instance id and private IP, the instance
    `stopped` to EC2 readers meanwhile. The shutdown sends the agent SIGTERM, and a server does
    not leave on it (Consul's `leave_on_terminate` defaults to false for servers), so Raft and
    Serf see a failure, as after a crash."""
    iid = s.node_instance[node]
    s.cluster.crash(node)
    s.world.stop(iid)
    _sample_tags(s)

    def start() -> None:
        s.world.start(iid)
        _sample_tags(s)
        reboot(s, node)

    s.cluster.engine.schedule(duration_ms, start, "fault.stop-start.end")


def _replace(s: Scenario, node: str) -> None:
    new_iid, new_ip = s.world.replace(node)
    s.node_instance[node] = new_iid
    s.known_instances.add(new_iid)
    _sample_tags(s)
    booting.restart(s, node, ip=new_ip)


def reboot(s: Scenario, node: str) -> None:
    """The agent starts again and, like a booting node, joins what the tag points to."""
    booting.restart(s, node)


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

    def start() -> None:
        s.cluster.add_client(name, ip)
        if s.config.strategy == "naive":
            s.fleet.add(name)
            if s.config.handlers:
                _start_tag_process(s, name)

    booting.boot(s, name, ip, server=False, start=start, record=True)


def _boot_join(s: Scenario, node: str, deadline_ms: int, *, record: bool) -> None:
    """boot-join.sh for an agent the caller has just started: plan_boot, then the agent's retry_join."""
    del deadline_ms  # Consul's retry_join has no deadline (retry_max = 0); joiners record theirs
    booting.join_started(s, node, record=record)


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
    if s.lag is not None:
        # What a booting node would join is what it reads: the tag timeline (and so the tag
        # metrics) and L1 are judged on a reader's view, while S2-S4 judge writes on moto's state.
        s.rec.tags = _seen_tags(s, s.lag, now)
        holders = tuple(sorted(s.rec.tags_at(now))) if s.rec.tags else ()
    membership = {} if leader is None else _membership(s, leader)
    s.rec.violations.extend(s.invariants.finish(RunEnd(now, s.healed_at, leader, holders, membership)))


def _seen_tags(s: Scenario, lag: Ec2Lag, end: int) -> list[TagSample]:
    """The tag timeline as a node booting at any instant would read it: a reader of its own
    (`SEEN_BY`) with lags drawn from its own stream, so watching it shifts no other draw."""
    lag.sync()
    samples: list[TagSample] = []
    last: dict[str, str] | None = None
    for t in lag.change_times(SEEN_BY, end):
        holders: dict[str, str] = {}
        for _iid, inst in sorted(lag.view(SEEN_BY, t).items()):
            value = inst.tags.get(TAG_KEY)
            if value is None or inst.state != "running" or inst.tags.get(s.world.cluster_tag_key) != CLUSTER:
                continue
            holders[inst.tags.get("Name", "")] = value
        if holders != last:
            samples.append(TagSample(t, holders))
            last = holders
    return samples


def _membership(s: Scenario, leader: str) -> dict[str, MemberStatus | None]:
    """Each agent that is up, as the leader's member list sees it."""
    return {n: s.cluster.member_status(leader, n) for n in sorted(s.cluster.nodes) if s.cluster.is_up(n)}
