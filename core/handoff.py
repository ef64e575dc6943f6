"""The fenced, make-before-break leader-tag handoff (docs/design.md §2): observe → plan → apply.

Observe and apply are generators that yield a `Checkpoint` before every API call. Production
drives them straight through (`run_pass`); the simulator resumes them one call at a time, so
virtual time — latency, a pause, a crash — can fall between any two calls of a pass.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from tagjoin.core.aws.tag_store import TagStore
from tagjoin.core.clock import Clock
from tagjoin.core.consul.client import ConsulClient, health_node_path, query_target
from tagjoin.core.errors import BadResponse, NoLeader
from tagjoin.core.model import AgentSelf, Instance, leader_address, parse_term
from tagjoin.core.pass_lock import PassLock

R = TypeVar("R")
AGENT_SELF = "/v1/agent/self"
STATUS_LEADER = "/v1/status/leader"


class Decision(StrEnum):
    NOT_LEADER = "not-leader"
    UNCONFIRMED = "unconfirmed"  # the local agent says Leader, but a quorum read disagrees
    SUPERSEDED = "superseded"  # leadership changed while the pass ran: it writes nothing
    BUSY = "busy"  # another pass on this node holds the handoff lock
    STALE = "stale"  # a tag carries a higher term than ours: someone newer leads
    SELF_NOT_RUNNING = "self-not-running"
    NO_CHANGE = "no-change"
    HANDOFF = "handoff"


@dataclass(frozen=True)
class Checkpoint:
    """Announces the API call that comes next.

    `consul` is the request target of a Consul read (`/v1/health/node/x?consistent=1`), so a driver
    in virtual time can hold the caller for as long as that agent would take to answer it — a
    blocking query, a request held while there is no leader. Production ignores it: the call
    itself takes that long.
    """

    call: str
    consul: str | None = None


@dataclass(frozen=True)
class TagWrite:
    instance_id: str
    key: str
    value: str


@dataclass(frozen=True)
class Observation:
    agent: AgentSelf
    confirmed: bool
    own: Instance | None = None
    tagged: tuple[Instance, ...] = ()
    # A quorum read, taken after `tagged` was read, confirmed this node as leader in the same
    # term: no leader above that term existed then, so a higher tag is debris (docs/design.md §2.1).
    confirmed_after_read: bool = False


@dataclass(frozen=True)
class Plan:
    decision: Decision
    reason: str
    term: int
    create: TagWrite | None = None
    deletes: tuple[TagWrite, ...] = ()  # value-conditional: each deletes only if the value still matches
    debris: tuple[TagWrite, ...] = ()  # tags above our term proven not to be a leader's (removed or overwritten)

    @property
    def writes(self) -> bool:
        return self.create is not None or bool(self.deletes)


@dataclass
class Report:
    node: str
    plan: Plan
    dry_run: bool = False
    own: Instance | None = None  # this node's instance, when the pass looked it up
    created: list[TagWrite] = field(default_factory=list)
    deleted: list[TagWrite] = field(default_factory=list)
    ec2_calls: dict[str, int] = field(default_factory=dict)
    throttled: int = 0
    duration_s: float = 0.0

    @property
    def decision(self) -> Decision:
        return self.plan.decision

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "decision": self.plan.decision.value,
            "reason": self.plan.reason,
            "term": self.plan.term,
            "dry_run": self.dry_run,
            "planned": {
                "create": _write_json(self.plan.create),
                "delete": [_write_json(d) for d in self.plan.deletes],
            },
            "debris": [_write_json(d) for d in self.plan.debris],
            "created": [_write_json(w) for w in self.created],
            "deleted": [_write_json(w) for w in self.deleted],
            "ec2_calls": dict(self.ec2_calls),
            "throttled": self.throttled,
            "duration_s": round(self.duration_s, 4),
        }

    def summary(self) -> str:
        p = self.plan
        head = f"{self.node}: {p.decision.value} (term {p.term}) — {p.reason}"
        if self.dry_run and p.writes:
            head += " [dry run: nothing written]"
        calls = ", ".join(f"{k} {v}" for k, v in sorted(self.ec2_calls.items())) or "none"
        return f"{head}\nEC2 calls: {calls}; throttled {self.throttled}; took {self.duration_s * 1000:.0f} ms"


def _write_json(w: TagWrite | None) -> dict[str, str] | None:
    return None if w is None else {"instance_id": w.instance_id, "key": w.key, "value": w.value}


def observe(
    consul: ConsulClient, store: TagStore, *, instance_id: str | None = None, known_own: Instance | None = None
) -> Generator[Checkpoint, None, Observation]:
    """Gather what the plan needs; a node that is not the verified leader makes no EC2 call.

    `known_own` is this node's instance as an earlier pass of the same process found it: the
    process runs on it, so it is still there, and a long-running keeper saves one lookup.
    """
    yield Checkpoint("consul:agent/self", AGENT_SELF)
    me = consul.agent_self()
    if not me.is_leader:
        return Observation(me, confirmed=False)
    # status/leader and agent/self are the local view; an old leader may still believe it
    # leads for up to the lease. A consistent read makes the leader prove a quorum.
    yield Checkpoint(
        "consul:health/node?consistent", query_target(health_node_path(me.node_name), consistency="consistent")
    )
    try:
        consul.health_node(me.node_name, consistency="consistent")
    except (NoLeader, BadResponse):
        return Observation(me, confirmed=False)
    yield Checkpoint("consul:status/leader", STATUS_LEADER)
    leader = consul.leader()
    if leader is None or leader_address(leader) != me.address:
        return Observation(me, confirmed=False)
    yield Checkpoint("ec2:DescribeInstances")
    tagged = tuple(store.tagged_instances())
    own = _own_from(tagged, me.address, instance_id)
    if own is None and known_own is not None and known_own.private_ip == me.address:
        own = Instance(known_own.instance_id, known_own.private_ip, known_own.public_ip, known_own.state, {})
    if own is None:
        yield Checkpoint("ec2:DescribeInstances")
        own = store.instance_by_id(instance_id) if instance_id else store.instance_by_ip(me.address)
    after = False
    if any((parse_term(i.tags.get(store.scope.tag_key)) or -1) > me.term for i in tagged):
        after = yield from confirm_after_read(consul, me)
    return Observation(me, confirmed=True, own=own, tagged=tagged, confirmed_after_read=after)


def confirm_after_read(consul: ConsulClient, me: AgentSelf) -> Generator[Checkpoint, None, bool]:
    """Prove, after the tags were read, that no leader above our term exists (docs/design.md §2.1).

    The consistent read goes through VerifyLeader (hashicorp/consul agent/consul/rpc.go
    `consistentRead`): hashicorp/raft `verifyLeader` heartbeats every voter at our term and needs a
    quorum of successes (replication.go `heartbeat` → `notifyAll(resp.Success)`, future.go
    `verifyFuture.vote`), and a voter whose term is higher refuses (raft.go `appendEntries`). The
    agent/self read after it pins the term the quorum confirmed: we were leader at `me.term` before
    and after, and a server leads at most once per term, so it led throughout and served the read.
    """
    yield Checkpoint(
        "consul:health/node?consistent", query_target(health_node_path(me.node_name), consistency="consistent")
    )
    try:
        consul.health_node(me.node_name, consistency="consistent")
    except (NoLeader, BadResponse):
        return False
    yield Checkpoint("consul:agent/self", AGENT_SELF)
    now = consul.agent_self()
    return now.is_leader and now.term == me.term


def _own_from(tagged: tuple[Instance, ...], address: str, instance_id: str | None) -> Instance | None:
    """Our own instance is usually among the tagged ones; then a second lookup is not needed."""
    for inst in tagged:
        if (instance_id and inst.instance_id == instance_id) or (not instance_id and inst.private_ip == address):
            return inst
    return None


def plan(obs: Observation, tag_key: str) -> Plan:
    """Decide the writes. Pure: the same observation always gives the same plan."""
    term = obs.agent.term
    if not obs.agent.is_leader:
        return Plan(Decision.NOT_LEADER, f"raft state is {obs.agent.raft_state or 'client'}", term)
    if not obs.confirmed or obs.own is None:
        return Plan(Decision.UNCONFIRMED, "local agent says Leader but a quorum read did not confirm it", term)
    own = obs.own
    newer = [i for i in obs.tagged if (parse_term(i.tags.get(tag_key)) or -1) > term]
    if newer and not obs.confirmed_after_read:
        top = max(newer, key=lambda i: parse_term(i.tags.get(tag_key)) or -1)
        return Plan(
            Decision.STALE,
            f"{top.instance_id} carries term {top.tags.get(tag_key)} > our term {term}; writing nothing",
            term,
        )
    if not own.running:
        return Plan(Decision.SELF_NOT_RUNNING, f"own instance {own.instance_id} is {own.state}", term)
    # Debris on our own instance goes by the create, which overwrites it; elsewhere by a delete
    # conditional on the value judged debris, like every other delete.
    debris = tuple(
        TagWrite(i.instance_id, tag_key, i.tags[tag_key]) for i in sorted(newer, key=lambda i: i.instance_id)
    )
    value = str(term)
    create = None if own.tags.get(tag_key) == value else TagWrite(own.instance_id, tag_key, value)
    deletes = tuple(
        TagWrite(i.instance_id, tag_key, i.tags[tag_key])
        for i in sorted(obs.tagged, key=lambda i: i.instance_id)
        if i.instance_id != own.instance_id and tag_key in i.tags
    )
    if create is None and not deletes:
        return Plan(Decision.NO_CHANGE, f"{own.instance_id} already carries term {term}", term)
    parts = [f"tag {own.instance_id}={value}"] if create else []
    parts += [f"untag {d.instance_id} (was {d.value})" for d in deletes]
    if debris:
        found = ", ".join(f"{d.instance_id}={d.value}" for d in debris)
        parts.append(f"debris above term {term} (quorum-confirmed after the read): {found}")
    return Plan(Decision.HANDOFF, "; ".join(parts), term, create, deletes, debris)


def last_look(consul: ConsulClient, obs: Observation, p: Plan) -> Generator[Checkpoint, None, Plan]:
    """Right before writing, ask the local agent again: a pass that stalled after it observed
    (a pause, a slow EC2 read) must not write for a term the node no longer leads in."""
    yield Checkpoint("consul:agent/self", AGENT_SELF)
    now = consul.agent_self()
    if now.is_leader and now.term == obs.agent.term:
        return p
    state = f"{now.raft_state or 'client'} at term {now.term}"
    return Plan(Decision.SUPERSEDED, f"planned at term {p.term}, but the node is now {state}; writing nothing", p.term)


def apply(store: TagStore, p: Plan, report: Report) -> Generator[Checkpoint, None, None]:
    """Make before break: the new tag is in place before any old one is removed."""
    if p.create is not None:
        yield Checkpoint(f"ec2:CreateTags {p.create.instance_id}")
        store.create_tag(p.create.instance_id, p.create.key, p.create.value)
        report.created.append(p.create)
    for d in p.deletes:
        yield Checkpoint(f"ec2:DeleteTags {d.instance_id}")
        store.delete_tag_if(d.instance_id, d.key, d.value)
        report.deleted.append(d)


def handoff_pass(
    consul: ConsulClient,
    store: TagStore,
    clock: Clock,
    *,
    instance_id: str | None = None,
    known_own: Instance | None = None,
    dry_run: bool = False,
    lock: PassLock | None = None,
) -> Generator[Checkpoint, None, Report]:
    """One whole pass as a resumable generator; its return value is the report.

    With a `lock`, the pass runs only if no other pass on this node holds it (see pass_lock).
    """
    started = clock.monotonic()
    before = store.stats.snapshot()
    if lock is not None and not lock.try_acquire():
        return Report(node="", plan=Plan(Decision.BUSY, "another handoff pass on this node is running", -1))
    try:
        obs = yield from observe(consul, store, instance_id=instance_id, known_own=known_own)
        p = plan(obs, store.scope.tag_key)
        if p.writes and not dry_run:
            p = yield from last_look(consul, obs, p)
        report = Report(node=obs.agent.node_name, plan=p, dry_run=dry_run, own=obs.own)
        if p.writes and not dry_run:
            yield from apply(store, p, report)
    finally:
        if lock is not None:
            lock.release()
    delta = store.stats.since(before)
    report.ec2_calls = {k: v for k, v in delta.calls.items() if v}
    report.throttled = delta.throttled
    report.duration_s = clock.monotonic() - started
    return report


def drive(steps: Generator[Checkpoint, None, R]) -> R:
    """Run steps back to back, as production does: each call blocks for as long as it takes."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            result: R = done.value
            return result


def run_pass(
    consul: ConsulClient,
    store: TagStore,
    clock: Clock,
    *,
    instance_id: str | None = None,
    known_own: Instance | None = None,
    dry_run: bool = False,
    lock: PassLock | None = None,
) -> Report:
    return drive(
        handoff_pass(consul, store, clock, instance_id=instance_id, known_own=known_own, dry_run=dry_run, lock=lock)
    )
