"""Raft profiles: Consul >= 1.20 (pre-vote) against Consul <= 1.19 (no pre-vote), same seeds."""

from __future__ import annotations

import json

import pytest

from tagjoin.core.cli import main
from tagjoin.sim.consul.cluster import ClusterConfig, build_cluster
from tagjoin.sim.consul.cluster_events import LeaderElected, LeadershipLost
from tagjoin.sim.harness.recording import Recording
from tagjoin.sim.harness.scenario import ScenarioConfig, run_scenario


def _isolate_a_follower_then_heal(seed: int, *, pre_vote: bool) -> tuple[int, int, list[str], list[LeaderElected]]:
    """(term before, term after, step-down reasons, elections after the heal) of a 3-server cluster
    whose follower was cut off for 40 s."""
    cluster = build_cluster(seed, config=ClusterConfig(pre_vote=pre_vote))
    cluster.engine.run_for(20_000)
    leader = cluster.leader()
    assert leader is not None
    term = cluster.term(leader)
    follower = next(n for n in cluster.servers() if n != leader)
    lost: list[str] = []
    elected: list[LeaderElected] = []
    cluster.subscribe(LeadershipLost, lambda ev: lost.append(ev.reason))
    cluster.isolate(follower)
    cluster.engine.run_for(40_000)
    assert cluster.leader() == leader and lost == [], "the majority side keeps its leader either way"
    cluster.subscribe(LeaderElected, elected.append)
    cluster.heal()
    cluster.engine.run_for(60_000)
    after = cluster.leader()
    assert after is not None
    return term, cluster.term(after), lost, elected


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_rejoining_follower_deposes_the_leader_only_without_pre_vote(seed: int) -> None:
    term, term_after, lost, elected = _isolate_a_follower_then_heal(seed, pre_vote=True)
    assert (term_after, lost, elected) == (term, [], [])

    term, term_after, lost, elected = _isolate_a_follower_then_heal(seed, pre_vote=False)
    assert lost == ["follower has a newer term"]
    assert len(elected) == 1 and elected[0].term == term_after
    assert term_after > term + 1, "the lone campaigns inflated the term; the new leader is above it"


def _tag_terms(rec: Recording) -> list[str]:
    """Every value the tag took, in order (each one is a handoff)."""
    values: list[str] = []
    for sample in rec.tags:
        for value in sample.holders.values():
            if not values or values[-1] != value:
                values.append(value)
    return values


def test_no_pre_vote_one_way_cut_heals_into_a_second_election_and_a_second_handoff() -> None:
    # Seed 2 cuts a follower off from the leader (it still hears the third server) for 14 s.
    runs = {
        profile: run_scenario(ScenarioConfig(seed=2, faults=("one-way-partition",), raft_profile=profile))
        for profile in ("pre-vote", "no-pre-vote")
    }
    pre, old = runs["pre-vote"], runs["no-pre-vote"]
    assert pre.schedule == old.schedule and any("one-way-partition" in line for line in pre.schedule)
    assert [span.term for span in pre.leaders] == [2]
    assert _tag_terms(pre) == ["2"]
    terms = [span.term for span in old.leaders]
    assert len(terms) == 2 and terms[1] > terms[0] + 1
    assert _tag_terms(old) == ["2", str(terms[1])], "the keeper hands the tag to the new term"
    assert pre.violations == [] and old.violations == []


def test_scenario_rejects_an_unknown_raft_profile() -> None:
    with pytest.raises(ValueError, match="unknown raft profile"):
        run_scenario(ScenarioConfig(seed=0, raft_profile="pre-pre-vote"))


def test_sim_run_both_profiles_reports_each_apart(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["sim", "run", "--quiet", "--jobs", "1", "--seed", "2", "--faults", "one-way-partition"]
    assert main([*args, "--raft-profile", "both", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["raft_profiles"] == ["pre-vote", "no-pre-vote"]
    strategies = report["strategies"]
    assert list(strategies) == ["fenced/pre-vote", "fenced/no-pre-vote"]
    # The same seed: no leader change with pre-vote, one (the deposed leader) without.
    assert [strategies[name]["failovers"] for name in strategies] == [0, 1]
    assert main([*args, "--json"]) == 0
    single = json.loads(capsys.readouterr().out)
    assert list(single["strategies"]) == ["fenced"] and single["raft_profiles"] == ["pre-vote"]


def test_sim_run_rejects_an_unknown_raft_profile(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["sim", "run", "--raft-profile", "pre-pre-vote"])
    assert exit_.value.code == 2
    assert "--raft-profile" in capsys.readouterr().err
