"""`tagjoin sim run` in chunks: worker processes, a Dask cluster, Ctrl-C, `--out`, and `sim replay`.

The report must not depend on what ran the seeds: `--jobs 1`, `--jobs 2` and a Dask cluster give
the same JSON, byte for byte.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tagjoin.core.cli import main
from tagjoin.sim.harness import sweep_pool
from tagjoin.sim.harness.metrics import Tally, summarise
from tagjoin.sim.harness.scenario import ScenarioConfig
from tagjoin.sim.harness.sweep_pool import Merger, SweepPlan, run_chunk, run_sweep
from tagjoin.sim.harness.sweep_report import to_json

SHORT = ["--duration", "60"]  # virtual seconds: a leader, then a fault (10-20 s in), short enough for a test
ROOT = Path(__file__).resolve().parent.parent


def _config(strategy: str = "fenced", seed: int = 0) -> ScenarioConfig:
    return ScenarioConfig(seed=seed, strategy=strategy, duration_ms=60_000, fault_window_ms=(10_000, 20_000))


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["sim", "run", "--quiet", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def chunks_of_one() -> list[Any]:
    """Six one-seed chunks, fenced and naive interleaved block by block, run in this process."""
    plan = SweepPlan.of([_config("fenced"), _config("naive")], range(0, 3), chunk_size=1)
    return [run_chunk(chunk) for chunk in plan.chunks()]


def test_a_tally_merged_chunk_by_chunk_is_the_summary_of_all_runs() -> None:
    from tagjoin.sim.harness.scenario import run_scenario

    recs = [run_scenario(_config("naive", seed)) for seed in range(3)]
    whole = Tally()
    for part in ([recs[0]], recs[1:]):
        tally = Tally()
        for rec in part:
            tally.add(rec)
        whole.merge(tally)
    assert whole.summary() == summarise(recs)


def test_the_merger_reports_the_same_whatever_order_chunks_arrive_in(chunks_of_one: list[Any]) -> None:
    plan = SweepPlan.of([_config("fenced"), _config("naive")], range(0, 3), chunk_size=1)
    reports = []
    for order in (chunks_of_one, chunks_of_one[::-1], chunks_of_one[1::2] + chunks_of_one[::2]):
        merger = Merger(plan)
        for result in order:
            merger.add(result)
        outcome = merger.outcome()
        assert not outcome.partial
        reports.append(json.dumps(to_json(outcome.summaries, outcome.violating), indent=2))
    assert reports[0] == reports[1] == reports[2]


def test_an_unfinished_block_stays_out_of_the_report(chunks_of_one: list[Any]) -> None:
    """Blocks 0 and 2 done, block 1 half done: the report is block 0, the only prefix complete."""
    plan = SweepPlan.of([_config("fenced"), _config("naive")], range(0, 3), chunk_size=1)
    merger = Merger(plan)
    for result in [chunks_of_one[i] for i in (0, 1, 2, 4, 5)]:
        merger.add(result)
    outcome = merger.outcome(interrupted=True)
    assert outcome.done == range(0, 1)
    assert outcome.partial
    assert {s.runs for s in outcome.summaries.values()} == {1}
    assert merger.progress.runs_done == 5


def test_interrupting_a_sweep_keeps_the_seeds_done() -> None:
    plan = SweepPlan.of([_config("fenced")], range(10, 15), chunk_size=1)

    def stop_after_two(progress: sweep_pool.Progress) -> None:
        if progress.runs_done == 2:
            raise KeyboardInterrupt

    outcome = run_sweep(plan, on_progress=stop_after_two)
    assert outcome.interrupted and outcome.partial
    assert outcome.done == range(10, 12)
    assert outcome.summaries["fenced"].runs == 2


def test_ctrl_c_in_process_prints_a_partial_report_and_how_to_resume(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = sweep_pool.run_chunk
    calls: list[int] = []

    def interrupted_on_the_third(chunk: sweep_pool.Chunk) -> sweep_pool.ChunkResult:
        calls.append(chunk.index)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(chunk)

    monkeypatch.setattr(sweep_pool, "run_chunk", interrupted_on_the_third)
    code, out, err = _run(capsys, "--seed-start", "5", "--seeds", "6", "--jobs", "1", *SHORT)
    assert code == 130
    assert out.startswith("PARTIAL REPORT (interrupted): seeds 5-6 of 5-10\n")
    assert "runs                                     2" in out
    assert err.strip().splitlines() == [
        "tagjoin sim run: interrupted after 2 of 6 seeds; resume with --seed-start 7 --seeds 4"
        " (and the same other options)"
    ]

    monkeypatch.setattr(sweep_pool, "run_chunk", real)
    code, out, _ = _run(capsys, "--seed-start", "5", "--seeds", "2", "--jobs", "1", "--json", *SHORT)
    report = json.loads(out)
    assert "partial" not in report and report["strategies"]["fenced"]["runs"] == 2


@pytest.mark.slow
def test_jobs_1_and_jobs_2_give_the_same_report_byte_for_byte(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--seeds", "4", "--strategy", "both", "--json", *SHORT]
    code1, one, _ = _run(capsys, *args, "--jobs", "1")
    code2, two, _ = _run(capsys, *args, "--jobs", "2", "--chunk", "1")
    assert (code1, one) == (code2, two)
    assert json.loads(one)["strategies"]["naive"]["runs"] == 4


@pytest.fixture
def local_dask() -> Iterator[str]:
    distributed = pytest.importorskip("distributed")
    # In this process (threads): no worker start-up to wait for; two threads take turns at moto.
    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        yield str(cluster.scheduler_address)


@pytest.mark.slow
def test_a_dask_cluster_gives_the_report_of_jobs_1(capsys: pytest.CaptureFixture[str], local_dask: str) -> None:
    args = ["--seeds", "3", "--strategy", "both", "--json", *SHORT]
    _, one, _ = _run(capsys, *args, "--jobs", "1")
    _, dask, _ = _run(capsys, *args, "--dask", local_dask, "--chunk", "2")
    assert dask == one


@pytest.mark.slow
def test_dask_worker_processes_give_the_report_of_jobs_1(capsys: pytest.CaptureFixture[str]) -> None:
    """Chunks and results pickled over TCP to two worker processes and back."""
    distributed = pytest.importorskip("distributed")
    args = ["--seeds", "4", "--strategy", "both", "--json", *SHORT]
    _, one, _ = _run(capsys, *args, "--jobs", "1")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        _, dask, _ = _run(capsys, *args, "--dask", str(cluster.scheduler_address))
    assert dask == one


def test_dask_without_the_cluster_extra_says_what_to_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` raises ImportError
    code, out, err = _run(capsys, "--seeds", "2", "--dask", "tcp://127.0.0.1:8786")
    assert (code, out) == (2, "")
    assert err == "tagjoin sim: --dask needs the cluster extra: pip install 'consul-tagjoin[cluster]'\n"


def test_dask_and_jobs_do_not_combine(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "--dask", "tcp://127.0.0.1:8786", "--jobs", "2")
    assert code == 2 and len(err.splitlines()) == 1 and "does not combine with --jobs" in err


@pytest.mark.parametrize("inside", [False, True])
def test_a_bad_out_path_is_one_line_and_exit_2_before_any_seed_runs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, inside: bool
) -> None:
    blocker = tmp_path / "report"
    blocker.write_text("a file where the directory should be")
    target = blocker / "sub" if inside else blocker
    started = time.monotonic()
    code, out, err = _run(capsys, "--seeds", "50", "--out", str(target))
    assert (code, out) == (2, "")
    assert err.startswith(f"tagjoin sim: --out {target}: ") and err.count("\n") == 1
    assert time.monotonic() - started < 5  # refused up front, not after 50 seeds


def test_out_writes_the_report_the_violating_runs_and_the_first_failure(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_dir = tmp_path / "sweep" / "one"
    args = ["--seeds", "6", "--strategy", "naive", "--duration", "60", "--jobs", "1"]
    code, _, _ = _run(capsys, *args, "--out", str(out_dir))
    _, printed, _ = _run(capsys, *args, "--json")
    report = (out_dir / "report.json").read_text()
    assert report == printed  # what --json prints, byte for byte
    lines = [json.loads(line) for line in (out_dir / "violations.jsonl").read_text().splitlines()]
    assert lines, "the naive strategy is expected to violate within six seeds"
    assert code == 1
    violations = json.loads(report)["violations"]
    assert [(x["strategy"], x["seed"]) for x in lines] == sorted({(v["strategy"], v["seed"]) for v in violations})
    first = lines[0]
    assert first["schedule"] and first["violations"][0]["invariant"]
    assert first["config"]["seed"] == first["seed"] and first["config"]["duration_ms"] == 60_000
    svg = (out_dir / "first-failure.svg").read_text()
    assert svg.startswith("<svg") and f"seed {first['seed']} · naive" in svg

    # replay of that seed: the same schedule and the same violations, with the trace
    code = main(["sim", "replay", str(first["seed"]), "--strategy", "naive", "--duration", "60", "--json"])
    replayed = json.loads(capsys.readouterr().out)["runs"][0]
    assert code == 1
    assert replayed["schedule"] == first["schedule"]
    assert replayed["violations"] == first["violations"]
    assert [line for line in replayed["trace"] if "VIOLATION" in line]
    assert {k for k, v in replayed["verdicts"].items() if v == "violated"} == {
        v["invariant"] for v in first["violations"]
    }


def test_out_without_a_failure_writes_no_picture(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = _run(capsys, "--seeds", "1", *SHORT, "--out", str(tmp_path))
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "violations.jsonl"]
    assert (tmp_path / "violations.jsonl").read_text() == ""
    assert f"written to {tmp_path}: report.json, violations.jsonl" in out


def test_replay_prints_the_schedule_the_trace_and_every_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sim", "replay", "3", *SHORT, "--faults", "crash", "--servers", "3", "--clients", "1"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert code == 0
    assert lines[0] == "fenced seed 3: 3 servers, 1 clients, raft_multiplier 5, 60 virtual s"
    assert lines[1] == "schedule:" and lines[2].startswith("  t=") and " crash " in lines[2]
    trace = lines[4 : lines.index("verdicts:")]
    assert lines[3] == f"trace ({len(trace)} lines):"
    assert any(" leader: " in line for line in trace) and any(" fault: crash " in line for line in trace)
    times = [int(line.split()[0]) for line in trace]
    assert times == sorted(times)
    verdicts = lines[lines.index("verdicts:") + 1 :]
    assert verdicts == [f"  {name} ok" for name in ("S1", "S2", "S3", "S4", "L1", "L2")]


def test_replay_takes_every_scenario_option_of_run_and_none_of_the_sweep_ones() -> None:
    from tagjoin.core.cli import build_parser

    parser = build_parser(load_plugins=True)
    args = parser.parse_args(["sim", "replay", "7", "--strategy", "naive", "--raft-multiplier", "1", "--clients", "0"])
    assert (args.seed, args.strategy, args.raft_multiplier, args.clients) == (7, "naive", 1, 0)
    for sweep_only in ("--seeds", "--jobs", "--out", "--dask"):
        with pytest.raises(SystemExit):
            parser.parse_args(["sim", "replay", "7", sweep_only, "2"])


@pytest.mark.slow
def test_ctrl_c_stops_the_workers_and_keeps_the_report_of_what_is_done(tmp_path: Path) -> None:
    """A real SIGINT to the process group, as a terminal's Ctrl-C sends it, during a two-worker sweep."""
    proc = subprocess.Popen(
        # Far more seeds than 15 s can run, in chunks of 10 that take seconds each: the workers
        # must be stopped, not waited for.
        [sys.executable, "-m", "tagjoin", "sim", "run", "--seeds", "2000", "--jobs", "2", "--chunk", "10", *SHORT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        time.sleep(15)  # worker start-up, then a few seeds
        os.killpg(proc.pid, signal.SIGINT)
        interrupted = time.monotonic()
        out, err = proc.communicate(timeout=60)
        stopped_in = time.monotonic() - interrupted
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert stopped_in < 5, f"took {stopped_in:.1f} s to stop after Ctrl-C"
    assert out.startswith("PARTIAL REPORT (interrupted): ")
    assert "Traceback" not in err
    [hint] = err.strip().splitlines()
    assert hint.startswith("tagjoin sim run: interrupted after ") and "--seed-start " in hint


def test_presets_size_the_cluster_and_refuse_a_size_beside_them(capsys: pytest.CaptureFixture[str]) -> None:
    from tagjoin.core.cli import build_parser
    from tagjoin.sim.cli import _scenario_config

    parser = build_parser(load_plugins=True)
    for preset, size in (("5x500", (5, 500)), ("7x5000", (7, 5000))):
        config = _scenario_config(parser.parse_args(["sim", "replay", "1", "--preset", preset]), 1, "fenced")
        assert (config.servers, config.clients) == size
    plain = _scenario_config(parser.parse_args(["sim", "run"]), 1, "fenced")
    assert (plain.servers, plain.clients) == (3, 2)
    code = main(["sim", "run", "--preset", "5x500", "--clients", "10", "--seeds", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [
        "tagjoin sim: --preset 5x500 sets the cluster's size; leave out --servers and --clients"
    ]
    code = main(["sim", "run", "--clients", "12701", "--seeds", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == ["tagjoin sim: at most 700 servers and 12,700 clients (asked 3 and 12,701)"]
