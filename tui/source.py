"""The console's reads of the cluster: one poll, and the facts read beside it in their own workers.

`fetch` (the poll) reads Consul's leader and members and EC2's instances. It never raises for an
expected failure: it returns a Snapshot carrying the error, so the UI keeps the last good view.

What is slow to learn, or learnt from one particular agent, is read apart from the poll so a
slow agent never holds the whole refresh: `probe_leader` asks the leader's own agent (its term,
whether it still leads, whether it answers at all) and `read_raft` reads the Raft configuration
and autopilot's health. Each uses a client with a short timeout and runs in a worker of its own.

Truth under faults:
- When the configured agent cannot be reached, or has left or is leaving the cluster, the poll
  reads through another member's agent (the members alive at the last good poll) rather than
  going blind or believing an agent on its way out.
- Once the configured agent has stopped answering, later polls read through the member that
  answered instead of waiting out the silent agent's timeout on every refresh; the configured
  agent is asked again in the background and used again as soon as it answers.
- "No leader" is never reported on one agent's word: a second agent, a server if possible, is
  asked first; if it names a leader, its answer is shown.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from tagjoin.core.errors import ConsulError, ConsulUnreachable, TagjoinError
from tagjoin.core.model import HealthCheck, Member, MemberStatus, NodeService
from tagjoin.core.raft_view import RaftPicture, read_raft, short_reason
from tagjoin.core.view import ClusterView, NodeRow, build_view
from tagjoin.tui.ports import AgentResolver, ConsulApi, InstanceStore


@dataclass(frozen=True)
class Snapshot:
    """What one poll saw. `view` is None exactly when `error` is set."""

    fetched_at: float  # wall-clock seconds
    view: ClusterView | None = None
    term: int | None = None  # the leader's Raft term, as its own agent last told
    error: str | None = None
    via: str | None = None  # the member whose agent answered, when the configured one was not used
    via_reason: str | None = None  # why not: "does not answer", "has left", "sees no leader"
    no_leader_confirmed_by: str | None = None  # the second agent that saw no leader either

    @property
    def ok(self) -> bool:
        return self.error is None and self.view is not None


@dataclass(frozen=True)
class LeaderProbe:
    """The leader named by a poll, asked directly through its own agent."""

    at: float
    node: str
    answered: bool | None  # None: no agent address is known for it, so it was not asked
    leads: bool = False  # its agent says Leader
    term: int | None = None
    raft_state: str = ""
    error: str | None = None


@dataclass(frozen=True)
class RaftReading:
    at: float
    picture: RaftPicture
    through: str  # the agent that was asked


@dataclass(frozen=True)
class NodeExtras:
    """What the detail pane reads on demand: the node's checks and services."""

    at: float
    node: str
    checks: tuple[HealthCheck, ...] = ()
    services: tuple[NodeService, ...] = ()
    error: str | None = None


class SnapshotSource(Protocol):
    """Anything that can take a Snapshot; the console polls one of these."""

    label: str  # where it looks, for the header

    def fetch(self) -> Snapshot: ...


@runtime_checkable
class FactSource(Protocol):
    """A source that can also read the facts kept out of the poll (ClusterSource does)."""

    def probe_leader(self, view: ClusterView) -> LeaderProbe | None: ...

    def read_raft(self, view: ClusterView, via: str | None) -> RaftReading: ...

    def node_extras(self, node: str, via: str | None) -> NodeExtras: ...


# Other agents tried per poll when the configured one is unreachable; bounds a dead cluster's poll.
MAX_FALLBACKS = 3
# Seconds. A paused agent accepts connections and never answers: these bound how long one
# agent can hold a worker. The probe asks one local endpoint; the Raft reads are forwarded to
# the leader, which may sit out an election first (Consul's rpc_hold_timeout is 7 s).
PROBE_TIMEOUT = 1.5
RAFT_TIMEOUT = 3.0
FALLBACK_TIMEOUT = 2.0
# How often the configured agent is asked its own name before the console stops asking
# (an ACL token without agent:read never gets an answer).
SELF_NAME_TRIES = 3


