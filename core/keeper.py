"""`tagjoin keep`: the long-running keeper that moves the tag when leadership moves.

A `nodes` watch does not fire when a server crashes (only its serfHealth check turns
critical), so the keeper watches three things: the local agent's raft state (cheap, local),
a blocking query on critical health checks (crashes), and a periodic anti-entropy pass.

The loop is a generator that yields a `Checkpoint` before every API call, like the handoff pass
it runs: production drives it straight through (`run`), the simulator resumes it one call at a
time in virtual time, so the loop a simulated server runs is this one, not a copy.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

from tagjoin.core.aws.tag_store import TagStore
from tagjoin.core.clock import Clock
from tagjoin.core.consul.client import ConsulClient, health_state_path, next_index, query_target
from tagjoin.core.errors import AclDenied, ConsulError, Ec2Error
from tagjoin.core.handoff import AGENT_SELF, Checkpoint, Decision, Report, handoff_pass
from tagjoin.core.model import AgentSelf, Instance
from tagjoin.core.pass_lock import PassLock

log = logging.getLogger(__name__)

KeepSteps = Generator[Checkpoint, None, None]
_LOOK_AGAIN = (Decision.UNCONFIRMED, Decision.SUPERSEDED, Decision.BUSY)


@dataclass(frozen=True)
class KeepConfig:
    # A leader change shows only in the local raft state (an election commits no catalog change),
    # so this cheap local poll bounds how long a new leader goes untagged.
    interval: float = 1.0  # longest wait of the health blocking query, and so of one loop
    anti_entropy: float = 60.0  # a pass at least this often, whatever happened
    # EC2's reads are eventually consistent ("Eventual consistency in the Amazon EC2 API", AWS EC2
    # API reference): a pass right after a change can read an EC2 that does not show it yet (an
    # instance just started again, with an old tag). One more pass this long after a pass that a
    # change triggered, instead of waiting for anti-entropy; 0 turns it off.
    settle: float = 10.0
    error_backoff: float = 5.0  # when the local agent itself does not answer; first wait after EC2 fails a pass
    max_backoff: float = 60.0  # the longest wait between passes that keep failing
    # A failure that repeats is logged once, then summed up after summary_first, twice that, …
    summary_first: float = 60.0
    summary_max: float = 3600.0
    # A stale read is answered by the local server from its own state. A default read goes to
    # the leader, and while there is none Consul holds it for up to rpc_hold_timeout (7 s), which
    # would hold the next look at the raft state — the one that names the new leader — with it.
    health_consistency: str | None = "stale"


class Keeper:
    def __init__(
        self,
        consul: ConsulClient,
        store: TagStore,
        clock: Clock,
        config: KeepConfig,
        *,
        instance_id: str | None = None,
        lock: PassLock | None = None,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] = log,
        rng: random.Random | None = None,
    ) -> None:
        self.consul = consul
        self.store = store
        self.clock = clock
        self.config = config
        self.instance_id = instance_id
        self.lock = lock
        self.log = logger
        self.passes: list[Report] = []
        self.in_pass = False  # between the first and the last call of a handoff pass
        self._health_index = 0
        self._raft: tuple[str, int] | None = None
        self._last_pass: float | None = None
        self._settle_at: float | None = None  # a look again after a change-triggered pass, due then
        self._own: Instance | None = None
        # Jitter draws from the store's injected stream unless told otherwise: seeded in the simulator.
        self.rng = rng if rng is not None else store.rng
        self._failed_passes = 0
        self._retry_at: float | None = None  # while passes fail: no pass before then, unless the raft state moves
        self._agent_down = _Repeats(logger, clock, config)
        self._pass_failures = _Repeats(logger, clock, config)
        self._health_failures = _Repeats(logger, clock, config)

    def run(self, should_stop: Callable[[], bool], max_iterations: int | None = None) -> None:
        done = 0
        while not should_stop() and (max_iterations is None or done < max_iterations):
            self.tick()
            done += 1

    def tick(self) -> None:
        """One loop back to back, as production runs it: the calls themselves block."""
        for _ in self.steps():
            pass

    def loop(self, should_stop: Callable[[], bool]) -> KeepSteps:
        """The whole keeper as one resumable generator, for a driver that steps it."""
        while not should_stop():
            yield from self.steps()

    def steps(self) -> KeepSteps:
        """One loop: wait for a health change (at most `interval`), look at the raft state, maybe pass."""
        try:
            _, reasons = yield from self._triggers()
        except ConsulError as exc:
            # The local agent itself does not answer (restarting, cut off): nothing to look at. Its
            # answer is what the keeper waits for, so the wait stays short; only the log slows down.
            wait = self._jittered(self.config.error_backoff)
            self._agent_down.failed(str(exc), wait)
            self.clock.sleep(wait)
            return
        self._agent_down.recovered()
        if not reasons:
            return
        try:
            report = yield from self._pass(reasons)
        except ConsulError as exc:
            # Transient by nature (an election, a new leader's barrier): the first retry comes one
            # interval later, not a whole backoff.
            self._pass_failed(f"pass failed: {exc}", self.config.interval)
        except Ec2Error as exc:
            self._pass_failed(f"pass failed: {exc}", self.config.error_backoff)  # the store has retried already
        else:
            self._failed_passes, self._retry_at = 0, None
            self._pass_failures.recovered()
            if report.decision in _LOOK_AGAIN:
                self._raft = None  # not proven yet, changed meanwhile or another pass busy: look again next loop

    def _triggers(self) -> Generator[Checkpoint, None, tuple[AgentSelf, list[str]]]:
        reasons: list[str] = []
        health_failed: ConsulError | None = None
        wait = self.config.interval
        mode = self.config.health_consistency
        target = query_target(health_state_path("critical"), consistency=mode, index=self._health_index, wait=wait)
        yield Checkpoint("consul:health/state/critical", target)
        try:
            health = self.consul.health_state("critical", index=self._health_index, wait=wait, consistency=mode)
        except ConsulError as exc:
            # During an election this query fails at once ("No cluster leader"). The raft state is
            # still readable and is what names the new leader, so look at it now rather than after
            # a whole error backoff.
            health_failed = exc
        else:
            index = next_index(self._health_index, health.index)
            if self._health_index and index != self._health_index:
                reasons.append("health changed")
            self._health_index = index
        yield Checkpoint("consul:agent/self", AGENT_SELF)
        me = self.consul.agent_self()
        raft = (me.raft_state, me.term)
        raft_moved = raft != self._raft
        if raft_moved:
            reasons.append(f"raft {me.raft_state or 'client'} term {me.term}")
            self._raft = raft
        now = self.clock.monotonic()
        if not me.is_leader:
            reasons = []
            self._failed_passes, self._retry_at = 0, None  # a follower has nothing to retry
            self._settle_at = None
        elif self._last_pass is None or now - self._last_pass >= self.config.anti_entropy:
            reasons.append("anti-entropy")
        elif self._settle_at is not None and now >= self._settle_at:
            reasons.append("settle after a change")
        if self._retry_at is not None and not raft_moved:
            # Backing off after failed passes: only a new raft state is worth a pass before the
            # retry is due; health changes and anti-entropy wait for it.
            due = now >= self._retry_at
            reasons = [f"retry after {_plural(self._failed_passes, 'failed pass')}"] if due else []
        if health_failed is None:
            self._health_failures.recovered()
        else:
            # An election fails it for a moment (debug); a token without node:read fails it for good.
            level = logging.WARNING if isinstance(health_failed, AclDenied) else logging.DEBUG
            self._health_failures.failed(f"health query failed: {health_failed}", wait, level=level)
            if not reasons:
                self.clock.sleep(wait)  # the query did not wait; keep the loop to one look per interval
        return me, reasons

    def _pass_failed(self, message: str, first_wait: float) -> None:
        """Schedule the retry of a failed pass: `first_wait`, doubling with each failure, jittered."""
        self._failed_passes += 1
        doubling = 2 ** min(self._failed_passes - 1, 16)
        wait = self._jittered(min(self.config.max_backoff, first_wait * doubling))
        self._retry_at = self.clock.monotonic() + wait
        self._pass_failures.failed(message, wait)

    def _jittered(self, wait: float) -> float:
        """Between half and all of `wait`: keepers that failed together do not retry together."""
        return wait * self.rng.uniform(0.5, 1.0)

    def _pass(self, reasons: list[str]) -> Generator[Checkpoint, None, Report]:
        self.in_pass = True
        try:
            report = yield from handoff_pass(
                self.consul, self.store, self.clock, instance_id=self.instance_id, known_own=self._own, lock=self.lock
            )
        finally:
            self.in_pass = False
        self._own = report.own or self._own
        self._last_pass = self.clock.monotonic()
        # Anti-entropy and settle passes are the looks again themselves; any other reason is a change.
        changed = any(r not in ("anti-entropy", "settle after a change") for r in reasons)
        self._settle_at = self._last_pass + self.config.settle if changed and self.config.settle > 0 else None
        self.passes.append(report)
        self.log.info("%s → %s", ", ".join(reasons), report.summary().splitlines()[0])
        return report


@dataclass
class _Count:
    times: int
    since: float
    next_summary: float
    gap: float


@dataclass
class _Repeats:
    """Says a failure once, then how often it repeated at a slowing rate, then that it ended.

    An agent that is down for ten minutes makes one warning, a few summaries and one recovery
    line, not a line every few seconds.
    """

    log: logging.Logger | logging.LoggerAdapter[logging.Logger]
    clock: Clock
    config: KeepConfig
    seen: dict[str, _Count] = field(default_factory=dict)
    level: int = logging.WARNING

    def failed(self, message: str, retry_in: float, *, level: int = logging.WARNING) -> None:
        now = self.clock.monotonic()
        self.level = level
        count = self.seen.get(message)
        if count is None:
            first = self.config.summary_first
            self.seen[message] = _Count(1, now, now + first, first)
            self.log.log(level, "%s; retrying in %.1fs", message, retry_in)
            return
        count.times += 1
        if now >= count.next_summary:
            self.log.log(level, "still failing (%d times in %s): %s", count.times, _span(now - count.since), message)
            count.gap = min(count.gap * 2, self.config.summary_max)
            count.next_summary = now + count.gap

    def recovered(self) -> None:
        if not self.seen:
            return
        now = self.clock.monotonic()
        times = sum(c.times for c in self.seen.values())
        since = min(c.since for c in self.seen.values())
        self.seen.clear()
        # The operator who saw the warning learns that it is over; a debug-level blip stays at debug.
        level = logging.INFO if self.level >= logging.WARNING else logging.DEBUG
        self.log.log(level, "recovered after %s in %s", _plural(times, "failure"), _span(now - since))


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}es" if noun.endswith("s") else f"{n} {noun}s"
