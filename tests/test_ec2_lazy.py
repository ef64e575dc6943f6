"""Node commands load botocore only when a pass reaches EC2, build one client, report its setup errors on one line."""

from __future__ import annotations

import copy
import os
import random
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tagjoin.core.aws.ec2_api import Ec2Api, Filter, InstancePage, TagPage
from tagjoin.core.aws.lazy_ec2 import LazyEc2
from tagjoin.core.aws.tag_store import TagStore
from tagjoin.core.errors import ConfigError
from tagjoin.core.settings import AwsSettings, Scope
from tests.fake_agent import SELF_SERVER, FakeAgent, closed_port, serve_tcp
from tests.moto_world import FakeClock

ROOT = Path(__file__).resolve().parents[1]
# `tagjoin` as installed (main() reads sys.argv), then one more line: was botocore ever imported?
PROBE = (
    "import sys\n"
    "from tagjoin.core.cli import main\n"
    "try:\n"
    "    code = main()\n"
    "except SystemExit as exc:\n"
    "    code = exc.code\n"
    "print('botocore imported:', 'botocore' in sys.modules)\n"
    "sys.exit(code)\n"
)


def tagjoin(*args: str, env: dict[str, str], stdin: str = "") -> tuple[subprocess.CompletedProcess[str], bool]:
    """Run the command in a fresh interpreter: its result, and whether botocore was imported by the end."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    *_, last = done.stdout.splitlines() or ["?"]
    assert last.startswith("botocore imported: "), done.stdout + done.stderr
    return done, last.endswith("True")


@pytest.fixture
def agent() -> FakeAgent:
    return FakeAgent()


@pytest.fixture
def env(agent: FakeAgent, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A node's environment; EC2 on a closed port, so any call that got out would fail the command."""
    with serve_tcp(agent) as url:
        yield {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp_path),  # keeps this machine's ~/.aws out
            "CONSUL_HTTP_ADDR": url,
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}",
            "AWS_REGION": "eu-west-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
            "TAGJOIN_CLUSTER": "c1",
            "TAGJOIN_EC2_MAX_ATTEMPTS": "1",
        }


def follower(agent: FakeAgent) -> None:
    doc = copy.deepcopy(SELF_SERVER)
    doc["Stats"]["raft"]["state"] = "Follower"
    agent.self_doc = doc


def test_help_never_imports_botocore(env: dict[str, str]) -> None:
    done, imported = tagjoin("targets", "--help", env=env)
    assert done.returncode == 0
    assert done.stdout.startswith("usage: tagjoin targets")
    assert not imported


@pytest.mark.parametrize(
    ("args", "stdin"), [(["reconcile"], ""), (["watch-handler"], "[]"), (["reconcile", "--json"], "")]
)
def test_a_follower_pass_never_imports_botocore(
    agent: FakeAgent, env: dict[str, str], args: list[str], stdin: str
) -> None:
    follower(agent)
    done, imported = tagjoin(*args, env=env, stdin=stdin)
    assert done.returncode == 0, done.stderr
    assert "not-leader" in done.stdout
    assert not imported


def test_a_pass_that_stops_at_consul_never_imports_botocore(env: dict[str, str]) -> None:
    done, imported = tagjoin("watch-handler", env={**env, "CONSUL_HTTP_ADDR": f"127.0.0.1:{closed_port()}"})
    assert done.returncode == 0  # a non-zero exit would stop `consul watch`
    assert "will retry" in done.stderr
    assert not imported


def test_a_leader_pass_does_import_it(env: dict[str, str]) -> None:
    """The probe's positive control: the fake agent leads, so the pass asks EC2 (and finds it closed)."""
    done, imported = tagjoin("reconcile", env=env)
    assert done.returncode == 1
    assert "DescribeInstances still failing after 1 attempts" in done.stderr
    assert imported


@pytest.mark.parametrize(
    ("command", "extra", "message"),
    [
        ("targets", {"AWS_REGION": "eu central"}, "AWS region 'eu central' is not a valid region name"),
        ("targets", {"AWS_PROFILE": "nowhere"}, "The config profile (nowhere) could not be found"),
        ("targets", {"AWS_ENDPOINT_URL": "ftp://x"}, "not an http or https URL"),
        ("targets", {"AWS_SECRET_ACCESS_KEY": ""}, "Partial credentials found in env"),
        ("watch-handler", {"AWS_PROFILE": "nowhere"}, "The config profile (nowhere) could not be found"),
        ("reconcile", {"AWS_ENDPOINT_URL": "http://127.0.0.1:99999"}, "Port out of range"),
    ],
)
def test_setup_errors_found_at_the_first_call_exit_2_in_one_line(
    env: dict[str, str], command: str, extra: dict[str, str], message: str
) -> None:
    done, _ = tagjoin(command, env={**env, **extra}, stdin="[]")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr


def test_a_follower_with_a_bad_profile_is_left_alone(agent: FakeAgent, env: dict[str, str]) -> None:
    """A setting only botocore can judge waits until a pass needs EC2; a missing region does not wait."""
    follower(agent)
    done, imported = tagjoin("watch-handler", env={**env, "AWS_PROFILE": "nowhere"}, stdin="[]")
    assert done.returncode == 0 and not imported
    done, _ = tagjoin("watch-handler", env={**env, "AWS_REGION": ""}, stdin="[]")
    assert done.returncode == 2 and "no AWS region" in done.stderr


# -- LazyEc2 in process ------------------------------------------------------------------------------


class Counting:
    """An `Ec2Api` that answers empty pages and counts how often it was built."""

    built = 0

    def __init__(self, _aws: AwsSettings) -> None:
        Counting.built += 1

    def describe_instances(
        self, filters: Sequence[Filter], instance_ids: Sequence[str] = (), next_token: str | None = None
    ) -> InstancePage:
        return InstancePage([], None)

    def describe_tags(self, filters: Sequence[Filter], next_token: str | None = None) -> TagPage:
        return TagPage([], None)

    def create_tags(self, instance_ids: Sequence[str], key: str, value: str) -> None:
        pass

    def delete_tags(self, instance_ids: Sequence[str], key: str, value: str) -> None:
        pass


def test_the_client_is_built_on_the_first_call_and_only_once() -> None:
    Counting.built = 0
    api = LazyEc2(AwsSettings(region="eu-west-1"), Counting)
    store = TagStore(api, Scope(), clock=FakeClock(), rng=random.Random(1))
    assert Counting.built == 0 and not api.built
    store.tagged_instances_by_tag_index()
    store.create_tag("i-1", "k", "v")
    store.delete_tag_if("i-1", "k", "v")
    assert store.instances() == []
    assert Counting.built == 1 and api.built


def test_a_config_error_at_the_first_call_is_not_retried() -> None:
    attempts = 0

    def refuse(_aws: AwsSettings) -> Ec2Api:
        nonlocal attempts
        attempts += 1
        raise ConfigError("bad profile")

    clock = FakeClock()
    store = TagStore(LazyEc2(AwsSettings(region="eu-west-1"), refuse), Scope(), clock=clock, rng=random.Random(1))
    with pytest.raises(ConfigError, match="bad profile"):
        store.instances()
    assert attempts == 1 and clock.sleeps == []


def test_a_missing_region_is_reported_before_any_call() -> None:
    with pytest.raises(ConfigError, match="no AWS region"):
        LazyEc2(AwsSettings(region=None), Counting)
