"""The keeper when things stay broken: few log lines, jittered backoff, a quick look at the raft
state all along, and a prompt exit on SIGTERM even while a call hangs.

The loops run in virtual time (FakeClock) against a Consul agent over real HTTP and EC2 in moto;
the SIGTERM tests run `tagjoin keep` as a process.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from moto import mock_aws

from tagjoin.core.aws.boto_ec2 import BotoEc2, make_ec2_client
from tagjoin.core.aws.tag_store import TagStore
from tagjoin.core.consul.client import ConsulClient
from tagjoin.core.consul.settings import consul_settings_from_env
from tagjoin.core.handoff import Decision
from tagjoin.core.keeper import KeepConfig, Keeper
from tagjoin.core.settings import AwsSettings, Scope
from tests.fake_agent import CHECKS, SELF_SERVER, FakeAgent, Reply, closed_port, serve_tcp
from tests.moto_world import REGION, Ec2Faults, FakeClock, World, build_world

ROOT = Path(__file__).resolve().parents[1]
KEY = "consul-leader"


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self, level: int = logging.INFO) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= level]


@dataclass
class Rig:
    keeper: Keeper
    agent: FakeAgent
    world: World
    faults: Ec2Faults
    clock: FakeClock
    log: _Records
    agent_url: str


@pytest.fixture
def rig(monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    agent = FakeAgent()
    # The health query answers at once; `run_until` lets its wait pass in virtual time instead.
    agent.overrides["GET", "/v1/health/state/critical"] = Reply(
        200, json.dumps(CHECKS), {"Content-Type": "application/json", "X-Consul-Index": "1294"}
    )
    with mock_aws(), serve_tcp(agent) as url:
        client = make_ec2_client(AwsSettings(region=REGION))
        world = build_world(client)
        world.launch("10.0.1.10", cluster="c1")
        faults = Ec2Faults().install(client)
        clock = FakeClock()
        store = TagStore(BotoEc2(client), Scope(cluster="c1"), clock=clock, rng=random.Random(3), max_attempts=2)
        records = _Records()
        logger = logging.getLogger(f"tests.keeper.hardening.{id(records)}")
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        logger.addHandler(records)
        with ConsulClient(consul_settings_from_env({}, http_addr=url)) as consul:
            keeper = Keeper(consul, store, clock, KeepConfig(interval=1.0, anti_entropy=60), logger=logger)
            yield Rig(keeper, agent, world, faults, clock, records, url)
        faults.uninstall(client)


def run_until(rig: Rig, seconds: float) -> None:
    """Loops back to back until `seconds` of virtual time have passed (bounded in loops too).

    A loop that did not sleep waited in its health query, which blocks up to one interval.
    """
    end = rig.clock.now + seconds
    for _ in range(100_000):
        if rig.clock.now >= end:
            return
        before = rig.clock.now
        rig.keeper.tick()
        if rig.clock.now == before:
            rig.clock.now += rig.keeper.config.interval
    raise AssertionError("the keeper did not let virtual time pass")


def fail_every_ec2_call(rig: Rig) -> None:
    for action in ("DescribeInstances", "DescribeTags", "CreateTags", "DeleteTags"):
        rig.faults.arm(action, 10_000, code="Unavailable", status=503)


def test_an_agent_down_for_ten_minutes_makes_a_handful_of_lines(rig: Rig) -> None:
    with ConsulClient(consul_settings_from_env({}, http_addr=f"127.0.0.1:{closed_port()}")) as gone:
        live, rig.keeper.consul = rig.keeper.consul, gone
        run_until(rig, 600)
        rig.keeper.consul = live
    looks = len(rig.clock.sleeps)
    lines = rig.log.lines(logging.WARNING)
    # Once, then summaries after 1, 3 and 7 minutes: not one line per retry (about 160 here).
    assert looks > 100
    assert len(lines) == 4, lines
    assert lines[0].startswith("cannot reach the Consul agent") and "; retrying in " in lines[0]
    assert all(line.startswith("still failing (") for line in lines[1:]), lines
    assert "cannot reach the Consul agent" in lines[3]
    rig.keeper.tick()
    assert rig.log.lines()[-2].startswith("recovered after ")
    assert rig.log.lines()[-2].endswith(" failures in 10m")


def test_retries_of_an_unanswering_agent_are_jittered_and_short(rig: Rig) -> None:
    with ConsulClient(consul_settings_from_env({}, http_addr=f"127.0.0.1:{closed_port()}")) as gone:
        rig.keeper.consul = gone
        rig.keeper.run(lambda: False, max_iterations=20)
    sleeps = rig.clock.sleeps
    # The local agent is what the keeper waits for: never longer than error_backoff, never in lockstep.
    assert all(2.5 <= s <= 5.0 for s in sleeps), sleeps
    assert len(set(sleeps)) == len(sleeps)


def test_failing_ec2_backs_off_while_the_raft_state_is_still_read_every_loop(rig: Rig) -> None:
    fail_every_ec2_call(rig)
    run_until(rig, 300)
    passes = [r for r in rig.agent.requests if r.path == "/v1/health/node/ip-10-0-1-10"]
    looks = [r for r in rig.agent.requests if r.path == "/v1/agent/self"]
    warnings = rig.log.lines(logging.WARNING)
    # Without backoff a pass would start every loop (~300); doubling from 5 s to 60 s gives about ten.
    assert 5 <= len(passes) <= 15, len(passes)
    assert len(looks) > 250  # one look at the raft state per interval, backoff or not
    assert len(warnings) <= 4, warnings
    assert warnings[0].startswith("pass failed: EC2 DescribeInstances still failing after 2 attempts")
    before = len(rig.keeper.passes)
    rig.faults.clear()
    run_until(rig, 70)
    # The retry hands off; the look again after it (KeepConfig.settle) finds nothing to do.
    after = [p.decision for p in rig.keeper.passes[before:]]
    assert after[0] is Decision.HANDOFF and set(after[1:]) <= {Decision.NO_CHANGE}, after
    assert any(line.startswith("recovered after ") for line in rig.log.lines()[-3:]), rig.log.lines()[-3:]


def test_a_new_term_passes_at_once_even_while_backing_off(rig: Rig) -> None:
    fail_every_ec2_call(rig)
    run_until(rig, 100)  # deep into the backoff
    rig.faults.clear()
    doc = copy.deepcopy(SELF_SERVER)
    doc["Stats"]["raft"]["term"] = "9"
    rig.agent.self_doc = doc
    rig.keeper.tick()
    assert [p.decision for p in rig.keeper.passes] == [Decision.HANDOFF]
    assert rig.keeper.passes[0].plan.term == 9


def test_a_token_without_node_read_is_said_once_and_the_keeper_still_passes(rig: Rig) -> None:
    rig.agent.overrides["GET", "/v1/health/state/critical"] = Reply(403, "Permission denied: token lacks 'node:read'")
    run_until(rig, 300)
    warnings = rig.log.lines(logging.WARNING)
    assert len(warnings) <= 4, warnings
    assert warnings[0].startswith("health query failed: Consul agent at")
    assert "needs node:read and service:read" in warnings[0]
    assert [p.decision for p in rig.keeper.passes][:1] == [Decision.HANDOFF]


# -- SIGTERM ----------------------------------------------------------------------------------


def _keep(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tagjoin.core.cli", "keep", "--interval", "1s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def test_sigterm_while_a_call_to_the_agent_hangs_stops_the_keeper() -> None:
    agent = FakeAgent()
    # The agent accepts the request and answers a minute later: the keeper is inside the call.
    agent.overrides["GET", "/v1/agent/self"] = Reply(200, "{}", delay=60)
    with serve_tcp(agent) as url:
        env = {"PYTHONPATH": str(ROOT), "CONSUL_HTTP_ADDR": url, "AWS_REGION": REGION, "PATH": ""}
        proc = _keep(env)
        try:
            assert proc.stderr is not None
            assert proc.stderr.readline().startswith("keeper: watching")
            for _ in range(200):  # bounded: the first loop reaches agent/self at once
                if any(r.path == "/v1/agent/self" for r in agent.requests):
                    break
                _pause()
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=20)  # far less than the 60 s the call would hang
        finally:
            proc.kill()
    assert proc.returncode == 0, err
    assert err.strip().splitlines() == ["keeper: stopping on SIGTERM"]


def test_a_call_stuck_in_c_code_does_not_outlast_the_grace() -> None:
    """A lookup blocked in C (a DNS query) never returns to Python to see the signal; the watchdog
    ends the process anyway. A pthread mutex locked twice stands in for it: the thread waits in C
    with the GIL released, and a signal does not wake it."""
    script = (
        "import ctypes, sys\n"
        "from tagjoin.core.cli import stop_on_signals\n"
        "stop_on_signals()\n"
        "mutex = ctypes.create_string_buffer(64)\n"
        "lock = ctypes.CDLL(None).pthread_mutex_lock\n"
        "lock(mutex)\n"
        "print('blocked', flush=True)\n"
        "lock(mutex)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "blocked\n"
        _pause()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert err == "keeper: stopping on SIGTERM (a call was still running)\n"


def _pause() -> None:
    import time

    time.sleep(0.05)
