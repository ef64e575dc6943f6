"""The tag processes running on simulated nodes, stepped one API call at a time in virtual time.

A fenced server runs `tagjoin.core.keeper.Keeper` itself — the production loop, blocking health
query, raft-state look, error handling and handoff pass included — and the naive strategy runs
`tagjoin.sim.harness.naive_strategy.naive_pass` when its `nodes` watch fires. Both talk to the
node's own simulated agent through core's ConsulClient and to EC2 through core's TagStore.

Every production loop here is a generator that yields a `Checkpoint` before each API call. The
driver waits a latency drawn from the node's stream before letting the call happen (plus whatever
the process slept on its SimClock), so pauses, crashes and other nodes' calls fall in between. A
checkpoint that announces a blocking query (`WaitFor`) is held in virtual time until the agent
would answer it — its index moved past the caller's, or the wait (plus Consul's jitter) ran out —
exactly as the query blocks against `sim serve` over real HTTP.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Generator, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tagjoin.core.aws.boto_ec2 import BotoEc2
from tagjoin.core.aws.tag_store import TagStore
from tagjoin.core.consul.client import ConsulClient
from tagjoin.core.consul.settings import ConsulSettings
from tagjoin.core.errors import TagjoinError
from tagjoin.core.handoff import Checkpoint, Report, WaitFor
from tagjoin.core.keeper import KeepConfig, Keeper
from tagjoin.core.settings import Scope
from tagjoin.sim.consul.http_api import AgentUnavailable, ApiRequest, Block
from tagjoin.sim.harness.naive_strategy import naive_pass
from tagjoin.sim.kernel.engine import Engine, SimClock

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

    from tagjoin.sim.consul.cluster import Cluster
    from tagjoin.sim.consul.http_api import AgentApi

Steps = Generator[Checkpoint, None, Any]

# How often a held blocking query looks whether its agent would answer now. Changes land between
# two looks; a finer grain costs simulator time without changing what a keeper decides.
HOLD_POLL_MS = 100
# ConsulClient's own timeout (ConsulSettings.timeout): a query to a stopped agent fails after it.
CLIENT_TIMEOUT_S = 5.0


@dataclass
class HandlerConfig:
    strategy: str  # fenced / naive
    scope: Scope
    latency_ms: tuple[int, int] = (2, 20)
    keep_interval_ms: int = 1_000  # `tagjoin keep --interval`
    anti_entropy_ms: int = 60_000  # `tagjoin keep --anti-entropy`
    restart_ms: int = 5_000  # systemd's RestartSec for a killed keeper
    max_attempts: int = 4


class _NodeLog(logging.LoggerAdapter[logging.Logger]):
    """The keeper's log lines, into the scenario's trace instead of the process's stderr."""

    def __init__(self, node: str, sink: Callable[[str, str], None]) -> None:
        super().__init__(logging.getLogger("tagjoin.sim.keeper"), {})
        self._node = node
        self._sink = sink

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if level >= logging.INFO:
            self._sink(self._node, f"keep: {str(msg) % args if args else msg}")

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return msg, kwargs


@dataclass
class NodeHandler:
    """What runs on one node: the keeper (fenced) or the `nodes` watch handler (naive)."""

    node: str
    consul: ConsulClient
    store: TagStore
    clock: SimClock
    rng: random.Random
    keeper: Keeper | None = None
    running: Steps | None = None  # the keeper's loop, or the naive handler's current run
    pending: bool = False  # naive: a watch fired while the handler ran: run again after it
    dead_until: int = -1  # killed by a handler-crash fault until then
    interrupt: tuple[int, Callable[[], None] | None] | None = None  # (calls left, action; None = kill)
    reports: list[Report] = field(default_factory=list)

    @property
    def in_pass(self) -> bool:
        return self.running is not None and (self.keeper is None or self.keeper.in_pass)


