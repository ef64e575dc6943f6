"""One simulated machine: identity, process state, and timers that respect crash and pause."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tagjoin.sim.kernel.engine import Engine, Timer

SERF_LAN_PORT = 8301
SERVER_RPC_PORT = 8300


@dataclass(eq=False)
class Node:
    """A Consul agent process on one instance.

    `up` is whether the process runs; `paused` is a stop-the-world pause (process alive, doing
    nothing). `epoch` changes on every crash, shutdown and restart, so timers and messages that
    belong to an earlier incarnation die quietly instead of acting on the new one.
    """

    name: str
    node_id: str
    ip: str
    server: bool
    datacenter: str = "dc1"
    bootstrap_expect: int = 0  # configured value (the `expect` serf tag)
    up: bool = True
    paused: bool = False
    epoch: int = 0
    has_left: bool = False  # left gracefully: a restart does not rejoin on its own
    leaving: bool = False  # a graceful leave is under way: leader-bound requests fail fast
    # Paused alone (SIGSTOP of the agent) while the machine runs on: its other processes go on,
    # and its kernel keeps receiving, so messages that arrive meanwhile are read on resume.
    paused_alone: bool = False
    deferred: list[NodeTimer] = field(default_factory=list)

    @property
    def responsive(self) -> bool:
        return self.up and not self.paused

    @property
    def raft_addr(self) -> str:
        return f"{self.ip}:{SERVER_RPC_PORT}"

    def tags(self) -> dict[str, str]:
        """Serf tags as Consul sets them (api/agent.go constants)."""
        tags = {
            "acls": "0",
            "build": "1.20.1:",
            "dc": self.datacenter,
            "id": self.node_id,
            "role": "consul" if self.server else "node",
            "segment": "",
            "vsn": "2",
            "vsn_max": "3",
            "vsn_min": "2",
        }
        if self.server:
            tags["port"] = str(SERVER_RPC_PORT)
            tags["raft_vsn"] = "3"
            if self.bootstrap_expect > 0:
                tags["expect"] = str(self.bootstrap_expect)
        return tags


class NodeTimer:
    """A callback bound to one incarnation of a node.

    It does nothing once the node crashed or restarted since it was armed. While the node is paused
    it is parked on the node and fires when the node resumes — late, as Go timers do after a
    stop-the-world pause.
    """

    __slots__ = ("_fn", "cancelled", "epoch", "handle", "node")

    def __init__(self, node: Node, fn: Callable[[], None]) -> None:
        self.node = node
        self._fn = fn
        self.epoch = node.epoch
        self.cancelled = False
        self.handle: Timer | None = None

    def cancel(self) -> None:
        self.cancelled = True
        if self.handle is not None:
            self.handle.cancel()

    def __call__(self) -> None:
        if self.cancelled or self.node.epoch != self.epoch or not self.node.up:
            return
        if self.node.paused:
            self.node.deferred.append(self)
            return
        self._fn()


def node_timer(engine: Engine, node: Node, delay_ms: int, fn: Callable[[], None], label: str) -> NodeTimer:
    timer = NodeTimer(node, fn)
    timer.handle = engine.schedule(delay_ms, timer, label, node.name)
    return timer


def release_deferred(engine: Engine, node: Node) -> None:
    """Fire the timers a pause held back, in their original order, just after the resume."""
    parked, node.deferred = node.deferred, []
    for timer in parked:
        if not timer.cancelled:
            timer.handle = engine.schedule(1, timer, "late-timer", node.name)
