"""`tagjoin console` flags and wiring (the app is built, never run, here)."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tagjoin.core.consul.settings import ConsulSettings, consul_settings_from_env
from tagjoin.core.errors import ConfigError
from tagjoin.core.settings import AwsSettings, Scope
from tagjoin.tui.app import ConsoleApp
from tagjoin.tui.cli import register
from tagjoin.tui.demo import DemoEndpoints
from tagjoin.tui.source import ClusterSource
from tagjoin.tui.wiring import ConsoleOptions, build_console


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """stdin and stdout as a terminal, so `console` goes past its TTY check.

    pytest puts its own sys.stdin/sys.stdout back for each test's call, so the console module's
    view of `sys` is replaced instead.
    """

    class TerminalSys:
        stdin = Terminal()
        stdout = Terminal()
        stderr = sys.stderr

    monkeypatch.setattr("tagjoin.tui.cli.sys", TerminalSys)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tagjoin")
    register(p.add_subparsers(dest="command"))
    return p


def test_flags_and_defaults() -> None:
    args = parser().parse_args(
        [
            "console",
            "--read-only",
            "--interval",
            "500ms",
            "--rejoin-command",
            "ssh {address} start",
            "--tag-key",
            "lead",
        ]
    )
    assert args.read_only and args.interval == 0.5 and args.tag_key == "lead"
    assert args.agent_template == "http://{address}:8500"
    assert (args.demo, args.servers, args.clients) == (False, 3, 2)
    assert callable(args.handler)


@pytest.mark.parametrize("bad", [["--interval", "soon"], ["--interval", "10ms"], ["--servers", "0"]])
def test_bad_flags_are_usage_errors(bad: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(["console", *bad])
    assert exc.value.code == 2


def test_demo_runs_the_console_on_the_embedded_cluster_and_stops_it(
    monkeypatch: pytest.MonkeyPatch, terminal: None
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "test")
    stopped: list[bool] = []
    endpoints = DemoEndpoints(
        consul_address="http://127.0.0.1:18500",
        ec2_endpoint="http://127.0.0.1:15000",
        control_url="http://127.0.0.1:18400",
        cluster="sim",
        tag_key="consul-leader",
        stop=lambda: stopped.append(True),
    )
    started: list[tuple[int, int]] = []

    def start(servers: int, clients: int) -> DemoEndpoints:
        started.append((servers, clients))
        return endpoints

    built: list[tuple[str, str | None, Scope, str | None]] = []

    class Broken:
        class app:
            on_quit = None

        def run(self) -> None:
            raise RuntimeError("the screen failed")

    def build(
        consul: ConsulSettings, aws: AwsSettings, scope: Scope, options: ConsoleOptions, *, control_url: str | None
    ) -> Broken:
        built.append((consul.display_address, aws.endpoint_url, scope, control_url))
        return Broken()

    monkeypatch.setattr("tagjoin.tui.demo.start_embedded", start)
    monkeypatch.setattr("tagjoin.tui.wiring.build_console", build)
    args = parser().parse_args(["console", "--demo", "--servers", "5", "--clients", "1"])
    with pytest.raises(RuntimeError, match="the screen failed"):
        args.handler(args)
    assert started == [(5, 1)]
    assert stopped == [True]  # the embedded cluster stops even when the console fails
    ((consul, ec2, scope, control),) = built
    assert (consul, ec2, control) == ("http://127.0.0.1:18500", "http://127.0.0.1:15000", "http://127.0.0.1:18400")
    assert (scope.cluster, scope.tag_key) == ("sim", "consul-leader")


def test_missing_region_fails_before_the_screen_opens(monkeypatch: pytest.MonkeyPatch, terminal: None) -> None:
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    args = parser().parse_args(["console"])
    with pytest.raises(ConfigError, match="no AWS region"):
        args.handler(args)


def test_build_console_wires_real_adapters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    consul = consul_settings_from_env({}, http_addr="127.0.0.1:1")
    aws = AwsSettings(region="eu-west-1", endpoint_url="http://127.0.0.1:2")
    built = build_console(consul, aws, Scope(cluster="prod"), ConsoleOptions(interval=3, read_only=True))
    try:
        assert isinstance(built.app, ConsoleApp)
        assert built.app.interval == 3 and built.app.actions.read_only and not built.app.actions.demo
        assert built.app.source.label == "consul http://127.0.0.1:1  ec2 http://127.0.0.1:2 cluster=prod"
    finally:
        for close in built.closers:
            close()


def test_without_a_terminal_the_console_says_so_in_one_line_and_exits_2() -> None:
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONSUL_", "TAGJOIN_"))}
    done = subprocess.run(
        [sys.executable, "-m", "tagjoin", "console", "--demo"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""  # no escape codes
    assert done.stderr.count("\n") == 1 and "needs a terminal" in done.stderr and "tagjoin status" in done.stderr


def test_demo_and_control_url_together_are_a_usage_error(terminal: None, capsys: pytest.CaptureFixture[str]) -> None:
    args = parser().parse_args(["console", "--demo", "--control-url", "http://127.0.0.1:1"])
    assert args.handler(args) == 2


def test_flags_for_sim_serve_endpoints() -> None:
    args = parser().parse_args(
        ["console", "--agent-map", "/tmp/agents.json", "--control-url", "http://127.0.0.1:28400", "--export-dir", "/x"]
    )
    assert (args.agent_map, args.control_url, args.export_dir) == (
        "/tmp/agents.json",
        "http://127.0.0.1:28400",
        Path("/x"),
    )


def test_an_agent_map_and_a_control_url_wire_the_console_for_sim_serve(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    agents = tmp_path / "agents.json"
    agents.write_text(json.dumps({"agents": {"ip-10-0-1-10": "http://127.0.0.1:28402"}}))
    consul = consul_settings_from_env({}, http_addr="127.0.0.1:28402")
    aws = AwsSettings(region="eu-west-1", endpoint_url="http://127.0.0.1:28401")
    options = ConsoleOptions(agent_map=str(agents))
    built = build_console(consul, aws, Scope(cluster="sim"), options, control_url="http://127.0.0.1:28400")
    try:
        assert built.app.actions.demo  # the fault keys
        source = built.app.source
        assert isinstance(source, ClusterSource)
        assert source._agents.agent_url("ip-10-0-1-10", "10.0.1.10") == "http://127.0.0.1:28402"
    finally:
        for close in built.closers:
            close()
