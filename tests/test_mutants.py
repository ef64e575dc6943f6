"""The mutation harness (benchmarks/mutants.py): mutants patch a copy, exactly, or refuse loudly."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.mutants import (
    ADVERSARIAL,
    MUTANTS,
    ROOT,
    Mutant,
    MutantError,
    Patch,
    apply,
    by_name,
    copy_tree,
    mutated_text,
)


def _tree(tmp_path: Path, *paths: str) -> Path:
    """A copy holding only the files the test patches (a full copy is not needed to patch text)."""
    for rel in paths:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text((ROOT / rel).read_text())
    return tmp_path


def test_a_mutant_patches_the_copy_and_leaves_the_working_tree_alone(tmp_path: Path) -> None:
    mutant = by_name("delete-before-create")
    original = (ROOT / "core/handoff.py").read_text()
    tree = _tree(tmp_path, "core/handoff.py")
    apply(mutant, tree)
    mutated = (tree / "core/handoff.py").read_text()
    patch = mutant.patches[0]
    assert patch.old in original and patch.old not in mutated and patch.new in mutated
    assert mutated != original
    assert (ROOT / "core/handoff.py").read_text() == original


def test_a_mutant_whose_original_text_is_gone_is_refused(tmp_path: Path) -> None:
    tree = _tree(tmp_path, "core/handoff.py")
    gone = Mutant("gone", "safety", "refactored away", (Patch("core/handoff.py", "no such line in core\n", "x\n"),))
    with pytest.raises(MutantError, match="original text not found"):
        apply(gone, tree)
    twice = Patch("core/handoff.py", "yield Checkpoint(", "x")
    with pytest.raises(MutantError, match=r"found .* times"):
        mutated_text((ROOT / "core/handoff.py").read_text(), twice)


def test_a_refused_mutant_writes_nothing(tmp_path: Path) -> None:
    tree = _tree(tmp_path, "core/handoff.py")
    before = (tree / "core/handoff.py").read_text()
    half = Mutant(
        "half",
        "safety",
        "second patch missing",
        (MUTANTS[0].patches[0], Patch("core/handoff.py", "no such line in core\n", "x\n")),
    )
    with pytest.raises(MutantError):
        apply(half, tree)
    assert (tree / "core/handoff.py").read_text() == before


def test_the_harness_never_patches_the_working_tree() -> None:
    with pytest.raises(MutantError, match="inside the working tree"):
        apply(by_name("stale-term"), ROOT)


def test_every_mutant_applies_to_core_as_it_is_now(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path)
    for mutant in MUTANTS:
        for patch in mutant.patches:
            mutated_text((tree / patch.path).read_text(), patch)  # raises if core moved under the mutant
    assert len({m.name for m in MUTANTS}) == len(MUTANTS)
    for patch in ADVERSARIAL:
        mutated_text((tree / patch.path).read_text(), patch)  # the adversarial knobs are still there


@pytest.mark.sweep
def test_every_safety_mutant_fails_a_sweep() -> None:
    from benchmarks.mutants import SAFETY, run_all

    chosen = [m.name for m in MUTANTS if m.kind == SAFETY and not m.masked_by]
    outcomes = run_all(chosen, 500, jobs=2, budget_s=900, control=True)
    assert [o.mutant for o in outcomes if not o.caught] == []


@pytest.mark.sweep
def test_a_follower_that_calls_ec2_fails_the_cost_invariant_under_watch() -> None:
    from benchmarks.mutants import run_all

    (outcome,) = run_all(["follower-proceeds"], 100, jobs=2, budget_s=600, control=False)
    assert (outcome.caught, outcome.strategy, outcome.first_invariant) == (True, "watch", "C1")


def test_a_masked_mutant_says_what_masks_it_and_has_a_caught_pair() -> None:
    masked = [m for m in MUTANTS if m.masked_by]
    assert {m.name for m in masked} >= {"stale-term", "no-last-look"}
    names = {m.name for m in MUTANTS}
    assert {"stale-term+no-last-look", "no-last-look+no-settle-look"} <= names
    assert all(m.kind == "safety" for m in MUTANTS if "+" in m.name)


def test_a_catch_counts_only_where_the_control_ran_clean() -> None:
    from benchmarks.mutants import Control

    control = Control(seeds_run=10, fails=frozenset({(3, "L1")}))
    assert not control.clean({"seed": 3, "invariant": "L1"}), "the control fails this seed the same way"
    assert control.clean({"seed": 3, "invariant": "S1"}), "a different invariant on that seed is the mutant's"
    assert control.clean({"seed": 4, "invariant": "L1"})
    assert not control.clean({"seed": 10, "invariant": "S3"}), "the control never ran seed 10"


@pytest.mark.slow
def test_the_control_sweep_records_every_failure_and_a_mutant_sweep_skips_them() -> None:
    from benchmarks.mutants import Control, sweep

    # The unmutated naive scheme fails S4 on many seeds: run through, every failing seed is found.
    done, found, error = sweep(ROOT, 6, jobs=1, budget_s=300, strategy="naive", through=True)
    assert (done, error) == (6, None)
    control = Control(done, frozenset((int(str(v["seed"])), str(v["invariant"])) for v in found))
    assert control.fails, "naive is expected to fail some of these seeds"
    # The same code swept again as if it were a mutant finds nothing to credit.
    done, credited, error = sweep(ROOT, 6, jobs=1, budget_s=300, strategy="naive", control=control)
    assert (done, credited, error) == (6, [], None)
    # Without the control, the same sweep stops at the first failing chunk.
    done, uncredited, error = sweep(ROOT, 6, jobs=1, budget_s=300, strategy="naive")
    assert uncredited and error is None
