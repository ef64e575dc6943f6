"""`tagjoin keep`: the long-running keeper that moves the tag when leadership moves.

A `nodes` watch does not fire when a server crashes (only its serfHealth check turns
critical), so the keeper watches three things: the local agent's raft state (cheap, local),
a blocking query on critical health checks (crashes), and a periodic anti-entropy pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tagjoin.core.aws.tag_store import TagStore
from tagjoin.core.clock import Clock
from tagjoin.core.consul.client import ConsulClient, next_index
from tagjoin.core.errors import ConsulError, Ec2Error
from tagjoin.core.handoff import Report, run_pass
from tagjoin.core.model import Instance


@dataclass(frozen=True)
class KeepConfig:
    # A leader change shows only in the local raft state (an election commits no catalog change),
    # so this cheap local poll bounds how long a new leader goes untagged.
    interval: float = 1.0  # longest wait of the health blocking query, and so of one loop
    anti_entropy: float = 60.0  # a pass at least this often, whatever happened
    error_backoff: float = 5.0


class Keeper:
    def __init__(
        self,
        consul: ConsulClient,
        store: TagStore,
        clock: Clock,
        config: KeepConfig,
        *,
        instance_id: str | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.consul = consul
        self.store = store
        self.clock = clock
        self.config = config
        self.instance_id = instance_id
        self.log = log
        self.passes: list[Report] = []
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
        """One loop: wait for a health change (at most `interval`), then decide whether to pass."""
        try:
            reasons = self._triggers()
            if reasons:
                self._pass(reasons)
        except (ConsulError, Ec2Error) as exc:
            # Transient by nature (leader election, throttling, agent restart): keep going.
            self.log(f"keep: {exc}; retrying in {self.config.error_backoff:g}s")
            self.clock.sleep(self.config.error_backoff)

    def _triggers(self) -> list[str]:
        reasons: list[str] = []
        health = self.consul.health_state("critical", index=self._health_index, wait=self.config.interval)
        index = next_index(self._health_index, health.index)
        if self._health_index and index != self._health_index:
            reasons.append("health changed")
        self._health_index = index
        me = self.consul.agent_self()
        raft = (me.raft_state, me.term)
        if raft != self._raft:
            reasons.append(f"raft {me.raft_state or 'client'} term {me.term}")
            self._raft = raft
        if not me.is_leader:
            return []
        if self._last_pass is None or self.clock.monotonic() - self._last_pass >= self.config.anti_entropy:
            reasons.append("anti-entropy")
        return reasons

    def _pass(self, reasons: list[str]) -> None:
        report = run_pass(self.consul, self.store, self.clock, instance_id=self.instance_id, known_own=self._own)
        self._own = report.own or self._own
        self._last_pass = self.clock.monotonic()
        self.passes.append(report)
        self.log(f"keep: {', '.join(reasons)} → {report.summary().splitlines()[0]}")
