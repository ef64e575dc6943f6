"""10. Search power: hand-written mutants of core's decisions, each run through a simulator sweep alone.

.venv/bin/python -m benchmarks.mutants --seeds 500            # the whole table on stdout
.venv/bin/python -m benchmarks.mutants --only stale-term --seeds 50
.venv/bin/python -m benchmarks --only mutants                 # into a RESULTS.md section (not in the default run)

Each mutant is one decision of core changed the way a plausible bug would change it (a few need two
points to reach the decision at all: a follower must pass every leader gate to write). It is applied
to a copy of the source tree in a temporary directory, by exact text replacement that fails loudly
when the original text is not found, so a refactor of core cannot turn a mutant into a silent no-op;
the working tree is never touched and nothing is mocked. The copy runs `tagjoin sim run --strategy S
--json` in a subprocess with PYTHONPATH pointing at it, for each strategy S in turn (`--strategy`,
default fenced then watch), in growing chunks of seeds, and stops at the first chunk with a
violation: the table gives the strategy, the first failing seed and the invariants it broke. Unit
tests are deliberately not run: the question is what the simulator alone finds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import Section

ROOT = Path(__file__).resolve().parent.parent
# What a mutated tree needs to run `python -m tagjoin sim run`; tagjoin/core, sim and tui are
# symlinks to the top-level folders, copied as links so the copy resolves to its own files.
TREE = ("tagjoin", "core", "sim", "tui")
SAFETY, COST, LIVENESS = "safety", "cost", "liveness"


class MutantError(Exception):
    """A mutant cannot be applied: its original text is not (or not exactly once) in the file."""


@dataclass(frozen=True)
class Patch:
    path: str  # relative to the repository root, e.g. core/handoff.py
    old: str
    new: str


@dataclass(frozen=True)
class Mutant:
    name: str
    kind: str  # SAFETY, COST or LIVENESS: what a correct simulator should flag
    what: str
    patches: tuple[Patch, ...]
    # Set when another check refuses every write this mutant lets through, so that no schedule of
    # the model can show it alone: which check, and why. A pair mutant that removes that check too
    # (see `pair`) stands in for it and must be caught.
    masked_by: str = ""


def by_name_in(mutants: tuple[Mutant, ...], name: str) -> Mutant:
    for mutant in mutants:
        if mutant.name == name:
            return mutant
    raise KeyError(f"unknown mutant {name!r}; known: {', '.join(m.name for m in mutants)}")


def pair(first: Mutant, second: Mutant) -> Mutant:
    """Both mutants at once: what the simulator must catch when `first` is masked by `second`'s check."""
    return Mutant(
        f"{first.name}+{second.name}", SAFETY, f"{first.what}; and {second.what}", first.patches + second.patches
    )


def _p(path: str, old: str, new: str) -> Patch:
    return Patch(path, old, new)


_HANDOFF, _KEEPER, _STORE = "core/handoff.py", "core/keeper.py", "core/aws/tag_store.py"
_APPLY_CREATE = """    if p.create is not None:
        yield Checkpoint(f"ec2:CreateTags {p.create.instance_id}")
        store.create_tag(p.create.instance_id, p.create.key, p.create.value)
        report.created.append(p.create)
"""
_APPLY_DELETES = """    for d in p.deletes:
        yield Checkpoint(f"ec2:DeleteTags {d.instance_id}")
        store.delete_tag_if(d.instance_id, d.key, d.value)
        report.deleted.append(d)
"""
_LEADER_GATE = "    if not me.is_leader:\n        return Observation(me, confirmed=False)\n"
_STATUS_GATE = "    if leader is None or leader_address(leader) != me.address:\n"

MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "stale-term",
        SAFETY,
        "plan ignores a tag with a higher term than ours (the stale-term check dropped)",
        (_p(_HANDOFF, "    if newer and not obs.confirmed_after_read:\n", "    if False:\n"),),
        masked_by=(
            "last_look: a leader's higher tag exists only after its election, and Raft's lease ends the old "
            "leader's office before any follower campaigns (hashicorp/raft config.go ValidateConfig: "
            "LeaderLeaseTimeout <= HeartbeatTimeout), so the pass that read it meets an agent that says "
            "Follower at its last look (a paused agent handles its queued messages first on resume)"
        ),
    ),
    Mutant(
        "delete-before-create",
        SAFETY,
        "apply deletes the old holders before it tags the new one (break before make)",
        (_p(_HANDOFF, _APPLY_CREATE + _APPLY_DELETES, _APPLY_DELETES + _APPLY_CREATE),),
    ),
    Mutant(
        "gte-for-gt",
        LIVENESS,
        "`>=` for `>` in plan's newer-term test: our own tag at our term counts as newer",
        (
            _p(
                _HANDOFF,
                "newer = [i for i in obs.tagged if (parse_term(i.tags.get(tag_key)) or -1) > term]",
                "newer = [i for i in obs.tagged if (parse_term(i.tags.get(tag_key)) or -1) >= term]",
            ),
        ),
    ),
    Mutant(
        "unconditional-delete",
        SAFETY,
        "DeleteTags without the value condition: removes the key whatever value it has now",
        (
            _p(
                _STORE,
                "lambda: self.api.delete_tags([instance_id], key, value))",
                "lambda: self.api.delete_tags([instance_id], key, None))  # type: ignore[arg-type]",
            ),
        ),
    ),
    Mutant(
        "first-page-only",
        SAFETY,
        "pagination ignored: every DescribeInstances/DescribeTags read stops after its first page",
        (_p(_STORE, "            if token is None:\n                return pages\n", "            return pages\n"),),
    ),
    Mutant(
        "follower-proceeds",
        COST,
        "observe's leader gates skipped: a follower reads EC2 (plan still refuses to write)",
        (_p(_HANDOFF, _LEADER_GATE, ""), _p(_HANDOFF, _STATUS_GATE, "    if leader is None:\n")),
    ),
    Mutant(
        "follower-writes",
        SAFETY,
        "every server counts as leader and the status/leader check is gone: followers write",
        (
            _p(
                "core/model.py",
                'return self.raft_state == "Leader"',
                'return self.raft_state in ("Leader", "Follower")',
            ),
            _p(_HANDOFF, _STATUS_GATE, "    if leader is None:\n"),
        ),
    ),
    Mutant(
        "keeper-deaf-to-raft",
        LIVENESS,
        "the keeper never notices a raft state change (passes only on health changes, anti-entropy)",
        (_p(_KEEPER, "        raft_moved = raft != self._raft\n", "        raft_moved = False\n"),),
    ),
    Mutant(
        "join-self",
        SAFETY,
        "select_targets keeps this node's own address (joining yourself 'succeeds' in Consul)",
        (
            _p(
                "core/discover.py",
                "    own = set(own_addresses)\n    holders = [",
                "    own: set[str] = set()\n    holders = [",
            ),
        ),
        masked_by=(
            "the kit's retry-join.hcl: Consul's cloud auto-join lists every running instance of the cluster, "
            "so the attempt that joins the node to itself joins it to the others too (sim/harness/booting.py "
            "_retry_join); a node only ever finds its own instance tagged after it was a member, and Serf's "
            "reconnect merges a former member back"
        ),
    ),
    Mutant(
        "lost-scope",
        SAFETY,
        "the store's filters drop the cluster tag: reads and writes reach the whole account",
        (_p(_STORE, "        return self.scope.filters()\n", "        return []\n"),),
    ),
    Mutant(
        "no-last-look",
        SAFETY,
        "the pass writes without asking the agent again right before (last_look skipped)",
        (_p(_HANDOFF, "            p = yield from last_look(consul, obs, p)\n", "            pass\n"),),
        masked_by=(
            "keep's settle look: what a pass resumed after its node was deposed can write is its own older tag "
            "and deletes of values it read before the new leader's own tag existed, so the tag stands on the "
            "deposed server beside the leader's until the leader's keeper looks again (KeepConfig.settle, 10 s "
            "after a change-triggered pass) and removes it; joiners rank the leader's higher term first meanwhile"
        ),
    ),
    Mutant(
        "no-pass-lock",
        SAFETY,
        "handoff_pass ignores the node's pass lock: two passes of one node overlap",
        (_p(_HANDOFF, "    if lock is not None and not lock.try_acquire():\n", "    if False:\n"),),
    ),
    Mutant(
        "no-quorum-read",
        SAFETY,
        "observe trusts the local raft state: the consistent read that proves a quorum is skipped",
        (
            _p(
                _HANDOFF,
                '        consul.health_node(me.node_name, consistency="consistent")\n'
                "    except (NoLeader, BadResponse):\n"
                "        return Observation(me, confirmed=False)\n"
                '    yield Checkpoint("consul:status/leader", STATUS_LEADER)\n',
                "        pass\n    except (NoLeader, BadResponse):\n        return Observation(me, confirmed=False)\n"
                '    yield Checkpoint("consul:status/leader", STATUS_LEADER)\n',
            ),
        ),
        masked_by=(
            "the same lease rule keeps a local Leader answer from overlapping a newer leader except across a "
            "pause, and a pause after the quorum read defeats that read too; a newer leader's tag then meets "
            "the stale-term check, whose quorum read (confirm_after_read) the mutant keeps, and the last look. "
            "The read guards what the model does not have: a lease held too long by a clock that drifts"
        ),
    ),
    Mutant(
        "watch-handler-no-lock",
        SAFETY,
        "the watch handler's pass does not take the node's lock (keep and watch overlap)",
        (
            _p(
                "core/watch_handler.py",
                "handoff_pass(consul, store, clock, instance_id=instance_id, lock=lock)",
                "handoff_pass(consul, store, clock, instance_id=instance_id, lock=None)",
            ),
        ),
    ),
    Mutant(
        "no-settle-look",
        LIVENESS,
        "keep does not look again after a change-triggered pass (KeepConfig.settle ignored; seed 670's bug)",
        (_p(_KEEPER, "    settle: float = 10.0\n", "    settle: float = 0.0\n"),),
    ),
    Mutant(
        "keeper-no-look-again",
        LIVENESS,
        "after an unconfirmed, superseded or busy pass the keeper waits for the next trigger",
        (_p(_KEEPER, "_LOOK_AGAIN = (Decision.UNCONFIRMED, Decision.SUPERSEDED, Decision.BUSY)", "_LOOK_AGAIN = ()"),),
        masked_by=(
            "keep's settle look: a pass that a change triggered is looked at again 10 s later whatever it "
            "decided, which covers the unconfirmed, superseded and busy passes the look again retries within "
            "a keep interval; the difference is up to 9 s more before the tag follows, which no invariant bounds"
        ),
    ),
)

