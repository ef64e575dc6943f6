"""`tagjoin` as a process: exit codes and one-line errors, against a fake agent and a moto server."""

from __future__ import annotations

import copy
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.fake_agent import SELF_SERVER, FakeAgent, Reply, closed_port, serve_tcp
from tests.moto_world import REGION, World, build_world

ROOT = Path(__file__).resolve().parents[1]
KEY = "consul-leader"


@dataclass
class Rig:
    agent: FakeAgent
    world: World
    env: dict[str, str]

    def run(self, *args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tagjoin.core.cli", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            cwd=ROOT,
            timeout=60,
        )


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def rig(moto_url: str) -> Iterator[Rig]:
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")).read()
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    client = boto3.client(
        "ec2",
        region_name=REGION,
        endpoint_url=moto_url,
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
    )
    world = build_world(client)
    agent = FakeAgent()
    with serve_tcp(agent) as url:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            "CONSUL_HTTP_ADDR": url,
            "AWS_ENDPOINT_URL": moto_url,
            "AWS_REGION": REGION,
            "TAGJOIN_CLUSTER": "c1",
            "TAGJOIN_EC2_MAX_ATTEMPTS": "2",
            **creds,
        }
        yield Rig(agent, world, env)


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def test_targets_orders_by_term_and_skips_self(rig: Rig) -> None:
    rig.world.launch("10.0.1.20", cluster="c1", tags={KEY: "4"})
    rig.world.launch("10.0.1.21", cluster="c1", tags={KEY: "6"})
    rig.world.launch("10.0.1.22", cluster="c2", tags={KEY: "9"})  # another cluster
    out = rig.run("targets", "--self", "10.0.1.21")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "10.0.1.20\n"
    out = rig.run("targets", "--format", "json")
    assert json.loads(out.stdout) == {"targets": ["10.0.1.21", "10.0.1.20"], "source": "leader-tag"}


def test_targets_with_nothing_to_join_exits_3(rig: Rig) -> None:
    out = rig.run("targets")
    assert out.returncode == 3
    assert "carries tag consul-leader" in one_line(out.stderr)
    out = rig.run("targets", "--format", "json")
    assert out.returncode == 3
    assert json.loads(out.stdout)["targets"] == []


def test_targets_fallback_and_discover_syntax(rig: Rig) -> None:
    rig.world.launch("10.0.1.30", cluster="c1", tags={"role": "consul-server"})
    out = rig.run("targets", "--fallback-tag", "role=consul-server", "--format", "flags")
    assert out.stdout == "-retry-join=10.0.1.30\n"
    rig.world.launch("10.0.1.31", cluster="c1", tags={"my-leader": "true"})
    out = rig.run("targets", f"provider=aws tag_key=my-leader tag_value=true region={REGION}")
    assert out.stdout == "10.0.1.31\n", out.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["targets", "provider=aws tag_name=x"], {}, "unknown discover key tag_name="),
        (["targets", "provider=azure"], {}, "provider=azure is not supported"),
        (["targets"], {"AWS_REGION": "", "AWS_DEFAULT_REGION": ""}, "no AWS region"),
        (["reconcile"], {"CONSUL_HTTP_ADDR": "ftp://x"}, "Unknown protocol scheme"),
    ],
)
def test_configuration_errors_exit_2(rig: Rig, args: list[str], env: dict[str, str], message: str) -> None:
    out = rig.run(*args, env=env)
    assert out.returncode == 2
    assert message in one_line(out.stderr)


