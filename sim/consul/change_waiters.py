"""Held blocking queries wake when the cluster changes, not on a poll.

Consul's `blockingQuery` (agent/consul/rpc.go) runs the query, and if the index has not moved it
waits on the memdb watch set of what it read, or its timeout: it wakes the moment a write touches
that data, and checks nothing in between (not even the leader: `consistentRead` runs once per
iteration, before the query). A held query here waits the same way: it registers once, and the
cluster wakes every waiter one tick after anything that could change an answer (a commit, a
follower catching up, an election, a node crashing, pausing or resuming, the network changing).
A waiter that finds nothing new for it registers again.
"""

from __future__ import annotations

from collections.abc import Callable

from tagjoin.sim.kernel.engine import Engine


class ChangeWaiters:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._waiting: list[Callable[[], None]] = []
        self._pending = False

    def wait(self, callback: Callable[[], None]) -> None:
        """Call `callback` once, a tick after the next change."""
        self._waiting.append(callback)

    def poke(self) -> None:
        """Something changed: wake the waiters a tick later, once however many changes come now."""
        if self._pending or not self._waiting:
            return
        self._pending = True
        self._engine.schedule(1, self._wake, "held.wake")

    def _wake(self) -> None:
        self._pending = False
        waiting, self._waiting = self._waiting, []
        for callback in waiting:
            callback()