# The mutant that removes a masking check as well: each must be caught (see Mutant.masked_by).
MUTANTS = (
    *MUTANTS,
    pair(by_name_in(MUTANTS, "stale-term"), by_name_in(MUTANTS, "no-last-look")),
    pair(by_name_in(MUTANTS, "no-last-look"), by_name_in(MUTANTS, "no-settle-look")),
)

# Every sweep of the harness, the control included, runs the adversarial schedule: besides the
# seed's fault, the leader paused in the middle of a pass (ScenarioConfig.extra_faults), and
# leadership moved to a server whose handoff pass is then paused while a successor takes over,
# with lower-term tags left on two running clients (flip_faults, stale_tags), and both tag
# processes the kit can ship running on every server (second_writers), each stalling once
# mid-pass while leadership moves A → B → A → B (stall_flips).
_SCENARIO = "sim/harness/scenario.py"
ADVERSARIAL = (
    Patch(_SCENARIO, "    extra_faults: int = 0\n", "    extra_faults: int = 1\n"),
    Patch(_SCENARIO, "    flip_faults: int = 0\n", "    flip_faults: int = 1\n"),
    Patch(_SCENARIO, "    stale_tags: int = 0\n", "    stale_tags: int = 2\n"),
    Patch(_SCENARIO, "    second_writers: bool = False\n", "    second_writers: bool = True\n"),
    Patch(_SCENARIO, "    stall_flips: int = 0\n", "    stall_flips: int = 1\n"),
)
# fenced runs `tagjoin keep`, which starts no pass on a follower; watch runs the handler on every
# server on each event, so a follower that goes on to EC2 shows there.
STRATEGIES = ("fenced", "watch")