def test_reconcile_moves_the_tag_and_reports_json(rig: Rig) -> None:
    old = rig.world.launch("10.0.1.20", cluster="c1", tags={KEY: "2"})
    new = rig.world.launch("10.0.1.10", cluster="c1")
    out = rig.run("reconcile", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["decision"] == "handoff"
    assert report["created"] == [{"instance_id": new, "key": KEY, "value": "3"}]
    assert report["deleted"] == [{"instance_id": old, "key": KEY, "value": "2"}]
    assert report["ec2_calls"] == {"DescribeInstances": 2, "CreateTags": 1, "DeleteTags": 1}
    assert rig.world.tags_of(new)[KEY] == "3"


def test_reconcile_dry_run_writes_nothing(rig: Rig) -> None:
    old = rig.world.launch("10.0.1.20", cluster="c1", tags={KEY: "2"})
    rig.world.launch("10.0.1.10", cluster="c1")
    out = rig.run("reconcile", "--dry-run")
    assert out.returncode == 0
    assert "dry run" in out.stdout
    assert rig.world.tags_of(old)[KEY] == "2"


def test_unreachable_consul(rig: Rig) -> None:
    env = {"CONSUL_HTTP_ADDR": f"127.0.0.1:{closed_port()}"}
    out = rig.run("reconcile", env=env)
    assert out.returncode == 1
    assert "127.0.0.1" in one_line(out.stderr)
    out = rig.run("watch-handler", stdin="[]", env=env)
    assert out.returncode == 0  # a non-zero exit would stop `consul watch`
    assert "will retry" in one_line(out.stderr)


def test_acl_denied_is_one_line_and_never_shows_the_token(rig: Rig) -> None:
    rig.agent.required_token = "right-token"
    out = rig.run("status", env={"CONSUL_HTTP_TOKEN": "s3cr3t-wrong"})
    assert out.returncode == 1
    line = one_line(out.stderr)
    assert "ACL" in line or "ermission" in line
    assert "s3cr3t-wrong" not in out.stderr + out.stdout


def test_no_leader_empty_string_and_500(rig: Rig) -> None:
    rig.world.launch("10.0.1.20", cluster="c1", tags={KEY: "2"})
    rig.agent.leader = ""
    out = rig.run("status", "--check")
    assert out.returncode == 1
    assert "leader: none" in out.stdout and "the cluster has no leader" in out.stdout
    out = rig.run("reconcile")
    assert out.returncode == 0
    assert "unconfirmed" in out.stdout
    rig.agent.leader = "10.0.1.10:8300"
    rig.agent.overrides[("GET", "/v1/agent/members")] = Reply(500, "No cluster leader")
    out = rig.run("status")
    assert out.returncode == 1
    assert "leader" in one_line(out.stderr).lower()


def test_leader_address_with_no_instance(rig: Rig) -> None:
    old = rig.world.launch("10.0.1.20", cluster="c1", tags={KEY: "2"})
    out = rig.run("reconcile")
    assert out.returncode == 1
    assert "10.0.1.10" in one_line(out.stderr)
    assert rig.world.tags_of(old)[KEY] == "2"


def test_same_ip_twice_inside_the_scope_is_refused(rig: Rig) -> None:
    old = rig.world.launch("10.0.1.20", cluster="c1", tags={KEY: "2"})
    rig.world.launch("10.0.1.10", cluster="c1")
    rig.world.launch("10.0.1.10", cluster="c1", other_vpc=True)
    out = rig.run("reconcile")
    assert out.returncode == 1
    assert "10.0.1.10" in one_line(out.stderr)
    assert rig.world.tags_of(old)[KEY] == "2"


@pytest.mark.parametrize("payload", ["", "{broken", '{"not": "a list"}'])
def test_watch_handler_bad_payloads_still_reconcile_and_exit_0(rig: Rig, payload: str) -> None:
    rig.world.launch("10.0.1.20", cluster="c1", tags={KEY: "2"})
    new = rig.world.launch("10.0.1.10", cluster="c1")
    out = rig.run("watch-handler", stdin=payload, env={"CONSUL_INDEX": "17"})
    assert out.returncode == 0
    assert "ignoring bad payload" in one_line(out.stderr)
    assert rig.world.tags_of(new)[KEY] == "3"


def test_watch_handler_checks_payload(rig: Rig) -> None:
    rig.world.launch("10.0.1.10", cluster="c1", tags={KEY: "3"})
    payload = json.dumps([{"Node": "a", "CheckID": "serfHealth", "Status": "critical"}])
    out = rig.run("watch-handler", stdin=payload, env={"CONSUL_INDEX": "5"})
    assert out.returncode == 0
    assert "checks watch, 1 entries, index 5" in out.stdout
    assert "no-change" in out.stdout


def test_watch_handler_follower_makes_no_ec2_call(rig: Rig) -> None:
    doc = copy.deepcopy(SELF_SERVER)
    doc["Stats"]["raft"]["state"] = "Follower"
    rig.agent.self_doc = doc
    out = rig.run("watch-handler", stdin="[]", env={"AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}"})
    assert out.returncode == 0
    assert "not-leader" in out.stdout


def test_status_json_and_check(rig: Rig) -> None:
    rig.world.launch("10.0.1.10", cluster="c1", tags={KEY: "3"})
    out = rig.run("status", "--json")
    assert out.returncode == 0
    view = json.loads(out.stdout)
    assert view["leader"]["address"] == "10.0.1.10"
    assert view["leader"]["tag_agrees"] is True


def test_deploy_kit_writes_files(rig: Rig, tmp_path: Path) -> None:
    out = rig.run("deploy-kit", "--cluster", "prod", "--out", str(tmp_path))
    assert out.returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "README.md",
        "boot-join.sh",
        "cloudformation.json",
        "iam-policy-client.json",
        "iam-policy-server.json",
        "retry-join.hcl",
        "tagjoin-keep.service",
    ]
    assert (tmp_path / "boot-join.sh").stat().st_mode & 0o777 == 0o755
    assert "ExecStart=/" in (tmp_path / "tagjoin-keep.service").read_text()


