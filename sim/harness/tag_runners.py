"""The tag handlers running on simulated nodes, stepped one API call at a time in virtual time.

Each node runs the same core code a production node runs — `tagjoin.core.handoff.handoff_pass` for
the fenced strategy, `tagjoin.sim.harness.naive_strategy.naive_pass` for the naive one — over a Consul
client whose transport routes to that node's own simulated agent and a TagStore on the shared moto client. Between two
API calls the driver waits a latency drawn from the node's stream (plus any retry backoff the
store slept), so pauses, crashes and other nodes' calls can fall in between.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tagjoin.core.aws.boto_ec2 import BotoEc2
from tagjoin.core.aws.tag_store import TagStore
from tagjoin.core.consul.client import ConsulClient
from tagjoin.core.consul.settings import ConsulSettings
from tagjoin.core.errors import TagjoinError
from tagjoin.core.handoff import Checkpoint, Report, handoff_pass
from tagjoin.core.model import Instance
from tagjoin.core.settings import Scope
from tagjoin.sim.harness.naive_strategy import naive_pass
from tagjoin.sim.kernel.engine import Engine, SimClock

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

    from tagjoin.sim.consul.cluster import Cluster
    from tagjoin.sim.consul.http_api import AgentApi

Steps = Generator[Checkpoint, None, Any]


@dataclass
class HandlerConfig:
    strategy: str  # fenced / naive
    scope: Scope
    latency_ms: tuple[int, int] = (2, 20)
    keep_interval_ms: int = 1_000  # fenced keeper: local raft-state poll, as `tagjoin keep`
    anti_entropy_ms: int = 60_000
    restart_ms: int = 5_000  # systemd brings a killed keeper back after this long
    max_attempts: int = 4


@dataclass
class NodeHandler:
    """The keeper (fenced) or `nodes` watch handler (naive) of one node."""

    node: str
    consul: ConsulClient
    store: TagStore
    clock: SimClock
    rng: random.Random
    running: Steps | None = None
    pending: bool = False  # a trigger arrived while a pass ran: run again after it
    dead_until: int = -1  # killed by a handler-crash fault until then
    interrupt: tuple[int, Callable[[], None] | None] | None = None  # (calls left, action; None = kill)
    last_raft: tuple[str, int] | None = None
    last_pass_at: int | None = None
    own: Instance | None = None
    reports: list[Report] = field(default_factory=list)


class HandlerFleet:
    """Owns every node's handler and turns triggers into stepped passes."""

    def __init__(
        self,
        cluster: Cluster,
        api: AgentApi,
        client: EC2Client,
        config: HandlerConfig,
        *,
        on_step: Callable[[str], None],
        log: Callable[[str, str], None],
    ) -> None:
        self.cluster = cluster
        self.engine: Engine = cluster.engine
        self.api = api
        self.client = client
        self.config = config
        self.on_step = on_step  # called after each API call, e.g. to sample the tags
        self.log = log
        self.handlers: dict[str, NodeHandler] = {}
        self.current: str | None = None  # whose call is in flight, for EC2 call attribution

    def store_for(self, node: str, clock: SimClock | None = None) -> TagStore:
        """A TagStore on the shared client, as `node` builds it (with its own backoff stream)."""
        return TagStore(
            BotoEc2(self.client),
            self.config.scope,
            clock=clock or SimClock(self.engine),
            rng=self.engine.streams.get("handler.backoff", node),
            max_attempts=self.config.max_attempts,
        )

    def add(self, node: str) -> NodeHandler:
        clock = SimClock(self.engine)
        consul = ConsulClient(
            ConsulSettings(address=f"{node}.agent:8500", timeout=5.0), transport=self.api.transport_for(node)
        )
        store = self.store_for(node, clock)
        handler = NodeHandler(node, consul, store, clock, self.engine.streams.get("handler.latency", node))
        self.handlers[node] = handler
        return handler

    # triggers ------------------------------------------------------------------------------------

    def trigger(self, node: str, reason: str) -> None:
        h = self.handlers.get(node)
        if h is None or not self.cluster.is_up(node) or self.engine.now < h.dead_until:
            return
        if h.running is not None:
            h.pending = True
            return
        self.log(node, f"pass ({reason})")
        h.running = self._new_pass(h)
        self._schedule_step(h, self._latency(h))

    def poll(self, node: str) -> None:
        """The fenced keeper's cheap local poll: a pass when raft state or term changed, or
        when anti-entropy is due. The poll itself is one local agent/self call."""
        h = self.handlers.get(node)
        if h is None or not self.cluster.is_responsive(node) or self.engine.now < h.dead_until:
            return
        try:
            me = h.consul.agent_self()
        except TagjoinError:
            return
        raft = (me.raft_state, me.term)
        changed = raft != h.last_raft
        h.last_raft = raft
        due = h.last_pass_at is None or self.engine.now - h.last_pass_at >= self.config.anti_entropy_ms
        if me.is_leader and (changed or due):
            self.trigger(node, "raft changed" if changed else "anti-entropy")

    def interrupt_next_pass(self, node: str, after_calls: int, action: Callable[[], None] | None = None) -> None:
        """Between two API calls of the node's next pass: kill the handler (None) or run `action`,
        e.g. a stop-the-world pause of the node."""
        h = self.handlers.get(node)
        if h is not None:
            # The first step of a pass runs up to its first checkpoint and makes no call yet.
            h.interrupt = (after_calls + 1, action)

    def stop(self, node: str) -> None:
        """The node's process died: its pass dies with it."""
        h = self.handlers.get(node)
        if h is not None and h.running is not None:
            h.running.close()
            h.running = None
            h.pending = False
            h.last_raft = None

    # stepping ------------------------------------------------------------------------------------

    def _new_pass(self, h: NodeHandler) -> Steps:
        if self.config.strategy == "naive":
            return naive_pass(h.consul, h.store)
        return handoff_pass(h.consul, h.store, h.clock, known_own=h.own)

    def _latency(self, h: NodeHandler) -> int:
        lo, hi = self.config.latency_ms
        return h.rng.randint(lo, hi)

    def _schedule_step(self, h: NodeHandler, delay: int) -> None:
        steps = h.running
        epoch = self._epoch(h.node)

        def step() -> None:
            if h.running is not steps or self._epoch(h.node) != epoch:
                return  # the process restarted or the pass was dropped meanwhile
            if not self.cluster.is_responsive(h.node):
                self.engine.schedule(50, step, "handler.wait-resume", h.node)  # paused: nothing runs
                return
            self._advance(h)

        self.engine.schedule(delay, step, "handler.step", h.node)

    def _epoch(self, node: str) -> int:
        n = self.cluster.node(node)
        return -1 if n is None else n.epoch

    def _advance(self, h: NodeHandler) -> None:
        assert h.running is not None
        if h.interrupt is not None:
            calls, action = h.interrupt
            if calls <= 0:
                h.interrupt = None
                if action is None:
                    self._kill(h)
                else:
                    action()
                    self._schedule_step(h, 0)  # runs on once the node can
                return
            h.interrupt = (calls - 1, action)
        self.current = h.node
        try:
            next(h.running)
        except StopIteration as done:
            self._finished(h, done.value)
            return
        except TagjoinError as exc:
            self.log(h.node, f"pass failed: {exc}")
            self._finished(h, None)
            return
        finally:
            self.current = None
            self.on_step(h.node)
        self._schedule_step(h, self._latency(h) + h.clock.take_debt())

    def _kill(self, h: NodeHandler) -> None:
        assert h.running is not None
        h.running.close()
        h.running = None
        h.dead_until = self.engine.now + self.config.restart_ms
        h.last_raft = None
        self.log(h.node, "handler crashed between two API calls")
        self.engine.schedule(self.config.restart_ms, lambda: self.poll(h.node), "handler.restart", h.node)

    def _finished(self, h: NodeHandler, result: object) -> None:
        h.running = None
        h.clock.take_debt()
        if isinstance(result, Report):
            h.reports.append(result)
            h.own = result.own or h.own
            h.last_pass_at = self.engine.now
            self.log(h.node, f"{result.decision.value}: {result.plan.reason}")
        elif isinstance(result, str):
            self.log(h.node, result)
        if h.pending:
            h.pending = False
            self.trigger(h.node, "queued trigger")