def by_name(name: str) -> Mutant:
    return by_name_in(MUTANTS, name)


def mutated_text(text: str, patch: Patch) -> str:
    """`text` with `patch` applied; MutantError unless its original text occurs exactly once."""
    found = text.count(patch.old)
    if found != 1:
        where = "not found" if found == 0 else f"found {found} times"
        raise MutantError(f"{patch.path}: original text {where}: {patch.old.strip()[:80]!r}")
    return text.replace(patch.old, patch.new)


def copy_tree(dest: Path, source: Path = ROOT) -> Path:
    """The importable part of the source tree under `dest` (no caches, no virtualenv, no git)."""
    for name in TREE:
        shutil.copytree(
            source / name, dest / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    return dest


def apply(mutant: Mutant, tree: Path) -> None:
    """Patch the copy at `tree` in place. Every patch is checked before any file is written."""
    texts: dict[str, str] = {}
    for patch in mutant.patches:
        path = tree / patch.path
        if path.resolve().is_relative_to(ROOT.resolve()):
            raise MutantError(f"{path} is inside the working tree; mutants only ever patch a copy")
        texts[patch.path] = mutated_text(texts.get(patch.path) or path.read_text(), patch)
    for rel, text in texts.items():
        (tree / rel).write_text(text)


@dataclass(frozen=True)
class Control:
    """What the unmutated code did under one strategy: how many seeds it ran (from 0) and the
    (seed, invariant) pairs it failed."""

    seeds_run: int
    fails: frozenset[tuple[int, str]]

    def clean(self, violation: Mapping[str, object]) -> bool:
        seed = int(str(violation["seed"]))
        return seed < self.seeds_run and (seed, str(violation["invariant"])) not in self.fails


@dataclass
class Outcome:
    mutant: str
    kind: str
    seeds_run: int = 0
    first_seed: int | None = None
    invariants: list[str] = field(default_factory=list)  # broken in the first failing chunk, in order
    first_invariant: str | None = None  # the first violation of the first failing seed
    strategy: str = "-"  # the strategy whose sweep caught it
    controls: dict[str, Control] = field(default_factory=dict)  # the control row: strategy → what it did
    error: str | None = None  # the mutant could not be applied, or the sweep crashed
    masked: bool = False  # Mutant.masked_by is set: not catching it alone is expected
    seconds: float = 0.0

    @property
    def caught(self) -> bool:
        return self.first_seed is not None


def sweep(
    tree: Path,
    seeds: int,
    *,
    jobs: int,
    budget_s: float,
    seed_start: int = 0,
    strategy: str = "fenced",
    extra: Sequence[str] = (),
    control: Control | None = None,
    through: bool = False,
) -> tuple[int, list[dict[str, object]], str | None]:
    """Seeds run, the violations of the first failing chunk (empty if none), and an error.

    With a `control` (the unmutated code's sweep of this strategy), a violation counts only on a
    seed the control ran and did not fail with the same invariant: anything else says nothing of
    the mutant. `through` runs every seed and returns every violation."""
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    deadline = time.monotonic() + budget_s
    done, chunk = 0, 10
    found: list[dict[str, object]] = []
    while done < seeds:
        left = deadline - time.monotonic()
        if left <= 0:
            return done, found, f"time budget of {budget_s:.0f} s spent after {done} seeds"
        n = min(chunk, seeds - done)
        cmd = [
            sys.executable,
            "-m",
            "tagjoin",
            "sim",
            "run",
            "--strategy",
            strategy,
            "--seed-start",
            str(seed_start + done),
            "--seeds",
            str(n),
            "--jobs",
            str(jobs),
            "--json",
            "--quiet",
            *extra,
        ]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tree, timeout=left, check=False)
        except subprocess.TimeoutExpired:
            return done, found, f"time budget of {budget_s:.0f} s spent after {done} seeds"
        if run.returncode not in (0, 1):
            return done, found, f"sweep exited {run.returncode}: {run.stderr.strip()[-400:]}"
        report = json.loads(run.stdout)
        done += n
        violations = [v for v in report["violations"] if control is None or control.clean(v)]
        found.extend(violations)
        if violations and not through:
            return done, violations, None
        chunk = min(chunk * 2, 80)
    return done, found, None