def test_deploy_kit_warns_loudly_without_a_cluster_and_refuses_without_a_region(rig: Rig, tmp_path: Path) -> None:
    out = rig.run("deploy-kit", "--out", str(tmp_path), env={"TAGJOIN_CLUSTER": ""})
    assert out.returncode == 0
    assert "WARNING: no --cluster" in out.stderr
    out = rig.run("deploy-kit", "--cluster", "prod", env={"AWS_REGION": "", "AWS_DEFAULT_REGION": ""})
    assert out.returncode == 2
    assert "no AWS region for the kit" in one_line(out.stderr)


def test_deploy_kit_to_a_bad_path_is_one_line_exit_2(rig: Rig, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    out = rig.run("deploy-kit", "--cluster", "prod", "--out", str(tmp_path / "a-file" / "kit"))
    assert out.returncode == 2
    assert "a-file" in one_line(out.stderr)


def _boot_join(rig: Rig, tmp_path: Path, *, expect: str, boot_env: dict[str, str] | None = None) -> list[str]:
    """boot-join.sh as written by the kit, with tagjoin run from this tree and `consul` replaced by
    a script that prints the arguments it was started with."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tagjoin = bin_dir / "tagjoin"
    tagjoin.write_text(f'#!/bin/sh\nexec {sys.executable} -m tagjoin.core.cli "$@"\n')
    consul = bin_dir / "consul"
    consul.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    tagjoin.chmod(0o755)
    consul.chmod(0o755)
    kit = tmp_path / "kit"
    out = rig.run("deploy-kit", "--cluster", "c1", "--bin", str(tagjoin), "--out", str(kit))
    assert out.returncode == 0, out.stderr
    done = subprocess.run(
        [str(kit / "boot-join.sh")],
        capture_output=True,
        text=True,
        env={**rig.env, "PATH": f"{bin_dir}:{rig.env['PATH']}", "BOOTSTRAP_EXPECT": expect, **(boot_env or {})},
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    command, *args = done.stdout.splitlines()
    assert command == "agent"
    return args


def test_boot_join_starts_consul_on_a_brand_new_cluster(rig: Rig, tmp_path: Path) -> None:
    """No tag anywhere, no other member: `targets` would exit 3; the boot script must still start Consul."""
    assert _boot_join(rig, tmp_path, expect="3") == ["-config-dir=/etc/consul.d", "-server", "-bootstrap-expect=3"]


def test_boot_join_joins_the_tag_holder(rig: Rig, tmp_path: Path) -> None:
    rig.world.launch("10.0.1.20", cluster="c1", tags={KEY: "4"})
    rig.world.launch("10.0.1.21", cluster="c1")
    assert _boot_join(rig, tmp_path, expect="") == ["-config-dir=/etc/consul.d", "-retry-join=10.0.1.20"]


def test_boot_join_starts_consul_even_when_tagjoin_fails(rig: Rig, tmp_path: Path) -> None:
    """A configuration error makes boot-plan exit 2; the server still starts with bootstrap_expect.

    A tag holder exists, so a boot-plan that had worked would have added -retry-join for it."""
    rig.world.launch("10.0.1.20", cluster="c1", tags={KEY: "4"})
    args = _boot_join(rig, tmp_path, expect="3", boot_env={"TAGJOIN_EC2_MAX_ATTEMPTS": "many"})
    assert args == ["-config-dir=/etc/consul.d", "-server", "-bootstrap-expect=3"]


def test_boot_plan_json_falls_back_to_members(rig: Rig) -> None:
    rig.world.launch("10.0.1.30", cluster="c1")
    out = rig.run("boot-plan", "--json", "--fallback-tag", "consul-cluster=c1", "--bootstrap-expect", "3")
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["mode"] == "join-member"
    assert plan["args"] == ["-retry-join=10.0.1.30", "-server", "-bootstrap-expect=3"]
    assert "no running instance carries tag consul-leader" in out.stderr


def test_targets_says_why_holders_were_filtered_out(rig: Rig) -> None:
    holder = rig.world.launch("10.0.1.20", cluster="c1", tags={KEY: "2"})
    out = rig.run("targets", "provider=aws addr_type=public_v4")
    assert out.returncode == 3
    assert f"1 holder ({holder}=2) has no public IPv4" in one_line(out.stderr)
    out = rig.run("targets", "--self", "10.0.1.20")
    assert f"1 holder ({holder}=2) is this node" in one_line(out.stderr)


def test_keep_reconciles_then_stops_cleanly_on_sigterm(rig: Rig) -> None:
    import signal

    rig.world.launch("10.0.1.20", cluster="c1", tags={KEY: "2"})
    new = rig.world.launch("10.0.1.10", cluster="c1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tagjoin.core.cli", "keep", "--interval", "100ms", "--anti-entropy", "1s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=rig.env,
        cwd=ROOT,
    )
    try:
        assert proc.stderr is not None
        lines = []
        for _ in range(20):  # bounded: the first pass comes within a few lines (the log is on stderr)
            line = proc.stderr.readline()
            lines.append(line)
            if "handoff" in line or not line:
                break
        assert any("handoff" in line for line in lines), lines
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert out == ""
    assert lines[0].startswith("keeper: watching (interval 0.1s"), lines
    assert "keeper: stopping on SIGTERM" in err
    assert rig.world.tags_of(new)[KEY] == "3"


def test_deploy_kit_auto_join_tag_is_key_equals_value_without_spaces(rig: Rig, tmp_path: Path) -> None:
    out = rig.run("deploy-kit", "--cluster", "prod", "--auto-join-tag", "consul-server=prod", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "tag_key=consul-server tag_value=prod" in (tmp_path / "retry-join.hcl").read_text()
    bad_tags = (("consul-server", "needs KEY=VALUE"), ("consul server=prod", "space or quote"), ("aws:x=1", "aws:"))
    for bad, why in bad_tags:
        out = rig.run("deploy-kit", "--cluster", "prod", "--auto-join-tag", bad, "--out", str(tmp_path / "no"))
        assert out.returncode == 2 and why in one_line(out.stderr), out.stderr
    assert not (tmp_path / "no").exists()
