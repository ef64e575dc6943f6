"""Serf LAN membership, one gossip view per node.

Each node holds its own member list (what `/v1/agent/members` shows there). Updates carry a global
version (memberlist's incarnation, made total so merges are deterministic): the newer entry wins,
and a live node that hears it was declared failed or left refutes with a newer `alive`.

Timing model (memberlist's config.go `DefaultLANConfig` and suspicion.go `newSuspicion`: 1 s probes,
suspicion 4 x max(1, log10 n) probe intervals): a member that becomes unreachable is marked `failed`
by the observers that lost it after a drawn detection time (probe wait + probe + suspicion,
about 5-7 s for small pools, with a tail); gossip reaches the pool after a drawn 50-500 ms; a graceful
leave shows `leaving`, then `left`; after a partition heals, failed-but-alive members are merged
back by Serf's reconnect, within ReconnectInterval (30 s).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from itertools import groupby
from typing import Protocol

from tagjoin.core.model import MemberStatus
from tagjoin.sim.kernel.engine import Engine
from tagjoin.sim.kernel.machine import SERF_LAN_PORT, Node, node_timer

ALIVE = MemberStatus.ALIVE
LEAVING = MemberStatus.LEAVING
LEFT = MemberStatus.LEFT
FAILED = MemberStatus.FAILED


@dataclass(frozen=True, slots=True)
class MemberEntry:
    name: str
    addr: str
    status: MemberStatus
    version: int
    tags: tuple[tuple[str, str], ...]

    def tag(self, key: str) -> str | None:
        for k, v in self.tags:
            if k == key:
                return v
        return None

    @property
    def is_server(self) -> bool:
        return self.tag("role") == "consul"


@dataclass(frozen=True)
class SerfTimings:
    gossip_ms: tuple[int, int] = (50, 500)
    probe_interval_ms: int = 1000
    suspicion_mult: int = 4
    suspicion_max_mult: int = 6
    leave_settle_ms: tuple[int, int] = (200, 800)
    reconnect_interval_ms: int = 30_000
    push_pull_interval_ms: int = 30_000


SERF_LAN_PORT_TEXT = str(SERF_LAN_PORT)

# How many client view changes `_batched_changes` holds before it tells them: one delivery can
# change a hundred thousand views' entries, and holding them all cost more memory than the calls saved.
_HELD_CHANGES = 4096

# memberlist util.go `pushPullScaleThreshold`: above this many members the interval grows.
PUSH_PULL_SCALE_THRESHOLD = 32


def push_pull_scale(interval_ms: int, members: int) -> int:
    """memberlist's push-pull interval for a member list of `members` (util.go `pushPullScale`,
    which state.go `pushPullTrigger` applies before each exchange): unchanged up to 32 members,
    then times ceil(log2(members) - log2(32)) + 1, so twice at 33 and six times at 1,000. That
    keeps full-state exchanges from saturating the network as a pool grows. The multiplier is
    worked out on integers: ceil(log2(n / 32)) is the bit length of ceil(n / 32) - 1.

    `members` is the node's member list as it stands, failed and left members included. memberlist
    counts its node list (`estNumNodes`), which drops dead nodes only when a full probe round ends
    (state.go `resetNodes`, after some n probe intervals): past about 90 members that is longer than
    a scenario, and in smaller pools a failure can keep the count one higher than memberlist's for
    a while."""
    if members <= PUSH_PULL_SCALE_THRESHOLD:
        return interval_ms
    steps = (-(-members // PUSH_PULL_SCALE_THRESHOLD) - 1).bit_length()
    return (steps + 1) * interval_ms


class JoinFailed(Exception):
    """serf Join found nobody to join; the text is what Consul returns in the 500 body."""


class NoSuchMember(Exception):
    pass


class SerfHost(Protocol):
    engine: Engine

    def node(self, name: str) -> Node | None: ...

    def node_by_ip(self, ip: str) -> Node | None: ...

    def link_ok(self, a: Node, b: Node) -> bool: ...

    def connected(self, a: str, b: str) -> bool: ...

    def lan_group(self, name: str) -> int:
        """Which side of the LAN's partition `name` is on: `connected(a, b)` exactly when the two
        are equal, for a loop over many pairs to look up each name once."""
        ...

    def serf_changed(self, observer: Node, subject: str, entry: MemberEntry | None) -> None: ...

    def serf_changed_many(self, changes: list[tuple[Node, str, MemberEntry]]) -> None:
        """Changes of client agents' views (not their own entries), in order, told together at the
        end of an exchange or a delivery: a client's member list drives nothing but the server its
        reads go to, and the trace counts them rather than naming each (see Cluster)."""
        ...


def join_error(addr: str, reason: str) -> str:
    # hashicorp/go-multierror formatting, as memberlist returns it from Join.
    return f"1 error occurred:\n\t* Failed to join {addr}: dial tcp {addr}: {reason}\n\n"


class Serf:
    def __init__(self, host: SerfHost, timings: SerfTimings) -> None:
        self.host = host
        self.timings = timings
        self.views: dict[str, dict[str, MemberEntry]] = {}
        self.leaving: set[str] = set()
        self._version = 0
        self._gossip_rng = host.engine.streams.get("serf.gossip")
        self._reconnect_rng = host.engine.streams.get("serf.reconnect")
        self._lost_at: dict[str, dict[str, int]] = {}  # observer → member → when its link went
        self._ever_failed: set[str] = set()  # members some view was told had failed (reassess)
        self._sync_rng = host.engine.streams.get("serf.push-pull")
        # Per member, the newest version any view holds; per member, the observers whose view lacks
        # it; per observer, those members. A view can change only where it lacks the newest entry,
        # so a gossip delivery or a push-pull looks at those entries alone: it costs what it can
        # change, not the size of the pool (memberlist pools reach thousands of members).
        self._newest: dict[str, int] = {}
        self._behind_on: dict[str, set[str]] = {}
        self._behind: dict[str, set[str]] = {}
        self._pending: list[tuple[Node, str, MemberEntry]] | None = None  # see _batched_changes
        self._names: list[str] | None = None  # every name any view has held, in order; see _every_name
        # The names whose newest entry is alive, in order: the members a view holding every newest
        # entry offers a periodic push-pull (see _push_pull_partner).
        self._alive: list[str] = []

    # helpers --------------------------------------------------------------------------------

    def _next_version(self) -> int:
        self._version += 1
        return self._version

    def _self_entry(self, node: Node, status: MemberStatus) -> MemberEntry:
        tags = tuple(sorted(node.tags().items()))
        return MemberEntry(node.name, node.ip, status, self._next_version(), tags)

    def view(self, name: str) -> dict[str, MemberEntry]:
        return self.views.get(name, {})

    def members(self, observer: str) -> list[MemberEntry]:
        return [entry for _, entry in sorted(self.view(observer).items())]

    def status(self, observer: str, subject: str) -> MemberStatus | None:
        entry = self.view(observer).get(subject)
        return None if entry is None else entry.status

    def _apply(self, observer: str, entry: MemberEntry) -> bool:
        """Take `entry` into `observer`'s view if it is newer; True if it was."""
        view = self.views.get(observer)
        if view is None:
            view = self._view_of(observer)
        cur = view.get(entry.name)
        if cur is not None and cur.version >= entry.version:
            return False
        self._take(self.host.node(observer), observer, view, cur, entry)
        return True

    def _take(
        self,
        node: Node | None,
        observer: str,
        view: dict[str, MemberEntry],
        cur: MemberEntry | None,
        entry: MemberEntry,
    ) -> None:
        """`_apply` once `entry` is known to be newer than `cur`, what `observer`'s `view` holds;
        `node` is the observer's (None once it is gone). A push-pull has looked already."""
        name = entry.name
        view[name] = entry
        self._took(observer, entry)
        if node is None:
            return
        if cur is None or cur.status != entry.status or cur.addr != entry.addr:
            pending = self._pending
            if pending is not None and not node.server and name != observer:
                pending.append((node, name, entry))
                if len(pending) >= _HELD_CHANGES:
                    self._flush_changes()  # a delivery to a thousand views need not hold them all
            else:
                self._flush_changes()
                self.host.serf_changed(node, name, entry)
        if name == observer and entry.status != ALIVE and observer not in self.leaving and node.responsive:
            self._refute(node)

    def _take_held_many(
        self, node: Node, held: dict[str, MemberEntry], entries: Iterable[MemberEntry]
    ) -> list[MemberEntry]:
        """`_apply` of each of `entries` in turn for client agent `node`, whose view is `held`, within
        `_batched_changes`; the ones it took. A joiner's exchange and the gossip after it are n of
        these a boot, so the usual case (another member's entry, no newer than any view holds) is
        written out: the view, the lag indexes, a held change. Anything else goes through `_take`."""
        observer = node.name
        newest, behind_on, behind = self._newest, self._behind_on, self._behind[observer]
        took = []
        for entry in entries:
            name, version = entry.name, entry.version
            cur = held.get(name)
            if cur is not None and cur.version >= version:
                continue
            took.append(entry)
            latest = newest.get(name, 0)
            if name == observer or latest < version:
                self._take(node, observer, held, cur, entry)
                continue
            held[name] = entry
            if version == latest:
                behind_on[name].discard(observer)
                behind.discard(name)
            if cur is None or cur.status != entry.status or cur.addr != entry.addr:
                pending = self._pending
                assert pending is not None  # within _batched_changes
                pending.append((node, name, entry))
                if len(pending) >= _HELD_CHANGES:
                    self._flush_changes()
        return took

    def _erase(self, observer: str, name: str, version: int) -> None:
        view = self.views.get(observer)
        if view is None:
            return
        cur = view.get(name)
        if cur is None or cur.version > version or name == observer:
            return
        del view[name]
        self._lost(observer, name)
        node = self.host.node(observer)
        if node is not None:
            self._flush_changes()
            self.host.serf_changed(node, name, None)

    @contextmanager
    def _batched_changes(self) -> Iterator[None]:
        """Within, a client's view changes are told to the host in one call at the end, in order.

        A joiner's push-pull and the gossip that follows change n views per boot, n x n in a
        boot burst; one host call per change was most of a large pool's cost. Only a client
        observer's changes of other members are held; a server's, or an agent's own entry, flush
        what is held first and are told at once, so everything with an effect happens in the order
        of one call per change.
        """
        if self._pending is not None:
            yield
            return
        self._pending = []
        try:
            yield
        finally:
            # Even when the block raised: one call per change would have told every change before.
            # Until nothing is held: a subscriber told of one change may make another.
            try:
                while self._pending:
                    self._flush_changes()
            finally:
                self._pending = None

    def _flush_changes(self) -> None:
        pending = self._pending
        if pending:
            self._pending = []
            self.host.serf_changed_many(pending)

    def _view_of(self, observer: str) -> dict[str, MemberEntry]:
        view = self.views.get(observer)
        if view is None:
            view = self.views[observer] = {}
            self._behind[observer] = set(self._newest)
            for behind in self._behind_on.values():
                behind.add(observer)
        return view

    def _every_name(self) -> list[str]:
        """Every member name any view has held, sorted (views never name anyone else)."""
        names = self._names
        if names is None:
            names = self._names = sorted(self._newest)
        return names

    def _took(self, observer: str, entry: MemberEntry) -> None:
        """`observer`'s view now holds `entry`: keep the lag indexes."""
        name = entry.name
        newest = self._newest.get(name)
        if newest is None or entry.version > newest:
            if newest is None:
                self._names = None
            behind = self._behind_on.get(name)
            for other in self.views.keys() - behind if behind is not None else self.views:
                self._behind[other].add(name)
            self._behind_on[name] = set(self.views)  # every view is behind on a new version
            self._newest[name] = entry.version
            alive, at = self._alive, bisect_left(self._alive, name)
            listed = at < len(alive) and alive[at] == name
            if entry.status == ALIVE and not listed:
                alive.insert(at, name)
            elif entry.status != ALIVE and listed:
                del alive[at]
        elif entry.version < newest:
            return
        self._behind_on[name].discard(observer)
        self._behind[observer].discard(name)

    def _lost(self, observer: str, name: str) -> None:
        if name in self._newest:
            self._behind_on[name].add(observer)
            self._behind[observer].add(name)

    def _refute(self, node: Node) -> None:
        entry = self._self_entry(node, ALIVE)
        self._apply(node.name, entry)
        self._gossip(node.name, [entry])

    def _gossip(self, origin: str, entries: list[MemberEntry], erase: tuple[str, int] | None = None) -> None:
        delay = self._gossip_rng.randint(*self.timings.gossip_ms)

        def deliver() -> None:
            origin_node = self.host.node(origin)
            # The message left before any later crash; what matters is the network at arrival.
            if origin_node is None:
                return
            at = {entry.name: i for i, entry in enumerate(entries)}
            fresh = list(range(len(entries)))
            recipients = (
                self._recipients(origin_node) if erase is not None else self._lagging_recipients(origin_node, entries)
            )
            with self._batched_changes():
                for node in recipients:
                    observer = node.name
                    held = self.views.get(observer)
                    news = self._news_for(observer, entries, at, fresh)
                    if held is None or node.server:
                        for entry in news:
                            self._apply(observer, entry)
                    else:
                        self._take_held_many(node, held, news)
                    if erase is not None:
                        self._erase(observer, *erase)

        self.host.engine.schedule(delay, deliver, "serf.gossip", origin)

    def _news_for(
        self, observer: str, entries: list[MemberEntry], at: dict[str, int], fresh: list[int]
    ) -> Iterable[MemberEntry]:
        """The entries of a message, in its order, that `observer`'s view may take: those it is
        behind on, and those nobody holds yet. A view that is not behind on a member already holds
        its newest entry, so anything no newer is a no-op there. A joiner's first push-pull gossips
        the whole pool on to every member, so reading the message against the (short) list of what
        each recipient lacks, rather than entry by entry, keeps that burst linear in the pool.
        Taking one entry changes the lag of that entry's member alone, so choosing them all before
        taking any picks what checking each just before taking it would. `fresh` holds the places
        of entries that were newer than every view at the last look; once some view holds an entry
        it is never fresh again, so the list only shrinks."""
        behind = self._behind.get(observer)
        if behind is None:
            return entries
        newest = self._newest
        if len(at) != len(entries):  # a member named twice: look at each just before taking it
            return (e for e in entries if e.name in behind or e.version > newest.get(e.name, 0))
        picked = {at[name] for name in behind & at.keys()}  # in the time of the smaller of the two
        fresh[:] = [i for i in fresh if entries[i].version > newest.get(entries[i].name, 0)]
        picked.update(fresh)
        return [entries[i] for i in sorted(picked)]

    def _lagging_recipients(self, origin: Node, entries: list[MemberEntry]) -> list[Node]:
        """`_recipients`, less those that already hold every entry or a newer one (they would
        ignore the message), in the same order: only views missing the newest version can learn."""
        lagging: set[str] = set()
        for entry in entries:
            if entry.version > self._newest.get(entry.name, 0):
                return self._recipients(origin)  # nobody holds it yet: every view may take it
            lagging |= self._behind_on[entry.name]
        view = self.view(origin.name)
        return self._reachable(origin, (name for name in sorted(lagging) if name in view))

    def _recipients(self, origin: Node) -> list[Node]:
        # Only the network at arrival matters: the message left before any later crash of the origin.
        return self._reachable(origin, sorted(self.view(origin.name)))

    def _reachable(self, origin: Node, names: Iterable[str]) -> list[Node]:
        """The responsive nodes of `names`, in their order, that `origin` reaches (itself left out)."""
        host = self.host
        node_of, lan_group = host.node, host.lan_group
        side = lan_group(origin.name)
        out = []
        for name in names:
            if name == origin.name:
                continue
            node = node_of(name)
            if node is not None and node.responsive and lan_group(name) == side:
                out.append(node)
        return out

    # lifecycle ------------------------------------------------------------------------------

    def start(self, node: Node, *, rejoin: bool) -> None:
        """Agent start: alive in its own view; with `rejoin`, Serf's snapshot rejoin."""
        self.leaving.discard(node.name)
        view = self._view_of(node.name)
        if node.has_left:
            for name in [n for n in view if n != node.name]:
                del view[name]
                self._lost(node.name, name)
        self._apply(node.name, self._self_entry(node, ALIVE))
        self._arm_push_pull(node)
        if not rejoin:
            return
        for name, entry in sorted(view.items()):
            if name == node.name or entry.status == LEFT:
                continue
            target = self.host.node_by_ip(entry.addr)
            if target is not None and target.name == name and self.host.link_ok(node, target):
                self._push_pull(node, target)
                return
        # Nobody from the snapshot answered: still tell whoever can hear that we are back.
        self._gossip(node.name, [view[node.name]])

    def join(self, node: Node, address: str) -> int:
        """serf.Join through `address` (`IP` or `IP:8301`); raises JoinFailed with Consul's text."""
        failed = self.try_join(node, address)
        if failed is not None:
            ip, port, reason = failed
            raise JoinFailed(join_error(f"{ip}:{port}", reason))
        return 1

    def try_join(self, node: Node, address: str) -> tuple[str, str, str] | None:
        """`join`, answering (ip, port, reason) where it would raise: a booting agent's retry_join
        tries every instance of the fleet, most of them not up yet, and needs no error text."""
        host, sep, port = address.rpartition(":")
        ip = host if sep else address
        if sep and port != SERF_LAN_PORT_TEXT:
            return ip, port, "connect: connection refused"
        if ip == node.ip:
            return None  # joining yourself "succeeds" and leaves you an island
        target = self.host.node_by_ip(ip)
        if target is None or not target.up:
            return ip, port if sep else SERF_LAN_PORT_TEXT, "connect: connection refused"
        if not self.host.link_ok(node, target):
            return ip, port if sep else SERF_LAN_PORT_TEXT, "i/o timeout"
        self._push_pull(node, target)
        return None

    def _push_pull(self, a: Node, b: Node) -> None:
        """memberlist's full state exchange: both sides end with the union, then gossip it on."""
        merged: dict[str, MemberEntry] = {}
        view_a, view_b = self.view(a.name), self.view(b.name)
        both_held = a.name in self.views and b.name in self.views
        if both_held:
            # Only where one side lacks the newest entry and the other holds one can the exchange
            # change anything. A joiner lacks most of the pool and an agent booted beside it holds
            # little of it, so each side's lag is read against what the other holds, in the time
            # of the smaller of the two (dict views intersect that way), not the pool's.
            # A version is one entry object: holding the same one is holding the same version.
            for name in (self._behind[a.name] & view_b.keys()) | (self._behind[b.name] & view_a.keys()):
                ea, eb = view_a.get(name), view_b.get(name)
                if ea is eb:
                    continue
                if eb is not None and (ea is None or eb.version > ea.version):
                    merged[name] = eb
                elif ea is not None:
                    merged[name] = ea
        else:
            for view in (view_a, view_b):
                for name, entry in view.items():
                    cur = merged.get(name)
                    if cur is None or entry.version > cur.version:
                        merged[name] = entry
        news: list[MemberEntry] = []
        views = self.views
        with self._batched_changes():
            sides = []
            for side in (a, b):
                node = self.host.node(side.name)
                sides.append((side.name, node, node is not None and not node.server))
            names = sorted(merged)
            if both_held:
                # Each entry of `merged` is one side's own: only the other side can take it. A
                # joiner's exchange is hundreds of entries in a row for the client side, which
                # `_take_held_many` takes in one call; the rest go name by name as below.
                held_b = view_b.get
                runs: Iterable[tuple[int, Iterator[str]]] = groupby(
                    names, key=lambda name: 0 if held_b(name) is merged[name] else 1
                )
            else:
                runs = [(-1, iter(names))]
            for taker, run in runs:
                if taker >= 0 and sides[taker][2]:
                    node = sides[taker][1]
                    assert node is not None
                    news += self._take_held_many(node, views[sides[taker][0]], [merged[name] for name in run])
                    continue
                for name in run:
                    entry = merged[name]
                    learned = False
                    for observer, node, client in sides:
                        # `_apply`, with its lookups done once an exchange: most of a joiner's
                        # exchange is entries the side it joins through holds already.
                        held = views.get(observer)
                        if held is None:
                            learned = self._apply(observer, entry) or learned
                        elif client:
                            assert node is not None
                            learned = bool(self._take_held_many(node, held, [entry])) or learned
                        else:
                            cur = held.get(name)
                            if cur is None or cur.version < entry.version:
                                self._take(node, observer, held, cur, entry)
                                learned = True
                    if learned:
                        news.append(entry)
        if news:
            # Like memberlist's mergeState: only what was new to either side is gossiped on.
            self._gossip(a.name, news)

    def leave(self, node: Node, on_left: Callable[[], None]) -> None:
        """Graceful leave: `leaving`, then `left` once the intent has spread."""
        self.leaving.add(node.name)
        entry = self._self_entry(node, LEAVING)
        self._apply(node.name, entry)
        self._gossip(node.name, [entry])
        settle = self._gossip_rng.randint(*self.timings.leave_settle_ms)

        def finish() -> None:
            left = self._self_entry(node, LEFT)
            self._apply(node.name, left)
            self._gossip(node.name, [left])
            on_left()

        node_timer(self.host.engine, node, settle, finish, "serf.leave")

    def force_leave(self, issuer: Node, subject: str, *, prune: bool) -> None:
        """RemoveFailedNode[Prune]; a live, reachable member refutes and stays."""
        view = self.view(issuer.name)
        cur = view.get(subject)
        if cur is None:
            raise NoSuchMember(subject)
        target = self.host.node(subject)
        if (
            target is not None
            and target.responsive
            and subject not in self.leaving
            and self.host.link_ok(issuer, target)
        ):
            return
        if cur.status == LEFT and not prune:
            return
        left = MemberEntry(subject, cur.addr, LEFT, self._next_version(), cur.tags)
        self._apply(issuer.name, left)
        erase = (subject, left.version) if prune else None
        if erase is not None:
            self._erase(issuer.name, *erase)
        self._gossip(issuer.name, [left], erase)

    def resync(self, node: Node) -> None:
        """After a pause: exchange state with a reachable member (memberlist would within a probe)."""
        for name in sorted(self.view(node.name)):
            target = self.host.node(name)
            if (
                name != node.name
                and target is not None
                and self.host.link_ok(node, target)
                and self.view(node.name)[name].status != LEFT
            ):
                self._push_pull(node, target)
                return

    def _arm_push_pull(self, node: Node) -> None:
        # memberlist's periodic full-state exchange with one random live member: the anti-entropy
        # that lets a node learn it was declared dead (and refute) even when nobody probes it.
        interval = push_pull_scale(self.timings.push_pull_interval_ms, len(self.view(node.name)))
        delay = interval // 2 + self._sync_rng.randrange(interval)
        node_timer(self.host.engine, node, delay, lambda: self._periodic_push_pull(node), "serf.push-pull")

    def _periodic_push_pull(self, node: Node) -> None:
        self._arm_push_pull(node)
        target = self.host.node(self._push_pull_partner(node.name))
        if target is not None and self.host.link_ok(node, target):
            self._push_pull(node, target)

    def _push_pull_partner(self, me: str) -> str:
        """memberlist's random alive member of `me`'s list (by name, as `members` orders it), drawn
        from the push-pull stream; "" when it holds nobody else. A pool of n agents makes n of these
        a push-pull interval. Most views hold every member's newest entry by then, and their
        candidates are the members whose newest entry is alive, which `_alive` keeps in order:
        those draw the same index `choice` would, without a pass over the pool."""
        behind = self._behind.get(me)
        rng = self._sync_rng
        if behind is not None and not behind:
            alive, at = self._alive, bisect_left(self._alive, me)
            mine = at < len(alive) and alive[at] == me
            count = len(alive) - mine
            if not count:
                return ""
            k = rng.randrange(count)  # what `choice` draws: one `_randbelow(count)`
            if mine and k >= at:
                k += 1
            return alive[k]
        view = self.view(me)
        candidates = [
            name
            for name in self._every_name()
            if (e := view.get(name)) is not None and e.status == ALIVE and name != me
        ]
        return rng.choice(candidates) if candidates else ""

    # failure detection ----------------------------------------------------------------------

    def reassess(self, names: Iterable[str]) -> None:
        """Re-examine who can reach whom after a crash, pause, partition, heal or restart."""
        now = self.host.engine.now
        nodes = [n for n in (self.host.node(name) for name in sorted(names)) if n is not None]
        newly_lost: set[str] = set()
        reconnect: list[Node] = []
        # Each observer against every member of a pool of thousands was a million pairs a fault.
        # What an observer's side of the network reaches is the same for the whole side, and what
        # can change is few names: the lost links it holds (regained when reachable again), the
        # members ever declared failed (a reachable one wants a reconnect) and the unreachable
        # members its view holds (newly lost).
        lan_group = self.host.lan_group
        groups = {n.name: lan_group(n.name) for n in nodes}
        reachable: dict[int, set[str]] = {}
        for node in nodes:
            if node.responsive:
                reachable.setdefault(groups[node.name], set()).add(node.name)
        everyone = set(groups)
        unreachable = {side: everyone - names_ for side, names_ in reachable.items()}
        leaving, failed = self.leaving, self._ever_failed
        for obs in nodes:
            if not obs.responsive:
                continue
            obs_name = obs.name
            side = groups[obs_name]
            near = reachable[side]
            view = self.view(obs_name)
            lost = self._lost_at.get(obs_name)
            if lost:
                for name in [n for n in lost if n in near and n in view and n != obs_name]:
                    del lost[name]
            if any(
                name in near
                and name != obs_name
                and name not in leaving
                and (e := view.get(name)) is not None
                and e.status == FAILED
                for name in failed
            ):
                reconnect.append(obs)
            for name in unreachable[side] & view.keys():
                if view[name].status in (ALIVE, LEAVING) and (lost is None or name not in lost):
                    if lost is None:
                        lost = self._lost_at[obs_name] = {}
                    lost[name] = now
                    newly_lost.add(name)
        for subject in sorted(newly_lost):
            delay = self._detection_delay(subject)
            self.host.engine.schedule(delay, partial(self._detect, subject, now), "serf.detect", subject)
        for obs in reconnect:
            delay = self._reconnect_rng.randrange(self.timings.reconnect_interval_ms)
            self.host.engine.schedule(delay, partial(self._reconnect, obs), "serf.reconnect", obs.name)

    def _detection_delay(self, subject: str) -> int:
        t = self.timings
        rng = self.host.engine.streams.get("serf.detect", subject)
        n = max(len(self.view(subject)), 1)
        probe_wait = rng.randrange(t.probe_interval_ms)
        suspicion_min = t.suspicion_mult * max(1.0, math.log10(n)) * t.probe_interval_ms
        suspicion_max = t.suspicion_max_mult * suspicion_min
        if n - 2 < t.suspicion_mult - 2:
            suspicion = suspicion_min
        else:
            # Confirmations from other probers usually shrink the timer to its minimum quickly;
            # sometimes they are slow, which is the long tail users see.
            suspicion = min(suspicion_max, suspicion_min + rng.expovariate(1 / (0.15 * suspicion_min)))
        return int(probe_wait + t.probe_interval_ms + suspicion)

    def _detect(self, subject: str, incident_t: int) -> None:
        subj = self.host.node(subject)
        newest: MemberEntry | None = None
        victims: list[str] = []
        for obs_name in sorted(self.views):
            if obs_name == subject:
                continue
            obs = self.host.node(obs_name)
            if obs is None or not obs.responsive:
                continue
            lost = self._lost_at.get(obs_name, {}).get(subject)
            if lost is None or lost > incident_t:
                continue
            if subj is not None and self.host.link_ok(obs, subj):
                continue
            entry = self.views[obs_name].get(subject)
            if entry is None or entry.status not in (ALIVE, LEAVING):
                continue
            victims.append(obs_name)
            if newest is None or entry.version > newest.version:
                newest = entry
        if newest is None:
            return
        status = LEFT if newest.status == LEAVING else FAILED
        if status == FAILED:
            self._ever_failed.add(subject)
        dead = MemberEntry(subject, newest.addr, status, self._next_version(), newest.tags)
        for obs_name in victims:
            self._apply(obs_name, dead)

    def _reconnect(self, obs: Node) -> None:
        if not obs.responsive:
            return
        for name, entry in sorted(self.view(obs.name).items()):
            if entry.status != FAILED:
                continue
            target = self.host.node(name)
            if target is not None and target.name not in self.leaving and self.host.link_ok(obs, target):
                self._push_pull(obs, target)
                return