def measure(
    mutant: Mutant | None,
    seeds: int,
    *,
    jobs: int,
    budget_s: float,
    strategies: Sequence[str] = STRATEGIES,
    extra: Sequence[str] = (),
    controls: Mapping[str, Control] | None = None,
) -> Outcome:
    """One row of the table; `mutant` None is the control run on unmutated code, which sweeps every
    seed of every strategy and records what it fails (`Outcome.controls`). A mutant's strategies
    sweep in turn (sharing the time budget) until one catches it where its control, in
    `controls`, ran clean (see `sweep`)."""
    out = Outcome(mutant.name if mutant else "(none: control)", mutant.kind if mutant else "-")
    out.masked = mutant is not None and bool(mutant.masked_by)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tagjoin-mutant-") as tmp:
        tree = copy_tree(Path(tmp))
        try:
            apply(Mutant("adversarial", "-", "schedule", ADVERSARIAL), tree)
            if mutant is not None:
                apply(mutant, tree)
        except MutantError as exc:
            out.error = str(exc)
            return out
        violations: list[dict[str, object]] = []
        for strategy in strategies:
            left = budget_s - (time.monotonic() - started)
            done, violations, error = sweep(
                tree,
                seeds,
                jobs=jobs,
                budget_s=left,
                strategy=strategy,
                extra=extra,
                control=None if controls is None else controls.get(strategy, Control(0, frozenset())),
                through=mutant is None,
            )
            out.seeds_run += done
            out.error = out.error or error
            if mutant is None:
                fails = frozenset((int(str(v["seed"])), str(v["invariant"])) for v in violations)
                out.controls[strategy] = Control(done, fails)
                out.invariants = sorted({*out.invariants, *(f"{strategy}: {v['invariant']}" for v in violations)})
                continue
            if violations:
                out.strategy = strategy
                break
    out.seconds = time.monotonic() - started
    if violations and mutant is not None:
        first = min(violations, key=lambda v: (int(str(v["seed"])), float(str(v["t_ms"]))))
        out.first_seed = int(str(first["seed"]))
        out.first_invariant = str(first["invariant"])
        out.invariants = sorted({str(v["invariant"]) for v in violations})
    return out


def _seed_list(fails: frozenset[tuple[int, str]]) -> str:
    """The control's failures for the table; a mutant gets no credit for these."""
    shown = ", ".join(f"{seed} {inv}" for seed, inv in sorted(fails)[:5])
    return f"{len(fails)} ({shown}{' …' if len(fails) > 5 else ''})" if fails else "none"


