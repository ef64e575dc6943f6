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
from functools import partial
from typing import Any

from tagjoin.core.aws.ec2_api import Ec2Api
from tagjoin.core.aws.tag_store import TagStore
from tagjoin.core.consul.client import ConsulClient
from tagjoin.core.consul.settings import ConsulSettings
from tagjoin.core.errors import TagjoinError
from tagjoin.core.handoff import Checkpoint, Report
from tagjoin.core.keeper import KeepConfig, Keeper
from tagjoin.core.settings import Scope
from tagjoin.core.watch_handler import handle_event
from tagjoin.sim.consul.cluster import Cluster
from tagjoin.sim.consul.http_api import AgentApi, AgentUnavailable, ApiRequest, Block, HeldRequest
from tagjoin.sim.consul.in_process import InProcessHttp
from tagjoin.sim.harness.consul_watch import WatchExit, consul_watch
from tagjoin.sim.harness.naive_strategy import naive_pass
from tagjoin.sim.kernel.engine import Engine, SimClock, Timer

Steps = Generator[Checkpoint, None, Any]

# `_held_for`: the agent holds the call until something in the cluster changes (or its deadline).
UNTIL_CHANGE = -1


@dataclass(slots=True)
class HeldCall:
    """One Consul call of a handler while its agent holds it (`TagProcesses._hold`)."""

    handler: NodeHandler
    req: ApiRequest
    held: HeldRequest
    steps: Steps | None  # the handler's run this call belongs to; a restarted handler's call is void
    deadline: int | None = None  # the client gives up then (a blocking wait, or its read timeout)
    next_look: Timer | None = None  # at most one timed look is due
    stop_waiting: Callable[[], None] | None = None  # registered for the next change in the cluster
    over: bool = False  # the call was made: later wake-ups are for a call that no longer waits


# A stall placed here hits a pass that has already passed its last look: what a slow CreateTags,
# retried after throttling, does to a pass, and the window the node's handoff lock exists for.
BEFORE_WRITE = -1
_WRITES = ("ec2:CreateTags", "ec2:DeleteTags")


@dataclass
class Stall:
    """The process alone stops for `ms` before a call of a pass (CPU starvation, a slow disk, a
    retried request): after `calls` more calls, or at the first tag write (BEFORE_WRITE)."""

    calls: int
    ms: int
    on_taken: Callable[[], None] | None = None  # the fault's span starts when the stall does
    one_pass: bool = False  # lapses with the pass it fell into, rather than waiting for a later one

    def due(self, pending: str) -> bool:
        return pending.startswith(_WRITES) if self.calls == BEFORE_WRITE else self.calls <= 0


# ConsulClient's own timeout (ConsulSettings.timeout): a query to a stopped agent fails after it.
CLIENT_TIMEOUT_S = 5.0


@dataclass
class HandlerConfig:
    strategy: str  # fenced / naive
    scope: Scope
    latency_ms: tuple[int, int] = (2, 20)
    keep_interval_ms: int = 1_000  # `tagjoin keep --interval`
    anti_entropy_ms: int = 60_000  # `tagjoin keep --anti-entropy`
    health_consistency: str | None = "stale"  # the keeper's trigger query (KeepConfig)
    restart_ms: int = 5_000  # systemd's RestartSec for a killed keeper
    max_attempts: int = 4
    # How ConsulClient's requests reach the agent: "in-process" answers `request()` from the agent
    # API directly (tagjoin.sim.consul.in_process, sweeps); "httpx" through httpx's client and the
    # agent's transport (the reference path). The same seed gives the same trace on either.
    consul_http: str = "in-process"


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
    running: Steps | None = None  # the keeper's loop, or the `consul watch` process
    in_handler: bool = False  # the watch is running its handler (a pass), not waiting on its query
    dead_until: int = -1  # killed by a handler-crash fault until then
    interrupt: tuple[int, Callable[[], None] | None] | None = None  # (calls left, action; None = kill)
    stall: Stall | None = None
    pending: str = ""  # the call its last checkpoint announced, made at its next step
    reports: list[Report] = field(default_factory=list)
    machine: str = ""  # the node it runs on, when a second process there is keyed "<node>/<what>"
    pass_started: int | None = None  # when its current handoff pass began (C1 judges its EC2 calls)
    pass_calls: int = 0  # EC2 request attempts of that pass
    interrupt_one_pass: bool = False  # the interrupt lapses when the pass it fell into ends short of it

    @property
    def host(self) -> str:
        return self.machine or self.node

    @property
    def in_pass(self) -> bool:
        return self.running is not None and (self.keeper.in_pass if self.keeper is not None else self.in_handler)


