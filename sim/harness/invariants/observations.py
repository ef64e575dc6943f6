"""What the invariant checkers are shown: facts the scenario reads off the simulated world.

Each fact is taken at the instant it describes (a tag write is seen before EC2 applies it), so a
checker is a pure judgement over these values and never reads the world itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tagjoin.core.model import MemberStatus
from tagjoin.sim.harness.recording import LeaderSpan


@dataclass(frozen=True)
class NewLeader:
    """A server took office and became the leader the scenario follows.

    That happens when no leader with the same or a newer term is in office: the followed leader
    stepped down, crashed or shut down, or this term is newer than its.
    """

    t: int
    node: str
    term: int
    leading_clusters: frozenset[str]  # Raft cluster ids of every server believing it leads, paused ones too


@dataclass(frozen=True)
class TagWrite:
    """One write of the leader tag key on one instance, by a CreateTags/DeleteTags call EC2 accepted."""

    t: int
    writer: str  # node whose tag process made the call, "?" if none
    action: str  # CreateTags / DeleteTags
    instance: str
    target: str  # node name of the instance, "?" for an instance the scenario never launched
    value: str | None  # as sent; a DeleteTags without a value removes whatever is there
    target_running: bool
    target_in_scope: bool  # carries the cluster's scope tag
    removes: bool  # a delete that takes away a tag that is there
    tags_before: Mapping[str, str]  # instance → tag value, on the cluster's running instances, before the call
    live_servers_before: frozenset[str]  # the instances of `tags_before` whose server agent is up
    leader: LeaderSpan | None  # the followed leader, in office
    leader_instance: str | None  # its instance


@dataclass(frozen=True)
class Ec2Request:
    """One EC2 request attempt made by a core tag process (keeper or watch handler) of a server.

    Naive handlers and booting nodes are not shown: the naive scheme calls EC2 from every node by
    design, and a booting node has to look the tag up.
    """

    t: int
    process: str  # the tag process, e.g. "<node>" or "<node>/watch"
    action: str
    pass_started: int | None  # when the process's current handoff pass began; None: outside a pass
    led_in_pass: bool  # the process's node was the Raft leader at some instant since the pass began
    pass_calls: int  # attempts of this pass so far, this one included
    pass_budget: int  # the most a pass may cost (see C1)


@dataclass(frozen=True)
class RunEnd:
    """The world when the run stops."""

    t: int
    healed_at: int  # when the last fault was over (a permanent one counts from its start)
    leader: str | None  # the responsive leader with the highest term
    tag_holders: tuple[str, ...]  # node names of the cluster's running instances carrying the tag, sorted
    membership: Mapping[str, MemberStatus | None]  # agents that are up → their status in the leader's view


Observation = NewLeader | TagWrite | Ec2Request