def table(outcomes: Sequence[Outcome]) -> str:
    lines = [
        "| mutant | class | caught | strategy | invariant (first; all in that chunk) | first seed | seeds run | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        if o.kind == "-":
            ran = "; ".join(f"{st}: {c.seeds_run} seeds, failing {_seed_list(c.fails)}" for st, c in o.controls.items())
            lines.append(
                f"| {o.mutant} | - | {ran or '-'}{f' ({o.error})' if o.error else ''} | - | "
                f"{', '.join(o.invariants) or '-'} | - | {o.seeds_run} | {o.seconds:.0f} |"
            )
            continue
        if o.error and not o.caught:
            caught = "**error**" if o.seeds_run == 0 else "no (budget)"
        else:
            caught = "yes" if o.caught else ("masked (below)" if o.masked else "**no**")
        inv = f"{o.first_invariant} ({', '.join(o.invariants)})" if o.caught else (o.error or "-")
        first = str(o.first_seed) if o.first_seed is not None else "-"
        row = f"| {o.mutant} | {o.kind} | {caught} | {o.strategy} | {inv} | {first} | {o.seeds_run} | {o.seconds:.0f} |"
        lines.append(row)
    return "\n".join(lines)


def run_all(
    names: Sequence[str] | None,
    seeds: int,
    *,
    jobs: int,
    budget_s: float,
    control: bool = True,
    strategies: Sequence[str] = STRATEGIES,
) -> list[Outcome]:
    chosen = [by_name(n) for n in names] if names else list(MUTANTS)
    outcomes: list[Outcome] = []
    controls: dict[str, Control] | None = None
    if control:
        outcomes.append(measure(None, seeds, jobs=jobs, budget_s=budget_s * len(strategies), strategies=strategies))
        controls = outcomes[-1].controls
        print(table(outcomes[-1:]).splitlines()[-1], flush=True)
    for mutant in chosen:
        outcomes.append(measure(mutant, seeds, jobs=jobs, budget_s=budget_s, strategies=strategies, controls=controls))
        print(table(outcomes[-1:]).splitlines()[-1], flush=True)
    return outcomes


def run(out: Path, quick: bool = False) -> Section:
    """The RESULTS.md section (benchmarks/__main__.py); quick: a few mutants over 20 seeds."""
    seeds = 20 if quick else 500
    names = ["stale-term", "delete-before-create"] if quick else None
    outcomes = run_all(names, seeds, jobs=os.cpu_count() or 1, budget_s=600)
    section = Section("10. Search power: mutants of core caught by the simulator alone")
    section.text(
        f"`.venv/bin/python -m benchmarks.mutants --seeds {seeds}`: each mutant applied to a copy of the tree, "
        "`tagjoin sim run --strategy fenced`, then `watch`, over seeds 0…N-1 in growing chunks, stopped at the "
        "first chunk with a violation.",
        table(outcomes),
    )
    masked = [m for m in MUTANTS if m.masked_by and (names is None or m.name in names)]
    if masked:
        section.text(
            "Masked mutants: another check of the same pass refuses every write they let through.",
            "\n".join(f"- `{m.name}`: {m.masked_by}." for m in masked),
        )
    safety = [o for o in outcomes if o.kind == SAFETY and not o.masked]
    section.aim(
        f"every safety mutant not masked by another check caught within {seeds} seeds",
        all(o.caught for o in safety),
        f"{sum(o.caught for o in safety)} of {len(safety)}",
    )
    return section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mutants", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200, help="seeds per mutant, at most 500 (default 200)")
    parser.add_argument("--only", default="", help="comma-separated mutant names (default: all)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="tagjoin sim run --jobs")
    parser.add_argument("--budget", type=float, default=900, help="seconds per mutant at most (default 900)")
    parser.add_argument(
        "--strategy",
        default=",".join(STRATEGIES),
        help=f"comma-separated strategies each mutant is swept under, in turn (default {','.join(STRATEGIES)})",
    )
    parser.add_argument("--no-control", action="store_true", help="skip the run on unmutated code")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args(argv)
    if args.list:
        for m in MUTANTS:
            print(f"{m.name:24} {m.kind:9} {m.what}")
        return 0
    if not 1 <= args.seeds <= 500:
        parser.error("--seeds must be between 1 and 500")
    names = [n.strip() for n in args.only.split(",") if n.strip()] or None
    strategies = [s.strip() for s in args.strategy.split(",") if s.strip()]
    if not strategies or any(s not in ("fenced", "watch", "naive") for s in strategies):
        parser.error("--strategy takes fenced, watch or naive, comma-separated")
    try:
        outcomes = run_all(
            names,
            args.seeds,
            jobs=args.jobs,
            budget_s=args.budget,
            control=not args.no_control,
            strategies=strategies,
        )
    except KeyError as exc:
        parser.error(str(exc))
    print()
    print(f"N = {args.seeds} seeds per mutant (fewer where one failed first)")
    print(table(outcomes))
    missed = [o.mutant for o in outcomes if o.kind == SAFETY and not o.caught and not o.masked]
    for m in MUTANTS:
        if m.masked_by and (names is None or m.name in names):
            print(f"\nmasked, {m.name}: {m.masked_by}")
    broken = [o.mutant for o in outcomes if o.error and o.seeds_run == 0]
    return 1 if missed or broken else 0


if __name__ == "__main__":
    sys.exit(main())
