"""Every operator action goes through here, and `--read-only` is enforced here, below the UI.

The UI asks `availability` to dim keys and hide palette entries; `perform` checks again and
refuses on its own, so no path (key, palette, test, future screen) can slip past read-only.
`perform` blocks on network I/O: call it from a thread worker.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, StrEnum

from tagjoin.core.errors import ConsulUnreachable, TagjoinError
from tagjoin.core.handoff import Report
from tagjoin.core.model import MemberStatus
from tagjoin.core.view import NodeRow
from tagjoin.tui.demo_control import DemoControl
from tagjoin.tui.impact import Impact
from tagjoin.tui.ports import AgentResolver, ConsulApi
from tagjoin.tui.rejoin import RejoinCommand


class ReadOnlyError(TagjoinError):
    """The console runs with --read-only and was asked to change the cluster."""


class ActionUnavailable(TagjoinError):
    """The action cannot apply to this target now (wrong status, no way to do it, no target)."""


class ActionName(StrEnum):
    LEAVE = "leave"
    REJOIN = "rejoin"
    FORCE_LEAVE = "force-leave"
    PRUNE = "prune"
    RECONCILE = "reconcile"
    CRASH = "crash"
    PARTITION = "partition"
    HEAL = "heal"
    PAUSE_LEADER = "pause-leader"
    THROTTLE = "throttle"


class Aim(Enum):
    SELECTED = "selected"  # the node under the cursor
    LEADER = "leader"  # the current leader, whatever is selected
    CLUSTER = "cluster"  # no node


@dataclass(frozen=True)
class ActionSpec:
    title: str
    phrase: str  # what it does to {node}, for messages and the confirm dialog
    aim: Aim
    destructive: bool
    demo_only: bool
    explain: str


SPECS: dict[ActionName, ActionSpec] = {
    ActionName.LEAVE: ActionSpec(
        "Leave", "make {node} leave", Aim.SELECTED, True, False, "graceful leave on the node's own agent; it shuts down"
    ),
    ActionName.REJOIN: ActionSpec(
        "Rejoin", "rejoin {node}", Aim.SELECTED, True, False, "start the agent again; it joins through the leader tag"
    ),
    ActionName.FORCE_LEAVE: ActionSpec(
        "Force-leave", "force-leave {node}", Aim.SELECTED, True, False, "mark a failed member left, via any agent"
    ),
    ActionName.PRUNE: ActionSpec(
        "Prune",
        "force-leave -prune {node}",
        Aim.SELECTED,
        True,
        False,
        "remove a left or failed member from the member list for good (force-leave -prune)",
    ),
    ActionName.RECONCILE: ActionSpec(
        "Reconcile",
        "reconcile the tag on leader {node}",
        Aim.LEADER,
        False,
        False,
        "one handoff pass on the leader's agent",
    ),
    ActionName.CRASH: ActionSpec("Crash", "crash {node}", Aim.SELECTED, True, True, "kill the simulated agent"),
    ActionName.PARTITION: ActionSpec(
        "Isolate", "isolate {node}", Aim.SELECTED, True, True, "partition the node from every other node"
    ),
    ActionName.HEAL: ActionSpec("Heal", "heal every partition", Aim.CLUSTER, False, True, "remove every partition"),
    ActionName.PAUSE_LEADER: ActionSpec(
        "Pause leader", "pause leader {node}", Aim.LEADER, True, True, "stop-the-world pause of the leader"
    ),
    ActionName.THROTTLE: ActionSpec(
        "Throttle EC2", "throttle EC2", Aim.CLUSTER, False, True, "make EC2 answer RequestLimitExceeded"
    ),
}


@dataclass(frozen=True)
class Target:
    node: str
    address: str
    status: MemberStatus
    role: str
    instance_id: str | None = None

    @classmethod
    def of(cls, row: NodeRow) -> Target:
        return cls(row.name, row.address, row.status, row.role, row.instance.instance_id if row.instance else None)


@dataclass(frozen=True)
class Request:
    """An action and its target, captured when the operator asked (not when it runs)."""

    action: ActionName
    target: Target | None = None
    peers: tuple[Target, ...] = ()  # alive members at that moment, for "via any reachable agent"
    impact: Impact | None = None  # what it does to the quorum, as known when the dialog opened

    @property
    def spec(self) -> ActionSpec:
        return SPECS[self.action]

    def describe(self) -> str:
        return self.spec.phrase.format(node=self.target.node if self.target else "(no node)")


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""


OK = Availability(True)


class ActionService:
    def __init__(
        self,
        consul: ConsulApi,
        agents: AgentResolver,
        *,
        read_only: bool = False,
        rejoin: RejoinCommand | None = None,
        demo: DemoControl | None = None,
        reconcile: Callable[[str], Report] | None = None,
        pause_seconds: float = 5.0,
        throttle_action: str = "DescribeInstances",
        throttle_count: int = 5,
    ) -> None:
        self._consul = consul
        self._agents = agents
        self._read_only = read_only
        self._rejoin = rejoin
        self._demo = demo
        self._reconcile = reconcile
        self.pause_seconds = pause_seconds
        self.throttle_action = throttle_action
        self.throttle_count = throttle_count
        self._refresh_paused = False

    @property
    def read_only(self) -> bool:
        return self._read_only

    @property
    def demo(self) -> bool:
        return self._demo is not None

    # Pausing the refresh changes nothing in the cluster, so read-only allows it.
    @property
    def refresh_paused(self) -> bool:
        return self._refresh_paused

    def set_refresh_paused(self, paused: bool) -> None:
        self._refresh_paused = paused

    def availability(self, req: Request) -> Availability:
        spec = req.spec
        if spec.demo_only and self._demo is None:
            return Availability(False, "only in the demo (--demo)")
        if self._read_only:
            return Availability(False, "read-only console (--read-only)")
        t = req.target
        if spec.aim is Aim.LEADER and t is None:
            return Availability(False, "the cluster has no leader")
        if spec.aim is Aim.SELECTED and t is None:
            return Availability(False, "select a node first")
        return self._fits(req.action, t)

    def _fits(self, action: ActionName, t: Target | None) -> Availability:
        if t is None:
            return OK
        status = t.status.label
        match action:
            case ActionName.LEAVE:
                if t.status != MemberStatus.ALIVE:
                    return Availability(False, f"it is {status}; only an alive member can leave")
                if self._agents.agent_url(t.node, t.address) is None:
                    return Availability(False, "no agent address known for it")
            case ActionName.REJOIN:
                if t.status == MemberStatus.ALIVE:
                    return Availability(False, "it is already alive")
                if self._demo is None and self._rejoin is None:
                    return Availability(
                        False, "no --rejoin-command given (e.g. 'ssh {address} sudo systemctl start consul')"
                    )
                if self._agents.running(t.node):
                    # A member is `left` once its leave is announced; its agent drains, then exits.
                    return Availability(False, f"it is {status} but its agent still runs (shutting down or cut off)")
            case ActionName.FORCE_LEAVE:
                if t.status != MemberStatus.FAILED:
                    return Availability(False, f"it is {status}; only failed members can be force-left")
            case ActionName.PRUNE:
                if t.status not in (MemberStatus.LEFT, MemberStatus.FAILED):
                    return Availability(False, f"it is {status}; only left or failed members can be pruned")
            case ActionName.RECONCILE:
                if self._reconcile is None:
                    return Availability(False, "no EC2 tag store configured")
                if self._agents.agent_url(t.node, t.address) is None:
                    return Availability(False, "no agent address known for the leader")
            case ActionName.CRASH | ActionName.PARTITION | ActionName.PAUSE_LEADER:
                if t.status not in (MemberStatus.ALIVE, MemberStatus.LEAVING):
                    return Availability(False, f"it is {status}")
            case _:
                pass
        return OK

    def perform(self, req: Request) -> str:
        """Do it, or raise ReadOnlyError / ActionUnavailable / the adapter's TagjoinError."""
        if self._read_only:
            raise ReadOnlyError(f"read-only console: refusing to {req.describe()}")
        available = self.availability(req)
        if not available.ok:
            raise ActionUnavailable(f"cannot {req.describe()}: {available.reason}")
        t = req.target
        match req.action:
            case ActionName.LEAVE:
                assert t is not None
                return self._leave(t)
            case ActionName.REJOIN:
                assert t is not None
                return self._rejoin_node(t)
            case ActionName.FORCE_LEAVE:
                assert t is not None
                return self._force_leave(t, req.peers)
            case ActionName.PRUNE:
                assert t is not None
                return self._force_leave(t, req.peers, prune=True)
            case ActionName.RECONCILE:
                assert t is not None and self._reconcile is not None
                url = self._agent(t)
                report = self._reconcile(url)
                return report.summary().splitlines()[0]
        demo = self._demo
        assert demo is not None  # demo_only specs were refused by availability otherwise
        match req.action:
            case ActionName.CRASH:
                assert t is not None
                demo.crash(t.node)
                return f"crashed {t.node}"
            case ActionName.PARTITION:
                assert t is not None
                demo.partition([t.node])
                return f"isolated {t.node} from every other node"
            case ActionName.HEAL:
                demo.heal()
                return "healed every partition"
            case ActionName.PAUSE_LEADER:
                assert t is not None
                demo.pause(t.node, self.pause_seconds)
                return f"paused {t.node} for {self.pause_seconds:g}s"
            case ActionName.THROTTLE:
                demo.throttle(self.throttle_action, self.throttle_count)
                return f"EC2 will throttle the next {self.throttle_count} {self.throttle_action} calls"
        raise ActionUnavailable(f"unknown action {req.action}")

    def _agent(self, t: Target) -> str:
        url = self._agents.agent_url(t.node, t.address)
        if url is None:
            raise ActionUnavailable(f"no agent address known for {t.node}")
        return url

    def _leave(self, t: Target) -> str:
        url = self._agent(t)
        # The node's own agent: PUT /v1/agent/leave always acts on the agent that receives it.
        with contextlib.closing(self._consul.with_address(url)) as agent:
            agent.leave()
        return f"{t.node} is leaving (agent {url})"

    def _rejoin_node(self, t: Target) -> str:
        if self._demo is not None:
            self._demo.restart(t.node)
            return f"restarted {t.node}; it joins through the leader tag"
        assert self._rejoin is not None
        return self._rejoin.run(t.node, t.address)

    def _force_leave(self, t: Target, peers: tuple[Target, ...], *, prune: bool = False) -> str:
        done = f"force-left {t.node}" + (" and pruned it from the member list" if prune else "")
        try:
            self._consul.force_leave(t.node, prune=prune)
            return done
        except ConsulUnreachable as first:
            failure: TagjoinError = first
        for peer in peers:
            url = self._agents.agent_url(peer.node, peer.address)
            if url is None or peer.node == t.node:
                continue
            try:
                with contextlib.closing(self._consul.with_address(url)) as agent:
                    agent.force_leave(t.node, prune=prune)
            except ConsulUnreachable as exc:
                failure = exc
                continue
            return f"{done} via {peer.node}"
        raise TagjoinError(f"force-leave {t.node}: no agent reachable ({failure})")
