"""The LAN between simulated nodes: partitions as groups, per-message latency from a stream."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from tagjoin.sim.kernel.engine import Engine
from tagjoin.sim.kernel.machine import Node, NodeTimer

# Nodes not named in a partition share this implicit group.
REST = -1


class Network:
    """Who can talk to whom, and how long a message takes.

    A partition is a list of groups; nodes in the same group reach each other, nodes in different
    groups do not. Messages are delivered only if the link holds both when sent and on arrival, and
    only to a responsive node of the same incarnation (a paused machine's kernel would buffer, but the
    sender's RPC times out long before the pause ends, so dropping is the faithful outcome), or to
    an agent paused alone with `paused_alone`, which reads them when it resumes.

    A one-way cut (`one_way`) makes a listener deaf to some speakers while they still hear it; a
    partial partition (`cut`) is a one-way cut both ways between two nodes that both still reach
    everyone else, so reachability is no longer transitive. A lossy link (`lossy`) fails each
    message on it with a probability, drawn from a stream of its own (`lost`). Only the Raft
    messages raft does not retry are failed: a heartbeat whose RPC fails waits for the next one
    (hashicorp/raft replication.go `heartbeat`), a vote request that fails counts as no vote
    (raft.go `electSelf`), a TimeoutNow is not resent; replication retries until it gets through,
    so loss there would only be delay, and gossip rides over it (memberlist's indirect probes).
    `connected` ignores it: memberlist's indirect probes (hashicorp/memberlist state.go,
    probeNode: IndirectChecks through other members) route around a one-way cut, so gossip sees
    the pair as connected. A message (`send`) needs only its own direction; a TCP request and its
    answer need both (`hears` each way).
    """

    def __init__(self, engine: Engine, latency_ms: tuple[int, int] = (1, 5)) -> None:
        self._engine = engine
        self._rng = engine.streams.get("net.latency")
        self._lo, self._hi = latency_ms
        self._group: dict[str, int] = {}
        self.groups: tuple[tuple[str, ...], ...] = ()
        self._deaf: frozenset[tuple[str, str]] = frozenset()  # (listener, speaker)
        self._loss: dict[tuple[str, str], float] = {}  # (listener, speaker) → drop probability
        self._loss_rng = engine.streams.get("net.loss")
        self.messages_sent = 0

    def connected(self, a: str, b: str) -> bool:
        if not self._group:
            return True
        return self._group.get(a, REST) == self._group.get(b, REST)

    def hears(self, listener: str, speaker: str) -> bool:
        """Whether packets from `speaker` reach `listener`."""
        return self.connected(listener, speaker) and (listener, speaker) not in self._deaf

    def one_way(self, listener: str, speakers: Iterable[str]) -> None:
        """`listener` stops hearing `speakers`; they still hear it (until `heal`)."""
        self._deaf = self._deaf | {(listener, s) for s in speakers if s != listener}

    def cut(self, a: str, b: str) -> None:
        """`a` and `b` stop hearing each other; both still reach every other node (until `heal`)."""
        self.one_way(a, [b])
        self.one_way(b, [a])

    def lossy(self, node: str, peers: Iterable[str], rate: float) -> None:
        """Each message between `node` and each of `peers`, either way, is lost with `rate`."""
        for peer in peers:
            if peer != node:
                self._loss[(node, peer)] = self._loss[(peer, node)] = rate

    def lost(self, listener: str, speaker: str) -> bool:
        """Whether this one message from `speaker` to `listener` is lost on a lossy link."""
        rate = self._loss.get((listener, speaker))
        return rate is not None and self._loss_rng.random() < rate

    def group_of(self, name: str) -> int:
        return self._group.get(name, REST) if self._group else 0

    def partition(self, groups: Sequence[Iterable[str]]) -> tuple[tuple[str, ...], ...]:
        assignment: dict[str, int] = {}
        normalised: list[tuple[str, ...]] = []
        for i, group in enumerate(groups):
            members = tuple(sorted(set(group)))
            for name in members:
                if name in assignment:
                    raise ValueError(f"node {name!r} is in two partition groups")
                assignment[name] = i
            normalised.append(members)
        self._group = assignment
        self.groups = tuple(normalised)
        return self.groups

    def heal(self) -> None:
        self._group = {}
        self.groups = ()
        self._deaf = frozenset()
        self._loss = {}

    @property
    def partitioned(self) -> bool:
        return bool(self._group)

    def latency(self) -> int:
        return self._rng.randint(self._lo, self._hi)

    def send(self, src: Node, dst: Node, deliver: Callable[[], None], label: str) -> bool:
        """Deliver `deliver()` at `dst` after a drawn latency; False if dropped at once."""
        if not (src.responsive and self.hears(dst.name, src.name)):
            return False
        self.messages_sent += 1
        if self.lost(dst.name, src.name):
            return True  # sent, and lost on the way: the sender cannot tell
        epoch = dst.epoch

        def arrive() -> None:
            if dst.epoch != epoch or not self.hears(dst.name, src.name):
                return
            if dst.responsive:
                deliver()
            elif dst.up and dst.paused_alone:
                dst.deferred.append(NodeTimer(dst, deliver))  # read on resume, late

        self._engine.schedule(self.latency(), arrive, label, dst.name)
        return True