class HandlerFleet:
    """Owns every node's tag process and steps it in virtual time."""

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
            ConsulSettings(address=f"{node}.agent:8500", timeout=CLIENT_TIMEOUT_S),
            transport=self.api.transport_for(node),
        )
        store = self.store_for(node, clock)
        handler = NodeHandler(node, consul, store, clock, self.engine.streams.get("handler.latency", node))
        self.handlers[node] = handler
        return handler

    # the fenced keeper ---------------------------------------------------------------------------

    def start_keeper(self, node: str, *, after_ms: int = 0) -> None:
        """`tagjoin keep` starts on `node` (a new process: nothing remembered from an earlier one)."""
        h = self.handlers.get(node)
        if h is None:
            return
        self._close(h)
        keeper = Keeper(
            h.consul,
            h.store,
            h.clock,
            KeepConfig(interval=self.config.keep_interval_ms / 1000, anti_entropy=self.config.anti_entropy_ms / 1000),
            logger=_NodeLog(node, self.log),
        )
        h.keeper = keeper
        h.running = keeper.loop(lambda: False)
        self._schedule_step(h, after_ms)

    # the naive watch handler ---------------------------------------------------------------------

    def trigger(self, node: str, reason: str) -> None:
        """The naive handler's `nodes` watch fired on `node`."""
        h = self.handlers.get(node)
        if h is None or h.keeper is not None or not self.cluster.is_up(node) or self.engine.now < h.dead_until:
            return
        if h.running is not None:
            h.pending = True
            return
        self.log(node, f"pass ({reason})")
        h.running = naive_pass(h.consul, h.store)
        next(h.running)  # up to its first checkpoint: no call made yet
        self._schedule_step(h, self._latency(h))

    # faults --------------------------------------------------------------------------------------

    def interrupt_next_pass(self, node: str, after_calls: int, action: Callable[[], None] | None = None) -> None:
        """Between two API calls of the node's next pass: kill the process (None) or run `action`,
        e.g. a stop-the-world pause of the node."""
        h = self.handlers.get(node)
        if h is not None:
            h.interrupt = (after_calls, action)

    def stop(self, node: str) -> None:
        """The node's process died: whatever it was doing dies with it."""
        h = self.handlers.get(node)
        if h is not None:
            self._close(h)

    def _close(self, h: NodeHandler) -> None:
        if h.running is not None:
            h.running.close()
        h.running = None
        h.keeper = None
        h.pending = False

    # stepping ------------------------------------------------------------------------------------

    def _latency(self, h: NodeHandler) -> int:
        lo, hi = self.config.latency_ms
        return h.rng.randint(lo, hi)

    def _schedule_step(self, h: NodeHandler, delay: int) -> None:
        steps = h.running
        epoch = self._epoch(h.node)

        def step() -> None:
            if h.running is not steps or self._epoch(h.node) != epoch:
                return  # the process restarted or the run was dropped meanwhile
            if not self.cluster.is_responsive(h.node):
                self.engine.schedule(50, step, "handler.wait-resume", h.node)  # paused: nothing runs
                return
            self._advance(h)

        self.engine.schedule(delay, step, "handler.step", h.node)

    def _epoch(self, node: str) -> int:
        n = self.cluster.node(node)
        return -1 if n is None else n.epoch

    def _advance(self, h: NodeHandler) -> None:
        """Make the call the last checkpoint announced, and run on to the next checkpoint."""
        assert h.running is not None
        if h.interrupt is not None and h.in_pass:
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
        passes = len(h.keeper.passes) if h.keeper is not None else 0
        try:
            checkpoint = next(h.running)
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
        if h.keeper is not None and len(h.keeper.passes) > passes:
            h.reports.append(h.keeper.passes[-1])
        delay = self._latency(h) + h.clock.take_debt()
        if checkpoint.blocks is not None:
            self._hold(h, checkpoint.blocks, delay)
        else:
            self._schedule_step(h, delay)

    def _hold(self, h: NodeHandler, wait: WaitFor, delay: int) -> None:
        """Keep a blocking query waiting until its agent would answer it, as Consul holds it."""
        if wait.index <= 0:
            self._schedule_step(h, delay)  # no index: Consul answers at once
            return
        steps = h.running
        wait_ms = max(1, round(wait.wait_s * 1000))
        target = f"{wait.path}?index={wait.index}&wait={wait_ms}ms"
        first = self._would_block(h.node, target)
        if first is None:
            self._schedule_step(h, delay)
            return
        # A stopped agent never answers: the client's read timeout ends the wait (ConsulClient
        # allows wait + wait/16 + its own timeout).
        held = first if first > 0 else wait_ms + wait_ms // 16 + round(CLIENT_TIMEOUT_S * 1000)
        deadline = self.engine.now + delay + held

        def look() -> None:
            if h.running is not steps:
                return
            if self.engine.now >= deadline or self._would_block(h.node, target) is None:
                self._schedule_step(h, 0)
                return
            self.engine.schedule(min(HOLD_POLL_MS, deadline - self.engine.now), look, "handler.hold", h.node)

        self.engine.schedule(delay + min(HOLD_POLL_MS, held), look, "handler.hold", h.node)

    def _would_block(self, node: str, target: str) -> int | None:
        """How long agent `node` would hold `target` (ms; 0 if it cannot answer at all), or None if it answers now."""
        try:
            result = self.api.handle(node, ApiRequest.build("GET", target), may_block=True)
        except AgentUnavailable as exc:
            return None if exc.refused else 0
        return result.wait_ms if isinstance(result, Block) else None

    def _kill(self, h: NodeHandler) -> None:
        was_keeper = h.keeper is not None
        self._close(h)
        h.dead_until = self.engine.now + self.config.restart_ms
        self.log(h.node, "handler crashed between two API calls")
        if was_keeper:
            self.start_keeper(h.node, after_ms=self.config.restart_ms)  # systemd's Restart=always

    def _finished(self, h: NodeHandler, result: object) -> None:
        h.running = None
        h.clock.take_debt()
        if isinstance(result, str):
            self.log(h.node, result)
        if h.pending:
            h.pending = False
            self.trigger(h.node, "queued trigger")
