"""Each invariant checker on hand-made observations: what it flags, what it lets pass, in which words."""

from __future__ import annotations

from dataclasses import replace

from tagjoin.core.model import MemberStatus
from tagjoin.sim.harness.invariants.l1_tag_on_leader import TagOnLeader
from tagjoin.sim.harness.invariants.l2_one_membership import OneMembership
from tagjoin.sim.harness.invariants.observations import NewLeader, RunEnd, TagWrite
from tagjoin.sim.harness.invariants.s1_no_split_brain import NoSplitBrain
from tagjoin.sim.harness.invariants.s2_writes_in_scope import WritesInScope
from tagjoin.sim.harness.invariants.s3_stale_writer import StaleWriterFenced, joiner_rank
from tagjoin.sim.harness.invariants.s4_live_server_tagged import LiveServerStaysTagged
from tagjoin.sim.harness.invariants.suite import InvariantSuite
from tagjoin.sim.harness.recording import LeaderSpan, Violation

A, B, C = "ip-10-0-1-10", "ip-10-0-2-10", "ip-10-0-3-10"
IA, IB, IC = "i-a", "i-b", "i-c"

# B leads in term 4 and carries the tag; A, an old leader, writes.
WRITE = TagWrite(
    t=100,
    writer=A,
    action="CreateTags",
    instance=IA,
    target=A,
    value="3",
    target_running=True,
    target_in_scope=True,
    removes=False,
    tags_before={IB: "4"},
    live_servers_before=frozenset({IB}),
    leader=LeaderSpan(50, None, B, 4),
    leader_instance=IB,
)
END = RunEnd(t=90_000, healed_at=30_000, leader=B, tag_holders=(B,), membership={A: MemberStatus.ALIVE})


def test_s1_flags_leaders_of_two_raft_clusters() -> None:
    check = NoSplitBrain()
    assert check.observe(NewLeader(10, A, 2, frozenset({"a+b+c"}))) == []
    assert check.observe(NewLeader(20, C, 1, frozenset({"c", "a+b"}))) == [
        Violation("S1", 20, "two Raft clusters lead at once: ['a+b', 'c']")
    ]
    assert check.observe(WRITE) == []


def test_s2_flags_writes_outside_running_scoped_instances() -> None:
    check = WritesInScope()
    assert check.observe(WRITE) == []
    stopped = replace(WRITE, target_running=False)
    foreign = replace(WRITE, target_in_scope=False)
    expected = [Violation("S2", 100, f"{A} wrote CreateTags to {IA} outside scope")]
    assert check.observe(stopped) == expected
    assert check.observe(foreign) == expected
    # A conditional delete on this cluster's instance that stopped or terminated a moment ago: a
    # lagging EC2 read still showed it running with the value the delete carries.
    gone = replace(stopped, action="DeleteTags", value="3", removes=True)
    assert check.observe(gone) == []
    unconditional = replace(gone, value=None)
    assert check.observe(unconditional) == [Violation("S2", 100, f"{A} wrote DeleteTags to {IA} outside scope")]
    assert check.observe(replace(gone, target_in_scope=False)) == [
        Violation("S2", 100, f"{A} wrote DeleteTags to {IA} outside scope")
    ]


def test_s3_flags_a_stale_writer_that_removes_or_outranks_the_leaders_tag() -> None:
    check = StaleWriterFenced()
    assert check.observe(WRITE) == []  # term 3 ranks below the leader's 4
    assert check.observe(replace(WRITE, value="4")) == [
        Violation("S3", 100, f"{A} tagged {A}=4, outranking leader's 4")
    ]
    removal = replace(WRITE, action="DeleteTags", instance=IB, target=B, value=None, removes=True)
    assert check.observe(removal) == [Violation("S3", 100, f"{A} removed leader {B}'s tag 4 (term 4)")]