class ClusterSource:
    def __init__(
        self,
        consul: ConsulApi,
        store: InstanceStore,
        agents: AgentResolver,
        *,
        tag_key: str,
        label: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._consul = consul
        self._store = store
        self._agents = agents
        self._tag_key = tag_key
        self._clock = clock
        self.label = label
        self._last_view: ClusterView | None = None
        self._via: str | None = None  # the fallback that answered last time: tried first next time
        self._own: str | None = None  # the configured agent's node name, once it told
        self._own_tries = 0
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, float], ConsulApi] = {}
        # Set while the configured agent does not answer and another member's agent does; a paused
        # agent would otherwise hold every poll for the client's whole timeout.
        self._configured_silent = False
        self._recheck: Future[bool] | None = None
        self._rechecker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tagjoin-recheck")

    def close(self) -> None:
        self._rechecker.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    @property
    def recheck(self) -> Future[bool] | None:
        """The background question to the silent configured agent, while one is asked."""
        return self._recheck

    # -- the poll -------------------------------------------------------------------------------

    def fetch(self) -> Snapshot:
        self._agents.refresh()
        try:
            state = self._consul_state()
            instances = self._store.instances(states=None)
        except TagjoinError as exc:
            return Snapshot(fetched_at=self._clock(), error=str(exc))
        except Exception as exc:  # an adapter bug must not kill the poller; show it instead
            return Snapshot(fetched_at=self._clock(), error=f"{type(exc).__name__}: {exc}")
        view = build_view(state.leader, state.members, instances, self._tag_key)
        self._last_view, self._via = view, state.via
        return Snapshot(
            fetched_at=self._clock(),
            view=view,
            via=state.via,
            via_reason=state.via_reason,
            no_leader_confirmed_by=state.confirmed_by,
        )

    def _consul_state(self) -> _ConsulState:
        others_silent = False
        if self._configured_silent and not self._configured_back():
            try:
                return self._through_others(None, "does not answer", members=None)
            except ConsulUnreachable:
                others_silent = True  # nobody else answers either: the configured agent is all there is
                self._configured_silent = False
        try:
            leader, members = self._consul.leader(), self._consul.members()
        except ConsulUnreachable as exc:
            if others_silent:
                raise ConsulUnreachable(f"{exc}; no other agent answered either") from None
            state = self._through_others(exc, "does not answer", members=None)
            self._configured_silent = True  # only once another agent answered in its place
            return state
        self._configured_silent = False
        own = self._own_member(members)
        if own is not None and own.status in (MemberStatus.LEAVING, MemberStatus.LEFT):
            # An agent on its way out still answers for a while, from a view nobody maintains.
            with contextlib.suppress(ConsulUnreachable):
                why = "has left" if own.status == MemberStatus.LEFT else "is leaving"
                return self._through_others(None, why, members=members)
        if leader is None:
            return self._confirm_no_leader(members)
        return _ConsulState(leader, members)

    def _configured_back(self) -> bool:
        """Whether the background question found the configured agent answering again.

        Asks it anew when no question is out, so the poll itself never waits on it.
        """
        pending = self._recheck
        if pending is not None and pending.done():
            self._recheck = None
            if not pending.cancelled() and pending.exception() is None and pending.result():
                return True
        if self._recheck is None:
            with contextlib.suppress(RuntimeError):  # closed: no more questions
                self._recheck = self._rechecker.submit(self._configured_answers)
        return False

    def _configured_answers(self) -> bool:
        try:
            self._consul.leader()
        except TagjoinError:
            return False
        return True

    def _own_member(self, members: list[Member]) -> Member | None:
        if self._own is None and self._own_tries < SELF_NAME_TRIES:
            self._own_tries += 1
            with contextlib.suppress(TagjoinError):
                self._own = self._consul.agent_self().node_name
        return next((m for m in members if m.name == self._own), None) if self._own else None

    def _through_others(
        self, first: ConsulUnreachable | None, reason: str, *, members: list[Member] | None
    ) -> _ConsulState:
        """Leader and members from another member's agent; raises ConsulUnreachable if none answers."""
        tried: list[str] = []
        for node, url in self._candidates(members):
            tried.append(node)
            try:
                agent = self._client(url, FALLBACK_TIMEOUT)
                leader, found = agent.leader(), agent.members()
            except ConsulUnreachable:
                continue
            except TagjoinError:
                continue
            if leader is None:
                return self._confirm_no_leader(found, asked=(node,), via=node, via_reason=reason)
            return _ConsulState(leader, found, via=node, via_reason=reason)
        if first is None:
            raise ConsulUnreachable(f"the configured agent {reason}, and no other agent answered")
        if tried:
            raise ConsulUnreachable(f"{first}; the agents of {', '.join(tried)} did not answer either") from None
        raise first

    def _confirm_no_leader(
        self,
        members: list[Member],
        *,
        asked: tuple[str, ...] = (),
        via: str | None = None,
        via_reason: str | None = None,
    ) -> _ConsulState:
        """Ask a second agent before believing there is no leader; adopt its answer if it knows one."""
        for node, url in self._candidates(members, prefer_servers=True, skip=asked):
            try:
                agent = self._client(url, FALLBACK_TIMEOUT)
                leader, found = agent.leader(), agent.members()
            except TagjoinError:
                continue
            if leader is not None:
                return _ConsulState(leader, found, via=node, via_reason="sees no leader")
            return _ConsulState(None, members, via=via, via_reason=via_reason, confirmed_by=node)
        return _ConsulState(None, members, via=via, via_reason=via_reason)

    def _candidates(
        self, members: list[Member] | None, *, prefer_servers: bool = False, skip: tuple[str, ...] = ()
    ) -> list[tuple[str, str]]:
        """Agents to read through, at most MAX_FALLBACKS: alive members, the last one that answered first."""
        if members is not None:
            rows = [(m.name, m.addr, m.status, m.is_server) for m in members]
        elif self._last_view is not None:
            rows = [(r.name, r.address, r.status, r.role == "server") for r in self._last_view.rows]
        else:
            return []
        alive = [r for r in rows if r[2] == MemberStatus.ALIVE and r[0] != self._own and r[0] not in skip]
        alive.sort(key=lambda r: (r[0] != self._via, not r[3] if prefer_servers else False, r[0]))
        out: list[tuple[str, str]] = []
        for name, address, _status, _server in alive:
            url = self._agents.agent_url(name, address)
            if url is None or url.rstrip("/") == self._consul.address.rstrip("/"):
                continue
            out.append((name, url))
            if len(out) == MAX_FALLBACKS:
                break
        return out

    def _client(self, url: str, timeout: float) -> ConsulApi:
        """A client for one agent, kept for the next poll (a TLS setup is costly to build each time)."""
        key = (url, timeout)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._consul.with_address(url, timeout=timeout)
                self._clients[key] = client
            return client

    # -- facts read apart from the poll ---------------------------------------------------------

    def probe_leader(self, view: ClusterView) -> LeaderProbe | None:
        """Ask the leader's own agent: status/leader carries no term, and a follower's idea of the
        leader outlives a crashed leader by a heartbeat timeout."""
        row = next((r for r in view.rows if r.is_leader), None)
        if row is None:
            return None
        url = self._agents.agent_url(row.name, row.address)
        if url is None:
            return LeaderProbe(self._clock(), row.name, None)
        try:
            me = self._client(url, PROBE_TIMEOUT).agent_self()
        except TagjoinError as exc:
            return LeaderProbe(self._clock(), row.name, False, error=str(exc))
        return LeaderProbe(self._clock(), row.name, True, me.is_leader, me.term or None, me.raft_state)

    def read_raft(self, view: ClusterView, via: str | None) -> RaftReading:
        agent, through = self._reader(view, via, RAFT_TIMEOUT)
        return RaftReading(self._clock(), read_raft(agent, view.rows), through)

    def node_extras(self, node: str, via: str | None) -> NodeExtras:
        agent, _through = self._reader(self._last_view, via, RAFT_TIMEOUT)
        try:
            checks = agent.health_node(node, consistency=None).value
            services = agent.node_services(node)
        except ConsulError as exc:
            return NodeExtras(self._clock(), node, error=short_reason(exc, "node:read"))
        return NodeExtras(self._clock(), node, tuple(checks), tuple(services))

    def _reader(self, view: ClusterView | None, via: str | None, timeout: float) -> tuple[ConsulApi, str]:
        """The agent the poll used: the configured one, or the member it read through."""
        if via is not None and view is not None:
            row: NodeRow | None = next((r for r in view.rows if r.name == via), None)
            url = self._agents.agent_url(row.name, row.address) if row else None
            if url is not None:
                return self._client(url, timeout), via
        return self._client(self._consul.address, timeout), self._consul.address


@dataclass(frozen=True)
class _ConsulState:
    leader: str | None
    members: list[Member]
    via: str | None = None
    via_reason: str | None = None
    confirmed_by: str | None = None
