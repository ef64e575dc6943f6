"""One poll of the cluster: Consul's leader and members, the leader's term, EC2's instances.

`fetch` is blocking and runs in a thread worker; it never raises for an expected failure,
it returns a Snapshot carrying the error instead, so the UI can keep the last good view.

When the configured agent cannot be reached (the operator just made it leave, or crashed it in
the demo), the poll reads through another member's agent rather than going blind: the members
alive at the last good poll, through the same agent directory the actions use.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from tagjoin.core.errors import ConsulUnreachable, TagjoinError
from tagjoin.core.model import Member, MemberStatus
from tagjoin.core.view import ClusterView, build_view
from tagjoin.tui.ports import AgentResolver, ConsulApi, InstanceStore


@dataclass(frozen=True)
class Snapshot:
    """What one poll saw. `view` is None exactly when `error` is set."""

    fetched_at: float  # wall-clock seconds
    view: ClusterView | None = None
    term: int | None = None  # the leader's Raft term, when its own agent answered
    error: str | None = None
    via: str | None = None  # the member whose agent answered, when the configured one did not

    @property
    def ok(self) -> bool:
        return self.error is None and self.view is not None


class SnapshotSource(Protocol):
    """Anything that can take a Snapshot; the console polls one of these."""

    label: str  # where it looks, for the header

    def fetch(self) -> Snapshot: ...


# Other agents tried per poll when the configured one is unreachable; bounds a dead cluster's poll.
MAX_FALLBACKS = 3


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

    def fetch(self) -> Snapshot:
        self._agents.refresh()
        try:
            leader, members, via = self._consul_state()
            instances = self._store.instances(states=None)
        except TagjoinError as exc:
            return Snapshot(fetched_at=self._clock(), error=str(exc))
        except Exception as exc:  # an adapter bug must not kill the poller; show it instead
            return Snapshot(fetched_at=self._clock(), error=f"{type(exc).__name__}: {exc}")
        view = build_view(leader, members, instances, self._tag_key)
        self._last_view, self._via = view, via
        return Snapshot(fetched_at=self._clock(), view=view, term=self._leader_term(view), via=via)

    def _consul_state(self) -> tuple[str | None, list[Member], str | None]:
        """Leader and members from the configured agent, else from another member's agent."""
        try:
            return self._consul.leader(), self._consul.members(), None
        except ConsulUnreachable as exc:
            first = exc
        tried: list[str] = []
        for node, url in self._fallbacks():
            tried.append(node)
            try:
                agent = self._consul.with_address(url)
            except TagjoinError:
                continue
            with contextlib.closing(agent):
                try:
                    return agent.leader(), agent.members(), node
                except ConsulUnreachable:
                    continue
        if tried:
            raise ConsulUnreachable(f"{first}; the agents of {', '.join(tried)} did not answer either") from None
        raise first

    def _fallbacks(self) -> list[tuple[str, str]]:
        view = self._last_view
        if view is None:
            return []
        rows = sorted(
            (r for r in view.rows if r.status == MemberStatus.ALIVE),
            key=lambda r: r.name != self._via,  # the one that answered last time first
        )
        out: list[tuple[str, str]] = []
        for row in rows:
            url = self._agents.agent_url(row.name, row.address)
            if url is None or url.rstrip("/") == self._consul.address.rstrip("/"):
                continue
            out.append((row.name, url))
            if len(out) == MAX_FALLBACKS:
                break
        return out

    def _leader_term(self, view: ClusterView) -> int | None:
        """Ask the leader's own agent: status/leader carries no term, and a follower's would lag."""
        row = next((r for r in view.rows if r.is_leader), None)
        if row is None:
            return None
        url = self._agents.agent_url(row.name, row.address)
        if url is None:
            return None
        try:
            agent = self._consul.with_address(url)
        except TagjoinError:
            return None
        with contextlib.closing(agent):
            try:
                me = agent.agent_self()
            except TagjoinError:
                return None
        return me.term if me.is_leader else None