def test_s3_judges_the_tag_the_leader_wrote_in_its_own_term_not_an_older_one() -> None:
    # The leader B (term 4) still carries its term-2 tag; A's term-3 pass, stalled after its last
    # look, outranks and removes that `2`. EC2 cannot refuse either write (S3's docstring), and
    # the tag B writes in term 4 is beyond A's reach; the strict rule shows the window.
    older = {IB: "2"}
    outrank = replace(WRITE, tags_before=older)
    removal = replace(WRITE, action="DeleteTags", instance=IB, target=B, value=None, removes=True, tags_before=older)
    assert StaleWriterFenced().observe(outrank) == []
    assert StaleWriterFenced().observe(removal) == []
    strict = StaleWriterFenced(own_term_only=False)
    assert strict.observe(outrank) == [Violation("S3", 100, f"{A} tagged {A}=3, outranking leader's 2")]
    assert strict.observe(removal) == [Violation("S3", 100, f"{A} removed leader {B}'s tag 2 (term 4)")]
    # The naive scheme's untermed `true` is always the leader's.
    naive = replace(removal, tags_before={IB: "true"})
    assert StaleWriterFenced().observe(naive) == [Violation("S3", 100, f"{A} removed leader {B}'s tag true (term 4)")]


def test_s3_lets_the_leader_itself_and_leaderless_moments_write() -> None:
    check = StaleWriterFenced()
    assert check.observe(replace(WRITE, writer=B, value="9")) == []
    assert check.observe(replace(WRITE, leader=None, leader_instance=None, value="9")) == []
    assert check.observe(replace(WRITE, tags_before={}, value="9")) == []  # the leader holds no tag yet


def test_s3_flags_lowering_the_leaders_own_tag_even_by_its_own_node() -> None:
    check = StaleWriterFenced()
    # A stalled term-3 pass on the leader's node B writes 3 over the 4 a newer pass put there.
    lowering = replace(WRITE, writer=B, instance=IB, target=B, value="3")
    assert check.observe(lowering) == [Violation("S3", 100, f"{B} lowered leader {B}'s tag 4 to 3")]
    assert check.observe(replace(lowering, value="4")) == []
    # Debris above the leader's term (an earlier cluster's) may be written over.
    assert check.observe(replace(lowering, tags_before={IB: "95"})) == []
    assert check.observe(replace(lowering, value="true", tags_before={IB: "true"})) == []


def test_s3_ranks_a_naive_true_below_every_term() -> None:
    assert joiner_rank("true") < joiner_rank("0") < joiner_rank("7")


def test_s4_flags_removing_the_last_tag_on_a_live_server() -> None:
    check = LiveServerStaysTagged()
    last = replace(WRITE, writer=B, action="DeleteTags", instance=IB, target=B, value=None, removes=True)
    assert check.observe(last) == [Violation("S4", 100, f"{B} removed the last tag on a live server ({B})")]
    assert check.observe(replace(last, live_servers_before=frozenset({IB, IC}))) == []
    assert check.observe(replace(last, live_servers_before=frozenset())) == []  # a dead server's tag
    assert check.observe(replace(last, removes=False)) == []


def test_l1_wants_the_tag_on_the_leader_alone_once_settled() -> None:
    check = TagOnLeader(30_000)
    assert check.finish(END) == []
    assert check.finish(replace(END, tag_holders=(A, B))) == [
        Violation("L1", 90_000, f"30000ms after the faults healed: leader {B}, tags on ['{A}', '{B}']")
    ]
    assert check.finish(replace(END, leader=None)) == [
        Violation("L1", 90_000, f"30000ms after the faults healed: leader None, tags on ['{B}']")
    ]
    assert check.finish(replace(END, tag_holders=(), healed_at=60_001)) == []  # too soon to judge


def test_l2_wants_every_live_node_alive_in_the_leaders_view_once_settled() -> None:
    check = OneMembership(30_000)
    assert check.finish(END) == []
    split = replace(END, membership={C: MemberStatus.FAILED, A: None, B: MemberStatus.ALIVE})
    assert check.finish(split) == [Violation("L2", 90_000, f"live nodes not members of the cluster: ['{A}', '{C}']")]
    assert check.finish(replace(split, leader=None)) == []
    assert check.finish(replace(split, healed_at=60_001)) == []


def test_the_suite_reports_one_observation_in_invariant_order() -> None:
    suite = InvariantSuite.standard(settle_ms=30_000)
    # An old leader removes the new leader's (only) tag on a stopped instance: S2, S3 and S4 at once.
    write = replace(WRITE, action="DeleteTags", instance=IB, target=B, value=None, removes=True, target_running=False)
    assert [v.invariant for v in suite.observe(write)] == ["S2", "S3", "S4"]
    assert [v.invariant for v in suite.finish(replace(END, leader=None, membership={}))] == ["L1"]
    assert [c.name for c in suite.checkers] == ["S1", "S2", "S3", "S4", "L1", "L2"]
