"""Real clients against a live simulated cluster (`tagjoin sim serve`'s machinery) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tagjoin.sim.live.live_cluster import LiveSim, start_live

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def wait_for(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll a condition, bounded in wall time; the cluster runs paced to the wall clock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def live() -> Iterator[LiveSim]:
    sim = start_live(servers=3, clients=2, raft_multiplier=1, speed=4.0)
    try:
        yield sim
    finally:
        sim.stop()


def tag_holders(live: LiveSim) -> dict[str, str]:
    def read() -> dict[str, str]:
        world = live.scenario.world
        return {world.node_of(i): v for i, v in world.tag_values("consul-leader").items()}

    return live.driver.call(read)


def leader_tagged(live: LiveSim) -> str | None:
    leader = live.driver.call(live.scenario.cluster.leader)
    return leader if leader is not None and list(tag_holders(live)) == [leader] else None


def control(live: LiveSim, path: str, body: dict[str, object] | None = None) -> dict[str, object]:
    data = json.dumps(body).encode() if body is not None else b""
    req = urllib.request.Request(f"{live.control_url}{path}", data=data, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        answer: dict[str, object] = json.loads(resp.read())
        return answer


def env_for(live: LiveSim) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **live.environment()}


def tagjoin(live: LiveSim, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tagjoin.core.cli", *args],
        capture_output=True,
        text=True,
        env=env_for(live),
        cwd=ROOT,
        timeout=60,
    )


def test_aws_cli_finds_the_leaders_private_ip(live: LiveSim) -> None:
    wait_for("the leader to be tagged", lambda: leader_tagged(live) is not None)
    leader = leader_tagged(live)
    assert leader is not None
    out = subprocess.run(
        [
            str(BIN / "aws"),
            "ec2",
            "describe-instances",
            "--filters",
            "Name=tag-key,Values=consul-leader",
            "Name=instance-state-name,Values=running",
            "--query",
            "Reservations[].Instances[].PrivateIpAddress",
            "--output",
            "text",
        ],
        capture_output=True,
        text=True,
        env=env_for(live),
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == live.scenario.cluster.nodes[leader].ip


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_reads_leader_and_members(live: LiveSim) -> None:
    leader = subprocess.run(
        ["curl", "-sf", f"{live.consul_address}/v1/status/leader"], capture_output=True, text=True, check=True
    )
    assert json.loads(leader.stdout).endswith(":8300")
    members = subprocess.run(
        ["curl", "-sf", f"{live.consul_address}/v1/agent/members"], capture_output=True, text=True, check=True
    )
    names = {m["Name"] for m in json.loads(members.stdout)}
    assert set(live.agent_urls) <= names


def test_tagjoin_targets_and_status_against_the_live_cluster(live: LiveSim) -> None:
    wait_for("the leader to be tagged", lambda: leader_tagged(live) is not None)
    leader = leader_tagged(live)
    assert leader is not None
    targets = tagjoin(live, "targets", "--format", "json")
    assert targets.returncode == 0, targets.stderr
    assert json.loads(targets.stdout)["targets"] == [live.scenario.cluster.nodes[leader].ip]
    status = tagjoin(live, "status", "--check", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    assert json.loads(status.stdout)["leader"]["tag_agrees"] is True


def test_control_api_crash_moves_the_tag_and_restart_rejoins(live: LiveSim) -> None:
    wait_for("the leader to be tagged", lambda: leader_tagged(live) is not None)
    old = leader_tagged(live)
    assert old is not None
    assert control(live, f"/control/crash/{old}") == {"ok": True}
    wait_for("a new leader to carry the tag", lambda: leader_tagged(live) not in (None, old))
    assert control(live, f"/control/restart/{old}") == {"ok": True}
    cluster = live.scenario.cluster

    def rejoined() -> bool:
        leader = live.driver.call(cluster.leader)
        return leader is not None and live.driver.call(lambda: cluster.member_status(leader, old)) == 1

    wait_for("the old leader to rejoin", rejoined)
    with urllib.request.urlopen(f"{live.control_url}/control/nodes", timeout=10) as resp:
        nodes = json.loads(resp.read())["nodes"]
    assert all(n["running"] for n in nodes)


def test_control_api_errors_are_json(live: LiveSim) -> None:
    req = urllib.request.Request(f"{live.control_url}/control/crash/nobody", data=b"", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 404
    assert "unknown node" in json.loads(err.value.read())["error"]
