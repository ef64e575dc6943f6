"""The adversarial schedule knobs the mutation harness turns on (ScenarioConfig.flip_faults, stale_tags)."""

from __future__ import annotations

from tagjoin.sim.harness.scenario import ScenarioConfig, run_scenario


def _lines(schedule: list[str], *words: str) -> list[str]:
    return [line for line in schedule if any(w in line for w in words)]


def test_a_flip_pauses_the_successors_handoff_pass_and_the_fence_holds() -> None:
    config = ScenarioConfig(seed=0, strategy="fenced", flip_faults=1, stale_tags=2)
    rec = run_scenario(config)
    flips = _lines(rec.schedule, "transfer-leader", "flip-pass", "stale tags")
    assert [line.split()[1] for line in flips] == ["stale", "transfer-leader", "flip-pass"]
    successor = flips[1].split()[-1]
    assert f"flip-pass {successor} paused" in flips[2]
    assert any(f.kind == "flip-pass" and f.target == successor for f in rec.faults)
    # L1 is judged on this run: the two clients' term-0 tags were cleared along with the handoff.
    assert rec.violations == []
    assert run_scenario(config).schedule == rec.schedule  # the seed alone fixes the schedule


def test_the_knobs_are_off_by_default() -> None:
    rec = run_scenario(ScenarioConfig(seed=0, strategy="fenced"))
    assert _lines(rec.schedule, "transfer-leader", "flip-pass", "stale tags") == []