class HandlerFleet:
    """Owns every node's tag process and steps it in virtual time."""

    def __init__(
        self,
        cluster: Cluster,
        api: AgentApi,
        ec2: Ec2Api,
        config: HandlerConfig,
        *,
        on_step: Callable[[str], None],
        log: Callable[[str, str], None],
    ) -> None:
        self.cluster = cluster
        self.engine: Engine = cluster.engine
        self.api = api
        self.ec2 = ec2  # every node's EC2 API: one simulated account, its calls told apart by `current`
        self.config = config
        self.on_step = on_step  # called after each API call, e.g. to sample the tags
        self.log = log
        self.handlers: dict[str, NodeHandler] = {}
        self._locks: dict[str, int] = {}  # node → the owner holding its handoff lock
        self._owners: dict[str, int] = {}
        self.current: str | None = None  # whose call is in flight, for EC2 call attribution
        self.current_process: NodeHandler | None = None  # the process making it

    def store_for(self, node: str, clock: SimClock | None = None) -> TagStore:
        """A TagStore on the shared EC2 API, as `node` builds it (with its own backoff stream)."""
        return TagStore(
            self.ec2,
            self.config.scope,
            clock=clock or SimClock(self.engine),
            rng=self.engine.streams.get("handler.backoff", node),
            max_attempts=self.config.max_attempts,
        )

    def add(self, node: str, *, key: str | None = None) -> NodeHandler:
        """The tag process of `node`; with `key` (e.g. "<node>/watch") a further one on the same node."""
        name = key or node
        clock = SimClock(self.engine)
        settings = ConsulSettings(address=f"{node}.agent:8500", timeout=CLIENT_TIMEOUT_S)
        http = InProcessHttp(self.api, node, settings) if self.config.consul_http == "in-process" else None
        consul = ConsulClient(settings, transport=self.api.transport_for(node), http=http)
        store = self.store_for(name, clock)
        handler = NodeHandler(name, consul, store, clock, self.engine.streams.get("handler.latency", name))
        handler.machine = node
        self.handlers[name] = handler
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
            KeepConfig(
                interval=self.config.keep_interval_ms / 1000,
                anti_entropy=self.config.anti_entropy_ms / 1000,
                health_consistency=self.config.health_consistency,
            ),
            lock=self._lock(h.host),
            logger=_NodeLog(node, self.log),
        )
        h.keeper = keeper
        h.running = keeper.loop(lambda: False)
        self._schedule_step(h, after_ms)

    # `consul watch` running a handler (the watch and naive strategies) ---------------------------

    def start_watch(self, node: str, *, after_ms: int = 0) -> None:
        """`consul watch` starts on `node` under systemd: a `checks` watch running `tagjoin
        watch-handler` (watch strategy), or a `nodes` watch running the naive handler."""
        h = self.handlers.get(node)
        if h is None:
            return
        self._close(h)
        kind = "nodes" if self.config.strategy == "naive" else "checks"
        h.running = consul_watch(
            self.api, h.host, kind, h.clock, lambda payload, index: self._handler_run(h, payload, index)
        )
        self._schedule_step(h, after_ms)

    def _handler_run(self, h: NodeHandler, payload: str, index: str) -> Generator[Checkpoint, None, int]:
        """One run of the watch's child process; its exit status decides whether `consul watch` goes on."""
        h.in_handler = True
        try:
            if self.config.strategy == "naive":
                try:
                    what = yield from naive_pass(h.consul, h.store)
                except TagjoinError as exc:
                    self.log(h.node, f"naive handler failed: {exc}")
                    return 1  # the shell handler stops at its first failed command
                self.log(h.node, f"naive: {what}")
                return 0
            run = yield from handle_event(payload, index, h.consul, h.store, h.clock, lock=self._lock(h.host))
            for line in (*run.stderr, *run.stdout):
                self.log(h.node, line)
            if run.report is not None:
                h.reports.append(run.report)
            return run.exit_code
        finally:
            h.in_handler = False

    def _lock(self, node: str) -> SimPassLock:
        """The node's handoff lock, shared by every tag process on it (a file every process opens)."""
        self._owners[node] = self._owners.get(node, 0) + 1
        return SimPassLock(self._locks, node, self._owners[node])

    # faults --------------------------------------------------------------------------------------

    def interrupt_next_pass(
        self, node: str, after_calls: int, action: Callable[[], None] | None = None, *, one_pass: bool = False
    ) -> None:
        """Between two API calls of the node's next pass: kill the process (None) or run `action`,
        e.g. a stop-the-world pause of the node. With `one_pass`, a pass that ends before its
        `after_calls`-th call takes the interrupt with it, rather than leaving it to a pass much later."""
        h = self.handlers.get(node)
        if h is not None:
            h.interrupt = (after_calls, action)
            h.interrupt_one_pass = one_pass

    def stall_next_pass(
        self,
        key: str,
        after_calls: int,
        stall_ms: int,
        *,
        on_taken: Callable[[], None] | None = None,
        one_pass: bool = False,
    ) -> None:
        """Between two API calls of the process's next pass, it alone stalls for `stall_ms`; its agent
        and the rest of the node go on. `after_calls` may be BEFORE_WRITE (see Stall)."""
        h = self.handlers.get(key)
        if h is not None:
            h.stall = Stall(after_calls, stall_ms, on_taken, one_pass)

    def stop(self, node: str) -> None:
        """The node's agent died with the machine or its unit: every tag process on it dies too."""
        for h in list(self.handlers.values()):
            if h.host == node:
                self._close(h)

    def _close(self, h: NodeHandler) -> None:
        if h.running is not None:
            h.running.close()
        h.running = None
        h.keeper = None
        h.in_handler = False

    # stepping ------------------------------------------------------------------------------------

    def _latency(self, h: NodeHandler) -> int:
        lo, hi = self.config.latency_ms
        return lo + h.rng.randrange(hi - lo + 1)  # randint(lo, hi): the same draw, a call less

    def _schedule_step(self, h: NodeHandler, delay: int) -> None:
        steps = h.running
        epoch = self._epoch(h.host)

        def step() -> None:
            if h.running is not steps or self._epoch(h.host) != epoch:
                return  # the process restarted or the run was dropped meanwhile
            if not self._runs(h.host):
                self.engine.schedule(50, step, "handler.wait-resume", h.node)  # paused: nothing runs
                return
            self._advance(h)

        self.engine.schedule(delay, step, "handler.step", h.node)

    def _runs(self, node: str) -> bool:
        """The node's processes run: its agent is responsive, or only the agent is paused (its
        calls then hang until the client's timeout)."""
        n = self.cluster.node(node)
        return n is not None and n.up and (not n.paused or n.paused_alone)

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
        stall = h.stall
        if stall is not None and h.in_pass:
            if stall.due(h.pending):
                h.stall = None
                self.log(h.node, f"process stalls mid-pass for {stall.ms} ms")
                if stall.on_taken is not None:
                    stall.on_taken()
                self._schedule_step(h, stall.ms)
                return
            if stall.calls != BEFORE_WRITE:
                stall.calls -= 1
        self.current, self.current_process = h.host, h
        passes = len(h.keeper.passes) if h.keeper is not None else 0
        entering = not h.in_pass
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
            self.current, self.current_process = None, None
            self.on_step(h.node)
        # A pass makes no call before its first checkpoint, so it counts from the step that entered it.
        if not h.in_pass:
            if not entering and h.interrupt_one_pass:
                h.interrupt, h.interrupt_one_pass = None, False
            if not entering and h.stall is not None and h.stall.one_pass:
                h.stall = None
            h.pass_started = None
        elif entering:
            h.pass_started, h.pass_calls = self.engine.now, 0
        if h.keeper is not None and len(h.keeper.passes) > passes:
            h.reports.append(h.keeper.passes[-1])
        h.pending = checkpoint.call
        delay = self._latency(h) + h.clock.take_debt()
        if checkpoint.consul is not None:
            self._hold(h, ApiRequest.build("GET", checkpoint.consul), delay)
        else:
            self._schedule_step(h, delay)

    def _hold(self, h: NodeHandler, req: ApiRequest, delay: int) -> None:
        """Let the next Consul call happen only when its agent would answer it.

        The call arrives after `delay`; from then on the agent may hold it — a blocking query until
        its index moves or its wait (plus jitter) ends, a leader-bound read while there is no
        leader or the leader cannot prove its quorum (`AgentApi.hold`), every call while the agent
        is paused, until the client's read timeout. The call is made when the hold ends, and
        answers from the agent's state at that moment, as the real one would. A blocked query or
        a paused agent is looked at again when the cluster changes (`ChangeWaiters`) or at the
        deadline; a leader-bound read at the retry its hold names.
        """
        call = HeldCall(h, req, HeldRequest(since=self.engine.now + delay), h.running)
        self.engine.schedule(delay, partial(self._look, call), "handler.hold", h.node)

    def _look(self, call: HeldCall, *, timed: bool = True) -> None:
        """Look again at a held call: make it now, or wait for a change or its next timed look.

        A timed look (an event of its own) that finds the call answered makes it there and then; a
        look woken by a change makes it in an event of its own, after every other waiter has looked.
        """
        if call.handler.running is not call.steps or call.over:
            return
        now = self.engine.now
        if call.deadline is not None and now >= call.deadline:
            self._answer(call, timed)
            return
        retry = self._held_for(call)
        if retry is None:
            self._answer(call, timed)
            return
        if retry == UNTIL_CHANGE:
            if call.stop_waiting is None:
                call.stop_waiting = self.cluster.held.wait(partial(self._woken, call))
            assert call.deadline is not None  # a wait until a change always has an end
            until = call.deadline
        else:
            until = min(now + retry, call.deadline) if call.deadline is not None else now + retry
        until = max(until, now + 1)
        due = call.next_look
        if due is not None and not due.cancelled and due.t == until:
            return  # woken early, still held: the timed look already due stands
        if due is not None:
            due.cancel()
        call.next_look = self.engine.schedule(until - now, partial(self._look, call), "handler.hold", call.handler.node)

    def _woken(self, call: HeldCall) -> None:
        call.stop_waiting = None  # a change wakes a waiter once
        self._look(call, timed=False)

    def _answer(self, call: HeldCall, at_once: bool) -> None:
        call.over = True
        if call.stop_waiting is not None:
            call.stop_waiting()
        if call.next_look is not None:
            call.next_look.cancel()
        # The look's timer holds the call: left as they were, the two would wait for the collector.
        call.stop_waiting = call.next_look = None
        h = call.handler
        if at_once and self._runs(h.host):
            self._advance(h)  # as the step `_schedule_step` would run, less an event of its own
        else:
            self._schedule_step(h, 0)

    def _held_for(self, call: HeldCall) -> int | None:
        """How long until the agent should be asked again about the call, or None if it answers now."""
        now = self.engine.now
        node, req, held = call.handler.host, call.req, call.held
        index, wait_ms = self.api.blocking_params(req)
        try:
            hold = self.api.hold(node, req, held)
            if hold is not None:
                return hold.retry_ms
            if held.outcome is not None or index <= 0:
                return None
            # Looks after the first only ask whether it still blocks: its wait was drawn once.
            jitter = call.deadline is None
            quick = self.api.poll_blocked(node, req, jitter=jitter)  # known without rendering an answer
            result = self.api.handle(node, req, may_block=True, jitter=jitter) if quick is True else quick
        except AgentUnavailable as exc:
            if exc.refused:
                return None  # the call fails at once: connection refused
            if call.deadline is None:  # paused: the request waits in the socket until the client times out
                held_ms = wait_ms + wait_ms // 16 if index > 0 else 0  # ConsulClient's read timeout
                call.deadline = now + held_ms + round(CLIENT_TIMEOUT_S * 1000)
            return UNTIL_CHANGE
        if not isinstance(result, Block):
            return None
        if call.deadline is None:
            call.deadline = now + result.wait_ms
        return UNTIL_CHANGE

    def _kill(self, h: NodeHandler) -> None:
        was_keeper = h.keeper is not None
        self._close(h)
        h.dead_until = self.engine.now + self.config.restart_ms
        self.log(h.node, "handler crashed between two API calls")
        # systemd's Restart=always: the keeper itself, or the `consul watch` whose child died
        # (it exits 1 when its handler fails).
        if was_keeper:
            self.start_keeper(h.node, after_ms=self.config.restart_ms)
        else:
            self.start_watch(h.node, after_ms=self.config.restart_ms)

    def _finished(self, h: NodeHandler, result: object) -> None:
        h.running = None
        h.clock.take_debt()
        if isinstance(result, WatchExit):
            self.log(h.node, f"consul watch exited {result.code}: {result.reason}")
            self.start_watch(h.node, after_ms=self.config.restart_ms)  # systemd's Restart=always


class SimPassLock:
    """core's PassLock for one simulated process: the node's lock table stands in for its lock
    file. Like flock, a dead process releases it: closing the process's generator runs the
    pass's `finally`, which releases."""

    def __init__(self, table: dict[str, int], node: str, owner: int) -> None:
        self._table = table
        self._node = node
        self._owner = owner

    def try_acquire(self) -> bool:
        if self._node in self._table:
            return False
        self._table[self._node] = self._owner
        return True

    def release(self) -> None:
        if self._table.get(self._node) == self._owner:
            del self._table[self._node]
