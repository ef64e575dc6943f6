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

import itertools
from collections.abc import Callable

from tagjoin.sim.kernel.engine import Engine


class ChangeWaiters:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._waiting: dict[int, Callable[[], None]] = {}  # in the order they began to wait
        self._tokens = itertools.count()
        self._pending = False

    def wait(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` once, a tick after the next change; returns what stops the wait (a
        query answered at its deadline in a quiet cluster must not stay behind)."""
        token = next(self._tokens)
        self._waiting[token] = callback
        return lambda: self._forget(token)

    def _forget(self, token: int) -> None:
        self._waiting.pop(token, None)

    def __len__(self) -> int:
        return len(self._waiting)

    def poke(self) -> None:
        """Something changed: wake the waiters a tick later, once however many changes come now."""
        if self._pending or not self._waiting:
            return
        self._pending = True
        self._engine.schedule(1, self._wake, "held.wake")

    def _wake(self) -> None:
        self._pending = False
        waiting, self._waiting = self._waiting, {}
        for callback in waiting.values():
            callback()
