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
from collections.abc import Callable, Generator
from dataclasses import dataclass

from tagjoin.core.aws.tag_store import TagStore
from tagjoin.core.clock import Clock
from tagjoin.core.consul.client import ConsulClient, health_state_path, next_index
from tagjoin.core.errors import ConsulError, Ec2Error
from tagjoin.core.handoff import Checkpoint, Decision, Report, WaitFor, handoff_pass
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
    error_backoff: float = 5.0  # only when the local agent itself does not answer


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
        self._own: Instance | None = None

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
            # The local agent itself does not answer (restarting, cut off): nothing to look at.
            self.log.warning("%s; retrying in %gs", exc, self.config.error_backoff)
            self.clock.sleep(self.config.error_backoff)
            return
        if not reasons:
            return
        try:
            report = yield from self._pass(reasons)
        except ConsulError as exc:
            # Transient by nature (an election, a new leader's barrier): forget the raft state we
            # acted on so the next loop, one interval away and not a whole backoff, passes again.
            self._raft = None
            self.log.warning("pass failed: %s; again in %gs", exc, self.config.interval)
            self.clock.sleep(self.config.interval)
        except Ec2Error as exc:
            self._raft = None
            self.log.warning("pass failed: %s; again in %gs", exc, self.config.error_backoff)
            self.clock.sleep(self.config.error_backoff)  # the store has already retried within its budget
        else:
            if report.decision in _LOOK_AGAIN:
                self._raft = None  # not proven yet, changed meanwhile or another pass busy: look again next loop

    def _triggers(self) -> Generator[Checkpoint, None, tuple[AgentSelf, list[str]]]:
        reasons: list[str] = []
        health_failed: ConsulError | None = None
        wait = self.config.interval
        yield Checkpoint(
            "consul:health/state/critical", WaitFor(health_state_path("critical"), self._health_index, wait)
        )
        try:
            health = self.consul.health_state("critical", index=self._health_index, wait=wait)
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
        yield Checkpoint("consul:agent/self")
        me = self.consul.agent_self()
        raft = (me.raft_state, me.term)
        if raft != self._raft:
            reasons.append(f"raft {me.raft_state or 'client'} term {me.term}")
            self._raft = raft
        if not me.is_leader:
            reasons = []
        elif self._last_pass is None or self.clock.monotonic() - self._last_pass >= self.config.anti_entropy:
            reasons.append("anti-entropy")
        if health_failed is not None:
            self.log.debug("health query failed: %s", health_failed)
            if not reasons:
                self.clock.sleep(wait)  # the query did not wait; keep the loop to one look per interval
        return me, reasons

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
        self.passes.append(report)
        self.log.info("%s → %s", ", ".join(reasons), report.summary().splitlines()[0])
        return report
